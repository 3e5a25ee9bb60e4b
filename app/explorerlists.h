#pragma once
// The explorer's own list models (the inspector's and the canvas's are in their parts):
// the subgraph's pinned nodes with their supernodes, the interventions, and the top tokens
// before and after the interventions. Each is reset whole from a new value.

#include <QAbstractListModel>
#include <QString>
#include <QtQml/qqmlregistration.h>

#include <vector>

namespace cs::app {

// One pinned node of the subgraph.
struct SubgraphRow {
    QString id;
    QString label; // what the subgraph shows for it
    QString kind; // feature, error, embedding, logit
    QString supernode; // the supernode it belongs to; empty when none
    int layer = 0;
    int position = 0;
    bool checked = false; // marked for grouping
    bool selected = false;
};

class SubgraphListModel : public QAbstractListModel {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("owned by ExplorerController")
    Q_PROPERTY(int count READ rowCount NOTIFY countChanged)
public:
    enum Role {
        IdRole = Qt::UserRole + 1,
        LabelRole,
        KindRole,
        SupernodeRole,
        LayerRole,
        PositionRole,
        CheckedRole,
        SelectedRole
    };
    using QAbstractListModel::QAbstractListModel;
    int rowCount(const QModelIndex& parent = {}) const override { return parent.isValid() ? 0 : int(m_rows.size()); }
    QVariant data(const QModelIndex& index, int role) const override;
    QHash<int, QByteArray> roleNames() const override;
    void setRows(std::vector<SubgraphRow> rows);
    const std::vector<SubgraphRow>& rows() const { return m_rows; }
Q_SIGNALS:
    void countChanged();

private:
    std::vector<SubgraphRow> m_rows;
};

struct InterventionRow {
    QString target; // node id or "supernode:NAME"
    QString targetLabel;
    QString op; // ablate, scale, inject
    double value = 0;
    QString positions; // "" (own), "*", "3,5"
    bool enabled = true;
    bool free = false;
};

class InterventionListModel : public QAbstractListModel {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("owned by ExplorerController")
    Q_PROPERTY(int count READ rowCount NOTIFY countChanged)
public:
    enum Role {
        TargetRole = Qt::UserRole + 1,
        TargetLabelRole,
        OpRole,
        ValueRole,
        PositionsRole,
        EnabledRole,
        FreeRole,
        SummaryRole
    };
    using QAbstractListModel::QAbstractListModel;
    int rowCount(const QModelIndex& parent = {}) const override { return parent.isValid() ? 0 : int(m_rows.size()); }
    QVariant data(const QModelIndex& index, int role) const override;
    QHash<int, QByteArray> roleNames() const override;
    void setRows(std::vector<InterventionRow> rows);
    // "ablate", "× -2", "= 5" for a row.
    static QString summary(const InterventionRow& row);
Q_SIGNALS:
    void countChanged();

private:
    std::vector<InterventionRow> m_rows;
};

// A token in the top-k before or after the interventions.
struct TokenComparisonRow {
    QString token; // display text
    qint64 id = 0;
    double probBefore = 0;
    double probAfter = 0;
    double logitDelta = 0; // after - before
    int rankBefore = -1; // -1: not in the top-k before
    int rankAfter = -1;
};

class TokenComparisonModel : public QAbstractListModel {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("owned by ExplorerController")
    Q_PROPERTY(int count READ rowCount NOTIFY countChanged)
public:
    enum Role {
        TokenRole = Qt::UserRole + 1,
        IdRole,
        ProbBeforeRole,
        ProbAfterRole,
        LogitDeltaRole,
        RankBeforeRole,
        RankAfterRole
    };
    using QAbstractListModel::QAbstractListModel;
    int rowCount(const QModelIndex& parent = {}) const override { return parent.isValid() ? 0 : int(m_rows.size()); }
    QVariant data(const QModelIndex& index, int role) const override;
    QHash<int, QByteArray> roleNames() const override;
    void setRows(std::vector<TokenComparisonRow> rows);
    const std::vector<TokenComparisonRow>& rows() const { return m_rows; }
Q_SIGNALS:
    void countChanged();

private:
    std::vector<TokenComparisonRow> m_rows;
};

} // namespace cs::app
