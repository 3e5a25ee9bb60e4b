// circuitscope-cli trace: an attribution graph of one prompt (docs/ARCHITECTURE.md §6, §11.3),
// and what `bench` measures of tracing and pruning.
#include "commands.h"

#include "cs/attribution.h"
#include "cs/engine.h"
#include "cs/error.h"
#include "cs/intervention.h"
#include "cs/organism_build.h"
#include "cs/transcoder.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

namespace cs::cli {

namespace {

using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

// The one token a text encodes to; throws cs::Error when it is not exactly one.
int64_t singleToken(const model::Model& model, const std::string& text)
{
    const auto ids = model.tokenizer().encode(text, false);
    if (ids.size() != 1)
        throw Error("\"" + text + "\" is " + std::to_string(ids.size())
            + " tokens, not one: name a single token (with its leading space, e.g. \" Austin\") or use --logit-ids");
    return ids[0];
}

// The Neuronpedia slug: the prompt's letters and digits, lower case, joined by dashes.
std::string slugOf(const std::string& prompt)
{
    std::string slug;
    for (char c : prompt) {
        if (std::isalnum(static_cast<unsigned char>(c)))
            slug += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        else if (!slug.empty() && slug.back() != '-')
            slug += '-';
        if (slug.size() >= 48)
            break;
    }
    while (!slug.empty() && slug.back() == '-')
        slug.pop_back();
    return slug.empty() ? "graph" : slug;
}

int64_t countEdges(const graph::PruneResult& pruned)
{
    return pruned.edgeCount();
}

int64_t countNodes(const graph::PruneResult& pruned)
{
    return static_cast<int64_t>(std::count(pruned.nodeMask.begin(), pruned.nodeMask.end(), true));
}

// The process's peak resident memory since the last reset, in MiB (Linux: VmHWM).
double peakRssMb()
{
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("VmHWM:", 0) == 0)
            return std::stod(line.substr(6)) / 1024.0;
    return 0;
}

void resetPeakRss()
{
    std::ofstream("/proc/self/clear_refs") << "5";
}

} // namespace

GraphOutputs writeGraphOutputs(const Args& args, graph::Graph& g)
{
    GraphOutputs w;
    const auto pruneStart = Clock::now();
    const graph::Pruner pruner(g);
    const graph::PruneResult pruned = pruner.prune(g.metadata.nodeThreshold, g.metadata.edgeThreshold);
    w.pruneMs = msSince(pruneStart);
    w.scores = pruner.scores();
    w.prunedScores = pruner.scoresOf(pruned);
    w.nodes = countNodes(pruned);
    w.edges = countEdges(pruned);
    g.metadata.extra["scores"] = graph::scoresMetadata(pruner, pruned);
    graph::writeJsonFile(args.valueOr("out", ""), g, pruned);
    // The whole graph, for re-pruning at other thresholds (graph export / prune, the explorer).
    if (auto full = args.value("full"))
        graph::writeGraphFile(*full, g);
    return w;
}

std::string scoresText(const GraphOutputs& w)
{
    std::ostringstream out;
    out << "scores of the graph: replacement " << w.scores.replacement << ", completeness " << w.scores.completeness
        << " (corrected " << w.scores.correctedCompleteness << ")\n"
        << "scores of the pruned graph: replacement " << w.prunedScores.replacement << ", completeness "
        << w.prunedScores.completeness << " (corrected " << w.prunedScores.correctedCompleteness << ")\n";
    return out.str();
}

