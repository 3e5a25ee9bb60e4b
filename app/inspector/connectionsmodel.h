#pragma once
// The input or output connections of one node of an attribution graph, one row per edge.
//
// adjacency[t, s] is the direct effect of source s on target t (cs/graph.h), so the inputs of
// node n are the sources s with adjacency[n, s] != 0 and its outputs the targets t with
// adjacency[t, n] != 0. With keptOnly (the default) only the edges the prune kept are listed.
//
// Row order: positive weights first, descending, then negative weights, ascending (the
// strongest edge of each sign first); equal weights by node index. share = |w| / sum |w| over
// every row that passes the direction, sign and kept filters (before the per-sign limit), so
// the shares of an unlimited model sum to 1.

#include <cs/graph.h>

#include <QAbstractListModel>
#include <QString>
#include <QtQml/qqmlregistration.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace cs::app {

class ConnectionsModel : public QAbstractListModel {
    Q_OBJECT
    QML_ELEMENT
    Q_PROPERTY(Direction direction READ direction WRITE setDirection NOTIFY directionChanged)
    Q_PROPERTY(SignFilter sign READ sign WRITE setSign NOTIFY signChanged)
    Q_PROPERTY(bool keptOnly READ keptOnly WRITE setKeptOnly NOTIFY keptOnlyChanged)
    // Rows shown per sign, strongest first; 0 shows every row.
    Q_PROPERTY(int limit READ limit WRITE setLimit NOTIFY limitChanged)
    // The node whose connections are listed; -1 for none.
    Q_PROPERTY(int node READ node WRITE setNode NOTIFY nodeChanged)
    Q_PROPERTY(bool hasGraph READ hasGraph NOTIFY rowsChanged)
    Q_PROPERTY(int count READ rowCount NOTIFY rowsChanged) // rows shown
    // Rows passing the filters before the limit, and of each sign.
    Q_PROPERTY(int available READ available NOTIFY rowsChanged)
    Q_PROPERTY(int positiveCount READ positiveCount NOTIFY rowsChanged)
    Q_PROPERTY(int negativeCount READ negativeCount NOTIFY rowsChanged)
    Q_PROPERTY(double total READ total NOTIFY rowsChanged) // sum of w over the available rows
    Q_PROPERTY(double absTotal READ absTotal NOTIFY rowsChanged) // sum of |w| over them
    Q_PROPERTY(double maxShare READ maxShare NOTIFY rowsChanged) // the largest share (bar scale)
public:
    enum Direction { Inputs, Outputs };
    Q_ENUM(Direction)
    enum SignFilter { All, Positive, Negative };
    Q_ENUM(SignFilter)

    enum Role {
        NodeIndexRole = Qt::UserRole + 1, // int, index into graph.nodes
        NodeIdRole, // cs::graph::nodeId ("3_918_5")
        KindNameRole, // "feature", "error", "embedding", "logit"
        LayerRole,
        PositionRole,
        FeatureRole, // -1 for the kinds that are not features
        LabelRole, // the label function's, the node's, "L3 #918", token text, "Err L2"
        TokenRole, // embeddings and logits: the token with whitespace made visible; else ""
        WeightRole, // the edge's direct effect
        ShareRole, // |w| / absTotal
        PositiveRole, // w > 0
        KeptRole, // the prune kept the edge (always true with keptOnly)
    };
    Q_ENUM(Role)

    // A feature's label, e.g. the feature store's or the user's; an empty result falls back to
    // the node's own label, then to "L{layer} #{feature}".
    using LabelFunction = std::function<QString(int64_t layer, int64_t feature)>;

    explicit ConnectionsModel(QObject* parent = nullptr);
    ~ConnectionsModel() override;

    // The graph and which of its edges the prune kept (null: every nonzero edge counts as
    // kept). The node is kept when it is still in range, else cleared. One model reset.
    void setGraph(std::shared_ptr<const cs::graph::Graph> graph, std::shared_ptr<const cs::graph::PruneResult> pruned);
    std::shared_ptr<const cs::graph::Graph> graph() const { return m_graph; }
    void setLabelFunction(LabelFunction labels);
    // Re-asks the label function for every row (after the user renamed a feature).
    Q_INVOKABLE void refreshLabels();

    Direction direction() const { return m_direction; }
    void setDirection(Direction direction);
    SignFilter sign() const { return m_sign; }
    void setSign(SignFilter sign);
    bool keptOnly() const { return m_keptOnly; }
    void setKeptOnly(bool keptOnly);
    int limit() const { return m_limit; }
    void setLimit(int limit);
    int node() const { return m_node; }
    void setNode(int node); // out of range: -1

    bool hasGraph() const { return m_graph != nullptr; }
    int available() const { return static_cast<int>(m_all.size()); }
    int positiveCount() const { return m_positiveCount; }
    int negativeCount() const { return available() - m_positiveCount; }
    double total() const { return m_total; }
    double absTotal() const { return m_absTotal; }
    double maxShare() const;
    // The node index of a shown row, -1 out of range.
    Q_INVOKABLE int nodeAt(int row) const;

    int rowCount(const QModelIndex& parent = QModelIndex()) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QHash<int, QByteArray> roleNames() const override;

Q_SIGNALS:
    void directionChanged();
    void signChanged();
    void keptOnlyChanged();
    void limitChanged();
    void nodeChanged();
    void rowsChanged();

private:
    struct Row {
        int64_t node = 0;
        double weight = 0;
        bool kept = true;
        QString label;
    };

    // Recomputes the rows from the graph (one model reset).
    void rebuild();
    QString labelOf(int64_t index) const;

    std::shared_ptr<const cs::graph::Graph> m_graph;
    std::shared_ptr<const cs::graph::PruneResult> m_pruned;
    // Whether m_graph's adjacency and m_pruned's edge mask fit the graph (the engine validates
    // both; one that does not fit is not read at all).
    bool m_adjacencyFits = false;
    bool m_edgeMaskFits = false;
    LabelFunction m_labels;

    Direction m_direction = Inputs;
    SignFilter m_sign = All;
    bool m_keptOnly = true;
    int m_limit = 0;
    int m_node = -1;

    std::vector<Row> m_all; // every row passing the filters, in row order
    std::vector<int> m_shown; // indices into m_all of the rows shown (the limit per sign)
    int m_positiveCount = 0;
    double m_total = 0;
    double m_absTotal = 0;
};

} // namespace cs::app
