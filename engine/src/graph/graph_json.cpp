// The circuit-tracer / Neuronpedia graph JSON (docs/ARCHITECTURE.md §11.3), written as
// circuit-tracer's create_graph_files and frontend Node models write it and read back from what
// they write.

#include "cs/error.h"
#include "cs/graph.h"
#include "cs/json_reader.h"
#include "io/atomic_file.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace cs::graph {

namespace {

using nlohmann::json;

// circuit-tracer's logit clerp: Output "{token}" (p={token_prob:.3f}).
std::string logitClerp(const std::string& token, double probability)
{
    char p[32];
    std::snprintf(p, sizeof p, "%.3f", probability);
    return "Output \"" + token + "\" (p=" + p + ")";
}

// The clerp of a difference target: Output "{A}" − "{B}" (p={p_A:.3f}, {p_B:.3f}).
std::string differenceClerp(const Node& node)
{
    char p[64];
    std::snprintf(p, sizeof p, "%.3f, %.3f", node.tokenProb, node.contrastTokenProb);
    return "Output \"" + node.token + "\" \u2212 \"" + node.contrastToken + "\" (p=" + p + ")";
}

// Rewrites the node ids that Neuronpedia's qParams hold (pinnedIds, hiddenIds, the members of
// supernodes, clickedId; an id list may be an array or its URL form "a,b,c") through `map`.
void mapQParamIds(json& q, const std::function<std::string(const std::string&)>& map)
{
    if (!q.is_object())
        return;
    const auto mapList = [&](json& list) {
        if (list.is_array()) {
            for (json& id : list)
                if (id.is_string())
                    id = map(id.get<std::string>());
        } else if (list.is_string()) {
            std::string out, text = list.get<std::string>();
            size_t start = 0;
            while (start <= text.size()) {
                const size_t comma = std::min(text.find(',', start), text.size());
                if (!out.empty() || start > 0)
                    out += ',';
                out += map(text.substr(start, comma - start));
                start = comma + 1;
            }
            list = out;
        }
    };
    for (const char* key : { "pinnedIds", "hiddenIds" })
        if (auto it = q.find(key); it != q.end())
            mapList(*it);
    if (auto it = q.find("supernodes"); it != q.end() && it->is_array())
        for (json& row : *it)
            if (row.is_array())
                for (size_t k = 1; k < row.size(); ++k) // row[0] is the supernode's name
                    if (row[k].is_string())
                        row[k] = map(row[k].get<std::string>());
    if (auto it = q.find("clickedId"); it != q.end() && it->is_string())
        *it = map(it->get<std::string>());
}

// Objects merge key by key; anything else replaces.
void mergeInto(json& target, const json& patch)
{
    if (!patch.is_object())
        return;
    for (auto it = patch.begin(); it != patch.end(); ++it) {
        auto existing = target.find(it.key());
        if (it->is_object() && existing != target.end() && existing->is_object())
            mergeInto(*existing, *it);
        else
            target[it.key()] = *it;
    }
}

std::vector<std::string> splitId(const std::string& id)
{
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
        const size_t underscore = id.find('_', start);
        parts.push_back(id.substr(start, underscore - start));
        if (underscore == std::string::npos)
            return parts;
        start = underscore + 1;
    }
}

struct FileNode {
    Node node;
    std::string id;
    bool targetLogit = false;
    double weight = 0; // logits: the influence weight
};

// Reads one graph document; every message starts with `source` and names the place. In parts:
// the metadata, each node, the order and ids of the nodes, the links.
class Reader : public JsonReader {
public:
    using JsonReader::JsonReader;

    Graph read(const json& doc) const;

private:
    void readMetadata(const json& doc, Metadata& meta) const;
    // nodes[i]; logitLayer is the logit nodes' layer once one has been read.
    FileNode readNode(
        const json& value, const std::string& where, const Metadata& meta, std::optional<int64_t>& logitLayer) const;
    // The nodes in our order (graph.nodes); returns each file position's graph index.
    static std::vector<int64_t> orderNodes(const std::vector<FileNode>& fileNodes, Graph& graph);
    // File positions by node_id, refusing repeats (but circuit-tracer's older error ids).
    std::unordered_map<std::string, std::vector<size_t>> idsOf(const std::vector<FileNode>& fileNodes) const;
    Adjacency readLinks(const json& doc, const std::vector<FileNode>& fileNodes,
        const std::unordered_map<std::string, std::vector<size_t>>& byId, const std::vector<int64_t>& indexOf) const;
};

