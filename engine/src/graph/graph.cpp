// Attribution graphs: node bookkeeping, influence, pruning and scores (docs/ARCHITECTURE.md
// §7). The definitions follow circuit-tracer's graph.py (normalize_matrix, compute_influence,
// prune_graph, compute_graph_scores) and Neuronpedia's subgraph score; see cs/graph.h.

#include "cs/graph.h"
#include "cs/graph_paths.h"

#include "cs/error.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <string>
#include <tuple>
#include <utility>

namespace cs::graph {

namespace {

// "a feature", "an error", "an embedding", "a logit".
std::string article(const std::string& noun)
{
    return (noun.empty() || std::string("aeiou").find(noun[0]) == std::string::npos ? "a " : "an ") + noun;
}

// circuit-tracer's normalize_matrix clamps every row sum at this.
constexpr double kRowSumFloor = 1e-10;

int kindRank(NodeKind kind)
{
    switch (kind) {
    case NodeKind::Feature:
        return 0;
    case NodeKind::Error:
        return 1;
    case NodeKind::Embedding:
        return 2;
    case NodeKind::Logit:
        return 3;
    }
    return 4;
}

// A_hat = |A| / max(row sum of |A|, floor), per adjacency entry: rows summing to 1, zero rows
// staying zero. The row sums are taken in float64 and rounded to float32, the division is in
// float32 (as circuit-tracer's float32 normalize_matrix).
struct Normalized {
    std::vector<float> values; // [nnz]: A_hat per entry
    std::vector<double> rowScale; // [n]: the clamped row sums (float32 values)
};

Normalized normalizedAbs(const Adjacency& adjacency)
{
    const int64_t n = adjacency.size();
    Normalized r;
    r.values.resize(static_cast<size_t>(adjacency.nnz()));
    r.rowScale.resize(static_cast<size_t>(n));
    at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
            const Adjacency::Row row = adjacency.row(t);
            double sum = 0;
            for (int64_t k = 0; k < row.size; ++k)
                sum += std::abs(static_cast<double>(row.values[k]));
            const float scale = std::max(static_cast<float>(sum), static_cast<float>(kRowSumFloor));
            r.rowScale[t] = scale;
            float* out = r.values.data() + row.begin;
            for (int64_t k = 0; k < row.size; ++k)
                out[k] = std::abs(row.values[k]) / scale;
        }
    });
    return r;
}

std::vector<float> logitWeightVector(int64_t n, const KindRanges& ranges, const std::vector<float>& probabilities)
{
    std::vector<float> w(static_cast<size_t>(n), 0.0f); // [n]
    std::copy(probabilities.begin(), probabilities.end(), w.begin() + ranges.logits.begin);
    return w;
}

struct Influence {
    std::vector<float> influence; // [n]: w^T (A_hat + A_hat^2 + ...)
    std::vector<int64_t> level; // [n]: the longest path (in edges) to a logit; -1 without one
};

// circuit-tracer's compute_influence, w A_hat + w A_hat^2 + ..., which it sums one
// matrix-vector product per path length. On a DAG the same sum comes from one sweep in a
// topological order of the nodes that reach a logit (targets before their sources): when node t
// is reached, every path from a logit into t has been counted, so x_t is final and
// y_t = w_t + x_t flows on to each source s as y_t A_hat[t, s]. The same sweep gives each
// node's longest path to a logit. Sums in float64, stored as float32. A cycle among the nodes
// that reach a logit leaves nodes unswept: an error, as the series would not end.
Influence sparseInfluence(
    const Adjacency& adjacency, const Normalized& normalized, const std::vector<float>& w, const KindRanges& ranges)
{
    const int64_t n = adjacency.size();
    Influence r;
    r.influence.assign(static_cast<size_t>(n), 0.0f);
    r.level.assign(static_cast<size_t>(n), -1);
    if (n == 0)
        return r;
    const float* a = normalized.values.data();
    // The nodes with a path (of length >= 0) to a logit, through entries with A_hat > 0.
    std::vector<uint8_t> reaches(static_cast<size_t>(n), 0);
    std::vector<int64_t> stack;
    for (int64_t i = ranges.logits.begin; i < ranges.logits.end; ++i) {
        reaches[i] = 1;
        stack.push_back(i);
    }
    while (!stack.empty()) {
        const int64_t t = stack.back();
        stack.pop_back();
        const Adjacency::Row row = adjacency.row(t);
        for (int64_t k = 0; k < row.size; ++k)
            if (a[row.begin + k] > 0 && !reaches[row.columns[k]]) {
                reaches[row.columns[k]] = 1;
                stack.push_back(row.columns[k]);
            }
    }
    // Kahn's order over them: a node is swept once all of its targets are.
    std::vector<int32_t> pending(static_cast<size_t>(n), 0); // unswept targets
    int64_t reached = 0;
    for (int64_t t = 0; t < n; ++t) {
        if (!reaches[t])
            continue;
        ++reached;
        const Adjacency::Row row = adjacency.row(t);
        for (int64_t k = 0; k < row.size; ++k)
            if (a[row.begin + k] > 0)
                ++pending[row.columns[k]];
    }
    const float* weights = w.data();
    std::vector<double> x(static_cast<size_t>(n), 0.0);
    for (int64_t t = 0; t < n; ++t)
        if (reaches[t] && pending[t] == 0) {
            stack.push_back(t);
            r.level[t] = 0;
        }
    int64_t swept = 0;
    while (!stack.empty()) {
        const int64_t t = stack.back();
        stack.pop_back();
        ++swept;
        const double y = static_cast<double>(weights[t]) + x[t];
        const int64_t next = r.level[t] + 1;
        const Adjacency::Row row = adjacency.row(t);
        for (int64_t k = 0; k < row.size; ++k) {
            const float v = a[row.begin + k];
            if (!(v > 0))
                continue;
            const int32_t s = row.columns[k];
            x[s] += y * static_cast<double>(v);
            r.level[s] = std::max(r.level[s], next);
            if (--pending[s] == 0)
                stack.push_back(s);
        }
    }
    if (swept < reached)
        throw Error("attribution graph has a cycle through a logit: influence does not converge");
    float* out = r.influence.data();
    for (int64_t i = 0; i < n; ++i)
        out[i] = static_cast<float>(x[i]);
    return r;
}

