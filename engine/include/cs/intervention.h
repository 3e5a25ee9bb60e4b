#pragma once
// Interventions on transcoder features (docs/ARCHITECTURE.md §8): set, scale or add to feature
// activations of one prompt's replacement model (replacement.h) and read what the model would
// say then.
//
// Edits: Set a := value; Scale a := a * value (0 ablates, a negative factor suppresses);
// Add a := a + value (injects a feature, also where it was inactive). Edits apply in the
// order given, so a Set followed by a Scale of the same feature composes. Position -1 edits
// every position (every generated token too); the held BOS position (ReplacementContext::
// heldPositions) has no features and cannot be edited.
//
// Three regimes. The first two run the replacement model (replacement.h); the third is
// circuit-tracer's feature_intervention, which runs the real model:
//   Constrained: attention patterns, every norm denominator (the final norm's too) and every
//     other feature are frozen at the context's values (runReplacement frozen, not
//     recomputed): only direct effects, the affine model the attribution graph describes, so
//     logit changes are exactly linear in the edits and the demeaned logit change of an edit
//     is the sum of its graph edges to that logit times the change of the activation
//     (a ×2 Scale: edge × 1). This is what the graph predicts. "changed" then lists the
//     features whose input the edit moved: before = the context's activation, after = the
//     activation function applied to the new pre-activation (W_enc x + b_enc from the run's
//     own transcoder inputs), which the run did not propagate (what the feature would become,
//     not what was decoded).
//   Free (ours, not circuit-tracer's): attention and norms are recomputed and every layer's
//     features re-encoded from the run's own transcoder input (errors held at the context's
//     values); edits apply after the re-encoding at every layer. "changed" lists the
//     activations that were decoded.
//   Patch (circuit-tracer's feature_intervention): the real model runs, and at each layer with
//     edits the transcoder encodes that layer's (changing) input, the edits are applied, and
//     the decoder image of (edited - encoded) is added to mlp_out of every layer the edited
//     features write to: the MLP output is the real MLP's plus the change in decoder output.
//     Other features are not edited; they act only through the real MLPs. Two options, under
//     circuit-tracer's names:
//       freezeAttention (freeze_attention, default true): attention patterns are the
//         context's; norm denominators stay live.
//       constrainedLayers (constrained_layers, a range [first, end) of layers; none by
//         default): in those layers mlp_out is frozen at the context's value (plus, with a
//         skip connection, the skip's response to the changed input) plus the decoder image of
//         (edited - the context's activations), so the edits' effects do not propagate
//         through them; edits write only to target layers in the range (an edit whose targets
//         all lie outside it is refused); attention is frozen whatever freezeAttention says
//         (as in circuit-tracer), so freezeAttention = false with a range is refused. Layers
//         outside the range run their real MLPs. A range covering every layer also freezes
//         every norm denominator: direct effects, equal to Constrained up to rounding.
//     "changed" lists what the transcoders read from the run's own inputs (the activation
//     function of the new pre-activations), as for Constrained.
// InterventionResult::directEffects says whether a run was a direct-effects one.
//
// Units: logitDelta is the change of the model's logits (after a final soft-cap where the
// model has one); graph edges to logit nodes are in demeaned logits (the logit minus the
// vocabulary's mean logit, before any soft-cap), and demeanedLogitDelta gives the change in
// those units: (u_t - mean_v u_v) . (final_norm(resid_after) - final_norm(resid_before)),
// with the final norm's denominator as the run had it. Without a soft-cap it is
// logitDelta[t] minus the mean of the change over the vocabulary.
//
// The top-k and logits are read at the last prompt position.
//
// Generation (InterventionOptions::generate = N > 0): greedy, at most N tokens, stopping at
// EOS or at the model's last position. "before" is the model's own continuation
// (Model::generate). "after" runs the prompt with the edits, keeping its keys and values in a
// KV cache, then runs each generated token through the real model with its position -1 edits
// held: at the transcoder input hook the features are encoded, edited, and the decoder image
// of (edited - encoded) is added to mlp_out of every layer they write to (attention live).
// Generated tokens have no recorded error; this leaves the real MLP's error in place. How the
// prompt runs is InterventionResult::generationMode:
//   Free for the Constrained and Free regimes: the free replacement model with the edits (in
//     the Constrained regime too: frozen patterns do not extend to new tokens), so the first
//     generated token need not be "after"'s top token in the Constrained regime;
//   Patch for the Patch regime: the prompt runs exactly as "after" did (its frozen attention,
//     norms and constrained layers), and only new tokens run as above, as circuit-tracer's
//     feature_intervention_generate does (its freezing applies to the first generated token).

