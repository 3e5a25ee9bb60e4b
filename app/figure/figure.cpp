#include "figure.h"

#include "cs/utf8.h"

#include <cs/error.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <unordered_map>
#include <unordered_set>

namespace cs::app {

using cs::graph::Graph;
using cs::graph::Node;
using cs::graph::NodeKind;

const char* figureNodeKindName(FigureNodeKind kind)
{
    switch (kind) {
    case FigureNodeKind::Feature:
        return "feature";
    case FigureNodeKind::Error:
        return "error";
    case FigureNodeKind::Embedding:
        return "embedding";
    case FigureNodeKind::Logit:
        return "logit";
    case FigureNodeKind::Supernode:
        return "supernode";
    }
    return "feature";
}

int FigureSpec::indexOf(const std::string& id) const
{
    for (size_t i = 0; i < nodes.size(); ++i) {
        if (nodes[i].id == id)
            return static_cast<int>(i);
    }
    return -1;
}

namespace {

// The code points of valid UTF-8 text, each as its byte string.
std::vector<std::string> splitCodePoints(const std::string& utf8)
{
    std::vector<std::string> out;
    size_t i = 0;
    while (i < utf8.size()) {
        const size_t length = std::max<size_t>(1, cs::utf8::sequenceLength(utf8, i));
        out.push_back(utf8.substr(i, length));
        i += length;
    }
    return out;
}

// Word wrap at `columns` code points per line, at most `maxLines` lines (the last one ends in
// "…" when text was cut). Words longer than a line are broken.
std::vector<std::string> wrapText(const std::string& text, int columns, int maxLines)
{
    columns = std::max(columns, 4);
    maxLines = std::max(maxLines, 1);
    std::vector<std::string> lines;
    std::vector<std::string> current;
    bool truncated = false;
    const std::vector<std::string> cps = splitCodePoints(text);
    size_t i = 0;
    auto flush = [&]() {
        while (!current.empty() && current.back() == " ")
            current.pop_back();
        std::string line;
        for (const std::string& c : current)
            line += c;
        lines.push_back(line);
        current.clear();
    };
    while (i < cps.size()) {
        if (static_cast<int>(lines.size()) == maxLines) {
            truncated = true;
            break;
        }
        // The next word (and the space before it).
        size_t end = i;
        while (end < cps.size() && cps[end] == " ")
            ++end;
        while (end < cps.size() && cps[end] != " ")
            ++end;
        const size_t wordLength = end - i;
        if (current.size() + wordLength <= static_cast<size_t>(columns)) {
            current.insert(current.end(), cps.begin() + static_cast<long>(i), cps.begin() + static_cast<long>(end));
            i = end;
        } else if (current.empty()) {
            // A word longer than a line: break it.
            while (i < cps.size() && cps[i] == " ")
                ++i;
            const size_t take = std::min(static_cast<size_t>(columns), cps.size() - i);
            current.insert(
                current.end(), cps.begin() + static_cast<long>(i), cps.begin() + static_cast<long>(i + take));
            i += take;
            flush();
        } else {
            flush();
            while (i < cps.size() && cps[i] == " ")
                ++i;
        }
    }
    if (!current.empty())
        flush();
    if (truncated && !lines.empty()) {
        std::vector<std::string> last = splitCodePoints(lines.back());
        while (!last.empty() && static_cast<int>(last.size()) >= columns)
            last.pop_back();
        std::string line;
        for (const std::string& c : last)
            line += c;
        lines.back() = line + "\u2026";
    }
    return lines;
}

std::string join(const std::vector<std::string>& parts, const std::string& separator)
{
    std::string out;
    for (size_t i = 0; i < parts.size(); ++i) {
        if (i > 0)
            out += separator;
        out += parts[i];
    }
    return out;
}

} // namespace

std::string defaultFillColor(FigureNodeKind kind, FigureTheme theme)
{
    const bool dark = theme == FigureTheme::Dark;
    switch (kind) {
    case FigureNodeKind::Feature:
        return dark ? "#27405e" : "#dbe8f7";
    case FigureNodeKind::Error:
        return dark ? "#3c3c3c" : "#e4e4e4";
    case FigureNodeKind::Embedding:
        return dark ? "#254a33" : "#d9f0df";
    case FigureNodeKind::Logit:
        return dark ? "#5a4a1c" : "#fbefc6";
    case FigureNodeKind::Supernode:
        return dark ? "#45305e" : "#e9def8";
    }
    return dark ? "#27405e" : "#dbe8f7";
}

namespace {

// A token as a reader writes it: " basketball" is "basketball"; one that is only whitespace
// (or empty) keeps its visible marks (␣, ⏎).
std::string tokenAsText(const std::string& token)
{
    const std::string shown = visibleText(token);
    size_t begin = 0, end = shown.size();
    while (begin < end && shown[begin] == ' ')
        ++begin;
    while (end > begin && shown[end - 1] == ' ')
        --end;
    return begin < end ? shown.substr(begin, end - begin) : visibleToken(token);
}

FigureNodeKind figureKind(NodeKind kind)
{
    switch (kind) {
    case NodeKind::Feature:
        return FigureNodeKind::Feature;
    case NodeKind::Error:
        return FigureNodeKind::Error;
    case NodeKind::Embedding:
        return FigureNodeKind::Embedding;
    case NodeKind::Logit:
        return FigureNodeKind::Logit;
    }
    return FigureNodeKind::Feature;
}

struct Labeler {
    const Graph& graph;
    const ExplorerState& state;
    const FigureOptions& options;

