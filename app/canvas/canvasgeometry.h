#pragma once
// The canvas's drawing as convex polygons of one colour each, in scene units: each edge a quad
// (two triangles) of its width, each node a polygon of its shape (circles as 16-gons) with rings
// for its flags beneath it. The same polygons feed both renderers: the GPU scene graph gets
// them as triangle fans in one QSGGeometryNode per layer (per-vertex colour,
// QSGVertexColorMaterial, 32-bit indices); the software scene graph (offscreen screenshots,
// tests, the benchmark) gets them scan-converted into an image (paintBatch).

#include "canvasscene.h"

#include <QImage>
#include <QPointF>
#include <QRectF>
#include <QSGGeometry>

#include <cstdint>
#include <vector>

namespace cs::app {

// Convex polygons, each one colour. Colours in the vertices are premultiplied, as
// QSGVertexColorMaterial expects.
struct PolygonBatch {
    std::vector<QSGGeometry::ColoredPoint2D> vertices;
    std::vector<uint32_t> starts { 0 }; // polygon i = vertices[starts[i], starts[i + 1])

    void clear();
    size_t polygonCount() const { return starts.size() - 1; }
    size_t vertexCount() const { return vertices.size(); }
    size_t triangleCount() const { return vertices.size() - 2 * polygonCount(); } // sum of (k - 2)
    void addPolygon(const QPointF* points, int count, QRgb color); // color unpremultiplied
    // Triangle-fan indices of every polygon: 3 * triangleCount() entries.
    void fillIndices(uint32_t* out) const;
    QRectF boundingRect() const;
};

// What the canvas draws for one scene: the base layers, rebuilt when the scene changes (edges
// not touching a selected node are faded by the scene's dimAlpha, those touching it drawn
// last), and the hover layers, rebuilt when the hovered node changes (its edges, brighter and
// wider, and the nodes they join, over everything).
struct CanvasLayers {
    PolygonBatch edges;
    PolygonBatch nodes;
};

// The scene's nodes' edge lists (both directions), for highlighting.
struct SceneAdjacency {
    std::vector<uint32_t> start; // [nodes + 1]
    std::vector<uint32_t> edges; // edge indices

    explicit SceneAdjacency(const CanvasScene& scene);
    SceneAdjacency() = default;
};

void appendNodeShape(PolygonBatch& batch, const CanvasNode& node, double grow, QRgb color);
// The node's rings (one per flag: search hit, intervened, pinned, selected, from the outside in)
// then its fill.
void appendNode(PolygonBatch& batch, const CanvasNode& node, const CanvasLook& look);
void appendEdge(PolygonBatch& batch, const CanvasScene& scene, const CanvasEdge& edge, double widthScale, QRgb color);

void buildBaseLayers(const CanvasScene& scene, const CanvasLook& look, CanvasLayers& out);
void buildHoverLayers(
    const CanvasScene& scene, const SceneAdjacency& adjacency, int hovered, const CanvasLook& look, CanvasLayers& out);

// Paints the polygons that meet `region` (scene units) into `image`, whose pixels cover region
// (pixel = (scene - region.topLeft) * scale), source-over, antialiased (4 sub-rows, exact
// horizontal coverage). The image must be ARGB32_Premultiplied.
void paintBatch(QImage& image, const PolygonBatch& batch, const QRectF& region, double scale);

} // namespace cs::app