// x summed over a range of nodes, in float64.
template<typename T> double rangeSum(const T* x, IndexRange range)
{
    double sum = 0;
    for (int64_t i = range.begin; i < range.end; ++i)
        sum += static_cast<double>(x[i]);
    return sum;
}

// The completeness sums: per node its output weight (infl + w) and the share of its inputs
// that is explained; circuit-tracer's over every node, the corrected one over nodes with inputs.
struct CompletenessSums {
    double total = 0, weighted = 0; // every node
    double totalWithInputs = 0, weightedWithInputs = 0; // nodes with a nonzero row

    void add(double output, double explainedShare, bool hasInputs)
    {
        total += output;
        weighted += explainedShare * output;
        if (hasInputs) {
            totalWithInputs += output;
            weightedWithInputs += explainedShare * output;
        }
    }
    void finish(Scores& s) const
    {
        s.completeness = total > 0 ? weighted / total : 0.0;
        s.correctedCompleteness = totalWithInputs > 0 ? weightedWithInputs / totalWithInputs : 0.0;
    }
};

Scores scoresFrom(const Adjacency& adjacency, const Normalized& normalized, const std::vector<float>& influence,
    const std::vector<float>& w, const KindRanges& ranges)
{
    const int64_t n = adjacency.size();
    const float* x = influence.data();
    const float* wv = w.data();
    Scores s;
    const double tokens = rangeSum(x, ranges.embeddings), errors = rangeSum(x, ranges.errors);
    s.replacement = tokens + errors > 0 ? tokens / (tokens + errors) : 0.0;
    CompletenessSums sums;
    for (int64_t t = 0; t < n; ++t) {
        // The share of t's normalized inputs that come from error nodes (columns are sorted, and
        // errors are one range of them).
        const Adjacency::Row row = adjacency.row(t);
        const int32_t* first = std::lower_bound(row.columns, row.columns + row.size, ranges.errors.begin);
        double errorShare = 0;
        for (const int32_t* c = first; c != row.columns + row.size && *c < ranges.errors.end; ++c)
            errorShare += normalized.values[static_cast<size_t>(row.begin + (c - row.columns))];
        sums.add(static_cast<double>(x[t]) + static_cast<double>(wv[t]), 1.0 - errorShare, row.size > 0);
    }
    sums.finish(s);
    return s;
}

// The value at which the cumulative share of `scores` (sorted descending) first reaches
// `threshold`, as circuit-tracer's find_threshold; the smallest score where rounding keeps the
// share below it. Weighted quickselect (expected linear time); reorders `scores`.
double scoreThreshold(std::vector<double>& scores, double threshold)
{
    const double target = threshold * std::accumulate(scores.begin(), scores.end(), 0.0);
    auto begin = scores.begin();
    auto end = scores.end();
    double above = 0; // the sum of the scores known to be larger than every one in [begin, end)
    while (true) {
        const double a = *begin;
        const double b = *(begin + (end - begin) / 2);
        const double c = *(end - 1);
        const double pivot = std::max(std::min(a, b), std::min(std::max(a, b), c)); // median of three
        auto greaterEnd = std::partition(begin, end, [pivot](double v) { return v > pivot; });
        auto equalEnd = std::partition(greaterEnd, end, [pivot](double v) { return v == pivot; });
        const double greater = std::accumulate(begin, greaterEnd, 0.0);
        if (greaterEnd != begin && above + greater >= target) {
            end = greaterEnd;
            continue;
        }
        above += greater + pivot * static_cast<double>(equalEnd - greaterEnd);
        if (above >= target || equalEnd == end)
            return pivot;
        begin = equalEnd;
    }
}

void checkThreshold(double value, const char* name)
{
    if (!(value >= 0.0 && value <= 1.0))
        throw Error(std::string(name) + " must be between 0 and 1, got " + std::to_string(value));
}

} // namespace

const char* nodeKindName(NodeKind kind)
{
    switch (kind) {
    case NodeKind::Feature:
        return "feature";
    case NodeKind::Error:
        return "error";
    case NodeKind::Embedding:
        return "embedding";
    case NodeKind::Logit:
        return "logit";
    }
    return "unknown";
}

bool isBasis(const std::string& basis)
{
    return basis.empty() || basis == "neurons" || basis == "mlp_out" || basis == "attn_out" || basis == "resid";
}

const char* featureTypeOf(NodeKind kind, const std::string& basis)
{
    switch (kind) {
    case NodeKind::Feature:
        if (basis == "neurons")
            return "mlp neuron";
        if (basis == "mlp_out")
            return "mlp output";
        if (basis == "attn_out")
            return "attention output";
        if (basis == "resid")
            return "residual stream";
        return "cross layer transcoder";
    case NodeKind::Error:
        return basis.empty() ? "mlp reconstruction error" : "other units";
    case NodeKind::Embedding:
        return "embedding";
    case NodeKind::Logit:
        return "logit";
    }
    return "";
}

