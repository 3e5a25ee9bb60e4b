#include "captionmodel.h"

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
    default:
        return {};
    }
}

QHash<int, QByteArray> CaptionModel::roleNames() const
{
    return { { TextRole, "text" }, { XRole, "x" }, { YRole, "y" }, { SlotRole, "slot" }, { RadiusRole, "radius" } };
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
            if (!node.caption.isEmpty())
                m_rows.push_back({ static_cast<int>(i), node.caption, node.x, node.y, node.radius });
        }
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
    if (!m_rows.empty())
        Q_EMIT dataChanged(index(0), index(static_cast<int>(m_rows.size()) - 1), { XRole, YRole, RadiusRole });
}

} // namespace cs::app
