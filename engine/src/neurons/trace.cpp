// Attribution graphs in the neuron basis (cs/neurons.h): the units a metric depends on most, and
// the direct effects between them in RelP's linearized network, one batch row per target.
#include "cs/error.h"
#include "cs/model.h"
#include "cs/neurons.h"
#include "cs/tokenizer.h"
#include "util/clock.h"
#include "util/token_text.h"

#include "internal.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>

namespace cs::neurons {

namespace {

// The units kept as nodes: flat indices into [n_layers, n_pos, width], increasing (so in
// (layer, position, unit) order).
at::Tensor selectUnits(const Attribution& a, bool holdFirst, int64_t maxNodes)
{
    at::Tensor score = at::stack(a.scores).abs(); // [L, n_pos, width]
    const at::Tensor value = at::stack(a.values);
    score.masked_fill_(value == 0, -1);
    if (holdFirst)
        score.select(1, 0).fill_(-1);
    const at::Tensor flat = score.flatten();
    const int64_t candidates = (flat >= 0).sum().item<int64_t>();
    const int64_t k = maxNodes < 0 ? candidates : std::min(maxNodes, candidates);
    return std::get<0>(at::sort(std::get<1>(at::topk(flat, k))));
}

} // namespace

TraceResult trace(
    const model::Model& model, const std::vector<int64_t>& ids, const Metric& metric, const TraceOptions& o)
{
    const auto start = Clock::now();
    if (o.batchSize < 1)
        throw Error("the neuron trace needs a batch of at least 1 target row");
    TraceResult r;
    r.attribution = attribute(model, ids, metric, o.attribution); // checks the prompt and the metric
    r.attributionMs = msSince(start);

    const auto& c = model.config();
    const int64_t L = c.nLayers, nPos = static_cast<int64_t>(ids.size());
    const model::Hook hook = hookOf(o.attribution.kind);
    const int64_t width = r.attribution.scores.at(0).size(1);
    const bool holdFirst = c.bosTokenId && ids.front() == *c.bosTokenId;

    const at::Tensor selected = selectUnits(r.attribution, holdFirst, o.maxNodes); // [n_units], CPU
    const int64_t nUnits = selected.numel();
    const at::Tensor selLayer = selected.div(nPos * width, "floor");
    const at::Tensor selPos = selected.div(width, "floor").remainder(nPos);
    const at::Tensor selUnit = selected.remainder(width);
    const int64_t nErrors = L * nPos;
    const int64_t nSources = nUnits + nErrors + nPos, nNodes = nSources + 1;
    const auto device = model.device();
    // Per layer: its nodes' positions and units (on the device), and where they start.
    std::vector<at::Tensor> layerPos(static_cast<size_t>(L)), layerUnit(static_cast<size_t>(L));
    for (int64_t l = 0; l < L; ++l) {
        const at::Tensor in = selLayer == l;
        layerPos[static_cast<size_t>(l)] = selPos.masked_select(in).to(device);
        layerUnit[static_cast<size_t>(l)] = selUnit.masked_select(in).to(device);
    }

    // The prompt's frozen state (attention patterns, norm denominators) and its probabilities.
    model::FrozenState frozen;
    at::Tensor probabilities;
    const at::Tensor idsOne = at::tensor(ids, at::kLong).to(device).unsqueeze(0);
    {
        at::NoGradGuard noGrad;
        model::ForwardOptions record;
        record.record = true;
        auto out = model.forward(idsOne, record);
        frozen = std::move(out.frozen);
        probabilities = at::softmax(out.logits[0][nPos - 1].to(at::kDouble), 0).cpu();
    }

    // The rows: every unit node (node order), then the logit.
    const auto edgesStart = Clock::now();
    graph::AdjacencyBuilder builder(nNodes);
    const int64_t nRows = nUnits + 1;
    const int64_t* layerOf = selLayer.data_ptr<int64_t>();
    const int64_t* posOf = selPos.data_ptr<int64_t>();
    const int64_t* unitOf = selUnit.data_ptr<int64_t>();
    for (int64_t first = 0; first < nRows; first += o.batchSize) {
        const int64_t b = std::min(o.batchSize, nRows - first);
        at::AutoGradMode gradients(true);
        std::vector<at::Tensor> leaf(static_cast<size_t>(L));
        std::vector<at::Tensor> pre(static_cast<size_t>(L));
        at::Tensor embedding;
        model::ForwardOptions fo;
        fo.frozen = &frozen;
        fo.relp = true;
        // A stop-gradient at every layer's units: each is a leaf of its own, so a target's
        // gradient reaches a unit only along paths through no other unit of the kind.
        fo.hook = [&](int64_t layer, model::Hook h, at::Tensor& value) {
            if (layer == 0 && h == model::Hook::ResidPre) {
                embedding = value.detach().requires_grad_(true);
                value = embedding;
            }
            if (h != hook)
                return;
            pre[static_cast<size_t>(layer)] = value;
            leaf[static_cast<size_t>(layer)] = value.detach().requires_grad_(true);
            value = leaf[static_cast<size_t>(layer)];
        };
        const at::Tensor logits = model.forward(idsOne.expand({ b, -1 }).contiguous(), fo).logits;
        // Each row's quantity: its unit's value before the stop-gradient, or the metric.
        std::vector<int64_t> rowL, rowP, rowU, rowI;
        for (int64_t i = 0; i < b; ++i) {
            const int64_t t = first + i;
            if (t < nUnits) {
                rowI.push_back(i);
                rowL.push_back(layerOf[t]);
                rowP.push_back(posOf[t]);
                rowU.push_back(unitOf[t]);
            }
        }
        at::Tensor quantity = at::zeros({ b }, logits.options());
        for (int64_t l = 0; l < L; ++l) {
            std::vector<int64_t> ri, pi, ui;
            for (size_t k = 0; k < rowI.size(); ++k)
                if (rowL[k] == l) {
                    ri.push_back(rowI[k]);
                    pi.push_back(rowP[k]);
                    ui.push_back(rowU[k]);
                }
            if (ri.empty())
                continue;
            const auto idx = [&](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).to(device); };
            quantity
                = quantity.index_put({ idx(ri) }, pre[static_cast<size_t>(l)].index({ idx(ri), idx(pi), idx(ui) }));
        }
        if (first + b == nRows) { // the batch holds the logit row
            const at::Tensor m = metricOf(logits, metric).select(0, b - 1);
            quantity = quantity.index_put({ at::tensor(std::vector<int64_t> { b - 1 }, at::kLong).to(device) },
                m.reshape({ 1 }).to(quantity.dtype()));
        }
        quantity.sum().backward();

        // The row entries, in node order: units, errors (layer-major), embeddings.
        std::vector<at::Tensor> unitParts;
        std::vector<at::Tensor> errorParts;
        for (int64_t l = 0; l < L; ++l) {
            const auto i = static_cast<size_t>(l);
            const at::Tensor grad = leaf[i].grad();
            if (!grad.defined()) {
                unitParts.push_back(at::zeros({ b, layerPos[i].numel() }, leaf[i].options().requires_grad(false)));
                errorParts.push_back(at::zeros({ b, nPos }, leaf[i].options().requires_grad(false)));
                continue;
            }
            const at::Tensor product = leaf[i].detach() * grad; // [b, n_pos, width]
            const at::Tensor units = product.index({ at::indexing::Slice(), layerPos[i], layerUnit[i] }); // [b, n_l]
            const at::Tensor others
                = product.sum(-1).to(at::kDouble).index_add(1, layerPos[i], units.to(at::kDouble).neg());
            unitParts.push_back(units);
            errorParts.push_back(others.to(units.dtype()));
        }
        // No gradient when no row of the batch reaches the embeddings (resid: only layer 0 does).
        const at::Tensor embeddingPart = embedding.grad().defined()
            ? (embedding.detach() * embedding.grad()).sum(-1)
            : at::zeros({ b, nPos }, embedding.options().requires_grad(false)); // [b, n_pos]
        std::vector<at::Tensor> parts = unitParts;
        parts.insert(parts.end(), errorParts.begin(), errorParts.end());
        parts.push_back(embeddingPart);
        const at::Tensor rows = at::cat(parts, 1).to(at::kCPU, at::kFloat).contiguous(); // [b, n_sources]
        const at::Tensor actual = quantity.detach().to(at::kCPU, at::kDouble);
        const at::Tensor rowSum = rows.to(at::kDouble).sum(1);
        const at::Tensor scale = rows.to(at::kDouble).abs().sum(1) + actual.abs();
        const at::Tensor residual = (actual - rowSum).abs();
        r.maxAbsResidual = std::max(r.maxAbsResidual, residual.max().item<double>());
        r.maxRelResidual = std::max(r.maxRelResidual, (residual / scale.clamp_min(1e-30)).max().item<double>());
        r.rows += b;
        const float* data = rows.data_ptr<float>();
        std::vector<int32_t> columns;
        std::vector<float> values;
        for (int64_t i = 0; i < b; ++i) {
            columns.clear();
            values.clear();
            for (int64_t s = 0; s < nSources; ++s) {
                const float v = data[i * nSources + s];
                if (v != 0) {
                    columns.push_back(static_cast<int32_t>(s));
                    values.push_back(v);
                }
            }
            const int64_t t = first + i;
            builder.setRow(t < nUnits ? t : nNodes - 1, columns, values);
        }
        if (o.progress && !o.progress(static_cast<double>(first + b) / static_cast<double>(nRows)))
            throw Cancelled();
    }
    r.edgesMs = msSince(edgesStart);

