#include "canvasgeometry.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>

namespace cs::app {

namespace {

constexpr int kCircleSegments = 16;
constexpr int kCornerSegments = 4;

// Unit circle points, computed once.
const std::array<QPointF, kCircleSegments>& circlePoints()
{
    static const std::array<QPointF, kCircleSegments> points = [] {
        std::array<QPointF, kCircleSegments> p;
        for (int i = 0; i < kCircleSegments; ++i) {
            const double a = 2 * M_PI * i / kCircleSegments;
            p[static_cast<size_t>(i)] = QPointF(std::cos(a), std::sin(a));
        }
        return p;
    }();
    return points;
}

QRgb withAlphaFactor(QRgb color, double factor)
{
    return qRgba(qRed(color), qGreen(color), qBlue(color),
        std::clamp(static_cast<int>(std::lround(qAlpha(color) * factor)), 0, 255));
}

} // namespace

void PolygonBatch::clear()
{
    vertices.clear();
    starts.assign(1, 0);
}

void PolygonBatch::addPolygon(const QPointF* points, int count, QRgb color)
{
    if (count < 3)
        return;
    const QRgb p = qPremultiply(color);
    const auto r = static_cast<uchar>(qRed(p)), g = static_cast<uchar>(qGreen(p)), b = static_cast<uchar>(qBlue(p)),
               a = static_cast<uchar>(qAlpha(p));
    for (int i = 0; i < count; ++i) {
        QSGGeometry::ColoredPoint2D v;
        v.set(static_cast<float>(points[i].x()), static_cast<float>(points[i].y()), r, g, b, a);
        vertices.push_back(v);
    }
    starts.push_back(static_cast<uint32_t>(vertices.size()));
}

void PolygonBatch::fillIndices(uint32_t* out) const
{
    for (size_t i = 0; i + 1 < starts.size(); ++i) {
        const uint32_t first = starts[i];
        for (uint32_t k = first + 1; k + 1 < starts[i + 1]; ++k) {
            *out++ = first;
            *out++ = k;
            *out++ = k + 1;
        }
    }
}

QRectF PolygonBatch::boundingRect() const
{
    if (vertices.empty())
        return {};
    float x0 = vertices[0].x, x1 = x0, y0 = vertices[0].y, y1 = y0;
    for (const auto& v : vertices) {
        x0 = std::min(x0, v.x);
        x1 = std::max(x1, v.x);
        y0 = std::min(y0, v.y);
        y1 = std::max(y1, v.y);
    }
    return QRectF(x0, y0, x1 - x0, y1 - y0);
}

SceneAdjacency::SceneAdjacency(const CanvasScene& scene)
{
    const size_t n = scene.nodes.size();
    start.assign(n + 1, 0);
    for (const CanvasEdge& e : scene.edges) {
        ++start[static_cast<size_t>(e.source) + 1];
        ++start[static_cast<size_t>(e.target) + 1];
    }
    for (size_t i = 0; i < n; ++i)
        start[i + 1] += start[i];
    edges.resize(start[n]);
    std::vector<uint32_t> fill(start.begin(), start.end() - 1);
    for (size_t k = 0; k < scene.edges.size(); ++k) {
        const CanvasEdge& e = scene.edges[k];
        edges[fill[static_cast<size_t>(e.source)]++] = static_cast<uint32_t>(k);
        edges[fill[static_cast<size_t>(e.target)]++] = static_cast<uint32_t>(k);
    }
}

void appendNodeShape(PolygonBatch& batch, const CanvasNode& node, double grow, QRgb color)
{
    const double r = node.radius + grow;
    const QPointF c(node.x, node.y);
    switch (node.shape) {
    case NodeShape::Circle: {
        std::array<QPointF, kCircleSegments> p;
        for (int i = 0; i < kCircleSegments; ++i)
            p[static_cast<size_t>(i)] = c + circlePoints()[static_cast<size_t>(i)] * r;
        batch.addPolygon(p.data(), kCircleSegments, color);
        break;
    }
    case NodeShape::Diamond: {
        // A diamond of the circle's area looks as large: half diagonal r * sqrt(pi / 2).
        const double d = r * 1.25;
        const QPointF p[4] = { c + QPointF(0, -d), c + QPointF(d, 0), c + QPointF(0, d), c + QPointF(-d, 0) };
        batch.addPolygon(p, 4, color);
        break;
    }
    case NodeShape::Square: {
        const double h = node.radius * 0.9 + grow;
        const QPointF p[4] = { c + QPointF(-h, -h), c + QPointF(h, -h), c + QPointF(h, h), c + QPointF(-h, h) };
        batch.addPolygon(p, 4, color);
        break;
    }
    case NodeShape::RoundedBox: {
        // Half width 1.3 r, half height 0.8 r (sceneBounds counts on the 1.3), corner radius 0.35 r.
        const double hw = node.radius * 1.3 + grow, hh = node.radius * 0.8 + grow;
        const double cr = std::min(node.radius * 0.35 + grow, hh);
        std::array<QPointF, 4 * (kCornerSegments + 1)> p;
        const QPointF centres[4] = { c + QPointF(hw - cr, hh - cr), c + QPointF(-hw + cr, hh - cr),
            c + QPointF(-hw + cr, -hh + cr), c + QPointF(hw - cr, -hh + cr) };
        size_t k = 0;
        for (int q = 0; q < 4; ++q) {
            for (int s = 0; s <= kCornerSegments; ++s) {
                const double a = M_PI / 2 * (q + static_cast<double>(s) / kCornerSegments);
                p[k++] = centres[q] + QPointF(std::cos(a), std::sin(a)) * cr;
            }
        }
        batch.addPolygon(p.data(), static_cast<int>(p.size()), color);
        break;
    }
    }
}

void appendNode(PolygonBatch& batch, const CanvasNode& node, const CanvasLook& look)
{
    // Rings from the outside in, each ringWidth wide, under the fill.
    QRgb rings[4];
    int count = 0;
    if (node.flags & NodeSearchHit)
        rings[count++] = look.searchHitRing;
    if (node.flags & NodeIntervened)
        rings[count++] = look.intervenedRing;
    if (node.flags & NodePinned)
        rings[count++] = look.pinnedRing;
    if (node.flags & NodeSelected)
        rings[count++] = look.selectedRing;
    for (int i = 0; i < count; ++i)
        appendNodeShape(batch, node, look.ringWidth * (count - i), rings[i]);
    appendNodeShape(batch, node, 0, node.fill);
}

void appendEdge(PolygonBatch& batch, const CanvasScene& scene, const CanvasEdge& edge, double widthScale, QRgb color)
{
    const CanvasNode& s = scene.nodes[static_cast<size_t>(edge.source)];
    const CanvasNode& t = scene.nodes[static_cast<size_t>(edge.target)];
    const double dx = t.x - s.x, dy = t.y - s.y;
    const double length = std::hypot(dx, dy);
    if (length <= 0)
        return;
    // The quad's half width along the unit normal.
    const double h = 0.5 * edge.width * widthScale;
    const QPointF n(-dy / length * h, dx / length * h);
    const QPointF a(s.x, s.y), b(t.x, t.y);
    const QPointF p[4] = { a + n, b + n, b - n, a - n };
    batch.addPolygon(p, 4, color);
}

void buildBaseLayers(const CanvasScene& scene, const CanvasLook& look, CanvasLayers& out)
{
    out.edges.clear();
    out.nodes.clear();
    out.edges.vertices.reserve(scene.edges.size() * 4);
    out.edges.starts.reserve(scene.edges.size() + 1);
    int selected = -1;
    for (size_t i = 0; i < scene.nodes.size() && selected < 0; ++i) {
        if (scene.nodes[i].flags & NodeSelected)
            selected = static_cast<int>(i);
    }
    if (selected < 0) {
        for (const CanvasEdge& e : scene.edges)
            appendEdge(out.edges, scene, e, 1.0, e.color);
    } else {
        // Faded first, then the selected node's edges over them.
        for (const CanvasEdge& e : scene.edges) {
            if (e.source != selected && e.target != selected)
                appendEdge(out.edges, scene, e, 1.0, withAlphaFactor(e.color, look.fadeAlpha));
        }
        for (const CanvasEdge& e : scene.edges) {
            if (e.source == selected || e.target == selected)
                appendEdge(out.edges, scene, e, 1.0, e.color);
        }
    }
    out.nodes.vertices.reserve(scene.nodes.size() * kCircleSegments);
    for (const CanvasNode& node : scene.nodes)
        appendNode(out.nodes, node, look);
}

void buildHoverLayers(
    const CanvasScene& scene, const SceneAdjacency& adjacency, int hovered, const CanvasLook& look, CanvasLayers& out)
{
    out.edges.clear();
    out.nodes.clear();
    if (hovered < 0 || static_cast<size_t>(hovered) >= scene.nodes.size()
        || adjacency.start.size() != scene.nodes.size() + 1)
        return;
    const uint32_t begin = adjacency.start[static_cast<size_t>(hovered)];
    const uint32_t end = adjacency.start[static_cast<size_t>(hovered) + 1];
    std::vector<int> ends;
    for (uint32_t k = begin; k < end; ++k) {
        const CanvasEdge& e = scene.edges[adjacency.edges[k]];
        appendEdge(
            out.edges, scene, e, look.hoverWidthScale, withAlphaFactor(e.color, 255.0 / std::max(1, qAlpha(e.color))));
        ends.push_back(e.source == hovered ? e.target : e.source);
    }
    std::sort(ends.begin(), ends.end());
    ends.erase(std::unique(ends.begin(), ends.end()), ends.end());
    for (int slot : ends) {
        CanvasNode node = scene.nodes[static_cast<size_t>(slot)];
        node.fill = qRgba(qRed(node.fill), qGreen(node.fill), qBlue(node.fill), 255);
        appendNode(out.nodes, node, look);
    }
    CanvasNode node = scene.nodes[static_cast<size_t>(hovered)];
    node.fill = qRgba(qRed(node.fill), qGreen(node.fill), qBlue(node.fill), 255);
    appendNodeShape(out.nodes, node, look.ringWidth * 1.5, look.hoverRing);
    appendNode(out.nodes, node, look);
}

namespace {

// Scan conversion of convex polygons into an ARGB32_Premultiplied image, antialiased: each
// pixel row is sampled on kSubRows sub-rows, and on each the polygon's span adds its exact
// horizontal overlap with every pixel to a coverage row, blended source-over once per row.
// (QPainter's antialiased fill costs about its polygons' bounding-box area; long diagonal edges
// made it 100 times slower than this.)
class ConvexRasterizer {
public:
    explicit ConvexRasterizer(QImage& image)
        : m_image(image)
        , m_width(image.width())
        , m_height(image.height())
        , m_coverage(static_cast<size_t>(image.width()) + 1, 0.0f)
    {
    }

