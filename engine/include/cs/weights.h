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

struct Partner {
    int64_t layer = 0;
    int64_t feature = 0;
    double virtualWeight = 0;
};

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

// "up" / "down" -> Direction; throws cs::Error otherwise.
Direction directionFromName(const std::string& name);

} // namespace cs::weights
