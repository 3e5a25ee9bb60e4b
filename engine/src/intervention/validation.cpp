// Perturbation experiments and graph validation (validation.h): the graph's predictions (direct
// edges, path sums) beside two edited runs of the replacement model.
#include "cs/validation.h"

#include "cs/error.h"
#include "demeaned.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>
#include <set>

namespace cs::validation {

namespace {

using attribution::ReplacementContext;
using graph::Graph;
using graph::NodeKind;

std::string str(int64_t n)
{
    return std::to_string(n);
}

// What a graph's feature node is in the context, read once.
struct FeatureInfo {
    int64_t layer = 0, position = 0, feature = 0;
    double activation = 0; // the context's
    double preActivation = 0; // the context's, bias included
};

// Every feature node of the graph with the context's activation and pre-activation; throws when
// the graph is not the context's.
std::vector<FeatureInfo> readFeatures(const ReplacementContext& ctx, const Graph& graph)
{
    const graph::IndexRange features = graph.ranges().features;
    const int64_t nLayers = ctx.nLayers(), nPos = ctx.nPos(), nFeatures = ctx.transcoders->nFeatures();
    std::vector<FeatureInfo> out(static_cast<size_t>(features.size()));
    std::vector<std::vector<int64_t>> byLayer(static_cast<size_t>(nLayers));
    for (int64_t i = features.begin; i < features.end; ++i) {
        const graph::Node& n = graph.nodes[static_cast<size_t>(i)];
        if (n.layer < 0 || n.layer >= nLayers || n.position < ctx.heldPositions || n.position >= nPos || n.feature < 0
            || n.feature >= nFeatures)
            throw Error("feature node " + graph::nodeId(graph, i)
                + " does not exist in this prompt's replacement model (" + str(nLayers) + " layers, " + str(nPos)
                + " tokens, " + str(nFeatures)
                + " features per layer): the graph was traced from another prompt or transcoder set");
        out[static_cast<size_t>(i - features.begin)] = { n.layer, n.position, n.feature, 0, 0 };
        byLayer[static_cast<size_t>(n.layer)].push_back(i - features.begin);
    }
    for (int64_t l = 0; l < nLayers; ++l) {
        const auto& members = byLayer[static_cast<size_t>(l)];
        if (members.empty())
            continue;
        std::vector<int64_t> pos, feat;
        for (int64_t k : members) {
            pos.push_back(out[static_cast<size_t>(k)].position);
            feat.push_back(out[static_cast<size_t>(k)].feature);
        }
        const auto device = ctx.activations[static_cast<size_t>(l)].device();
        const at::Tensor p = at::tensor(pos, at::kLong).to(device), f = at::tensor(feat, at::kLong).to(device);
        const at::Tensor acts = ctx.activations[static_cast<size_t>(l)].index({ p, f }).to(at::kCPU, at::kDouble);
        const at::Tensor pres = ctx.preActivations[static_cast<size_t>(l)].index({ p, f }).to(at::kCPU, at::kDouble);
        for (size_t j = 0; j < members.size(); ++j) {
            FeatureInfo& info = out[static_cast<size_t>(members[j])];
            info.activation = acts[static_cast<int64_t>(j)].item<double>();
            info.preActivation = pres[static_cast<int64_t>(j)].item<double>();
        }
    }
    for (int64_t i = features.begin; i < features.end; ++i) {
        const double stored = graph.nodes[static_cast<size_t>(i)].activation;
        const double actual = out[static_cast<size_t>(i - features.begin)].activation;
        if (actual == 0 || std::abs(stored - actual) > 1e-3 * (1 + std::abs(actual)))
            throw Error("feature node " + graph::nodeId(graph, i) + " has activation " + std::to_string(stored)
                + " in the graph but " + std::to_string(actual)
                + " in this prompt's replacement model: the graph was traced from another prompt or transcoder set");
    }
    return out;
}

// The token ids a logit node reads and their coefficients: A (1), or A - B (1, -1).
void logitTokens(const graph::Node& node, std::vector<int64_t>& tokens, std::vector<double>& coefficients)
{
    tokens.push_back(node.tokenId);
    coefficients.push_back(1);
    if (node.contrastTokenId >= 0) {
        tokens.push_back(node.contrastTokenId);
        coefficients.push_back(-1);
    }
}

// The demeaned values of the logit nodes `nodes` for a run's final residual.
std::vector<double> logitValues(const ReplacementContext& ctx, const Graph& graph, const std::vector<int64_t>& nodes,
    const at::Tensor& finalResid, bool frozenNorm)
{
    std::vector<int64_t> tokens;
    std::vector<double> coefficients;
    std::vector<size_t> owner;
    for (size_t k = 0; k < nodes.size(); ++k) {
        const size_t before = tokens.size();
        logitTokens(graph.nodes[static_cast<size_t>(nodes[k])], tokens, coefficients);
        owner.insert(owner.end(), tokens.size() - before, k);
    }
    std::vector<double> out(nodes.size(), 0.0);
    if (tokens.empty())
        return out;
    const at::Tensor values
        = intervention::detail::demeanedAtLast(ctx, finalResid, frozenNorm, at::tensor(tokens, at::kLong))
              .to(at::kCPU, at::kDouble)
              .contiguous();
    for (size_t j = 0; j < tokens.size(); ++j)
        out[owner[j]] += coefficients[j] * values[static_cast<int64_t>(j)].item<double>();
    return out;
}

// The activation of feature (layer, position, feature) for a pre-activation row of the
// context with that feature's entry replaced by `pre`.
double activateWith(const ReplacementContext& ctx, const FeatureInfo& f, double pre)
{
    at::Tensor row = ctx.preActivations[static_cast<size_t>(f.layer)].select(0, f.position).clone();
    row.select(0, f.feature).fill_(pre);
    return ctx.transcoders->activate(f.layer, row.unsqueeze(0)).select(0, 0).select(0, f.feature).item<double>();
}

} // namespace

std::vector<int64_t> connectedNodes(const Graph& graph, const std::vector<int64_t>& sources, int64_t maxFeatures)
{
    const graph::KindRanges r = graph.ranges();
    const std::set<int64_t> isSource(sources.begin(), sources.end());
    std::map<int64_t, double> strength; // target -> sum of |A[t, s]| over the sources
    for (int64_t s : sources) {
        if (!r.features.contains(s))
            continue;
        const graph::Adjacency::Column column = graph.adjacency.column(s);
        for (int64_t k = 0; k < column.size; ++k) {
            const int64_t t = column.targets[k];
            if (r.features.contains(t) && !isSource.count(t))
                strength[t] += std::abs(graph.adjacency.value(t, s));
        }
    }
    std::vector<std::pair<int64_t, double>> ranked(strength.begin(), strength.end());
    std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    std::vector<int64_t> out;
    for (const auto& [node, s] : ranked) {
        if (static_cast<int64_t>(out.size()) >= maxFeatures)
            break;
        out.push_back(node);
    }
    for (int64_t t = r.logits.begin; t < r.logits.end; ++t)
        out.push_back(t);
    return out;
}

namespace {
PerturbationResult perturbFeatures(const ReplacementContext& ctx, const Graph& graph,
    const std::vector<FeatureInfo>& features, const std::vector<int64_t>& sources, double factor,
    const std::vector<int64_t>& watch);
} // namespace

PerturbationResult perturb(const ReplacementContext& ctx, const Graph& graph, const std::vector<int64_t>& sources,
    double factor, std::vector<int64_t> watch)
{
    if (!ctx.model || !ctx.transcoders)
        throw Error("perturb: the replacement context is empty");
    if (sources.empty())
        throw Error("a perturbation needs at least one feature node to edit");
    if (!std::isfinite(factor))
        throw Error("the perturbation's factor must be a finite number");
    graph.validate();
    const graph::KindRanges r = graph.ranges();
    for (int64_t s : sources)
        if (!r.features.contains(s))
            throw Error("node " + (s >= 0 && s < graph.size() ? graph::nodeId(graph, s) : str(s))
                + " is not a feature node: only features can be edited (error nodes, embeddings and logits are "
                  "not activations of the replacement model)");
    if (watch.empty())
        watch = connectedNodes(graph, sources);
    for (int64_t w : watch)
        if (!r.features.contains(w) && !r.logits.contains(w))
            throw Error("node " + (w >= 0 && w < graph.size() ? graph::nodeId(graph, w) : str(w))
                + " is neither a feature nor a logit node: its activity is not measured");
    at::NoGradGuard noGrad;
    return perturbFeatures(ctx, graph, readFeatures(ctx, graph), sources, factor, watch);
}

namespace {

// perturb() once its arguments are checked and the graph's features read (validateGraph reads
// them once for all its perturbations).
PerturbationResult perturbFeatures(const ReplacementContext& ctx, const Graph& graph,
    const std::vector<FeatureInfo>& features, const std::vector<int64_t>& sources, double factor,
    const std::vector<int64_t>& watch)
{
    const graph::KindRanges r = graph.ranges();
    const auto info
        = [&](int64_t node) -> const FeatureInfo& { return features[static_cast<size_t>(node - r.features.begin)]; };
    const graph::Adjacency& A = graph.adjacency;
    const int64_t n = graph.size();
    std::vector<uint8_t> isSource(static_cast<size_t>(n), 0);
    for (int64_t s : sources)
        isSource[static_cast<size_t>(s)] = 1;

    // The graph's predictions: the change of every target's input.
    // Constrained: direct edges from the sources only.
    std::vector<double> directChange(static_cast<size_t>(n), 0.0);
    for (int64_t s : sources) {
        const graph::Adjacency::Column column = A.column(s);
        for (int64_t k = 0; k < column.size; ++k) {
            const int64_t t = column.targets[k];
            directChange[static_cast<size_t>(t)] += (factor - 1) * A.value(t, s);
        }
    }
    // Free: the activation changes propagated through the features in layer order (a feature
    // reads only earlier layers' outputs), J[t, s] = A[t, s] / a_s.
    std::vector<int64_t> order(static_cast<size_t>(r.features.size()));
    std::iota(order.begin(), order.end(), r.features.begin);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return info(a).layer < info(b).layer; });
    std::vector<double> activationChange(static_cast<size_t>(n), 0.0), pathChange(static_cast<size_t>(n), 0.0);
    const auto inputChange = [&](int64_t t) {
        const graph::Adjacency::Row row = A.row(t);
        double sum = 0;
        for (int64_t k = 0; k < row.size && row.columns[k] < r.features.end; ++k) {
            const int64_t s = row.columns[k];
            const double change = activationChange[static_cast<size_t>(s)];
            if (change != 0)
                sum += double(row.values[k]) / info(s).activation * change;
        }
        return sum;
    };
    for (int64_t t : order) {
        const double in = inputChange(t);
        pathChange[static_cast<size_t>(t)] = in;
        const double a = info(t).activation;
        activationChange[static_cast<size_t>(t)] = isSource[static_cast<size_t>(t)] ? factor * (a + in) - a : in;
    }
    for (int64_t t = r.logits.begin; t < r.logits.end; ++t)
        pathChange[static_cast<size_t>(t)] = inputChange(t);

