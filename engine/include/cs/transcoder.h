#pragma once
// Transcoders (docs/ARCHITECTURE.md §5): sparse dictionaries that stand in for a model's MLPs.
//
// A per-layer transcoder (PLT) feature at layer l reads the transcoder input x_l and writes to
// the MLP output of layer l alone; a cross-layer transcoder (CLT) feature at layer l writes to
// the MLP outputs of layers l..L-1:
//   a_l     = act(W_enc_l x_l + b_enc_l)                                  [n_features]
//   y_hat_t = sum_{l <= t} W_dec_{l->t}^T a_l + b_dec_t (+ skip_t x_t)    [d_model]
// Activations: JumpReLU (a = z where z > threshold, else 0), ReLU, TopK (the k largest of
// ReLU(z) per token and layer). Files: circuit-tracer's formats, read and written here
// (transcoder_io.cpp): a PLT set is layer_{i}.safetensors per layer, a CLT is W_enc_{i} /
// W_dec_{i}.safetensors per layer, each beside a config.yaml.

#include "cs/config.h"
#include "cs/model.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace cs::io {
class SafetensorsFile;
}

namespace cs::transcoder {

enum class Architecture { PerLayer, CrossLayer }; // config.yaml model_kind: transcoder_set, cross_layer_transcoder
enum class Activation { JumpReLU, ReLU, TopK }; // config.yaml activation: jump_relu, relu, topk

const char* architectureName(Architecture architecture); // "plt", "clt"
const char* activationName(Activation activation); // "jump_relu", "relu", "topk"

struct TranscoderConfig {
    Architecture architecture = Architecture::CrossLayer;
    Activation activation = Activation::JumpReLU;
    int64_t topK = 0; // TopK: features kept per token and layer
    int64_t nLayers = 0;
    int64_t dModel = 0;
    int64_t nFeatures = 0; // per layer
    bool skip = false; // a linear skip connection per layer (Paulo et al., 2025)
    // Where features read and write. Input: ResidMid, MlpNormalized (the pre-MLP norm's output
    // before its weight, TransformerLens's ln2.hook_normalized: GemmaScope sets) or MlpIn (the
    // weighted MLP input); output: MlpOut. The names are kept as the config.yaml spelled them
    // ("hook_resid_mid", "ln2.hook_normalized", "mlp.hook_in", ...) so a saved set says what it
    // said.
    model::Hook inputHook = model::Hook::MlpIn;
    model::Hook outputHook = model::Hook::MlpOut;
    std::string inputHookName = "mlp.hook_in";
    std::string outputHookName = "mlp.hook_out";
    std::string modelName; // config.yaml model_name (informative)
    std::string scan; // the set's identity for feature stores and graph metadata
};

// "hook_resid_mid", "blocks.{layer}.hook_resid_mid", "resid_mid" -> ResidMid;
// "ln2.hook_normalized", "mlp_normalized" -> MlpNormalized (before the norm's weight, as in
// TransformerLens); "mlp.hook_in", "hook_mlp_in", "mlp_in" -> MlpIn; "hook_mlp_out",
// "mlp.hook_out", "mlp_out" -> MlpOut. Any of them may carry the "blocks.{layer}." prefix.
// Throws cs::Error naming the hook when it is none of these.
model::Hook hookFromConfigName(const std::string& name);
// Whether features may read `hook`: ResidMid, MlpNormalized or MlpIn (model::MlpInputs::at).
bool readsMlpInput(model::Hook hook);

// One source layer's weights, float32 on the set's device.
struct LayerWeights {
    at::Tensor encoder; // [n_features, d_model]
    at::Tensor encoderBias; // [n_features]
    at::Tensor threshold; // [n_features], JumpReLU only
    at::Tensor decoder; // [n_features, n_out, d_model]; n_out = n_layers - layer (CLT) or 1 (PLT)
    at::Tensor decoderBias; // [d_model], added to this layer's output
    at::Tensor skip; // [d_model, d_model]: y_hat += x @ skip^T (undefined without skip)
};

class TranscoderSet {
public:
    struct LoadOptions {
        std::string device = "auto"; // cpu, cuda, auto
        // Keep decoders in the mapped files until first used (a CLT's decoders are most of it);
        // decoderRows() then reads just the rows asked for.
        bool lazyDecoders = true;
        // The layers of the model the set is for, when known: a `transcoders:` list longer than
        // this is refused before any of its files is read. Without it the limit is 4096.
        int64_t modelLayers = 0;
    };

