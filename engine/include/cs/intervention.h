#pragma once
// Interventions on transcoder features (DESIGN §5): set, scale or add to feature activations
// of one prompt's replacement model (replacement.h) and read what the model would say then.
//
// Edits: Set a := value; Scale a := a * value (0 ablates, a negative factor suppresses);
// Add a := a + value (injects a feature, also where it was inactive). Edits apply in the
// order given, so a Set followed by a Scale of the same feature composes. Position -1 edits
// every position (every generated token too); the held BOS position (ReplacementContext::
// heldPositions) has no features and cannot be edited.
//
// Two regimes:
//   Constrained: attention patterns, norm denominators and every other feature are frozen at
//     the context's values (runReplacement frozen, not recomputed): only direct effects, the
//     affine model the attribution graph describes, so logit changes are exactly linear in
//     the edits. "changed" then lists the features whose input the edit moved: before = the
//     context's activation, after = the activation function applied to the new
//     pre-activation (W_enc x + b_enc from the run's own transcoder inputs), which the run
//     did not propagate (what the feature would become, not what was decoded).
//   Free: attention and norms are recomputed and every layer's features re-encoded from the
//     run's own transcoder input (errors held at the context's values); edits apply after
//     the re-encoding at every layer. "changed" lists the activations that were decoded.
//
// The top-k and logits are read at the last prompt position.
//
// Generation (InterventionOptions::generate = N > 0): greedy, at most N tokens, stopping at
// EOS or at the model's last position. "before" is the model's own continuation
// (Model::generate). "after" runs the prompt through the free replacement model with the
// edits (in either regime: frozen patterns do not extend to new tokens), keeping its keys and
// values in a KV cache, then runs each generated token through the real model with its
// position -1 edits held: at the transcoder input hook the features are encoded, edited, and
// the decoder image of (edited - encoded) is added to mlp_out of every layer they write to.
// Generated tokens have no recorded error; this leaves the real MLP's error in place.

#include "cs/replacement.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cs::intervention {

enum class Op { Set, Scale, Add };
enum class Regime { Constrained, Free };

const char* opName(Op op); // "set", "scale", "add"
const char* regimeName(Regime regime); // "constrained", "free"

struct FeatureEdit {
    int64_t layer = 0;
    int64_t position = -1; // -1: every position, generated tokens included
    int64_t feature = 0;
    Op op = Op::Set;
    double value = 0;
};

struct InterventionOptions {
    Regime regime = Regime::Constrained;
    int64_t topK = 10; // tokens listed before and after
    int64_t generate = 0; // greedy tokens generated before and after (0: none)
    int64_t maxChanged = 100; // the longest "changed" list
};

struct TokenScore {
    int64_t id = 0;
    std::string token; // the token's text ("" without a tokenizer)
    double logit = 0;
    double prob = 0;
};

struct ChangedFeature {
    int64_t layer = 0;
    int64_t position = 0;
    int64_t feature = 0;
    double before = 0; // the context's activation
    double after = 0; // see the regimes above
};

struct InterventionResult {
    std::vector<TokenScore> before, after; // top-k at the last prompt position, by probability
    // after - before logit for every token in either top-k.
    std::map<int64_t, double> logitDelta;
    // Features downstream of the edits whose activation changed (the edited ones left out),
    // largest |after - before| first, at most maxChanged.
    std::vector<ChangedFeature> changed;
    std::vector<int64_t> generatedBefore, generatedAfter; // new token ids
    std::string generationBefore, generationAfter; // their text
};

// Throws cs::Error for no edits, a layer, position or feature out of range, an edit at a held
// position, a non-finite value, topK < 1 or a negative generate.
InterventionResult intervene(const attribution::ReplacementContext& context, const std::vector<FeatureEdit>& edits,
    const InterventionOptions& options = {});

} // namespace cs::intervention