    // points in pixels; color premultiplied ARGB.
    void fill(const QPointF* points, int count, QRgb color)
    {
        double y0 = points[0].y(), y1 = y0, x0 = points[0].x(), x1 = x0;
        for (int i = 1; i < count; ++i) {
            y0 = std::min(y0, points[i].y());
            y1 = std::max(y1, points[i].y());
            x0 = std::min(x0, points[i].x());
            x1 = std::max(x1, points[i].x());
        }
        if (y1 <= 0 || y0 >= m_height || x1 <= 0 || x0 >= m_width)
            return;
        const int rowBegin = std::max(0, static_cast<int>(std::floor(y0)));
        const int rowEnd = std::min(m_height, static_cast<int>(std::ceil(y1)));
        constexpr float kShare = 1.0f / kSubRows;
        for (int row = rowBegin; row < rowEnd; ++row) {
            int lo = m_width, hi = -1;
            for (int sub = 0; sub < kSubRows; ++sub) {
                const double sy = row + (sub + 0.5) / kSubRows;
                double xl = std::numeric_limits<double>::infinity(), xr = -xl;
                for (int i = 0; i < count; ++i) {
                    const QPointF& a = points[i];
                    const QPointF& b = points[i + 1 < count ? i + 1 : 0];
                    if ((a.y() <= sy && sy < b.y()) || (b.y() <= sy && sy < a.y())) {
                        const double x = a.x() + (sy - a.y()) * (b.x() - a.x()) / (b.y() - a.y());
                        xl = std::min(xl, x);
                        xr = std::max(xr, x);
                    }
                }
                xl = std::max(xl, 0.0);
                xr = std::min(xr, static_cast<double>(m_width));
                if (!(xl < xr))
                    continue;
                const int first = static_cast<int>(xl);
                const int last = std::min(m_width - 1, static_cast<int>(std::ceil(xr)) - 1);
                if (first >= last) {
                    m_coverage[static_cast<size_t>(first)] += static_cast<float>(xr - xl) * kShare;
                } else {
                    m_coverage[static_cast<size_t>(first)] += static_cast<float>(first + 1 - xl) * kShare;
                    for (int x = first + 1; x < last; ++x)
                        m_coverage[static_cast<size_t>(x)] += kShare;
                    m_coverage[static_cast<size_t>(last)] += static_cast<float>(xr - last) * kShare;
                }
                lo = std::min(lo, first);
                hi = std::max(hi, last);
            }
            if (hi >= lo)
                blendRow(row, lo, hi, color);
        }
    }

private:
    static constexpr int kSubRows = 4;