void Reader::readMetadata(const json& doc, Metadata& meta) const
{
    const json& m = object(member(doc, "metadata", ""), "metadata");
    meta.slug = string(member(m, "slug", "metadata"), "metadata.slug");
    meta.scan = string(member(m, "scan", "metadata"), "metadata.scan");
    meta.prompt = string(member(m, "prompt", "metadata"), "metadata.prompt");
    meta.promptTokens = strings(member(m, "prompt_tokens", "metadata"), "metadata.prompt_tokens");
    if (m.contains("transcoder_list"))
        meta.transcoderList = strings(m["transcoder_list"], "metadata.transcoder_list");
    if (m.contains("pruning_settings")) {
        const json& p = object(m["pruning_settings"], "metadata.pruning_settings");
        if (p.contains("node_threshold") && !p["node_threshold"].is_null())
            meta.nodeThreshold = number(p["node_threshold"], "metadata.pruning_settings.node_threshold");
        if (p.contains("edge_threshold") && !p["edge_threshold"].is_null())
            meta.edgeThreshold = number(p["edge_threshold"], "metadata.pruning_settings.edge_threshold");
    }
    // We write schema version 1; a later one may mean what we would misread.
    if (m.contains("schema_version") && !m["schema_version"].is_null()) {
        const int64_t version = integer(m["schema_version"], "metadata.schema_version");
        if (version != 1)
            fail("metadata.schema_version", std::to_string(version) + " is not a schema version this reads (1)");
    }
    if (m.contains("node_threshold") && !m["node_threshold"].is_null())
        meta.nodeThreshold = number(m["node_threshold"], "metadata.node_threshold");
    // The basis: metadata.basis (ours), else told by the first node whose feature_type is a
    // unit basis's; every node must then agree with it (readNode).
    if (m.contains("basis")) {
        meta.basis = string(m["basis"], "metadata.basis");
        if (!isBasis(meta.basis))
            fail("metadata.basis", "\"" + meta.basis + "\" is not a basis (neurons, mlp_out, attn_out or resid)");
    } else if (doc.contains("nodes") && doc["nodes"].is_array()) {
        for (const json& node : doc["nodes"]) {
            const auto type = node.is_object() ? node.find("feature_type") : node.end();
            if (!node.is_object() || type == node.end() || !type->is_string())
                continue;
            for (const char* basis : { "neurons", "mlp_out", "attn_out", "resid" })
                if (*type == featureTypeOf(NodeKind::Feature, basis))
                    meta.basis = basis;
            if (!meta.basis.empty() || *type == featureTypeOf(NodeKind::Feature, ""))
                break;
        }
    }
    // The scores a trace or a prune recorded (graph::scoresMetadata), shown and written back
    // as they are: each must be a number (or null, a score JSON could not hold), in "full" and
    // "pruned" too.
    if (m.contains("scores") && !m["scores"].is_null()) {
        const auto score = [&](const json& value, const std::string& where) {
            if (!value.is_null())
                number(value, where);
        };
        const json& scores = object(m["scores"], "metadata.scores");
        for (auto it = scores.begin(); it != scores.end(); ++it) {
            const std::string where = "metadata.scores." + it.key();
            if (it->is_object())
                for (auto part = it->begin(); part != it->end(); ++part)
                    score(*part, where + "." + part.key());
            else
                score(*it, where);
        }
    }
    meta.extra = json::object();
    for (auto it = m.begin(); it != m.end(); ++it) {
        static const char* const known[] = { "slug", "scan", "prompt", "prompt_tokens", "transcoder_list",
            "node_threshold", "schema_version", "pruning_settings", "basis" };
        if (std::find(std::begin(known), std::end(known), it.key()) == std::end(known))
            meta.extra[it.key()] = *it;
    }
    if (doc.contains("qParams"))
        meta.qParams = object(doc["qParams"], "qParams");
}