    // The two edited runs.
    std::vector<std::vector<std::pair<int64_t, int64_t>>> edits(static_cast<size_t>(ctx.nLayers()));
    for (int64_t s : sources)
        edits[static_cast<size_t>(info(s).layer)].emplace_back(info(s).position, info(s).feature);
    attribution::RunOptions ro;
    ro.edit = [&](int64_t layer, at::Tensor& acts) {
        for (const auto& [pos, feature] : edits[static_cast<size_t>(layer)])
            acts.select(0, pos).select(0, feature).mul_(factor);
    };
    ro.frozen = true;
    ro.recompute = false;
    const attribution::RunResult constrained = attribution::runReplacement(ctx, ro);
    ro.frozen = false;
    ro.recompute = true;
    const attribution::RunResult free = attribution::runReplacement(ctx, ro);

    std::vector<int64_t> logitNodes;
    for (int64_t w : watch)
        if (r.logits.contains(w))
            logitNodes.push_back(w);
    const std::vector<double> logitInitial = logitValues(ctx, graph, logitNodes, ctx.finalResid, true);
    const std::vector<double> logitConstrained = logitValues(ctx, graph, logitNodes, constrained.finalResid, true);
    const std::vector<double> logitFree = logitValues(ctx, graph, logitNodes, free.finalResid, false);

