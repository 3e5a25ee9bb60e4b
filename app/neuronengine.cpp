// The explorer's engine side in the neuron basis (cs/neurons.h; docs/ARCHITECTURE.md §8.6):
// tracing a prompt's metric to the model's own units, interventions on them and the task a
// curve is computed on. Worker thread only, as the rest of explorerengine.h.

#include "explorerengine.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cs/error.h>
#include <cs/model.h>
#include <cs/neurons.h>
#include <cs/tokenizer.h>

#include <algorithm>
#include <chrono>

namespace cs::app {

namespace {

std::vector<int64_t> encode(const cs::model::Model& model, const std::string& text)
{
    return model.tokenizer().encode(text);
}

// The model's most probable next token after `ids`.
int64_t predictedToken(const cs::model::Model& model, const std::vector<int64_t>& ids)
{
    c10::NoGradGuard noGrad;
    const at::Tensor input = at::tensor(ids, at::kLong).unsqueeze(0).to(model.device());
    const at::Tensor logits = model.forward(input).logits; // [1, n_pos, vocab]
    return logits[0][static_cast<int64_t>(ids.size()) - 1].argmax().item<int64_t>();
}

// The first token an answer text encodes to (a leading space is part of it: " Austin"), as the
// task format scores it. Throws cs::Error naming `what` for text that encodes to nothing.
int64_t answerToken(const cs::model::Model& model, const std::string& text, const char* what)
{
    const std::vector<int64_t> ids = model.tokenizer().encode(text, false);
    if (ids.empty())
        throw cs::Error(std::string("the ") + what + " \"" + text + "\" is no token of this model's");
    return ids.front();
}

} // namespace

std::string openUnitStore(
    ExplorerResources& resources, const cs::model::Model& model, const std::string& basis, std::string* problem)
{
    // Looked up each time: a store built while the explorer runs is found by the next trace.
    const std::string path = cs::features::findUnitStore(model.folder(), basis);
    if (!path.empty() && path == resources.unitStorePath && resources.unitStore)
        return path;
    resources.unitStorePath = path;
    resources.unitStore.reset();
    resources.unitVocabulary.reset();
    if (path.empty())
        return {};
    try {
        resources.unitStore = cs::features::FeatureStore::open(path, false);
        // A store of another model's units would caption these with its cards (issue 23).
        const cs::features::StoreInfo si = resources.unitStore->info();
        const int64_t units = model.config().dMlp; // per layer, as features build writes a unit store
        if (si.nLayers != model.config().nLayers || si.nFeatures != units)
            throw cs::Error(path + " describes " + std::to_string(si.nLayers) + " layers of "
                + std::to_string(si.nFeatures) + " units (its meta n_layers and n_features), not the model's "
                + std::to_string(model.config().nLayers) + " of " + std::to_string(units));
        resources.unitVocabulary = std::make_shared<const std::vector<std::string>>(resources.unitStore->vocabulary());
    } catch (const cs::Error& e) {
        resources.unitStore.reset();
        if (problem)
            *problem = e.what();
        return {};
    }
    return path;
}

TraceOutput traceNeuronGraph(
    ExplorerResources& resources, std::shared_ptr<const cs::model::Model> model, const TraceRequest& request)
{
    if (!model)
        throw cs::Error("no model is open");
    if (request.prompt.empty())
        throw cs::Error("the prompt is empty: type a prompt to trace");
    if (!model->hasTokenizer())
        throw cs::Error("the model has no tokenizer: neuron graphs need one to read the prompt");
    const NeuronTraceSpec& spec = request.neurons;
    const auto start = std::chrono::steady_clock::now();
    const auto stage = [&](const char* text) {
        if (request.stage)
            request.stage(text);
    };
    const std::vector<int64_t> ids = encode(*model, request.prompt);

    cs::neurons::TraceOptions options;
    options.attribution.kind = cs::neurons::nodeKindFromName(spec.kind);
    options.attribution.method = cs::neurons::methodFromName(spec.method);
    options.attribution.steps = spec.steps;
    options.maxNodes = spec.maxNodes;
    std::vector<int64_t> counterfactualIds;
    if (!spec.counterfactual.empty()) {
        counterfactualIds = encode(*model, spec.counterfactual);
        if (counterfactualIds.size() != ids.size())
            throw cs::Error("the counterfactual prompt has " + std::to_string(counterfactualIds.size())
                + " tokens and the prompt " + std::to_string(ids.size())
                + ": paired prompts need as many tokens (change one word for another of one token)");
        options.attribution.baselineIds = counterfactualIds;
    }

    stage("choosing the metric");
    cs::neurons::Metric metric;
    metric.answer = spec.answer.empty() ? predictedToken(*model, ids) : answerToken(*model, spec.answer, "answer");
    if (!spec.counterfactualAnswer.empty() && counterfactualIds.empty())
        throw cs::Error("a counterfactual answer goes with a counterfactual prompt: give one, or leave the "
                        "counterfactual answer empty for the answer's logit alone");
    if (!spec.counterfactualAnswer.empty())
        metric.counterfactual = answerToken(*model, spec.counterfactualAnswer, "counterfactual answer");
    else if (!counterfactualIds.empty())
        metric.counterfactual = predictedToken(*model, counterfactualIds);
    if (metric.counterfactual == metric.answer)
        throw cs::Error("the answer and the counterfactual answer are the same token (\""
            + model->tokenizer().decode({ metric.answer })
            + "\"): the metric is their difference; give a counterfactual answer that differs");

    options.progress = [&](double fraction) {
        const bool go = !request.progress || request.progress(fraction);
        if (fraction >= 1.0)
            stage("assembling the graph");
        return go;
    };
    stage(options.attribution.method == cs::neurons::Method::IntegratedGradients
            ? "attributing by integrated gradients, then the edges"
            : "attributing by RelP, then the edges");
    cs::neurons::TraceResult result = cs::neurons::trace(*model, ids, metric, options);
    stage("pruning");

    auto graph = std::make_shared<cs::graph::Graph>(std::move(result.graph));
    graph->metadata.prompt = request.prompt;
    graph->metadata.slug = "circuitscope";
    // The counterfactual as typed (the engine's is decoded from ids, a BOS token included): the
    // curve encodes it again.
    if (!spec.counterfactual.empty())
        graph->metadata.extra["neuron_trace"]["counterfactual"] = spec.counterfactual;
    auto pruner = std::make_shared<const cs::graph::Pruner>(*graph);
    graph->metadata.extra["scores"] = cs::graph::scoresJson(pruner->scores());

    TraceOutput out;
    out.traceMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    stage("reading neuron descriptions");
    const auto captionsStart = std::chrono::steady_clock::now();
    if (graph->metadata.basis == "neurons")
        out.unitStorePath = openUnitStore(resources, *model, "neurons", &out.unitStoreProblem);
    readCaptions(resources, *graph, out.storeLabels, out.autoCaptions, &pruner->influence());
    out.captionMs = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - captionsStart).count();
    out.graph = std::move(graph);
    out.pruner = std::move(pruner);
    out.maxRelResidual = result.maxRelResidual;
    // Interventions on this graph run on the model's units, not on a replacement context.
    resources.context.reset();
    resources.contextIds.clear();
    resources.unitModel = std::move(model);
    resources.unitIds = ids;
    resources.unitBasis = out.graph->metadata.basis;
    return out;
}