    // The user's label, the graph's own, or the store's; empty when none.
    std::string featureLabel(const Node& node) const
    {
        const auto user = state.labels.find(labelKey(graph.metadata.basis, node.layer, node.feature));
        if (user != state.labels.end() && !user->second.empty())
            return user->second;
        if (!node.label.empty())
            return node.label;
        if (options.featureLabel)
            return options.featureLabel(node.layer, node.feature);
        return {};
    }

    // The automatic description, when the feature has no label of anyone's.
    std::string autoCaption(const Node& node) const
    {
        if (!featureLabel(node).empty() || !options.autoCaption)
            return {};
        return options.autoCaption(node.layer, node.feature);
    }

    std::string promptToken(int64_t position) const
    {
        const auto& tokens = graph.metadata.promptTokens;
        if (position >= 0 && position < static_cast<int64_t>(tokens.size()))
            return tokenAsText(tokens[static_cast<size_t>(position)]);
        return {};
    }

    // A unit graph's nodes are the model's own units ("neuron L2 #311"); its error nodes the
    // layer's other units.
    std::string unitPrefix() const
    {
        return graph.metadata.basis.empty() ? std::string() : unitNoun(graph.metadata.basis) + " ";
    }
    std::string errorName() const { return graph.metadata.basis.empty() ? "Err L" : "other units L"; }

    // One line naming the node (notes, supernode member lists).
    std::string shortName(const Node& node) const
    {
        switch (node.kind) {
        case NodeKind::Feature:
            return unitPrefix() + "L" + std::to_string(node.layer) + " #" + std::to_string(node.feature);
        case NodeKind::Error:
            return errorName() + std::to_string(node.layer) + " @" + std::to_string(node.position);
        case NodeKind::Embedding:
            return tokenAsText(node.token) + " @" + std::to_string(node.position);
        case NodeKind::Logit:
            return "logit " + tokenAsText(node.token);
        }
        return {};
    }

