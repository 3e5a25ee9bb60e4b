// circuitscope-cli weights: a feature's global partners by virtual weight, and its weight plots
// against chosen tokens; circuitscope-cli sweep: operand plots over a template's grid and the
// features ranked by their structure (docs/ARCHITECTURE.md §7.5; cs/weights.h, cs/sweep.h).
#include "commands.h"
#include "heatmap.h"

#include "cs/engine.h"
#include "cs/error.h"
#include "cs/features.h"
#include "cs/files.h"
#include "cs/sweep.h"
#include "cs/transcoder.h"
#include "cs/weights.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
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

} // namespace

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

int cmdWeights(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    const std::string folder = resolveModelFolder(pos.size() > 1 ? pos[1] : std::string(kDefaultModel));
    const auto spec = args.value("feature");
    if (!spec)
        throw Error("weights needs the feature: --feature LAYER:FEATURE");
    const auto [layer, feature] = parseFeature(*spec);
    const weights::Kind kind = weights::kindFromName(args.valueOr("kind", "virtual"));
    const weights::Direction direction = weights::directionFromName(args.valueOr("direction", "down"));
    const int64_t top = args.intOr("top", 20);

    auto model = model::Model::load(folder, { device, true });
    const std::string setFolder = transcoder::resolveTranscoderFolder(folder, args.valueOr("transcoder", "clt"));
    auto set = transcoder::TranscoderSet::load(setFolder, { device, true });
    set->checkFits(model->config());
    // The co-activation statistics for ERA and TWERA: --store, else the store shipped with the set.
    const std::string storePath = args.valueOr("store", features::findStore(folder, setFolder));
    std::unique_ptr<features::FeatureStore> store;
    if (!storePath.empty())
        store = features::FeatureStore::open(storePath);
    const auto t0 = std::chrono::steady_clock::now();
    const weights::Partners found = weights::partners(*model, *set, store.get(), layer, feature, direction, kind, top);
    const double queryMs = msSince(t0);
    const auto& partners = found.partners;

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
        for (const auto& p : partners) {
            // Without the store's numbers for a pair, era, twera and coactivations are null.
            const auto known = [&](double v) { return p.statistics ? Json(v) : Json(nullptr); };
            list.push_back({ { "layer", p.layer }, { "feature", p.feature }, { "weight", p.weight(kind) },
                { "virtual", p.virtualWeight }, { "era", known(p.era) }, { "twera", known(p.twera) },
                { "coactivations", p.statistics ? Json(p.coactivations) : Json(nullptr) } });
        }
        Json j = { { "feature", *spec }, { "kind", weights::kindName(kind) },
            { "direction", direction == weights::Direction::Up ? "up" : "down" }, { "partners", list },
            { "query_ms", queryMs }, { "store", store ? Json(storePath) : Json(nullptr) } };
        if (found.coactivating >= 0) {
            j["coactivating"] = found.coactivating;
            j["kept"] = found.kept;
        }
        if (!tokens.empty())
            j["tokens"] = tokens;
        std::cout << dump(j) << "\n";
        return 0;
    }
    const char* kindText = kind == weights::Kind::Era ? "ERA"
        : kind == weights::Kind::Twera                ? "TWERA"
                                                      : "virtual weight";
    std::printf("L%lld #%lld: %zu %s partners by %s (%.2f ms)", static_cast<long long>(layer),
        static_cast<long long>(feature), partners.size(),
        direction == weights::Direction::Up ? "upstream" : "downstream", kindText, queryMs);
    if (found.coactivating >= 0)
        std::printf("; it fired with %lld features on this side, the store keeps %lld",
            static_cast<long long>(found.coactivating), static_cast<long long>(found.kept));
    std::printf("\n  %-11s %10s %10s %10s %8s\n", "partner", "virtual", "ERA", "TWERA", "together");
    for (const auto& p : partners) {
        std::printf("  L%-2lld #%-6lld %+10.4f", static_cast<long long>(p.layer), static_cast<long long>(p.feature),
            p.virtualWeight);
        if (p.statistics)
            std::printf(" %+10.5f %+10.4f %8lld\n", p.era, p.twera, static_cast<long long>(p.coactivations));
        else
            std::printf(" %10s %10s %8s\n", "-", "-", "-");
    }
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
    // The grids written: every --feature's, and with --out every ranked feature's too.
    const auto out = args.value("out");
    std::vector<std::pair<int64_t, int64_t>> gridFeatures = features;
    if (out)
        for (const auto& f : ranked)
            if (std::find(gridFeatures.begin(), gridFeatures.end(), std::make_pair(f.layer, f.feature))
                == gridFeatures.end())
                gridFeatures.emplace_back(f.layer, f.feature);
    const auto result = [&] {
        Json grids = Json::array();
        for (const auto& [layer, feature] : gridFeatures) {
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
            if (out)
                entry["image"] = "L" + std::to_string(layer) + "_F" + std::to_string(feature) + ".png";
            grids.push_back(entry);
        }
        Json list = Json::array();
        for (const auto& f : ranked)
            list.push_back(findingJson(f));
        return Json { { "template", o.templateText }, { "a", r.a }, { "b", r.b }, { "position", o.position },
            { "prompts", r.prompts }, { "seconds", r.seconds }, { "features", grids }, { "ranked", list } };
    }();
    if (out) {
        // DIR/sweep.json (what --json prints) and a heat map per grid, DIR/L{layer}_F{feature}.png.
        std::error_code ec;
        std::filesystem::create_directories(*out, ec);
        if (ec || !std::filesystem::is_directory(*out))
            throw Error("cannot make the folder " + *out + (ec ? ": " + ec.message() : ""));
        for (const auto& [layer, feature] : gridFeatures)
            writeFileAtomically(
                (std::filesystem::path(*out) / ("L" + std::to_string(layer) + "_F" + std::to_string(feature) + ".png"))
                    .string(),
                heatmapPng(r.activations[size_t(layer)].select(2, feature)));
        writeFileAtomically((std::filesystem::path(*out) / "sweep.json").string(), dump(result) + "\n");
    }
    if (json) {
        std::cout << dump(result) << "\n";
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
    if (out)
        std::printf("wrote %s/sweep.json and %zu heat maps\n", out->c_str(), gridFeatures.size());
    return 0;
}

} // namespace cs::cli
