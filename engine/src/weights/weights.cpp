// Global weights (cs/weights.h): virtual weights between transcoder features, and the
// feature -> logit and embedding -> feature forms the feature store's cards use too.
#include "cs/weights.h"

#include "cs/error.h"
#include "cs/model.h"
#include "cs/transcoder.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>

namespace cs::weights {

namespace {

std::string str(int64_t n)
{
    return std::to_string(n);
}

void checkLayer(const transcoder::TranscoderSet& set, int64_t layer)
{
    if (layer < 0 || layer >= set.nLayers())
        throw Error("layer " + str(layer) + " is out of range (the transcoder set has " + str(set.nLayers())
            + " layers, 0.." + str(set.nLayers() - 1) + ")");
}

// A norm weight as the forward pass applies it (gemma's norms add 1).
at::Tensor normWeight(const model::Model& model, const std::string& name)
{
    at::Tensor w = model.weight(name);
    return model.config().normKind == model::NormKind::RmsOnePlus ? w + 1 : w;
}

// What source layer `source` writes to the residual stream before target layer `target`'s MLP:
// the sum of its decoders to layers source .. target - 1, [n_features, d_model]; undefined when
// it writes nothing there.
at::Tensor writtenBefore(const transcoder::TranscoderSet& set, int64_t source, int64_t target)
{
    at::Tensor sum;
    const int64_t last = std::min(target - 1, source + set.nTargets(source) - 1);
    for (int64_t l = source; l <= last; ++l) {
        const at::Tensor part = set.decoderTo(source, l);
        sum = sum.defined() ? sum + part : part;
    }
    return sum;
}

// The encoder of `layer` as it reads the residual stream: W_enc (.) g, [n_features, d_model].
at::Tensor effectiveEncoder(const model::Model& model, const transcoder::TranscoderSet& set, int64_t layer)
{
    const at::Tensor g = inputFactor(model, set, layer);
    return g.defined() ? set.encoder(layer) * g.unsqueeze(0) : set.encoder(layer);
}

} // namespace

at::Tensor inputFactor(const model::Model& model, const transcoder::TranscoderSet& set, int64_t layer)
{
    checkLayer(set, layer);
    if (set.config().inputHook != model::Hook::MlpIn)
        return {};
    return normWeight(model, "layers." + str(layer) + ".mlp_norm.weight").to(set.device(), at::kFloat);
}

at::Tensor virtualWeights(
    const model::Model& model, const transcoder::TranscoderSet& set, int64_t sourceLayer, int64_t targetLayer)
{
    checkLayer(set, sourceLayer);
    checkLayer(set, targetLayer);
    at::NoGradGuard noGrad;
    const int64_t F = set.nFeatures();
    const at::Tensor written = targetLayer > sourceLayer ? writtenBefore(set, sourceLayer, targetLayer) : at::Tensor();
    if (!written.defined())
        return at::zeros({ F, F }, at::TensorOptions().dtype(at::kFloat).device(set.device()));
    return at::matmul(written, effectiveEncoder(model, set, targetLayer).t());
}

std::vector<Partner> virtualPartners(const model::Model& model, const transcoder::TranscoderSet& set, int64_t layer,
    int64_t feature, Direction direction, int64_t top)
{
    checkLayer(set, layer);
    if (feature < 0 || feature >= set.nFeatures())
        throw Error("feature " + str(feature) + " is out of range (the transcoder set has " + str(set.nFeatures())
            + " features per layer, 0.." + str(set.nFeatures() - 1) + ")");
    if (top < 1)
        throw Error("the number of partners must be at least 1, not " + str(top));
    at::NoGradGuard noGrad;
    const at::Tensor id = at::tensor(std::vector<int64_t> { feature }, at::kLong).to(set.device());
    std::vector<at::Tensor> scores; // per partner layer [n_features]
    std::vector<int64_t> layers;
    if (direction == Direction::Down) {
        // The feature's writes reaching each later layer, against that layer's encoder.
        const at::Tensor rows = set.decoderRows(layer, id).select(0, 0); // [n_targets, d_model]
        at::Tensor written;
        for (int64_t target = layer + 1; target < set.nLayers(); ++target) {
            const int64_t t = target - 1 - layer; // the decoder to layer target - 1
            if (t < rows.size(0))
                written = written.defined() ? written + rows.select(0, t) : rows.select(0, t);
            if (!written.defined())
                continue;
            scores.push_back(at::mv(effectiveEncoder(model, set, target), written));
            layers.push_back(target);
        }
    } else {
        // The feature's reading of the residual, against each earlier layer's writes.
        const at::Tensor read = effectiveEncoder(model, set, layer).select(0, feature); // [d_model]
        for (int64_t source = 0; source < layer; ++source) {
            const at::Tensor written = writtenBefore(set, source, layer);
            if (!written.defined())
                continue;
            scores.push_back(at::mv(written, read));
            layers.push_back(source);
        }
    }
    std::vector<Partner> all;
    for (size_t k = 0; k < scores.size(); ++k) {
        const at::Tensor s = scores[k].to(at::kCPU, at::kDouble).contiguous();
        const double* v = s.data_ptr<double>();
        for (int64_t f = 0; f < s.size(0); ++f)
            if (v[f] != 0)
                all.push_back({ layers[k], f, v[f] });
    }
    const size_t keep = std::min(all.size(), static_cast<size_t>(top));
    std::partial_sort(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(keep), all.end(),
        [](const Partner& a, const Partner& b) { return std::abs(a.virtualWeight) > std::abs(b.virtualWeight); });
    all.resize(keep);
    return all;
}

at::Tensor featureToLogits(
    const model::Model& model, const transcoder::TranscoderSet& set, int64_t layer, const at::Tensor& ids)
{
    checkLayer(set, layer);
    at::NoGradGuard noGrad;
    const at::Tensor& unembed = model.weight("unembed.weight"); // [vocab, d_model]
    const at::Tensor decoders = ids.defined() ? set.decoderRows(layer, ids.to(set.device(), at::kLong))
                                              : set.decoder(layer); // [k, n_targets, d_model]
    const at::Tensor direction = decoders.sum(1) * normWeight(model, "final_norm.weight"); // [k, d_model]
    return at::matmul(direction, unembed.t()).cpu();
}

at::Tensor embeddingToFeatures(
    const model::Model& model, const transcoder::TranscoderSet& set, int64_t layer, const at::Tensor& ids)
{
    checkLayer(set, layer);
    at::NoGradGuard noGrad;
    const auto& mc = model.config();
    at::Tensor x = model.weight("embed.weight") * static_cast<float>(mc.embedScale); // [vocab, d_model]
    const model::Hook hook = set.config().inputHook;
    if (hook == model::Hook::MlpNormalized || hook == model::Hook::MlpIn) {
        const std::string prefix = "layers." + str(layer) + ".mlp_norm.";
        const at::Tensor centered = mc.normKind == model::NormKind::Layer ? x - x.mean(-1, true) : x;
        x = centered / at::sqrt(centered.pow(2).mean(-1, true) + mc.normEps);
        // mlp_normalized stops here, before the norm's weight; mlp_in goes on.
        if (hook == model::Hook::MlpIn) {
            x = x * normWeight(model, prefix + "weight");
            if (model.hasWeight(prefix + "bias"))
                x = x + model.weight(prefix + "bias");
        }
    }
    const at::Tensor encoder
        = ids.defined() ? set.encoder(layer).index_select(0, ids.to(set.device(), at::kLong)) : set.encoder(layer);
    return at::matmul(encoder, x.t()).cpu();
}

Direction directionFromName(const std::string& name)
{
    if (name == "up")
        return Direction::Up;
    if (name == "down")
        return Direction::Down;
    throw Error(
        "--direction must be up (the features a feature reads) or down (those it writes to), not \"" + name + "\"");
}

} // namespace cs::weights
