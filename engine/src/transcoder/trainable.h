#pragma once
// The parameters of a transcoder being trained and its training loss (train.cpp), apart from
// the public cs/transcoder_train.h: the trainer and its tests use them, nothing else does.

#include "cs/transcoder_train.h"

#include <ATen/core/Tensor.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace cs::transcoder {

// The parameters being trained, in normalized units.
//   encoder     [n_layers, n_features, d_model]   encoderBias [n_layers, n_features]
//   logThreshold [n_layers, n_features] (JumpReLU)
//   decoders[t] [(sources of t) * n_features, d_model]: source layers s <= t (CLT) or t (PLT),
//               source-major, so one product with the activations of those sources gives t
//   decoderBias [n_layers, d_model]   skip [n_layers, d_model, d_model] (y += x @ skip[t]^T)
struct TrainableTranscoder {
    TranscoderConfig config;
    at::Tensor encoder, encoderBias, logThreshold, decoderBias, skip;
    std::vector<at::Tensor> decoders;
    std::vector<double> inputScale, outputScale; // raw = normalized * scale, per layer

    static TrainableTranscoder init(const TranscoderConfig& config, double thresholdInit, uint64_t seed);
    std::map<std::string, at::Tensor> parameters() const; // by name, for the optimizer and checkpoints
    void setParameters(const std::map<std::string, at::Tensor>& byName); // those parameters() names
    int64_t firstSource(int64_t target) const;
    // ||W_dec|| of every feature over all its targets, [n_layers, n_features].
    at::Tensor decoderNorms() const;
    // The set these parameters make, with the normalization folded into raw units.
    std::shared_ptr<const TranscoderSet> toSet(const std::string& device = "cpu") const;
};

struct LossWeights {
    double lambdaSparsity = 0; // lambda_S now (after the ramp)
    double sparsityC = 4.0;
    double lambdaPreact = 0;
    double bandwidth = 0.1;
};

struct LossTerms {
    at::Tensor total, mse, sparsity, preact; // scalars (mean over tokens), with autograd
    at::Tensor acts; // [n_layers, batch, n_features], with autograd
    std::vector<double> nmse; // per layer: ||y_hat - y||^2 / ||y - mean y||^2 over the batch
};

// Feature-sharded training (docs/ARCHITECTURE.md §5.3): each rank holds the features
// [first, first + count) of every layer, and of every tensor that runs over features (a
// parameter, its optimizer moments, last_fired) the slice of its features; decoder_bias and skip
// every rank holds whole. Tensors are named as TrainableTranscoder::parameters() names them,
// with or without a checkpoint's prefix ("param.", "adam.m.", "adam.v.").
bool runsOverFeatures(const std::string& name);
at::Tensor takeFeatures(
    const std::string& name, const at::Tensor& whole, int64_t nFeatures, int64_t first, int64_t count);
// The ranks' slices, in rank order, joined into the whole tensor.
at::Tensor joinFeatures(const std::string& name, const std::vector<at::Tensor>& slices, int64_t sliceFeatures);

// What the loss needs from the other ranks when they hold the rest of the features; null when this
// process holds them all.
struct FeatureExchange {
    // Every rank's reconstruction from its own features [n_layers, batch, d_model], summed.
    std::function<at::Tensor(const at::Tensor&)> sum;
    // Every rank's [n_layers, batch, k], side by side on the last dimension (for TopK).
    std::function<at::Tensor(const at::Tensor&)> concatenate;
};

// The training loss on normalized x, y [n_layers, batch, d_model]; JumpReLU thresholds get the
// straight-through gradient described above. With an exchange, the terms of the features this
// rank holds: mse (and nmse) are the whole model's, sparsity and preact this rank's share of sums
// over features.
LossTerms transcoderLoss(const TrainableTranscoder& t, const at::Tensor& x, const at::Tensor& y, const LossWeights& w,
    const FeatureExchange* exchange = nullptr);

} // namespace cs::transcoder
