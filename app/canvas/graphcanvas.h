#pragma once
// GraphCanvas: a QQuickItem drawing a CanvasScene through the scene graph. Every edge of the
// scene is one quad in ONE QSGGeometryNode (per-vertex colour, QSGVertexColorMaterial, 32-bit
// indices), every node shape likewise in one more, and the hovered node's edges and ends in two
// small ones over them; all under a QSGTransformNode holding the view, so panning and zooming
// change a matrix only. Geometry is rebuilt when the scene or the hovered node changes. Under
// the software scene graph (offscreen screenshots, tests, the benchmark) the same polygons are
// painted into an image covering the view and a margin around it, again under the transform:
// panning within the margin changes the matrix only; zooming or leaving the margin repaints.
// Picking goes through a uniform grid (SpatialIndex) in scene coordinates.
//
// View: the scene point (centerX, centerY) sits at the item's centre, scaled by zoom:
//   item = (scene - center) * zoom + (width, height) / 2.

#include "canvasgeometry.h"
#include "canvasindex.h"
#include "canvasscene.h"
#include "canvasscenesource.h"
#include "captionmodel.h"

#include <QPointer>
#include <QQuickItem>
#include <QtQml/qqmlregistration.h>

#include <memory>

namespace cs::app {

class GraphCanvas : public QQuickItem {
    Q_OBJECT
    QML_ELEMENT
    Q_PROPERTY(cs::app::CanvasSceneSource* source READ source WRITE setSource NOTIFY sourceChanged)
    Q_PROPERTY(double zoom READ zoom WRITE setZoom NOTIFY viewChanged)
    Q_PROPERTY(double centerX READ centerX WRITE setCenterX NOTIFY viewChanged)
    Q_PROPERTY(double centerY READ centerY WRITE setCenterY NOTIFY viewChanged)
    Q_PROPERTY(double minZoom READ minZoom WRITE setMinZoom NOTIFY zoomLimitsChanged)
    Q_PROPERTY(double maxZoom READ maxZoom WRITE setMaxZoom NOTIFY zoomLimitsChanged)
    // Fit the first non-empty scene to the item unless the view was set before it came.
    Q_PROPERTY(bool autoFit READ autoFit WRITE setAutoFit NOTIFY autoFitChanged)
    Q_PROPERTY(int hoveredNode READ hoveredNode NOTIFY hoveredChanged) // slot or -1
    Q_PROPERTY(QString hoveredText READ hoveredText NOTIFY hoveredChanged) // the node's tooltip
    // The hovered node's centre in item coordinates (follows the view).
    Q_PROPERTY(QPointF hoveredPosition READ hoveredPosition NOTIFY hoveredPositionChanged)
    Q_PROPERTY(cs::app::CaptionModel* captions READ captions CONSTANT)
    // The token axis and the layer axis in item coordinates, for the view's pinned strips.
    Q_PROPERTY(cs::app::CaptionModel* columnTicks READ columnTicks CONSTANT)
    Q_PROPERTY(cs::app::CaptionModel* rowTicks READ rowTicks CONSTANT)
    // Pixels along the left and bottom edges that the axis strips cover: a fit keeps the scene
    // clear of them.
    Q_PROPERTY(double fitLeft MEMBER m_fitLeft NOTIFY fitMarginsChanged)
    Q_PROPERTY(double fitBottom MEMBER m_fitBottom NOTIFY fitMarginsChanged)
    // The user panned or zoomed since the last fit; until then every new scene (a trace, a
    // prune, an opened file) and every resize fits again.
    Q_PROPERTY(bool userMoved READ userMoved NOTIFY viewChanged)
    Q_PROPERTY(int nodeCount READ nodeCount NOTIFY sceneChanged)
    Q_PROPERTY(int edgeCount READ edgeCount NOTIFY sceneChanged)

public:
    explicit GraphCanvas(QQuickItem* parent = nullptr);
    ~GraphCanvas() override;

    CanvasSceneSource* source() const { return m_source; }
    void setSource(CanvasSceneSource* source);
    // The scene drawn; set through the source, or directly (tests, the benchmark).
    std::shared_ptr<const CanvasScene> scene() const { return m_scene; }
    void setScene(std::shared_ptr<const CanvasScene> scene);

    double zoom() const { return m_zoom; }
    double centerX() const { return m_centerX; }
    double centerY() const { return m_centerY; }
    void setZoom(double zoom);
    void setCenterX(double x);
    void setCenterY(double y);
    // All three at once, one viewChanged.
    Q_INVOKABLE void setView(double zoom, double centerX, double centerY);
    double minZoom() const { return m_minZoom; }
    double maxZoom() const { return m_maxZoom; }
    void setMinZoom(double zoom);
    void setMaxZoom(double zoom);
    bool autoFit() const { return m_autoFit; }
    void setAutoFit(bool on);

