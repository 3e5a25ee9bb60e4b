#pragma once
// The sessions tests/tools/session_write_loop writes, one per generation g, and the check that
// a session read back is exactly generation g (tst_crash_consistency). g is in extra.generation,
// the prompt, the graph's slug, node 0's activation and one edge's value, and the payload's
// length varies with g, so a session whose parts come from two generations (a session file and
// a sidecar of different saves) or a file cut short is told apart.

#include "graph_nodes.h"
#include "sessionfile.h"

#include <ATen/ATen.h>

#include <cstdint>
#include <random>
#include <string>

namespace cs::test {

// 120 features over 4 layers and 6 positions, the errors, embeddings and two logits, about
// 30 % of the allowed edges (~5,000 nonzero edges: ~300 kB of session JSON), from a fixed seed.
inline cs::graph::Graph generationGraph(int64_t g)
{
    constexpr int64_t nLayers = 4, nPos = 6, nFeatures = 120;
    std::mt19937_64 rng(7);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    cs::graph::Graph graph;
    for (int64_t i = 0; i < nFeatures; ++i)
        graph.nodes.push_back(featureNode(i % nLayers, (i / nLayers) % nPos, 100 + i, 0.5 + uniform(rng)));
    graph.nodes[0].activation = static_cast<double>(g);
    for (int64_t l = 0; l < nLayers; ++l)
        for (int64_t p = 0; p < nPos; ++p)
            graph.nodes.push_back(errorNode(l, p));
    for (int64_t p = 0; p < nPos; ++p) {
        graph.nodes.push_back(embeddingNode(p, 10 + p, " t" + std::to_string(p)));
        graph.metadata.promptTokens.push_back(graph.nodes.back().token);
        graph.metadata.prompt += graph.nodes.back().token;
    }
    graph.nodes.push_back(logitNode(nLayers, nPos - 1, 50, " a", 0.6));
    graph.nodes.push_back(logitNode(nLayers, nPos - 1, 51, " b", 0.3));
    graph.logitProbabilities = { 0.6f, 0.3f };
    const int64_t n = graph.size();
    at::Tensor dense = at::zeros({ n, n });
    auto a = dense.accessor<float, 2>();
    std::normal_distribution<double> normal(0.0, 1.0);
    for (int64_t t = 0; t < n; ++t)
        for (int64_t s = 0; s < n; ++s)
            if (edgeAllowed(graph.nodes[static_cast<size_t>(t)], graph.nodes[static_cast<size_t>(s)])
                && uniform(rng) < 0.3)
                a[t][s] = static_cast<float>(normal(rng));
    a[n - 1][nFeatures - 1] = static_cast<float>(g + 1); // the last logit from the last feature
    graph.adjacency = cs::graph::Adjacency::fromDense(dense);
    graph.metadata.slug = "gen-" + std::to_string(g);
    graph.metadata.scan = "crash-test";
    return graph;
}

inline cs::app::SessionData sessionOf(int64_t g)
{
    cs::app::SessionData data;
    data.model = "tinyworld";
    data.device = "cpu";
    data.prompt = "generation " + std::to_string(g);
    data.graph = generationGraph(g);
    data.extra["generation"] = g;
    data.extra["payload"]
        = std::string(static_cast<size_t>(1000 + (g * 7919) % 20000), static_cast<char>('a' + g % 26));
    return data;
}

// Empty when `data` is generation g in every part; else what differs.
inline std::string differsFromGeneration(const cs::app::SessionData& data, int64_t g)
{
    const cs::app::SessionData want = sessionOf(g);
    if (data.extra != want.extra)
        return "extra (generation " + data.extra.value("generation", nlohmann::json()).dump() + ")";
    if (data.prompt != want.prompt)
        return "prompt \"" + data.prompt + "\"";
    if (data.graph.metadata.slug != want.graph.metadata.slug)
        return "graph slug " + data.graph.metadata.slug;
    if (data.graph.nodes.size() != want.graph.nodes.size())
        return "graph nodes " + std::to_string(data.graph.nodes.size());
    for (size_t i = 0; i < want.graph.nodes.size(); ++i)
        if (data.graph.nodes[i].activation != want.graph.nodes[i].activation)
            return "graph node " + std::to_string(i) + " activation " + std::to_string(data.graph.nodes[i].activation);
    if (data.graph.adjacency != want.graph.adjacency)
        return "graph adjacency";
    return {};
}

} // namespace cs::test
