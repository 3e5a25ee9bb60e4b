// Session files: see sessionfile.h for the layout.

#include "sessionfile.h"

#include <cs/error.h>
#include <cs/files.h>
#include <cs/json_reader.h>

#include <QCoreApplication>
#include <QDateTime>
#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QSaveFile>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace cs::app {

namespace {

using cs::graph::Graph;
using cs::graph::Node;
using cs::graph::NodeKind;
using nlohmann::json;

// "{layer}:{feature}" -> (layer, feature).
std::optional<std::pair<int64_t, int64_t>> parseFeatureKey(const std::string& key)
{
    const size_t colon = key.find(':');
    if (colon == std::string::npos)
        return std::nullopt;
    auto layer = parseInteger(key.substr(0, colon));
    auto feature = parseInteger(key.substr(colon + 1));
    if (!layer || !feature || *layer < 0 || *feature < 0)
        return std::nullopt;
    return std::make_pair(*layer, *feature);
}

std::vector<std::string> split(const std::string& text, char separator)
{
    std::vector<std::string> parts;
    size_t start = 0;
    while (true) {
        const size_t at = text.find(separator, start);
        parts.push_back(text.substr(start, at - start));
        if (at == std::string::npos)
            return parts;
        start = at + 1;
    }
}

// ---- the graph's complement ("graph_nodes") ------------------------------------------------

json metadataJson(const cs::graph::Metadata& m)
{
    json tokens = json::array();
    for (const std::string& t : m.promptTokens)
        tokens.push_back(textJson(t));
    json transcoders = json::array();
    for (const std::string& t : m.transcoderList)
        transcoders.push_back(textJson(t));
    json out = { { "slug", textJson(m.slug) }, { "prompt", textJson(m.prompt) }, { "prompt_tokens", std::move(tokens) },
        { "scan", textJson(m.scan) }, { "transcoder_list", std::move(transcoders) },
        { "node_threshold", m.nodeThreshold }, { "edge_threshold", m.edgeThreshold }, { "q_params", m.qParams },
        { "extra", m.extra } };
    if (!m.basis.empty()) // the model's own units (cs/neurons.h); absent: transcoder features
        out["basis"] = m.basis;
    return out;
}

json graphNodesJson(const Graph& graph)
{
    json nodes = json::array();
    for (const Node& node : graph.nodes) {
        nodes.push_back(json::array({ cs::graph::nodeKindName(node.kind), node.layer, node.position, node.feature,
            node.activation, node.tokenId, textJson(node.token), node.tokenProb, textJson(node.label) }));
        if (node.contrastTokenId >= 0) // a difference target "A − B": B's id, text and probability
            for (json field :
                { json(node.contrastTokenId), textJson(node.contrastToken), json(node.contrastTokenProb) })
                nodes.back().push_back(std::move(field));
    }
    json probabilities = json::array();
    for (const float p : graph.logitProbabilities)
        probabilities.push_back(p);
    return { { "metadata", metadataJson(graph.metadata) }, { "logit_probabilities", std::move(probabilities) },
        { "nodes", std::move(nodes) } };
}

cs::graph::Metadata readMetadata(const JsonReader& c, const json& value, const std::string& where)
{
    c.object(value, where);
    cs::graph::Metadata m;
    m.slug = c.text(c.member(value, "slug", where), JsonReader::at(where, "slug"));
    m.prompt = c.text(c.member(value, "prompt", where), JsonReader::at(where, "prompt"));
    m.promptTokens = c.texts(c.member(value, "prompt_tokens", where), JsonReader::at(where, "prompt_tokens"));
    m.scan = c.text(c.member(value, "scan", where), JsonReader::at(where, "scan"));
    m.transcoderList = c.texts(c.member(value, "transcoder_list", where), JsonReader::at(where, "transcoder_list"));
    m.nodeThreshold = c.number(c.member(value, "node_threshold", where), JsonReader::at(where, "node_threshold"));
    m.edgeThreshold = c.number(c.member(value, "edge_threshold", where), JsonReader::at(where, "edge_threshold"));
    m.qParams = c.object(c.member(value, "q_params", where), JsonReader::at(where, "q_params"));
    m.extra = c.member(value, "extra", where);
    if (const json* basis = c.optional(value, "basis")) {
        m.basis = c.string(*basis, JsonReader::at(where, "basis"));
        if (!cs::graph::isBasis(m.basis))
            c.fail(JsonReader::at(where, "basis"), "\"" + m.basis + "\" is not a basis");
    }
    return m;
}

std::optional<NodeKind> kindFromName(const std::string& name)
{
    for (NodeKind k : { NodeKind::Feature, NodeKind::Error, NodeKind::Embedding, NodeKind::Logit })
        if (name == cs::graph::nodeKindName(k))
            return k;
    return std::nullopt;
}

// The graph from its graph JSON (the links) and its complement (the nodes, exactly).
Graph readInlineGraph(const JsonReader& c, const json& doc)
{
    Graph linked;
    try {
        linked = cs::graph::fromJson(c.object(c.member(doc, "graph", ""), "graph"));
        linked.validate();
    } catch (const Error& e) {
        c.fail("graph", e.what());
    }
    const json* complement = c.optional(doc, "graph_nodes");
    if (!complement)
        return linked; // a graph JSON from elsewhere: what it carries is all there is

    const std::string where = "graph_nodes";
    c.object(*complement, where);
    Graph graph;
    graph.metadata = readMetadata(c, c.member(*complement, "metadata", where), where + ".metadata");
    if (graph.metadata.basis.empty())
        graph.metadata.basis = linked.metadata.basis; // sessions written before the complement kept it
    const json& nodes = c.array(c.member(*complement, "nodes", where), where + ".nodes");
    const int64_t n = static_cast<int64_t>(nodes.size());
    graph.nodes.reserve(static_cast<size_t>(n));
    for (size_t i = 0; i < nodes.size(); ++i) {
        const std::string w = JsonReader::at(where + ".nodes", i);
        const json& r = c.array(nodes[i], w);
        if (r.size() != 9 && r.size() != 12)
            c.fail(w, "expected 9 fields (12 for a difference target), got " + std::to_string(r.size()));
        Node node;
        const std::string kind = c.string(r[0], w + "[0]");
        auto k = kindFromName(kind);
        if (!k)
            c.fail(w + "[0]", "\"" + kind + "\" is not a node kind");
        node.kind = *k;
        node.layer = c.integer(r[1], w + "[1]");
        node.position = c.integer(r[2], w + "[2]");
        node.feature = c.integer(r[3], w + "[3]");
        node.activation = c.number(r[4], w + "[4]");
        node.tokenId = c.integer(r[5], w + "[5]");
        node.token = c.text(r[6], w + "[6]");
        node.tokenProb = c.number(r[7], w + "[7]");
        node.label = c.text(r[8], w + "[8]");
        if (r.size() == 12) {
            node.contrastTokenId = c.integer(r[9], w + "[9]");
            node.contrastToken = c.text(r[10], w + "[10]");
            node.contrastTokenProb = c.number(r[11], w + "[11]");
        }
        if (node.position < 0 || node.layer < -1)
            c.fail(w, "negative layer or position");
        graph.nodes.push_back(std::move(node));
    }
    const json& probs = c.array(c.member(*complement, "logit_probabilities", where), where + ".logit_probabilities");
    std::vector<float> p;
    for (size_t i = 0; i < probs.size(); ++i)
        p.push_back(static_cast<float>(c.number(probs[i], JsonReader::at(where + ".logit_probabilities", i))));
    graph.logitProbabilities = std::move(p);
    graph.adjacency = cs::graph::Adjacency(n); // no entries yet: the links are mapped in below
    try {
        graph.validate();
    } catch (const Error& e) {
        c.fail(where, e.what());
    }

    // The links' matrix into our node order, by node id.
    std::unordered_map<std::string, int64_t> index;
    for (int64_t j = 0; j < n; ++j)
        if (!index.emplace(cs::graph::nodeId(graph, j), j).second)
            c.fail(where + ".nodes", "node id \"" + cs::graph::nodeId(graph, j) + "\" repeats");
    const int64_t n0 = linked.size();
    std::vector<int64_t> to(static_cast<size_t>(n0));
    for (int64_t i = 0; i < n0; ++i) {
        const std::string id = cs::graph::nodeId(linked, i);
        auto it = index.find(id);
        if (it == index.end() || graph.nodes[it->second].kind != linked.nodes[i].kind)
            c.fail(where, "the graph's node \"" + id + "\" is not among graph_nodes");
        to[i] = it->second;
    }
    cs::graph::AdjacencyBuilder builder(n);
    std::vector<int32_t> columns;
    for (int64_t t = 0; t < n0; ++t) {
        const cs::graph::Adjacency::Row row = linked.adjacency.row(t);
        columns.clear();
        for (int64_t k = 0; k < row.size; ++k)
            columns.push_back(static_cast<int32_t>(to[row.columns[k]]));
        try {
            builder.setRow(to[t], columns.data(), row.values, row.size);
        } catch (const Error& e) {
            c.fail(where, e.what());
        }
    }
    graph.adjacency = builder.build();
    return graph;
}

int64_t nonzeroEdges(const Graph& graph)
{
    return graph.adjacency.nnz();
}

// The session's JSON without its graph.
json sessionHead(const SessionData& data)
{
    QString app = QStringLiteral("Circuitscope");
    if (QCoreApplication::instance() && !QCoreApplication::applicationVersion().isEmpty())
        app += QLatin1Char(' ') + QCoreApplication::applicationVersion();
    return { { "format", kSessionFormat }, { "version", kSessionVersion }, { "app", app.toStdString() },
        { "saved_at", QDateTime::currentDateTimeUtc().toString(Qt::ISODateWithMs).toStdString() },
        { "model", textJson(data.model) }, { "transcoder", textJson(data.transcoder) },
        { "feature_store", textJson(data.featureStore) }, { "device", textJson(data.device) },
        { "prompt", textJson(data.prompt) }, { "state", stateToJson(data.state) }, { "extra", data.extra } };
}

json inlineGraph(const SessionData& data)
{
    json graph = cs::graph::toJson(data.graph, cs::graph::keepAll(data.graph));
    stateToQParams(data.state, graph["qParams"], data.graph.metadata.basis);
    return graph;
}

std::string dump(const json& doc, bool indent)
{
    // Text that is not UTF-8 is written as U+FFFD here; whatever must come back byte for byte
    // is in graph_nodes as arrays of bytes.
    return doc.dump(indent ? 1 : -1, ' ', false, json::error_handler_t::replace);
}

void writeAtomically(const std::string& path, const std::string& text)
{
    const QString qpath = QString::fromStdString(path);
    if (QFileInfo(qpath).isDir())
        throw Error(path + ": cannot write the session: the path is a folder");
    // Never renamed over a device, FIFO or socket (the engine's atomic writes' rule).
    cs::requireReplaceableFile(path);
    QSaveFile file(qpath);
    if (!file.open(QIODevice::WriteOnly))
        throw Error(path + ": cannot write the session: " + file.errorString().toStdString());
    const qint64 written = file.write(text.data(), static_cast<qint64>(text.size()));
    if (written != static_cast<qint64>(text.size())) {
        const std::string reason = file.errorString().toStdString();
        file.cancelWriting();
        throw Error(path + ": cannot write the session: " + reason);
    }
    if (!file.commit())
        throw Error(path + ": cannot write the session: " + file.errorString().toStdString());
}

// The two sidecar names of a session: "<basename>.csgraph" and "<basename>.alt.csgraph".
std::array<QString, 2> sidecarNames(const QString& sessionPath)
{
    QString name = QFileInfo(sessionPath).fileName();
    const QString ext = QString::fromLatin1(kSessionExtension);
    if (name.endsWith(ext) && name.size() > ext.size())
        name.chop(ext.size());
    else if (name.lastIndexOf(QLatin1Char('.')) > 0)
        name.truncate(name.lastIndexOf(QLatin1Char('.')));
    const QString graphExt = QString::fromLatin1(cs::graph::kGraphFileExtension);
    return { name + graphExt, name + QStringLiteral(".alt") + graphExt };
}

// The sidecar the session file now at `path` names; empty when it names none (an inline graph,
// no file, a damaged one). A session with a sidecar is small (its graph is elsewhere), so a file
// past 64 MiB is taken as inline without reading it.
QString namedSidecar(const QString& path)
{
    constexpr qint64 kMaxBytes = qint64(64) << 20;
    const QFileInfo info(path);
    if (!info.isFile() || info.size() > kMaxBytes)
        return {};
    try {
        const json doc = parseJson(cs::readFile(path.toStdString(), uint64_t(kMaxBytes)), path.toStdString());
        if (doc.is_object() && doc.contains("graph_file") && doc["graph_file"].is_string())
            return QString::fromStdString(doc["graph_file"].get<std::string>());
    } catch (const std::exception&) {
    }
    return {};
}

} // namespace

