#include "connectionsmodel.h"

#include "explorerstate.h"
#include "tokentext.h"

#include <algorithm>
#include <cmath>

namespace cs::app {

ConnectionsModel::ConnectionsModel(QObject* parent)
    : QAbstractListModel(parent)
{
}

ConnectionsModel::~ConnectionsModel() = default;

void ConnectionsModel::setGraph(
    std::shared_ptr<const cs::graph::Graph> graph, std::shared_ptr<const cs::graph::PruneResult> pruned)
{
    m_graph = std::move(graph);
    m_pruned = m_graph ? std::move(pruned) : nullptr;
    m_adjacencyFits = m_graph && m_graph->adjacency.size() == m_graph->size();
    m_edgeMaskFits
        = m_adjacencyFits && m_pruned && static_cast<int64_t>(m_pruned->edgeMask.size()) == m_graph->adjacency.nnz();
    const int before = m_node;
    if (!m_graph || m_node >= m_graph->size())
        m_node = -1;
    rebuild();
    if (before != m_node)
        Q_EMIT nodeChanged();
}

void ConnectionsModel::setLabelFunction(LabelFunction labels)
{
    m_labels = std::move(labels);
    refreshLabels();
}

void ConnectionsModel::refreshLabels()
{
    for (Row& row : m_all)
        row.label = labelOf(row.node);
    if (!m_shown.empty())
        Q_EMIT dataChanged(index(0), index(static_cast<int>(m_shown.size()) - 1), { LabelRole });
}

void ConnectionsModel::setDirection(Direction direction)
{
    if (direction == m_direction)
        return;
    m_direction = direction;
    rebuild();
    Q_EMIT directionChanged();
}

void ConnectionsModel::setSign(SignFilter sign)
{
    if (sign == m_sign)
        return;
    m_sign = sign;
    rebuild();
    Q_EMIT signChanged();
}

void ConnectionsModel::setKeptOnly(bool keptOnly)
{
    if (keptOnly == m_keptOnly)
        return;
    m_keptOnly = keptOnly;
    rebuild();
    Q_EMIT keptOnlyChanged();
}

void ConnectionsModel::setLimit(int limit)
{
    limit = std::max(0, limit);
    if (limit == m_limit)
        return;
    m_limit = limit;
    rebuild();
    Q_EMIT limitChanged();
}

void ConnectionsModel::setNode(int node)
{
    if (!m_graph || node < 0 || node >= m_graph->size())
        node = -1;
    if (node == m_node)
        return;
    m_node = node;
    rebuild();
    Q_EMIT nodeChanged();
}

double ConnectionsModel::maxShare() const
{
    // Rows are sorted by |w| within each sign, so the largest share is a sign's first row.
    double best = 0;
    for (const Row& row : m_all)
        best = std::max(best, std::abs(row.weight));
    return m_absTotal > 0 ? best / m_absTotal : 0.0;
}

int ConnectionsModel::nodeAt(int row) const
{
    if (row < 0 || row >= static_cast<int>(m_shown.size()))
        return -1;
    return static_cast<int>(m_all[static_cast<std::size_t>(m_shown[static_cast<std::size_t>(row)])].node);
}

void ConnectionsModel::rebuild()
{
    beginResetModel();
    m_all.clear();
    m_shown.clear();
    m_positiveCount = 0;
    m_total = 0;
    m_absTotal = 0;

    if (m_graph && m_adjacencyFits && m_node >= 0) {
        const cs::graph::Adjacency& a = m_graph->adjacency;
        const float* values = a.values();
        // Inputs are row m_node's entries, outputs column m_node's (the transposed index); both
        // come ordered by the other node.
        const auto add = [&](int64_t other, int64_t entry) {
            const double w = values[entry];
            if ((m_sign == Positive && w < 0) || (m_sign == Negative && w > 0))
                return;
            // Without a prune result every nonzero edge counts as kept (keepAll's rule).
            const bool kept
                = m_edgeMaskFits ? static_cast<bool>(m_pruned->edgeMask[static_cast<std::size_t>(entry)]) : true;
            if (m_keptOnly && !kept)
                return;
            m_all.push_back({ other, w, kept, QString() });
        };
        if (m_direction == Inputs) {
            const cs::graph::Adjacency::Row row = a.row(m_node);
            for (int64_t k = 0; k < row.size; ++k)
                add(row.columns[k], row.entry(k));
        } else {
            const cs::graph::Adjacency::Column column = a.column(m_node);
            for (int64_t k = 0; k < column.size; ++k)
                add(column.targets[k], a.find(column.targets[k], m_node));
        }
        std::stable_sort(m_all.begin(), m_all.end(), [](const Row& x, const Row& y) {
            const bool px = x.weight > 0;
            const bool py = y.weight > 0;
            if (px != py)
                return px; // positive rows first
            if (std::abs(x.weight) != std::abs(y.weight))
                return std::abs(x.weight) > std::abs(y.weight);
            return x.node < y.node;
        });
        int positivesShown = 0;
        int negativesShown = 0;
        for (std::size_t i = 0; i < m_all.size(); ++i) {
            Row& row = m_all[i];
            row.label = labelOf(row.node);
            m_total += row.weight;
            m_absTotal += std::abs(row.weight);
            int& shownOfSign = row.weight > 0 ? positivesShown : negativesShown;
            if (row.weight > 0)
                ++m_positiveCount;
            if (m_limit == 0 || shownOfSign < m_limit) {
                m_shown.push_back(static_cast<int>(i));
                ++shownOfSign;
            }
        }
    }
    endResetModel();
    Q_EMIT rowsChanged();
}

QString ConnectionsModel::labelOf(int64_t index) const
{
    const cs::graph::Node& node = m_graph->nodes[static_cast<std::size_t>(index)];
    switch (node.kind) {
    case cs::graph::NodeKind::Feature: {
        if (m_labels) {
            QString label = m_labels(node.layer, node.feature);
            if (!label.isEmpty())
                return label;
        }
        if (!node.label.empty())
            return QString::fromStdString(node.label);
        if (!m_graph->metadata.basis.empty())
            return QStringLiteral("%1 L%2 #%3")
                .arg(QString::fromStdString(unitNoun(m_graph->metadata.basis)))
                .arg(node.layer)
                .arg(node.feature);
        return QStringLiteral("L%1 #%2").arg(node.layer).arg(node.feature);
    }
    case cs::graph::NodeKind::Error:
        return m_graph->metadata.basis.empty() ? QStringLiteral("Err L%1").arg(node.layer)
                                               : QStringLiteral("other units L%1").arg(node.layer);
    case cs::graph::NodeKind::Embedding:
    case cs::graph::NodeKind::Logit:
        return visibleTokenText(node.token);
    }
    return QString();
}

int ConnectionsModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : static_cast<int>(m_shown.size());
}

