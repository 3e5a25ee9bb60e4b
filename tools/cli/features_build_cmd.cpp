// circuitscope-cli features build: a feature store from a text corpus (docs/ARCHITECTURE.md §9), on
// one process or as one rank of several (--distributed); features merge: the ranks' parts into one.
#include "commands.h"

#include "cs/engine.h"
#include "cs/error.h"
#include "cs/features.h"
#include "cs/files.h"
#include "cs/organism_build.h"
#include "cs/transcoder.h"

#include <algorithm>
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

// What the ranks of a build must share besides its options: the model's and the transcoder
// set's configurations and weights, and the corpus (fileFingerprint each).
std::string contentsFingerprint(
    const std::string& modelFolder, const transcoder::TranscoderSet* transcoders, const std::string& corpus)
{
    namespace fs = std::filesystem;
    std::string text;
    // Configurations and weights only: a store being built may sit in the same folder
    // (TRANSCODER/features.db, its parts), changing while the ranks look.
    const auto filesOf = [&](const std::string& folder, const std::string& name) {
        std::vector<fs::path> files;
        std::error_code ec;
        for (const auto& entry : fs::directory_iterator(folder, ec)) {
            const std::string ext = entry.path().extension().string();
            const bool wanted = ext == ".json" || ext == ".yaml" || ext == ".safetensors" || ext == ".npz";
            if (entry.is_regular_file(ec) && wanted)
                files.push_back(entry.path());
        }
        std::sort(files.begin(), files.end());
        for (const auto& file : files)
            text += name + " " + file.filename().string() + " " + fileFingerprint(file.string()) + "\n";
    };
    filesOf(modelFolder, "model");
    if (transcoders)
        filesOf(transcoders->folder(), "transcoders");
    text += "corpus " + fileFingerprint(corpus) + "\n";
    return text;
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
    const Job job = joinJob(args, device); // --distributed: this process is one rank of the build
    const int64_t rank = job.group ? job.group->rank() : 0;
    const std::string folder = resolveModelFolder(pos[2]);
    auto model = model::Model::load(folder, { job.device, true });
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
    o.group = job.group;
    o.mergeParts = !args.flag("parts-only");
    if (!job.group && !o.mergeParts)
        throw Error("--parts-only belongs to a distributed build: add --distributed");
    if (job.group) // every rank must read the same model, transcoders and corpus (the engine checks the options)
        job.group->checkSame("model, transcoders or corpus", contentsFingerprint(folder, transcoders.get(), *corpus));

    const bool tty = isatty(fileno(stderr));
    auto last = std::chrono::steady_clock::now() - std::chrono::seconds(60);
    auto progress = [&](const features::BuildProgress& p) {
        const auto now = std::chrono::steady_clock::now();
        if (rank == 0 && (tty || now - last >= std::chrono::seconds(10))) { // rank 0 speaks for the job
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
        std::fprintf(stderr, "\nstopped; the state is saved in %s: run the same command again to resume\n",
            job.group ? features::partPath(*out, rank, job.group->size()).c_str() : out->c_str());
        return 130;
    }
    if (tty && rank == 0)
        std::fprintf(stderr, "\n");
    if (rank != 0) // rank 0 speaks for the job
        return 0;
    const nlohmann::json j = { { "out", *out }, { "tokens", r.tokens }, { "contexts", r.contexts },
        { "seconds", r.seconds }, { "tokens_per_second", r.tokensPerSecond },
        { "resumed_from_tokens", r.resumedFromTokens }, { "bytes", r.bytes },
        { "coactivation_pairs", r.coactivationPairs }, { "ranks", r.ranks },
        { "mb_per_million_tokens", r.tokens > 0 ? double(r.bytes) / 1048576.0 / (double(r.tokens) / 1e6) : 0.0 } };
    if (!o.mergeParts) {
        nlohmann::json parts = nlohmann::json::array();
        for (int64_t i = 0; i < r.ranks; ++i)
            parts.push_back(features::partPath(*out, i, r.ranks));
        const nlohmann::json k = { { "out", *out }, { "parts", parts }, { "tokens", r.tokens },
            { "contexts", r.contexts }, { "seconds", r.seconds }, { "tokens_per_second", r.tokensPerSecond },
            { "resumed_from_tokens", r.resumedFromTokens }, { "ranks", r.ranks } };
        if (args.flag("json"))
            std::cout << k.dump() << "\n";
        else
            std::cout << "the " << r.ranks << " parts of " << *out << " are written (" << r.tokens << " tokens, "
                      << r.tokensPerSecond << " tokens/s): merge them with `features merge " << *out << ".part-*-of-"
                      << r.ranks << " --out " << *out << "`\n";
        return 0;
    }
    if (args.flag("json")) {
        std::cout << j.dump() << "\n";
    } else {
        std::cout << "feature store " << *out << ": " << r.tokens << " tokens in " << r.contexts << " contexts, "
                  << r.seconds << " s (" << r.tokensPerSecond << " tokens/s)"
                  << (r.ranks > 1 ? ", " + std::to_string(r.ranks) + " ranks" : "")
                  << (r.resumedFromTokens > 0 ? ", resumed at " + std::to_string(r.resumedFromTokens) + " tokens" : "")
                  << ", " << double(r.bytes) / 1048576.0 << " MB"
                  << (o.coactivations ? ", " + std::to_string(r.coactivationPairs) + " co-activating pairs" : "")
                  << "\n";
    }
    return 0;
}

int cmdFeaturesMerge(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    const auto out = args.value("out");
    if (pos.size() < 3 || !out)
        throw Error("features merge needs the parts (DB.part-R-of-W, one of each rank) and --out DB");
    const std::vector<std::string> parts(pos.begin() + 2, pos.end());
    // The model and set the parts were built with, from where the ranks loaded them unless given.
    const features::PartInfo first = features::readPart(parts.front());
    const std::string folder = args.has("model") ? resolveModelFolder(*args.value("model")) : first.modelFolder;
    model::initThreads();
    auto model = model::Model::load(folder, { device, true });
    std::shared_ptr<const transcoder::TranscoderSet> transcoders;
    if (first.store.buildOptions.value("basis", std::string()) != "neurons") {
        transcoder::TranscoderSet::LoadOptions lo;
        lo.device = model->device().str();
        lo.modelLayers = model->config().nLayers;
        transcoders = transcoder::TranscoderSet::load(args.has("transcoder")
                ? transcoder::resolveTranscoderFolder(folder, *args.value("transcoder"))
                : first.transcoderFolder,
            lo);
    } else if (args.has("transcoder")) {
        throw Error("the parts are of a store of the model's own neurons: it takes no --transcoder");
    }
    const auto r = features::merge(model, transcoders, parts, *out);
    const nlohmann::json j
        = { { "out", *out }, { "parts", r.ranks }, { "tokens", r.tokens }, { "contexts", r.contexts },
              { "seconds", r.seconds }, { "bytes", r.bytes }, { "coactivation_pairs", r.coactivationPairs } };
    if (args.flag("json"))
        std::cout << j.dump() << "\n";
    else
        std::cout << "feature store " << *out << ": " << r.ranks << " parts merged, " << r.tokens << " tokens in "
                  << r.contexts << " contexts, " << r.seconds << " s, " << double(r.bytes) / 1048576.0 << " MB\n";
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
