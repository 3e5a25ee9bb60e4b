// `bench --large` (and `bench --device cuda`): attribution at the size researchers trace on a
// GPU. A model with random weights of Gemma-2-2B's shape (26 layers, d_model 2304, 8 heads of
// 256 with 4 KV heads, d_mlp 9216, a 256,000-token vocabulary, soft-capping and the sliding
// window) and a per-layer transcoder of 16,384 JumpReLU features per layer, both made in memory
// on the device. The thresholds are set per layer from the model's own activations on the
// prompt so that about `l0` features fire per token and layer, as in trained transcoders
// (GemmaScope's have L0 in the tens to low hundreds); random thresholds would make half of
// them fire. Then a 64-token graph with 8,192 feature nodes, and a long prompt.
#include "commands.h"

#include "cs/attribution.h"
#include "cs/error.h"
#include "cs/graph.h"
#include "cs/model.h"
#include "cs/plugin.h"
#include "cs/replacement.h"
#include "cs/transcoder.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>

namespace cs::cli {

namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

void synchronize(const c10::Device& device)
{
    // A value read back waits for every kernel queued before it on the device.
    if (device.is_cuda())
        at::zeros({ 1 }, at::TensorOptions().device(device)).sum().item<float>();
}

// Gemma-2-2B's config.json, as Hugging Face publishes it (google/gemma-2-2b).
Json gemma2_2bConfig()
{
    return { { "model_type", "gemma2" }, { "architectures", { "Gemma2ForCausalLM" } }, { "hidden_size", 2304 },
        { "intermediate_size", 9216 }, { "num_hidden_layers", 26 }, { "num_attention_heads", 8 },
        { "num_key_value_heads", 4 }, { "head_dim", 256 }, { "vocab_size", 256000 },
        { "max_position_embeddings", 8192 }, { "rms_norm_eps", 1e-6 }, { "rope_theta", 10000.0 },
        { "attn_logit_softcapping", 50.0 }, { "final_logit_softcapping", 30.0 }, { "query_pre_attn_scalar", 256 },
        { "sliding_window", 4096 }, { "hidden_activation", "gelu_pytorch_tanh" }, { "tie_word_embeddings", true },
        { "bos_token_id", 2 }, { "eos_token_id", 1 }, { "pad_token_id", 0 }, { "torch_dtype", "float32" } };
}

// Random weights of the family's canonical shapes on the device: matrices with entries of
// variance 1/fan_in (so activations keep their scale through the layers), vectors (norm gains,
// biases) small around zero (gemma2's norms multiply by 1 + w).
std::shared_ptr<const model::Model> randomModel(const Json& configJson, const c10::Device& device, uint64_t seed)
{
    const auto plugin = plugins::pluginForModelType(configJson["model_type"].get<std::string>());
    const model::ModelConfig config = plugin->parseConfig(configJson);
    at::manual_seed(seed);
    std::map<std::string, at::Tensor> weights, bySource;
    const auto options = at::TensorOptions().device(device).dtype(at::kFloat);
    for (const auto& ws : plugin->weightSources(config)) {
        if (ws.optional || weights.count(ws.canonical))
            continue;
        // Tied weights (gemma2's unembedding is its embedding) come from one checkpoint tensor.
        at::Tensor& t = bySource[ws.source + "#" + std::to_string(ws.sliceStart)];
        if (!t.defined() || t.sizes() != at::IntArrayRef(ws.shape)) {
            t = at::randn(ws.shape, options);
            t.mul_(ws.shape.size() >= 2 ? 1.0 / std::sqrt(static_cast<double>(ws.shape.back())) : 0.02);
        }
        weights[ws.canonical] = t;
    }
    return model::Model::fromWeights(config, std::move(weights), nullptr, device.str());
}

// A per-layer JumpReLU transcoder (mlp_in -> mlp_out) with random encoders and decoders and
// per-layer thresholds that leave about `l0` of the pre-activations on `ids` above them.
std::shared_ptr<const transcoder::TranscoderSet> randomPlt(
    const model::Model& model, int64_t nFeatures, int64_t l0, const at::Tensor& ids, uint64_t seed)
{
    const model::ModelConfig& mc = model.config();
    const int64_t d = mc.dModel;
    transcoder::TranscoderConfig config;
    config.architecture = transcoder::Architecture::PerLayer;
    config.activation = transcoder::Activation::JumpReLU;
    config.nLayers = mc.nLayers;
    config.dModel = d;
    config.nFeatures = nFeatures;
    config.inputHook = model::Hook::MlpIn;
    config.outputHook = model::Hook::MlpOut;
    config.scan = "bench-gemma-2-2b-shape-plt";

    // The transcoder inputs on the prompt, per layer [n_pos, d_model].
    std::vector<at::Tensor> inputs(static_cast<size_t>(mc.nLayers));
    model::ForwardOptions fo;
    fo.hook = [&](int64_t layer, model::Hook hook, at::Tensor& value) {
        if (hook == model::Hook::MlpIn)
            inputs[static_cast<size_t>(layer)] = value[0].detach().clone();
    };
    model.forward(ids.unsqueeze(0).to(model.device()), fo);

    at::manual_seed(seed + 1);
    const auto options = at::TensorOptions().device(model.device()).dtype(at::kFloat);
    std::vector<transcoder::LayerWeights> layers;
    for (int64_t l = 0; l < mc.nLayers; ++l) {
        transcoder::LayerWeights w;
        w.encoder = at::randn({ nFeatures, d }, options).mul_(1.0 / std::sqrt(static_cast<double>(d)));
        w.encoderBias = at::zeros({ nFeatures }, options);
        w.decoder = at::randn({ nFeatures, 1, d }, options).mul_(1.0 / std::sqrt(static_cast<double>(nFeatures)));
        w.decoderBias = at::zeros({ d }, options);
        // The (1 - l0 / n_features) quantile of this layer's pre-activations on the prompt.
        at::Tensor pre = at::matmul(inputs[static_cast<size_t>(l)], w.encoder.t()).flatten(); // [n_pos * F]
        const int64_t k = std::max<int64_t>(1, l0 * inputs[static_cast<size_t>(l)].size(0));
        const float cut = std::get<0>(at::topk(pre, k)).min().item<float>();
        w.threshold = at::full({ nFeatures }, std::max(cut, 1e-3f), options);
        layers.push_back(std::move(w));
    }
    return transcoder::TranscoderSet::fromWeights(config, std::move(layers), model.device().str());
}

Json traceCase(const std::shared_ptr<const model::Model>& model,
    const std::shared_ptr<const transcoder::TranscoderSet>& transcoders, int64_t nTokens, int64_t maxFeatureNodes,
    int64_t batchSize, uint64_t seed)
{
    const c10::Device device = model->device();
    Json row = { { "n_tokens", nTokens }, { "max_feature_nodes", maxFeatureNodes }, { "batch_size", batchSize } };
    std::fprintf(stderr, "bench: large trace, %lld tokens, %lld feature nodes\n", static_cast<long long>(nTokens),
        static_cast<long long>(maxFeatureNodes));
    try {
        at::manual_seed(seed);
        at::Tensor ids = at::randint(3, model->config().vocabSize, { nTokens }, at::kLong);
        ids[0] = model->config().bosTokenId.value_or(2);
        model::cudaResetPeak(device);
        const auto start = Clock::now();
        attribution::ReplacementContext context = attribution::buildContext(model, transcoders, ids);
        synchronize(device);
        const double contextMs = msSince(start);
        attribution::TraceOptions o;
        o.maxFeatureNodes = maxFeatureNodes;
        o.batchSize = batchSize;
        // The working set of a batch may use a good part of a GPU's memory.
        if (device.is_cuda())
            o.memoryBudgetBytes = std::max<int64_t>(o.memoryBudgetBytes, model::cudaMemoryInfo(device).first / 4);
        const auto traceStart = Clock::now();
        attribution::TraceResult r = attribution::trace(context, o);
        synchronize(device);
        const double traceMs = msSince(traceStart);
        const graph::Pruner pruner(r.graph);
        const graph::PruneResult pruned = pruner.prune(0.8, 0.98);
        int64_t kept = 0;
        for (bool k : pruned.nodeMask)
            kept += k ? 1 : 0;
        row["context_ms"] = contextMs;
        row["trace_ms"] = traceMs;
        row["total_ms"] = msSince(start);
        row["active_features"] = r.stats.activeFeatures;
        row["nodes"] = r.graph.size();
        row["edges"] = r.graph.adjacency.nnz();
        row["pruned_nodes"] = kept;
        row["rows"] = r.stats.rows;
        row["batches"] = r.stats.batches;
        row["rows_ms"] = r.stats.rowsMs;
        row["influence_ms"] = r.stats.influenceMs;
        row["gflops"] = r.stats.flops > 0 && r.stats.rowsMs > 0 ? Json(r.stats.flops / (r.stats.rowsMs * 1e6)) : Json();
        row["max_rel_residual"] = r.exactness.maxRelResidual;
        row["replacement_score"] = pruner.scores().replacement;
        row["completeness_score"] = pruner.scores().completeness;
    } catch (const c10::OutOfMemoryError& e) {
        row["error"] = model::errorText(e);
    } catch (const Error& e) {
        row["error"] = e.what();
    }
    row["peak_gpu_mb"] = static_cast<double>(model::cudaPeakAllocatedBytes(device)) / (1 << 20);
    return row;
}

} // namespace

