#include "cs/transcoder.h"

#include "cs/error.h"

#include <ATen/ATen.h>

#include <filesystem>

namespace cs::transcoder {

namespace fs = std::filesystem;

const char* architectureName(Architecture architecture)
{
    return architecture == Architecture::CrossLayer ? "clt" : "plt";
}

const char* activationName(Activation activation)
{
    switch (activation) {
    case Activation::JumpReLU:
        return "jump_relu";
    case Activation::ReLU:
        return "relu";
    case Activation::TopK:
        return "topk";
    }
    return "?";
}

model::Hook hookFromConfigName(const std::string& name)
{
    std::string n = name;
    // "blocks.{layer}.hook_resid_mid" and "blocks.3.hook_resid_mid" name the same point.
    if (n.rfind("blocks.", 0) == 0) {
        const auto dot = n.find('.', 7);
        if (dot != std::string::npos)
            n = n.substr(dot + 1);
    }
    if (n == "hook_resid_mid" || n == "resid_mid")
        return model::Hook::ResidMid;
    // TransformerLens's ln2.hook_normalized is the pre-MLP norm's output before its weight:
    // RMSNorm fires it on x / scale and only then multiplies by w (Gemma's 1 + w folded in);
    // LayerNorm does the same in TransformerLens 3 and 4 (2.x fired it after w and b). circuit-
    // tracer hooks blocks.L.ln2.hook_normalized for GemmaScope sets (fold_ln=False), so those
    // features read x / rms(x), not the MLP's input.
    // It is a hook of its own (Hook::MlpNormalized, which the forward pass emits on its way to
    // mlp_in) rather than the weight folded into the encoder (W_enc / w, b_enc adjusted for a
    // LayerNorm bias): folded, the set would no longer be the one loaded (encoder(), save(),
    // feature stores and interventions read those weights), a zero weight would have to be
    // refused, and the rounding would change; as a hook, only the explicit pass's frozen norm
    // needs to know (it leaves the weight out).
    if (n == "ln2.hook_normalized" || n == "mlp_normalized")
        return model::Hook::MlpNormalized;
    if (n == "mlp.hook_in" || n == "hook_mlp_in" || n == "mlp_in")
        return model::Hook::MlpIn;
    if (n == "hook_mlp_out" || n == "mlp.hook_out" || n == "mlp_out")
        return model::Hook::MlpOut;
    throw Error("transcoder hook \"" + name
        + "\" is not supported: features read resid_mid, the normalized MLP input before the norm's weight "
          "(ln2.hook_normalized) or after it (mlp.hook_in), and write mlp_out");
}

bool readsMlpInput(model::Hook hook)
{
    return hook == model::Hook::ResidMid || hook == model::Hook::MlpNormalized || hook == model::Hook::MlpIn;
}

std::shared_ptr<const TranscoderSet> TranscoderSet::load(const std::string& folder)
{
    return load(folder, LoadOptions());
}

std::shared_ptr<const TranscoderSet> TranscoderSet::fromWeights(
    TranscoderConfig config, std::vector<LayerWeights> layers, const std::string& device)
{
    std::shared_ptr<TranscoderSet> set(new TranscoderSet());
    set->m_config = std::move(config);
    set->m_device = model::resolveDevice(device);
    if (static_cast<int64_t>(layers.size()) != set->m_config.nLayers)
        throw Error("transcoder set: " + std::to_string(layers.size()) + " layers given, config says "
            + std::to_string(set->m_config.nLayers));
    for (auto& l : layers) {
        auto move = [&](at::Tensor& t) {
            if (t.defined())
                t = t.to(set->m_device, at::kFloat).contiguous();
        };
        move(l.encoder);
        move(l.encoderBias);
        move(l.threshold);
        move(l.decoder);
        move(l.decoderBias);
        move(l.skip);
    }
    set->m_layers = std::move(layers);
    set->validate();
    return set;
}

namespace {

void expectShape(const at::Tensor& t, const std::vector<int64_t>& shape, const std::string& what, int64_t layer)
{
    const std::string where = "transcoder layer " + std::to_string(layer) + ": " + what;
    if (!t.defined())
        throw Error(where + " is missing");
    if (t.sizes().vec() != shape) {
        std::string want = "[", got = "[";
        for (size_t i = 0; i < shape.size(); ++i)
            want += (i ? ", " : "") + std::to_string(shape[i]);
        for (int64_t i = 0; i < t.dim(); ++i)
            got += (i ? ", " : "") + std::to_string(t.size(i));
        throw Error(where + " has shape " + got + "], expected " + want + "]");
    }
}

} // namespace

void TranscoderSet::validate() const
{
    const auto& c = m_config;
    if (c.nLayers <= 0 || c.dModel <= 0 || c.nFeatures <= 0)
        throw Error("transcoder set: layers, d_model and features must be positive");
    if (c.activation == Activation::TopK && (c.topK <= 0 || c.topK > c.nFeatures))
        throw Error("transcoder set: topk activation needs 0 < k <= n_features, got k = " + std::to_string(c.topK));
    for (int64_t l = 0; l < c.nLayers; ++l) {
        const auto& w = m_layers[static_cast<size_t>(l)];
        expectShape(w.encoder, { c.nFeatures, c.dModel }, "encoder", l);
        expectShape(w.encoderBias, { c.nFeatures }, "encoder bias", l);
        expectShape(w.decoderBias, { c.dModel }, "decoder bias", l);
        if (c.activation == Activation::JumpReLU)
            expectShape(w.threshold, { c.nFeatures }, "threshold", l);
        if (c.skip)
            expectShape(w.skip, { c.dModel, c.dModel }, "skip", l);
        if (w.decoder.defined())
            expectShape(w.decoder, { c.nFeatures, nTargets(l), c.dModel }, "decoder", l);
        else if (!m_lazy)
            throw Error("transcoder layer " + std::to_string(l) + ": decoder is missing");
    }
}

int64_t TranscoderSet::nTargets(int64_t layer) const
{
    return m_config.architecture == Architecture::CrossLayer ? m_config.nLayers - layer : 1;
}

const at::Tensor& TranscoderSet::encoder(int64_t layer) const
{
    return m_layers.at(static_cast<size_t>(layer)).encoder;
}
const at::Tensor& TranscoderSet::encoderBias(int64_t layer) const
{
    return m_layers.at(static_cast<size_t>(layer)).encoderBias;
}
const at::Tensor& TranscoderSet::threshold(int64_t layer) const
{
    return m_layers.at(static_cast<size_t>(layer)).threshold;
}
const at::Tensor& TranscoderSet::decoderBias(int64_t layer) const
{
    return m_layers.at(static_cast<size_t>(layer)).decoderBias;
}
const at::Tensor& TranscoderSet::skip(int64_t layer) const
{
    return m_layers.at(static_cast<size_t>(layer)).skip;
}

at::Tensor TranscoderSet::decoderTo(int64_t source, int64_t target) const
{
    if (target < source || target >= source + nTargets(source))
        throw Error(
            "transcoder layer " + std::to_string(source) + " does not write to layer " + std::to_string(target));
    return decoder(source).select(1, target - source);
}

at::Tensor TranscoderSet::decoderNorms(int64_t layer) const
{
    return decoder(layer).flatten(1).norm(2, { 1 });
}

at::Tensor TranscoderSet::preActivations(int64_t layer, const at::Tensor& x) const
{
    const auto& w = m_layers.at(static_cast<size_t>(layer));
    return at::linear(x.to(m_device, at::kFloat), w.encoder, w.encoderBias);
}

at::Tensor TranscoderSet::activate(int64_t layer, const at::Tensor& pre) const
{
    switch (m_config.activation) {
    case Activation::JumpReLU:
        return pre * pre.gt(threshold(layer));
    case Activation::ReLU:
        return at::relu(pre);
    case Activation::TopK: {
        const auto top = at::topk(pre, m_config.topK, -1);
        return at::zeros_like(pre).scatter_(-1, std::get<1>(top), at::relu(std::get<0>(top)));
    }
    }
    return pre;
}

at::Tensor TranscoderSet::decode(int64_t target, const std::vector<at::Tensor>& acts, const at::Tensor& input) const
{
    const int64_t first = m_config.architecture == Architecture::CrossLayer ? 0 : target;
    at::Tensor out;
    for (int64_t s = first; s <= target; ++s) {
        const auto part = at::matmul(acts.at(static_cast<size_t>(s)), decoderTo(s, target));
        out = out.defined() ? out + part : part;
    }
    out = out + decoderBias(target);
    if (m_config.skip)
        out = out + at::matmul(input.to(m_device, at::kFloat), skip(target).t());
    return out;
}

void TranscoderSet::checkFits(const model::ModelConfig& model) const
{
    const auto& c = m_config;
    const std::string what = "transcoder set " + (m_folder.empty() ? std::string("in memory") : m_folder);
    if (c.nLayers != model.nLayers)
        throw Error(
            what + " has " + std::to_string(c.nLayers) + " layers but the model has " + std::to_string(model.nLayers));
    if (c.dModel != model.dModel)
        throw Error(what + " reads vectors of size " + std::to_string(c.dModel) + " but the model's d_model is "
            + std::to_string(model.dModel));
    if (!readsMlpInput(c.inputHook))
        throw Error(what + ": features must read resid_mid, mlp_normalized or mlp_in, not " + c.inputHookName);
    if (c.outputHook != model::Hook::MlpOut)
        throw Error(what + ": features must write mlp_out, not " + c.outputHookName);
}

model::MlpReplaceFn TranscoderSet::replacement(std::vector<at::Tensor>* actsOut) const
{
    // The activations of layers already run: CLT decoders of later layers read them.
    auto acts = std::make_shared<std::vector<at::Tensor>>(static_cast<size_t>(m_config.nLayers));
    return [this, acts, actsOut](int64_t layer, const model::MlpInputs& inputs) {
        const at::Tensor& input = inputs.at(m_config.inputHook);
        (*acts)[static_cast<size_t>(layer)] = encode(layer, input);
        if (actsOut) {
            actsOut->resize(static_cast<size_t>(m_config.nLayers));
            (*actsOut)[static_cast<size_t>(layer)] = (*acts)[static_cast<size_t>(layer)];
        }
        return decode(layer, *acts, input).to(input.scalar_type());
    };
}

std::string resolveTranscoderFolder(const std::string& modelFolder, const std::string& transcoder)
{
    if (fs::is_regular_file(fs::path(transcoder) / "config.yaml"))
        return transcoder;
    const fs::path shipped = fs::path(modelFolder) / "transcoders" / transcoder;
    if (transcoder.find('/') == std::string::npos && fs::is_regular_file(shipped / "config.yaml"))
        return shipped.string();
    std::string names;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(fs::path(modelFolder) / "transcoders", ec))
        if (fs::is_regular_file(e.path() / "config.yaml"))
            names += (names.empty() ? "" : ", ") + e.path().filename().string();
    throw Error("no transcoder set \"" + transcoder + "\": not a folder with a config.yaml"
        + (names.empty() ? std::string(", and the model ships none") : ", and the model ships only: " + names));
}

} // namespace cs::transcoder