QVariant ConnectionsModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const Row& row = m_all[static_cast<std::size_t>(m_shown[static_cast<std::size_t>(index.row())])];
    const cs::graph::Node& node = m_graph->nodes[static_cast<std::size_t>(row.node)];
    switch (role) {
    case Qt::DisplayRole:
    case LabelRole:
        return row.label;
    case NodeIndexRole:
        return static_cast<int>(row.node);
    case NodeIdRole:
        return QString::fromStdString(cs::graph::nodeId(*m_graph, row.node));
    case KindNameRole:
        return QString::fromLatin1(cs::graph::nodeKindName(node.kind));
    case LayerRole:
        return static_cast<int>(node.layer);
    case PositionRole:
        return static_cast<int>(node.position);
    case FeatureRole:
        return static_cast<int>(node.kind == cs::graph::NodeKind::Feature ? node.feature : -1);
    case TokenRole:
        if (node.kind == cs::graph::NodeKind::Embedding || node.kind == cs::graph::NodeKind::Logit)
            return visibleTokenText(node.token);
        return QString();
    case WeightRole:
        return row.weight;
    case ShareRole:
        return m_absTotal > 0 ? std::abs(row.weight) / m_absTotal : 0.0;
    case PositiveRole:
        return row.weight > 0;
    case KeptRole:
        return row.kept;
    default:
        return {};
    }
}

QHash<int, QByteArray> ConnectionsModel::roleNames() const
{
    return {
        { NodeIndexRole, "nodeIndex" },
        { NodeIdRole, "nodeId" },
        { KindNameRole, "kindName" },
        { LayerRole, "layer" },
        { PositionRole, "position" },
        { FeatureRole, "feature" },
        { LabelRole, "label" },
        { TokenRole, "token" },
        { WeightRole, "weight" },
        { ShareRole, "share" },
        { PositiveRole, "positive" },
        { KeptRole, "kept" },
    };
}

} // namespace cs::app
