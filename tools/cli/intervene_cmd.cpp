// circuitscope-cli intervene: set, scale or add to transcoder features on one prompt and show
// the next-token distribution before and after (docs/ARCHITECTURE.md §8); circuitscope-cli
// validate: the graph's predicted effects of editing its top nodes against the model's (§8.5).
#include "commands.h"

#include "cs/attribution.h"
#include "cs/engine.h"
#include "cs/error.h"
#include "cs/intervention.h"
#include "cs/replacement.h"
#include "cs/validation.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>

namespace cs::cli {

namespace {

using Json = nlohmann::json;

int64_t parseIndex(const std::string& text, const std::string& spec, const char* what)
{
    char* end = nullptr;
    errno = 0;
    const long long n = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno == ERANGE)
        throw Error("\"" + spec + "\": the " + what + " \"" + text + "\" is not an integer");
    return n;
}

// "A:B" -> layers A <= l < B, as Python's range(A, B); A defaults to 0, B to n_layers.
intervention::LayerRange parseLayerRange(const std::string& text, int64_t nLayers)
{
    const size_t colon = text.find(':');
    if (colon == std::string::npos)
        throw Error("--constrained-layers \"" + text
            + "\" is not of the form FIRST:END (layers FIRST <= l < END, as Python's range; either may be left out)");
    const std::string first = text.substr(0, colon), end = text.substr(colon + 1);
    intervention::LayerRange r;
    r.first = first.empty() ? 0 : parseIndex(first, text, "first layer");
    r.end = end.empty() ? nLayers : parseIndex(end, text, "end layer");
    return r;
}

// The regime and circuit-tracer's options from --mode, --freeze-attention,
// --no-freeze-attention, --constrained-layers and --direct-effects. Any of the last four asks
// for the patch regime; with --mode constrained or free they are an error.
void parseRegime(const Args& args, int64_t nLayers, intervention::InterventionOptions& o)
{
    const bool patchFlags = args.flag("freeze-attention") || args.flag("no-freeze-attention")
        || args.has("constrained-layers") || args.flag("direct-effects");
    const std::string mode = args.valueOr("mode", patchFlags ? "patch" : "constrained");
    if (mode == "constrained")
        o.regime = intervention::Regime::Constrained;
    else if (mode == "free")
        o.regime = intervention::Regime::Free;
    else if (mode == "patch")
        o.regime = intervention::Regime::Patch;
    else
        throw Error("--mode must be constrained, free or patch, not \"" + mode + "\"");
    if (patchFlags && o.regime != intervention::Regime::Patch)
        throw Error("--freeze-attention, --no-freeze-attention, --constrained-layers and --direct-effects are options "
                    "of --mode patch (circuit-tracer's feature_intervention), not of --mode "
            + mode);
    if (args.flag("freeze-attention") && args.flag("no-freeze-attention"))
        throw Error("--freeze-attention and --no-freeze-attention contradict each other");
    o.freezeAttention = !args.flag("no-freeze-attention");
    if (args.flag("direct-effects") && args.has("constrained-layers"))
        throw Error("--direct-effects is --constrained-layers 0:" + std::to_string(nLayers) + ": give one of them");
    if (args.flag("direct-effects"))
        o.constrainedLayers = intervention::LayerRange { 0, nLayers };
    else if (const auto range = args.value("constrained-layers"))
        o.constrainedLayers = parseLayerRange(*range, nLayers);
}

Json tokenMap(const std::map<int64_t, double>& byToken)
{
    Json m = Json::object();
    for (const auto& [id, d] : byToken)
        m[std::to_string(id)] = d;
    return m;
}

// Shows whitespace in a token for a terminal.
std::string visible(const std::string& token)
{
    std::string out;
    for (char ch : token)
        out += ch == '\n' ? std::string("\\n") : ch == '\t' ? std::string("\\t") : std::string(1, ch);
    return "\"" + out + "\"";
}

Json topJson(const std::vector<intervention::TokenScore>& top)
{
    Json list = Json::array();
    for (const auto& t : top)
        list.push_back({ { "id", t.id }, { "token", t.token }, { "logit", t.logit }, { "prob", t.prob } });
    return list;
}

} // namespace

