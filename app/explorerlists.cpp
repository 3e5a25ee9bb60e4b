#include "explorerlists.h"

namespace cs::app {

QVariant SubgraphListModel::rowData(const SubgraphRow& row, int role) const
{
    switch (role) {
    case Qt::DisplayRole:
    case LabelRole:
        return row.label;
    case IdRole:
        return row.id;
    case KindRole:
        return row.kind;
    case SupernodeRole:
        return row.supernode;
    case LayerRole:
        return row.layer;
    case PositionRole:
        return row.position;
    case CheckedRole:
        return row.checked;
    case SelectedRole:
        return row.selected;
    }
    return {};
}

QHash<int, QByteArray> SubgraphListModel::roleNames() const
{
    return { { IdRole, "nodeId" }, { LabelRole, "label" }, { KindRole, "kind" }, { SupernodeRole, "supernode" },
        { LayerRole, "layer" }, { PositionRole, "position" }, { CheckedRole, "marked" }, { SelectedRole, "selected" } };
}

QString InterventionListModel::summary(const InterventionRow& row)
{
    QString what;
    if (row.op == QLatin1String("ablate"))
        what = QStringLiteral("ablate");
    else if (row.op == QLatin1String("scale"))
        what = QStringLiteral("× %1").arg(row.value, 0, 'g', 3);
    else if (row.op == QLatin1String("add"))
        what = QStringLiteral("+ %1").arg(row.value, 0, 'g', 3);
    else
        what = QStringLiteral("= %1").arg(row.value, 0, 'g', 3);
    if (row.positions == QLatin1String("*"))
        what += QStringLiteral(" at every position");
    else if (!row.positions.isEmpty())
        what += QStringLiteral(" at %1").arg(row.positions);
    if (row.free)
        what += QStringLiteral(" (free)");
    return what;
}

QVariant InterventionListModel::rowData(const InterventionRow& row, int role) const
{
    switch (role) {
    case Qt::DisplayRole:
    case SummaryRole:
        return summary(row);
    case TargetRole:
        return row.target;
    case TargetLabelRole:
        return row.targetLabel;
    case OpRole:
        return row.op;
    case ValueRole:
        return row.value;
    case PositionsRole:
        return row.positions;
    case EnabledRole:
        return row.enabled;
    case FreeRole:
        return row.free;
    case CombinedRole:
        return row.combined;
    }
    return {};
}

QHash<int, QByteArray> InterventionListModel::roleNames() const
{
    return { { TargetRole, "target" }, { TargetLabelRole, "targetLabel" }, { OpRole, "op" }, { ValueRole, "value" },
        { PositionsRole, "positions" }, { EnabledRole, "enabled" }, { FreeRole, "free" }, { SummaryRole, "summary" },
        { CombinedRole, "combined" } };
}

QVariant TokenComparisonModel::rowData(const TokenComparisonRow& row, int role) const
{
    switch (role) {
    case Qt::DisplayRole:
    case TokenRole:
        return row.token;
    case IdRole:
        return row.id;
    case ProbBeforeRole:
        return row.probBefore;
    case ProbAfterRole:
        return row.probAfter;
    case LogitDeltaRole:
        return row.logitDelta;
    case RankBeforeRole:
        return row.rankBefore;
    case RankAfterRole:
        return row.rankAfter;
    }
    return {};
}

QHash<int, QByteArray> TokenComparisonModel::roleNames() const
{
    return { { TokenRole, "token" }, { IdRole, "tokenId" }, { ProbBeforeRole, "probBefore" },
        { ProbAfterRole, "probAfter" }, { LogitDeltaRole, "logitDelta" }, { RankBeforeRole, "rankBefore" },
        { RankAfterRole, "rankAfter" } };
}

} // namespace cs::app
