// circuitscope-cli features build: a feature store from a text corpus (docs/ARCHITECTURE.md §9).
#include "commands.h"

#include "cs/engine.h"
#include "cs/error.h"
#include "cs/features.h"
#include "cs/files.h"
#include "cs/organism_build.h"
#include "cs/transcoder.h"

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <unistd.h>

namespace cs::cli {

namespace {

// Ctrl-C stops a build cleanly: the state is saved and the next run resumes from it.
std::atomic<bool> g_stop { false };

void onInterrupt(int)
{
    g_stop = true;
}

} // namespace

int cmdFeaturesBuild(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    if (pos.size() < 3)
        throw Error("features build needs MODEL (try --help)");
    const auto corpus = args.value("corpus");
    const auto out = args.value("out");
    if (!corpus || !out)
        throw Error("features build needs --corpus FILE and --out DB");
    model::initThreads();
    const std::string folder = resolveModelFolder(pos[2]);
    auto model = model::Model::load(folder, { device, true });
    features::BuildOptions o;
    o.basis = args.valueOr("basis", "features");
    if (o.basis != "features" && o.basis != "neurons")
        throw Error("--basis must be features (the transcoder's) or neurons (the model's MLP neurons), not \"" + o.basis
            + "\"");
    if (o.basis == "features")
        o.basis.clear();
    std::shared_ptr<const transcoder::TranscoderSet> transcoders;
    if (o.basis.empty()) {
        transcoder::TranscoderSet::LoadOptions lo;
        lo.device = model->device().str();
        lo.modelLayers = model->config().nLayers;
        transcoders = transcoder::TranscoderSet::load(
            transcoder::resolveTranscoderFolder(folder, args.valueOr("transcoder", "clt")), lo);
    } else if (args.has("transcoder")) {
        throw Error("--basis neurons builds the store of the model's own neurons: it takes no --transcoder");
    }

    o.maxTokens = args.intOr("tokens", o.maxTokens);
    o.contextLength = args.intOr("context", o.contextLength);
    o.batchContexts = args.intOr("batch-size", o.batchContexts);
    o.topK = args.intOr("top-k", o.topK);
    o.window = args.intOr("window", o.window);
    o.checkpointEvery = args.intOr("checkpoint-every", o.checkpointEvery);
    o.coactivations = !args.flag("no-coactivations") && o.basis.empty(); // pairs of transcoder features only
    o.coactivationPartners = args.intOr("coactivation-partners", o.coactivationPartners);

    const bool tty = isatty(fileno(stderr));
    auto last = std::chrono::steady_clock::now() - std::chrono::seconds(60);
    auto progress = [&](const features::BuildProgress& p) {
        const auto now = std::chrono::steady_clock::now();
        if (tty || now - last >= std::chrono::seconds(10)) {
            last = now;
            const double fraction = p.totalTokens > 0 ? double(p.tokens) / double(p.totalTokens) : 0;
            const int width = 30, filled = static_cast<int>(fraction * width);
            std::fprintf(stderr, "%s[%s%s] %3d%%  %lld tokens  %.0f tok/s  %.0f s left%s", tty ? "\r" : "",
                std::string(static_cast<size_t>(filled), '#').c_str(),
                std::string(static_cast<size_t>(width - filled), '.').c_str(), static_cast<int>(fraction * 100),
                static_cast<long long>(p.tokens), p.tokensPerSecond, p.secondsLeft, tty ? "" : "\n");
        }
        return !g_stop.load();
    };
    std::signal(SIGINT, onInterrupt);
    features::BuildResult r;
    try {
        r = features::build(model, transcoders, *corpus, *out, o, progress);
    } catch (const Cancelled&) {
        std::fprintf(
            stderr, "\nstopped; the state is saved in %s: run the same command again to resume\n", out->c_str());
        return 130;
    }
    if (tty)
        std::fprintf(stderr, "\n");
    const nlohmann::json j = { { "out", *out }, { "tokens", r.tokens }, { "contexts", r.contexts },
        { "seconds", r.seconds }, { "tokens_per_second", r.tokensPerSecond },
        { "resumed_from_tokens", r.resumedFromTokens }, { "bytes", r.bytes },
        { "coactivation_pairs", r.coactivationPairs },
        { "mb_per_million_tokens", r.tokens > 0 ? double(r.bytes) / 1048576.0 / (double(r.tokens) / 1e6) : 0.0 } };
    if (args.flag("json")) {
        std::cout << j.dump() << "\n";
    } else {
        std::cout << "feature store " << *out << ": " << r.tokens << " tokens in " << r.contexts << " contexts, "
                  << r.seconds << " s (" << r.tokensPerSecond << " tokens/s)"
                  << (r.resumedFromTokens > 0 ? ", resumed at " + std::to_string(r.resumedFromTokens) + " tokens" : "")
                  << ", " << double(r.bytes) / 1048576.0 << " MB"
                  << (o.coactivations ? ", " + std::to_string(r.coactivationPairs) + " co-activating pairs" : "")
                  << "\n";
    }
    return 0;
}

nlohmann::json benchFeatureBuild(const std::string& modelFolder, const std::string& device)
{
    namespace fs = std::filesystem;
    if (!fs::exists(fs::path(modelFolder) / "organism.json"))
        return nullptr; // a held-out corpus is written only for organisms
    auto model = model::Model::load(modelFolder, { device, true });
    transcoder::TranscoderSet::LoadOptions lo;
    lo.device = model->device().str();
    lo.modelLayers = model->config().nLayers;
    auto transcoders = transcoder::TranscoderSet::load(transcoder::resolveTranscoderFolder(modelFolder, "clt"), lo);
    const fs::path dir = fs::temp_directory_path() / ("circuitscope-bench-" + std::to_string(::getpid()));
    fs::create_directories(dir);
    const organism::World world(organism::organismWorld(modelFolder));
    {
        std::ofstream corpus(dir / "heldout.txt");
        for (const auto& line : world.heldoutLines(20000))
            corpus << line << "\n";
    }
    features::BuildOptions o;
    o.maxTokens = 131072;
    o.window = 24;
    const auto r = features::build(model, transcoders, (dir / "heldout.txt").string(), (dir / "bench.db").string(), o);
    std::error_code ec;
    cs::removeTree(fs::path(dir).string());
    return { { "tokens", r.tokens }, { "tokens_per_second", r.tokensPerSecond },
        { "mb", double(r.bytes) / 1048576.0 } };
}

} // namespace cs::cli