FileNode Reader::readNode(
    const json& value, const std::string& where, const Metadata& meta, std::optional<int64_t>& logitLayer) const
{
    const json& j = object(value, where);
    FileNode f;
    Node& node = f.node;
    f.id = string(member(j, "node_id", where), where + ".node_id");
    const std::string type = string(member(j, "feature_type", where), where + ".feature_type");
    bool known = false;
    for (NodeKind kind : { NodeKind::Feature, NodeKind::Error, NodeKind::Embedding, NodeKind::Logit })
        if (type == featureTypeOf(kind, meta.basis)) {
            node.kind = kind;
            known = true;
        }
    if (!known)
        fail(where + ".feature_type",
            "\"" + type + "\" is not supported in a graph of "
                + (meta.basis.empty() ? std::string("transcoder features") : meta.basis) + " (expected \""
                + featureTypeOf(NodeKind::Feature, meta.basis) + "\", \"" + featureTypeOf(NodeKind::Error, meta.basis)
                + "\", \"embedding\" or \"logit\")");
    node.position = integer(member(j, "ctx_idx", where), where + ".ctx_idx");
    if (node.position < 0)
        fail(where + ".ctx_idx", "is negative");
    const json& layer = member(j, "layer", where);
    if (node.kind == NodeKind::Embedding) {
        node.layer = -1;
    } else if (layer.is_number()) {
        node.layer = integer(layer, where + ".layer");
    } else if (layer.is_string()) {
        auto parsed = parseInteger(layer.get<std::string>());
        if (!parsed)
            fail(where + ".layer", "\"" + layer.get<std::string>() + "\" is not a layer number");
        node.layer = *parsed;
    } else {
        fail(where + ".layer", "expected a string or an integer, got " + jsonTypeName(layer));
    }
    if (node.layer < -1)
        fail(where + ".layer", "is negative");
    std::optional<int64_t> feature;
    if (j.contains("feature") && !j["feature"].is_null())
        feature = integer(j["feature"], where + ".feature");
    const std::string clerp = j.contains("clerp") ? string(j["clerp"], where + ".clerp") : std::string();
    if (j.contains("activation") && !j["activation"].is_null())
        node.activation = number(j["activation"], where + ".activation");
    // Recomputed on reading; still, a value that is there must be a number.
    if (j.contains("influence") && !j["influence"].is_null())
        number(j["influence"], where + ".influence");
    const std::vector<std::string> parts = splitId(f.id);

    switch (node.kind) {
    case NodeKind::Feature: {
        std::optional<int64_t> index;
        if (parts.size() == 3 && parseInteger(parts[0]) == node.layer)
            index = parseInteger(parts[1]);
        if ((!index || *index < 0) && feature && *feature >= 0) {
            const auto [l, idx] = cantorUnpair(*feature);
            if (l == node.layer)
                index = idx;
        }
        if (!index || *index < 0)
            fail(where,
                "cannot tell the feature index: node_id \"" + f.id
                    + "\" is not {layer}_{feature}_{pos} and \"feature\" is not the Cantor pairing of its layer");
        node.feature = *index;
        node.label = clerp;
        break;
    }
    case NodeKind::Error:
        node.label = clerp;
        break;
    case NodeKind::Embedding:
        if (parts.size() == 3 && parts[0] == "E")
            node.tokenId = parseInteger(parts[1]).value_or(-1);
        if (node.position < static_cast<int64_t>(meta.promptTokens.size()))
            node.token = meta.promptTokens[node.position];
        node.label = clerp;
        break;
    case NodeKind::Logit: {
        // The file's logit layer is n_layers + 1; ours is n_layers.
        node.layer -= 1;
        if (logitLayer && *logitLayer != node.layer)
            fail(where + ".layer", "logit nodes sit at different layers");
        logitLayer = node.layer;
        if (feature)
            node.tokenId = *feature;
        else if (parts.size() == 3)
            node.tokenId = parseInteger(parts[1]).value_or(-1);
        // A difference target: "{layer}_{A}vs{B}_{pos}" (ours).
        if (const size_t vs = parts.size() == 3 ? parts[1].find("vs") : std::string::npos; vs != std::string::npos) {
            const auto a = parseInteger(parts[1].substr(0, vs));
            const auto b = parseInteger(parts[1].substr(vs + 2));
            if (!a || !b || *a < 0 || *b < 0)
                fail(where + ".node_id", "\"" + f.id + "\" is not {layer}_{A}vs{B}_{pos}");
            node.tokenId = *a;
            node.contrastTokenId = *b;
        }
        if (j.contains("token_prob") && !j["token_prob"].is_null())
            node.tokenProb = number(j["token_prob"], where + ".token_prob");
        if (node.tokenProb < 0)
            fail(where + ".token_prob", "is negative");
        f.weight = node.tokenProb;
        if (j.contains("target_weight") && !j["target_weight"].is_null())
            f.weight = number(j["target_weight"], where + ".target_weight");
        if (f.weight < 0)
            fail(where + ".target_weight", "is negative");
        // Orders the logits (the target first): a string here would be read as false.
        if (j.contains("is_target_logit") && !j["is_target_logit"].is_null())
            f.targetLogit = boolean(j["is_target_logit"], where + ".is_target_logit");
        if (node.contrastTokenId >= 0) {
            // The tokens and B's probability from the trace's metadata when it describes
            // this target; else the clerp stays a label.
            const json* d = meta.extra.contains("logit_difference") ? &meta.extra["logit_difference"] : nullptr;
            if (d && d->is_object() && d->value("token_id", int64_t(-1)) == node.tokenId
                && d->value("contrast_token_id", int64_t(-1)) == node.contrastTokenId) {
                node.token = d->value("token", std::string());
                node.contrastToken = d->value("contrast_token", std::string());
                node.contrastTokenProb = d->value("contrast_prob", 0.0);
            }
            if (differenceClerp(node) != clerp)
                node.label = clerp;
            break;
        }
        // Take the token back out of circuit-tracer's clerp; keep any other text as a label.
        const std::string head = "Output \"";
        const size_t close = clerp.rfind("\" (p=");
        if (clerp.compare(0, head.size(), head) == 0 && close != std::string::npos && close >= head.size()
            && logitClerp(clerp.substr(head.size(), close - head.size()), node.tokenProb) == clerp)
            node.token = clerp.substr(head.size(), close - head.size());
        else
            node.label = clerp;
        break;
    }
    }
    return f;
}

