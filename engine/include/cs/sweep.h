#pragma once
// Operand sweeps (docs/ARCHITECTURE.md §7.5): a prompt template with two variables run over a
// grid, e.g. "calc: {a}+{b}=" for a, b in 0..99 (10,000 prompts, batched), recording every
// transcoder feature's activation at one position of each prompt: an operand plot per
// feature. The finder ranks features by the structure of their map, so the paper's kinds of
// addition features ("_6 + _9", "sum ends in 5", "sum ~ 95", "add 9") are found by their maps.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cs {
namespace model {
class Model;
}
namespace transcoder {
class TranscoderSet;
}
} // namespace cs

namespace cs::sweep {

struct SweepOptions {
    // Holds {a} and {b} (each at least once), and may hold {sum} (a + b): "calc: {a}+{b}={sum}"
    // read at position -2 is the token that predicts the sum's last digit.
    std::string templateText;
    std::vector<int64_t> a, b; // the values each takes
    // The token position read in each prompt: >= 0 from the start (BOS included), < 0 from the
    // end (-1: the last token). Prompts of different lengths are read at their own position.
    int64_t position = -1;
    int64_t batchSize = 256; // prompts run together (prompts of one token length are batched)
    // Called after each batch with the fraction done; false cancels (throws cs::Cancelled).
    std::function<bool(double)> progress;
};

struct SweepResult {
    std::vector<int64_t> a, b;
    // Per layer [a.size(), b.size(), n_features] float32 on the CPU: the activations.
    std::vector<at::Tensor> activations;
    double seconds = 0;
    int64_t prompts = 0;
};

// The prompt for (a, b): every {a}, {b} and {sum} of the template replaced by the numbers.
std::string fillTemplate(const std::string& templateText, int64_t a, int64_t b);

// Runs the grid; throws cs::Error for a template without {a} or {b}, empty value lists, a
// position outside a prompt, or a set that does not fit the model.
SweepResult sweep(const model::Model& model, const transcoder::TranscoderSet& set, const SweepOptions& options);

// The structures the finder tests, each a grouping of the grid's cells: by a's ones digit, b's
// ones digit, the sum's ones digit (a + b mod 10), the sum's tens (the sum range: floor((a + b)
// / 10)), a's tens and b's tens (the operand ranges).
enum class Structure { AOnes, BOnes, SumOnes, SumTens, ATens, BTens };
const char* structureName(Structure structure); // "a_ones", "b_ones", "sum_ones", "sum_tens", "a_tens", "b_tens"

struct Finding {
    int64_t layer = 0, feature = 0;
    Structure structure = Structure::AOnes;
    // The share of the map's variance the grouping explains (eta squared, 0..1), and the group
    // whose mean is highest (e.g. 5 for "sum ends in 5") with that mean.
    double explained = 0;
    int64_t group = 0;
    double groupMean = 0;
    double meanActivation = 0; // over the whole grid
    double activeShare = 0; // the grid's cells where it fires
};

// For one map [a.size(), b.size()]: the structure that explains most of its variance (ties to
// the first in Structure's order). A map that never varies explains nothing (0).
Finding explain(const at::Tensor& grid, const std::vector<int64_t>& a, const std::vector<int64_t>& b);

// Every feature that fires somewhere on the grid, ranked by explained variance times the square
// root of the share of cells where it fires (a structured feature that fires on one cell ranks
// low), best first, at most top.
std::vector<Finding> rank(const SweepResult& result, int64_t top);

} // namespace cs::sweep
