#include "graphcanvas.h"

#include <QGuiApplication>
#include <QNativeGestureEvent>
#include <QQuickWindow>
#include <QSGGeometryNode>
#include <QSGImageNode>
#include <QSGRendererInterface>
#include <QSGTexture>
#include <QSGTransformNode>
#include <QSGVertexColorMaterial>
#include <QStyleHints>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace cs::app {

namespace {

// The item's root node: the view's transform over either four geometry nodes (base edges, base
// nodes, hover edges, hover nodes) or, under the software scene graph, two image nodes (base,
// hover) whose textures it owns.
class CanvasRootNode : public QSGTransformNode {
public:
    explicit CanvasRootNode(bool softwareGraph)
        : software(softwareGraph)
    {
    }
    ~CanvasRootNode() override
    {
        // Children first: the image nodes refer to the textures.
        while (QSGNode* child = firstChild()) {
            removeChildNode(child);
            delete child;
        }
    }

    const bool software;
    QSGGeometryNode* geometry[4] = {};
    QSGImageNode* baseImage = nullptr;
    QSGImageNode* hoverImage = nullptr;
    std::unique_ptr<QSGTexture> baseTexture;
    std::unique_ptr<QSGTexture> hoverTexture;
    QRectF baseRegion; // scene units the base image covers
    double baseScale = 0; // its pixels per scene unit
};

QSGGeometryNode* makeGeometryNode()
{
    auto* node = new QSGGeometryNode;
    auto* geometry
        = new QSGGeometry(QSGGeometry::defaultAttributes_ColoredPoint2D(), 0, 0, QSGGeometry::UnsignedIntType);
    geometry->setDrawingMode(QSGGeometry::DrawTriangles);
    node->setGeometry(geometry);
    node->setMaterial(new QSGVertexColorMaterial);
    node->setFlags(QSGNode::OwnsGeometry | QSGNode::OwnsMaterial);
    return node;
}

void upload(QSGGeometryNode* node, const PolygonBatch& batch)
{
    QSGGeometry* geometry = node->geometry();
    const int vertices = static_cast<int>(batch.vertexCount());
    const int indices = static_cast<int>(3 * batch.triangleCount());
    geometry->allocate(vertices, indices);
    if (vertices > 0) {
        std::memcpy(geometry->vertexDataAsColoredPoint2D(), batch.vertices.data(),
            batch.vertices.size() * sizeof(QSGGeometry::ColoredPoint2D));
        batch.fillIndices(geometry->indexDataAsUInt());
    }
    node->markDirty(QSGNode::DirtyGeometry);
}

// Puts `image` (covering `rect`, scene units) into the image node, creating or dropping the node.
void setImage(QQuickWindow* window, CanvasRootNode* root, QSGImageNode*& node, std::unique_ptr<QSGTexture>& texture,
    const QImage& image, const QRectF& rect, bool first)
{
    if (image.isNull() || rect.isEmpty()) {
        if (node) {
            root->removeChildNode(node);
            delete node;
            node = nullptr;
        }
        texture.reset();
        return;
    }
    std::unique_ptr<QSGTexture> fresh(window->createTextureFromImage(image));
    if (!node) {
        // Complete before it enters the tree: the software renderer reads the texture then.
        node = window->createImageNode();
        node->setOwnsTexture(false);
        node->setFiltering(QSGTexture::Linear);
        node->setTexture(fresh.get());
        node->setRect(rect);
        if (first)
            root->prependChildNode(node);
        else
            root->appendChildNode(node);
    } else {
        node->setTexture(fresh.get());
        node->setRect(rect);
    }
    texture = std::move(fresh);
}

// Paints both batches of `layers` over `region` at `scale` pixels per scene unit.
QImage paintLayers(const CanvasLayers& layers, QRectF region, double scale, QRectF* covered)
{
    const int width = static_cast<int>(std::ceil(region.width() * scale));
    const int height = static_cast<int>(std::ceil(region.height() * scale));
    if (width <= 0 || height <= 0) {
        *covered = QRectF();
        return {};
    }
    QImage image(width, height, QImage::Format_ARGB32_Premultiplied);
    image.fill(Qt::transparent);
    paintBatch(image, layers.edges, region, scale);
    paintBatch(image, layers.nodes, region, scale);
    *covered = QRectF(region.topLeft(), QSizeF(width / scale, height / scale));
    return image;
}

} // namespace

