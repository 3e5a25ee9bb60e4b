#pragma once
// The graph's logit quantity after a run of the replacement model, shared by interventions and
// their validation (intervention.cpp defines it).

#include "cs/replacement.h"

namespace cs::intervention::detail {

// The demeaned logits (u_t - mean_v u_v) . final_norm(resid) of tokens [k] at the last
// position, the graph's logit-node quantity (before any soft-cap), for a run's residual
// stream resid [n_pos, d_model] before the final norm: [k]. frozenNorm: the run replayed the
// context's final denominator; otherwise it computed its own, which is computed again here as
// the forward pass does (sqrt(mean(centered^2) + eps)).
at::Tensor demeanedAtLast(
    const attribution::ReplacementContext& ctx, const at::Tensor& resid, bool frozenNorm, const at::Tensor& tokens);

} // namespace cs::intervention::detail