    PerturbationResult out;
    out.sources = sources;
    out.factor = factor;
    size_t logitIndex = 0;
    const transcoder::TranscoderSet& tc = *ctx.transcoders;
    for (int64_t w : watch) {
        NodeActivity a;
        a.node = w;
        if (r.logits.contains(w)) {
            a.initial = logitInitial[logitIndex];
            a.predictedConstrained = a.initial + directChange[static_cast<size_t>(w)];
            a.predictedFree = a.initial + pathChange[static_cast<size_t>(w)];
            a.actualConstrained = logitConstrained[logitIndex];
            a.actualFree = logitFree[logitIndex];
            ++logitIndex;
        } else {
            const FeatureInfo& f = info(w);
            const auto l = static_cast<size_t>(f.layer);
            a.initial = f.activation;
            a.predictedConstrained = activateWith(ctx, f, f.preActivation + directChange[static_cast<size_t>(w)]);
            a.predictedFree = activateWith(ctx, f, f.preActivation + pathChange[static_cast<size_t>(w)]);
            const at::Tensor x = constrained.inputs[l].select(0, f.position).unsqueeze(0);
            a.actualConstrained = tc.activate(f.layer, tc.preActivations(f.layer, x))[0][f.feature].item<double>();
            a.actualFree = free.activations[l][f.position][f.feature].item<double>();
        }
        out.nodes.push_back(a);
    }
    return out;
}

} // namespace