KindRanges Graph::ranges() const
{
    int64_t counts[4] = { 0, 0, 0, 0 };
    int previous = 0;
    for (size_t i = 0; i < nodes.size(); ++i) {
        const int rank = kindRank(nodes[i].kind);
        if (rank > 3)
            throw Error("attribution graph: node " + std::to_string(i) + " has no valid kind");
        if (rank < previous)
            throw Error("attribution graph: node " + std::to_string(i) + " is " + article(nodeKindName(nodes[i].kind))
                + " after " + article(nodeKindName(nodes[i - 1].kind))
                + " (the order is features, errors, embeddings, logits)");
        previous = rank;
        ++counts[rank];
    }
    KindRanges r;
    r.features = { 0, counts[0] };
    r.errors = { r.features.end, r.features.end + counts[1] };
    r.embeddings = { r.errors.end, r.errors.end + counts[2] };
    r.logits = { r.embeddings.end, r.embeddings.end + counts[3] };
    return r;
}

int64_t Graph::nLayers() const
{
    int64_t deepest = -1;
    for (const Node& node : nodes) {
        if (node.kind == NodeKind::Logit)
            return node.layer;
        deepest = std::max(deepest, node.layer);
    }
    return deepest + 1;
}

int64_t Graph::nPositions() const
{
    int64_t n = static_cast<int64_t>(metadata.promptTokens.size());
    for (const Node& node : nodes)
        n = std::max(n, node.position + 1);
    return n;
}

