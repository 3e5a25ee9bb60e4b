// Operand sweeps and the finder (cs/sweep.h).
#include "cs/sweep.h"

#include "cs/error.h"
#include "cs/model.h"
#include "cs/tokenizer.h"
#include "cs/transcoder.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <map>

namespace cs::sweep {

namespace {

std::string str(int64_t n)
{
    return std::to_string(n);
}

int64_t groupOf(Structure s, int64_t a, int64_t b)
{
    switch (s) {
    case Structure::AOnes:
        return a % 10;
    case Structure::BOnes:
        return b % 10;
    case Structure::SumOnes:
        return (a + b) % 10;
    case Structure::SumTens:
        return (a + b) / 10;
    case Structure::ATens:
        return a / 10;
    case Structure::BTens:
        return b / 10;
    }
    return 0;
}

constexpr std::array<Structure, 6> kStructures = { Structure::AOnes, Structure::BOnes, Structure::SumOnes,
    Structure::SumTens, Structure::ATens, Structure::BTens };

} // namespace

std::string fillTemplate(const std::string& templateText, int64_t a, int64_t b)
{
    std::string out;
    for (size_t i = 0; i < templateText.size(); ++i) {
        if (templateText.compare(i, 3, "{a}") == 0) {
            out += str(a);
            i += 2;
        } else if (templateText.compare(i, 3, "{b}") == 0) {
            out += str(b);
            i += 2;
        } else if (templateText.compare(i, 5, "{sum}") == 0) {
            out += str(a + b);
            i += 4;
        } else {
            out.push_back(templateText[i]);
        }
    }
    return out;
}

SweepResult sweep(const model::Model& model, const transcoder::TranscoderSet& set, const SweepOptions& o)
{
    if (o.templateText.find("{a}") == std::string::npos || o.templateText.find("{b}") == std::string::npos)
        throw Error("the sweep's template must hold both {a} and {b}, as in \"calc: {a}+{b}=\"");
    if (o.a.empty() || o.b.empty())
        throw Error("the sweep needs at least one value of a and of b");
    for (const auto* values : { &o.a, &o.b })
        for (int64_t v : *values)
            if (v < 0)
                throw Error("the sweep's values must not be negative (" + str(v) + ")");
    if (o.batchSize < 1)
        throw Error("the sweep's batch size must be at least 1");
    set.checkFits(model.config());
    if (!model.hasTokenizer())
        throw Error("the sweep needs the model's tokenizer");
    at::NoGradGuard noGrad;
    const auto start = std::chrono::steady_clock::now();
    const int64_t nA = static_cast<int64_t>(o.a.size()), nB = static_cast<int64_t>(o.b.size());
    const int64_t L = set.nLayers(), F = set.nFeatures();

    // Prompts grouped by token length, so each batch is one rectangle of ids.
    struct Item {
        int64_t i, j;
        std::vector<int64_t> ids;
    };
    std::map<size_t, std::vector<Item>> byLength;
    for (int64_t i = 0; i < nA; ++i)
        for (int64_t j = 0; j < nB; ++j) {
            std::vector<int64_t> ids
                = model.tokenizer().encode(fillTemplate(o.templateText, o.a[size_t(i)], o.b[size_t(j)]));
            const int64_t n = static_cast<int64_t>(ids.size());
            const int64_t p = o.position < 0 ? n + o.position : o.position;
            if (p < 0 || p >= n)
                throw Error("position " + str(o.position) + " is outside the prompt \""
                    + fillTemplate(o.templateText, o.a[size_t(i)], o.b[size_t(j)]) + "\" (" + str(n) + " tokens)");
            if (n > model.config().maxPositions)
                throw Error("a sweep prompt is longer than the model's context (" + str(model.config().maxPositions)
                    + " positions)");
            byLength[ids.size()].push_back({ i, j, std::move(ids) });
        }

    SweepResult result;
    result.a = o.a;
    result.b = o.b;
    result.prompts = nA * nB;
    for (int64_t l = 0; l < L; ++l)
        result.activations.push_back(at::zeros({ nA, nB, F }, at::kFloat));
    const model::Hook inputHook = set.config().inputHook;
    int64_t done = 0;
    for (const auto& [length, items] : byLength) {
        const int64_t T = static_cast<int64_t>(length);
        const int64_t p = o.position < 0 ? T + o.position : o.position;
        for (size_t first = 0; first < items.size(); first += static_cast<size_t>(o.batchSize)) {
            const size_t last = std::min(items.size(), first + static_cast<size_t>(o.batchSize));
            const int64_t n = static_cast<int64_t>(last - first);
            std::vector<int64_t> flat;
            flat.reserve(static_cast<size_t>(n * T));
            for (size_t k = first; k < last; ++k)
                flat.insert(flat.end(), items[k].ids.begin(), items[k].ids.end());
            const at::Tensor ids = at::tensor(flat, at::kLong).view({ n, T }).to(set.device());
            std::vector<at::Tensor> inputs(static_cast<size_t>(L));
            model::ForwardOptions fo;
            fo.hook = [&](int64_t layer, model::Hook hook, at::Tensor& value) {
                if (hook == inputHook)
                    inputs[static_cast<size_t>(layer)] = value.select(1, p); // [n, d_model]
            };
            model.forward(ids, fo);
            std::vector<int64_t> rowsA, rowsB;
            for (size_t k = first; k < last; ++k) {
                rowsA.push_back(items[k].i);
                rowsB.push_back(items[k].j);
            }
            const at::Tensor ia = at::tensor(rowsA, at::kLong), ib = at::tensor(rowsB, at::kLong);
            for (int64_t l = 0; l < L; ++l) {
                const at::Tensor acts = set.encode(l, inputs[static_cast<size_t>(l)]).to(at::kCPU, at::kFloat);
                result.activations[static_cast<size_t>(l)].index_put_({ ia, ib }, acts);
            }
            done += n;
            if (o.progress && !o.progress(double(done) / double(result.prompts)))
                throw Cancelled();
        }
    }
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

const char* structureName(Structure structure)
{
    switch (structure) {
    case Structure::AOnes:
        return "a_ones";
    case Structure::BOnes:
        return "b_ones";
    case Structure::SumOnes:
        return "sum_ones";
    case Structure::SumTens:
        return "sum_tens";
    case Structure::ATens:
        return "a_tens";
    case Structure::BTens:
        return "b_tens";
    }
    return "?";
}

Finding explain(const at::Tensor& grid, const std::vector<int64_t>& a, const std::vector<int64_t>& b)
{
    const at::Tensor g = grid.to(at::kCPU, at::kDouble).contiguous();
    if (g.dim() != 2 || g.size(0) != static_cast<int64_t>(a.size()) || g.size(1) != static_cast<int64_t>(b.size()))
        throw Error("explain: the grid's shape does not match the values");
    const double* v = g.data_ptr<double>();
    const size_t nA = a.size(), nB = b.size(), n = nA * nB;
    double mean = 0;
    size_t active = 0;
    for (size_t k = 0; k < n; ++k) {
        mean += v[k];
        active += v[k] > 0;
    }
    mean /= double(n);
    double total = 0;
    for (size_t k = 0; k < n; ++k)
        total += (v[k] - mean) * (v[k] - mean);
    Finding best;
    best.meanActivation = mean;
    best.activeShare = double(active) / double(n);
    best.explained = -1;
    for (Structure s : kStructures) {
        std::map<int64_t, std::pair<double, int64_t>> groups; // group -> (sum, count)
        for (size_t i = 0; i < nA; ++i)
            for (size_t j = 0; j < nB; ++j) {
                auto& [sum, count] = groups[groupOf(s, a[i], b[j])];
                sum += v[i * nB + j];
                ++count;
            }
        double between = 0, topMean = -INFINITY;
        int64_t top = 0;
        for (const auto& [group, sc] : groups) {
            const double m = sc.first / double(sc.second);
            between += double(sc.second) * (m - mean) * (m - mean);
            if (m > topMean) {
                topMean = m;
                top = group;
            }
        }
        const double explained = total > 0 ? between / total : 0;
        if (explained > best.explained + 1e-12) {
            best.structure = s;
            best.explained = explained;
            best.group = top;
            best.groupMean = topMean;
        }
    }
    return best;
}

std::vector<Finding> rank(const SweepResult& result, int64_t top)
{
    if (top < 1)
        throw Error("the number of ranked features must be at least 1");
    std::vector<Finding> all;
    for (size_t l = 0; l < result.activations.size(); ++l) {
        const at::Tensor& acts = result.activations[l]; // [nA, nB, F]
        const at::Tensor fires = acts.gt(0).any(1).any(0); // [F]
        const at::Tensor ids = fires.nonzero().flatten();
        for (int64_t k = 0; k < ids.size(0); ++k) {
            const int64_t f = ids[k].item<int64_t>();
            Finding finding = explain(acts.select(2, f), result.a, result.b);
            finding.layer = static_cast<int64_t>(l);
            finding.feature = f;
            all.push_back(finding);
        }
    }
    std::stable_sort(all.begin(), all.end(), [](const Finding& x, const Finding& y) {
        return x.explained * std::sqrt(x.activeShare) > y.explained * std::sqrt(y.activeShare);
    });
    if (static_cast<int64_t>(all.size()) > top)
        all.resize(static_cast<size_t>(top));
    return all;
}

} // namespace cs::sweep