// ---- state ----------------------------------------------------------------------------------

json stateToJson(const ExplorerState& s)
{
    json supernodes = json::array();
    for (const Supernode& sn : s.supernodes)
        supernodes.push_back({ { "name", sn.name }, { "members", sn.members } });
    json labels = json::object();
    for (const auto& [key, text] : s.labels)
        labels[key] = text;
    json interventions = json::array();
    for (const Intervention& iv : s.interventions)
        interventions.push_back({ { "target", iv.target }, { "op", interventionOpName(iv.op) }, { "value", iv.value },
            { "positions", iv.positions }, { "mode", iv.free ? "free" : "constrained" }, { "enabled", iv.enabled } });
    json j = { { "node_threshold", s.nodeThreshold }, { "edge_threshold", s.edgeThreshold }, { "selected", s.selected },
        { "pinned", s.pinned }, { "hidden", s.hidden }, { "supernodes", std::move(supernodes) },
        { "labels", std::move(labels) }, { "interventions", std::move(interventions) },
        { "view", { { "zoom", s.view.zoom }, { "center_x", s.view.centerX }, { "center_y", s.view.centerY } } } };
    if (s.asFile)
        j["as_file"] = true; // written only when set: sessions of traced graphs stay as they were
    return j;
}

ExplorerState stateFromJson(const json& value, const std::string& source)
{
    const JsonReader c(source);
    const std::string where = "state";
    c.object(value, where);
    ExplorerState s;
    auto threshold = [&](const char* key, double& out) {
        if (const json* v = c.optional(value, key)) {
            out = c.number(*v, JsonReader::at(where, key));
            if (out < 0 || out > 1)
                c.fail(JsonReader::at(where, key), "is not in [0, 1]");
        }
    };
    threshold("node_threshold", s.nodeThreshold);
    threshold("edge_threshold", s.edgeThreshold);
    if (const json* v = c.optional(value, "as_file"))
        s.asFile = c.boolean(*v, where + ".as_file");
    if (const json* v = c.optional(value, "selected"))
        s.selected = c.string(*v, where + ".selected");
    if (const json* v = c.optional(value, "pinned"))
        s.pinned = c.strings(*v, where + ".pinned");
    if (const json* v = c.optional(value, "hidden"))
        s.hidden = c.strings(*v, where + ".hidden");
    if (const json* v = c.optional(value, "supernodes")) {
        c.array(*v, where + ".supernodes");
        for (size_t i = 0; i < v->size(); ++i) {
            const std::string w = JsonReader::at(where + ".supernodes", i);
            const json& j = c.object((*v)[i], w);
            Supernode sn;
            sn.name = c.string(c.member(j, "name", w), w + ".name");
            sn.members = c.strings(c.member(j, "members", w), w + ".members");
            s.supernodes.push_back(std::move(sn));
        }
    }
    if (const json* v = c.optional(value, "labels")) {
        c.object(*v, where + ".labels");
        for (auto it = v->begin(); it != v->end(); ++it)
            s.labels[it.key()] = c.string(*it, where + ".labels." + it.key());
    }
    if (const json* v = c.optional(value, "interventions")) {
        c.array(*v, where + ".interventions");
        for (size_t i = 0; i < v->size(); ++i) {
            const std::string w = JsonReader::at(where + ".interventions", i);
            const json& j = c.object((*v)[i], w);
            Intervention iv;
            iv.target = c.string(c.member(j, "target", w), w + ".target");
            const std::string op = c.string(c.member(j, "op", w), w + ".op");
            if (const auto parsed = interventionOpFromName(op))
                iv.op = *parsed;
            else
                c.fail(w + ".op", "\"" + op + "\" is not \"ablate\", \"scale\" or \"inject\"");
            if (const json* x = c.optional(j, "value"))
                iv.value = c.number(*x, w + ".value");
            if (const json* x = c.optional(j, "positions")) {
                c.array(*x, w + ".positions");
                for (size_t k = 0; k < x->size(); ++k) {
                    const int64_t p = c.integer((*x)[k], JsonReader::at(w + ".positions", k));
                    if (p < -1)
                        c.fail(JsonReader::at(w + ".positions", k), "is below -1");
                    iv.positions.push_back(p);
                }
            }
            if (const json* x = c.optional(j, "mode")) {
                const std::string mode = c.string(*x, w + ".mode");
                if (mode != "constrained" && mode != "free")
                    c.fail(w + ".mode", "\"" + mode + "\" is not \"constrained\" or \"free\"");
                iv.free = mode == "free";
            }
            if (const json* x = c.optional(j, "enabled"))
                iv.enabled = c.boolean(*x, w + ".enabled");
            s.interventions.push_back(std::move(iv));
        }
    }
    if (const json* v = c.optional(value, "view")) {
        const std::string w = where + ".view";
        c.object(*v, w);
        if (const json* x = c.optional(*v, "zoom"))
            s.view.zoom = c.number(*x, w + ".zoom");
        if (s.view.zoom <= 0)
            c.fail(w + ".zoom", "is not positive");
        if (const json* x = c.optional(*v, "center_x"))
            s.view.centerX = c.number(*x, w + ".center_x");
        if (const json* x = c.optional(*v, "center_y"))
            s.view.centerY = c.number(*x, w + ".center_y");
    }
    return s;
}

