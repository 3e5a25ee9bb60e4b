#pragma once
// Figures of an attribution graph: what to draw (FigureSpec, built from a graph, its prune result
// and the user's ExplorerState), its Graphviz dot layout (FigureLayout, for the subgraph pane) and
// its export to SVG, PDF or PNG.
//
// Threading: Graphviz (cgraph/gvc) is not thread-safe. layoutFigure() and exportFigure() hold one
// process-wide mutex for every Graphviz call, so two calls never overlap; the controller runs them
// on one dedicated thread anyway so that the UI thread never waits on that mutex. buildFigure()
// and toDot() do not touch Graphviz and may run on any thread.
//
// Coordinates (FigureLayout): points (1/72 inch), origin at the top-left corner of the drawing's
// bounding box, y growing downwards (as Qt's scene), i.e. Graphviz's y-up coordinates flipped.
// Inputs (embeddings) sit at the bottom (largest y), logits at the top.

#include "explorerstate.h"
#include "tokentext.h" // visibleToken, visibleText: how the figure writes tokens and labels

#include <cs/graph.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace cs::app {

enum class FigureNodeKind { Feature, Error, Embedding, Logit, Supernode };

const char* figureNodeKindName(FigureNodeKind kind); // "feature", ..., "supernode"

enum class FigureTheme { Light, Dark };

struct FigureNode {
    // The graph node id (cs::graph::nodeId), or "supernode:NAME" for a supernode.
    std::string id;
    // Plain text, lines separated by '\n'; escaped for Graphviz by toDot(), never here.
    std::string label;
    FigureNodeKind kind = FigureNodeKind::Feature;
    // The rank key: the graph layer (-1 embeddings, n_layers logits); a supernode's is its
    // members' mean layer. Nodes with equal layers share one rank, ranks ordered by layer.
    double layer = 0;
    double position = 0; // the token position (a supernode's: its members' mean)
    std::string fillColor; // "#rrggbb"; empty: defaultFillColor(kind, the spec's theme)
    bool pinned = false;
    bool intervened = false; // drawn with a marked border
    std::string annotation; // e.g. "ablated", "×−2", "= 5"; empty when none
    // Lines describing a feature nobody labelled (made from its card): drawn under `label` in
    // grey italics, so an automatic caption never passes for a user's label.
    std::string autoLabel;
    std::vector<std::string> members; // a supernode's member node ids (those drawn)
};

struct FigureEdge {
    std::string source; // FigureNode ids
    std::string target;
    // The direct effect of source on target (a supernode's: the sum over its members).
    double weight = 0;
};

struct FigureSpec {
    std::vector<FigureNode> nodes;
    std::vector<FigureEdge> edges;
    std::string title; // one line on top (the prompt by default)
    std::string caption; // below the title (the model, the scores); may hold '\n'
    std::vector<std::string> notes; // below the caption, one per line (the interventions)
    FigureTheme theme = FigureTheme::Light;
    bool legend = true; // a key to node shapes and edge colours under the heading

    // Index of the node with this id, or -1.
    int indexOf(const std::string& id) const;
};

enum class FigureScope {
    Subgraph, // the pinned nodes (and supernode members), edges from the full adjacency
    PrunedGraph, // the nodes the prune result keeps, minus hidden ones; only kept edges
};

struct FigureOptions {
    // The feature store's label of a feature; may be empty (then no store label). The user's
    // labels (ExplorerState::labels) win over the graph's own label (Node::label, e.g. an
    // imported clerp), which wins over this.
    std::function<std::string(int64_t layer, int64_t feature)> featureLabel;
    // The automatic description of a feature nobody labelled (cs::features::describe); shown
    // apart from labels (FigureNode::autoLabel). May be empty.
    std::function<std::string(int64_t layer, int64_t feature)> autoCaption;
    std::string title; // empty: the graph's prompt
    std::string scores; // e.g. "replacement 0.81 · completeness 0.93"; goes into the caption
    FigureTheme theme = FigureTheme::Light;
    // A supernode lists its members' short names (up to 6) under its name; otherwise it shows
    // the member count.
    bool supernodeMemberLabels = false;
    // Labels are wrapped at this many characters per line, at most this many lines.
    int wrapColumns = 28;
    int maxLabelLines = 3;
};

// Builds the figure of `graph` for `scope`. Ids in `state` that the graph does not hold are
// skipped. Supernode members in the scope become one node; its edges are the sums of the
// members' adjacency entries (adjacency[t, s]: effect of source s on target t), edges inside
// one supernode are dropped, as are edges whose sum is 0. Interventions (enabled ones) mark
// their target node, or the supernode holding it, and are listed in the notes.
// Subgraph ignores state.hidden (pinning is the user's explicit choice). Throws cs::Error for
// a prune result whose sizes do not match the graph.
FigureSpec buildFigure(const cs::graph::Graph& graph, const cs::graph::PruneResult& pruned, const ExplorerState& state,
    FigureScope scope, const FigureOptions& options = {});

// The spec as Graphviz DOT text: rankdir=BT, one rank=same group per layer chained by invisible
// anchor nodes (so layer order holds even between unconnected layers), nodes named n{i} for
// spec.nodes[i] with id = the FigureNode id, every label escaped. Pure string code; no Graphviz.
std::string toDot(const FigureSpec& spec);

struct FigurePoint {
    double x = 0;
    double y = 0;
};

struct FigureLayoutNode {
    std::string id; // FigureNode::id
    double x = 0; // centre, points, y down
    double y = 0;
    double width = 0; // points
    double height = 0;
};

struct FigureLayoutEdge {
    std::string source;
    std::string target;
    double weight = 0;
    // Cubic Bezier control points: p0, then (c1, c2, p) triples, y down. The curve ends at the
    // arrowhead's base; arrowTip is the point of the arrow (at the target's border).
    std::vector<FigurePoint> points;
    FigurePoint arrowTip;
};

struct FigureLayout {
    // nodes[i] is spec.nodes[i]; edges[j] is spec.edges[j].
    std::vector<FigureLayoutNode> nodes;
    std::vector<FigureLayoutEdge> edges;
    double width = 0; // the bounding box (title included), points
    double height = 0;
    double padding = 0; // the margin an export adds on every side, points
};

// Lays the spec out with dot. Throws cs::Error for an empty spec or a Graphviz failure.
FigureLayout layoutFigure(const FigureSpec& spec);

enum class FigureFormat { Svg, Pdf, Png };

// ".svg", ".pdf", ".png" (any case). Throws cs::Error naming the path for anything else.
FigureFormat formatFromPath(const std::string& path);

struct ExportOptions {
    double dpi = 300; // PNG only: pixels = (layout size + 2 padding) * dpi / 72
};

// Lays out and renders the figure (SVG: Graphviz's own SVG, text as <text>; PDF and PNG: cairo),
// writing a temporary sibling of `path` that is renamed over it only when rendering succeeded,
// so a failed export leaves an existing file untouched. Throws cs::Error naming the path and the
// cause: an empty figure, a folder that cannot be written, a renderer that is not installed,
// or what Graphviz reported.
void exportFigure(
    const FigureSpec& spec, const std::string& path, FigureFormat format, const ExportOptions& options = {});

// Helpers, exposed for the canvas and the tests.

// The fill of a node kind in a theme ("#rrggbb"); node text is dark on light, light on dark.
std::string defaultFillColor(FigureNodeKind kind, FigureTheme theme);

// A short number: up to 3 significant digits, U+2212 for the minus sign ("−2", "0.125", "1.5e+03").
std::string formatNumber(double value);

} // namespace cs::app