double pearson(const std::vector<double>& x, const std::vector<double>& y)
{
    const size_t n = std::min(x.size(), y.size());
    if (n < 2)
        return std::numeric_limits<double>::quiet_NaN();
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; ++i) {
        mx += x[i];
        my += y[i];
    }
    mx /= double(n);
    my /= double(n);
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; ++i) {
        sxy += (x[i] - mx) * (y[i] - my);
        sxx += (x[i] - mx) * (x[i] - mx);
        syy += (y[i] - my) * (y[i] - my);
    }
    if (sxx <= 0 || syy <= 0)
        return std::numeric_limits<double>::quiet_NaN();
    return sxy / std::sqrt(sxx * syy);
}

Validation validateGraph(const ReplacementContext& ctx, const Graph& graph, int64_t topN, double factor)
{
    if (topN < 1)
        throw Error("the number of nodes to validate must be at least 1, not " + str(topN));
    const graph::KindRanges r = graph.ranges();
    if (r.logits.size() == 0)
        throw Error("the graph has no logit node: there is no target to validate against");
    if (!ctx.model || !ctx.transcoders)
        throw Error("validate: the replacement context is empty");
    if (!std::isfinite(factor))
        throw Error("the perturbation's factor must be a finite number");
    const graph::Pruner pruner(graph); // (validates the graph)
    const std::vector<float>& influence = pruner.influence();
    at::NoGradGuard noGrad;
    const std::vector<FeatureInfo> features = readFeatures(ctx, graph);
    std::vector<int64_t> top(static_cast<size_t>(r.features.size()));
    std::iota(top.begin(), top.end(), r.features.begin);
    std::stable_sort(top.begin(), top.end(),
        [&](int64_t a, int64_t b) { return influence[static_cast<size_t>(a)] > influence[static_cast<size_t>(b)]; });
    if (static_cast<int64_t>(top.size()) > topN)
        top.resize(static_cast<size_t>(topN));
    const std::set<int64_t> inTop(top.begin(), top.end());

    Validation v;
    v.target = r.logits.begin;
    v.factor = factor;
    std::vector<double> pc, ac, pf, af, dpc, dac, dpf, daf;
    for (int64_t node : top) {
        std::vector<int64_t> watch = { v.target };
        const graph::Adjacency::Column column = graph.adjacency.column(node);
        for (int64_t k = 0; k < column.size; ++k)
            if (inTop.count(column.targets[k]))
                watch.push_back(column.targets[k]);
        const PerturbationResult p = perturbFeatures(ctx, graph, features, { node }, factor, watch);
        for (const NodeActivity& a : p.nodes) {
            const double predicted = a.predictedConstrained - a.initial, predictedFree = a.predictedFree - a.initial;
            const double actualConstrained = a.actualConstrained - a.initial, actualFree = a.actualFree - a.initial;
            if (a.node == v.target) {
                v.points.push_back({ node, influence[static_cast<size_t>(node)], predicted, predictedFree,
                    actualConstrained, actualFree });
                pc.push_back(predicted);
                ac.push_back(actualConstrained);
                pf.push_back(predictedFree);
                af.push_back(actualFree);
            } else {
                v.downstream.push_back({ node, a.node, predicted, predictedFree, actualConstrained, actualFree });
                dpc.push_back(predicted);
                dac.push_back(actualConstrained);
                dpf.push_back(predictedFree);
                daf.push_back(actualFree);
            }
        }
    }
    v.correlation = { pearson(pc, ac), pearson(pf, af) };
    v.downstreamCorrelation = { pearson(dpc, dac), pearson(dpf, daf) };
    return v;
}