    int hoveredNode() const { return m_hovered; }
    QString hoveredText() const;
    QPointF hoveredPosition() const;
    CaptionModel* captions() const { return m_captions; }
    CaptionModel* columnTicks() const { return m_columnTicks; }
    CaptionModel* rowTicks() const { return m_rowTicks; }
    bool userMoved() const { return m_userMoved; }
    int nodeCount() const { return m_scene ? static_cast<int>(m_scene->nodes.size()) : 0; }
    int edgeCount() const { return m_scene ? static_cast<int>(m_scene->edges.size()) : 0; }

    // The whole scene in the item, centred.
    Q_INVOKABLE void fitToView();
    // Centre the view on a node (by slot, or by its id); false when there is none.
    Q_INVOKABLE bool centerOn(int slot);
    Q_INVOKABLE bool centerOnId(const QString& id);
    // The node under an item point (within a few px of its shape), or -1.
    Q_INVOKABLE int nodeAt(double x, double y) const;
    Q_INVOKABLE int slotOf(const QString& id) const;
    Q_INVOKABLE QString nodeId(int slot) const;
    Q_INVOKABLE QPointF mapFromScene(const QPointF& scenePoint) const;
    Q_INVOKABLE QPointF mapToScene(const QPointF& itemPoint) const;
    // A node's centre in item coordinates (for overlays); (NaN, NaN) for a bad slot.
    Q_INVOKABLE QPointF nodeItemPosition(int slot) const;
    // Zoom by `factor` keeping the scene point under (x, y) in place.
    Q_INVOKABLE void zoomAt(double x, double y, double factor);

    // Counters for tests and the benchmark: geometry builds (base and hover) and software
    // repaints since construction.
    int baseBuilds() const { return m_baseBuilds; }
    int softwarePaints() const { return m_softwarePaints; }

    static constexpr double kPickTolerancePx = 3;

Q_SIGNALS:
    void fitMarginsChanged();
    void sourceChanged();
    void sceneChanged();
    void viewChanged();
    void zoomLimitsChanged();
    void autoFitChanged();
    void hoveredChanged();
    void hoveredPositionChanged();
    void nodeClicked(int slot, int graphIndex, const QString& id, int modifiers);
    void nodeDoubleClicked(int slot, int graphIndex, const QString& id, int modifiers);
    void backgroundClicked();

protected:
    QSGNode* updatePaintNode(QSGNode* old, UpdatePaintNodeData* data) override;
    void geometryChange(const QRectF& newGeometry, const QRectF& oldGeometry) override;
    void mousePressEvent(QMouseEvent* event) override;
    void mouseMoveEvent(QMouseEvent* event) override;
    void mouseReleaseEvent(QMouseEvent* event) override;
    void mouseDoubleClickEvent(QMouseEvent* event) override;
    void hoverMoveEvent(QHoverEvent* event) override;
    void hoverLeaveEvent(QHoverEvent* event) override;
    void wheelEvent(QWheelEvent* event) override;
    void keyPressEvent(QKeyEvent* event) override;
    bool event(QEvent* event) override;

private:
    void onSourceSceneChanged();
    void setHovered(int slot);
    void viewUpdated();
    void maybeAutoFit();
    double clampZoom(double zoom) const;

    QPointer<CanvasSceneSource> m_source;
    std::shared_ptr<const CanvasScene> m_scene;
    SpatialIndex m_index; // points into *m_scene
    SceneAdjacency m_adjacency;
    CaptionModel* m_captions = nullptr;

    double m_zoom = 1, m_centerX = 0, m_centerY = 0;
    double m_minZoom = 0.02, m_maxZoom = 40;
    bool m_autoFit = true;
    bool m_fitPending = true;
    bool m_userMoved = false;
    double m_fitLeft = 0, m_fitBottom = 0;
    CaptionModel* m_columnTicks = nullptr;
    CaptionModel* m_rowTicks = nullptr;
    // The view as a user moves it (drag, wheel, keys): auto-fit stops until the next fit.
    void moveView(double zoom, double centerX, double centerY);
    // The view, with no say on auto-fit (a fit, or one of the setters above).
    void applyView(double zoom, double centerX, double centerY);
    int m_hovered = -1;

    // Input.
    QPointF m_pressPos;
    double m_pressCenterX = 0, m_pressCenterY = 0;
    bool m_pressed = false;
    bool m_dragging = false;

    // Render state (touched in updatePaintNode, with the GUI thread blocked).
    bool m_baseDirty = true;
    bool m_hoverDirty = true;
    CanvasLayers m_base;
    CanvasLayers m_hover;
    int m_baseBuilds = 0;
    int m_softwarePaints = 0;
};

} // namespace cs::app
