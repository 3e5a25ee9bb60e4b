#pragma once
// The architecture of a loaded model, in the engine's own terms. A family plugin fills it
// from a Hugging Face `config.json`; the transformer blocks are wired from it.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace cs::model {

enum class NormKind {
    Rms, // x / sqrt(mean(x^2) + eps) * w                     (llama, qwen3)
    RmsOnePlus, // x / sqrt(mean(x^2) + eps) * (1 + w)        (gemma2)
    Layer, // (x - mean) / sqrt(var + eps) * w + b             (gpt2)
};

enum class MlpKind {
    Gated, // down(act(gate x) * up x)                          (llama, qwen3, gemma2)
    Plain, // down(act(up x + b_up)) + b_down                   (gpt2)
};

enum class Activation { Silu, GeluTanh, GeluExact };

enum class PositionKind {
    Rope, // rotary embeddings on q and k (rotate-half convention, as transformers)
    Learned, // an added table of position embeddings (gpt2)
};

// RoPE frequency scaling, as transformers' `rope_scaling` ("default", "linear", "llama3").
struct RopeScaling {
    std::string type = "default";
    double factor = 1.0;
    double lowFreqFactor = 1.0;
    double highFreqFactor = 4.0;
    double originalMaxPositions = 8192.0;
};

struct ModelConfig {
    std::string family; // plugin name: llama, qwen3, gemma2, gpt2
    std::string modelType; // config.json's model_type
    int64_t nLayers = 0;
    int64_t dModel = 0;
    int64_t nHeads = 0;
    int64_t nKvHeads = 0; // grouped-query attention when < nHeads
    int64_t dHead = 0;
    int64_t dMlp = 0;
    int64_t vocabSize = 0;
    int64_t maxPositions = 0;
    double normEps = 1e-5;

    NormKind normKind = NormKind::Rms;
    MlpKind mlpKind = MlpKind::Gated;
    Activation activation = Activation::Silu;
    PositionKind positionKind = PositionKind::Rope;
    double ropeTheta = 10000.0;
    RopeScaling ropeScaling;

    bool qkNorm = false; // per-head RMSNorm on q and k before RoPE (qwen3)
    bool postNorms = false; // norms on attention and MLP outputs before the residual add (gemma2)
    bool attnBias = false; // biases on q, k, v (and o for gpt2)
    bool attnOutBias = false;
    bool mlpBias = false;
    bool tiedEmbeddings = true;
    double embedScale = 1.0; // embeddings are multiplied by this (gemma2: sqrt(d_model))
    double queryScale = 0.0; // attention scores are q.k * queryScale (default 1/sqrt(d_head))
    double attnSoftcap = 0.0; // scores -> c * tanh(scores / c) when > 0 (gemma2)
    double finalSoftcap = 0.0; // logits -> c * tanh(logits / c) when > 0 (gemma2)
    int64_t slidingWindow = 0; // keys older than this many positions are masked on sliding layers
    std::vector<bool> slidingLayers; // per layer: does the sliding window apply

    std::optional<int64_t> bosTokenId;
    std::optional<int64_t> eosTokenId;
    std::string torchDtype; // config.json's torch_dtype, for information
};

} // namespace cs::model