GraphCanvas::GraphCanvas(QQuickItem* parent)
    : QQuickItem(parent)
    , m_captions(new CaptionModel(this))
    , m_columnTicks(new CaptionModel(this, CaptionModel::Kind::Columns))
    , m_rowTicks(new CaptionModel(this, CaptionModel::Kind::Rows))
{
    connect(this, &GraphCanvas::fitMarginsChanged, this, [this] {
        m_captions->setReserved(m_fitLeft, m_fitBottom);
        if (!m_userMoved)
            fitToView();
    });
    setFlag(ItemHasContents, true);
    setFlag(ItemIsFocusScope, false);
    setClip(true);
    setAcceptedMouseButtons(Qt::LeftButton);
    setAcceptHoverEvents(true);
    setActiveFocusOnTab(true);
}

GraphCanvas::~GraphCanvas() = default;

void GraphCanvas::setSource(CanvasSceneSource* source)
{
    if (m_source == source)
        return;
    if (m_source)
        disconnect(m_source, nullptr, this, nullptr);
    m_source = source;
    if (m_source) {
        connect(m_source, &CanvasSceneSource::sceneChanged, this, &GraphCanvas::onSourceSceneChanged);
        connect(m_source, &QObject::destroyed, this, [this] { setScene(nullptr); });
    }
    onSourceSceneChanged();
    Q_EMIT sourceChanged();
}

void GraphCanvas::onSourceSceneChanged()
{
    setScene(m_source ? m_source->scene() : nullptr);
}

void GraphCanvas::setScene(std::shared_ptr<const CanvasScene> scene)
{
    // Keep hovering the same node across a new scene of the same graph (a re-prune).
    const std::string hoveredId
        = (m_scene && m_hovered >= 0) ? m_scene->nodes[static_cast<size_t>(m_hovered)].id : std::string();
    m_scene = std::move(scene);
    m_index = m_scene ? SpatialIndex(*m_scene) : SpatialIndex();
    m_adjacency = m_scene ? SceneAdjacency(*m_scene) : SceneAdjacency();
    m_captions->setScene(m_scene);
    m_columnTicks->setScene(m_scene);
    m_rowTicks->setScene(m_scene);
    m_hovered = -1;
    if (!m_userMoved)
        m_fitPending = true; // a new trace, prune or file: fit it, unless the user moved
    m_baseDirty = true;
    m_hoverDirty = true;
    Q_EMIT sceneChanged();
    setHovered(hoveredId.empty() || !m_scene ? -1 : m_scene->slotOf(hoveredId));
    Q_EMIT hoveredChanged();
    maybeAutoFit();
    update();
}

double GraphCanvas::clampZoom(double zoom) const
{
    if (!std::isfinite(zoom) || zoom <= 0)
        return m_zoom;
    return std::clamp(zoom, m_minZoom, m_maxZoom);
}

void GraphCanvas::moveView(double zoom, double centerX, double centerY)
{
    applyView(zoom, centerX, centerY);
    if (!m_userMoved) {
        m_userMoved = true;
        Q_EMIT viewChanged();
    }
}

void GraphCanvas::setView(double zoom, double centerX, double centerY)
{
    moveView(zoom, centerX, centerY); // a view chosen from outside (a session's) stays
}

void GraphCanvas::applyView(double zoom, double centerX, double centerY)
{
    m_fitPending = false;
    zoom = clampZoom(zoom);
    if (!std::isfinite(centerX))
        centerX = m_centerX;
    if (!std::isfinite(centerY))
        centerY = m_centerY;
    if (zoom == m_zoom && centerX == m_centerX && centerY == m_centerY)
        return;
    m_zoom = zoom;
    m_centerX = centerX;
    m_centerY = centerY;
    viewUpdated();
}

void GraphCanvas::setZoom(double zoom)
{
    setView(zoom, m_centerX, m_centerY);
}
void GraphCanvas::setCenterX(double x)
{
    setView(m_zoom, x, m_centerY);
}
void GraphCanvas::setCenterY(double y)
{
    setView(m_zoom, m_centerX, y);
}

void GraphCanvas::setMinZoom(double zoom)
{
    if (zoom <= 0 || zoom == m_minZoom)
        return;
    m_minZoom = zoom;
    m_maxZoom = std::max(m_maxZoom, zoom);
    Q_EMIT zoomLimitsChanged();
}

void GraphCanvas::setMaxZoom(double zoom)
{
    if (zoom <= 0 || zoom == m_maxZoom)
        return;
    m_maxZoom = zoom;
    m_minZoom = std::min(m_minZoom, zoom);
    Q_EMIT zoomLimitsChanged();
}

void GraphCanvas::setAutoFit(bool on)
{
    if (on == m_autoFit)
        return;
    m_autoFit = on;
    Q_EMIT autoFitChanged();
    maybeAutoFit();
}

