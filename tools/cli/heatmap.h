#pragma once
// Operand plots as images (circuitscope-cli sweep --out): a grid of activations as a PNG heat
// map, through libpng.

#include <ATen/core/Tensor.h>

#include <string>

namespace cs::cli {

// The grid [rows, columns] (rows: a's values from the top, columns: b's from the left) as PNG
// bytes: each cell a square of `cell` pixels, coloured on viridis from the grid's smallest value
// (or 0, when none is negative) to its largest, with a thin grey line every 10 cells. A grid
// that never varies is all one colour.
std::string heatmapPng(const at::Tensor& grid, int cell = 4);

} // namespace cs::cli
