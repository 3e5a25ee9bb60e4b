#pragma once
// The small valid graph the session target keeps beside its inputs (a sidecar) and
// fuzz_make_seeds writes as seeds: a two-token prompt, one feature, one error, two embeddings
// and a logit, with edges into the feature and the logit.

#include <cs/graph.h>

#include <string>

namespace cs::fuzz {

inline cs::graph::Graph smallGraph()
{
    using cs::graph::NodeKind;
    auto node = [](NodeKind kind, int64_t layer, int64_t position, int64_t feature, int64_t token) {
        cs::graph::Node n;
        n.kind = kind;
        n.layer = layer;
        n.position = position;
        n.feature = feature;
        n.tokenId = token;
        n.activation = kind == NodeKind::Feature ? 1.5 : 0.0;
        n.token = token >= 0 ? "t" + std::to_string(token) : std::string();
        n.tokenProb = kind == NodeKind::Logit ? 0.5 : 0.0;
        return n;
    };
    cs::graph::Graph g;
    g.nodes = { node(NodeKind::Feature, 0, 1, 7, -1), node(NodeKind::Error, 0, 1, -1, -1),
        node(NodeKind::Embedding, -1, 0, -1, 3), node(NodeKind::Embedding, -1, 1, -1, 4),
        node(NodeKind::Logit, 1, 1, -1, 5) };
    g.nodes[0].label = "a label";
    g.metadata.slug = "fuzz";
    g.metadata.prompt = "t3t4";
    g.metadata.promptTokens = { "t3", "t4" };
    g.metadata.scan = "fuzz/clt";
    g.metadata.transcoderList = { "fuzz/clt" };
    g.logitProbabilities = { 0.5f };
    cs::graph::AdjacencyBuilder builder(5);
    builder.setRow(0, { 3 }, { 0.75f });
    builder.setRow(4, { 0, 1, 2 }, { 1.0f, -0.5f, 0.25f });
    g.adjacency = builder.build();
    return g;
}

} // namespace cs::fuzz