std::vector<std::string> pruneStateToGraph(ExplorerState& s, const Graph& graph)
{
    std::unordered_set<std::string> ids;
    for (int64_t i = 0; i < graph.size(); ++i)
        ids.insert(cs::graph::nodeId(graph, i));
    std::vector<std::string> warnings;
    auto known = [&](const std::string& id) { return ids.count(id) > 0; };

    if (!s.selected.empty() && !known(s.selected)) {
        warnings.push_back("the selected node \"" + s.selected + "\" is not in the graph");
        s.selected.clear();
    }
    auto filterIds = [&](std::vector<std::string>& list, const char* what) {
        std::unordered_set<std::string> seen;
        std::vector<std::string> kept;
        for (const std::string& id : list) {
            if (!known(id))
                warnings.push_back(std::string("the ") + what + " node \"" + id + "\" is not in the graph");
            else if (!seen.insert(id).second)
                warnings.push_back(std::string("the ") + what + " node \"" + id + "\" is listed twice");
            else
                kept.push_back(id);
        }
        list = std::move(kept);
    };
    filterIds(s.pinned, "pinned");
    filterIds(s.hidden, "hidden");

    std::unordered_set<std::string> grouped; // a node is in at most one supernode
    std::set<std::string> names;
    std::vector<Supernode> supernodes;
    for (Supernode& sn : s.supernodes) {
        if (!names.insert(sn.name).second) {
            warnings.push_back("the supernode name \"" + sn.name + "\" is used twice; the second is dropped");
            continue;
        }
        std::vector<std::string> members;
        for (const std::string& id : sn.members) {
            if (!known(id))
                warnings.push_back("supernode \"" + sn.name + "\": the node \"" + id + "\" is not in the graph");
            else if (!grouped.insert(id).second)
                warnings.push_back(
                    "supernode \"" + sn.name + "\": the node \"" + id + "\" is already in another supernode");
            else
                members.push_back(id);
        }
        if (members.empty()) {
            warnings.push_back("the supernode \"" + sn.name + "\" has no node of the graph left");
            names.erase(sn.name);
            continue;
        }
        sn.members = std::move(members);
        supernodes.push_back(std::move(sn));
    }
    s.supernodes = std::move(supernodes);

    // Interventions: on a node or supernode of the graph, at positions of its prompt (-1 is every
    // position). One outside is dropped with a warning, not the session: the rest is the user's work.
    const auto nPositions = static_cast<int64_t>(graph.metadata.promptTokens.size());
    std::vector<Intervention> interventions;
    for (Intervention& iv : s.interventions) {
        const auto supernode = supernodeOfTarget(iv.target);
        const bool ok = supernode ? names.count(*supernode) > 0 : known(iv.target);
        const auto outside = std::find_if(iv.positions.begin(), iv.positions.end(),
            [&](int64_t p) { return p >= nPositions || (p < 0 && iv.positions.size() > 1); });
        if (!ok)
            warnings.push_back("the intervention on \"" + iv.target + "\" names no node or supernode of the graph");
        else if (outside != iv.positions.end())
            warnings.push_back("the intervention on \"" + iv.target + "\" is at position " + std::to_string(*outside)
                + ", outside the prompt's " + std::to_string(nPositions) + " tokens; dropped");
        else
            interventions.push_back(std::move(iv));
    }
    s.interventions = std::move(interventions);

    // Labels are keyed "L:F" (transcoder features) or "{basis}/L:F" (labelKey); another key is
    // no feature's and would never be shown: dropped with a warning.
    for (auto it = s.labels.begin(); it != s.labels.end();) {
        const size_t slash = it->first.find('/');
        const bool ok = slash == std::string::npos
            ? parseFeatureKey(it->first).has_value()
            : !it->first.substr(0, slash).empty() && cs::graph::isBasis(it->first.substr(0, slash))
                && parseFeatureKey(it->first.substr(slash + 1)).has_value();
        if (ok) {
            ++it;
        } else {
            warnings.push_back("the label key \"" + it->first
                + "\" is not LAYER:FEATURE or BASIS/LAYER:FEATURE (e.g. 3:1024, neurons/3:1024); dropped");
            it = s.labels.erase(it);
        }
    }
    return warnings;
}