    graph::Graph& g = r.graph;
    g.metadata.basis = nodeKindName(o.attribution.kind);
    for (int64_t k = 0; k < nUnits; ++k) {
        graph::Node node;
        node.kind = graph::NodeKind::Feature;
        node.layer = layerOf[k];
        node.position = posOf[k];
        node.feature = unitOf[k];
        node.activation
            = r.attribution.values[static_cast<size_t>(node.layer)][node.position][node.feature].item<double>();
        g.nodes.push_back(node);
    }
    for (int64_t l = 0; l < L; ++l) {
        // An error node's activation: the norm of its layer's other units at its position.
        at::Tensor others = r.attribution.values[static_cast<size_t>(l)].to(at::kDouble).clone();
        const at::Tensor in = selLayer == l;
        others.index_put_({ selPos.masked_select(in), selUnit.masked_select(in) }, 0.0);
        const at::Tensor norms = others.norm(2, 1).contiguous();
        for (int64_t p = 0; p < nPos; ++p) {
            graph::Node node;
            node.kind = graph::NodeKind::Error;
            node.layer = l;
            node.position = p;
            node.activation = norms.data_ptr<double>()[p];
            g.nodes.push_back(node);
        }
    }
    for (int64_t p = 0; p < nPos; ++p) {
        graph::Node node;
        node.kind = graph::NodeKind::Embedding;
        node.layer = -1;
        node.position = p;
        node.tokenId = ids[static_cast<size_t>(p)];
        node.token = model::tokenText(model, node.tokenId);
        g.nodes.push_back(node);
        g.metadata.promptTokens.push_back(node.token);
    }
    graph::Node logit;
    logit.kind = graph::NodeKind::Logit;
    logit.layer = L;
    logit.position = nPos - 1;
    logit.tokenId = metric.answer;
    logit.token = model::tokenText(model, metric.answer);
    logit.tokenProb = probabilities[metric.answer].item<double>();
    if (metric.counterfactual >= 0) {
        logit.contrastTokenId = metric.counterfactual;
        logit.contrastToken = model::tokenText(model, metric.counterfactual);
        logit.contrastTokenProb = probabilities[metric.counterfactual].item<double>();
        g.metadata.extra["logit_difference"] = { { "token_id", logit.tokenId }, { "token", logit.token },
            { "prob", logit.tokenProb }, { "contrast_token_id", logit.contrastTokenId },
            { "contrast_token", logit.contrastToken }, { "contrast_prob", logit.contrastTokenProb } };
    }
    g.nodes.push_back(logit);
    g.logitProbabilities = { 1.0F };
    g.adjacency = builder.build();