void Graph::validate() const
{
    const KindRanges r = ranges();
    const int64_t n = size();
    if (!isBasis(metadata.basis))
        throw Error("attribution graph: \"" + metadata.basis
            + "\" is not a basis (transcoder features, neurons, mlp_out, attn_out or resid)");
    if (n == 0)
        throw Error("attribution graph: no nodes");
    if (r.logits.size() == 0)
        throw Error("attribution graph: no logit node (a graph explains at least one logit)");
    if (adjacency.size() != n)
        throw Error("attribution graph: the adjacency matrix must be [" + std::to_string(n) + ", " + std::to_string(n)
            + "] for " + std::to_string(n) + " nodes");
    const int64_t nLogits = r.logits.size();
    const auto nProbabilities = static_cast<int64_t>(logitProbabilities.size());
    if (nProbabilities != nLogits)
        throw Error("attribution graph: " + std::to_string(nProbabilities) + " logit probabilities for "
            + std::to_string(nLogits) + " logit nodes");
    for (const float p : logitProbabilities)
        if (!std::isfinite(p) || p < 0)
            throw Error("attribution graph: logit probabilities must be finite and non-negative");

    // The nodes: each within the prompt and the model's layers (the logits' layer is n_layers),
    // with ids a file can hold; one node per id.
    const int64_t nLayers = nodes[static_cast<size_t>(r.logits.begin)].layer;
    const auto nPositions = static_cast<int64_t>(metadata.promptTokens.size());
    const auto refuse = [&](int64_t i, const std::string& why) {
        throw Error("attribution graph: node " + std::to_string(i) + " (" + nodeKindName(nodes[i].kind) + " "
            + nodeId(*this, i) + ") " + why);
    };
    const auto inUnitRange = [](int64_t id) { return id >= 0 && id <= kMaxUnitId; };
    for (int64_t i = 0; i < n; ++i) {
        const Node& node = nodes[static_cast<size_t>(i)];
        if (node.position < 0 || node.position >= nPositions)
            refuse(i,
                "is at position " + std::to_string(node.position) + ", outside the prompt's "
                    + std::to_string(nPositions) + " tokens");
        switch (node.kind) {
        case NodeKind::Feature:
        case NodeKind::Error:
            if (node.layer < 0 || node.layer >= nLayers)
                refuse(i,
                    "is at layer " + std::to_string(node.layer) + ", outside the graph's " + std::to_string(nLayers)
                        + " layers (the logits are at layer " + std::to_string(nLayers) + ")");
            if (node.kind == NodeKind::Feature && !inUnitRange(node.feature))
                refuse(i, "has feature index " + std::to_string(node.feature) + " (not in [0, 2^31))");
            break;
        case NodeKind::Embedding:
            if (node.layer != -1)
                refuse(i, "is at layer " + std::to_string(node.layer) + " (embeddings are at -1)");
            if (!inUnitRange(node.tokenId))
                refuse(i, "has token id " + std::to_string(node.tokenId) + " (not in [0, 2^31))");
            break;
        case NodeKind::Logit:
            if (node.layer != nLayers)
                refuse(i,
                    "is at layer " + std::to_string(node.layer) + " but the first logit at " + std::to_string(nLayers)
                        + " (logit nodes sit at one layer)");
            if (!inUnitRange(node.tokenId))
                refuse(i, "has token id " + std::to_string(node.tokenId) + " (not in [0, 2^31))");
            if (node.contrastTokenId != -1 && !inUnitRange(node.contrastTokenId))
                refuse(i, "has contrast token id " + std::to_string(node.contrastTokenId) + " (not in [0, 2^31))");
            if (!(node.tokenProb >= 0 && node.tokenProb <= 1)
                || !(node.contrastTokenProb >= 0 && node.contrastTokenProb <= 1))
                refuse(i, "has a token probability outside [0, 1]");
            break;
        }
        if (!std::isfinite(node.activation))
            refuse(i, "has an infinite or NaN activation");
    }
    {
        std::vector<std::tuple<int, int64_t, int64_t, int64_t, int64_t>> keys; // what nodeId spells
        keys.reserve(static_cast<size_t>(n));
        for (const Node& node : nodes) {
            const int64_t unit = node.kind == NodeKind::Feature ? node.feature
                : node.kind == NodeKind::Error                  ? -1
                                                                : node.tokenId;
            keys.emplace_back(kindRank(node.kind), node.layer, unit,
                node.kind == NodeKind::Logit ? node.contrastTokenId : -1, node.position);
        }
        std::vector<int64_t> order(static_cast<size_t>(n));
        std::iota(order.begin(), order.end(), 0);
        std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return keys[a] < keys[b]; });
        for (size_t k = 1; k < order.size(); ++k)
            if (keys[order[k]] == keys[order[k - 1]])
                refuse(std::max(order[k], order[k - 1]),
                    "repeats node " + std::to_string(std::min(order[k], order[k - 1])) + " (the same id)");
    }

    // The links: finite, none into an embedding (they have no inputs), none from a node to
    // itself, and each node's inputs summing to what float32 holds (the influence divides by it).
    for (int64_t t = 0; t < n; ++t) {
        const Adjacency::Row row = adjacency.row(t);
        if (row.size > 0 && nodes[static_cast<size_t>(t)].kind == NodeKind::Embedding)
            throw Error("attribution graph: the link from " + nodeId(*this, row.columns[0]) + " to " + nodeId(*this, t)
                + " goes into an embedding node (embeddings have no inputs)");
        double sum = 0;
        for (int64_t k = 0; k < row.size; ++k) {
            if (!std::isfinite(row.values[k]))
                throw Error("attribution graph: the link from " + nodeId(*this, row.columns[k]) + " to "
                    + nodeId(*this, t) + " has an infinite or NaN weight");
            if (row.columns[k] == t)
                throw Error("attribution graph: a self-loop on node " + nodeId(*this, t) + " (a link to itself)");
            sum += std::abs(static_cast<double>(row.values[k]));
        }
        if (sum > static_cast<double>(std::numeric_limits<float>::max()))
            throw Error("attribution graph: the weights of the links into " + nodeId(*this, t)
                + " sum to more than float32 holds (" + std::to_string(sum) + ")");
    }

    // No cycle: direct effects come from a forward pass, and the influence (a series over paths)
    // would not converge; the pruner refused such a graph only after a reader had accepted it
    // (fuzz_graph_json). Kahn's algorithm on the rows: a node leaves once every target it feeds
    // has left, so the nodes left over feed a cycle. O(n + nnz).
    std::vector<int64_t> outputs(static_cast<size_t>(n), 0); // [n]: links out of each node not yet left
    for (int64_t e = 0; e < adjacency.nnz(); ++e)
        ++outputs[static_cast<size_t>(adjacency.columns()[e])];
    std::vector<int64_t> ready;
    for (int64_t i = 0; i < n; ++i)
        if (outputs[static_cast<size_t>(i)] == 0)
            ready.push_back(i);
    int64_t left = 0;
    while (!ready.empty()) {
        const int64_t t = ready.back();
        ready.pop_back();
        ++left;
        const Adjacency::Row row = adjacency.row(t);
        for (int64_t k = 0; k < row.size; ++k)
            if (--outputs[static_cast<size_t>(row.columns[k])] == 0)
                ready.push_back(row.columns[k]);
    }
    if (left < n) {
        // Every node left over feeds another one left over: follow those links until a node
        // repeats, which lies on a cycle.
        int64_t at = 0;
        while (outputs[static_cast<size_t>(at)] == 0)
            ++at;
        std::vector<bool> seen(static_cast<size_t>(n), false);
        while (!seen[static_cast<size_t>(at)]) {
            seen[static_cast<size_t>(at)] = true;
            const Adjacency::Column column = adjacency.column(at);
            for (int64_t k = 0; k < column.size; ++k)
                if (outputs[static_cast<size_t>(column.targets[k])] > 0) {
                    at = column.targets[k];
                    break;
                }
        }
        throw Error("attribution graph: the links form a cycle through node " + nodeId(*this, at)
            + " (direct effects run forward, from the prompt to the logits)");
    }
}

int64_t cantorPairing(int64_t layer, int64_t feature)
{
    return (layer + feature) * (layer + feature + 1) / 2 + feature;
}

std::pair<int64_t, int64_t> cantorUnpair(int64_t z)
{
    // w = x + y is the largest w with w (w + 1) / 2 <= z; the float estimate is corrected exactly.
    auto w = static_cast<int64_t>((std::sqrt(8.0 * static_cast<double>(z) + 1.0) - 1.0) / 2.0);
    while ((w + 1) * (w + 2) / 2 <= z)
        ++w;
    while (w > 0 && w * (w + 1) / 2 > z)
        --w;
    const int64_t y = z - w * (w + 1) / 2;
    return { w - y, y };
}

