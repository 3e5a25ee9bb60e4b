#pragma once
// Training a transformer language model from scratch (the tinyworld organism): next-token
// cross-entropy, AdamW, warm-up + cosine learning rate, gradient clipping, checkpoints that
// resume to the same result, and a progress bar with loss and tokens/s.

#include "cs/config.h"
#include "cs/model.h"

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace cs::train {

struct LmTrainOptions {
    model::ModelConfig config; // a llama-style (or qwen3/gemma2) configuration
    int64_t steps = 1000;
    int64_t batchSize = 32; // rows per step
    int64_t seqLen = 64; // tokens predicted per row
    double lr = 3e-3; // peak learning rate
    int64_t warmupSteps = 100;
    double minLrFraction = 0.1; // the cosine ends at lr * this
    double weightDecay = 0.1; // on matrices only
    double clipNorm = 1.0;
    uint64_t seed = 1; // weight initialization
    std::string device = "cpu";
    std::string checkpointPath; // resume from / save to this file when set
    int64_t checkpointEvery = 250; // steps
    bool progress = true;
    // Called after every step; return false to stop early (the checkpoint is kept).
    std::function<bool(int64_t step, double loss)> onStep;
};

// Token rows [batchSize, seqLen + 1] (int64) for a step; must depend only on the step so a
// resumed run sees the same data.
using BatchSource = std::function<at::Tensor(int64_t step)>;

struct LmTrainResult {
    std::shared_ptr<const model::Model> model;
    std::vector<double> losses; // per step of this run (after any resume)
    int64_t resumedFrom = 0; // the step a checkpoint let this run start at
    int64_t stepsDone = 0; // the step reached
    double seconds = 0;
    double tokensPerSecond = 0;
    bool stopped = false; // onStep asked to stop
};

// Random initial weights: normal(0, 0.02) matrices (output projections scaled by
// 1/sqrt(2 n_layers)), unit norms; tied embeddings share one tensor.
std::map<std::string, at::Tensor> initWeights(const model::ModelConfig& config, uint64_t seed);

LmTrainResult trainLanguageModel(
    const LmTrainOptions& options, const BatchSource& batches, std::shared_ptr<const model::Tokenizer> tokenizer);

} // namespace cs::train