bool prepareUnitContext(
    ExplorerResources& resources, const cs::graph::Graph& graph, std::shared_ptr<const cs::model::Model> model)
{
    if (!model || !model->hasTokenizer() || graph.metadata.prompt.empty())
        return false;
    const auto ids = encode(*model, graph.metadata.prompt);
    if (!graphIsOfPrompt(graph, ids))
        return false;
    const auto ranges = graph.ranges();
    // The units must be this model's.
    for (int64_t i = ranges.features.begin; i < ranges.features.end; ++i) {
        const auto& node = graph.nodes[static_cast<size_t>(i)];
        if (node.layer < 0 || node.layer >= model->config().nLayers || node.feature < 0)
            return false;
    }
    if (graph.metadata.basis == "neurons")
        openUnitStore(resources, *model, "neurons");
    resources.unitModel = std::move(model);
    resources.unitIds = ids;
    resources.unitBasis = graph.metadata.basis;
    return true;
}

cs::intervention::InterventionResult runUnitIntervention(const ExplorerResources& resources,
    const std::vector<cs::intervention::FeatureEdit>& edits, int64_t topK, int64_t generate)
{
    if (resources.unitBasis.empty() || !resources.unitModel)
        throw cs::Error("interventions on units need the unit graph's prompt on this model: trace it first");
    const cs::neurons::UnitInterventionResult r = cs::neurons::intervene(
        *resources.unitModel, resources.unitIds, cs::neurons::nodeKindFromName(resources.unitBasis), edits, topK);
    cs::intervention::InterventionResult out;
    out.before = r.before;
    out.after = r.after;
    // The change of every listed token's logit (the real model's, as the panel shows).
    const auto delta = [&](int64_t id) {
        if (id >= 0 && id < r.logitsAfter.size(0))
            out.logitDelta[id] = r.logitsAfter[id].item<double>() - r.logitsBefore[id].item<double>();
    };
    for (const auto& t : r.before)
        delta(t.id);
    for (const auto& t : r.after)
        delta(t.id);
    out.generationMode = cs::intervention::Regime::Free;
    if (generate > 0) {
        const cs::model::Model& model = *resources.unitModel;
        cs::model::GenerateOptions options;
        options.maxNew = generate;
        options.useCache = false; // every step runs the whole sequence: hook positions are absolute
        out.generatedBefore = model.generate(resources.unitIds, options);
        // The edits as cs::neurons::intervene applies them, on every step.
        options.hook = cs::neurons::editHook(cs::neurons::nodeKindFromName(resources.unitBasis), edits);
        out.generatedAfter = edits.empty() ? out.generatedBefore : model.generate(resources.unitIds, options);
        out.generationBefore = model.tokenizer().decode(out.generatedBefore);
        out.generationAfter = model.tokenizer().decode(out.generatedAfter);
    }
    return out;
}

