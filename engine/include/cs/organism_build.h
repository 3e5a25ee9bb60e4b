#pragma once
// Building and evaluating the tinyworld organism: corpus -> BPE tokenizer -> llama-family
// model trained from scratch -> a Hugging Face folder the normal loader opens, and the
// accuracy of a model on the world's eval sets, per task and split.

#include "cs/model.h"
#include "cs/organism.h"

#include <functional>
#include <map>
#include <string>

namespace cs::organism {

struct BuildOptions {
    std::string outDir;
    uint64_t seed = 1;
    int worldVersion = WorldOptions().version;
    // Model shape (llama family, tied embeddings).
    int64_t nLayers = 4;
    int64_t dModel = 128;
    int64_t nHeads = 4;
    int64_t nKvHeads = 2;
    int64_t dMlp = 512;
    int64_t vocabSize = 1024;
    int64_t maxPositions = 4096; // nominal for RoPE (trained at seqLen); room for long traces
    // Training.
    int64_t steps = 8000;
    int64_t batchSize = 32;
    int64_t seqLen = 64;
    double lr = 3e-3;
    int64_t warmupSteps = 200;
    int64_t tokenizerLines = 200000; // training lines the BPE trainer sees
    std::string device = "cpu";
    std::string storeDtype = "F16"; // how the shipped weights are stored
    bool progress = true;
};

struct BuildResult {
    std::string folder;
    double seconds = 0; // the whole build
    double trainSeconds = 0;
    double tokensPerSecond = 0;
    double finalLoss = 0; // mean of the last 50 steps
    double firstLoss = 0;
    int64_t parameters = 0;
    int64_t resumedFrom = 0;
};

// Reproduces corpus, tokenizer and model in outDir from the seed. An interrupted build
// resumes from outDir/.build/checkpoint.safetensors. Throws cs::Error.
BuildResult buildOrganism(const BuildOptions& options);

// Token rows [batchSize, seqLen + 1] for a training step: "<|bos|>" then training lines
// joined by "\n", a function of (world seed, step) alone.
at::Tensor trainingBatch(
    const World& world, const model::Tokenizer& tokenizer, int64_t step, int64_t batchSize, int64_t seqLen);

struct EvalOptions {
    size_t maxPerSplit = 0; // 0: every item
};
// task -> split -> accuracy (greedy, exact answer).
using EvalTable = std::map<std::string, std::map<std::string, double>>;
struct EvalResult {
    EvalTable accuracy;
    std::map<std::string, std::map<std::string, size_t>> counts;
    struct Answer {
        EvalItem item;
        std::string got;
    };
    std::vector<Answer> canonical; // the three canonical prompts and what the model said
};
EvalResult evaluateOrganism(const model::Model& model, const World& world, const EvalOptions& options = {});

// The world a built organism folder was made from, as its organism.json records it (seed 1
// and world version 1 when absent: the first shipped tinyworld predates the field).
WorldOptions organismWorld(const std::string& folder);

} // namespace cs::organism