void GraphCanvas::viewUpdated()
{
    m_captions->setView(m_zoom, m_centerX, m_centerY, width(), height());
    m_columnTicks->setView(m_zoom, m_centerX, m_centerY, width(), height());
    m_rowTicks->setView(m_zoom, m_centerX, m_centerY, width(), height());
    Q_EMIT viewChanged();
    if (m_hovered >= 0)
        Q_EMIT hoveredPositionChanged();
    update();
}

void GraphCanvas::maybeAutoFit()
{
    if (m_autoFit && m_fitPending && m_scene && !m_scene->nodes.empty() && width() > 0 && height() > 0) {
        fitToView();
        m_fitPending = false;
    }
}

void GraphCanvas::fitToView()
{
    if (!m_scene || m_scene->bounds.isEmpty() || width() <= 0 || height() <= 0)
        return;
    // The scene in what the axis strips leave free, centred there.
    const QRectF b = m_scene->bounds;
    const double w = std::max(1.0, width() - m_fitLeft), h = std::max(1.0, height() - m_fitBottom);
    const double zoom = clampZoom(std::min(w / b.width(), h / b.height()));
    // Item point (left + w/2, h/2) shows the bounds' centre: center = c - (p - size/2) / zoom.
    applyView(zoom, b.center().x() - (m_fitLeft + 0.5 * w - 0.5 * width()) / zoom,
        b.center().y() - (0.5 * h - 0.5 * height()) / zoom);
    m_fitPending = false;
    if (m_userMoved) {
        m_userMoved = false;
        Q_EMIT viewChanged();
    }
}

bool GraphCanvas::centerOn(int slot)
{
    if (!m_scene || slot < 0 || static_cast<size_t>(slot) >= m_scene->nodes.size())
        return false;
    // Search and "go to" bring the node into the middle, close enough to read.
    const CanvasNode& node = m_scene->nodes[static_cast<size_t>(slot)];
    moveView(std::max(m_zoom, std::min(1.0, m_maxZoom)), node.x, node.y);
    return true;
}

bool GraphCanvas::centerOnId(const QString& id)
{
    return centerOn(slotOf(id));
}

int GraphCanvas::slotOf(const QString& id) const
{
    return m_scene ? m_scene->slotOf(id.toStdString()) : -1;
}

QString GraphCanvas::nodeId(int slot) const
{
    if (!m_scene || slot < 0 || static_cast<size_t>(slot) >= m_scene->nodes.size())
        return {};
    return QString::fromStdString(m_scene->nodes[static_cast<size_t>(slot)].id);
}

int GraphCanvas::nodeAt(double x, double y) const
{
    if (!m_scene)
        return -1;
    const QPointF s = mapToScene(QPointF(x, y));
    return m_index.nodeAt(s.x(), s.y(), kPickTolerancePx / m_zoom);
}

QPointF GraphCanvas::mapFromScene(const QPointF& p) const
{
    return QPointF((p.x() - m_centerX) * m_zoom + 0.5 * width(), (p.y() - m_centerY) * m_zoom + 0.5 * height());
}

QPointF GraphCanvas::mapToScene(const QPointF& p) const
{
    return QPointF((p.x() - 0.5 * width()) / m_zoom + m_centerX, (p.y() - 0.5 * height()) / m_zoom + m_centerY);
}

QPointF GraphCanvas::nodeItemPosition(int slot) const
{
    if (!m_scene || slot < 0 || static_cast<size_t>(slot) >= m_scene->nodes.size()) {
        const double nan = std::numeric_limits<double>::quiet_NaN();
        return QPointF(nan, nan);
    }
    const CanvasNode& node = m_scene->nodes[static_cast<size_t>(slot)];
    return mapFromScene(QPointF(node.x, node.y));
}

void GraphCanvas::zoomAt(double x, double y, double factor)
{
    const QPointF anchor = mapToScene(QPointF(x, y));
    const double zoom = clampZoom(m_zoom * factor);
    // Keep `anchor` at (x, y): center = anchor - (item - size / 2) / zoom.
    moveView(zoom, anchor.x() - (x - 0.5 * width()) / zoom, anchor.y() - (y - 0.5 * height()) / zoom);
}

QString GraphCanvas::hoveredText() const
{
    if (!m_scene || m_hovered < 0)
        return {};
    return m_scene->nodes[static_cast<size_t>(m_hovered)].tooltip;
}

QPointF GraphCanvas::hoveredPosition() const
{
    return nodeItemPosition(m_hovered);
}