// ---- Neuronpedia qParams -------------------------------------------------------------------

void stateToQParams(const ExplorerState& s, json& qParams, const std::string& basis)
{
    if (!qParams.is_object())
        qParams = json::object();
    qParams["pinnedIds"] = s.pinned;
    json supernodes = json::array();
    for (const Supernode& sn : s.supernodes) {
        json row = json::array({ sn.name });
        for (const std::string& m : sn.members)
            row.push_back(m);
        supernodes.push_back(std::move(row));
    }
    qParams["supernodes"] = std::move(supernodes);
    json clerps = json::array();
    const std::string prefix = basis.empty() ? std::string() : basis + "/";
    for (const auto& [key, text] : s.labels)
        if (auto lf
            = key.compare(0, prefix.size(), prefix) == 0 ? parseFeatureKey(key.substr(prefix.size())) : std::nullopt)
            clerps.push_back(json::array({ std::to_string(cs::graph::cantorPairing(lf->first, lf->second)), text }));
    qParams["clerps"] = std::move(clerps);
    qParams["clickedId"] = s.selected;
    qParams["hiddenIds"] = s.hidden;
    qParams["pruningThreshold"] = s.nodeThreshold;
}

ExplorerState stateFromQParams(const json& q, const Graph& graph)
{
    ExplorerState s;
    if (!q.is_object())
        return s;
    // An array of strings, or Neuronpedia's URL form "a,b,c".
    auto idList = [&](const char* key) {
        std::vector<std::string> out;
        auto it = q.find(key);
        if (it == q.end())
            return out;
        if (it->is_string()) {
            for (const std::string& part : split(it->get<std::string>(), ','))
                if (!part.empty())
                    out.push_back(part);
        } else if (it->is_array()) {
            for (const json& v : *it)
                if (v.is_string() && !v.get<std::string>().empty())
                    out.push_back(v.get<std::string>());
        }
        return out;
    };
    s.pinned = idList("pinnedIds");
    s.hidden = idList("hiddenIds");
    if (auto it = q.find("clickedId"); it != q.end() && it->is_string())
        s.selected = it->get<std::string>();
    if (auto it = q.find("supernodes"); it != q.end() && it->is_array()) {
        for (const json& row : *it) {
            if (!row.is_array() || row.empty() || !row[0].is_string())
                continue;
            Supernode sn;
            sn.name = row[0].get<std::string>();
            for (size_t k = 1; k < row.size(); ++k)
                if (row[k].is_string())
                    sn.members.push_back(row[k].get<std::string>());
            s.supernodes.push_back(std::move(sn));
        }
    }
    if (auto it = q.find("pruningThreshold"); it != q.end()) {
        double t = -1;
        if (it->is_number())
            t = it->get<double>();
        else if (it->is_string())
            t = std::strtod(it->get<std::string>().c_str(), nullptr);
        if (t >= 0 && t <= 1)
            s.nodeThreshold = t;
    }

    // clerps: feature keys -> our "{layer}:{feature}".
    if (auto it = q.find("clerps"); it != q.end()) {
        json clerps = *it;
        if (clerps.is_string())
            try { // Neuronpedia may store them as JSON text; text that is not (or nests too deep) is none
                clerps = parseJson(clerps.get<std::string>(), "qParams.clerps");
            } catch (const std::exception&) {
                clerps = json();
            }
        if (clerps.is_array()) {
            std::set<std::pair<int64_t, int64_t>> features;
            std::unordered_map<int64_t, std::set<int64_t>> layersOf; // feature index -> layers
            for (const Node& node : graph.nodes)
                if (node.kind == NodeKind::Feature) {
                    features.insert({ node.layer, node.feature });
                    layersOf[node.feature].insert(node.layer);
                }
            auto resolve = [&](const std::string& key) -> std::optional<std::pair<int64_t, int64_t>> {
                if (auto lf = parseFeatureKey(key))
                    return features.count(*lf) ? lf : std::nullopt;
                if (key.find('_') != std::string::npos) {
                    const auto parts = split(key, '_');
                    if (parts.size() == 3) {
                        auto l = parseInteger(parts[0]);
                        auto f = parseInteger(parts[1]);
                        if (l && f && features.count({ *l, *f }))
                            return std::make_pair(*l, *f);
                    }
                    return std::nullopt;
                }
                auto z = parseInteger(key);
                if (!z || *z < 0)
                    return std::nullopt;
                const auto lf = cs::graph::cantorUnpair(*z);
                if (features.count(lf))
                    return lf;
                auto layers = layersOf.find(*z);
                if (layers != layersOf.end() && layers->second.size() == 1)
                    return std::make_pair(*layers->second.begin(), *z);
                return std::nullopt;
            };
            for (const json& row : clerps) {
                if (!row.is_array() || row.size() < 2 || !row[1].is_string())
                    continue;
                std::string key;
                if (row[0].is_string())
                    key = row[0].get<std::string>();
                else if (row[0].is_number_integer())
                    key = std::to_string(row[0].get<int64_t>());
                else
                    continue;
                if (auto lf = resolve(key))
                    s.labels[labelKey(graph.metadata.basis, lf->first, lf->second)] = row[1].get<std::string>();
            }
        }
    }
    pruneStateToGraph(s, graph);
    return s;
}

