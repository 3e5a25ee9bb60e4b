// Global weights (cs/weights.h): virtual weights between transcoder features, and the
// feature -> logit and embedding -> feature forms the feature store's cards use too.
#include "cs/weights.h"

#include "cs/error.h"
#include "cs/features.h"
#include "cs/model.h"
#include "cs/transcoder.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <map>

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

namespace {

// Every partner with a non-zero V, unsorted.
std::vector<Partner> allVirtualPartners(const model::Model& model, const transcoder::TranscoderSet& set, int64_t layer,
    int64_t feature, Direction direction)
{
    checkLayer(set, layer);
    if (feature < 0 || feature >= set.nFeatures())
        throw Error("feature " + str(feature) + " is out of range (the transcoder set has " + str(set.nFeatures())
            + " features per layer, 0.." + str(set.nFeatures() - 1) + ")");
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
    return all;
}

// The first `top` by |weight(kind)| (ties by layer and feature), in place.
void keepStrongest(std::vector<Partner>& list, Kind kind, int64_t top)
{
    const size_t keep = std::min(list.size(), static_cast<size_t>(top));
    std::partial_sort(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(keep), list.end(),
        [kind](const Partner& a, const Partner& b) {
            const double x = std::abs(a.weight(kind)), y = std::abs(b.weight(kind));
            if (x != y)
                return x > y;
            return a.layer != b.layer ? a.layer < b.layer : a.feature < b.feature;
        });
    list.resize(keep);
}

} // namespace

std::vector<Partner> virtualPartners(const model::Model& model, const transcoder::TranscoderSet& set, int64_t layer,
    int64_t feature, Direction direction, int64_t top)
{
    if (top < 1)
        throw Error("the number of partners must be at least 1, not " + str(top));
    std::vector<Partner> all = allVirtualPartners(model, set, layer, feature, direction);
    keepStrongest(all, Kind::Virtual, top);
    return all;
}

Partners partners(const model::Model& model, const transcoder::TranscoderSet& set, const features::FeatureStore* store,
    int64_t layer, int64_t feature, Direction direction, Kind kind, int64_t top)
{
    if (top < 1)
        throw Error("the number of partners must be at least 1, not " + str(top));
    const bool statistics = store && store->hasCoactivations();
    if (kind != Kind::Virtual && !statistics)
        throw Error(std::string("ranking partners by ") + (kind == Kind::Era ? "ERA" : "TWERA")
            + " needs a feature store with co-activation statistics"
            + (store ? " (" + store->path() + " has none: rebuild it with features build)" : " (none was found)"));
    if (store) {
        const features::StoreInfo info = store->info();
        if (info.nLayers != set.nLayers() || info.nFeatures != set.nFeatures())
            throw Error("the feature store " + store->path() + " is of " + str(info.nLayers) + " layers x "
                + str(info.nFeatures) + " features, not of this transcoder set's " + str(set.nLayers()) + " x "
                + str(set.nFeatures()));
    }
    std::vector<Partner> all = allVirtualPartners(model, set, layer, feature, direction);
    Partners out;
    if (statistics) {
        const bool up = direction == Direction::Up;
        const features::CoActivationList list = store->coactivations(layer, feature, up);
        out.coactivating = list.partners;
        out.kept = static_cast<int64_t>(list.kept.size());
        const auto self = store->totals(layer, feature);
        // E[.] over the build's token positions; E[a_t] of the target (this feature, or each partner).
        const double tokens = self && self->tokens > 0 ? static_cast<double>(self->tokens) : 1.0;
        std::map<std::pair<int64_t, int64_t>, const features::CoActivation*> stats;
        for (const auto& c : list.kept)
            stats[{ c.layer, c.feature }] = &c;
        const bool keptAll = list.partners == out.kept; // then a pair not listed never fired together
        for (Partner& p : all) {
            const auto it = stats.find({ p.layer, p.feature });
            if (it == stats.end()) {
                p.statistics = keptAll;
                continue;
            }
            const features::CoActivation& c = *it->second;
            double targetSum = self ? self->actSum : 0.0;
            if (!up) {
                const auto target = store->totals(p.layer, p.feature);
                targetSum = target ? target->actSum : 0.0;
            }
            p.statistics = true;
            p.coactivations = c.count;
            p.era = c.sourceSum / tokens * p.virtualWeight;
            p.twera = targetSum > 0 ? c.productSum / targetSum * p.virtualWeight : 0.0;
        }
        if (kind != Kind::Virtual) // the candidates are the kept pairs: the others' ERA is not known here
            all.erase(std::remove_if(all.begin(), all.end(), [](const Partner& p) { return p.coactivations == 0; }),
                all.end());
    }
    keepStrongest(all, kind, top);
    out.partners = std::move(all);
    return out;
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

Kind kindFromName(const std::string& name)
{
    if (name == "virtual")
        return Kind::Virtual;
    if (name == "era")
        return Kind::Era;
    if (name == "twera")
        return Kind::Twera;
    throw Error("--kind must be virtual, era or twera, not \"" + name + "\"");
}

const char* kindName(Kind kind)
{
    return kind == Kind::Era ? "era" : kind == Kind::Twera ? "twera" : "virtual";
}

at::Tensor neuronToLogits(const model::Model& model, int64_t layer)
{
    const auto& c = model.config();
    if (layer < 0 || layer >= c.nLayers)
        throw Error("layer " + str(layer) + " is outside the model's " + str(c.nLayers) + " layers");
    at::NoGradGuard noGrad;
    const std::string prefix = "layers." + str(layer) + ".";
    at::Tensor direction = model.weight(prefix + "mlp.down.weight").t(); // [d_mlp, d_model]
    // A post-MLP norm (Gemma 2) scales the output by its weight over a denominator of the
    // whole output; the weight is the part that belongs to each direction.
    if (model.hasWeight(prefix + "mlp_post_norm.weight"))
        direction = direction * normWeight(model, prefix + "mlp_post_norm.weight");
    direction = direction * normWeight(model, "final_norm.weight");
    return at::matmul(direction, model.weight("unembed.weight").t()).to(at::kCPU, at::kFloat);
}

at::Tensor embeddingToNeurons(const model::Model& model, int64_t layer)
{
    const auto& c = model.config();
    if (layer < 0 || layer >= c.nLayers)
        throw Error("layer " + str(layer) + " is outside the model's " + str(c.nLayers) + " layers");
    at::NoGradGuard noGrad;
    // Every token as a one-token prompt whose residual stream, where the layer's MLP reads it, is
    // its embedding alone; the model's own MLP then gives the neurons' values.
    at::Tensor out = at::empty({ c.dMlp, c.vocabSize }, at::kFloat);
    const int64_t chunk = 4096;
    for (int64_t first = 0; first < c.vocabSize; first += chunk) {
        const int64_t n = std::min(chunk, c.vocabSize - first);
        const at::Tensor ids = at::arange(first, first + n, at::kLong).to(model.device()).unsqueeze(1); // [n, 1]
        at::Tensor embedded, hidden;
        model::ForwardOptions fo;
        fo.hook = [&](int64_t l, model::Hook h, at::Tensor& value) {
            if (l == 0 && h == model::Hook::ResidPre)
                embedded = value;
            if (l == layer && h == model::Hook::ResidMid)
                value = embedded;
            if (l == layer && h == model::Hook::MlpHidden)
                hidden = value.select(1, 0).t().to(at::kCPU, at::kFloat); // [d_mlp, n]
        };
        model.forward(ids, fo);
        out.narrow(1, first, n).copy_(hidden);
    }
    return out;
}

} // namespace cs::weights