    graph::Metadata& md = g.metadata;
    md.prompt = model.hasTokenizer() ? model.tokenizer().decode(ids) : std::string();
    md.extra["exactness"]
        = { { "max_abs_residual", r.maxAbsResidual }, { "max_rel_residual", r.maxRelResidual }, { "rows", r.rows } };
    nlohmann::json settings = { { "node_kind", nodeKindName(o.attribution.kind) },
        { "method", methodName(o.attribution.method) }, { "max_nodes", o.maxNodes }, { "batch_size", o.batchSize },
        { "metric", metric.counterfactual >= 0 ? "logit_difference" : "logit" }, { "units", L * nPos * width },
        { "model", model.folder() } };
    if (o.attribution.method == Method::IntegratedGradients)
        settings["steps"] = o.attribution.steps;
    if (!o.attribution.baselineIds.empty())
        settings["counterfactual"]
            = model.hasTokenizer() ? model.tokenizer().decode(o.attribution.baselineIds, true) : std::string();
    md.extra["neuron_trace"] = settings;
    md.extra["info"] = { { "creator_name", "circuitscope" }, { "method", methodName(o.attribution.method) },
        { "node_kind", nodeKindName(o.attribution.kind) } };
    g.validate();
    r.totalMs = msSince(start);
    return r;
}

} // namespace cs::neurons