std::vector<int64_t> Reader::orderNodes(const std::vector<FileNode>& fileNodes, Graph& graph)
{
    // Our order: features as listed, errors by layer then position, embeddings by position,
    // logits with the target logit first.
    std::vector<size_t> order(fileNodes.size());
    for (size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        const Node& x = fileNodes[a].node;
        const Node& y = fileNodes[b].node;
        if (x.kind != y.kind)
            return static_cast<int>(x.kind) < static_cast<int>(y.kind);
        switch (x.kind) {
        case NodeKind::Error:
            return std::make_pair(x.layer, x.position) < std::make_pair(y.layer, y.position);
        case NodeKind::Embedding:
            return x.position < y.position;
        case NodeKind::Logit:
            return fileNodes[a].targetLogit && !fileNodes[b].targetLogit;
        default:
            return false;
        }
    });
    static_assert(static_cast<int>(NodeKind::Feature) < static_cast<int>(NodeKind::Error)
            && static_cast<int>(NodeKind::Error) < static_cast<int>(NodeKind::Embedding)
            && static_cast<int>(NodeKind::Embedding) < static_cast<int>(NodeKind::Logit),
        "NodeKind follows the node order");
    std::vector<int64_t> indexOf(fileNodes.size()); // file position -> graph index
    for (size_t i = 0; i < order.size(); ++i) {
        indexOf[order[i]] = static_cast<int64_t>(i);
        graph.nodes.push_back(fileNodes[order[i]].node);
    }
    return indexOf;
}

std::unordered_map<std::string, std::vector<size_t>> Reader::idsOf(const std::vector<FileNode>& fileNodes) const
{
    // Node ids. Only older circuit-tracer error ids ("0_{layer}_{pos}") may repeat, once, the
    // id of a layer-0 feature; any other repeat is refused.
    std::unordered_map<std::string, std::vector<size_t>> byId; // id -> file positions, ascending
    for (size_t i = 0; i < fileNodes.size(); ++i) {
        auto& list = byId[fileNodes[i].id];
        if (!list.empty()) {
            const bool firstIsError = fileNodes[list[0]].node.kind == NodeKind::Error;
            const bool thisIsError = fileNodes[i].node.kind == NodeKind::Error;
            if (list.size() > 1 || firstIsError == thisIsError)
                fail("nodes[" + std::to_string(i) + "]",
                    "repeats node_id \"" + fileNodes[i].id + "\" of nodes[" + std::to_string(list[0]) + "]");
        }
        list.push_back(i);
    }
    return byId;
}

