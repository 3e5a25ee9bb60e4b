// circuitscope-cli weights: a feature's global partners by virtual weight, and its weight plots
// against chosen tokens; circuitscope-cli sweep: operand plots over a template's grid and the
// features ranked by their structure (docs/ARCHITECTURE.md §7.5; cs/weights.h, cs/sweep.h).
#include "commands.h"

#include "cs/engine.h"
#include "cs/error.h"
#include "cs/sweep.h"
#include "cs/transcoder.h"
#include "cs/weights.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <sstream>

namespace cs::cli {

namespace {

using Json = nlohmann::json;

// "L:F" -> (layer, feature).
std::pair<int64_t, int64_t> parseFeature(const std::string& spec)
{
    const size_t colon = spec.find(':');
    const auto number = [&](const std::string& text) {
        char* end = nullptr;
        errno = 0;
        const long long n = std::strtoll(text.c_str(), &end, 10);
        if (text.empty() || *end != '\0' || errno == ERANGE || n < 0)
            throw Error("--feature \"" + spec + "\" is not of the form LAYER:FEATURE (two non-negative integers)");
        return static_cast<int64_t>(n);
    };
    if (colon == std::string::npos)
        throw Error("--feature \"" + spec + "\" is not of the form LAYER:FEATURE (two non-negative integers)");
    return { number(spec.substr(0, colon)), number(spec.substr(colon + 1)) };
}

// "0..99" (inclusive) or "1,5,9" -> the values.
std::vector<int64_t> parseValues(const std::string& text, const char* option)
{
    const auto number = [&](const std::string& part) {
        char* end = nullptr;
        errno = 0;
        const long long n = std::strtoll(part.c_str(), &end, 10);
        if (part.empty() || *end != '\0' || errno == ERANGE || n < 0)
            throw Error(std::string("--") + option + " \"" + text
                + "\" is not a range FIRST..LAST or a list of non-negative integers separated by commas");
        return static_cast<int64_t>(n);
    };
    std::vector<int64_t> out;
    const size_t dots = text.find("..");
    if (dots != std::string::npos) {
        const int64_t first = number(text.substr(0, dots)), last = number(text.substr(dots + 2));
        if (last < first || last - first >= 100000)
            throw Error(
                std::string("--") + option + " " + text + ": the range must run upwards, at most 100,000 values");
        for (int64_t v = first; v <= last; ++v)
            out.push_back(v);
        return out;
    }
    std::string part;
    std::istringstream in(text);
    while (std::getline(in, part, ','))
        out.push_back(number(part));
    if (out.empty())
        throw Error(std::string("--") + option + " needs at least one value");
    return out;
}

} // namespace

int cmdWeights(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    const std::string folder = resolveModelFolder(pos.size() > 1 ? pos[1] : std::string(kDefaultModel));
    const auto spec = args.value("feature");
    if (!spec)
        throw Error("weights needs the feature: --feature LAYER:FEATURE");
    const auto [layer, feature] = parseFeature(*spec);
    const std::string kind = args.valueOr("kind", "virtual");
    if (kind == "era" || kind == "twera")
        throw Error("--kind " + kind
            + " needs co-activation statistics from the feature store, which Circuitscope does not gather yet; "
              "--kind virtual is the weights alone");
    if (kind != "virtual")
        throw Error("--kind must be virtual, era or twera, not \"" + kind + "\"");
    const weights::Direction direction = weights::directionFromName(args.valueOr("direction", "down"));
    const int64_t top = args.intOr("top", 20);

    auto model = model::Model::load(folder, { device, true });
    auto set = transcoder::TranscoderSet::load(
        transcoder::resolveTranscoderFolder(folder, args.valueOr("transcoder", "clt")), { device, true });
    set->checkFits(model->config());
    const auto t0 = std::chrono::steady_clock::now();
    const std::vector<weights::Partner> partners
        = weights::virtualPartners(*model, *set, layer, feature, direction, top);
    const double queryMs = msSince(t0);

    // Weight plots against chosen tokens: how much each token's embedding alone excites the
    // feature, and how much the feature's decoders promote each token.
    Json tokens = Json::array();
    if (const auto list = args.value("tokens")) {
        const at::Tensor id = at::tensor(std::vector<int64_t> { feature }, at::kLong);
        const at::Tensor in = weights::embeddingToFeatures(*model, *set, layer, id).select(0, 0);
        const at::Tensor out = weights::featureToLogits(*model, *set, layer, id).select(0, 0);
        for (const std::string& text : splitBars(*list)) {
            const auto ids = model->tokenizer().encode(text, false);
            if (ids.size() != 1)
                throw Error("\"" + text + "\" is " + std::to_string(ids.size())
                    + " tokens, not one: name single tokens, separated by | (with their leading space, e.g. \" "
                      "Austin\")");
            tokens.push_back({ { "token", text }, { "id", ids[0] }, { "input", in[ids[0]].item<double>() },
                { "output", out[ids[0]].item<double>() } });
        }
    }

    if (args.flag("json")) {
        Json list = Json::array();
        for (const auto& p : partners)
            list.push_back({ { "layer", p.layer }, { "feature", p.feature }, { "weight", p.virtualWeight },
                { "virtual", p.virtualWeight } });
        Json j = { { "feature", *spec }, { "kind", kind },
            { "direction", direction == weights::Direction::Up ? "up" : "down" }, { "partners", list },
            { "query_ms", queryMs } };
        if (!tokens.empty())
            j["tokens"] = tokens;
        std::cout << dump(j) << "\n";
        return 0;
    }
    std::printf("L%lld #%lld: %zu %s partners by virtual weight (%.2f ms)\n", static_cast<long long>(layer),
        static_cast<long long>(feature), partners.size(),
        direction == weights::Direction::Up ? "upstream" : "downstream", queryMs);
    for (const auto& p : partners)
        std::printf("  L%-2lld #%-6lld %+10.4f\n", static_cast<long long>(p.layer), static_cast<long long>(p.feature),
            p.virtualWeight);
    for (const auto& t : tokens)
        std::printf("  token %-14s input %+9.4f  output %+9.4f\n", dump(t["token"]).c_str(), t["input"].get<double>(),
            t["output"].get<double>());
    return 0;
}

int cmdSweep(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    const std::string folder = resolveModelFolder(pos.size() > 1 ? pos[1] : std::string(kDefaultModel));
    sweep::SweepOptions o;
    o.templateText = args.valueOr("template", "");
    if (o.templateText.empty())
        throw Error("sweep needs the template: --template \"calc: {a}+{b}=\"");
    o.a = parseValues(args.valueOr("a", "0..99"), "a");
    o.b = parseValues(args.valueOr("b", "0..99"), "b");
    o.position = args.intOr("position", -1);
    o.batchSize = args.intOr("batch-size", 256);
    std::vector<std::pair<int64_t, int64_t>> features;
    for (const std::string& spec : args.values("feature"))
        features.push_back(parseFeature(spec));
    const int64_t top = args.intOr("top", 20);

    auto model = model::Model::load(folder, { device, true });
    auto set = transcoder::TranscoderSet::load(
        transcoder::resolveTranscoderFolder(folder, args.valueOr("transcoder", "clt")), { device, true });
    for (const auto& [layer, feature] : features)
        if (layer >= set->nLayers() || feature >= set->nFeatures())
            throw Error("--feature " + std::to_string(layer) + ":" + std::to_string(feature)
                + " is outside the transcoder set (" + std::to_string(set->nLayers()) + " layers, "
                + std::to_string(set->nFeatures()) + " features per layer)");
    const bool json = args.flag("json");
    if (!json)
        o.progress = [](double f) {
            std::fprintf(stderr, "\rsweep %3.0f%%", 100 * f);
            return true;
        };
    const sweep::SweepResult r = sweep::sweep(*model, *set, o);
    if (!json)
        std::fprintf(stderr, "\n");
    const std::vector<sweep::Finding> ranked = args.flag("rank") ? sweep::rank(r, top) : std::vector<sweep::Finding> {};

    const auto findingJson = [](const sweep::Finding& f) {
        return Json { { "layer", f.layer }, { "feature", f.feature },
            { "structure", sweep::structureName(f.structure) }, { "group", f.group }, { "group_mean", f.groupMean },
            { "explained", f.explained }, { "active_share", f.activeShare }, { "mean", f.meanActivation } };
    };
    if (json) {
        Json grids = Json::array();
        for (const auto& [layer, feature] : features) {
            const at::Tensor g = r.activations[size_t(layer)].select(2, feature).contiguous();
            Json rows = Json::array();
            for (int64_t i = 0; i < g.size(0); ++i) {
                Json row = Json::array();
                for (int64_t j = 0; j < g.size(1); ++j)
                    row.push_back(g[i][j].item<double>());
                rows.push_back(row);
            }
            Json entry = findingJson(sweep::explain(g, r.a, r.b));
            entry["layer"] = layer;
            entry["feature"] = feature;
            entry["grid"] = rows;
            grids.push_back(entry);
        }
        Json list = Json::array();
        for (const auto& f : ranked)
            list.push_back(findingJson(f));
        std::cout << dump({ { "template", o.templateText }, { "a", r.a }, { "b", r.b }, { "position", o.position },
            { "prompts", r.prompts }, { "seconds", r.seconds }, { "features", grids }, { "ranked", list } })
                  << "\n";
        return 0;
    }
    std::printf("%lld prompts of \"%s\" in %.2f s (%.0f prompts/s)\n", static_cast<long long>(r.prompts),
        o.templateText.c_str(), r.seconds, double(r.prompts) / std::max(r.seconds, 1e-9));
    for (const auto& [layer, feature] : features) {
        const auto f = sweep::explain(r.activations[size_t(layer)].select(2, feature), r.a, r.b);
        std::printf("L%lld #%lld: %s explains %.1f%% (highest group %lld, mean %.3f), fires on %.1f%% of the grid\n",
            static_cast<long long>(layer), static_cast<long long>(feature), sweep::structureName(f.structure),
            100 * f.explained, static_cast<long long>(f.group), f.groupMean, 100 * f.activeShare);
    }
    for (const auto& f : ranked)
        std::printf("  L%-2lld #%-6lld %-9s group %-3lld explains %5.1f%%  fires on %5.1f%%  group mean %.3f\n",
            static_cast<long long>(f.layer), static_cast<long long>(f.feature), sweep::structureName(f.structure),
            static_cast<long long>(f.group), 100 * f.explained, 100 * f.activeShare, f.groupMean);
    return 0;
}

} // namespace cs::cli