std::string nodeId(const Graph& graph, int64_t index)
{
    const Node& node = graph.nodes.at(static_cast<size_t>(index));
    const std::string pos = std::to_string(node.position);
    switch (node.kind) {
    case NodeKind::Feature:
        return std::to_string(node.layer) + "_" + std::to_string(node.feature) + "_" + pos;
    case NodeKind::Error:
        return std::to_string(node.layer) + "_-1_" + pos;
    case NodeKind::Embedding:
        return "E_" + std::to_string(node.tokenId) + "_" + pos;
    case NodeKind::Logit:
        return std::to_string(node.layer + 1) + "_" + std::to_string(node.tokenId)
            + (node.contrastTokenId >= 0 ? "vs" + std::to_string(node.contrastTokenId) : std::string()) + "_" + pos;
    }
    return {};
}

std::string fileNodeId(const Graph& graph, int64_t index)
{
    const Node& node = graph.nodes.at(static_cast<size_t>(index));
    if (node.kind == NodeKind::Error)
        return "0_" + std::to_string(node.layer) + "_" + std::to_string(node.position);
    return nodeId(graph, index);
}

Pruner::Pruner(const Graph& graph)
{
    graph.validate();
    m_n = graph.size();
    m_ranges = graph.ranges();
    m_adjacency = graph.adjacency;
    Normalized normalized = normalizedAbs(m_adjacency); // A_hat
    m_logitWeights = logitWeightVector(m_n, m_ranges, graph.logitProbabilities);
    const Influence infl = sparseInfluence(m_adjacency, normalized, m_logitWeights, m_ranges);
    m_influence = infl.influence;
    m_scores = scoresFrom(m_adjacency, normalized, m_influence, m_logitWeights, m_ranges);
    m_normalized = std::move(normalized.values);
    m_rowScale = std::move(normalized.rowScale);
    m_hasInputs.resize(static_cast<size_t>(m_n));
    for (int64_t t = 0; t < m_n; ++t)
        m_hasInputs[t] = m_adjacency.row(t).size > 0;

    // The node threshold's sorted influence and cumulative share; each node's share.
    std::vector<int64_t> byInfluence(static_cast<size_t>(m_n));
    std::iota(byInfluence.begin(), byInfluence.end(), 0);
    const float* x = m_influence.data();
    std::stable_sort(byInfluence.begin(), byInfluence.end(), [x](int64_t a, int64_t b) { return x[a] > x[b]; });
    m_sortedInfluence.resize(static_cast<size_t>(m_n));
    m_sortedShare.resize(static_cast<size_t>(m_n));
    double prefix = 0;
    for (int64_t i = 0; i < m_n; ++i) {
        m_sortedInfluence[i] = x[byInfluence[i]];
        prefix += x[byInfluence[i]];
        m_sortedShare[i] = prefix;
    }
    m_cumulative.assign(static_cast<size_t>(m_n), 0.0f);
    float* cumulative = m_cumulative.data();
    for (int64_t i = 0; i < m_n; ++i) {
        m_sortedShare[i] = prefix > 0 ? m_sortedShare[i] / prefix : 0.0;
        cumulative[byInfluence[i]] = static_cast<float>(m_sortedShare[i]);
    }

    // Level order: nodes with a path to a logit, by the length of their longest one (a
    // counting sort).
    const std::vector<int64_t>& level = infl.level;
    int64_t nLevels = 0;
    for (int64_t i = 0; i < m_n; ++i)
        nLevels = std::max(nLevels, level[i] + 1);
    std::vector<int64_t> levelStart(static_cast<size_t>(nLevels + 1), 0);
    for (int64_t i = 0; i < m_n; ++i)
        if (level[i] >= 0)
            ++levelStart[level[i] + 1];
    for (int64_t l = 0; l < nLevels; ++l)
        levelStart[l + 1] += levelStart[l];
    m_order.resize(static_cast<size_t>(levelStart.back()));
    for (int64_t i = 0; i < m_n; ++i)
        if (level[i] >= 0)
            m_order[levelStart[level[i]]++] = i;
}