Adjacency Reader::readLinks(const json& doc, const std::vector<FileNode>& fileNodes,
    const std::unordered_map<std::string, std::vector<size_t>>& byId, const std::vector<int64_t>& indexOf) const
{
    const json& links = array(member(doc, "links", ""), "links");
    const int64_t n = static_cast<int64_t>(fileNodes.size());
    // Links per target row (in node order), then one sparse row each.
    std::vector<std::vector<std::pair<int32_t, float>>> rowsOf(static_cast<size_t>(n));
    std::unordered_set<uint64_t> linked; // target * n + source, for repeats
    std::vector<int64_t> lastSource(static_cast<size_t>(n), -1); // per target: the last source's file position
    for (size_t k = 0; k < links.size(); ++k) {
        const std::string where = "links[" + std::to_string(k) + "]";
        const json& link = object(links[k], where);
        const std::string source = string(member(link, "source", where), where + ".source");
        const std::string target = string(member(link, "target", where), where + ".target");
        const double weight = number(member(link, "weight", where), where + ".weight");
        if (std::abs(weight) > static_cast<double>(std::numeric_limits<float>::max()))
            fail(where + ".weight",
                "the link from \"" + source + "\" to \"" + target + "\" weighs " + std::to_string(weight)
                    + ", beyond what float32 holds");
        auto s = byId.find(source);
        if (s == byId.end())
            fail(where + ".source", "\"" + source + "\" is not the node_id of a node");
        auto t = byId.find(target);
        if (t == byId.end())
            fail(where + ".target", "\"" + target + "\" is not the node_id of a node");

        // The target: errors have no inputs.
        size_t tp = t->second[0];
        for (size_t c : t->second)
            if (fileNodes[c].node.kind != NodeKind::Error) {
                tp = c;
                break;
            }
        const Node& tn = fileNodes[tp].node;
        // The source: one that can feed the target (lower layer, no later position); if both
        // can, the first after this target's previous source (links come by target, then by
        // source in node order, and features precede errors).
        std::vector<size_t> candidates;
        for (size_t c : s->second) {
            const Node& sn = fileNodes[c].node;
            if (sn.kind != NodeKind::Logit && sn.layer < tn.layer && sn.position <= tn.position)
                candidates.push_back(c);
        }
        if (candidates.empty())
            candidates = s->second;
        size_t sp = candidates[0];
        for (size_t c : candidates)
            if (static_cast<int64_t>(c) > lastSource[tp]) {
                sp = c;
                break;
            }
        lastSource[tp] = static_cast<int64_t>(sp);

        const int64_t ti = indexOf[tp];
        const int64_t si = indexOf[sp];
        if (!linked.insert(static_cast<uint64_t>(ti) * static_cast<uint64_t>(n) + static_cast<uint64_t>(si)).second)
            fail(where, "repeats the link from \"" + source + "\" to \"" + target + "\"");
        rowsOf[static_cast<size_t>(ti)].emplace_back(static_cast<int32_t>(si), static_cast<float>(weight));
    }

    AdjacencyBuilder builder(n);
    std::vector<int32_t> columns;
    std::vector<float> values;
    for (int64_t t = 0; t < n; ++t) {
        columns.clear();
        values.clear();
        for (const auto& [s, w] : rowsOf[static_cast<size_t>(t)]) {
            columns.push_back(s);
            values.push_back(w);
        }
        builder.setRow(t, columns, values);
    }
    return builder.build();
}

