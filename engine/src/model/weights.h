#pragma once
// The loaded weights of a Model, by canonical name (plugins/common.h lists the names) and
// unpacked per layer for the forward pass. All float32 on the model's device; a tensor a
// family does not have is undefined.

#include "cs/model.h"

#include <ATen/ATen.h>

#include <map>
#include <string>
#include <vector>

namespace cs::model {

struct Model::Weights {
    struct Layer {
        at::Tensor attnNormW, attnNormB; // [d]
        at::Tensor q, qBias; // [H*dh, d], [H*dh]
        at::Tensor k, kBias, v, vBias; // [K*dh, d], [K*dh]
        at::Tensor o, oBias; // [d, H*dh], [d]
        at::Tensor qNorm, kNorm; // [dh]
        at::Tensor attnPostNorm; // [d]
        at::Tensor mlpNormW, mlpNormB; // [d]
        at::Tensor gate, up, upBias; // [m, d], [m]
        at::Tensor down, downBias; // [d, m], [d]
        at::Tensor mlpPostNorm; // [d]
    };
    std::map<std::string, at::Tensor> byName;
    at::Tensor embed; // [V, d]
    at::Tensor posEmbed; // [P, d]
    at::Tensor finalNormW, finalNormB; // [d]
    at::Tensor unembed; // [V, d]
    at::Tensor ropeInvFreq; // [dh / 2], float32, after the config's scaling
    std::vector<Layer> layers;
};

// RoPE inverse frequencies as transformers computes them, with default, linear or llama3 scaling.
at::Tensor ropeInverseFrequencies(const ModelConfig& config);

} // namespace cs::model