UnitTask unitTaskOf(const cs::graph::Graph& graph, const cs::model::Model& model)
{
    if (graph.metadata.basis.empty())
        throw cs::Error("the graph is in the transcoder basis: trace the prompt with neurons for a curve");
    UnitTask task;
    task.prompt = graph.metadata.prompt;
    task.kind = graph.metadata.basis;
    const auto& extra = graph.metadata.extra;
    if (const auto it = extra.find("neuron_trace"); it != extra.end() && it->is_object()) {
        task.method = it->value("method", std::string("relp"));
        task.steps = it->value("steps", int64_t(32));
        task.counterfactual = it->value("counterfactual", std::string());
    }
    const auto logits = graph.ranges().logits;
    if (logits.end <= logits.begin)
        throw cs::Error("the graph has no logit node: no metric to evaluate");
    const auto& logit = graph.nodes[static_cast<size_t>(logits.begin)];
    if (!model.hasTokenizer())
        throw cs::Error("the model has no tokenizer");
    task.answer = model.tokenizer().decode({ logit.tokenId });
    if (logit.contrastTokenId >= 0)
        task.counterfactualAnswer = model.tokenizer().decode({ logit.contrastTokenId });
    return task;
}

cs::neurons::Curve unitCurve(const cs::model::Model& model, const cs::graph::Graph& graph,
    const std::vector<int64_t>& ks, std::function<bool(double)> progress)
{
    const UnitTask task = unitTaskOf(graph, model);
    cs::neurons::CurveOptions options;
    options.attribution.kind = cs::neurons::nodeKindFromName(task.kind);
    options.attribution.method = cs::neurons::methodFromName(task.method);
    options.attribution.steps = task.steps;
    options.ks = ks;
    options.progress = std::move(progress);
    return cs::neurons::evaluateCircuits(
        model, { { task.prompt, task.answer, task.counterfactual, task.counterfactualAnswer } }, options);
}

std::vector<int64_t> curveKs(int64_t units, int64_t mark)
{
    std::vector<int64_t> ks;
    for (int64_t decade = 1; decade < units; decade *= 10)
        for (int64_t m : { 1, 2, 5 })
            if (decade * m < units)
                ks.push_back(decade * m);
    if (units > 0)
        ks.push_back(units);
    if (mark >= 1 && mark <= units)
        ks.push_back(mark);
    std::sort(ks.begin(), ks.end());
    ks.erase(std::unique(ks.begin(), ks.end()), ks.end());
    return ks;
}

} // namespace cs::app