Json benchLargeModel(const std::string& deviceName, const LargeBenchOptions& options)
{
    at::NoGradGuard noGradients;
    const c10::Device device = model::resolveDevice(deviceName);
    Json out;
    out["model"] = "random weights of Gemma-2-2B's shape (26 layers, d_model 2304, vocab 256000)";
    auto start = Clock::now();
    auto model = randomModel(gemma2_2bConfig(), device, 2026);
    synchronize(device);
    out["model_ms"] = msSince(start);
    int64_t params = 0;
    std::set<const void*> counted; // tied weights once
    for (const auto& [name, t] : model->weights())
        if (counted.insert(t.data_ptr()).second)
            params += t.numel();
    out["parameters"] = params;

    // The thresholds come from a 64-token prompt of random tokens.
    at::manual_seed(7);
    at::Tensor calibration = at::randint(3, model->config().vocabSize, { 64 }, at::kLong);
    calibration[0] = model->config().bosTokenId.value_or(2);
    start = Clock::now();
    auto plt = randomPlt(*model, options.nFeatures, options.l0, calibration, 2026);
    synchronize(device);
    out["transcoder"] = { { "kind", "plt" }, { "layers", plt->nLayers() }, { "features_per_layer", plt->nFeatures() },
        { "target_l0", options.l0 }, { "ms", msSince(start) } };

    // Forward time at 64 tokens (warm).
    {
        at::Tensor ids = calibration.unsqueeze(0).to(device);
        model->forward(ids);
        synchronize(device);
        const auto t0 = Clock::now();
        model->forward(ids).logits.sum().item<float>();
        out["forward_64_ms"] = msSince(t0);
    }
    // A short warm-up trace: cuBLAS handles, the allocator's pools.
    traceCase(model, plt, 16, 64, options.batchSize, 1);
    Json cases = Json::array();
    if (options.shortFeatureNodes > 0) {
        Json first = traceCase(model, plt, 64, options.shortFeatureNodes, options.batchSize, 11);
        first["l0"] = options.l0;
        cases.push_back(first);
    }
    if (options.longTokens > 0) {
        // The same encoders and decoders (same seed), thresholds for the long prompt's L0.
        plt.reset();
        auto longPlt = randomPlt(*model, options.nFeatures, options.longL0, calibration, 2026);
        Json row = traceCase(model, longPlt, options.longTokens, options.longFeatureNodes, options.batchSize, 12);
        row["l0"] = options.longL0;
        cases.push_back(row);
    }
    out["trace"] = cases;
    return out;
}

} // namespace cs::cli