    std::string fullLabel(const Node& node) const
    {
        std::vector<std::string> lines;
        switch (node.kind) {
        case NodeKind::Feature: {
            const std::string token = promptToken(node.position);
            lines.push_back(unitPrefix() + "L" + std::to_string(node.layer) + " #" + std::to_string(node.feature) + " @"
                + std::to_string(node.position) + (token.empty() ? "" : " " + token));
            const std::string label = visibleText(featureLabel(node));
            if (!label.empty()) {
                for (const std::string& line : wrapText(label, options.wrapColumns, options.maxLabelLines))
                    lines.push_back(line);
            }
            break;
        }
        case NodeKind::Error: {
            lines.push_back(errorName() + std::to_string(node.layer));
            const std::string token = promptToken(node.position);
            lines.push_back("pos " + std::to_string(node.position) + (token.empty() ? "" : " " + token));
            break;
        }
        case NodeKind::Embedding:
            lines.push_back(tokenAsText(node.token));
            lines.push_back("pos " + std::to_string(node.position));
            break;
        case NodeKind::Logit:
            lines.push_back(tokenAsText(node.token));
            lines.push_back("p = " + formatNumber(node.tokenProb));
            break;
        }
        return join(lines, "\n");
    }
};

std::string interventionText(const Intervention& intervention)
{
    std::string text;
    switch (intervention.op) {
    case InterventionOp::Ablate:
        text = "ablated";
        break;
    case InterventionOp::Scale:
        text = "\u00D7" + formatNumber(intervention.value); // ×
        break;
    case InterventionOp::Inject:
        text = "= " + formatNumber(intervention.value);
        break;
    case InterventionOp::Add:
        text = "+ " + formatNumber(intervention.value);
        break;
    }
    if (intervention.positions == std::vector<int64_t> { -1 }) {
        text += " @all";
    } else if (!intervention.positions.empty()) {
        std::vector<std::string> positions;
        for (int64_t p : intervention.positions)
            positions.push_back(std::to_string(p));
        text += " @" + join(positions, ",");
    }
    if (intervention.free)
        text += " free";
    return text;
}

} // namespace

std::string formatNumber(double value)
{
    if (!std::isfinite(value))
        return std::isnan(value) ? "nan" : (value > 0 ? "\u221E" : "\u2212\u221E");
    char buffer[32];
    std::snprintf(buffer, sizeof buffer, "%.3g", std::fabs(value));
    std::string text = buffer;
    if (value < 0 && text != "0")
        text = "\u2212" + text; // − MINUS SIGN
    return text;
}

FigureSpec buildFigure(const Graph& graph, const cs::graph::PruneResult& pruned, const ExplorerState& state,
    FigureScope scope, const FigureOptions& options)
{
    const int64_t n = graph.size();
    std::unordered_map<std::string, int64_t> indexById;
    indexById.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
        indexById.emplace(cs::graph::nodeId(graph, i), i);

    if (scope == FigureScope::PrunedGraph) {
        if (static_cast<int64_t>(pruned.nodeMask.size()) != n)
            throw Error("figure: the prune result has " + std::to_string(pruned.nodeMask.size())
                + " node flags for a graph of " + std::to_string(n) + " nodes");
        if (static_cast<int64_t>(pruned.edgeMask.size()) != graph.adjacency.nnz())
            throw Error("figure: the prune result's edge mask has " + std::to_string(pruned.edgeMask.size())
                + " flags for a graph of " + std::to_string(graph.adjacency.nnz()) + " edges");
    }
    if (graph.adjacency.size() != n)
        throw Error("figure: the graph's adjacency is not [" + std::to_string(n) + ", " + std::to_string(n) + "]");

    // The graph nodes in scope, in graph order (so the figure does not depend on pin order).
    std::vector<bool> inScope(static_cast<size_t>(n), false);
    if (scope == FigureScope::Subgraph) {
        for (const std::string& id : state.pinned) {
            const auto it = indexById.find(id);
            if (it != indexById.end())
                inScope[static_cast<size_t>(it->second)] = true;
        }
        // Supernode members are pinned by definition; take them even if the pin list lags.
        for (const Supernode& supernode : state.supernodes) {
            for (const std::string& id : supernode.members) {
                const auto it = indexById.find(id);
                if (it != indexById.end())
                    inScope[static_cast<size_t>(it->second)] = true;
            }
        }
    } else {
        for (int64_t i = 0; i < n; ++i)
            inScope[static_cast<size_t>(i)] = pruned.nodeMask[static_cast<size_t>(i)];
        for (const std::string& id : state.hidden) {
            const auto it = indexById.find(id);
            if (it != indexById.end())
                inScope[static_cast<size_t>(it->second)] = false;
        }
    }

    const Labeler labeler { graph, state, options };
    FigureSpec spec;
    spec.theme = options.theme;

    // Every graph node in scope maps to one figure node: its supernode's or its own.
    std::vector<int> groupOf(static_cast<size_t>(n), -1);
    std::vector<std::vector<int64_t>> membersOf; // figure node -> graph nodes
    for (const Supernode& supernode : state.supernodes) {
        std::vector<int64_t> members;
        for (const std::string& id : supernode.members) {
            const auto it = indexById.find(id);
            if (it == indexById.end() || !inScope[static_cast<size_t>(it->second)]
                || groupOf[static_cast<size_t>(it->second)] >= 0)
                continue; // not drawn, or already in an earlier supernode
            members.push_back(it->second);
            groupOf[static_cast<size_t>(it->second)] = static_cast<int>(spec.nodes.size());
        }
        if (members.empty())
            continue;
        FigureNode node;
        node.id = supernodeTarget(supernode.name);
        node.kind = FigureNodeKind::Supernode;
        double layerSum = 0;
        double positionSum = 0;
        std::vector<std::string> lines { visibleText(supernode.name) };
        for (int64_t m : members) {
            const Node& member = graph.nodes[static_cast<size_t>(m)];
            layerSum += static_cast<double>(member.layer);
            positionSum += static_cast<double>(member.position);
            node.members.push_back(cs::graph::nodeId(graph, m));
        }
        node.layer = layerSum / static_cast<double>(members.size());
        node.position = positionSum / static_cast<double>(members.size());
        if (options.supernodeMemberLabels) {
            const size_t shown = std::min<size_t>(members.size(), 6);
            for (size_t k = 0; k < shown; ++k) {
                const Node& member = graph.nodes[static_cast<size_t>(members[k])];
                std::string line = labeler.shortName(member);
                if (member.kind == NodeKind::Feature) {
                    const std::string label = visibleText(labeler.featureLabel(member));
                    if (!label.empty())
                        line += ": " + wrapText(label, options.wrapColumns, 1).front();
                }
                lines.push_back(line);
            }
            if (members.size() > shown)
                lines.push_back("+" + std::to_string(members.size() - shown) + " more");
        } else {
            lines.push_back(std::to_string(members.size()) + (members.size() == 1 ? " member" : " members"));
        }
        node.label = join(lines, "\n");
        node.fillColor = defaultFillColor(node.kind, options.theme);
        node.pinned = true;
        spec.nodes.push_back(std::move(node));
        membersOf.push_back(std::move(members));
    }
    for (int64_t i = 0; i < n; ++i) {
        if (!inScope[static_cast<size_t>(i)] || groupOf[static_cast<size_t>(i)] >= 0)
            continue;
        const Node& graphNode = graph.nodes[static_cast<size_t>(i)];
        FigureNode node;
        node.id = cs::graph::nodeId(graph, i);
        node.kind = figureKind(graphNode.kind);
        node.layer = static_cast<double>(graphNode.layer);
        node.position = static_cast<double>(graphNode.position);
        node.label = labeler.fullLabel(graphNode);
        if (graphNode.kind == NodeKind::Feature) {
            const std::string described = visibleText(labeler.autoCaption(graphNode));
            if (!described.empty())
                node.autoLabel = join(wrapText(described, options.wrapColumns, options.maxLabelLines), "\n");
        }
        node.fillColor = defaultFillColor(node.kind, options.theme);
        node.pinned = std::find(state.pinned.begin(), state.pinned.end(), node.id) != state.pinned.end();
        groupOf[static_cast<size_t>(i)] = static_cast<int>(spec.nodes.size());
        spec.nodes.push_back(std::move(node));
        membersOf.push_back({ i });
    }

    // Edges: sums over member pairs. Row t of the adjacency holds t's sources.
    const bool masked = scope == FigureScope::PrunedGraph;
    std::vector<int64_t> drawn; // graph nodes in the figure
    for (int64_t i = 0; i < n; ++i) {
        if (groupOf[static_cast<size_t>(i)] >= 0)
            drawn.push_back(i);
    }
    std::map<std::pair<int, int>, double> sums; // (source group, target group) -> weight
    for (int64_t t : drawn) {
        const int tg = groupOf[static_cast<size_t>(t)];
        const cs::graph::Adjacency::Row row = graph.adjacency.row(t);
        for (int64_t k = 0; k < row.size; ++k) {
            const int sg = groupOf[static_cast<size_t>(row.columns[k])];
            if (sg < 0 || sg == tg || (masked && !pruned.edgeMask[static_cast<size_t>(row.entry(k))]))
                continue;
            sums[{ sg, tg }] += static_cast<double>(row.values[k]);
        }
    }
    for (const auto& [ends, weight] : sums) {
        if (weight == 0)
            continue;
        spec.edges.push_back({ spec.nodes[static_cast<size_t>(ends.first)].id,
            spec.nodes[static_cast<size_t>(ends.second)].id, weight });
    }

    // Interventions: annotate the drawn node (or the supernode holding the target); list all.
    std::vector<std::vector<std::string>> annotations(spec.nodes.size());
    for (const Intervention& intervention : state.interventions) {
        const std::string text = interventionText(intervention);
        std::string name = intervention.target;
        int group = -1;
        std::string memberPrefix;
        if (const auto supernode = supernodeOfTarget(intervention.target)) {
            name = visibleText(*supernode);
            group = spec.indexOf(intervention.target);
        } else if (const auto it = indexById.find(intervention.target); it != indexById.end()) {
            name = labeler.shortName(graph.nodes[static_cast<size_t>(it->second)]);
            group = groupOf[static_cast<size_t>(it->second)];
            if (group >= 0 && spec.nodes[static_cast<size_t>(group)].kind == FigureNodeKind::Supernode)
                memberPrefix = name + ": ";
        } else {
            name = visibleText(intervention.target);
        }
        spec.notes.push_back(name + ": " + text + (intervention.enabled ? "" : " (off)"));
        if (intervention.enabled && group >= 0) {
            annotations[static_cast<size_t>(group)].push_back(memberPrefix + text);
            spec.nodes[static_cast<size_t>(group)].intervened = true;
        }
    }
    for (size_t i = 0; i < spec.nodes.size(); ++i)
        spec.nodes[i].annotation = join(annotations[i], "; ");
    if (!spec.notes.empty())
        spec.notes.insert(spec.notes.begin(), "Interventions:");

    // The pruned graph's figure leaves out embeddings no kept edge leaves from: the token axis
    // shows the tokens the circuit reads.
    if (scope == FigureScope::PrunedGraph) {
        std::unordered_set<std::string> linked;
        for (const FigureEdge& edge : spec.edges) {
            linked.insert(edge.source);
            linked.insert(edge.target);
        }
        spec.nodes.erase(std::remove_if(spec.nodes.begin(), spec.nodes.end(),
                             [&](const FigureNode& node) {
                                 return node.kind == FigureNodeKind::Embedding && !node.pinned && !node.intervened
                                     && !linked.count(node.id);
                             }),
            spec.nodes.end());
    }

    // Title and caption.
    const std::string title = options.title.empty() ? graph.metadata.prompt : options.title;
    spec.title = join(wrapText(visibleText(title), 90, 3), "\n");
    std::vector<std::string> model; // the model and the scores on one line, the scope below
    if (!graph.metadata.scan.empty())
        model.push_back(visibleText(graph.metadata.scan));
    if (!options.scores.empty())
        model.push_back(visibleText(options.scores));
    std::vector<std::string> caption;
    if (!model.empty())
        caption.push_back(join(model, " \u00B7 "));
    if (scope == FigureScope::PrunedGraph)
        caption.push_back("pruned: node threshold " + formatNumber(state.nodeThreshold) + ", edge threshold "
            + formatNumber(state.edgeThreshold));
    else
        caption.push_back("subgraph: direct edges among the pinned nodes");
    spec.caption = join(caption, "\n");
    return spec;
}

} // namespace cs::app
