#pragma once
// The explorer's graph validation (docs/ARCHITECTURE.md §8.5, §12.1): the paper's perturbation
// experiments on the open graph, run on the engine worker (tags explorer-perturb,
// explorer-validate, explorer-table, §13). Owned by ExplorerController; QML reaches it as
// explorer.validation.
//   perturb():  edit a node or a supernode (ablate, or scale) and show the activity of every
//               node it has an edge into and of the logits after the edit, as a fraction of
//               its initial value: the graph's prediction (direct edges; path sums) beside the
//               replacement model's, in the constrained and the free regime (a bar chart).
//   validate(): the top N feature nodes by influence, each edited alone: predicted against
//               actual effect on the target logit in both regimes, Pearson's r (a scatter).
//   buildTable(): the target logits under the list of interventions, each alone and all
//               together (the paper's Figure 19 table).
// Results belong to one graph: a new graph clears them.

#include <QObject>
#include <QString>
#include <QStringList>
#include <QVariantList>
#include <QtQml/qqmlregistration.h>

#include <cstdint>
#include <vector>

namespace cs::app {

class ExplorerController;

class ExplorerValidation : public QObject {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("owned by ExplorerController")

    // Rows {nodeId, title, kind, initial, predictedConstrained, actualConstrained, predictedFree,
    // actualFree}: values after the edit as fractions of the initial one (1 = unchanged).
    Q_PROPERTY(QVariantList perturbation READ perturbation NOTIFY perturbationChanged)
    Q_PROPERTY(QString perturbationText READ perturbationText NOTIFY perturbationChanged)
    Q_PROPERTY(bool perturbing READ isPerturbing NOTIFY perturbationChanged)

    // Points {nodeId, title, influence, predicted, actualConstrained, predictedFree, actualFree}:
    // effects (changes) on the target logit, in demeaned logits.
    Q_PROPERTY(QVariantList points READ points NOTIFY validationChanged)
    Q_PROPERTY(double correlationConstrained READ correlationConstrained NOTIFY validationChanged)
    Q_PROPERTY(double correlationFree READ correlationFree NOTIFY validationChanged)
    // The same for the other top nodes each edit reaches: {sourceId, nodeId, title, predicted,
    // actualConstrained, predictedFree, actualFree}, changes of their activations.
    Q_PROPERTY(QVariantList downstreamPoints READ downstreamPoints NOTIFY validationChanged)
    Q_PROPERTY(double downstreamCorrelationConstrained READ downstreamCorrelationConstrained NOTIFY validationChanged)
    Q_PROPERTY(double downstreamCorrelationFree READ downstreamCorrelationFree NOTIFY validationChanged)
    Q_PROPERTY(QString validationText READ validationText NOTIFY validationChanged)
    Q_PROPERTY(bool validating READ isValidating NOTIFY validationChanged)

    // Columns: the graph's logit tokens (up to 4); rows {name, logits: [..], top, topProb}.
    Q_PROPERTY(QStringList tableTokens READ tableTokens NOTIFY tableChanged)
    Q_PROPERTY(QVariantList table READ table NOTIFY tableChanged)
    Q_PROPERTY(QString tableText READ tableText NOTIFY tableChanged)
    Q_PROPERTY(bool tabling READ isTabling NOTIFY tableChanged)

public:
    explicit ExplorerValidation(ExplorerController& core);

    QVariantList perturbation() const { return m_perturbation; }
    QString perturbationText() const { return m_perturbationText; }
    bool isPerturbing() const { return m_perturbing; }
    QVariantList points() const { return m_points; }
    double correlationConstrained() const { return m_correlationConstrained; }
    double correlationFree() const { return m_correlationFree; }
    QVariantList downstreamPoints() const { return m_downstreamPoints; }
    double downstreamCorrelationConstrained() const { return m_downstreamCorrelationConstrained; }
    double downstreamCorrelationFree() const { return m_downstreamCorrelationFree; }
    QString validationText() const { return m_validationText; }
    bool isValidating() const { return m_validating; }
    QStringList tableTokens() const { return m_tableTokens; }
    QVariantList table() const { return m_table; }
    QString tableText() const { return m_tableText; }
    bool isTabling() const { return m_tabling; }

    // target: a node id or "supernode:NAME"; op: "ablate" or "scale" (by value). Non-feature
    // members of a supernode are left out (they are not activations).
    Q_INVOKABLE void perturb(const QString& target, const QString& op, double value = 0);
    // The top n feature nodes by influence, each edited alone (op as above).
    Q_INVOKABLE void validate(int n, const QString& op, double value = 0);
    // The table of the current interventions (in the regime the intervention tab is set to).
    Q_INVOKABLE void buildTable();

    // Called by the core when the graph changes.
    void clear();

Q_SIGNALS:
    void perturbationChanged();
    void validationChanged();
    void tableChanged();

private:
    // The graph's feature nodes a target names; empty (with a message) when none.
    std::vector<int64_t> featureNodes(const QString& target, QString& name) const;
    QString caption(int64_t index) const;

    ExplorerController& m_core;
    QVariantList m_perturbation, m_points, m_downstreamPoints, m_table;
    QStringList m_tableTokens;
    QString m_perturbationText, m_validationText, m_tableText;
    double m_correlationConstrained = 0, m_correlationFree = 0;
    double m_downstreamCorrelationConstrained = 0, m_downstreamCorrelationFree = 0;
    bool m_perturbing = false, m_validating = false, m_tabling = false;
};

} // namespace cs::app
