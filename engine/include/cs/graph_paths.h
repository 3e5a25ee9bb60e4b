#pragma once
// How long an attribution graph's paths are: the paper's path-length metric. With A_hat the
// row-normalized |A| (as pruning uses it) and w the logits' weights, B_l = sum_{i <= l} A_hat^i
// and P_l = sum over embeddings e of (w^T B_l)[e]: the strength of the paths of at most l edges
// from the embeddings to the targets. P_l grows with l to `total`, the embeddings' whole
// influence (every length), which Pruner::influence() holds.

#include "cs/graph.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

namespace cs::graph {

struct PathLengths {
    std::vector<double> cumulative; // [maxLength + 1]: P_0 .. P_maxLength (P_0 = 0)
    double total = 0; // P_infinity
    // sum_l l (P_l - P_{l-1}) / total: the influence-weighted mean length in edges (0 when
    // total is 0); exact when maxLength reaches longestPath.
    double meanLength = 0;
    int64_t longestPath = 0; // the most edges on a path into a target
};

// The profile up to maxLength edges (< 0: up to the longest path), one sparse pass over the
// entries per length. Throws cs::Error for a graph that fails Graph::validate() or has a cycle.
PathLengths pathLengths(const Graph& graph, int64_t maxLength = -1);

// {"cumulative": [P_0 ..], "share": [P_l / total ..], "total", "mean_length", "longest_path"}:
// `graph info --json`'s "path_length".
nlohmann::json pathLengthsJson(const PathLengths& pathLengths);

} // namespace cs::graph