Graph Reader::read(const json& doc) const
{
    if (!doc.is_object())
        fail("", "expected an object at the top level, got " + jsonTypeName(doc));
    Graph graph;
    Metadata& meta = graph.metadata;
    readMetadata(doc, meta);

    // nodes, in file order
    const json& nodes = array(member(doc, "nodes", ""), "nodes");
    std::vector<FileNode> fileNodes;
    fileNodes.reserve(nodes.size());
    std::optional<int64_t> logitLayer;
    for (size_t i = 0; i < nodes.size(); ++i)
        fileNodes.push_back(readNode(nodes[i], "nodes[" + std::to_string(i) + "]", meta, logitLayer));

    const std::vector<int64_t> indexOf = orderNodes(fileNodes, graph);
    graph.adjacency = readLinks(doc, fileNodes, idsOf(fileNodes), indexOf);
    // The logits' influence weights, in graph order.
    const int64_t n = static_cast<int64_t>(fileNodes.size());
    std::vector<double> weightOf(fileNodes.size());
    for (size_t p = 0; p < fileNodes.size(); ++p)
        weightOf[static_cast<size_t>(indexOf[p])] = fileNodes[p].weight;
    std::vector<float> probabilities;
    for (int64_t i = 0; i < n; ++i)
        if (graph.nodes[static_cast<size_t>(i)].kind == NodeKind::Logit)
            probabilities.push_back(static_cast<float>(weightOf[static_cast<size_t>(i)]));
    graph.logitProbabilities = std::move(probabilities);
    // qParams name nodes by file ids: circuit-tracer's error ids become ours, unless the id is
    // also a node's own (a layer-0 feature's: the feature is meant).
    std::unordered_map<std::string, std::string> ourIdOf;
    std::unordered_set<std::string> ourIds;
    for (int64_t i = 0; i < n; ++i) {
        ourIds.insert(nodeId(graph, i));
        if (graph.nodes[i].kind == NodeKind::Error)
            ourIdOf.emplace(fileNodeId(graph, i), nodeId(graph, i));
    }
    mapQParamIds(meta.qParams, [&](const std::string& id) {
        const auto it = ourIdOf.find(id);
        return it == ourIdOf.end() || ourIds.count(id) ? id : it->second;
    });
    // What a writer checks (toJson, writeGraphFile), so nothing read here is refused on writing.
    try {
        graph.validate();
    } catch (const Error& e) {
        fail("", e.what());
    }
    return graph;
}

} // namespace

