// circuitscope-cli graph import | export | prune | info: attribution graphs on disk, either the
// saved full graph (.csgraph, every edge the trace computed) or a graph JSON (circuit-tracer /
// Neuronpedia, holding only the links it was pruned to).
#include "commands.h"

#include "cs/error.h"
#include "cs/graph.h"
#include "cs/graph_paths.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

namespace cs::cli {

namespace {

using graph::Graph;
using graph::NodeKind;
using graph::PruneResult;
using Json = nlohmann::json;

constexpr double kDefaultNodeThreshold = 0.8; // circuit-tracer's defaults
constexpr double kDefaultEdgeThreshold = 0.98;
constexpr NodeKind kKinds[] = { NodeKind::Feature, NodeKind::Error, NodeKind::Embedding, NodeKind::Logit };

std::string visible(const std::string& text)
{
    std::string out;
    for (char ch : text)
        out += ch == '\n' ? std::string("\\n") : ch == '\t' ? std::string("\\t") : std::string(1, ch);
    return "\"" + out + "\"";
}

bool endsWith(const std::string& text, const std::string& suffix)
{
    return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

struct Loaded {
    Graph graph;
    bool full = false; // a graph file: the whole adjacency; otherwise a graph JSON's links
};

Loaded load(const std::string& path)
{
    std::error_code ec;
    if (!std::filesystem::exists(path, ec))
        throw Error("no such file: " + path);
    if (std::filesystem::is_directory(path, ec))
        throw Error(path + " is a folder, not a graph file or graph JSON");
    Loaded l;
    // By content; a file named .csgraph that is not one (truncated, say) is read as a graph
    // file too, so that the message says what is wrong with it.
    l.full = graph::isGraphFile(path) || endsWith(path, graph::kGraphFileExtension);
    l.graph = l.full ? graph::readGraphFile(path) : graph::readJsonFile(path);
    return l;
}

std::string inputArg(const Args& args, const std::string& command)
{
    const auto& pos = args.positional();
    if (pos.size() < 3)
        throw Error(
            "graph " + command + " needs a graph: a graph file (" + graph::kGraphFileExtension + ") or a graph JSON");
    if (pos.size() > 3)
        throw Error("graph " + command + " takes one graph, not \"" + pos[3] + "\" as well");
    return pos[2];
}

double threshold(const Args& args, const std::string& name, double fallback)
{
    const double value = args.doubleOr(name, fallback);
    if (!(value >= 0.0 && value <= 1.0))
        throw Error("--" + name + " must be between 0 and 1, got " + *args.value(name));
    return value;
}

// What the graph JSON of `pruned` holds (toJson's rule): the kept edges between kept nodes,
// and the kept nodes, features and errors only with one of those edges.
struct Shown {
    std::vector<bool> nodes; // [n]
    std::vector<bool> edges; // [nnz]: per adjacency entry
};

Shown shown(const Graph& g, const PruneResult& pruned)
{
    const int64_t n = g.size();
    Shown s;
    s.edges.assign(static_cast<size_t>(g.adjacency.nnz()), false);
    std::vector<bool> linked(static_cast<size_t>(n), false);
    for (int64_t t = 0; t < n; ++t) {
        if (!pruned.nodeMask[t])
            continue;
        const graph::Adjacency::Row row = g.adjacency.row(t);
        for (int64_t k = 0; k < row.size; ++k) {
            const int64_t e = row.entry(k);
            if (pruned.edgeMask[static_cast<size_t>(e)] && pruned.nodeMask[row.columns[k]]) {
                s.edges[static_cast<size_t>(e)] = true;
                linked[t] = true;
                linked[row.columns[k]] = true;
            }
        }
    }
    s.nodes.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        const NodeKind kind = g.nodes[i].kind;
        s.nodes[i] = pruned.nodeMask[i] && (kind == NodeKind::Embedding || kind == NodeKind::Logit || linked[i]);
    }
    return s;
}

// {"feature": n, "error": n, "embedding": n, "logit": n}, of the nodes in `mask` (all without).
Json nodesByKind(const Graph& g, const std::vector<bool>* mask = nullptr)
{
    Json j = Json::object();
    for (NodeKind kind : kKinds)
        j[graph::nodeKindName(kind)] = 0;
    for (int64_t i = 0; i < g.size(); ++i)
        if (!mask || (*mask)[i]) {
            Json& count = j[graph::nodeKindName(g.nodes[i].kind)];
            count = count.get<int64_t>() + 1;
        }
    return j;
}

// The edges in `edges` ([nnz], per adjacency entry; every entry without), counted by the kind
// of their source.
Json edgesBySourceKind(const Graph& g, const std::vector<bool>* edges = nullptr)
{
    const graph::KindRanges r = g.ranges();
    int64_t counts[3] = { 0, 0, 0 };
    const int32_t* columns = g.adjacency.columns();
    for (int64_t e = 0, nnz = g.adjacency.nnz(); e < nnz; ++e) {
        if (edges && !(*edges)[static_cast<size_t>(e)])
            continue;
        const int64_t s = columns[e];
        counts[0] += r.features.contains(s);
        counts[1] += r.errors.contains(s);
        counts[2] += r.embeddings.contains(s);
    }
    Json j = Json::object();
    j[graph::nodeKindName(NodeKind::Feature)] = counts[0];
    j[graph::nodeKindName(NodeKind::Error)] = counts[1];
    j[graph::nodeKindName(NodeKind::Embedding)] = counts[2];
    return j;
}

std::string kindsText(const Json& byKind)
{
    return byKind["feature"].dump() + " features, " + byKind["error"].dump() + " errors, " + byKind["embedding"].dump()
        + " embeddings, " + byKind["logit"].dump() + " logits";
}

// The prompt, counts, scores and metadata of a graph, for info and import.
Json summary(const std::string& path, const Loaded& l, const graph::Pruner& pruner)
{
    const graph::Scores scores = pruner.scores();
    const Graph& g = l.graph;
    const graph::Metadata& m = g.metadata;
    Json logits = Json::array();
    for (const auto& node : g.nodes)
        if (node.kind == NodeKind::Logit)
            logits.push_back({ { "token_id", node.tokenId }, { "token", node.token }, { "prob", node.tokenProb } });
    return { { "file", path }, { "format", l.full ? "graph file" : "graph JSON" }, { "slug", m.slug },
        { "basis", m.basis.empty() ? std::string("features") : m.basis }, { "scan", m.scan }, { "prompt", m.prompt },
        { "prompt_tokens", m.promptTokens }, { "transcoder_list", m.transcoderList }, { "n_layers", g.nLayers() },
        { "n_positions", g.nPositions() }, { "node_threshold", m.nodeThreshold }, { "edge_threshold", m.edgeThreshold },
        { "nodes", g.size() }, { "nodes_by_kind", nodesByKind(g) }, { "edges", g.adjacency.nnz() },
        { "edges_by_source_kind", edgesBySourceKind(g) }, { "scores", graph::scoresJson(scores) },
        { "path_length", graph::pathLengthsJson(graph::pathLengths(g)) }, { "logits", logits },
        { "q_params", m.qParams }, { "extra", m.extra } };
}

void printSummary(const Json& s)
{
    std::cout << "graph: " << s["file"].get<std::string>() << " (" << s["format"].get<std::string>() << ")\n"
              << "prompt: " << visible(s["prompt"].get<std::string>()) << " (" << s["prompt_tokens"].size()
              << " tokens)\n";
    if (!s["slug"].get<std::string>().empty())
        std::cout << "slug: " << s["slug"].get<std::string>() << "\n";
    if (!s["scan"].get<std::string>().empty())
        std::cout << "scan: " << s["scan"].get<std::string>() << "\n";
    if (!s["transcoder_list"].empty())
        std::cout << "transcoders: " << dump(s["transcoder_list"]) << "\n";
    if (s["basis"] != "features") // the model's own units (neurons trace): feature nodes are units
        std::cout << "basis: " << s["basis"].get<std::string>() << " (the feature nodes are the model's units)\n";
    std::cout << "layers: " << s["n_layers"] << ", positions: " << s["n_positions"] << "\n"
              << "nodes: " << s["nodes"] << " (" << kindsText(s["nodes_by_kind"]) << ")\n"
              << "edges: " << s["edges"] << " (from features " << s["edges_by_source_kind"]["feature"] << ", errors "
              << s["edges_by_source_kind"]["error"] << ", embeddings " << s["edges_by_source_kind"]["embedding"]
              << ")\n";
    std::printf("scores: replacement %.4f, completeness %.4f (corrected %.4f)\n",
        s["scores"]["replacement"].get<double>(), s["scores"]["completeness"].get<double>(),
        s["scores"]["corrected_completeness"].get<double>());
    std::printf("thresholds: node %g, edge %g\n", s["node_threshold"].get<double>(), s["edge_threshold"].get<double>());
    {
        // The share of the embeddings' influence that arrives over paths of at most l edges.
        const Json& p = s["path_length"];
        std::printf("path length: mean %.2f edges, longest %lld; share by length:", p["mean_length"].get<double>(),
            static_cast<long long>(p["longest_path"].get<int64_t>()));
        for (size_t l = 1; l < p["share"].size(); ++l)
            std::printf(" <=%zu %.3f", l, p["share"][l].get<double>());
        std::printf("\n");
    }
    for (const auto& logit : s["logits"])
        std::printf("logit %lld %s p=%.4f\n", static_cast<long long>(logit["token_id"].get<int64_t>()),
            visible(logit["token"].get<std::string>()).c_str(), logit["prob"].get<double>());
    if (!s["extra"].empty())
        std::cout << "metadata: " << dump(s["extra"]) << "\n";
}

int cmdImport(const Args& args)
{
    const std::string in = inputArg(args, "import");
    const std::string out = args.valueOr("out", "");
    if (out.empty())
        throw Error(std::string("graph import needs --out FILE (a graph JSON, or a graph file ending in ")
            + graph::kGraphFileExtension + ")");
    const Loaded l = load(in);
    const graph::Pruner pruner(l.graph); // checks the graph: node order, shapes, no cycle through a logit
    if (endsWith(out, graph::kGraphFileExtension))
        graph::writeGraphFile(out, l.graph);
    else
        graph::writeJsonFile(out, l.graph, graph::keepAll(l.graph));
    Json s = summary(in, l, pruner);
    s["out"] = out;
    if (args.flag("json")) {
        std::cout << dump(s) << "\n";
    } else {
        printSummary(s);
        std::cout << "wrote " << out << "\n";
    }
    return 0;
}

int cmdInfo(const Args& args)
{
    const std::string in = inputArg(args, "info");
    const Loaded l = load(in);
    const Json s = summary(in, l, graph::Pruner(l.graph));
    if (args.flag("json"))
        std::cout << dump(s) << "\n";
    else
        printSummary(s);
    return 0;
}

double millisSince(std::chrono::steady_clock::time_point t0)
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// export and prune: prune (or keep everything), report, and write the graph JSON to --out.
int cmdPrune(const Args& args, bool exporting)
{
    const std::string command = exporting ? "export" : "prune";
    const std::string in = inputArg(args, command);
    const std::string out = args.valueOr("out", "");
    if (exporting && out.empty())
        throw Error("graph export needs --out FILE (the graph JSON to write)");
    const bool all = args.flag("all");
    if (all && (args.has("node-threshold") || args.has("edge-threshold")))
        throw Error("--all keeps every node and link; give it no thresholds");
    const double nodeThreshold = all ? 1.0 : threshold(args, "node-threshold", kDefaultNodeThreshold);
    const double edgeThreshold = all ? 1.0 : threshold(args, "edge-threshold", kDefaultEdgeThreshold);

    Loaded l = load(in);
    Graph& g = l.graph;
    auto t0 = std::chrono::steady_clock::now();
    const graph::Pruner pruner(g);
    const double buildMs = millisSince(t0);
    t0 = std::chrono::steady_clock::now();
    const PruneResult pruned = all ? graph::keepAll(g) : pruner.prune(nodeThreshold, edgeThreshold);
    const double pruneMs = millisSince(t0);

    const Shown kept = shown(g, pruned);
    // What the pruned graph explains of the whole one (pruned nodes and edges unexplained).
    const graph::Scores prunedScores = pruner.scoresOf(pruned);
    // Neuronpedia's subgraph score of the file written, every kept feature pinned.
    std::vector<bool> pinned(kept.nodes.size());
    for (size_t i = 0; i < pinned.size(); ++i)
        pinned[i] = kept.nodes[i] && g.nodes[i].kind == NodeKind::Feature;
    const graph::Scores neuronpediaScores = graph::neuronpediaSubgraphScores(g, pinned, &pruned);

    if (!out.empty()) {
        g.metadata.nodeThreshold = nodeThreshold;
        g.metadata.edgeThreshold = edgeThreshold;
        g.metadata.extra["scores"] = graph::scoresMetadata(pruner, pruned);
        graph::writeJsonFile(out, g, pruned);
    }

    const Json keptByKind = nodesByKind(g, &kept.nodes);
    const Json totalByKind = nodesByKind(g);
    Json byKind = Json::object();
    for (NodeKind kind : kKinds) {
        const char* name = graph::nodeKindName(kind);
        byKind[name] = { { "kept", keptByKind[name] }, { "total", totalByKind[name] } };
    }
    const int64_t nodes = std::count(kept.nodes.begin(), kept.nodes.end(), true);
    const int64_t edges = std::count(kept.edges.begin(), kept.edges.end(), true);
    const int64_t edgesTotal = g.adjacency.nnz();
    Json j = { { "file", in }, { "format", l.full ? "graph file" : "graph JSON" }, { "all", all },
        { "node_threshold", nodeThreshold }, { "edge_threshold", edgeThreshold }, { "nodes", nodes },
        { "edges", edges }, { "nodes_total", g.size() }, { "edges_total", edgesTotal }, { "nodes_by_kind", byKind },
        { "edges_by_source_kind", edgesBySourceKind(g, &kept.edges) }, { "scores", graph::scoresJson(pruner.scores()) },
        { "pruned_scores", graph::scoresJson(prunedScores) },
        { "neuronpedia_subgraph_scores", graph::scoresJson(neuronpediaScores) }, { "prune_ms", pruneMs },
        { "build_ms", buildMs } };
    if (!out.empty())
        j["out"] = out;
    if (args.flag("json")) {
        std::cout << dump(j) << "\n";
        return 0;
    }
    std::cout << "graph: " << in << " ("
              << (l.full ? "graph file: pruning the full graph" : "graph JSON: pruning within the links it holds")
              << ")\n";
    if (all)
        std::cout << "kept: everything (--all)\n";
    else
        std::printf("thresholds: node %g, edge %g\n", nodeThreshold, edgeThreshold);
    std::cout << "nodes kept: " << nodes << " of " << g.size() << " (" << kindsText(keptByKind) << ")\n"
              << "edges kept: " << edges << " of " << edgesTotal << "\n";
    const graph::Scores whole = pruner.scores();
    std::printf("scores of the graph: replacement %.4f, completeness %.4f (corrected %.4f)\n", whole.replacement,
        whole.completeness, whole.correctedCompleteness);
    std::printf("scores of the pruned graph (what it leaves out unexplained): replacement %.4f, completeness %.4f "
                "(corrected %.4f)\n",
        prunedScores.replacement, prunedScores.completeness, prunedScores.correctedCompleteness);
    std::printf("Neuronpedia's subgraph score (kept features pinned, renormalized): replacement %.4f, completeness "
                "%.4f\n",
        neuronpediaScores.replacement, neuronpediaScores.completeness);
    std::printf("prune: %.3f ms (pruner built in %.1f ms)\n", pruneMs, buildMs);
    if (!out.empty())
        std::cout << "wrote " << out << "\n";
    return 0;
}

} // namespace

int cmdGraph(const Args& args, const std::string& /*device: graphs are pruned on the CPU*/)
{
    const auto& pos = args.positional();
    const std::string sub = pos.size() > 1 ? pos[1] : "";
    if (sub == "import")
        return cmdImport(args);
    if (sub == "export")
        return cmdPrune(args, true);
    if (sub == "prune")
        return cmdPrune(args, false);
    if (sub == "info")
        return cmdInfo(args);
    throw Error("graph needs a subcommand: import, export, prune or info");
}

} // namespace cs::cli
