#pragma once
// Global weights (docs/ARCHITECTURE.md §7.5): the paper's second lens, the connections between
// transcoder features that hold across all prompts, read from the weights alone.
//
// Virtual weights along the residual-direct path: a source feature s at layer l_s writes its
// decoder vectors to the MLP outputs of layers l_s .. (a CLT) or of l_s alone (a PLT); a
// target feature t at layer l_t > l_s reads the residual stream before layer l_t's MLP. So
//   V_st = < sum_{l_s <= l < l_t} W_dec^{s -> l}, W_enc^t (.) g_{l_t} >
// where g_{l_t} is what the target's input hook multiplies the residual by, element-wise,
// besides the norm's denominator: the pre-MLP norm's weight for features reading mlp.hook_in,
// 1 for hook_resid_mid and for ln2.hook_normalized (before the weight). The denominator (the
// residual's RMS at that position) is left out: for features that read a normalized input, V is
// the pre-activation change per unit the source writes, in units of that RMS (multiply by
// 1 / rms to compare across layers). Attention's paths between positions are not part of it.
//
// ERA and TWERA (the paper's expected residual attribution and its target-weighted form) weigh
// V by how the two features fire together on real text, from the feature store's co-activation
// statistics (cs/features.h; E over every token position of the build):
//   ERA_st   = E[a_s 1(a_t > 0)] V_st         TWERA_st = E[a_s a_t] / E[a_t] V_st
//
// Two more forms use the same reading and writing: a feature's summed decoders through the
// final norm's weight and the unembedding (which output tokens it promotes), and a token's
// embedding through a layer's encoder (which tokens excite it on their own).

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace cs {
namespace model {
class Model;
}
namespace transcoder {
class TranscoderSet;
}
namespace features {
class FeatureStore;
}
} // namespace cs

namespace cs::weights {

// The element-wise factor of layer `layer`'s feature input (g above), [d_model] float32 on the
// set's device; undefined where there is none (the factor is 1).
at::Tensor inputFactor(const model::Model& model, const transcoder::TranscoderSet& set, int64_t layer);

// V for every feature of sourceLayer (rows) against every feature of targetLayer (columns),
// [n_features, n_features] float32; zeros when targetLayer <= sourceLayer (no residual-direct
// path). Throws cs::Error for a layer out of range.
at::Tensor virtualWeights(
    const model::Model& model, const transcoder::TranscoderSet& set, int64_t sourceLayer, int64_t targetLayer);

enum class Direction { Up, Down }; // up: the sources a feature reads; down: the targets it writes to

enum class Kind { Virtual, Era, Twera }; // what partners are ranked by

struct Partner {
    int64_t layer = 0;
    int64_t feature = 0;
    double virtualWeight = 0;
    // From the feature store (statistics true): ERA, TWERA and the token positions where both
    // fired. False when there is no store with co-activation statistics, or the store did not
    // keep this pair (it keeps each feature's strongest partners).
    bool statistics = false;
    double era = 0, twera = 0;
    int64_t coactivations = 0;
    double weight(Kind kind) const { return kind == Kind::Era ? era : kind == Kind::Twera ? twera : virtualWeight; }
};

struct Partners {
    std::vector<Partner> partners; // by |weight(kind)|, largest first
    // On this side, the features that fired with it at all, and how many the store kept (-1 and
    // -1 without co-activation statistics).
    int64_t coactivating = -1, kept = -1;
};

// The neuron basis's forms (BuildOptions::basis "neurons"): each MLP neuron of `layer`'s down-
// projection column through the final norm's weight and the unembedding, [d_mlp, vocab]; and
// each neuron's value when the residual stream the layer's MLP reads is one token's embedding
// (times the embedding scale) alone, the model's own MLP running on it (its norm, gate and
// nonlinearity): [d_mlp, vocab]. Both float32 on the CPU.
at::Tensor neuronToLogits(const model::Model& model, int64_t layer);
at::Tensor embeddingToNeurons(const model::Model& model, int64_t layer);

// The top partners of feature (layer, feature) by |V|, largest first, at most `top`: up, every
// feature of the layers before; down, every feature of the layers after. Throws cs::Error for a
// feature out of range or top < 1.
std::vector<Partner> virtualPartners(const model::Model& model, const transcoder::TranscoderSet& set, int64_t layer,
    int64_t feature, Direction direction, int64_t top);

// Each feature of `layer`'s summed decoders through the final norm's weight and the unembedding,
// [n_features, vocab] float32 (on the CPU); only the features `ids` (int64 [k]) when given,
// [k, vocab], so one feature's plot does not cost a whole layer's (n_features x vocab floats).
at::Tensor featureToLogits(
    const model::Model& model, const transcoder::TranscoderSet& set, int64_t layer, const at::Tensor& ids = {});
// Each token's embedding (times the model's embedding scale) as `layer`'s features would read it
// alone (through the layer's input norm when they read there), through the encoder:
// [n_features, vocab] float32 (on the CPU); [k, vocab] for the features `ids` when given.
at::Tensor embeddingToFeatures(
    const model::Model& model, const transcoder::TranscoderSet& set, int64_t layer, const at::Tensor& ids = {});

// The top partners of feature (layer, feature) by |V|, |ERA| or |TWERA|, at most `top`, with
// every number the store has for each. By V the candidates are every feature of the layers on
// that side; by ERA or TWERA they are the partners the store kept (a pair that never fired
// together has ERA = TWERA = 0). store may be null for Kind::Virtual. Throws cs::Error for a
// feature out of range, top < 1, ERA / TWERA without a store with co-activation statistics,
// or a store of another shape than the set.
Partners partners(const model::Model& model, const transcoder::TranscoderSet& set, const features::FeatureStore* store,
    int64_t layer, int64_t feature, Direction direction, Kind kind, int64_t top);

// "up" / "down" -> Direction; throws cs::Error otherwise.
Direction directionFromName(const std::string& name);
// "virtual" / "era" / "twera" <-> Kind; throws cs::Error for another name.
Kind kindFromName(const std::string& name);
const char* kindName(Kind kind);

} // namespace cs::weights