void GraphCanvas::setHovered(int slot)
{
    if (slot == m_hovered)
        return;
    m_hovered = slot;
    m_hoverDirty = true;
    Q_EMIT hoveredChanged();
    Q_EMIT hoveredPositionChanged();
    update();
}

void GraphCanvas::geometryChange(const QRectF& newGeometry, const QRectF& oldGeometry)
{
    QQuickItem::geometryChange(newGeometry, oldGeometry);
    if (newGeometry.size() != oldGeometry.size()) {
        if (!m_userMoved)
            m_fitPending = true; // a resize fits again unless the user moved
        maybeAutoFit();
        viewUpdated();
    }
}

void GraphCanvas::mousePressEvent(QMouseEvent* event)
{
    if (event->button() != Qt::LeftButton) {
        event->ignore();
        return;
    }
    m_pressed = true;
    m_dragging = false;
    m_pressPos = event->position();
    m_pressCenterX = m_centerX;
    m_pressCenterY = m_centerY;
    if (activeFocusOnTab())
        forceActiveFocus(Qt::MouseFocusReason);
    event->accept();
}

void GraphCanvas::mouseMoveEvent(QMouseEvent* event)
{
    if (!m_pressed)
        return;
    const QPointF delta = event->position() - m_pressPos;
    if (!m_dragging && delta.manhattanLength() >= QGuiApplication::styleHints()->startDragDistance()) {
        m_dragging = true;
        setHovered(-1);
        setKeepMouseGrab(true);
    }
    if (m_dragging)
        moveView(m_zoom, m_pressCenterX - delta.x() / m_zoom, m_pressCenterY - delta.y() / m_zoom);
    event->accept();
}

void GraphCanvas::mouseReleaseEvent(QMouseEvent* event)
{
    if (!m_pressed)
        return;
    m_pressed = false;
    setKeepMouseGrab(false);
    if (!m_dragging) {
        const QPointF p = event->position();
        const int slot = nodeAt(p.x(), p.y());
        if (slot >= 0) {
            const CanvasNode& node = m_scene->nodes[static_cast<size_t>(slot)];
            Q_EMIT nodeClicked(slot, static_cast<int>(node.graphIndex), QString::fromStdString(node.id),
                static_cast<int>(event->modifiers()));
        } else {
            Q_EMIT backgroundClicked();
        }
    }
    m_dragging = false;
    event->accept();
}

void GraphCanvas::mouseDoubleClickEvent(QMouseEvent* event)
{
    const QPointF p = event->position();
    const int slot = nodeAt(p.x(), p.y());
    if (slot >= 0) {
        const CanvasNode& node = m_scene->nodes[static_cast<size_t>(slot)];
        Q_EMIT nodeDoubleClicked(slot, static_cast<int>(node.graphIndex), QString::fromStdString(node.id),
            static_cast<int>(event->modifiers()));
    } else {
        fitToView(); // a double click on the background shows everything
    }
    event->accept();
}

void GraphCanvas::hoverMoveEvent(QHoverEvent* event)
{
    if (!m_dragging)
        setHovered(nodeAt(event->position().x(), event->position().y()));
}

void GraphCanvas::hoverLeaveEvent(QHoverEvent*)
{
    setHovered(-1);
}

void GraphCanvas::wheelEvent(QWheelEvent* event)
{
    // 120 units per notch of a wheel: 2^(1/4) per notch; touchpads report pixels.
    const double steps
        = !event->pixelDelta().isNull() ? event->pixelDelta().y() / 60.0 : event->angleDelta().y() / 120.0;
    if (steps == 0) {
        event->ignore();
        return;
    }
    zoomAt(event->position().x(), event->position().y(), std::pow(2.0, steps / 4.0));
    event->accept();
}

void GraphCanvas::keyPressEvent(QKeyEvent* event)
{
    const double step = 60 / m_zoom; // 60 px per arrow key press
    switch (event->key()) {
    case Qt::Key_Plus:
    case Qt::Key_Equal:
        zoomAt(0.5 * width(), 0.5 * height(), 1.25);
        break;
    case Qt::Key_Minus:
        zoomAt(0.5 * width(), 0.5 * height(), 0.8);
        break;
    case Qt::Key_0:
        fitToView();
        break;
    case Qt::Key_Left:
        moveView(m_zoom, m_centerX - step, m_centerY);
        break;
    case Qt::Key_Right:
        moveView(m_zoom, m_centerX + step, m_centerY);
        break;
    case Qt::Key_Up:
        moveView(m_zoom, m_centerX, m_centerY - step);
        break;
    case Qt::Key_Down:
        moveView(m_zoom, m_centerX, m_centerY + step);
        break;
    default:
        QQuickItem::keyPressEvent(event);
        return;
    }
    event->accept();
}