    // Reads a folder in circuit-tracer's format (config.yaml + layer_{i} or W_enc_{i}/W_dec_{i}
    // safetensors); throws cs::Error naming the file and what is wrong with it.
    static std::shared_ptr<const TranscoderSet> load(const std::string& folder, const LoadOptions& options);
    static std::shared_ptr<const TranscoderSet> load(const std::string& folder);
    // A set from weights in memory (a trained one); checks every shape against config.
    static std::shared_ptr<const TranscoderSet> fromWeights(
        TranscoderConfig config, std::vector<LayerWeights> layers, const std::string& device = "cpu");

    const TranscoderConfig& config() const { return m_config; }
    const std::string& folder() const { return m_folder; }
    c10::Device device() const { return m_device; }
    int64_t nLayers() const { return m_config.nLayers; }
    int64_t nFeatures() const { return m_config.nFeatures; }
    // The output layers the features of `layer` write to: layer..L-1 (CLT) or layer (PLT).
    int64_t firstTarget(int64_t layer) const { return layer; }
    int64_t nTargets(int64_t layer) const;

    const at::Tensor& encoder(int64_t layer) const; // [n_features, d_model]
    const at::Tensor& encoderBias(int64_t layer) const; // [n_features]
    const at::Tensor& threshold(int64_t layer) const; // [n_features] (undefined unless JumpReLU)
    const at::Tensor& decoderBias(int64_t layer) const; // [d_model]
    const at::Tensor& skip(int64_t layer) const; // [d_model, d_model] (undefined without skip)
    // The whole decoder of a source layer, [n_features, n_targets, d_model] (loads it if lazy).
    at::Tensor decoder(int64_t layer) const;
    // Rows of it, [k, n_targets, d_model] for int64 ids [k]: read from the mapped file when lazy.
    at::Tensor decoderRows(int64_t layer, const at::Tensor& featureIds) const;
    // What source layer `source` writes to target layer `target`, [n_features, d_model].
    at::Tensor decoderTo(int64_t source, int64_t target) const;
    // The norm of every feature's decoder over all its targets, [n_features].
    at::Tensor decoderNorms(int64_t layer) const;

    // x [..., d_model] -> pre-activations [..., n_features] (W_enc x + b_enc).
    at::Tensor preActivations(int64_t layer, const at::Tensor& x) const;
    // pre [..., n_features] -> activations by the set's activation function.
    at::Tensor activate(int64_t layer, const at::Tensor& pre) const;
    at::Tensor encode(int64_t layer, const at::Tensor& x) const { return activate(layer, preActivations(layer, x)); }
    // The reconstruction of target layer t's output, [..., d_model], from the activations of
    // every layer <= t (acts[l] [..., n_features]; only l <= t are read, only l == t for a
    // PLT) and t's own input (read only by the skip connection).
    at::Tensor decode(int64_t target, const std::vector<at::Tensor>& acts, const at::Tensor& input) const;

    // Throws cs::Error saying what does not fit the model: layer count, d_model, hooks.
    void checkFits(const model::ModelConfig& model) const;

    // Writes the set in circuit-tracer's format (atomically per file; config.yaml last) with
    // tensors stored as dtype ("F32", "F16", "BF16"). Throws cs::Error.
    void save(const std::string& folder, const std::string& dtype = "F32") const;

    // Replaces every MLP of a forward pass by the set (the replacement model): pass the result
    // as ForwardOptions::mlpReplace. When acts is given, it receives each layer's activations
    // [batch, n_pos, n_features] (index = layer). Without an error term; the state lives in
    // the returned function, so use one per forward.
    model::MlpReplaceFn replacement(std::vector<at::Tensor>* acts = nullptr) const;

    struct Lazy; // decoders still in their files

private:
    TranscoderSet() = default;
    void validate() const; // every shape against m_config
    TranscoderConfig m_config;
    std::string m_folder;
    c10::Device m_device = c10::Device(c10::DeviceType::CPU);
    std::vector<LayerWeights> m_layers; // decoder undefined while lazy
    std::shared_ptr<Lazy> m_lazy;
    mutable std::mutex m_decoderMutex;
    friend struct TranscoderIo;
};

// The folder TRANSCODER names for MODEL: itself when it is a folder with a config.yaml,
// otherwise MODEL/transcoders/TRANSCODER (a set shipped with the model, e.g. "clt", "plt").
// Throws cs::Error listing the shipped sets when neither exists.
std::string resolveTranscoderFolder(const std::string& modelFolder, const std::string& transcoder);

} // namespace cs::transcoder
