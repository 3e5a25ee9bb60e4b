#pragma once
// The neuron basis's shared quadrature (attribution.cpp): integrated gradients' path points.

#include <cstdint>
#include <utility>
#include <vector>

namespace cs::neurons {

// Gauss-Legendre nodes and weights on [0, 1], n points.
std::pair<std::vector<double>, std::vector<double>> gaussLegendre(int64_t n);

} // namespace cs::neurons