intervention::FeatureEdit parseEdit(const std::string& spec, intervention::Op op)
{
    const std::string form = std::string("--") + intervention::opName(op)
        + " LAYER:POS:FEATURE=" + (op == intervention::Op::Scale ? "FACTOR" : "VALUE");
    const size_t eq = spec.find('=');
    const size_t c1 = spec.find(':');
    const size_t c2 = c1 == std::string::npos ? std::string::npos : spec.find(':', c1 + 1);
    if (eq == std::string::npos || c1 == std::string::npos || c2 == std::string::npos || c2 > eq)
        throw Error("\"" + spec + "\" is not of the form " + form + " (POS may be * for every position)");
    intervention::FeatureEdit e;
    e.op = op;
    e.layer = parseIndex(spec.substr(0, c1), spec, "layer");
    const std::string pos = spec.substr(c1 + 1, c2 - c1 - 1);
    e.position = pos == "*" ? -1 : parseIndex(pos, spec, "position");
    if (pos != "*" && e.position < 0)
        throw Error("\"" + spec + "\": the position must not be negative (use * for every position)");
    e.feature = parseIndex(spec.substr(c2 + 1, eq - c2 - 1), spec, "feature");
    const std::string value = spec.substr(eq + 1);
    char* end = nullptr;
    e.value = std::strtod(value.c_str(), &end);
    if (value.empty() || *end != '\0' || !std::isfinite(e.value))
        throw Error("\"" + spec + "\": \"" + value + "\" is not a finite number");
    // Activations are float32: a larger value would become infinite inside the model.
    if (std::fabs(e.value) > std::numeric_limits<float>::max())
        throw Error("\"" + spec + "\": " + value + " is beyond float32's range (magnitude at most 3.4e38)");
    return e;
}

std::vector<intervention::FeatureEdit> parseEdits(const Args& args)
{
    // Edits apply in this order: every --set, then every --scale, then every --add.
    std::vector<intervention::FeatureEdit> edits;
    for (const auto& [option, op] : { std::pair { "set", intervention::Op::Set },
             std::pair { "scale", intervention::Op::Scale }, std::pair { "add", intervention::Op::Add } })
        for (const auto& spec : args.values(option))
            edits.push_back(parseEdit(spec, op));
    return edits;
}

nlohmann::json topTokensJson(const std::vector<TokenScore>& top)
{
    return topJson(top);
}

int cmdIntervene(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    const std::string folder = resolveModelFolder(pos.size() > 1 ? pos[1] : std::string(kDefaultModel));
    const auto text = args.value("text");
    if (!text)
        throw Error("intervene needs the prompt: --text P");
    if (text->empty())
        throw Error("the prompt is empty: it has no tokens to run");

    const std::vector<intervention::FeatureEdit> edits = parseEdits(args);
    if (edits.empty())
        throw Error("intervene needs at least one edit: --set, --scale or --add LAYER:POS:FEATURE=VALUE");

    intervention::InterventionOptions o;
    o.topK = args.intOr("top-k", o.topK);
    if (o.topK < 1)
        throw Error("--top-k must be at least 1");
    o.generate = args.intOr("generate", 0);
    if (o.generate < 0)
        throw Error("--generate must not be negative");

    auto model = model::Model::load(folder, { device, true });
    parseRegime(args, model->config().nLayers, o);
    auto set = transcoder::TranscoderSet::load(
        transcoder::resolveTranscoderFolder(folder, args.valueOr("transcoder", "clt")),
        { device, true, model->config().nLayers });
    const std::vector<int64_t> ids = model->tokenizer().encode(*text);
    at::NoGradGuard noGrad;
    const auto context = attribution::buildContext(model, set, at::tensor(ids, at::kLong));
    const auto r = intervention::intervene(context, edits, o);

    if (args.flag("json")) {
        Json changed = Json::array();
        for (const auto& c : r.changed)
            changed.push_back({ { "layer", c.layer }, { "position", c.position }, { "feature", c.feature },
                { "before", c.before }, { "after", c.after } });
        Json editList = Json::array();
        for (const auto& e : edits)
            editList.push_back({ { "op", intervention::opName(e.op) }, { "layer", e.layer },
                { "position", e.position < 0 ? Json("*") : Json(e.position) }, { "feature", e.feature },
                { "value", e.value } });
        Json j = { { "mode", intervention::regimeName(o.regime) }, { "direct_effects", r.directEffects },
            { "prompt_ids", ids }, { "edits", editList }, { "before", { { "top", topJson(r.before) } } },
            { "after", { { "top", topJson(r.after) } } }, { "logit_delta", tokenMap(r.logitDelta) },
            { "demeaned_logit_delta", tokenMap(r.demeanedLogitDelta) }, { "changed", changed },
            { "generation_mode", intervention::regimeName(r.generationMode) },
            { "generation",
                { { "before", r.generationBefore }, { "after", r.generationAfter }, { "before_ids", r.generatedBefore },
                    { "after_ids", r.generatedAfter } } } };
        if (o.regime == intervention::Regime::Patch) {
            j["freeze_attention"] = o.freezeAttention;
            j["constrained_layers"]
                = o.constrainedLayers ? Json { o.constrainedLayers->first, o.constrainedLayers->end } : Json(nullptr);
        }
        std::cout << dump(j) << "\n";
        return 0;
    }

    std::string regime = intervention::regimeName(o.regime);
    if (o.regime == intervention::Regime::Patch) {
        regime += o.freezeAttention ? " (attention frozen" : " (attention live";
        if (o.constrainedLayers)
            regime += ", layers " + std::to_string(o.constrainedLayers->first) + ":"
                + std::to_string(o.constrainedLayers->end) + " constrained";
        regime += ")";
    }
    std::printf("%s intervention%s, %zu edit(s), %zu prompt tokens\n", regime.c_str(),
        r.directEffects ? " (direct effects, as the graph's edges)" : "", edits.size(), ids.size());
    std::printf("%-4s  %-20s %8s %7s   %-20s %8s %7s %9s %9s\n", "rank", "before", "logit", "prob", "after", "logit",
        "prob", "delta", "demeaned");
    for (size_t i = 0; i < std::max(r.before.size(), r.after.size()); ++i) {
        std::printf("%-4zu  ", i + 1);
        if (i < r.before.size())
            std::printf(
                "%-20s %8.3f %7.4f   ", visible(r.before[i].token).c_str(), r.before[i].logit, r.before[i].prob);
        else
            std::printf("%-20s %8s %7s   ", "", "", "");
        if (i < r.after.size())
            std::printf("%-20s %8.3f %7.4f %+9.3f %+9.3f\n", visible(r.after[i].token).c_str(), r.after[i].logit,
                r.after[i].prob, r.logitDelta.at(r.after[i].id), r.demeanedLogitDelta.at(r.after[i].id));
        else
            std::printf("\n");
    }
    if (!r.changed.empty()) {
        std::printf("\nchanged downstream features (largest first, %zu listed)\n", r.changed.size());
        std::printf("%6s %9s %8s %10s %10s\n", "layer", "position", "feature", "before", "after");
        for (size_t i = 0; i < std::min<size_t>(r.changed.size(), 20); ++i) {
            const auto& c = r.changed[i];
            std::printf("%6lld %9lld %8lld %10.4f %10.4f\n", static_cast<long long>(c.layer),
                static_cast<long long>(c.position), static_cast<long long>(c.feature), c.before, c.after);
        }
    }
    if (o.generate > 0)
        std::printf("\ngeneration before: %s\ngeneration after (%s): %s\n", visible(r.generationBefore).c_str(),
            intervention::regimeName(r.generationMode), visible(r.generationAfter).c_str());
    return 0;
}