#include "cs/replacement.h"
#include "cs/token_score.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cs::intervention {

enum class Op { Set, Scale, Add };
enum class Regime { Constrained, Free, Patch };

const char* opName(Op op); // "set", "scale", "add"
// logits [vocab] (any device) -> the k most probable tokens, by probability.
std::vector<TokenScore> topTokens(const model::Model& model, const at::Tensor& logits, int64_t k);
const char* regimeName(Regime regime); // "constrained", "free", "patch"

struct FeatureEdit {
    int64_t layer = 0;
    int64_t position = -1; // -1: every position, generated tokens included
    int64_t feature = 0;
    Op op = Op::Set;
    double value = 0;
};

// Layers first <= l < end, as Python's range(first, end).
struct LayerRange {
    int64_t first = 0;
    int64_t end = 0;
    bool contains(int64_t layer) const { return layer >= first && layer < end; }
};

struct InterventionOptions {
    Regime regime = Regime::Constrained;
    // The Patch regime's options (see above); the other regimes refuse constrainedLayers and
    // ignore freezeAttention.
    bool freezeAttention = true;
    std::optional<LayerRange> constrainedLayers;
    int64_t topK = 10; // tokens listed before and after
    int64_t generate = 0; // greedy tokens generated before and after (0: none)
    int64_t maxChanged = 100; // the longest "changed" list
    // Tokens whose logitDelta and demeanedLogitDelta are reported besides the top-k lists'
    // (a table of chosen tokens' logits under edits). Ids outside the vocabulary are refused.
    std::vector<int64_t> watchTokens;
};

using cs::TokenScore; // cs/token_score.h

struct ChangedFeature {
    int64_t layer = 0;
    int64_t position = 0;
    int64_t feature = 0;
    double before = 0; // the context's activation
    double after = 0; // see the regimes above
};

struct InterventionResult {
    std::vector<TokenScore> before, after; // top-k at the last prompt position, by probability
    // after - before logit for every token in either top-k or in watchTokens (the model's logits).
    std::map<int64_t, double> logitDelta;
    // The same tokens' change in demeaned logits, the graph's units (see Units above).
    std::map<int64_t, double> demeanedLogitDelta;
    // The run computed direct effects only (Constrained, or Patch with every layer
    // constrained): the attribution graph's edges predict demeanedLogitDelta.
    bool directEffects = false;
    // How "after"'s continuation ran the prompt (see Generation above): Free or Patch.
    Regime generationMode = Regime::Free;
    // Features downstream of the edits whose activation changed (the edited ones left out),
    // largest |after - before| first, at most maxChanged.
    std::vector<ChangedFeature> changed;
    std::vector<int64_t> generatedBefore, generatedAfter; // new token ids
    std::string generationBefore, generationAfter; // their text
};

// Throws cs::Error for no edits, a layer, position or feature out of range, an edit at a held
// position, a non-finite value, topK < 1, a negative generate, a watched token outside the
// vocabulary, or Patch options that do not
// fit (an empty or out-of-range constrainedLayers, one without the Patch regime or with
// freezeAttention = false, an edit writing to no layer of it).
InterventionResult intervene(const attribution::ReplacementContext& context, const std::vector<FeatureEdit>& edits,
    const InterventionOptions& options = {});

} // namespace cs::intervention
