// Circuits in the neuron basis and their evaluation (cs/neurons.h): paired tasks as JSONL, mean
// ablation through the forward pass's hooks, faithfulness and completeness against k.
#include "cs/neurons.h"

#include "feature_basis.h"

#include "cs/error.h"
#include "cs/files.h"
#include "cs/json_reader.h"
#include "cs/model.h"
#include "cs/tokenizer.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <numeric>
#include <sstream>

namespace cs::neurons {

namespace {

bool leadingBos(const model::Model& model, const std::vector<int64_t>& ids)
{
    const auto bos = model.config().bosTokenId;
    return bos && !ids.empty() && ids.front() == *bos;
}

} // namespace

std::vector<TaskItem> readTask(const std::string& path)
{
    // A regular file only, at most a document's size (cs/files.h): never a FIFO or a device.
    std::istringstream in(readFile(path, kMaxDocumentFileBytes));
    std::vector<TaskItem> items;
    std::string line;
    for (int64_t number = 1; std::getline(in, line); ++number) {
        if (line.find_first_not_of(" \t\r") == std::string::npos)
            continue;
        const std::string where = path + " line " + std::to_string(number);
        nlohmann::json j;
        try {
            j = parseJson(line, where);
        } catch (const nlohmann::json::exception& e) {
            throw Error(where + ": not JSON (" + e.what() + ")");
        }
        if (!j.is_object())
            throw Error(where + ": not a JSON object");
        const auto text = [&](const char* key, bool required) {
            if (!j.contains(key)) {
                if (required)
                    throw Error(where + ": no \"" + key + "\"");
                return std::string();
            }
            if (!j[key].is_string())
                throw Error(where + ": \"" + key + "\" is " + jsonTypeName(j[key]) + ", not a string");
            return j[key].get<std::string>();
        };
        TaskItem item { text("prompt", true), text("answer", true), text("counterfactual", false),
            text("counterfactual_answer", false) };
        if (item.prompt.empty() || item.answer.empty())
            throw Error(where + ": \"prompt\" and \"answer\" may not be empty");
        if (item.counterfactual.empty() != item.counterfactualAnswer.empty())
            throw Error(where + ": give both \"counterfactual\" and \"counterfactual_answer\", or neither");
        items.push_back(std::move(item));
    }
    if (items.empty())
        throw Error("the task file " + path + " has no items");
    return items;
}

std::vector<TaskItem> pairItems(const std::vector<std::pair<std::string, std::string>>& promptsAndAnswers,
    const std::vector<std::string>& contrasts, const model::Tokenizer& tokenizer, size_t max)
{
    const size_t n = promptsAndAnswers.size();
    std::vector<std::vector<int64_t>> prompts(n);
    std::vector<int64_t> firsts(n, -1);
    for (size_t i = 0; i < n; ++i) {
        prompts[i] = tokenizer.encode(promptsAndAnswers[i].first);
        const auto answer = tokenizer.encode(promptsAndAnswers[i].second, false);
        if (!answer.empty())
            firsts[i] = answer.front();
    }
    std::vector<TaskItem> out;
    for (size_t i = 0; i < n && out.size() < max; ++i) {
        // The partner sharing the most tokens at the same positions (the same template, one
        // name changed), the first in order among equals.
        size_t best = n;
        int64_t bestShared = -1;
        for (size_t step = 1; step < n; ++step) {
            const size_t j = (i + step) % n;
            if (prompts[j].size() != prompts[i].size())
                continue;
            const bool contrasted = i < contrasts.size() && !contrasts[i].empty();
            if (contrasted ? promptsAndAnswers[j].second != contrasts[i] : firsts[j] == firsts[i])
                continue;
            int64_t shared = 0;
            for (size_t t = 0; t < prompts[i].size(); ++t)
                shared += prompts[i][t] == prompts[j][t] ? 1 : 0;
            if (shared > bestShared) {
                best = j;
                bestShared = shared;
            }
        }
        if (best < n)
            out.push_back({ promptsAndAnswers[i].first, promptsAndAnswers[i].second, promptsAndAnswers[best].first,
                promptsAndAnswers[best].second });
    }
    return out;
}

void writeTask(const std::string& path, const std::vector<TaskItem>& items)
{
    std::string text;
    for (const TaskItem& item : items) {
        nlohmann::json j = { { "prompt", item.prompt }, { "answer", item.answer } };
        if (!item.counterfactual.empty()) {
            j["counterfactual"] = item.counterfactual;
            j["counterfactual_answer"] = item.counterfactualAnswer;
        }
        text += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    }
    writeFileAtomically(path, text);
}

std::vector<at::Tensor> meanValues(
    const model::Model& model, const std::vector<std::vector<int64_t>>& prompts, NodeKind kind, bool byPosition)
{
    at::NoGradGuard noGrad;
    const model::Hook hook = hookOf(kind);
    const auto L = static_cast<size_t>(model.config().nLayers);
    std::vector<at::Tensor> sums(L);
    int64_t count = 0;
    for (const auto& ids : prompts) {
        if (byPosition && ids.size() != prompts.front().size())
            throw Error("means by position need prompts of one token count");
        const int64_t skip = byPosition ? 0 : leadingBos(model, ids) ? 1 : 0;
        if (static_cast<int64_t>(ids.size()) <= skip)
            continue;
        model::ForwardOptions fo;
        fo.hook = [&](int64_t layer, model::Hook h, at::Tensor& value) {
            if (h != hook)
                return;
            const at::Tensor v = value[0].to(at::kDouble);
            const at::Tensor s = byPosition ? v : v.narrow(0, skip, v.size(0) - skip).sum(0);
            auto& sum = sums[static_cast<size_t>(layer)];
            sum = sum.defined() ? sum + s : s;
        };
        model.forward(at::tensor(ids, at::kLong).to(model.device()).unsqueeze(0), fo);
        count += byPosition ? 1 : static_cast<int64_t>(ids.size()) - skip;
    }
    if (count == 0)
        throw Error("no positions to take the means over (every prompt is empty or a lone BOS)");
    std::vector<at::Tensor> means;
    for (const at::Tensor& s : sums)
        means.push_back((s / static_cast<double>(count)).to(at::kFloat));
    return means;
}

namespace {

// ablatedMetric, and then `added` (per layer [n_pos, width], or empty) added at the hook.
double ablatedMetricPlus(const model::Model& model, const std::vector<int64_t>& ids, const Metric& metric,
    NodeKind kind, const std::vector<at::Tensor>& means, const std::vector<at::Tensor>& keep,
    const std::vector<at::Tensor>& added)
{
    at::NoGradGuard noGrad;
    const model::Hook hook = hookOf(kind);
    const bool bos = leadingBos(model, ids);
    model::ForwardOptions fo;
    fo.hook = [&](int64_t layer, model::Hook h, at::Tensor& value) {
        if (h != hook)
            return;
        const auto i = static_cast<size_t>(layer);
        at::Tensor k = keep[i].to(value.device()).to(at::kBool).clone();
        if (bos)
            k[0].fill_(true);
        const at::Tensor mean = means[i].to(value.device(), value.scalar_type());
        value = at::where(k.unsqueeze(0), value, mean.dim() == 1 ? mean.view({ 1, 1, -1 }) : mean.unsqueeze(0));
        if (!added.empty())
            value = value + added[i].to(value.device(), value.scalar_type()).unsqueeze(0);
    };
    const at::Tensor logits = model.forward(at::tensor(ids, at::kLong).to(model.device()).unsqueeze(0), fo).logits;
    const at::Tensor last = logits[0][static_cast<int64_t>(ids.size()) - 1];
    double m = last[metric.answer].item<double>();
    if (metric.counterfactual >= 0)
        m -= last[metric.counterfactual].item<double>();
    return m;
}

struct Prepared {
    std::vector<int64_t> ids, counterfactual;
    Metric metric;
};

// A task's items as token ids and metrics; `all` gets every prompt (clean and counterfactual).
std::vector<Prepared> prepare(
    const model::Model& model, const std::vector<TaskItem>& task, std::vector<std::vector<int64_t>>& all)
{
    if (task.empty())
        throw Error("the task has no items");
    const auto& tok = model.tokenizer();
    std::vector<Prepared> items;
    for (size_t i = 0; i < task.size(); ++i) {
        Prepared p;
        p.ids = tok.encode(task[i].prompt);
        p.metric.answer = answerToken(model, task[i].answer, "task item " + std::to_string(i + 1) + ": \"answer\"");
        if (!task[i].counterfactual.empty()) {
            p.counterfactual = tok.encode(task[i].counterfactual);
            p.metric.counterfactual = answerToken(model, task[i].counterfactualAnswer,
                "task item " + std::to_string(i + 1) + ": \"counterfactual_answer\"");
            all.push_back(p.counterfactual);
        }
        all.push_back(p.ids);
        items.push_back(std::move(p));
    }
    return items;
}

// The means an item's ablations use: by position over the task's prompts of its token count
// when two or more share it, else over every position.
class MeanTable {
public:
    MeanTable(const std::vector<std::vector<int64_t>>& all,
        const std::function<std::vector<at::Tensor>(const std::vector<std::vector<int64_t>>&, bool)>& means)
        : m_global(means(all, false))
    {
        std::map<size_t, std::vector<std::vector<int64_t>>> byLength;
        for (const auto& ids : all)
            byLength[ids.size()].push_back(ids);
        for (const auto& [length, prompts] : byLength)
            if (prompts.size() >= 2)
                m_positional[length] = means(prompts, true);
    }
    const std::vector<at::Tensor>& of(size_t length) const
    {
        const auto found = m_positional.find(length);
        return found != m_positional.end() ? found->second : m_global;
    }

private:
    std::vector<at::Tensor> m_global;
    std::map<size_t, std::vector<at::Tensor>> m_positional;
};

} // namespace

double ablatedMetric(const model::Model& model, const std::vector<int64_t>& ids, const Metric& metric, NodeKind kind,
    const std::vector<at::Tensor>& means, const std::vector<at::Tensor>& keep)
{
    return ablatedMetricPlus(model, ids, metric, kind, means, keep, {});
}

Curve evaluateCircuits(const model::Model& model, const std::vector<TaskItem>& task, const CurveOptions& o)
{
    const auto start = std::chrono::steady_clock::now();
    if (o.ks.empty())
        throw Error("give at least one circuit size k");
    for (int64_t k : o.ks)
        if (k < 0)
            throw Error("a circuit size k must be 0 or more, not " + std::to_string(k));
    std::vector<std::vector<int64_t>> all;
    const std::vector<Prepared> items = prepare(model, task, all);
    const NodeKind kind = o.attribution.kind;
    // The basis's three operations: the model's own units through its hooks, or transcoder
    // features on each prompt's replacement model (a non-owning pointer for buildContext).
    const detail::Model shared(std::shared_ptr<const model::Model>(), &model);
    const detail::Transcoders& set = o.transcoders;
    const auto means = [&](const std::vector<std::vector<int64_t>>& prompts, bool byPosition) {
        return set ? detail::featureMeans(shared, set, prompts, byPosition)
                   : meanValues(model, prompts, kind, byPosition);
    };
    const auto ablated = [&](const std::vector<int64_t>& ids, const Metric& metric, const std::vector<at::Tensor>& m,
                             const std::vector<at::Tensor>& keep) {
        return set ? detail::featureAblatedMetric(shared, set, ids, metric, m, keep)
                   : ablatedMetric(model, ids, metric, kind, m, keep);
    };
    const MeanTable table(all, means);
    const size_t L = table.of(0).size();

    Curve curve;
    curve.items = static_cast<int64_t>(items.size());
    std::vector<double> withC(o.ks.size(), 0.0), withoutC(o.ks.size(), 0.0);
    for (size_t i = 0; i < items.size(); ++i) {
        const Prepared& p = items[i];
        AttributionOptions ao = o.attribution;
        // IG runs from the counterfactual prompt when it lines up with the prompt, else from zero.
        ao.baselineIds = p.counterfactual.size() == p.ids.size() ? p.counterfactual : std::vector<int64_t> {};
        const Attribution a = set ? detail::featureAttribution(shared, set, p.ids, p.metric, ao)
                                  : attribute(model, p.ids, p.metric, ao);
        const std::vector<at::Tensor>& itemMeans = table.of(p.ids.size());
        // Every node's |score|, flattened over (layer, position, unit); a leading BOS is no node.
        const int64_t n = static_cast<int64_t>(p.ids.size()), skip = leadingBos(model, p.ids) ? 1 : 0;
        std::vector<at::Tensor> flat;
        for (const at::Tensor& s : a.scores) {
            at::Tensor abs = s.abs().clone();
            if (skip)
                abs[0].fill_(-1); // never chosen
            flat.push_back(abs.reshape({ -1 }));
        }
        const at::Tensor scores = at::cat(flat);
        const int64_t width = a.scores[0].size(1), perLayer = n * width;
        const auto order = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true));
        const auto masks = [&](int64_t k, bool inside) {
            // keep = the top k (inside) or everything but them (outside).
            at::Tensor chosen = at::zeros({ static_cast<int64_t>(L) * perLayer }, at::kBool);
            if (k > 0)
                chosen.index_fill_(0, order.narrow(0, 0, std::min<int64_t>(k, (n - skip) * width * int64_t(L))), true);
            if (!inside)
                chosen = chosen.logical_not();
            std::vector<at::Tensor> keep;
            for (size_t l = 0; l < L; ++l)
                keep.push_back(chosen.narrow(0, static_cast<int64_t>(l) * perLayer, perLayer).view({ n, width }));
            return keep;
        };
        curve.full += a.metric;
        curve.empty += ablated(p.ids, p.metric, itemMeans, masks(0, true));
        for (size_t j = 0; j < o.ks.size(); ++j) {
            withC[j] += ablated(p.ids, p.metric, itemMeans, masks(o.ks[j], true));
            withoutC[j] += ablated(p.ids, p.metric, itemMeans, masks(o.ks[j], false));
            // Progress (and a chance to cancel) after each k, so a one-item task's curve reports too.
            const double done = static_cast<double>(i) + static_cast<double>(j + 1) / static_cast<double>(o.ks.size());
            if (o.progress && !o.progress(done / static_cast<double>(items.size())))
                throw Cancelled();
        }
    }
    const double span = curve.full - curve.empty;
    if (std::abs(span) < 1e-9)
        throw Error("the metric is the same with every node ablated as with none: faithfulness is undefined");
    for (size_t j = 0; j < o.ks.size(); ++j)
        curve.points.push_back({ o.ks[j], (withC[j] - curve.empty) / span, (withoutC[j] - curve.empty) / span });
    curve.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return curve;
}