int cmdTrace(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    if (pos.size() < 2)
        throw Error("trace needs MODEL (try --help)");
    const auto text = args.value("text");
    const auto idList = args.value("ids"); // the prompt as token ids, "1,2,3" (bench's prompts)
    const auto out = args.value("out");
    if ((!text && !idList) || !out)
        throw Error("trace needs --text PROMPT (or --ids ID,ID,...) and --out G.json");
    const double nodeThreshold = args.doubleOr("node-threshold", 0.8);
    const double edgeThreshold = args.doubleOr("edge-threshold", 0.98);
    if (!(nodeThreshold >= 0 && nodeThreshold <= 1) || !(edgeThreshold >= 0 && edgeThreshold <= 1))
        throw Error("--node-threshold and --edge-threshold must be in [0, 1]");

    model::initThreads();
    const std::string folder = resolveModelFolder(pos[1]);
    auto model = model::Model::load(folder, { device, true });
    transcoder::TranscoderSet::LoadOptions lo;
    lo.device = model->device().str();
    lo.modelLayers = model->config().nLayers;
    auto transcoders = transcoder::TranscoderSet::load(
        transcoder::resolveTranscoderFolder(folder, args.valueOr("transcoder", "clt")), lo);

    attribution::TraceOptions o;
    o.logits.maxNLogits = args.intOr("max-n-logits", o.logits.maxNLogits);
    o.logits.desiredLogitProb = args.doubleOr("desired-logit-prob", o.logits.desiredLogitProb);
    if (auto ids = args.value("logit-ids"))
        o.logits.tokens = parseIdList(*ids);
    if (auto toks = args.value("logit-tokens"))
        for (const auto& t : splitBars(*toks))
            o.logits.tokens.push_back(singleToken(*model, t));
    if (auto weights = args.value("logit-weights")) {
        if (o.logits.tokens.empty())
            throw Error("--logit-weights needs --logit-ids or --logit-tokens: one weight per named token");
        o.logits.weights = parseNumberList(*weights, "--logit-weights");
    }
    if (auto diff = args.value("logit-diff")) {
        const auto parts = splitBars(*diff);
        if (parts.size() != 2)
            throw Error("--logit-diff takes \"A|B\": two single tokens separated by '|'");
        o.logits.difference = std::make_pair(singleToken(*model, parts[0]), singleToken(*model, parts[1]));
    }
    o.maxFeatureNodes = args.intOr("max-feature-nodes", o.maxFeatureNodes);
    o.batchSize = args.intOr("batch-size", o.batchSize);
    o.memoryLimitBytes = args.bytesOr("memory-limit", o.memoryLimitBytes);
    attribution::ContextOptions contextOptions;
    contextOptions.memoryLimitBytes = o.memoryLimitBytes;
    const std::string method = args.valueOr("method", "explicit");
    const auto m = attribution::methodFromName(method);
    if (!m)
        throw Error("--method must be explicit or autograd, not \"" + method + "\"");
    o.method = *m;
    const bool tty = !args.flag("json");
    if (tty)
        o.progress = [](double fraction) {
            std::cerr << "\rtracing: " << static_cast<int>(fraction * 100) << "%" << std::flush;
            return true;
        };

    const auto start = Clock::now();
    const auto ids = idList ? parseIdList(*idList) : model->tokenizer().encode(*text);
    const auto context = attribution::buildContext(model, transcoders, at::tensor(ids, at::kLong), contextOptions);
    attribution::TraceResult r = attribution::trace(context, o);
    if (tty)
        std::cerr << "\r              \r" << std::flush;
    graph::Graph& g = r.graph;
    if (text)
        g.metadata.prompt = *text; // else the decoded ids, as the tracer set it
    g.metadata.slug = args.valueOr("slug", slugOf(g.metadata.prompt));
    g.metadata.nodeThreshold = nodeThreshold;
    g.metadata.edgeThreshold = edgeThreshold;

    const GraphOutputs written = writeGraphOutputs(args, g);
    const double totalMs = msSince(start);

    const auto ranges = g.ranges();
    Json summary = { { "out", *out }, { "full", args.valueOr("full", "") }, { "n_tokens", context.nPos() },
        { "nodes", written.nodes }, { "edges", written.edges }, { "nodes_total", g.size() },
        { "edges_total", g.adjacency.nnz() }, { "features", ranges.features.size() },
        { "active_features", r.stats.activeFeatures }, { "logits", ranges.logits.size() },
        { "scores", graph::scoresJson(written.scores) }, { "pruned_scores", graph::scoresJson(written.prunedScores) },
        { "exactness", g.metadata.extra["exactness"] }, { "method", method }, { "trace_ms", r.stats.totalMs },
        { "memory_estimate_bytes", r.stats.memoryDeviceBytes + r.stats.memoryHostBytes },
        { "prune_ms", written.pruneMs }, { "total_ms", totalMs } };
    if (args.flag("json")) {
        std::cout << dump(summary) << "\n";
        return 0;
    }
    std::cout << "graph of \"" << (text ? *text : "(--ids)") << "\" (" << context.nPos() << " tokens) -> " << *out
              << "\n"
              << "nodes " << summary["nodes"] << " of " << g.size() << " (features " << ranges.features.size() << " of "
              << r.stats.activeFeatures << " active, errors " << ranges.errors.size() << ", embeddings "
              << ranges.embeddings.size() << ", logits " << ranges.logits.size() << "), edges " << summary["edges"]
              << " of " << summary["edges_total"] << "\n"
              << scoresText(written) << "exactness: max residual " << r.exactness.maxAbsResidual << " (relative "
              << r.exactness.maxRelResidual << ") over " << r.exactness.rows << " rows\n"
              << "traced in " << r.stats.totalMs << " ms (" << method << "), pruned in " << written.pruneMs << " ms\n";
    for (int64_t i = ranges.logits.begin; i < ranges.logits.end; ++i) {
        const auto& n = g.nodes[static_cast<size_t>(i)];
        if (n.contrastTokenId >= 0)
            std::cout << "  logit difference \"" << n.token << "\" - \"" << n.contrastToken << "\" (p=" << n.tokenProb
                      << " and " << n.contrastTokenProb << ")\n";
        else
            std::cout << "  logit \"" << n.token << "\" p=" << n.tokenProb << "\n";
    }
    return 0;
}