PruneResult Pruner::prune(double nodeThreshold, double edgeThreshold) const
{
    checkThreshold(nodeThreshold, "node_threshold");
    checkThreshold(edgeThreshold, "edge_threshold");
    const int64_t n = m_n;
    PruneResult result;
    result.nodeMask.assign(static_cast<size_t>(n), false);
    result.cumulativeInfluence = m_cumulative;
    result.edgeMask.assign(static_cast<size_t>(m_adjacency.nnz()), false);
    if (n == 0)
        return result;

    // 1. Nodes: influence at least the value where the cumulative share reaches the threshold.
    float nodeCut = 0;
    if (m_sortedShare.back() > 0) {
        auto it = std::lower_bound(m_sortedShare.begin(), m_sortedShare.end(), nodeThreshold);
        const size_t i = std::min(static_cast<size_t>(it - m_sortedShare.begin()), m_sortedShare.size() - 1);
        nodeCut = m_sortedInfluence[i];
    }
    const float* x = m_influence.data();
    const float* w = m_logitWeights.data();
    std::vector<bool> kept(static_cast<size_t>(n));
    std::vector<uint8_t> keptByte(static_cast<size_t>(n)); // kept, for the hot loops
    for (int64_t i = 0; i < n; ++i) {
        kept[i] = x[i] >= nodeCut || i >= m_ranges.embeddings.begin;
        keptByte[i] = kept[i];
    }

    // 2. Edges. Sweep the level order: when node i is reached, every kept target of i has
    // pushed y_t A_hat[t, i] into acc[i], so acc[i] is i's influence x_p in the pruned graph;
    // then y_i = (w_i + x_p[i]) / (i's row sum over kept sources) scales i's own row, and
    // y_i A_hat[i, s] is both the edge score of s -> i and s's share of that influence.
    const float* a = m_normalized.data();
    std::vector<double> acc(static_cast<size_t>(n), 0.0); // x_p, by node
    std::vector<double> y(static_cast<size_t>(n), 0.0);
    std::vector<double> scores; // every positive edge score
    for (const int64_t i : m_order) {
        if (!keptByte[i])
            continue;
        const Adjacency::Row row = m_adjacency.row(i);
        const float* values = a + row.begin;
        double rowSum = 0;
        for (int64_t k = 0; k < row.size; ++k)
            if (keptByte[row.columns[k]])
                rowSum += values[k];
        const double numerator = w[i] + acc[i];
        if (rowSum <= 0 || numerator <= 0)
            continue;
        const double yi = numerator * m_rowScale[i] / std::max(m_rowScale[i] * rowSum, kRowSumFloor);
        y[i] = yi;
        for (int64_t k = 0; k < row.size; ++k) {
            const int32_t s = row.columns[k];
            const double e = yi * static_cast<double>(values[k]);
            if (keptByte[s] && e > 0) {
                acc[s] += e;
                scores.push_back(e);
            }
        }
    }

    struct Edge {
        int64_t entry; // the adjacency's entry number
        int32_t target, source;
    };
    std::vector<Edge> edges;
    if (!scores.empty()) {
        const double edgeCut = scoreThreshold(scores, edgeThreshold);
        std::vector<double>().swap(scores);
        for (const int64_t i : m_order) {
            if (y[i] <= 0)
                continue;
            const Adjacency::Row row = m_adjacency.row(i);
            const float* values = a + row.begin;
            for (int64_t k = 0; k < row.size; ++k) {
                const int32_t s = row.columns[k];
                const double e = y[i] * static_cast<double>(values[k]);
                if (keptByte[s] && e > 0 && e >= edgeCut)
                    edges.push_back({ row.entry(k), static_cast<int32_t>(i), s });
            }
        }
    }

    // 3. Dangling nodes. Features and errors need a kept outgoing edge, features a kept
    // incoming one; dropping a node drops its edges, which may strand others: a queue runs
    // this to the same fixed point as circuit-tracer's repeated sweeps.
    const size_t nEdges = edges.size();
    std::vector<int64_t> outDegree(static_cast<size_t>(n), 0), inDegree(static_cast<size_t>(n), 0);
    for (const Edge& e : edges) {
        ++inDegree[e.target];
        ++outDegree[e.source];
    }
    // Edge lists by target and by source (counting sort).
    std::vector<size_t> byTargetStart(static_cast<size_t>(n + 1), 0), bySourceStart(static_cast<size_t>(n + 1), 0);
    for (const Edge& e : edges) {
        ++byTargetStart[e.target + 1];
        ++bySourceStart[e.source + 1];
    }
    for (int64_t i = 0; i < n; ++i) {
        byTargetStart[i + 1] += byTargetStart[i];
        bySourceStart[i + 1] += bySourceStart[i];
    }
    std::vector<size_t> byTarget(nEdges), bySource(nEdges);
    {
        std::vector<size_t> ft(byTargetStart.begin(), byTargetStart.end() - 1);
        std::vector<size_t> fs(bySourceStart.begin(), bySourceStart.end() - 1);
        for (size_t e = 0; e < nEdges; ++e) {
            byTarget[ft[edges[e].target]++] = e;
            bySource[fs[edges[e].source]++] = e;
        }
    }
    const auto dangling = [&](int64_t i) {
        if (!kept[i])
            return false;
        if (m_ranges.features.contains(i))
            return outDegree[i] == 0 || inDegree[i] == 0;
        if (m_ranges.errors.contains(i))
            return outDegree[i] == 0;
        return false;
    };
    std::vector<bool> edgeAlive(nEdges, true);
    std::vector<int64_t> queue;
    for (int64_t i = 0; i < m_ranges.embeddings.begin; ++i)
        if (dangling(i))
            queue.push_back(i);
    while (!queue.empty()) {
        const int64_t u = queue.back();
        queue.pop_back();
        if (!kept[u])
            continue;
        kept[u] = false;
        for (size_t p = byTargetStart[u]; p < byTargetStart[u + 1]; ++p) {
            const size_t e = byTarget[p];
            if (!edgeAlive[e])
                continue;
            edgeAlive[e] = false;
            const int64_t s = edges[e].source;
            --outDegree[s];
            if (dangling(s))
                queue.push_back(s);
        }
        for (size_t p = bySourceStart[u]; p < bySourceStart[u + 1]; ++p) {
            const size_t e = bySource[p];
            if (!edgeAlive[e])
                continue;
            edgeAlive[e] = false;
            const int64_t t = edges[e].target;
            --inDegree[t];
            if (dangling(t))
                queue.push_back(t);
        }
    }

    result.nodeMask = kept;
    for (size_t e = 0; e < nEdges; ++e)
        if (edgeAlive[e])
            result.edgeMask[static_cast<size_t>(edges[e].entry)] = true;
    return result;
}

