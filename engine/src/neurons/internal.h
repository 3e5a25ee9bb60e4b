#pragma once
// What the neuron basis's files share (defined in attribution.cpp).

#include "cs/neurons.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace cs::neurons {

// Gauss-Legendre nodes and weights on [0, 1], n points.
std::pair<std::vector<double>, std::vector<double>> gaussLegendre(int64_t n);

// The metric at each batch row's last position, logits [batch, n_pos, vocab] -> [batch].
at::Tensor metricOf(const at::Tensor& logits, const Metric& metric);

} // namespace cs::neurons
