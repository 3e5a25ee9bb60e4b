#pragma once
// Training and evaluating transcoders (docs/ARCHITECTURE.md §5.2).
//
// Training reads (input, output) activation pairs at the set's hooks, streamed from the model
// over a corpus into a shuffled buffer (optionally cached on disk in chunks, so several runs
// share one pass of the model), and minimizes
//   sum_l ||y_hat_l - y_l||^2                                     reconstruction (normalized units)
//   + lambda_S(t) sum_{l,i} tanh(c * ||W_dec_{l,i}|| * a_{l,i})   sparsity, lambda_S ramped up linearly
//   + lambda_P sum_{l,i} relu(theta_{l,i} - z_{l,i}) ||W_dec_{l,i}||   pre-activation loss (revives dead features)
// with ||W_dec_{l,i}|| the norm of feature i's decoder over every layer it writes to. JumpReLU
// thresholds learn through a straight-through estimator (Rajamanoharan et al., 2024): the
// pseudo-derivative of the step at z = theta is a rectangle of width `bandwidth`. Inputs and
// outputs are scaled to unit mean square per layer while training; the scales are folded into
// the saved weights, so a saved set works on raw activations.

#include "cs/model.h"
#include "cs/transcoder.h"

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cs::distributed {
class Group;
}

namespace cs::transcoder {

// ---------------------------------------------------------------- activations

// Rows of token ids from a text file for activation runs: each row is BOS (when the tokenizer
// has one) then lines joined by "\n", seqLen tokens in all; a line that does not fit ends the
// row (the rest of it is dropped; a line longer than a row fills several rows). Deterministic.
class TokenRows {
public:
    TokenRows(const std::string& path, std::shared_ptr<const model::Tokenizer> tokenizer, int64_t seqLen);
    ~TokenRows();
    // Up to n rows [k, seqLen] (int64); k < n only at the end of the file, 0 past it.
    at::Tensor next(int64_t n);
    int64_t rowsRead() const { return m_rowsRead; }
    void rewind();

private:
    bool nextLine(std::string& line);
    struct File;
    std::unique_ptr<File> m_file;
    std::shared_ptr<const model::Tokenizer> m_tokenizer;
    int64_t m_seqLen;
    int64_t m_rowsRead = 0;
    std::vector<int64_t> m_pending; // the rest of a line longer than a row
};

// Pairs (input, output) [n_layers, n_tokens, d_model] float32 on the CPU, chunk by chunk.
class ActivationSource {
public:
    virtual ~ActivationSource() = default;
    // The next chunk; wraps around to the first when the data runs out. Never empty.
    virtual std::pair<at::Tensor, at::Tensor> next() = 0;
    // Chunks handed out so far (a checkpoint records it; seek() continues from it).
    virtual int64_t position() const = 0;
    virtual void seek(int64_t chunks) = 0;
};

struct ModelActivationOptions {
    std::string corpus; // text file
    model::Hook inputHook = model::Hook::MlpIn;
    model::Hook outputHook = model::Hook::MlpOut;
    int64_t seqLen = 64;
    int64_t rowsPerChunk = 256; // sequences per chunk (the BOS position of each is left out)
    int64_t batchRows = 32; // sequences per forward pass
    // When set, chunk k is written to cacheDir/chunk_{k}.safetensors (F16) the first time and
    // read back after that; the folder's manifest.json names the model, corpus and hooks,
    // and a cache made for anything else is refused.
    std::string cacheDir;
    // This source reads shard `shard` of `shards` of the corpus: chunks shard, shard + shards,
    // ... (a rank of a data-parallel job, or one of several streams of one process).
    int64_t shard = 0;
    int64_t shards = 1;
};
std::unique_ptr<ActivationSource> modelActivations(
    std::shared_ptr<const model::Model> model, const ModelActivationOptions& options);

// ---------------------------------------------------------------- training

struct TrainOptions {
    std::string outDir; // the trained set, in circuit-tracer's format; checkpoints in outDir/.train
    Architecture architecture = Architecture::CrossLayer;
    Activation activation = Activation::JumpReLU;
    int64_t topK = 0; // TopK only
    int64_t nFeatures = 1024; // per layer
    bool skip = false;
    std::string inputHookName = "mlp.hook_in";
    std::string outputHookName = "mlp.hook_out";
    std::string modelName; // for config.yaml
    std::string scan; // the set's identity (config.yaml scan); empty: the output folder's name
    int64_t steps = 1500;
    int64_t batchTokens = 1024;
    int64_t bufferTokens = 65536; // the shuffled buffer; refilled by half when half is used
    double lr = 1e-3;
    double warmupFraction = 0.02;
    double lambdaSparsity = 3e-3; // lambda_S at the end of the ramp
    double sparsityRamp = 0.8; // fraction of the steps over which lambda_S rises from 0
    double sparsityC = 4.0; // c in tanh(c ||W_dec|| a)
    double lambdaPreact = 3e-6; // lambda_P
    double bandwidth = 0.1; // JumpReLU straight-through estimator kernel width (normalized units)
    double thresholdInit = 0.5;
    uint64_t seed = 1;
    int64_t checkpointEvery = 500; // steps; 0: never
    std::string storeDtype = "F16";
    std::string device = "cpu";
    bool progress = true;
    // Data-parallel over the ranks of this job (nullptr: this process alone): every rank trains
    // the same parameters on its own shards, gradients are averaged over the ranks each step,
    // normalization statistics and dead-feature counts are reduced, and rank 0 writes the
    // checkpoints and the set. Every rank must be started with the same options.
    std::shared_ptr<distributed::Group> group;
    // With a group: feature-sharded instead of data-parallel, for sets too large for one device.
    // Rank r of W holds features [r F / W, (r + 1) F / W) of every layer (decoder bias and skip
    // whole); rank 0 reads the data (the other ranks' sources are not read) and every rank trains
    // on its batches; the ranks exchange their reconstructions (all-reduce) and, for TopK, their
    // largest pre-activations (all-gather). Checkpoints hold the whole set, as unsharded runs
    // write them; TrainResult::set is rank 0's alone.
    bool shardFeatures = false;
};

struct TrainResult {
    std::shared_ptr<const TranscoderSet> set;
    int64_t steps = 0;
    int64_t resumedFrom = 0;
    double seconds = 0;
    double tokensPerSecond = 0;
    // Over the last steps of training:
    std::vector<double> nmse; // per layer
    std::vector<double> l0; // per layer, per token
    std::vector<double> deadFraction; // per layer: no activation in the last deadWindow tokens
};

// Trains on `source`; writes outDir (and resumes from outDir/.train/checkpoint.safetensors
// when one is there). `shape` gives the hooks, layer count and d_model; Throws cs::Error,
// cs::Cancelled when `cancel` returns true.
TrainResult trainTranscoder(ActivationSource& source, const model::ModelConfig& shape, const TrainOptions& options,
    const std::function<bool()>& cancel = {});
// The same over several shards of the data (docs/ARCHITECTURE.md §5.3): this process's shards,
// rank r of W holding the global shards r * S .. r * S + S - 1 of W * S. Each global shard has its
// own shuffle buffer (bufferTokens / (W * S) tokens) and gives batchTokens / (W * S) tokens to
// every step's batch, so a job's global batch does not depend on how its shards are spread over
// processes: one process with W * S shards trains as W ranks with S each do.
TrainResult trainTranscoder(const std::vector<ActivationSource*>& shards, const model::ModelConfig& shape,
    const TrainOptions& options, const std::function<bool()>& cancel = {});

// ---------------------------------------------------------------- evaluation

struct EvalOptions {
    std::string corpus;
    int64_t seqLen = 64;
    int64_t maxTokens = 32768;
    int64_t batchRows = 32;
};

struct LayerMetrics {
    int64_t layer = 0;
    double nmse = 0; // sum ||y_hat - y||^2 / sum ||y - mean(y)||^2, on the original model's inputs
    double l0 = 0; // active features per token
    double deadFraction = 0; // features that never fired on the evaluated tokens
};

struct EvalReport {
    std::vector<LayerMetrics> layers;
    double top1Agreement = 0; // replacement model's argmax == original's, over every position
    double kl = 0; // mean KL(original || replacement) of the next-token distributions, nats
    int64_t tokens = 0;
};

EvalReport evaluateTranscoder(const model::Model& model, const TranscoderSet& set, const EvalOptions& options);

} // namespace cs::transcoder
