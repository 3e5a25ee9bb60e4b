#pragma once
// What the graph canvas draws: nodes and edges in scene coordinates, built once per graph
// snapshot (prune result, explorer state, theme) and shared, immutable, between the controller
// and the canvas as std::shared_ptr<const CanvasScene>. Scene coordinates: y grows downwards
// (as the item's), one unit is one pixel at zoom 1.

#include "explorerstate.h"

#include <cs/graph.h>

#include <QRectF>
#include <QRgb>
#include <QString>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace cs::app {

enum class NodeShape : uint8_t {
    Circle, // a transcoder feature
    Diamond, // an error node
    Square, // a token embedding or a logit
    RoundedBox, // a supernode (or any other group)
};

// Per-node marks; the canvas draws a ring for each of Selected, Pinned, SearchHit, Intervened and
// fades Dimmed nodes.
enum NodeFlag : uint8_t {
    NodeSelected = 1,
    NodePinned = 2,
    NodeDimmed = 4,
    NodeSearchHit = 8,
    NodeIntervened = 16,
};

struct CanvasNode {
    int64_t graphIndex = -1; // index into the source graph's nodes; -1 for supernodes and the like
    std::string id; // the graph node id (cs::graph::nodeId) or a supernode's "supernode:NAME"
    double x = 0; // centre, scene units
    double y = 0;
    double radius = 6; // half the width of the shape, scene units
    NodeShape shape = NodeShape::Circle;
    QRgb fill = 0; // unpremultiplied ARGB; 0 = the style's colour for the shape (buildLayoutScene)
    uint8_t flags = 0; // NodeFlag bits
    QString caption; // shown next to the node when not empty
    QString tooltip; // several lines
};

struct CanvasEdge {
    int32_t source = 0; // slots in CanvasScene::nodes
    int32_t target = 0;
    float weight = 0; // the signed direct effect
    float width = 1; // scene units
    QRgb color = 0; // unpremultiplied ARGB
};

// How flags and highlights are drawn; part of the scene so that a theme change is one new scene.
struct CanvasLook {
    QRgb selectedRing = qRgb(0x11, 0x11, 0x11);
    QRgb pinnedRing = qRgb(0x2c, 0xa0, 0x2c);
    QRgb searchHitRing = qRgb(0xff, 0xc1, 0x07);
    QRgb intervenedRing = qRgb(0x94, 0x3b, 0xd0);
    QRgb hoverRing = qRgb(0xff, 0x8c, 0x00);
    double ringWidth = 2; // scene units, per ring
    double fadeAlpha = 0.25; // edges away from the selected node
    double hoverWidthScale = 1.6; // hovered edges' width factor
};

// A label of the canvas's axes: a token position's column (at `at` = its centre x, `extent` =
// its half width) or a layer's row (`at` = its y, `extent` = half its height), scene units.
struct AxisTick {
    double at = 0;
    double extent = 0;
    QString text;
};

struct CanvasScene {
    std::vector<CanvasNode> nodes;
    // The token axis (one tick per position, left to right) and the layer axis (one per row,
    // "Emb", "L0" .., "Out"), drawn by the view pinned to its bottom and left edges. Empty for
    // scenes without a layer grid.
    std::vector<AxisTick> columns;
    std::vector<AxisTick> rows;
    std::vector<CanvasEdge> edges; // in drawing order (weakest first, so strong edges lie on top)
    QRectF bounds; // every node's shape and a margin, scene units
    CanvasLook look;

    // The slot of the node with this id, or -1 (linear; the canvas keeps its own index).
    int slotOf(const std::string& id) const;
};

// How scenes look and are laid out; the theme fills the colours (light or dark).
struct SceneStyle {
    QRgb featureFill = qRgb(0xa6, 0xbd, 0xd7);
    QRgb errorFill = qRgb(0x9e, 0x9e, 0x9e);
    QRgb embeddingFill = qRgb(0x8f, 0xc9, 0x8f);
    QRgb logitFill = qRgb(0xe3, 0xa8, 0x5b);
    QRgb supernodeFill = qRgb(0xc7, 0xb3, 0xe0);
    QRgb positiveEdge = qRgba(0x1f, 0x77, 0xb4, 0xb0); // edges with weight > 0
    QRgb negativeEdge = qRgba(0xd6, 0x27, 0x28, 0xb0); // edges with weight < 0
    double dimAlpha = 0.25; // alpha factor of dimmed nodes
    CanvasLook look; // rings, fading and hover, copied into the scene