json toJson(const Graph& graph, const PruneResult& pruned)
{
    graph.validate();
    const int64_t n = graph.size();
    const KindRanges ranges = graph.ranges();
    if (!pruned.fits(graph))
        throw Error("graph JSON: the prune result does not belong to this graph");
    const Metadata& meta = graph.metadata;

    json metadata = {
        { "slug", meta.slug },
        { "scan", meta.scan },
        { "transcoder_list", meta.transcoderList },
        { "prompt_tokens", meta.promptTokens },
        { "prompt", meta.prompt },
        { "node_threshold", meta.nodeThreshold },
        { "schema_version", 1 },
        { "pruning_settings", { { "node_threshold", meta.nodeThreshold }, { "edge_threshold", meta.edgeThreshold } } },
    };
    if (!meta.basis.empty())
        metadata["basis"] = meta.basis;
    mergeInto(metadata, meta.extra);
    json qParams = {
        { "pinnedIds", json::array() },
        { "supernodes", json::array() },
        { "linkType", "both" },
        { "clickedId", "" },
        { "sg_pos", "" },
    };
    mergeInto(qParams, meta.qParams);

    // circuit-tracer's ids in the file; the qParams name nodes by ours (nodeId).
    std::vector<std::string> ids(static_cast<size_t>(n));
    std::unordered_map<std::string, std::string> fileIdOf;
    for (int64_t i = 0; i < n; ++i) {
        if (pruned.nodeMask[i])
            ids[i] = fileNodeId(graph, i);
        if (graph.nodes[i].kind == NodeKind::Error)
            fileIdOf.emplace(nodeId(graph, i), fileNodeId(graph, i));
    }
    mapQParamIds(qParams, [&](const std::string& id) {
        const auto it = fileIdOf.find(id);
        return it == fileIdOf.end() ? id : it->second;
    });

    // Links, by target then source (circuit-tracer's order), between kept nodes.
    std::vector<bool> linked(static_cast<size_t>(n), false);
    json links = json::array();
    for (int64_t t = 0; t < n; ++t) {
        if (!pruned.nodeMask[t])
            continue;
        const Adjacency::Row row = graph.adjacency.row(t);
        for (int64_t k = 0; k < row.size; ++k) {
            const int64_t s = row.columns[k];
            if (!pruned.edgeMask[static_cast<size_t>(row.entry(k))] || !pruned.nodeMask[s])
                continue;
            links.push_back({ { "source", ids[s] }, { "target", ids[t] }, { "weight", row.values[k] } });
            linked[t] = true;
            linked[s] = true;
        }
    }

    // Nodes: the kept ones; features and errors only with a link (as circuit-tracer).
    const bool hasCumulative = static_cast<int64_t>(pruned.cumulativeInfluence.size()) == n;
    json nodes = json::array();
    for (int64_t i = 0; i < n; ++i) {
        const Node& node = graph.nodes[i];
        const bool alwaysShown = node.kind == NodeKind::Embedding || node.kind == NodeKind::Logit;
        if (!pruned.nodeMask[i] || (!alwaysShown && !linked[i]))
            continue;
        const std::string pos = std::to_string(node.position);
        json j;
        j["node_id"] = ids[i];
        switch (node.kind) {
        case NodeKind::Feature:
            j["feature"] = cantorPairing(node.layer, node.feature);
            j["layer"] = std::to_string(node.layer);
            j["jsNodeId"] = std::to_string(node.layer) + "_" + std::to_string(node.feature) + "-0";
            break;
        case NodeKind::Error:
            j["feature"] = -1;
            j["layer"] = std::to_string(node.layer);
            j["jsNodeId"] = std::to_string(node.layer) + "_" + pos + "-0"; // circuit-tracer 0.5's
            break;
        case NodeKind::Embedding:
            j["feature"] = node.position;
            j["layer"] = "E";
            j["jsNodeId"] = "E_" + std::to_string(node.tokenId) + "-" + pos;
            break;
        case NodeKind::Logit:
            j["feature"] = node.tokenId;
            j["layer"] = std::to_string(node.layer + 1);
            j["jsNodeId"] = "L_" + std::to_string(node.tokenId)
                + (node.contrastTokenId >= 0 ? "vs" + std::to_string(node.contrastTokenId) : std::string()) + "-" + pos;
            break;
        }
        j["ctx_idx"] = node.position;
        j["feature_type"] = featureTypeOf(node.kind, meta.basis);
        j["token_prob"] = node.kind == NodeKind::Logit ? node.tokenProb : 0.0;
        j["is_target_logit"] = node.kind == NodeKind::Logit && i == ranges.logits.begin;
        j["run_idx"] = 0;
        j["reverse_ctx_idx"] = 0;
        if (node.kind == NodeKind::Logit && node.label.empty())
            j["clerp"] = node.contrastTokenId >= 0 ? differenceClerp(node) : logitClerp(node.token, node.tokenProb);
        else
            j["clerp"] = node.label;
        // Ours: the logit's weight in the influence (circuit-tracer takes token_prob for it).
        if (node.kind == NodeKind::Logit)
            j["target_weight"]
                = static_cast<double>(graph.logitProbabilities[static_cast<size_t>(i - ranges.logits.begin)]);
        if (node.kind == NodeKind::Logit || !hasCumulative)
            j["influence"] = nullptr;
        else
            j["influence"] = pruned.cumulativeInfluence[static_cast<size_t>(i)];
        if (node.kind == NodeKind::Feature)
            j["activation"] = node.activation;
        else
            j["activation"] = nullptr;
        nodes.push_back(std::move(j));
    }

    return { { "metadata", std::move(metadata) }, { "qParams", std::move(qParams) }, { "nodes", std::move(nodes) },
        { "links", std::move(links) } };
}

Graph fromJson(const json& doc)
{
    return Reader("graph JSON").read(doc);
}

void writeJsonFile(const std::string& path, const Graph& graph, const PruneResult& pruned)
{
    // Token texts may hold part of a UTF-8 character (byte-level BPE); JSON text must be UTF-8,
    // so such bytes are written as U+FFFD rather than refused.
    io::writeFileAtomically(path, toJson(graph, pruned).dump(-1, ' ', false, json::error_handler_t::replace));
}

Graph readJsonFile(const std::string& path)
{
    const std::string text = io::readFile(path, kMaxDocumentFileBytes);
    json doc;
    try {
        doc = parseJson(text, path);
    } catch (const json::exception& e) {
        throw Error(path + " is not valid JSON: " + e.what());
    }
    return Reader(path).read(doc);
}

} // namespace cs::graph