// ---- files ----------------------------------------------------------------------------------

std::string sidecarPath(const std::string& sessionPath)
{
    return sidecarPaths(sessionPath).front();
}

std::vector<std::string> sidecarPaths(const std::string& sessionPath)
{
    const QString path = QString::fromStdString(sessionPath);
    std::vector<std::string> out;
    for (const QString& name : sidecarNames(path))
        out.push_back(QFileInfo(path).absoluteDir().filePath(name).toStdString());
    return out;
}

std::string sessionJsonText(const SessionData& data, bool indent)
{
    data.graph.validate();
    json doc = sessionHead(data);
    doc["graph"] = inlineGraph(data);
    doc["graph_nodes"] = graphNodesJson(data.graph);
    return dump(doc, indent);
}

SessionWriteStats writeSession(const std::string& path, const SessionData& data, const SessionWriteOptions& options)
{
    SessionWriteStats stats;
    QElapsedTimer clock;
    clock.start();
    const QString qpath = QString::fromStdString(path);
    if (QFileInfo(qpath).isDir())
        throw Error(path + ": cannot write the session: the path is a folder");
    try {
        data.graph.validate();
    } catch (const Error& e) {
        throw Error(path + ": cannot write the session: " + e.what());
    }
    json doc = sessionHead(data);
    // The sidecar the session on disk names stays untouched until the new session file is in
    // place: the new graph goes to the other of the two names. (Rewriting the one name in place
    // left, when the writer died between the sidecar's rename and the session's, the old
    // session file naming the new graph: the previous session, intact byte for byte, yet no
    // longer the session that was saved. tst_crash_consistency kills writers there.)
    const QString previousSidecar = namedSidecar(qpath);
    QString writtenSidecar;
    if (nonzeroEdges(data.graph) > options.sidecarEdgeThreshold) {
        const auto names = sidecarNames(qpath);
        writtenSidecar = previousSidecar == names[0] ? names[1] : names[0];
        const QString sidecar = QFileInfo(qpath).absoluteDir().filePath(writtenSidecar);
        cs::graph::writeGraphFile(sidecar.toStdString(), data.graph); // atomic; throws naming the path
        doc["graph_file"] = writtenSidecar.toStdString();
        stats.sidecar = true;
    } else {
        doc["graph"] = inlineGraph(data);
        doc["graph_nodes"] = graphNodesJson(data.graph);
    }
    const std::string text = dump(doc, options.indent);
    stats.serializeMs = static_cast<double>(clock.nsecsElapsed()) / 1e6;
    clock.restart();
    writeAtomically(path, text);
    // The previous save's sidecar is named by nothing now. Only a sidecar of ours (one of the two
    // names) is removed, never another file the old session happened to name.
    const auto names = sidecarNames(qpath);
    if (!previousSidecar.isEmpty() && previousSidecar != writtenSidecar
        && (previousSidecar == names[0] || previousSidecar == names[1]))
        QFile::remove(QFileInfo(qpath).absoluteDir().filePath(previousSidecar));
    stats.writeMs = static_cast<double>(clock.nsecsElapsed()) / 1e6;
    stats.bytes = static_cast<int64_t>(text.size());
    return stats;
}