Scores Pruner::scoresOf(const PruneResult& kept) const
{
    if (static_cast<int64_t>(kept.nodeMask.size()) != m_n
        || static_cast<int64_t>(kept.edgeMask.size()) != m_adjacency.nnz())
        throw Error("scores: the prune result does not belong to this graph");
    const int64_t n = m_n;
    const float* a = m_normalized.data();
    const float* x = m_influence.data();
    const float* w = m_logitWeights.data();
    const std::vector<bool>& keptNode = kept.nodeMask;
    const auto edgeKept = [&](int64_t t, const Adjacency::Row& row, int64_t k) {
        return kept.edgeMask[static_cast<size_t>(row.entry(k))] && keptNode[t] && keptNode[row.columns[k]];
    };

    // Influence through kept edges only, by the same sweep as the whole graph's (targets
    // before their sources), with the whole graph's A_hat.
    std::vector<double> acc(static_cast<size_t>(n), 0.0);
    for (const int64_t t : m_order) {
        const double y = (keptNode[t] ? static_cast<double>(w[t]) : 0.0) + acc[t];
        if (!(y > 0))
            continue;
        const Adjacency::Row row = m_adjacency.row(t);
        for (int64_t k = 0; k < row.size; ++k)
            if (edgeKept(t, row, k))
                acc[row.columns[k]] += y * static_cast<double>(a[row.begin + k]);
    }
    Scores s;
    const double tokens = rangeSum(acc.data(), m_ranges.embeddings);
    const double whole = rangeSum(x, m_ranges.embeddings) + rangeSum(x, m_ranges.errors);
    s.replacement = whole > 0 ? tokens / whole : 0.0;

    CompletenessSums sums;
    for (int64_t t = 0; t < n; ++t) {
        const Adjacency::Row row = m_adjacency.row(t);
        double unexplained = 0; // error inputs, and inputs left out
        for (int64_t k = 0; k < row.size; ++k)
            if (m_ranges.errors.contains(row.columns[k]) || !edgeKept(t, row, k))
                unexplained += a[row.begin + k];
        const double share = m_hasInputs[t] ? std::max(0.0, 1.0 - unexplained) : 1.0;
        sums.add(static_cast<double>(x[t]) + static_cast<double>(w[t]), share, m_hasInputs[t] != 0);
    }
    sums.finish(s);
    return s;
}

Scores Pruner::subgraphScores(const std::vector<bool>& pinned, const PruneResult* pruned) const
{
    if (static_cast<int64_t>(pinned.size()) != m_n)
        throw Error("subgraph scores: " + std::to_string(pinned.size()) + " pinned flags for " + std::to_string(m_n)
            + " nodes");
    if (pruned
        && (static_cast<int64_t>(pruned->nodeMask.size()) != m_n
            || static_cast<int64_t>(pruned->edgeMask.size()) != m_adjacency.nnz()))
        throw Error("subgraph scores: the prune result does not belong to this graph");
    PruneResult kept;
    kept.nodeMask.resize(static_cast<size_t>(m_n));
    for (int64_t i = 0; i < m_n; ++i)
        kept.nodeMask[i] = (!m_ranges.features.contains(i) || pinned[i]) && (!pruned || pruned->nodeMask[i]);
    if (pruned)
        kept.edgeMask = pruned->edgeMask;
    else
        kept.edgeMask.assign(static_cast<size_t>(m_adjacency.nnz()), true);
    return scoresOf(kept);
}

PathLengths pathLengths(const Graph& graph, int64_t maxLength)
{
    graph.validate();
    const int64_t n = graph.size();
    const KindRanges ranges = graph.ranges();
    const Adjacency& adjacency = graph.adjacency;
    const Normalized normalized = normalizedAbs(adjacency); // A_hat, as pruning has it
    const std::vector<float> w = logitWeightVector(n, ranges, graph.logitProbabilities);
    const Influence infl = sparseInfluence(adjacency, normalized, w, ranges);
    PathLengths r;
    for (int64_t i = 0; i < n; ++i)
        r.longestPath = std::max(r.longestPath, infl.level[static_cast<size_t>(i)]);
    for (int64_t e = ranges.embeddings.begin; e < ranges.embeddings.end; ++e)
        r.total += static_cast<double>(infl.influence[static_cast<size_t>(e)]);
    const int64_t length = maxLength < 0 ? r.longestPath : maxLength;
    r.cumulative.assign(static_cast<size_t>(length) + 1, 0.0);
    // x_l = w^T A_hat^l: one propagation from the targets towards the sources per length.
    std::vector<double> x(w.begin(), w.end()), next(static_cast<size_t>(n), 0.0);
    double weighted = 0;
    for (int64_t l = 1; l <= length; ++l) {
        std::fill(next.begin(), next.end(), 0.0);
        for (int64_t t = 0; t < n; ++t) {
            const double y = x[static_cast<size_t>(t)];
            if (y == 0)
                continue;
            const Adjacency::Row row = adjacency.row(t);
            for (int64_t k = 0; k < row.size; ++k) {
                const double v = static_cast<double>(normalized.values[static_cast<size_t>(row.begin + k)]);
                if (v > 0)
                    next[static_cast<size_t>(row.columns[k])] += y * v;
            }
        }
        x.swap(next);
        double reached = 0;
        for (int64_t e = ranges.embeddings.begin; e < ranges.embeddings.end; ++e)
            reached += x[static_cast<size_t>(e)];
        r.cumulative[static_cast<size_t>(l)] = r.cumulative[static_cast<size_t>(l) - 1] + reached;
        weighted += static_cast<double>(l) * reached;
    }
    r.meanLength = r.total > 0 ? weighted / r.total : 0.0;
    return r;
}

nlohmann::json pathLengthsJson(const PathLengths& p)
{
    nlohmann::json share = nlohmann::json::array();
    for (const double c : p.cumulative)
        share.push_back(p.total > 0 ? c / p.total : 0.0);
    return { { "cumulative", p.cumulative }, { "share", share }, { "total", p.total }, { "mean_length", p.meanLength },
        { "longest_path", p.longestPath } };
}

