// Neuron-basis attribution (cs/neurons.h): RelP in one backward pass of the linearized network,
// integrated gradients layer by layer, for any node kind the forward pass hooks.
#include "cs/neurons.h"

#include "internal.h"

#include "cs/error.h"
#include "cs/model.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>
#include <utility>

namespace cs::neurons {

namespace {

std::string str(int64_t n)
{
    return std::to_string(n);
}

void checkIds(const model::Model& model, const std::vector<int64_t>& ids, const char* what)
{
    const auto& c = model.config();
    if (ids.empty())
        throw Error(std::string("the ") + what + " has no tokens");
    if (static_cast<int64_t>(ids.size()) > c.maxPositions)
        throw Error(std::string("the ") + what + " has " + str(static_cast<int64_t>(ids.size()))
            + " tokens, more than the model's " + str(c.maxPositions) + " positions");
    for (int64_t id : ids)
        if (id < 0 || id >= c.vocabSize)
            throw Error(std::string("the ") + what + " holds token id " + str(id) + ", outside the vocabulary (0.."
                + str(c.vocabSize - 1) + ")");
}

at::Tensor idsTensor(const model::Model& model, const std::vector<int64_t>& ids, int64_t batch)
{
    return at::tensor(ids, at::kLong).to(model.device()).unsqueeze(0).expand({ batch, -1 }).contiguous();
}

// Every layer's values at the node kind's hook, [n_pos, width] (no gradients).
std::vector<at::Tensor> valuesAt(const model::Model& model, const std::vector<int64_t>& ids, model::Hook hook)
{
    at::NoGradGuard noGrad;
    std::vector<at::Tensor> values(static_cast<size_t>(model.config().nLayers));
    model::ForwardOptions fo;
    fo.hook = [&](int64_t layer, model::Hook h, at::Tensor& value) {
        if (h == hook)
            values[static_cast<size_t>(layer)] = value[0].detach().clone();
    };
    model.forward(idsTensor(model, ids, 1), fo);
    return values;
}

void relp(const model::Model& model, const std::vector<int64_t>& ids, const Metric& metric, model::Hook hook,
    const AttributionOptions& o, Attribution& out)
{
    // Paired: relevance of the difference from the counterfactual's values.
    std::vector<at::Tensor> base;
    if (!o.baselineIds.empty())
        base = valuesAt(model, o.baselineIds, hook);
    const int64_t L = model.config().nLayers;
    model::FrozenState frozen;
    {
        at::NoGradGuard noGrad;
        model::ForwardOptions record;
        record.record = true;
        frozen = model.forward(idsTensor(model, ids, 1), record).frozen;
    }
    at::AutoGradMode gradients(true);
    std::vector<at::Tensor> nudges(static_cast<size_t>(L)); // zero leaves added at the hooks
    out.values.assign(static_cast<size_t>(L), at::Tensor());
    model::ForwardOptions fo;
    fo.frozen = &frozen;
    fo.relp = true;
    fo.hook = [&](int64_t layer, model::Hook h, at::Tensor& value) {
        if (h != hook)
            return;
        const auto i = static_cast<size_t>(layer);
        out.values[i] = value[0].detach();
        nudges[i] = at::zeros_like(value).requires_grad_(true);
        value = value + nudges[i];
    };
    const at::Tensor m = metricOf(model.forward(idsTensor(model, ids, 1), fo).logits, metric).sum();
    m.backward();
    out.metric = m.item<double>();
    for (int64_t l = 0; l < L; ++l) {
        const auto i = static_cast<size_t>(l);
        const at::Tensor grad = nudges[i].grad();
        const at::Tensor delta = base.empty() ? out.values[i] : out.values[i] - base[i];
        out.scores.push_back((delta * (grad.defined() ? grad[0] : at::zeros_like(delta))).to(at::kCPU, at::kFloat));
        out.values[i] = out.values[i].to(at::kCPU, at::kFloat);
    }
}

void integratedGradients(const model::Model& model, const std::vector<int64_t>& ids, const Metric& metric,
    model::Hook hook, const AttributionOptions& o, Attribution& out)
{
    const int64_t L = model.config().nLayers;
    const std::vector<at::Tensor> x = valuesAt(model, ids, hook);
    std::vector<at::Tensor> base;
    if (!o.baselineIds.empty())
        base = valuesAt(model, o.baselineIds, hook);
    {
        at::NoGradGuard noGrad;
        out.metric = metricOf(model.forward(idsTensor(model, ids, 1)).logits, metric).item<double>();
    }
    // A leading BOS is held at its values: it is the same in every prompt, and moving it (the
    // attention sink of most models) sends the path through states no prompt reaches.
    const auto bos = model.config().bosTokenId;
    const bool holdFirst = bos && ids.front() == *bos;
    const auto [nodes, weights] = gaussLegendre(o.steps);
    for (int64_t l = 0; l < L; ++l) {
        const auto i = static_cast<size_t>(l);
        at::Tensor origin = base.empty() ? at::zeros_like(x[i]) : base[i].clone();
        if (holdFirst)
            origin[0] = x[i][0];
        const at::Tensor delta = x[i] - origin;
        {
            // m with the layer at the baseline: the other end of the path.
            at::NoGradGuard noGrad;
            model::ForwardOptions fo;
            fo.hook = [&](int64_t layer, model::Hook h, at::Tensor& value) {
                if (layer == l && h == hook)
                    value = origin.unsqueeze(0).expand_as(value).clone();
            };
            out.baselineMetric.push_back(
                metricOf(model.forward(idsTensor(model, ids, 1), fo).logits, metric).item<double>());
        }
        at::Tensor gradSum = at::zeros_like(x[i]); // the weighted mean of the gradient along the path
        for (int64_t first = 0; first < o.steps; first += o.batchSize) {
            const int64_t b = std::min(o.batchSize, o.steps - first);
            at::AutoGradMode gradients(true);
            const auto options = at::TensorOptions().dtype(at::kDouble);
            const at::Tensor alpha
                = at::tensor(std::vector<double>(nodes.begin() + first, nodes.begin() + first + b), options)
                      .to(x[i].options())
                      .view({ b, 1, 1 });
            const at::Tensor weight
                = at::tensor(std::vector<double>(weights.begin() + first, weights.begin() + first + b), options)
                      .to(x[i].options())
                      .view({ b, 1, 1 });
            at::Tensor point = (origin.unsqueeze(0) + alpha * delta.unsqueeze(0)).detach().requires_grad_(true);
            model::ForwardOptions fo;
            fo.hook = [&](int64_t layer, model::Hook h, at::Tensor& value) {
                if (layer == l && h == hook)
                    value = point;
            };
            const at::Tensor m = metricOf(model.forward(idsTensor(model, ids, b), fo).logits, metric).sum();
            m.backward();
            gradSum = gradSum + (point.grad() * weight).sum(0);
        }
        out.scores.push_back((delta * gradSum).to(at::kCPU, at::kFloat));
        out.values.push_back(x[i].to(at::kCPU, at::kFloat));
    }
}

} // namespace

at::Tensor metricOf(const at::Tensor& logits, const Metric& m)
{
    const at::Tensor last = logits.select(1, logits.size(1) - 1); // [batch, vocab]
    at::Tensor v = last.select(1, m.answer);
    if (m.counterfactual >= 0)
        v = v - last.select(1, m.counterfactual);
    return v;
}

// Gauss-Legendre nodes and weights on [0, 1] (Newton's method on the Legendre polynomial P_n):
// exact for polynomials of degree 2n - 1 along the path, where the midpoint rule is exact for
// degree 1. Measured on tinyworld's layer-0 neurons from a zero baseline, 32 points: 0.05% from
// the completeness axiom, against 5% for 32 midpoints (128 midpoints: 0.05%).
std::pair<std::vector<double>, std::vector<double>> gaussLegendre(int64_t n)
{
    std::vector<double> nodes(static_cast<size_t>(n)), weights(static_cast<size_t>(n));
    const double pi = std::acos(-1.0);
    for (int64_t i = 0; i < n; ++i) {
        double x = std::cos(pi * (static_cast<double>(i) + 0.75) / (static_cast<double>(n) + 0.5));
        double derivative = 1;
        for (int iteration = 0; iteration < 100; ++iteration) {
            double p0 = 1, p1 = x; // P_0, P_1, then up the recurrence to P_n
            for (int64_t k = 2; k <= n; ++k) {
                const double p2 = ((2.0 * k - 1) * x * p1 - (k - 1.0) * p0) / static_cast<double>(k);
                p0 = p1;
                p1 = p2;
            }
            if (n == 1) {
                p0 = 1;
                p1 = x;
            }
            derivative = static_cast<double>(n) * (x * p1 - p0) / (x * x - 1);
            const double step = p1 / derivative;
            x -= step;
            if (std::abs(step) < 1e-15)
                break;
        }
        nodes[static_cast<size_t>(i)] = (1 - x) / 2; // on [0, 1]
        weights[static_cast<size_t>(i)] = 1 / ((1 - x * x) * derivative * derivative);
    }
    return { nodes, weights };
}

int64_t answerToken(const model::Model& model, const std::string& text, const std::string& what)
{
    const auto ids = model.tokenizer().encode(text, false);
    if (ids.empty())
        throw Error(what + " \"" + text + "\" has no tokens");
    return ids.front();
}

const char* nodeKindName(NodeKind kind)
{
    switch (kind) {
    case NodeKind::Neurons:
        return "neurons";
    case NodeKind::MlpOut:
        return "mlp_out";
    case NodeKind::AttnOut:
        return "attn_out";
    case NodeKind::Resid:
        return "resid";
    }
    return "neurons";
}

NodeKind nodeKindFromName(const std::string& name)
{
    for (NodeKind k : { NodeKind::Neurons, NodeKind::MlpOut, NodeKind::AttnOut, NodeKind::Resid })
        if (name == nodeKindName(k))
            return k;
    throw Error("the node kind must be neurons, mlp_out, attn_out or resid, not \"" + name + "\"");
}

model::Hook hookOf(NodeKind kind)
{
    switch (kind) {
    case NodeKind::Neurons:
        return model::Hook::MlpHidden;
    case NodeKind::MlpOut:
        return model::Hook::MlpOut;
    case NodeKind::AttnOut:
        return model::Hook::AttnOut;
    case NodeKind::Resid:
        return model::Hook::ResidPost;
    }
    return model::Hook::MlpHidden;
}

const char* methodName(Method method)
{
    return method == Method::RelP ? "relp" : "ig";
}

Method methodFromName(const std::string& name)
{
    if (name == "relp")
        return Method::RelP;
    if (name == "ig")
        return Method::IntegratedGradients;
    throw Error("the attribution method must be relp or ig, not \"" + name + "\"");
}

std::vector<at::Tensor> unitValues(const model::Model& model, const std::vector<int64_t>& ids, NodeKind kind)
{
    checkIds(model, ids, "prompt");
    std::vector<at::Tensor> values = valuesAt(model, ids, hookOf(kind));
    for (at::Tensor& v : values)
        v = v.to(at::kCPU, at::kFloat);
    return values;
}

Attribution attribute(
    const model::Model& model, const std::vector<int64_t>& ids, const Metric& metric, const AttributionOptions& o)
{
    const auto start = std::chrono::steady_clock::now();
    checkIds(model, ids, "prompt");
    const int64_t V = model.config().vocabSize;
    if (metric.answer < 0 || metric.answer >= V || metric.counterfactual >= V)
        throw Error("the metric's answer token must be in the vocabulary (0.." + str(V - 1) + ")");
    if (o.method == Method::IntegratedGradients && (o.steps < 1 || o.batchSize < 1))
        throw Error("integrated gradients need at least 1 step and a batch of at least 1");
    if (!o.baselineIds.empty()) {
        checkIds(model, o.baselineIds, "counterfactual prompt");
        if (o.baselineIds.size() != ids.size())
            throw Error("attribution from the counterfactual prompt needs it to have as many tokens as the prompt ("
                + str(static_cast<int64_t>(o.baselineIds.size())) + " against " + str(static_cast<int64_t>(ids.size()))
                + ")");
    }
    Attribution out;
    {
        // A model whose logits are NaN or infinite (a damaged checkpoint) has nothing to attribute.
        at::NoGradGuard noGrad;
        const at::Tensor logits = model.forward(idsTensor(model, ids, 1)).logits;
        if (!at::isfinite(logits).all().item<bool>())
            throw Error("the model's logits on this prompt are not finite (NaN or infinite): its weights or "
                        "config.json are damaged");
    }
    if (o.method == Method::RelP)
        relp(model, ids, metric, hookOf(o.kind), o, out);
    else
        integratedGradients(model, ids, metric, hookOf(o.kind), o, out);
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return out;
}

} // namespace cs::neurons
