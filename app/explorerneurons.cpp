#include "explorerneurons.h"

#include "explorercontroller.h"
#include "explorerengine.h"

#include <cs/error.h>
#include <cs/model.h>

#include <QPointer>
#include <QVariantMap>

namespace cs::app {

namespace {

QString qs(const std::string& s)
{
    return QString::fromStdString(s);
}

} // namespace

ExplorerNeurons::ExplorerNeurons(ExplorerController& core)
    : QObject(&core)
    , m_core(core)
{
    connect(&core, &ExplorerController::pruneChanged, this, &ExplorerNeurons::markChanged);
    connect(&core, &ExplorerController::selectionChanged, this, &ExplorerNeurons::updateCardNote);
}

void ExplorerNeurons::setBasis(const QString& basis)
{
    const QString b = basis == QLatin1String("neurons") ? basis : QStringLiteral("features");
    if (b == m_basis)
        return;
    m_basis = b;
    Q_EMIT optionsChanged();
}

void ExplorerNeurons::setMethod(const QString& method)
{
    const QString m = method == QLatin1String("ig") ? method : QStringLiteral("relp");
    if (m == m_method)
        return;
    m_method = m;
    Q_EMIT optionsChanged();
}

void ExplorerNeurons::setCounterfactual(const QString& text)
{
    if (text == m_counterfactual)
        return;
    m_counterfactual = text;
    Q_EMIT optionsChanged();
}

void ExplorerNeurons::setAnswer(const QString& text)
{
    if (text == m_answer)
        return;
    m_answer = text;
    Q_EMIT optionsChanged();
}

void ExplorerNeurons::setCounterfactualAnswer(const QString& text)
{
    if (text == m_counterfactualAnswer)
        return;
    m_counterfactualAnswer = text;
    Q_EMIT optionsChanged();
}

NeuronTraceSpec ExplorerNeurons::traceSpec() const
{
    NeuronTraceSpec spec;
    spec.on = tracesNeurons();
    spec.method = m_method.toStdString();
    // Answers keep their leading space (" Austin"); a prompt's surrounding blanks are noise.
    spec.counterfactual = m_counterfactual.trimmed().toStdString();
    spec.answer = m_answer.toStdString();
    spec.counterfactualAnswer = m_counterfactualAnswer.toStdString();
    if (m_answer.trimmed().isEmpty())
        spec.answer.clear();
    if (m_counterfactualAnswer.trimmed().isEmpty())
        spec.counterfactualAnswer.clear();
    return spec;
}

QString ExplorerNeurons::graphBasis() const
{
    return m_core.m_graph ? qs(m_core.m_graph->metadata.basis) : QString();
}

QString ExplorerNeurons::metricText() const
{
    const auto& graph = m_core.m_graph;
    if (!graph || graph->metadata.basis.empty())
        return {};
    const auto logits = graph->ranges().logits;
    if (logits.end <= logits.begin)
        return {};
    const auto& logit = graph->nodes[size_t(logits.begin)];
    QString text = QStringLiteral("logit(\"%1\")").arg(qs(logit.token));
    if (logit.contrastTokenId >= 0)
        text += QStringLiteral(" − logit(\"%1\")").arg(qs(logit.contrastToken));
    const auto& extra = graph->metadata.extra;
    if (const auto it = extra.find("neuron_trace"); it != extra.end() && it->is_object()) {
        const std::string method = it->value("method", std::string());
        text += method == "ig" ? QStringLiteral(" · integrated gradients") : QStringLiteral(" · RelP");
        const std::string counterfactual = it->value("counterfactual", std::string());
        if (!counterfactual.empty())
            text += QStringLiteral(" · against \"%1\"").arg(qs(counterfactual));
    }
    return text;
}

int ExplorerNeurons::unitCount() const
{
    if (!graphInUnits())
        return 0;
    const auto features = m_core.m_graph->ranges().features;
    return int(features.end - features.begin);
}

int ExplorerNeurons::curveMark() const
{
    if (!graphInUnits() || !m_core.m_pruned)
        return 0;
    const auto features = m_core.m_graph->ranges().features;
    int kept = 0;
    for (int64_t i = features.begin; i < features.end; ++i)
        kept += m_core.m_pruned->nodeMask[size_t(i)] ? 1 : 0;
    return kept;
}

QVariantList ExplorerNeurons::curvePoints() const
{
    QVariantList points;
    for (const auto& p : m_curve)
        points.push_back(QVariantMap { { QStringLiteral("k"), qint64(p.k) },
            { QStringLiteral("faithfulness"), p.faithfulness }, { QStringLiteral("completeness"), p.completeness } });
    return points;
}

void ExplorerNeurons::onGraphChanged()
{
    cancelCurve();
    ++m_curveGeneration;
    m_computing = false;
    m_curve.clear();
    m_ks.clear();
    m_curveText = graphInUnits()
        ? QStringLiteral("Compute the curve of this graph's circuits (k up to %1 units)").arg(unitCount())
        : QStringLiteral("Trace with neurons for a curve of faithfulness and completeness");
    Q_EMIT graphChanged();
    Q_EMIT curveChanged();
    Q_EMIT markChanged();
    updateCardNote();
}

void ExplorerNeurons::setStore(const QString& path, const QString& problem)
{
    if (path == m_storePath && problem == m_storeProblem)
        return;
    m_storePath = path;
    m_storeProblem = problem;
    Q_EMIT storeChanged();
    updateCardNote();
}

void ExplorerNeurons::updateCardNote()
{
    QString note;
    const int64_t index = m_core.indexOf(m_core.m_state.selected);
    const auto& graph = m_core.m_graph;
    if (graph && index >= 0 && !graph->metadata.basis.empty()
        && graph->nodes[size_t(index)].kind == cs::graph::NodeKind::Feature) {
        if (graph->metadata.basis != "neurons")
            note = QStringLiteral("Cards describe MLP neurons; this graph's units are %1s, which no store describes.")
                       .arg(qs(unitNoun(graph->metadata.basis)));
        else if (!m_storeProblem.isEmpty())
            note = QStringLiteral("The neuron store could not be opened: %1").arg(m_storeProblem);
        else if (m_storePath.isEmpty())
            note = QStringLiteral("No neuron store is present for this model (MODEL/features/neurons.db), so this "
                                  "neuron has no card. Build one with:\n%1")
                       .arg(QLatin1String(kBuildCommand));
    }
    if (note == m_cardNote)
        return;
    m_cardNote = note;
    Q_EMIT cardNoteChanged();
}

void ExplorerNeurons::computeCurve()
{
    const auto graph = m_core.m_graph;
    if (!graph || graph->metadata.basis.empty()) {
        m_curveText = QStringLiteral("The graph is not in the neuron basis: trace it with neurons first");
        Q_EMIT curveChanged();
        Q_EMIT curveFinished(false);
        return;
    }
    cancelCurve();
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    m_curveCancel = cancel;
    const quint64 generation = ++m_curveGeneration;
    m_ks = curveKs(unitCount(), curveMark());
    m_curve.clear();
    m_computing = true;
    m_curveProgress = 0;
    m_curveText = QStringLiteral("computing %1 circuits …").arg(m_ks.size());
    Q_EMIT curveChanged();
    Q_EMIT curveProgressChanged();

    QPointer<ExplorerNeurons> guard(this);
    auto progress = [guard, cancel, generation](double fraction) {
        QMetaObject::invokeMethod(
            guard.data(),
            [guard, fraction, generation] {
                if (!guard || generation != guard->m_curveGeneration)
                    return;
                guard->m_curveProgress = fraction;
                Q_EMIT guard->curveProgressChanged();
            },
            Qt::QueuedConnection);
        return !cancel->load();
    };
    const std::vector<int64_t> ks = m_ks;
    m_core.m_worker.request<cs::neurons::Curve>(
        QStringLiteral("explorer-curve"),
        [graph, ks, progress](EngineState& state) {
            if (!state.model)
                throw cs::Error("no model is open");
            return std::make_shared<const cs::neurons::Curve>(unitCurve(*state.model->model(), *graph, ks, progress));
        },
        [this, generation](std::shared_ptr<const cs::neurons::Curve> curve) {
            if (generation != m_curveGeneration)
                return;
            m_computing = false;
            m_curveCancel.reset();
            m_curve.clear();
            for (const auto& p : curve->points)
                m_curve.push_back({ p.k, p.faithfulness, p.completeness });
            m_curveText = QStringLiteral("%1 circuits in %2 s · m(full) %3, m(empty) %4")
                              .arg(m_curve.size())
                              .arg(curve->seconds, 0, 'f', 1)
                              .arg(curve->full, 0, 'g', 4)
                              .arg(curve->empty, 0, 'g', 4);
            Q_EMIT curveChanged();
            Q_EMIT curveFinished(true);
        },
        [this, generation, cancel](const QString& message) {
            if (generation != m_curveGeneration)
                return;
            m_computing = false;
            m_curveCancel.reset();
            m_curveText
                = cancel->load() ? QStringLiteral("Curve cancelled") : QStringLiteral("Curve failed: %1").arg(message);
            Q_EMIT curveChanged();
            Q_EMIT curveFinished(false);
        });
}

void ExplorerNeurons::cancelCurve()
{
    if (m_curveCancel)
        m_curveCancel->store(true);
}

} // namespace cs::app