EdgeCurve evaluateEdgeCircuits(const model::Model& model, const std::vector<TaskItem>& task, const EdgeCurveOptions& o)
{
    const auto start = std::chrono::steady_clock::now();
    if (o.nodes < 1)
        throw Error("an edge circuit needs at least 1 node");
    if (o.fractions.empty())
        throw Error("give at least one fraction of edges");
    for (double f : o.fractions)
        if (!(f >= 0 && f <= 1))
            throw Error("a fraction of edges must be in [0, 1]");
    std::vector<std::vector<int64_t>> all;
    const std::vector<Prepared> items = prepare(model, task, all);
    const NodeKind kind = o.attribution.kind;
    const MeanTable table(all, [&](const std::vector<std::vector<int64_t>>& prompts, bool byPosition) {
        return meanValues(model, prompts, kind, byPosition);
    });
    EdgeCurve curve;
    curve.items = static_cast<int64_t>(items.size());
    std::vector<double> withE(o.fractions.size(), 0.0), withoutE(o.fractions.size(), 0.0);
    std::vector<int64_t> kept(o.fractions.size(), 0);
    for (size_t i = 0; i < items.size(); ++i) {
        const Prepared& p = items[i];
        TraceOptions to;
        to.attribution = o.attribution;
        to.attribution.baselineIds
            = p.counterfactual.size() == p.ids.size() ? p.counterfactual : std::vector<int64_t> {};
        to.maxNodes = o.nodes;
        const TraceResult traced = trace(model, p.ids, p.metric, to);
        const graph::Graph& g = traced.graph;
        const graph::KindRanges ranges = g.ranges();
        const int64_t nUnits = ranges.features.size(), logit = g.size() - 1;
        const std::vector<at::Tensor>& means = table.of(p.ids.size());
        const int64_t n = static_cast<int64_t>(p.ids.size());
        // C's mask, and each unit's factor mean / x - 1 (x is never 0: trace() keeps no such unit).
        std::vector<at::Tensor> keep;
        for (const at::Tensor& m : means)
            keep.push_back(at::zeros({ n, m.size(-1) }, at::kBool));
        std::vector<double> factor(static_cast<size_t>(nUnits));
        for (int64_t u = 0; u < nUnits; ++u) {
            const graph::Node& node = g.nodes[static_cast<size_t>(u)];
            keep[static_cast<size_t>(node.layer)][node.position][node.feature] = true;
            const at::Tensor& m = means[static_cast<size_t>(node.layer)];
            const double mean = (m.dim() == 1 ? m[node.feature] : m[node.position][node.feature]).item<double>();
            factor[static_cast<size_t>(u)] = mean / node.activation - 1;
        }
        // The candidate edges, strongest first: unit -> unit and unit -> metric.
        struct Edge {
            int64_t target, source;
            double value;
        };
        std::vector<Edge> edges;
        std::vector<int64_t> targets(static_cast<size_t>(nUnits));
        std::iota(targets.begin(), targets.end(), 0);
        targets.push_back(logit);
        for (const int64_t t : targets) {
            const auto row = g.adjacency.row(t);
            for (int64_t k = 0; k < row.size; ++k)
                if (row.columns[k] < nUnits)
                    edges.push_back({ t, row.columns[k], row.values[k] });
        }
        std::stable_sort(edges.begin(), edges.end(),
            [](const Edge& a, const Edge& b) { return std::abs(a.value) > std::abs(b.value); });
        curve.candidates += static_cast<int64_t>(edges.size());
        // m with C's nodes, every edge in [from, to) of that order removed.
        const auto withRemoved = [&](size_t from, size_t end) {
            std::vector<std::vector<float>> shift(keep.size());
            for (size_t l = 0; l < keep.size(); ++l)
                shift[l].assign(static_cast<size_t>(keep[l].numel()), 0.f);
            double metricShift = 0;
            for (size_t e = from; e < end; ++e) {
                const double delta = edges[e].value * factor[static_cast<size_t>(edges[e].source)];
                if (edges[e].target == logit) {
                    metricShift += delta;
                    continue;
                }
                const graph::Node& d = g.nodes[static_cast<size_t>(edges[e].target)];
                shift[static_cast<size_t>(d.layer)][static_cast<size_t>(d.position * keep[0].size(1) + d.feature)]
                    += static_cast<float>(delta);
            }
            std::vector<at::Tensor> added;
            for (size_t l = 0; l < keep.size(); ++l)
                added.push_back(at::tensor(shift[l], at::kFloat).view(keep[l].sizes()));
            return ablatedMetricPlus(model, p.ids, p.metric, kind, means, keep, added) + metricShift;
        };
        std::vector<at::Tensor> none;
        for (const at::Tensor& k : keep)
            none.push_back(at::zeros_like(k));
        curve.full += traced.attribution.metric;
        curve.empty += ablatedMetric(model, p.ids, p.metric, kind, means, none);
        curve.nodesOnly += withRemoved(0, 0);
        for (size_t j = 0; j < o.fractions.size(); ++j) {
            const auto count = static_cast<size_t>(std::ceil(o.fractions[j] * static_cast<double>(edges.size())));
            kept[j] += static_cast<int64_t>(count);
            withE[j] += withRemoved(count, edges.size());
            withoutE[j] += withRemoved(0, count);
        }
        if (o.progress && !o.progress(static_cast<double>(i + 1) / static_cast<double>(items.size())))
            throw Cancelled();
    }
    const double span = curve.full - curve.empty;
    if (std::abs(span) < 1e-9)
        throw Error("the metric is the same with every node ablated as with none: faithfulness is undefined");
    for (size_t j = 0; j < o.fractions.size(); ++j)
        curve.points.push_back(
            { o.fractions[j], kept[j], (withE[j] - curve.empty) / span, (withoutE[j] - curve.empty) / span });
    curve.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return curve;
}

} // namespace cs::neurons