SessionData readSession(const std::string& path)
{
    const QString qpath = QString::fromStdString(path);
    const QFileInfo info(qpath);
    if (!info.exists())
        throw Error(path + ": no such file");
    if (info.isDir())
        throw Error(path + ": is a folder, not a session file");
    // Only a regular file, at most kMaxDocumentFileBytes: a link to /dev/zero is refused, not read.
    const std::string bytes = cs::readFile(path, cs::kMaxDocumentFileBytes);
    if (bytes.empty())
        throw Error(path + ": the file is empty");

    json doc;
    try {
        doc = parseJson(bytes, path);
    } catch (const json::parse_error& e) {
        const bool atEnd = e.byte >= static_cast<size_t>(bytes.size());
        throw Error(path + ": not valid JSON at byte " + std::to_string(e.byte)
            + (atEnd ? " (the file ends early: truncated?)" : "") + ": " + e.what());
    } catch (const json::exception& e) {
        // A number out of range and the like.
        throw Error(path + ": not valid JSON: " + e.what());
    }

    const JsonReader c(path);
    try {
        if (!doc.is_object())
            c.fail("", "expected a JSON object at the top level, got " + jsonTypeName(doc));
        const std::string format = c.string(c.member(doc, "format", ""), "format");
        if (format != kSessionFormat)
            c.fail("format", "\"" + format + "\" is not a Circuitscope session (\"" + kSessionFormat + "\")");
        const int64_t version = c.integer(c.member(doc, "version", ""), "version");
        if (version > kSessionVersion)
            c.fail("version",
                "written by a newer Circuitscope (session version " + std::to_string(version)
                    + "; this one reads up to " + std::to_string(kSessionVersion) + ")");
        if (version < 1)
            c.fail("version", std::to_string(version) + " is not a session version");

        SessionData data;
        auto optionalString = [&](const char* key, std::string& out) {
            if (const json* v = c.optional(doc, key))
                out = c.text(*v, key);
        };
        optionalString("model", data.model);
        optionalString("transcoder", data.transcoder);
        optionalString("feature_store", data.featureStore);
        optionalString("device", data.device);
        optionalString("prompt", data.prompt);
        if (const json* v = c.optional(doc, "extra"))
            data.extra = *v;
        data.state = stateFromJson(c.member(doc, "state", ""), path);

        if (const json* name = c.optional(doc, "graph_file")) {
            const QString graphFile = QString::fromStdString(c.string(*name, "graph_file"));
            if (graphFile.isEmpty() || graphFile.contains(QLatin1Char('/')) || graphFile.contains(QLatin1Char('\\'))
                || graphFile == ".." || graphFile == ".")
                c.fail("graph_file", "\"" + graphFile.toStdString() + "\" is not a file name next to the session");
            const QString sidecar = info.absoluteDir().filePath(graphFile);
            if (!QFileInfo::exists(sidecar))
                c.fail("graph_file", "the graph file " + sidecar.toStdString() + " is missing");
            try {
                data.graph = cs::graph::readGraphFile(sidecar.toStdString());
            } catch (const Error& e) {
                c.fail("graph_file", e.what());
            }
        } else {
            if (!c.optional(doc, "graph"))
                c.fail("", "missing key \"graph\" (or \"graph_file\")");
            data.graph = readInlineGraph(c, doc);
        }
        data.warnings = pruneStateToGraph(data.state, data.graph);
        return data;
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        // nlohmann or ATen refusing something the checks above let through.
        throw Error(path + ": " + e.what());
    }
}

} // namespace cs::app