    double nodeRadius = 6; // scene units
    double supernodeRadius = 14;
    double nodeSpacing = 16; // between the centres of nodes side by side in one cell
    double columnPadding = 14; // added to each position's column
    double minColumnWidth = 40;
    double rowHeight = 56; // between layers (the least; rows grow to fill the view)
    // The view's height / width (0: unknown): rows are spread so that the scene's aspect ratio
    // matches it, and the graph fills its pane after a fit instead of a thin band.
    double viewAspect = 0;
    int maxPerRow = 4; // nodes of one (layer, position) cell side by side; more stack in sub-rows
    double subRowHeight = 16; // between a cell's sub-rows
    // Each position's column is at least as wide as its token label needs (at zoom 1): about
    // charWidth per character, at most maxLabelChars characters (longer labels are elided).
    double charWidth = 6.5;
    int maxLabelChars = 12;
    // Positions where nothing but the embedding is shown take collapsedColumnWidth.
    bool collapseEmptyPositions = false;
    double collapsedColumnWidth = 8;
    // Past this many positions, columns are not widened for their labels (the axis elides them):
    // a long prompt is laid out by its nodes.
    int labelledPositions = 40;
    double minEdgeWidth = 0.4; // scene units: the weakest input of a target ...
    double maxEdgeWidth = 3.0; // ... and its strongest
    double margin = 24; // around the bounds

    // The feature store's label of (layer, feature), used for pinned and selected features the
    // user has not labelled; may be empty, and may return an empty string.
    std::function<QString(int64_t layer, int64_t feature)> labelFunction;
};

// The main graph, laid out as circuit-tracer's and Neuronpedia's graph views: one row per layer
// (embeddings at the bottom, then layer 0 .. n_layers-1, logits on top), one column per token
// position (left to right, each as wide as its most crowded cell needs), the nodes of one
// (layer, position) cell side by side in order of influence (then node index). Shows the nodes
// pruned.nodeMask keeps that are not in state.hidden, and the edges pruned.edgeMask keeps between
// them; an edge's width is min..max width by |w| over the largest |w| among its target's shown
// inputs, its colour by sign. searchHits, when given, is indexed like graph.nodes.
std::shared_ptr<const CanvasScene> buildGraphScene(const cs::graph::Graph& graph, const cs::graph::PruneResult& pruned,
    const ExplorerState& state, const SceneStyle& style, const std::vector<bool>* searchHits = nullptr);

// An edge between two slots of an explicitly laid-out scene.
struct LayoutEdge {
    int32_t source = 0;
    int32_t target = 0;
    float weight = 0;
};

// A scene with positions computed elsewhere (a Graphviz layout of the subgraph): the nodes as
// given (a fill of 0 takes the style's colour for the shape, a radius <= 0 the style's radius),
// edges sized and coloured as buildGraphScene's, bounds computed. Edges with an end out of range
// or a zero weight are dropped.
std::shared_ptr<const CanvasScene> buildLayoutScene(
    std::vector<CanvasNode> nodes, const std::vector<LayoutEdge>& edges, const SceneStyle& style);

// A random layered scene for benchmarks and tests: `nodes` nodes in rows of a grid, `edges`
// edges from a node to one in a higher row (every node gets a caption-free tooltip), mixed
// shapes, weights of both signs. Deterministic in seed.
std::shared_ptr<const CanvasScene> makeSyntheticScene(int nodes, int edges, uint32_t seed);

// Edge width and colour from the weights: per target, |w| / max |w| over its inputs mapped to
// style's min..max width; colour by sign. Also sorts edges weakest first. Shared by the builders.
void styleEdges(std::vector<CanvasEdge>& edges, size_t nodeCount, const SceneStyle& style);
// The bounding box of every node's shape, plus style.margin.
QRectF sceneBounds(const std::vector<CanvasNode>& nodes, double margin);

} // namespace cs::app