Json benchAttribution(const std::string& modelFolder, const std::string& device)
{
    auto model = model::Model::load(modelFolder, { device, true });
    transcoder::TranscoderSet::LoadOptions lo;
    lo.device = model->device().str();
    lo.modelLayers = model->config().nLayers;
    auto transcoders = transcoder::TranscoderSet::load(transcoder::resolveTranscoderFolder(modelFolder, "clt"), lo);
    // Prompts of real text when the model is an organism (held-out lines), else random tokens.
    std::vector<int64_t> ids;
    if (std::filesystem::exists(std::filesystem::path(modelFolder) / "organism.json")) {
        const organism::World world(organism::organismWorld(modelFolder));
        std::string text;
        for (const auto& line : world.heldoutLines(400))
            text += line + "\n";
        ids = model->tokenizer().encode(text);
    }
    const int64_t maxPos = model->config().maxPositions;
    Json rows = Json::array();
    Json prune, intervene;
    // 2,048 tokens trace the 8,192 features of most estimated influence (circuit-tracer's
    // max_feature_nodes): every feature there (about 64,000) would take over 10 minutes on two
    // cores and about 900M edges.
    const auto featureLimit = [](int64_t n) { return n >= 2048 ? int64_t(8192) : int64_t(-1); };
    for (int64_t n : { 8, 16, 32, 64, 512, 2048 }) {
        if (n > maxPos)
            continue;
        at::Tensor prompt = static_cast<int64_t>(ids.size()) >= n
            ? at::tensor(std::vector<int64_t>(ids.begin(), ids.begin() + n), at::kLong)
            : at::randint(model->config().vocabSize, { n }, at::kLong);
        for (auto method : { attribution::Method::Explicit, attribution::Method::Autograd }) {
            attribution::TraceOptions o;
            o.method = method;
            o.maxFeatureNodes = featureLimit(n);
            resetPeakRss();
            auto context = attribution::buildContext(model, transcoders, prompt);
            // A first, untimed trace at the short lengths warms the allocator and thread pool;
            // the long ones are timed cold, once.
            if (n <= 64)
                attribution::trace(context, o);
            const auto start = Clock::now();
            attribution::TraceResult r = attribution::trace(context, o);
            const double ms = msSince(start);
            const int64_t nodes = r.graph.size();
            const int64_t edges = r.graph.adjacency.nnz();
            Json row
                = { { "n_tokens", n }, { "method", attribution::methodName(method) }, { "ms", ms }, { "nodes", nodes },
                      { "edges", edges }, { "features", r.stats.activeFeatures }, { "batches", r.stats.batches },
                      { "peak_rss_mb", peakRssMb() }, { "max_rel_residual", r.exactness.maxRelResidual },
                      { "max_feature_nodes", o.maxFeatureNodes < 0 ? Json() : Json(o.maxFeatureNodes) } };
            row["gflops"] = r.stats.flops > 0 ? Json(r.stats.flops / (r.stats.rowsMs * 1e6)) : Json();
            rows.push_back(row);
            if (n == 16 && method == attribution::Method::Explicit) {
                const auto buildStart = Clock::now();
                const graph::Pruner pruner(r.graph);
                const double buildMs = msSince(buildStart);
                pruner.prune(0.8, 0.98);
                const int repeats = 20;
                const auto pruneStart = Clock::now();
                for (int i = 0; i < repeats; ++i)
                    pruner.prune(0.5 + 0.02 * i, 0.98);
                prune = { { "prune_ms", msSince(pruneStart) / repeats }, { "pruner_build_ms", buildMs },
                    { "nodes", nodes } };
                // An intervention on the same prompt: ablate the most active feature at the last
                // position (what a slider in the explorer does), in each regime.
                const auto& active = context.active;
                at::Tensor atLast = (active.position == n - 1).nonzero().flatten();
                if (atLast.numel() > 0) {
                    const int64_t best = atLast[active.activation.index_select(0, atLast).argmax()].item<int64_t>();
                    const intervention::FeatureEdit ablate { active.layer[best].item<int64_t>(), n - 1,
                        active.feature[best].item<int64_t>(), intervention::Op::Scale, 0.0 };
                    for (auto regime : { intervention::Regime::Constrained, intervention::Regime::Free }) {
                        intervention::InterventionOptions io;
                        io.regime = regime;
                        intervention::intervene(context, { ablate }, io); // warm-up
                        const int runs = 20;
                        const auto t0 = Clock::now();
                        for (int i = 0; i < runs; ++i)
                            intervention::intervene(context, { ablate }, io);
                        intervene[intervention::regimeName(regime)] = msSince(t0) / runs;
                    }
                }
            }
            // The autograd reference is slow and its memory grows with batch x prompt: at 512
            // tokens only the explicit pass runs.
            if (n > 64)
                break;
        }
    }
    return { { "trace", rows }, { "prune", prune }, { "intervene", intervene } };
}

} // namespace cs::cli