int cmdValidate(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    const std::string folder = resolveModelFolder(pos.size() > 1 ? pos[1] : std::string(kDefaultModel));
    const auto text = args.value("text");
    if (!text)
        throw Error("validate needs the prompt: --text P");
    if (text->empty())
        throw Error("the prompt is empty: it has no tokens to run");
    const int64_t top = args.intOr("top", 30);
    if (top < 1)
        throw Error("--top must be at least 1");
    const std::string op = args.valueOr("op", "ablate");
    const double factor = validation::parseEditFactor(op);

    auto model = model::Model::load(folder, { device, true });
    auto set = transcoder::TranscoderSet::load(
        transcoder::resolveTranscoderFolder(folder, args.valueOr("transcoder", "clt")),
        { device, true, model->config().nLayers });
    const std::vector<int64_t> ids = model->tokenizer().encode(*text);
    at::NoGradGuard noGrad;
    const auto context = attribution::buildContext(model, set, at::tensor(ids, at::kLong));
    const auto t0 = std::chrono::steady_clock::now();
    const attribution::TraceResult traced = attribution::trace(context); // every active feature
    const double traceMs = msSince(t0);
    const auto t1 = std::chrono::steady_clock::now();
    const validation::Validation v = validation::validateGraph(context, traced.graph, top, factor);
    const double validateMs = msSince(t1);

    if (args.flag("json")) {
        Json j = validation::validationJson(traced.graph, v);
        j["op"] = op;
        j["prompt_ids"] = ids;
        j["trace_ms"] = traceMs;
        j["validate_ms"] = validateMs;
        std::cout << dump(j) << "\n";
        return 0;
    }
    const graph::Graph& g = traced.graph;
    const graph::Node& target = g.nodes[static_cast<size_t>(v.target)];
    std::printf("%s on the %zu feature nodes of most influence, one at a time; effect on the target logit %s "
                "(demeaned)\n",
        op.c_str(), v.points.size(), visible(target.token).c_str());
    std::printf(
        "%-14s %10s %11s %11s %11s %11s\n", "node", "influence", "predicted", "constrained", "path sum", "free");
    for (const auto& p : v.points)
        std::printf("%-14s %10.4f %+11.4f %+11.4f %+11.4f %+11.4f\n", graph::nodeId(g, p.node).c_str(), p.influence,
            p.predicted, p.actualConstrained, p.predictedFree, p.actualFree);
    std::printf("correlation of predicted and actual: constrained %.4f, free %.4f (path sums)\n",
        v.correlation.constrained, v.correlation.free);
    std::printf("downstream nodes (%zu pairs): constrained %.4f, free %.4f\n", v.downstream.size(),
        v.downstreamCorrelation.constrained, v.downstreamCorrelation.free);
    std::printf("traced in %.0f ms, validated in %.0f ms (%zu nodes x 2 runs)\n", traceMs, validateMs, v.points.size());
    return 0;
}

} // namespace cs::cli