double parseEditFactor(const std::string& op)
{
    if (op == "ablate")
        return 0;
    const std::string prefix = "scale:";
    if (op.compare(0, prefix.size(), prefix) == 0) {
        const std::string value = op.substr(prefix.size());
        char* end = nullptr;
        const double f = std::strtod(value.c_str(), &end);
        if (!value.empty() && *end == '\0' && std::isfinite(f))
            return f;
    }
    throw Error(
        "--op must be ablate or scale:F with F a finite number (scale:-1 flips the features), not \"" + op + "\"");
}

namespace {

// NaN (an undefined correlation) as null.
nlohmann::json number(double x)
{
    return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr);
}

nlohmann::json correlationJson(const Correlation& c)
{
    return { { "constrained", number(c.constrained) }, { "free", number(c.free) } };
}

nlohmann::json nodeJson(const Graph& graph, int64_t index)
{
    const graph::Node& n = graph.nodes[static_cast<size_t>(index)];
    nlohmann::json j = { { "node", graph::nodeId(graph, index) }, { "kind", graph::nodeKindName(n.kind) } };
    if (n.kind == NodeKind::Feature)
        j.update({ { "layer", n.layer }, { "position", n.position }, { "feature", n.feature } });
    if (n.kind == NodeKind::Logit) {
        j.update({ { "token", n.token }, { "token_id", n.tokenId }, { "prob", n.tokenProb } });
        if (n.contrastTokenId >= 0)
            j.update({ { "contrast_token", n.contrastToken }, { "contrast_token_id", n.contrastTokenId } });
    }
    if (!n.label.empty())
        j["label"] = n.label;
    return j;
}

} // namespace

nlohmann::json validationJson(const Graph& graph, const Validation& v)
{
    const graph::KindRanges r = graph.ranges();
    nlohmann::json targets = nlohmann::json::array();
    for (int64_t t = r.logits.begin; t < r.logits.end; ++t)
        targets.push_back(nodeJson(graph, t));
    nlohmann::json points = nlohmann::json::array();
    for (const ValidationPoint& p : v.points) {
        nlohmann::json j = nodeJson(graph, p.node);
        j.update({ { "influence", p.influence }, { "predicted", p.predicted }, { "predicted_free", p.predictedFree },
            { "actual_constrained", p.actualConstrained }, { "actual_free", p.actualFree } });
        points.push_back(j);
    }
    nlohmann::json downstream = nlohmann::json::array();
    for (const DownstreamPoint& d : v.downstream)
        downstream.push_back({ { "source", graph::nodeId(graph, d.source) }, { "node", graph::nodeId(graph, d.node) },
            { "predicted", d.predicted }, { "predicted_free", d.predictedFree },
            { "actual_constrained", d.actualConstrained }, { "actual_free", d.actualFree } });
    return { { "targets", targets }, { "target", graph::nodeId(graph, v.target) }, { "factor", v.factor },
        { "points", points }, { "correlation", correlationJson(v.correlation) }, { "downstream", downstream },
        { "downstream_correlation", correlationJson(v.downstreamCorrelation) } };
}

nlohmann::json perturbationJson(const Graph& graph, const PerturbationResult& result)
{
    nlohmann::json sources = nlohmann::json::array();
    for (int64_t s : result.sources)
        sources.push_back(graph::nodeId(graph, s));
    nlohmann::json nodes = nlohmann::json::array();
    for (const NodeActivity& a : result.nodes) {
        nlohmann::json j = nodeJson(graph, a.node);
        j.update({ { "initial", a.initial }, { "predicted_constrained", a.predictedConstrained },
            { "actual_constrained", a.actualConstrained }, { "predicted_free", a.predictedFree },
            { "actual_free", a.actualFree } });
        nodes.push_back(j);
    }
    return { { "sources", sources }, { "factor", result.factor }, { "nodes", nodes } };
}

} // namespace cs::validation
