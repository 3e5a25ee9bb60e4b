// circuitscope-cli neurons: circuit tracing in the neuron basis (cs/neurons.h). `neurons curve`
// evaluates the top-k circuits of a paired task: faithfulness and completeness against k.
#include "commands.h"

#include "cs/engine.h"
#include "cs/error.h"
#include "cs/intervention.h"
#include "cs/model.h"
#include "cs/neurons.h"
#include "cs/transcoder.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>

namespace cs::cli {

namespace {

using Json = nlohmann::json;

// The method, node kind (features: the caller's), steps and batch.
neurons::AttributionOptions attributionOptions(const Args& args)
{
    neurons::AttributionOptions o;
    o.method = neurons::methodFromName(args.valueOr("method", "relp"));
    const std::string kind = args.valueOr("node-kind", "neurons");
    if (kind != "features")
        o.kind = neurons::nodeKindFromName(kind);
    o.steps = args.intOr("steps", o.steps);
    o.batchSize = args.intOr("batch-size", o.batchSize);
    return o;
}

// neurons curve --edges: faithfulness and completeness of edge sets within each item's top
// --nodes units, against the fraction of their edges kept.
int edgeCurve(const Args& args, const std::string& device, const std::string& folder, const std::string& taskPath)
{
    if (args.valueOr("node-kind", "neurons") == "features")
        throw Error("--edges evaluates edges between the model's own units (neurons, mlp_out, attn_out, resid)");
    neurons::EdgeCurveOptions o;
    o.attribution = attributionOptions(args);
    o.nodes = args.intOr("nodes", o.nodes);
    if (auto f = args.value("fractions"))
        o.fractions = parseNumberList(*f, "--fractions");
    const auto task = neurons::readTask(taskPath);
    model::initThreads();
    auto model = model::Model::load(folder, { device, true });
    const bool json = args.flag("json");
    if (!json)
        o.progress = [](double f) {
            std::fprintf(stderr, "\rneurons curve --edges %3.0f%%", 100 * f);
            return true;
        };
    const neurons::EdgeCurve c = neurons::evaluateEdgeCircuits(*model, task, o);
    if (!json)
        std::fprintf(stderr, "\n");
    Json points = Json::array();
    for (const auto& p : c.points)
        points.push_back({ { "fraction", p.fraction }, { "edges", p.edges }, { "faithfulness", p.faithfulness },
            { "completeness", p.completeness } });
    const Json j = { { "method", neurons::methodName(o.attribution.method) },
        { "node_kind", neurons::nodeKindName(o.attribution.kind) }, { "nodes", o.nodes }, { "points", points },
        { "items", c.items }, { "candidates", c.candidates }, { "full", c.full }, { "empty", c.empty },
        { "nodes_only", c.nodesOnly }, { "seconds", c.seconds } };
    if (json) {
        std::cout << dump(j) << "\n";
        return 0;
    }
    const double span = c.full - c.empty;
    std::printf("%lld items, %s, top %lld %s units: %lld candidate edges; the nodes alone: faithfulness %.4f; %.2f s\n",
        static_cast<long long>(c.items), neurons::methodName(o.attribution.method), static_cast<long long>(o.nodes),
        neurons::nodeKindName(o.attribution.kind), static_cast<long long>(c.candidates), (c.nodesOnly - c.empty) / span,
        c.seconds);
    std::printf("  %8s %8s %13s %13s\n", "fraction", "edges", "faithfulness", "completeness");
    for (const auto& p : c.points)
        std::printf("  %8.3f %8lld %13.4f %13.4f\n", p.fraction, static_cast<long long>(p.edges), p.faithfulness,
            p.completeness);
    return 0;
}

int curve(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    const std::string folder = resolveModelFolder(pos.size() > 2 ? pos[2] : std::string(kDefaultModel));
    const auto taskPath = args.value("task");
    if (!taskPath)
        throw Error("neurons curve needs --task FILE.jsonl (one {\"prompt\", \"answer\", \"counterfactual\", "
                    "\"counterfactual_answer\"} a line)");
    if (args.flag("edges"))
        return edgeCurve(args, device, folder, *taskPath);
    neurons::CurveOptions o;
    o.attribution = attributionOptions(args);
    o.ks = parseValues(args.valueOr("ks", "10,20,50,100,200,500"), "ks");
    const auto task = neurons::readTask(*taskPath);
    auto model = model::Model::load(folder, { device, true });
    const bool features = args.valueOr("node-kind", "neurons") == "features";
    if (features) {
        transcoder::TranscoderSet::LoadOptions lo;
        lo.device = model->device().str();
        lo.modelLayers = model->config().nLayers;
        o.transcoders = transcoder::TranscoderSet::load(
            transcoder::resolveTranscoderFolder(folder, args.valueOr("transcoder", "clt")), lo);
    } else if (args.has("transcoder")) {
        throw Error("--transcoder goes with --node-kind features");
    }
    const bool json = args.flag("json");
    if (!json)
        o.progress = [](double f) {
            std::fprintf(stderr, "\rneurons curve %3.0f%%", 100 * f);
            return true;
        };
    const neurons::Curve c = neurons::evaluateCircuits(*model, task, o);
    if (!json)
        std::fprintf(stderr, "\n");
    Json points = Json::array();
    for (const auto& p : c.points)
        points.push_back({ { "k", p.k }, { "faithfulness", p.faithfulness }, { "completeness", p.completeness } });
    const std::string kindName = features ? "features" : neurons::nodeKindName(o.attribution.kind);
    const Json j
        = { { "method", neurons::methodName(o.attribution.method) }, { "node_kind", kindName }, { "points", points },
              { "items", c.items }, { "full", c.full }, { "empty", c.empty }, { "seconds", c.seconds } };
    if (json) {
        std::cout << dump(j) << "\n";
        return 0;
    }
    std::printf("%lld items, %s, %s nodes: m(M) %.3f, m(empty) %.3f (summed), %.2f s\n",
        static_cast<long long>(c.items), neurons::methodName(o.attribution.method), kindName.c_str(), c.full, c.empty,
        c.seconds);
    std::printf("  %8s %13s %13s\n", "k", "faithfulness", "completeness");
    for (const auto& p : c.points)
        std::printf("  %8lld %13.4f %13.4f\n", static_cast<long long>(p.k), p.faithfulness, p.completeness);
    return 0;
}

// --node-kind features: the transcoder basis, traced by `trace` with the same prompt, target
// and outputs.
int traceFeatures(const Args& args, const std::string& device)
{
    std::map<std::string, std::vector<std::string>> values;
    for (const char* key : { "text", "out", "full", "transcoder", "node-threshold", "edge-threshold", "slug" })
        if (auto v = args.value(key))
            values[key] = { *v };
    if (auto a = args.value("answer"); a && args.value("counterfactual-answer"))
        values["logit-diff"] = { *a + "|" + *args.value("counterfactual-answer") };
    else if (auto t = args.value("target"))
        values["logit-tokens"] = { *t };
    std::set<std::string> flags;
    if (args.flag("json"))
        flags.insert("json");
    const auto& pos = args.positional();
    return cmdTrace(Args({ "trace", pos.size() > 2 ? pos[2] : std::string(kDefaultModel) }, values, flags), device);
}

int trace(const Args& args, const std::string& device)
{
    if (args.valueOr("node-kind", "neurons") == "features")
        return traceFeatures(args, device);
    const auto& pos = args.positional();
    const std::string folder = resolveModelFolder(pos.size() > 2 ? pos[2] : std::string(kDefaultModel));
    const auto text = args.value("text");
    const auto out = args.value("out");
    if (!text || !out)
        throw Error("neurons trace needs --text PROMPT and --out G.json");
    const double nodeThreshold = args.doubleOr("node-threshold", 0.8);
    const double edgeThreshold = args.doubleOr("edge-threshold", 0.98);
    if (!(nodeThreshold >= 0 && nodeThreshold <= 1) || !(edgeThreshold >= 0 && edgeThreshold <= 1))
        throw Error("--node-threshold and --edge-threshold must be in [0, 1]");
    const auto counterfactual = args.value("counterfactual");
    const auto answer = args.value("answer");
    const auto counterfactualAnswer = args.value("counterfactual-answer");
    const auto target = args.value("target");
    if (counterfactual && (!answer || !counterfactualAnswer))
        throw Error("--counterfactual needs --answer \" A\" and --counterfactual-answer \" B\"");
    if (target && (answer || counterfactualAnswer))
        throw Error("give either --target \" A\" or --answer \" A\" --counterfactual-answer \" B\", not both");

    neurons::TraceOptions o;
    o.attribution = attributionOptions(args);
    o.maxNodes = args.intOr("max-nodes", o.maxNodes);
    o.batchSize = args.intOr("batch-size", o.batchSize);
    model::initThreads();
    auto model = model::Model::load(folder, { device, true });
    const auto ids = model->tokenizer().encode(*text);
    neurons::Metric metric;
    if (answer && counterfactualAnswer) {
        metric.answer = neurons::answerToken(*model, *answer, "--answer");
        metric.counterfactual = neurons::answerToken(*model, *counterfactualAnswer, "--counterfactual-answer");
    } else if (answer || target) {
        metric.answer = neurons::answerToken(*model, answer ? *answer : *target, answer ? "--answer" : "--target");
    } else { // the model's own prediction
        at::NoGradGuard noGrad;
        const at::Tensor logits = model->forward(at::tensor(ids, at::kLong).to(model->device()).unsqueeze(0)).logits;
        metric.answer = logits[0][static_cast<int64_t>(ids.size()) - 1].argmax().item<int64_t>();
    }
    if (counterfactual)
        o.attribution.baselineIds = model->tokenizer().encode(*counterfactual);
    const bool json = args.flag("json");
    if (!json)
        o.progress = [](double f) {
            std::fprintf(stderr, "\rneurons trace %3.0f%%", 100 * f);
            return true;
        };
    const auto start = std::chrono::steady_clock::now();
    neurons::TraceResult r = neurons::trace(*model, ids, metric, o);
    if (!json)
        std::fprintf(stderr, "\r                    \r");
    graph::Graph& g = r.graph;
    g.metadata.prompt = *text;
    if (counterfactual) // as typed (the engine's is decoded from the ids)
        g.metadata.extra["neuron_trace"]["counterfactual"] = *counterfactual;
    g.metadata.slug = args.valueOr("slug", "neurons-" + std::string(neurons::nodeKindName(o.attribution.kind)));
    g.metadata.nodeThreshold = nodeThreshold;
    g.metadata.edgeThreshold = edgeThreshold;
    const GraphOutputs written = writeGraphOutputs(args, g);
    const auto ranges = g.ranges();
    const Json summary = { { "out", *out }, { "full", args.valueOr("full", "") },
        { "n_tokens", static_cast<int64_t>(ids.size()) }, { "method", neurons::methodName(o.attribution.method) },
        { "node_kind", neurons::nodeKindName(o.attribution.kind) }, { "nodes", written.nodes },
        { "edges", written.edges }, { "nodes_total", g.size() }, { "edges_total", g.adjacency.nnz() },
        { "units", ranges.features.size() }, { "metric", r.attribution.metric },
        { "exactness", g.metadata.extra["exactness"] }, { "scores", graph::scoresJson(written.scores) },
        { "pruned_scores", graph::scoresJson(written.prunedScores) }, { "attribution_ms", r.attributionMs },
        { "edges_ms", r.edgesMs }, { "trace_ms", r.totalMs }, { "prune_ms", written.pruneMs },
        { "total_ms", std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() } };
    if (json) {
        std::cout << dump(summary) << "\n";
        return 0;
    }
    const auto& logit = g.nodes.back();
    std::cout << "neuron graph of \"" << *text << "\" (" << ids.size() << " tokens, "
              << summary["node_kind"].get<std::string>() << ", " << summary["method"].get<std::string>() << ") -> "
              << *out << "\n"
              << "metric " << r.attribution.metric << ": logit \"" << logit.token << "\""
              << (logit.contrastTokenId >= 0 ? " - \"" + logit.contrastToken + "\"" : std::string()) << "\n"
              << "nodes " << written.nodes << " of " << g.size() << " (units " << ranges.features.size() << ", others "
              << ranges.errors.size() << ", embeddings " << ranges.embeddings.size() << ", logits 1), edges "
              << written.edges << " of " << g.adjacency.nnz() << "\n"
              << scoresText(written) << "exactness: max residual " << r.maxAbsResidual << " (relative "
              << r.maxRelResidual << ") over " << r.rows << " rows\n"
              << "traced in " << r.totalMs << " ms (attribution " << r.attributionMs << ", edges " << r.edgesMs
              << "), pruned in " << written.pruneMs << " ms\n";
    return 0;
}

// neurons intervene: edits on the model's own units, the real model running.
int intervene(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    const std::string folder = resolveModelFolder(pos.size() > 2 ? pos[2] : std::string(kDefaultModel));
    const auto text = args.value("text");
    if (!text || text->empty())
        throw Error("neurons intervene needs a prompt: --text P");
    auto edits = parseEdits(args);
    const auto patches = args.values("patch");
    const auto from = args.value("from");
    if (!patches.empty() != from.has_value())
        throw Error("--patch LAYER:POS:UNIT and --from P2 go together: the units take their values on the prompt P2");
    if (edits.empty() && patches.empty())
        throw Error("neurons intervene needs at least one edit: --set, --scale or --add LAYER:POS:UNIT=VALUE, or "
                    "--patch LAYER:POS:UNIT with --from P2");
    const std::string kindName = args.valueOr("node-kind", "neurons");
    if (kindName == "features")
        throw Error("--node-kind features: transcoder features are edited by `intervene`");
    const neurons::NodeKind kind = neurons::nodeKindFromName(kindName);
    const int64_t topK = args.intOr("top-k", 10);
    if (topK < 1)
        throw Error("--top-k must be at least 1");
    model::initThreads();
    auto model = model::Model::load(folder, { device, true });
    const auto ids = model->tokenizer().encode(*text);
    if (from) { // activation patching: each named unit set to its value on P2, after the other edits
        const auto fromIds = model->tokenizer().encode(*from);
        if (fromIds.size() != ids.size())
            throw Error("--from has " + std::to_string(fromIds.size()) + " tokens and --text "
                + std::to_string(ids.size()) + ": patching needs prompts of one length");
        const auto values = neurons::unitValues(*model, fromIds, kind);
        for (const auto& spec : patches) {
            auto e = parseEdit(spec + "=0", intervention::Op::Set);
            if (e.position < 0 || e.position >= static_cast<int64_t>(ids.size()) || e.layer < 0
                || e.layer >= static_cast<int64_t>(values.size()) || e.feature < 0 || e.feature >= values[0].size(1))
                throw Error("--patch " + spec + " is outside the model or the prompt (LAYER:POS:UNIT, POS a token)");
            e.value = values[static_cast<size_t>(e.layer)][e.position][e.feature].item<double>();
            edits.push_back(e);
        }
    }
    const auto r = neurons::intervene(*model, ids, kind, edits, topK);
    std::map<int64_t, double> delta;
    for (const auto* list : { &r.before, &r.after })
        for (const auto& t : *list)
            delta[t.id] = r.logitsAfter[t.id].item<double>() - r.logitsBefore[t.id].item<double>();
    if (args.flag("json")) {
        Json editList = Json::array();
        for (const auto& e : edits)
            editList.push_back({ { "op", intervention::opName(e.op) }, { "layer", e.layer },
                { "position", e.position < 0 ? Json("*") : Json(e.position) }, { "unit", e.feature },
                { "value", e.value } });
        Json d = Json::object();
        for (const auto& [id, v] : delta)
            d[std::to_string(id)] = v;
        std::cout << dump({ { "node_kind", kindName }, { "prompt_ids", ids }, { "edits", editList },
            { "before", { { "top", topTokensJson(r.before) } } }, { "after", { { "top", topTokensJson(r.after) } } },
            { "logit_delta", d } })
                  << "\n";
        return 0;
    }
    std::printf("%zu edit(s) on %s, %zu prompt tokens (the real model, nothing frozen)\n", edits.size(),
        kindName.c_str(), ids.size());
    std::printf("%-4s  %-20s %8s %7s   %-20s %8s %7s\n", "rank", "before", "logit", "prob", "after", "logit", "prob");
    for (size_t i = 0; i < std::max(r.before.size(), r.after.size()); ++i) {
        const auto cell = [](const std::vector<TokenScore>& list, size_t k) {
            char buf[96] = "";
            if (k < list.size())
                std::snprintf(buf, sizeof buf, "%-20s %8.3f %7.4f", ("\"" + list[k].token + "\"").c_str(),
                    list[k].logit, list[k].prob);
            return std::string(buf);
        };
        std::printf("%-4zu  %s   %s\n", i + 1, cell(r.before, i).c_str(), cell(r.after, i).c_str());
    }
    return 0;
}

} // namespace

int cmdNeurons(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    const std::string sub = pos.size() > 1 ? pos[1] : "";
    if (sub == "curve")
        return curve(args, device);
    if (sub == "trace")
        return trace(args, device);
    if (sub == "intervene")
        return intervene(args, device);
    throw Error("neurons needs a subcommand: trace, curve or intervene (try --help)");
}

} // namespace cs::cli
