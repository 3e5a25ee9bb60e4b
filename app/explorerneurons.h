#pragma once
// The explorer's neuron basis (DESIGN §8, cs/neurons.h): the basis switch and the neuron trace's
// options (counterfactual prompt, answers, method), what the current graph's units are, the
// neuron store behind their cards, and the faithfulness / completeness curve of the current
// circuit, computed on the engine worker (tag explorer-curve). Owned by ExplorerController,
// which QML reaches it through (explorer.neurons); the trace itself runs through the core's
// trace() so progress, cancel, pruning, the inspector and sessions are the transcoder graph's.

#include <QObject>
#include <QString>
#include <QVariantList>
#include <QtQml/qqmlregistration.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace cs::app {

class ExplorerController;
struct NeuronTraceSpec; // explorerengine.h

// One point of the curve (cs::neurons::CurvePoint, without the engine's header).
struct UnitCurvePoint {
    int64_t k = 0;
    double faithfulness = 0, completeness = 0;
};

class ExplorerNeurons : public QObject {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("owned by ExplorerController")

    // What the next trace attributes to: "features" (the transcoder's) or "neurons".
    Q_PROPERTY(QString basis READ basis WRITE setBasis NOTIFY optionsChanged)
    // The neuron trace's options: "relp" or "ig"; a counterfactual prompt of as many tokens;
    // the answer and counterfactual answer as text (empty: the predicted tokens).
    Q_PROPERTY(QString method READ method WRITE setMethod NOTIFY optionsChanged)
    Q_PROPERTY(QString counterfactual READ counterfactual WRITE setCounterfactual NOTIFY optionsChanged)
    Q_PROPERTY(QString answer READ answer WRITE setAnswer NOTIFY optionsChanged)
    Q_PROPERTY(
        QString counterfactualAnswer READ counterfactualAnswer WRITE setCounterfactualAnswer NOTIFY optionsChanged)

    // The current graph: its basis ("" for transcoder features, "neurons", ...), its metric.
    Q_PROPERTY(QString graphBasis READ graphBasis NOTIFY graphChanged)
    Q_PROPERTY(bool graphInUnits READ graphInUnits NOTIFY graphChanged)
    Q_PROPERTY(QString metricText READ metricText NOTIFY graphChanged) // logit(" Austin") − logit(" Dallas")
    Q_PROPERTY(int unitCount READ unitCount NOTIFY graphChanged) // the graph's unit nodes

    // The model's neuron store (features::findUnitStore) and what the selected unit's card says
    // when it cannot show one.
    Q_PROPERTY(bool hasUnitStore READ hasUnitStore NOTIFY storeChanged)
    Q_PROPERTY(QString storePath READ storePath NOTIFY storeChanged)
    Q_PROPERTY(QString cardNote READ cardNote NOTIFY cardNoteChanged)

    // The curve: points {k, faithfulness, completeness}, the pruned graph's unit count (the mark).
    Q_PROPERTY(bool computingCurve READ computingCurve NOTIFY curveChanged)
    Q_PROPERTY(double curveProgress READ curveProgress NOTIFY curveProgressChanged)
    Q_PROPERTY(QString curveText READ curveText NOTIFY curveChanged)
    Q_PROPERTY(QVariantList curvePoints READ curvePoints NOTIFY curveChanged)
    Q_PROPERTY(int curveMark READ curveMark NOTIFY markChanged)

public:
    // How to build the store the cards read (the README gives the full command).
    static constexpr const char* kBuildCommand = "circuitscope-cli features build MODEL --basis neurons ...";

    explicit ExplorerNeurons(ExplorerController& core);

    QString basis() const { return m_basis; }
    void setBasis(const QString& basis);
    QString method() const { return m_method; }
    void setMethod(const QString& method);
    QString counterfactual() const { return m_counterfactual; }
    void setCounterfactual(const QString& text);
    QString answer() const { return m_answer; }
    void setAnswer(const QString& text);
    QString counterfactualAnswer() const { return m_counterfactualAnswer; }
    void setCounterfactualAnswer(const QString& text);
    bool tracesNeurons() const { return m_basis == QLatin1String("neurons"); }
    // The options of a neuron trace (on: false in the features basis).
    NeuronTraceSpec traceSpec() const;

    QString graphBasis() const;
    bool graphInUnits() const { return !graphBasis().isEmpty(); }
    QString metricText() const;
    int unitCount() const;

    bool hasUnitStore() const { return !m_storePath.isEmpty(); }
    QString storePath() const { return m_storePath; }
    QString cardNote() const { return m_cardNote; }

    bool computingCurve() const { return m_computing; }
    double curveProgress() const { return m_curveProgress; }
    QString curveText() const { return m_curveText; }
    QVariantList curvePoints() const;
    int curveMark() const;
    // The last curve, as the engine gave it (tests).
    const std::vector<UnitCurvePoint>& curve() const { return m_curve; }
    const std::vector<int64_t>& curveKsAsked() const { return m_ks; }

    // Computes the curve of the current unit graph's prompt and metric on the worker: k from 1
    // to its unit count, the pruned graph's count among them.
    Q_INVOKABLE void computeCurve();
    Q_INVOKABLE void cancelCurve();

    // Called by the core: a new graph (the curve belongs to the one before), the unit store
    // found for it, the selection (the card note).
    void onGraphChanged();
    void setStore(const QString& path, const QString& problem);
    void updateCardNote();

Q_SIGNALS:
    void optionsChanged();
    void graphChanged();
    void storeChanged();
    void cardNoteChanged();
    void curveChanged();
    void curveProgressChanged();
    void markChanged();
    // A curve finished: ok false when it failed or was cancelled (curveText says why).
    void curveFinished(bool ok);

private:
    ExplorerController& m_core;
    QString m_basis = QStringLiteral("features");
    QString m_method = QStringLiteral("relp");
    QString m_counterfactual, m_answer, m_counterfactualAnswer;
    QString m_storePath, m_storeProblem, m_cardNote;

    bool m_computing = false;
    double m_curveProgress = 0;
    QString m_curveText;
    std::vector<UnitCurvePoint> m_curve;
    std::vector<int64_t> m_ks;
    std::shared_ptr<std::atomic<bool>> m_curveCancel;
    quint64 m_curveGeneration = 0;
};

} // namespace cs::app
