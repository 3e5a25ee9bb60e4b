#pragma once
// The engine's Torch-free front door for the explorer and the CLI: open a model by name or
// folder, tokenize, read the next-token distribution, generate. Nothing here includes
// LibTorch or Qt, so Qt code (which defines `slots`) can include it freely.

#include "cs/token_score.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cs {

namespace model {
class Model;
}

struct ModelInfo {
    std::string name; // folder name ("tinyworld")
    std::string folder;
    std::string family; // llama, qwen3, gemma2, gpt2
    int64_t nLayers = 0;
    int64_t dModel = 0;
    int64_t nHeads = 0;
    int64_t nKvHeads = 0;
    int64_t dHead = 0;
    int64_t dMlp = 0;
    int64_t vocabSize = 0;
    std::string dtype; // as stored in the checkpoint: F32, F16, BF16
    std::string device; // cpu, cuda:0
};

struct LogitsResult {
    std::vector<int64_t> ids; // the input
    std::vector<TokenScore> top; // the last position's top-k, by probability
    std::vector<std::vector<float>> logits; // last position only, or every position
};

struct GenerateRequest {
    int64_t maxNew = 16;
    double temperature = 0.0; // 0: greedy
    uint64_t seed = 0;
};

struct GenerateResult {
    std::vector<int64_t> promptIds;
    std::vector<int64_t> newIds;
    std::string text; // the generated continuation only
};

class ModelHandle {
public:
    // nameOrFolder: a Hugging Face folder, or the name of a model in resources/models/.
    // device: cpu, cuda or auto. Throws cs::Error with a message for a person.
    static std::shared_ptr<ModelHandle> open(const std::string& nameOrFolder, const std::string& device = "auto");

    ModelInfo info() const;
    bool hasTokenizer() const;
    std::vector<int64_t> encode(const std::string& text) const;
    std::vector<std::string> tokenTexts(const std::vector<int64_t>& ids) const;
    std::string decode(const std::vector<int64_t>& ids) const;
    LogitsResult logits(const std::vector<int64_t>& ids, int topK, bool allPositions) const;
    GenerateResult generate(const std::vector<int64_t>& promptIds, const GenerateRequest& request) const;

    // For callers that go on to tensor-level engine APIs (the explorer's transcoders, traces
    // and interventions in app/explorerengine.cpp).
    std::shared_ptr<const model::Model> model() const { return m_model; }

private:
    std::shared_ptr<const model::Model> m_model;
};

// The folders searched for shipped models by name: $CIRCUITSCOPE_MODELS, share/circuitscope/models
// beside the running program (PREFIX/bin/../share, wherever the install was unpacked), the
// source tree's resources/models (dev builds), then the configured install prefix's.
std::vector<std::string> modelSearchPaths();
// A folder path as given, or the shipped model of that name; throws cs::Error listing
// what was searched when neither exists.
std::string resolveModelFolder(const std::string& nameOrFolder);
// The model the explorer and the CLI open when none is named.
constexpr const char* kDefaultModel = "tinyworld";
// The BLAS LibTorch's matrix products go through, as found in this process (for bench).
std::string blasDescription();

// Which LibTorch this process runs on and what it can reach: info and bench print it so a user
// sees which engine they have (JSON "torch": {version, cuda_compiled, cuda_available, device}).
struct TorchInfo {
    std::string version; // LibTorch's own version, "2.11.0"
    bool cudaCompiled = false; // this LibTorch was built with CUDA (its CUDA library is loaded)
    bool cudaAvailable = false; // and a GPU with a working driver is present
    std::string device; // what the --device asked for resolves to ("cpu", "cuda:0"), or the error
    std::string cudaVersion; // the CUDA runtime LibTorch was built against ("13.0"), or empty
    int64_t cudaDevices = 0;
    std::string gpuName; // the GPU of `device` when it is one
    int64_t gpuMemoryBytes = 0; // its total memory
};
// Never throws: a device that cannot be had is reported in `device` as "error: ...".
TorchInfo torchInfo(const std::string& device = "auto");

} // namespace cs
