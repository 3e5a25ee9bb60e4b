#pragma once
// The explorer's own list models (the inspector's and the canvas's are in their parts):
// the subgraph's pinned nodes with their supernodes, the interventions, and the top tokens
// before and after the interventions. Each is reset whole from a new value.

#include <QAbstractListModel>
#include <QString>
#include <QtQml/qqmlregistration.h>

#include <vector>

namespace cs::app {

// A list model over a vector of plain rows, replaced whole: one beginResetModel()/
// endResetModel() pair per new vector. Subclasses say what each role of a row is and emit
// their count property's signal (moc cannot see signals of a template).
template<typename Row> class RowListModel : public QAbstractListModel {
public:
    using QAbstractListModel::QAbstractListModel;
    int rowCount(const QModelIndex& parent = {}) const override { return parent.isValid() ? 0 : int(m_rows.size()); }
    QVariant data(const QModelIndex& index, int role) const override
    {
        if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
            return {};
        return rowData(m_rows[size_t(index.row())], role);
    }
    // Same count: the rows change in place (dataChanged), so views keep their delegates, and a
    // slider in a row being dragged stays under the mouse. Otherwise a reset.
    void setRows(std::vector<Row> rows)
    {
        const bool countChanges = rows.size() != m_rows.size();
        if (!countChanges) {
            m_rows = std::move(rows);
            if (!m_rows.empty())
                Q_EMIT dataChanged(index(0), index(int(m_rows.size()) - 1));
            return;
        }
        beginResetModel();
        m_rows = std::move(rows);
        endResetModel();
        if (countChanges)
            countChangedEvent();
    }
    const std::vector<Row>& rows() const { return m_rows; }

protected:
    virtual QVariant rowData(const Row& row, int role) const = 0;
    virtual void countChangedEvent() = 0;

private:
    std::vector<Row> m_rows;
};

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

class SubgraphListModel : public RowListModel<SubgraphRow> {
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
    using RowListModel<SubgraphRow>::RowListModel;
    QHash<int, QByteArray> roleNames() const override;
Q_SIGNALS:
    void countChanged();

protected:
    QVariant rowData(const SubgraphRow& row, int role) const override;
    void countChangedEvent() override { Q_EMIT countChanged(); }
};

struct InterventionRow {
    QString target; // node id or "supernode:NAME"
    QString targetLabel;
    QString op; // ablate, scale, inject
    double value = 0;
    QString positions; // "" (own), "*", "3,5"
    bool enabled = true;
    bool free = false;
    // When other enabled rows edit the same target at the same positions, how they compose in
    // list order, e.g. "with row 1: ablate, then × -2 → = 0"; empty otherwise.
    QString combined;
};

class InterventionListModel : public RowListModel<InterventionRow> {
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
        SummaryRole,
        CombinedRole
    };
    using RowListModel<InterventionRow>::RowListModel;
    QHash<int, QByteArray> roleNames() const override;
    // "ablate", "× -2", "= 5" for a row.
    static QString summary(const InterventionRow& row);
Q_SIGNALS:
    void countChanged();

protected:
    QVariant rowData(const InterventionRow& row, int role) const override;
    void countChangedEvent() override { Q_EMIT countChanged(); }
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

class TokenComparisonModel : public RowListModel<TokenComparisonRow> {
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
    using RowListModel<TokenComparisonRow>::RowListModel;
    QHash<int, QByteArray> roleNames() const override;
Q_SIGNALS:
    void countChanged();

protected:
    QVariant rowData(const TokenComparisonRow& row, int role) const override;
    void countChangedEvent() override { Q_EMIT countChanged(); }
};

} // namespace cs::app
