// circuitscope-cli weights: a feature's global partners by virtual weight, and its weight plots
// against chosen tokens (docs/ARCHITECTURE.md §7.5; cs/weights.h).
#include "commands.h"

#include "cs/engine.h"
#include "cs/error.h"
#include "cs/transcoder.h"
#include "cs/weights.h"

#include <ATen/ATen.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <iostream>

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
        const at::Tensor in = weights::embeddingToFeatures(*model, *set, layer).select(0, feature);
        const at::Tensor out = weights::featureToLogits(*model, *set, layer).select(0, feature);
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

} // namespace cs::cli