float Pruner::influenceOf(int64_t node) const
{
    if (node < 0 || node >= m_n)
        throw Error("node " + std::to_string(node) + " is not in the graph (" + std::to_string(m_n) + " nodes)");
    return m_influence[static_cast<size_t>(node)];
}

int64_t PruneResult::edgeCount() const
{
    return static_cast<int64_t>(std::count(edgeMask.begin(), edgeMask.end(), true));
}

bool PruneResult::fits(const Graph& graph) const
{
    return static_cast<int64_t>(nodeMask.size()) == graph.size()
        && static_cast<int64_t>(edgeMask.size()) == graph.adjacency.nnz();
}

bool PruneResult::edgeKept(const Graph& graph, int64_t t, int64_t s) const
{
    const int64_t e = graph.adjacency.find(t, s);
    return e >= 0 && static_cast<size_t>(e) < edgeMask.size() && edgeMask[static_cast<size_t>(e)];
}

PruneResult keepAll(const Graph& graph)
{
    const Pruner pruner(graph);
    PruneResult result;
    result.nodeMask.assign(static_cast<size_t>(graph.size()), true);
    result.edgeMask.assign(static_cast<size_t>(graph.adjacency.nnz()), true);
    result.cumulativeInfluence = pruner.cumulativeInfluence();
    return result;
}

Scores graphScores(const Graph& graph)
{
    return Pruner(graph).scores();
}

nlohmann::json scoresJson(const Scores& s)
{
    return { { "replacement", s.replacement }, { "completeness", s.completeness },
        { "corrected_completeness", s.correctedCompleteness } };
}

nlohmann::json scoresMetadata(const Pruner& pruner, const PruneResult& pruned)
{
    nlohmann::json j = scoresJson(pruner.scores());
    j["full"] = scoresJson(pruner.scores());
    j["pruned"] = scoresJson(pruner.scoresOf(pruned));
    return j;
}

Scores subgraphScores(const Graph& graph, const std::vector<bool>& pinned, const PruneResult* pruned)
{
    return Pruner(graph).subgraphScores(pinned, pruned);
}

Scores neuronpediaSubgraphScores(const Graph& graph, const std::vector<bool>& pinned, const PruneResult* pruned)
{
    graph.validate();
    const int64_t n = graph.size();
    if (static_cast<int64_t>(pinned.size()) != n)
        throw Error(
            "subgraph scores: " + std::to_string(pinned.size()) + " pinned flags for " + std::to_string(n) + " nodes");
    const KindRanges ranges = graph.ranges();
    std::vector<bool> present(static_cast<size_t>(n), true);
    if (pruned) {
        if (!pruned->fits(graph))
            throw Error("subgraph scores: the prune result does not belong to this graph");
        present = pruned->nodeMask;
    }

    // Where each source's column goes: itself, or (an unpinned feature) its error node at the
    // same layer and position, or nowhere (-1: absent, or an unpinned feature without one).
    std::map<std::pair<int64_t, int64_t>, int64_t> errorAt;
    for (int64_t i = ranges.errors.begin; i < ranges.errors.end; ++i)
        if (present[i])
            errorAt[{ graph.nodes[i].layer, graph.nodes[i].position }] = i;
    std::vector<int64_t> columnTo(static_cast<size_t>(n), -1);
    std::vector<bool> rowCleared(static_cast<size_t>(n), false);
    for (int64_t i = 0; i < n; ++i) {
        if (!present[i]) {
            rowCleared[i] = true;
            continue;
        }
        if (ranges.features.contains(i) && !pinned[i]) {
            rowCleared[i] = true;
            auto e = errorAt.find({ graph.nodes[i].layer, graph.nodes[i].position });
            if (e != errorAt.end())
                columnTo[i] = e->second;
            continue;
        }
        columnTo[i] = i;
    }

    // The merged matrix, row by row: kept entries moved to their column, those landing on the
    // same column summed (signed, in float64) before A_hat takes absolute values.
    const Adjacency& a = graph.adjacency;
    AdjacencyBuilder builder(n);
    std::vector<double> sum(static_cast<size_t>(n), 0.0);
    std::vector<uint8_t> touched(static_cast<size_t>(n), 0);
    std::vector<int32_t> columns;
    std::vector<float> values;
    for (int64_t t = 0; t < n; ++t) {
        if (rowCleared[t])
            continue;
        const Adjacency::Row row = a.row(t);
        columns.clear();
        for (int64_t k = 0; k < row.size; ++k) {
            if (pruned && !pruned->edgeMask[static_cast<size_t>(row.entry(k))])
                continue;
            const int64_t to = columnTo[row.columns[k]];
            if (to < 0)
                continue;
            if (!touched[to]) {
                touched[to] = 1;
                columns.push_back(static_cast<int32_t>(to));
            }
            sum[to] += row.values[k];
        }
        std::sort(columns.begin(), columns.end());
        values.clear();
        for (const int32_t c : columns) {
            values.push_back(static_cast<float>(sum[c]));
            sum[c] = 0;
            touched[c] = 0;
        }
        builder.setRow(t, columns, values);
    }
    const Adjacency merged = builder.build();

    const Normalized normalized = normalizedAbs(merged);
    const std::vector<float> w = logitWeightVector(n, ranges, graph.logitProbabilities);
    const Influence infl = sparseInfluence(merged, normalized, w, ranges);
    return scoresFrom(merged, normalized, infl.influence, w, ranges);
}

} // namespace cs::graph
