#include "captionmodel.h"

#include <QFont>
#include <QFontMetricsF>
#include <QRectF>

#include <algorithm>
#include <numeric>

namespace cs::app {

CaptionModel::CaptionModel(QObject* parent, Kind kind)
    : QAbstractListModel(parent)
    , m_kind(kind)
{
}

int CaptionModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : static_cast<int>(m_rows.size());
}

QVariant CaptionModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const Row& row = m_rows[static_cast<size_t>(index.row())];
    switch (role) {
    case Qt::DisplayRole:
    case TextRole:
        return row.text;
    case XRole:
        return (row.x - m_centerX) * m_zoom + 0.5 * m_width;
    case YRole:
        return (row.y - m_centerY) * m_zoom + 0.5 * m_height;
    case SlotRole:
        return row.slot;
    case RadiusRole:
        return row.radius * m_zoom;
    case ShownRole:
        return row.shown;
    default:
        return {};
    }
}

QHash<int, QByteArray> CaptionModel::roleNames() const
{
    return { { TextRole, "text" }, { XRole, "x" }, { YRole, "y" }, { SlotRole, "slot" }, { RadiusRole, "radius" },
        { ShownRole, "shown" } };
}

void CaptionModel::setScene(const std::shared_ptr<const CanvasScene>& scene)
{
    beginResetModel();
    m_rows.clear();
    if (scene && m_kind == Kind::Columns) {
        for (const AxisTick& tick : scene->columns)
            m_rows.push_back({ -1, tick.text, tick.at, 0, tick.extent });
    } else if (scene && m_kind == Kind::Rows) {
        for (const AxisTick& tick : scene->rows)
            m_rows.push_back({ -1, tick.text, 0, tick.at, tick.extent });
    } else if (scene) {
        for (size_t i = 0; i < scene->nodes.size() && m_rows.size() < static_cast<size_t>(kMaxCaptions); ++i) {
            const CanvasNode& node = scene->nodes[i];
            if (!node.caption.isEmpty()) {
                const int priority = (node.flags & NodeSelected) ? 0 : (node.flags & NodePinned) ? 1 : 2;
                m_rows.push_back({ static_cast<int>(i), node.caption, node.x, node.y, node.radius, priority });
            }
        }
    }
    if (m_kind == Kind::Captions) {
        QFont font;
        font.setPixelSize(kPixelSize);
        const QFontMetricsF metrics(font);
        for (Row& row : m_rows) {
            const QString firstLine = row.text.section(QLatin1Char('\n'), 0, 0);
            row.textWidth = std::min(kMaxWidth, metrics.horizontalAdvance(firstLine) + 2);
        }
        placeCaptions();
    }
    endResetModel();
}

void CaptionModel::setView(double zoom, double centerX, double centerY, double width, double height)
{
    if (zoom == m_zoom && centerX == m_centerX && centerY == m_centerY && width == m_width && height == m_height)
        return;
    m_zoom = zoom;
    m_centerX = centerX;
    m_centerY = centerY;
    m_width = width;
    m_height = height;
    if (m_kind == Kind::Captions)
        placeCaptions();
    if (!m_rows.empty())
        Q_EMIT dataChanged(
            index(0), index(static_cast<int>(m_rows.size()) - 1), { XRole, YRole, RadiusRole, ShownRole });
}

void CaptionModel::setReserved(double left, double bottom)
{
    if (left == m_reservedLeft && bottom == m_reservedBottom)
        return;
    m_reservedLeft = left;
    m_reservedBottom = bottom;
    if (m_kind == Kind::Captions) {
        placeCaptions();
        if (!m_rows.empty())
            Q_EMIT dataChanged(index(0), index(static_cast<int>(m_rows.size()) - 1), { ShownRole });
    }
}

void CaptionModel::placeCaptions()
{
    // Greedy, in priority order: each caption right of its node (left where the right leaves
    // the view, as GraphView.qml draws it), kept when it meets no caption kept before it and
    // no axis strip.
    std::vector<size_t> order(m_rows.size());
    std::iota(order.begin(), order.end(), size_t(0));
    std::stable_sort(
        order.begin(), order.end(), [&](size_t a, size_t b) { return m_rows[a].priority < m_rows[b].priority; });
    std::vector<QRectF> placed;
    const double height = kPixelSize + 4;
    for (const size_t i : order) {
        Row& row = m_rows[i];
        const double x = (row.x - m_centerX) * m_zoom + 0.5 * m_width;
        const double y = (row.y - m_centerY) * m_zoom + 0.5 * m_height;
        const double r = row.radius * m_zoom;
        double left = x + r + 3;
        if (left + row.textWidth > m_width)
            left = std::max(0.0, x - r - 3 - row.textWidth);
        const QRectF box(left, y - 0.5 * height, row.textWidth, height);
        const bool inStrip = box.left() < m_reservedLeft || box.bottom() > m_height - m_reservedBottom;
        const bool overlaps
            = std::any_of(placed.begin(), placed.end(), [&](const QRectF& other) { return other.intersects(box); });
        row.shown = !inStrip && !overlaps;
        if (row.shown)
            placed.push_back(box);
    }
}

} // namespace cs::app