bool GraphCanvas::event(QEvent* event)
{
    // Touchpad pinch (macOS, Wayland): zoom at the gesture's point.
    if (event->type() == QEvent::NativeGesture) {
        auto* gesture = static_cast<QNativeGestureEvent*>(event);
        if (gesture->gestureType() == Qt::ZoomNativeGesture) {
            zoomAt(gesture->position().x(), gesture->position().y(), 1.0 + gesture->value());
            event->accept();
            return true;
        }
    }
    return QQuickItem::event(event);
}

QSGNode* GraphCanvas::updatePaintNode(QSGNode* old, UpdatePaintNodeData*)
{
    QQuickWindow* win = window();
    if (!win)
        return old;
    const bool software = win->rendererInterface()->graphicsApi() == QSGRendererInterface::Software;
    auto* root = static_cast<CanvasRootNode*>(old);
    if (root && root->software != software) {
        delete root;
        root = nullptr;
    }
    if (!root) {
        root = new CanvasRootNode(software);
        m_baseDirty = m_hoverDirty = true;
        if (!software) {
            for (QSGGeometryNode*& node : root->geometry) {
                node = makeGeometryNode();
                root->appendChildNode(node);
            }
        }
    }

    QMatrix4x4 matrix;
    matrix.translate(static_cast<float>(0.5 * width()), static_cast<float>(0.5 * height()));
    matrix.scale(static_cast<float>(m_zoom));
    matrix.translate(static_cast<float>(-m_centerX), static_cast<float>(-m_centerY));
    root->setMatrix(matrix);

    if (m_baseDirty) {
        if (m_scene)
            buildBaseLayers(*m_scene, m_scene->look, m_base);
        else
            m_base = CanvasLayers();
        ++m_baseBuilds;
    }
    if (m_hoverDirty) {
        if (m_scene)
            buildHoverLayers(*m_scene, m_adjacency, m_hovered, m_scene->look, m_hover);
        else
            m_hover = CanvasLayers();
    }

    if (!software) {
        if (m_baseDirty) {
            upload(root->geometry[0], m_base.edges);
            upload(root->geometry[1], m_base.nodes);
        }
        if (m_hoverDirty) {
            upload(root->geometry[2], m_hover.edges);
            upload(root->geometry[3], m_hover.nodes);
        }
    } else {
        // The image covers the visible scene rectangle and half a view around it (within the
        // scene's bounds), at the window's pixel density.
        const double scale = m_zoom * win->effectiveDevicePixelRatio();
        const QRectF visible(mapToScene(QPointF(0, 0)), mapToScene(QPointF(width(), height())));
        const QRectF bounds = m_scene ? m_scene->bounds : QRectF();
        const QRectF needed = visible.intersected(bounds);
        // Half a pixel of slack: the covered rectangle is the region rounded to whole pixels.
        const double slack = 0.5 / scale;
        const bool repaintBase = m_baseDirty || scale != root->baseScale
            || (!needed.isEmpty() && !root->baseRegion.adjusted(-slack, -slack, slack, slack).contains(needed));
        if (repaintBase) {
            QRectF region = visible
                                .adjusted(-0.5 * visible.width(), -0.5 * visible.height(), 0.5 * visible.width(),
                                    0.5 * visible.height())
                                .intersected(bounds);
            // At most 8192 px a side (a deep zoom into a large scene): trim around the view.
            const double maxSide = 8192 / scale;
            if (region.width() > maxSide || region.height() > maxSide) {
                const QPointF c = visible.center();
                region = QRectF(c.x() - 0.5 * maxSide, c.y() - 0.5 * maxSide, maxSide, maxSide).intersected(region);
            }
            QRectF covered;
            const QImage image = paintLayers(m_base, region, scale, &covered);
            setImage(win, root, root->baseImage, root->baseTexture, image, covered, true);
            root->baseRegion = covered;
            root->baseScale = scale;
            ++m_softwarePaints;
        }
        if (m_hoverDirty || repaintBase) {
            const QRectF region = m_hover.edges.boundingRect()
                                      .united(m_hover.nodes.boundingRect())
                                      .intersected(root->baseRegion.isEmpty() ? visible : root->baseRegion);
            QRectF covered;
            const QImage image
                = m_hover.nodes.vertexCount() > 0 ? paintLayers(m_hover, region, scale, &covered) : QImage();
            setImage(win, root, root->hoverImage, root->hoverTexture, image, covered, false);
        }
    }
    m_baseDirty = false;
    m_hoverDirty = false;
    return root;
}

} // namespace cs::app