    void blendRow(int row, int lo, int hi, QRgb color)
    {
        auto* line = reinterpret_cast<QRgb*>(m_image.scanLine(row));
        const int sa = qAlpha(color), sr = qRed(color), sg = qGreen(color), sb = qBlue(color);
        for (int x = lo; x <= hi; ++x) {
            float& c = m_coverage[static_cast<size_t>(x)];
            const int k = std::min(256, static_cast<int>(c * 256.0f + 0.5f)); // coverage in 1/256
            c = 0;
            if (k == 0)
                continue;
            const QRgb d = line[x];
            // Source-over with premultiplied colours: out = s k + d (1 - sa k).
            const int inv = 256 - ((sa * k) >> 8);
            line[x] = qRgba(((sr * k) >> 8) + ((qRed(d) * inv) >> 8), ((sg * k) >> 8) + ((qGreen(d) * inv) >> 8),
                ((sb * k) >> 8) + ((qBlue(d) * inv) >> 8), ((sa * k) >> 8) + ((qAlpha(d) * inv) >> 8));
        }
    }

    QImage& m_image;
    int m_width;
    int m_height;
    std::vector<float> m_coverage; // [width]: the current row's coverage
};

} // namespace

void paintBatch(QImage& image, const PolygonBatch& batch, const QRectF& region, double scale)
{
    if (image.format() != QImage::Format_ARGB32_Premultiplied || image.isNull())
        return;
    ConvexRasterizer raster(image);
    const QRectF clip = region.adjusted(-1, -1, 1, 1);
    QPointF points[4 * (kCornerSegments + 1) + kCircleSegments];
    for (size_t i = 0; i + 1 < batch.starts.size(); ++i) {
        const uint32_t first = batch.starts[i];
        const int count = static_cast<int>(std::min<size_t>(batch.starts[i + 1] - first, std::size(points)));
        const QSGGeometry::ColoredPoint2D* v = batch.vertices.data() + first;
        double x0 = v[0].x, x1 = x0, y0 = v[0].y, y1 = y0;
        for (int k = 0; k < count; ++k) {
            x0 = std::min<double>(x0, v[k].x);
            x1 = std::max<double>(x1, v[k].x);
            y0 = std::min<double>(y0, v[k].y);
            y1 = std::max<double>(y1, v[k].y);
            points[k] = QPointF((v[k].x - region.left()) * scale, (v[k].y - region.top()) * scale);
        }
        if (x1 < clip.left() || x0 > clip.right() || y1 < clip.top() || y0 > clip.bottom())
            continue;
        raster.fill(points, count, qRgba(v[0].r, v[0].g, v[0].b, v[0].a));
    }
}

} // namespace cs::app
