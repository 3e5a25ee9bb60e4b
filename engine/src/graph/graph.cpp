// Attribution graphs: node bookkeeping, influence, pruning and scores (DESIGN §4). The
// definitions follow circuit-tracer's graph.py (normalize_matrix, compute_influence,
// prune_graph, compute_graph_scores) and Neuronpedia's subgraph score; see cs/graph.h.

#include "cs/graph.h"

#include "cs/error.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <string>
#include <utility>

namespace cs::graph {

namespace {

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

// |A| / max(row sum, floor): rows summing to 1, zero rows staying zero.            [n, n]
at::Tensor normalizedAbs(const at::Tensor& adjacency, at::Tensor* rowScale = nullptr)
{
    at::Tensor normalized = adjacency.to(at::kCPU, at::kFloat).abs().contiguous(); // a fresh tensor
    at::Tensor scale = normalized.sum(1).clamp_min(kRowSumFloor); // [n]
    normalized.div_(scale.unsqueeze(1));
    if (rowScale)
        *rowScale = scale;
    return normalized;
}

at::Tensor logitWeightVector(int64_t n, const KindRanges& ranges, const at::Tensor& probabilities)
{
    at::Tensor w = at::zeros({ n }, at::kFloat); // [n]
    if (ranges.logits.size() > 0)
        w.slice(0, ranges.logits.begin, ranges.logits.end).copy_(probabilities.to(at::kCPU, at::kFloat).reshape(-1));
    return w;
}

struct Influence {
    at::Tensor influence; // [n] float32: w^T (A_hat + A_hat^2 + ...)
    at::Tensor level; // [n] int64: the longest path (in edges) to a logit; -1 without one
};

// circuit-tracer's compute_influence: the series w A_hat + w A_hat^2 + ..., one term per
// matrix-vector product, until a term is all zero (A_hat is nilpotent on a DAG). A second row
// carried through the same products marks the nodes with a path of each length to a logit
// (1 where A_hat has a nonzero); the last length at which a node is marked is its level.
Influence seriesInfluence(const at::Tensor& normalized, const at::Tensor& w, const KindRanges& ranges)
{
    const int64_t n = normalized.size(0);
    Influence r;
    r.influence = at::zeros({ n }, at::kFloat);
    r.level = at::full({ n }, -1, at::kLong);
    if (n == 0)
        return r;
    at::Tensor terms = at::zeros({ 2, n }, at::kFloat); // [2, n]: the series term; the reach
    terms[0].copy_(w);
    terms[1].slice(0, ranges.logits.begin, ranges.logits.end).fill_(1);
    r.level.slice(0, ranges.logits.begin, ranges.logits.end).fill_(0);
    for (int64_t k = 1;; ++k) {
        at::Tensor next = at::mm(terms, normalized); // [2, n]
        at::Tensor reached = next[1] > 0; // [n] bool
        if (!reached.any().item<bool>())
            break; // every later term is zero too
        if (k > n)
            throw Error("attribution graph has a cycle through a logit: influence does not converge");
        r.influence.add_(next[0]);
        r.level.masked_fill_(reached, k);
        terms[0].copy_(next[0]);
        terms[1].copy_(reached.to(at::kFloat));
    }
    return r;
}

Scores scoresFrom(
    const at::Tensor& normalized, const at::Tensor& influence, const at::Tensor& w, const KindRanges& ranges)
{
    const at::Tensor x = influence.to(at::kDouble);
    const at::Tensor wd = w.to(at::kDouble);
    Scores s;
    const double tokens = x.slice(0, ranges.embeddings.begin, ranges.embeddings.end).sum().item<double>();
    const double errors = x.slice(0, ranges.errors.begin, ranges.errors.end).sum().item<double>();
    s.replacement = tokens + errors > 0 ? tokens / (tokens + errors) : 0.0;
    const at::Tensor errorShare
        = normalized.slice(1, ranges.errors.begin, ranges.errors.end).to(at::kDouble).sum(1); // [n]
    const at::Tensor output = x + wd; // [n]
    const double total = output.sum().item<double>();
    s.completeness = total > 0 ? ((1.0 - errorShare) * output).sum().item<double>() / total : 0.0;
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

KindRanges Graph::ranges() const
{
    int64_t counts[4] = { 0, 0, 0, 0 };
    int previous = 0;
    for (size_t i = 0; i < nodes.size(); ++i) {
        const int rank = kindRank(nodes[i].kind);
        if (rank > 3)
            throw Error("attribution graph: node " + std::to_string(i) + " has no valid kind");
        if (rank < previous)
            throw Error("attribution graph: node " + std::to_string(i) + " is a " + nodeKindName(nodes[i].kind)
                + " after a " + nodeKindName(nodes[i - 1].kind)
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
    if (!adjacency.defined() || adjacency.dim() != 2 || adjacency.size(0) != n || adjacency.size(1) != n)
        throw Error("attribution graph: the adjacency matrix must be [" + std::to_string(n) + ", " + std::to_string(n)
            + "] for " + std::to_string(n) + " nodes");
    if (!at::isFloatingType(adjacency.scalar_type()))
        throw Error("attribution graph: the adjacency matrix must hold floating-point values");
    const int64_t nLogits = r.logits.size();
    const int64_t nProbabilities = logitProbabilities.defined() ? logitProbabilities.numel() : 0;
    if (nProbabilities != nLogits)
        throw Error("attribution graph: " + std::to_string(nProbabilities) + " logit probabilities for "
            + std::to_string(nLogits) + " logit nodes");
    if (n > 0 && !at::isfinite(adjacency).all().item<bool>())
        throw Error("attribution graph: the adjacency matrix holds an infinite or NaN value");
    if (nLogits > 0) {
        const at::Tensor p = logitProbabilities.to(at::kCPU, at::kDouble);
        if (!at::isfinite(p).all().item<bool>() || (p < 0).any().item<bool>())
            throw Error("attribution graph: logit probabilities must be finite and non-negative");
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
        return std::to_string(node.layer + 1) + "_" + std::to_string(node.tokenId) + "_" + pos;
    }
    return {};
}

Pruner::Pruner(const Graph& graph)
{
    graph.validate();
    m_n = graph.size();
    m_ranges = graph.ranges();
    at::Tensor rowScale; // [n]
    const at::Tensor normalized = normalizedAbs(graph.adjacency, &rowScale); // [n, n] A_hat
    m_logitWeights = logitWeightVector(m_n, m_ranges, graph.logitProbabilities);
    const Influence infl = seriesInfluence(normalized, m_logitWeights, m_ranges);
    m_influence = infl.influence;
    m_scores = scoresFrom(normalized, m_influence, m_logitWeights, m_ranges);

    // The node threshold's sorted influence and cumulative share; each node's share.
    std::vector<int64_t> byInfluence(static_cast<size_t>(m_n));
    std::iota(byInfluence.begin(), byInfluence.end(), 0);
    const float* x = m_influence.data_ptr<float>();
    std::stable_sort(byInfluence.begin(), byInfluence.end(), [x](int64_t a, int64_t b) { return x[a] > x[b]; });
    m_sortedInfluence.resize(static_cast<size_t>(m_n));
    m_sortedShare.resize(static_cast<size_t>(m_n));
    double prefix = 0;
    for (int64_t i = 0; i < m_n; ++i) {
        m_sortedInfluence[i] = x[byInfluence[i]];
        prefix += x[byInfluence[i]];
        m_sortedShare[i] = prefix;
    }
    m_cumulative = at::zeros({ m_n }, at::kFloat);
    float* cumulative = m_cumulative.data_ptr<float>();
    for (int64_t i = 0; i < m_n; ++i) {
        m_sortedShare[i] = prefix > 0 ? m_sortedShare[i] / prefix : 0.0;
        cumulative[byInfluence[i]] = static_cast<float>(m_sortedShare[i]);
    }

    // Level order: nodes with a path to a logit, by the length of their longest one (a
    // counting sort); then A_hat's nonzero entries among them, row by row in that order.
    const int64_t* level = infl.level.data_ptr<int64_t>();
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
    std::vector<int64_t> positionOf(static_cast<size_t>(m_n), -1);
    for (int64_t i = 0; i < m_n; ++i)
        if (level[i] >= 0) {
            positionOf[i] = levelStart[level[i]]++;
            m_order[positionOf[i]] = i;
        }
    const float* a = normalized.data_ptr<float>();
    const at::Tensor scaleDouble = rowScale.to(at::kDouble).contiguous();
    const double* scale = scaleDouble.data_ptr<double>();
    const float* w = m_logitWeights.data_ptr<float>();
    m_rowStart.assign(1, 0);
    for (const int64_t t : m_order) {
        const float* row = a + t * m_n;
        for (int64_t s = 0; s < m_n; ++s)
            if (row[s] != 0 && positionOf[s] >= 0) {
                m_columns.push_back(static_cast<int32_t>(positionOf[s]));
                m_values.push_back(row[s]);
            }
        m_rowStart.push_back(static_cast<int64_t>(m_columns.size()));
        m_rowScale.push_back(scale[t]);
        m_weights.push_back(w[t]);
    }
}

PruneResult Pruner::prune(double nodeThreshold, double edgeThreshold) const
{
    checkThreshold(nodeThreshold, "node_threshold");
    checkThreshold(edgeThreshold, "edge_threshold");
    const int64_t n = m_n;
    PruneResult result;
    result.nodeMask.assign(static_cast<size_t>(n), false);
    result.cumulativeInfluence = m_cumulative.clone();
    result.edgeMask = at::zeros({ n, n }, at::kBool);
    if (n == 0)
        return result;

    // 1. Nodes: influence at least the value where the cumulative share reaches the threshold.
    float nodeCut = 0;
    if (m_sortedShare.back() > 0) {
        auto it = std::lower_bound(m_sortedShare.begin(), m_sortedShare.end(), nodeThreshold);
        const size_t i = std::min(static_cast<size_t>(it - m_sortedShare.begin()), m_sortedShare.size() - 1);
        nodeCut = m_sortedInfluence[i];
    }
    const float* x = m_influence.data_ptr<float>();
    std::vector<bool> kept(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
        kept[i] = x[i] >= nodeCut || i >= m_ranges.embeddings.begin;

    // 2. Edges. Sweep the level order: when node i is reached, every kept target of i has
    // pushed y_t A_hat[t, i] into acc[i], so acc[i] is i's influence x_p in the pruned graph;
    // then y_i = (w_i + x_p[i]) / (i's row sum over kept sources) scales i's own row, and
    // y_i A_hat[i, s] is both the edge score of s -> i and s's share of that influence.
    const int64_t r = static_cast<int64_t>(m_order.size());
    std::vector<uint8_t> keptAt(static_cast<size_t>(r)); // kept, by level position
    for (int64_t i = 0; i < r; ++i)
        keptAt[i] = kept[m_order[i]];
    std::vector<double> acc(static_cast<size_t>(r), 0.0); // x_p
    std::vector<double> y(static_cast<size_t>(r), 0.0);
    std::vector<double> scores; // every positive edge score
    scores.reserve(m_values.size());
    for (int64_t i = 0; i < r; ++i) {
        if (!keptAt[i])
            continue;
        const int64_t begin = m_rowStart[i], end = m_rowStart[i + 1];
        double rowSum = 0;
        for (int64_t p = begin; p < end; ++p)
            if (keptAt[m_columns[p]])
                rowSum += m_values[p];
        const double numerator = m_weights[i] + acc[i];
        if (rowSum <= 0 || numerator <= 0)
            continue;
        const double yi = numerator * m_rowScale[i] / std::max(m_rowScale[i] * rowSum, kRowSumFloor);
        y[i] = yi;
        for (int64_t p = begin; p < end; ++p) {
            const int32_t s = m_columns[p];
            const double e = yi * static_cast<double>(m_values[p]);
            if (keptAt[s] && e > 0) {
                acc[s] += e;
                scores.push_back(e);
            }
        }
    }

    std::vector<std::pair<int64_t, int64_t>> edges; // (target, source), node indices
    if (!scores.empty()) {
        const double edgeCut = scoreThreshold(scores, edgeThreshold);
        edges.reserve(scores.size());
        for (int64_t i = 0; i < r; ++i) {
            if (y[i] <= 0)
                continue;
            for (int64_t p = m_rowStart[i]; p < m_rowStart[i + 1]; ++p) {
                const int32_t s = m_columns[p];
                const double e = y[i] * static_cast<double>(m_values[p]);
                if (keptAt[s] && e > 0 && e >= edgeCut)
                    edges.emplace_back(m_order[i], m_order[s]);
            }
        }
    }

    // 3. Dangling nodes. Features and errors need a kept outgoing edge, features a kept
    // incoming one; dropping a node drops its edges, which may strand others: a queue runs
    // this to the same fixed point as circuit-tracer's repeated sweeps.
    const size_t nEdges = edges.size();
    std::vector<int64_t> outDegree(static_cast<size_t>(n), 0), inDegree(static_cast<size_t>(n), 0);
    for (const auto& [t, s] : edges) {
        ++inDegree[t];
        ++outDegree[s];
    }
    // Edge lists by target and by source (counting sort).
    std::vector<size_t> byTargetStart(static_cast<size_t>(n + 1), 0), bySourceStart(static_cast<size_t>(n + 1), 0);
    for (const auto& [t, s] : edges) {
        ++byTargetStart[t + 1];
        ++bySourceStart[s + 1];
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
            byTarget[ft[edges[e].first]++] = e;
            bySource[fs[edges[e].second]++] = e;
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
            const int64_t s = edges[e].second;
            --outDegree[s];
            if (dangling(s))
                queue.push_back(s);
        }
        for (size_t p = bySourceStart[u]; p < bySourceStart[u + 1]; ++p) {
            const size_t e = bySource[p];
            if (!edgeAlive[e])
                continue;
            edgeAlive[e] = false;
            const int64_t t = edges[e].first;
            --inDegree[t];
            if (dangling(t))
                queue.push_back(t);
        }
    }

    result.nodeMask = kept;
    bool* mask = result.edgeMask.data_ptr<bool>();
    for (size_t e = 0; e < nEdges; ++e)
        if (edgeAlive[e])
            mask[edges[e].first * n + edges[e].second] = true;
    return result;
}

PruneResult keepAll(const Graph& graph)
{
    const Pruner pruner(graph);
    PruneResult result;
    result.nodeMask.assign(static_cast<size_t>(graph.size()), true);
    result.edgeMask = graph.adjacency.to(at::kCPU) != 0;
    result.cumulativeInfluence = pruner.cumulativeInfluence().clone();
    return result;
}

Scores graphScores(const Graph& graph)
{
    return Pruner(graph).scores();
}

Scores subgraphScores(const Graph& graph, const std::vector<bool>& pinned, const PruneResult* pruned)
{
    graph.validate();
    const int64_t n = graph.size();
    if (static_cast<int64_t>(pinned.size()) != n)
        throw Error(
            "subgraph scores: " + std::to_string(pinned.size()) + " pinned flags for " + std::to_string(n) + " nodes");
    const KindRanges ranges = graph.ranges();
    at::Tensor a = graph.adjacency.to(at::kCPU, at::kFloat).clone(); // [n, n]
    std::vector<bool> present(static_cast<size_t>(n), true);
    if (pruned) {
        if (static_cast<int64_t>(pruned->nodeMask.size()) != n || !pruned->edgeMask.defined()
            || pruned->edgeMask.sizes() != a.sizes())
            throw Error("subgraph scores: the prune result does not belong to this graph");
        present = pruned->nodeMask;
        a.mul_(pruned->edgeMask.to(at::kCPU, at::kFloat));
        std::vector<int64_t> absent;
        for (int64_t i = 0; i < n; ++i)
            if (!present[i])
                absent.push_back(i);
        if (!absent.empty()) {
            const at::Tensor index = at::tensor(absent, at::kLong);
            a.index_fill_(0, index, 0);
            a.index_fill_(1, index, 0);
        }
    }

    // The error node at each (layer, position).
    std::map<std::pair<int64_t, int64_t>, int64_t> errorAt;
    for (int64_t i = ranges.errors.begin; i < ranges.errors.end; ++i)
        if (present[i])
            errorAt[{ graph.nodes[i].layer, graph.nodes[i].position }] = i;
    std::vector<int64_t> merged, into, cleared;
    for (int64_t i = ranges.features.begin; i < ranges.features.end; ++i) {
        if (pinned[i] || !present[i])
            continue;
        cleared.push_back(i);
        auto e = errorAt.find({ graph.nodes[i].layer, graph.nodes[i].position });
        if (e != errorAt.end()) {
            merged.push_back(i);
            into.push_back(e->second);
        }
    }
    if (!merged.empty())
        a.index_add_(1, at::tensor(into, at::kLong), a.index_select(1, at::tensor(merged, at::kLong)));
    if (!cleared.empty()) {
        const at::Tensor index = at::tensor(cleared, at::kLong);
        a.index_fill_(0, index, 0);
        a.index_fill_(1, index, 0);
    }

    const at::Tensor normalized = normalizedAbs(a);
    const at::Tensor w = logitWeightVector(n, ranges, graph.logitProbabilities);
    const Influence infl = seriesInfluence(normalized, w, ranges);
    return scoresFrom(normalized, infl.influence, w, ranges);
}

} // namespace cs::graph
