#include "explorervalidation.h"

#include "explorercontroller.h"
#include "explorerengine.h"

#include <algorithm>
#include <cmath>
#include <set>

namespace cs::app {

namespace {

QString qs(const std::string& s)
{
    return QString::fromStdString(s);
}

// value / initial, the chart's unit; 1 when nothing was there to begin with and nothing moved.
double fraction(double value, double initial)
{
    if (initial == 0)
        return value == 0 ? 1.0 : (value > 0 ? 2.0 : -1.0);
    return value / initial;
}

// "ablate" -> 0, "scale" -> value; NaN for anything else.
double factorOf(const QString& op, double value)
{
    if (op == QLatin1String("ablate"))
        return 0;
    if (op == QLatin1String("scale") && std::isfinite(value))
        return value;
    return std::nan("");
}

// The four numbers of an edit's effect on one node, as the validation page's points hold them.
template<typename Point> QVariantMap effectMap(const Point& p)
{
    return { { QStringLiteral("predicted"), p.predicted }, { QStringLiteral("actualConstrained"), p.actualConstrained },
        { QStringLiteral("predictedFree"), p.predictedFree }, { QStringLiteral("actualFree"), p.actualFree } };
}

QString editText(const QString& op, double factor)
{
    return op == QLatin1String("ablate") ? QStringLiteral("ablate")
                                         : QStringLiteral("scale ×%1").arg(factor, 0, 'g', 3);
}

} // namespace

ExplorerValidation::ExplorerValidation(ExplorerController& core)
    : QObject(&core)
    , m_core(core)
{
}

QString ExplorerValidation::caption(int64_t index) const
{
    // "L3 #321 at 12 · «is» after …": the node, then its label or the card's description.
    const QString title = m_core.nodeTitle(index);
    const std::string caption = m_core.captionOf(index);
    QString text = caption.empty() ? title : title + QStringLiteral(" · ") + qs(caption);
    text.replace(QLatin1Char('\n'), QChar(0x23CE)); // one line in the chart's rows
    return text;
}

std::vector<int64_t> ExplorerValidation::featureNodes(const QString& target, QString& name) const
{
    std::vector<int64_t> out;
    if (!m_core.m_graph)
        return out;
    Intervention probe; // names the target the way an intervention does
    probe.target = target.toStdString();
    const auto supernode = supernodeOfTarget(probe.target);
    name = supernode ? qs(*supernode) : caption(m_core.indexOf(probe.target));
    std::set<int64_t> seen;
    for (const std::string& id : interventionNodes(m_core.m_state, probe)) {
        const int64_t i = m_core.indexOf(id);
        if (i >= 0 && m_core.m_graph->nodes[size_t(i)].kind == cs::graph::NodeKind::Feature && seen.insert(i).second)
            out.push_back(i);
    }
    return out;
}

void ExplorerValidation::perturb(const QString& target, const QString& op, double value)
{
    if (m_core.unitGraph()) {
        m_perturbationText = QStringLiteral(
            "This checks a transcoder graph's predictions against the model; a neuron graph's units are "
            "the model's own: edit them in Interventions, and see its circuits' curve in Circuit");
        Q_EMIT perturbationChanged();
        return;
    }
    if (!m_core.m_graph || !m_core.m_contextReady)
        return;
    const double factor = factorOf(op, value);
    QString name;
    const std::vector<int64_t> sources = featureNodes(target, name);
    if (std::isnan(factor) || sources.empty()) {
        m_perturbationText = std::isnan(factor)
            ? QStringLiteral("A perturbation ablates or scales by a finite factor")
            : QStringLiteral("%1 has no feature node to edit (error nodes, embeddings and logits are not activations)")
                  .arg(name.isEmpty() ? target : name);
        m_perturbation.clear();
        Q_EMIT perturbationChanged();
        return;
    }
    auto resources = m_core.m_resources;
    auto graph = m_core.m_graph;
    m_perturbing = true;
    Q_EMIT perturbationChanged();
    m_core.m_worker.request<cs::validation::PerturbationResult>(
        QStringLiteral("explorer-perturb"),
        [resources, graph, sources, factor](EngineState&) {
            return std::make_shared<const cs::validation::PerturbationResult>(
                runPerturbation(*resources, *graph, sources, factor));
        },
        [this, graph, name, op, factor](std::shared_ptr<const cs::validation::PerturbationResult> r) {
            m_perturbing = false;
            if (graph != m_core.m_graph)
                return;
            m_perturbation.clear();
            // The logits first (what the edit does to the answer), then the features it reaches.
            std::vector<cs::validation::NodeActivity> rows = r->nodes;
            std::stable_partition(rows.begin(), rows.end(), [&](const cs::validation::NodeActivity& a) {
                return graph->nodes[size_t(a.node)].kind == cs::graph::NodeKind::Logit;
            });
            for (const auto& a : rows) {
                const auto& node = graph->nodes[size_t(a.node)];
                m_perturbation.append(QVariantMap {
                    { QStringLiteral("nodeId"), qs(cs::graph::nodeId(*graph, a.node)) },
                    { QStringLiteral("title"), caption(a.node) },
                    { QStringLiteral("kind"), QString::fromLatin1(cs::graph::nodeKindName(node.kind)) },
                    { QStringLiteral("initial"), a.initial },
                    { QStringLiteral("predictedConstrained"), fraction(a.predictedConstrained, a.initial) },
                    { QStringLiteral("actualConstrained"), fraction(a.actualConstrained, a.initial) },
                    { QStringLiteral("predictedFree"), fraction(a.predictedFree, a.initial) },
                    { QStringLiteral("actualFree"), fraction(a.actualFree, a.initial) },
                });
            }
            m_perturbationText
                = QStringLiteral("%1 %2 (%3 feature node%4): %5 nodes it reaches, as a fraction of their "
                                 "activity before")
                      .arg(editText(op, factor), name)
                      .arg(r->sources.size())
                      .arg(r->sources.size() == 1 ? "" : "s")
                      .arg(r->nodes.size());
            Q_EMIT perturbationChanged();
        },
        [this](const QString& message) {
            m_perturbing = false;
            m_perturbationText = message;
            Q_EMIT perturbationChanged();
        });
}

void ExplorerValidation::validate(int n, const QString& op, double value)
{
    if (m_core.unitGraph()) {
        m_validationText = QStringLiteral(
            "This checks a transcoder graph's predictions against the model; a neuron graph's units are "
            "the model's own: edit them in Interventions, and see its circuits' curve in Circuit");
        Q_EMIT validationChanged();
        return;
    }
    if (!m_core.m_graph || !m_core.m_contextReady)
        return;
    const double factor = factorOf(op, value);
    if (std::isnan(factor) || n < 1) {
        m_validationText
            = QStringLiteral("Validation edits at least one node, by ablating or scaling by a finite factor");
        Q_EMIT validationChanged();
        return;
    }
    auto resources = m_core.m_resources;
    auto graph = m_core.m_graph;
    m_validating = true;
    Q_EMIT validationChanged();
    m_core.m_worker.request<cs::validation::Validation>(
        QStringLiteral("explorer-validate"),
        [resources, graph, n, factor](EngineState&) {
            return std::make_shared<const cs::validation::Validation>(runValidation(*resources, *graph, n, factor));
        },
        [this, graph, op, factor](std::shared_ptr<const cs::validation::Validation> v) {
            m_validating = false;
            if (graph != m_core.m_graph)
                return;
            m_points.clear();
            for (const auto& p : v->points) {
                QVariantMap point = effectMap(p);
                point.insert(QStringLiteral("nodeId"), qs(cs::graph::nodeId(*graph, p.node)));
                point.insert(QStringLiteral("title"), caption(p.node));
                point.insert(QStringLiteral("influence"), p.influence);
                m_points.append(point);
            }
            m_downstreamPoints.clear();
            for (const auto& d : v->downstream) {
                QVariantMap point = effectMap(d);
                point.insert(QStringLiteral("sourceId"), qs(cs::graph::nodeId(*graph, d.source)));
                point.insert(QStringLiteral("nodeId"), qs(cs::graph::nodeId(*graph, d.node)));
                point.insert(QStringLiteral("title"), caption(d.node));
                m_downstreamPoints.append(point);
            }
            m_correlationConstrained = v->correlation.constrained;
            m_correlationFree = v->correlation.free;
            m_downstreamCorrelationConstrained = v->downstreamCorrelation.constrained;
            m_downstreamCorrelationFree = v->downstreamCorrelation.free;
            const auto r
                = [](double x) { return std::isfinite(x) ? QString::number(x, 'f', 3) : QStringLiteral("undefined"); };
            m_validationText
                = QStringLiteral("%1 each of the %2 most influential features: effect on “%3”. r = %4 constrained, "
                                 "%5 free; downstream (%6 pairs) %7, %8")
                      .arg(editText(op, factor))
                      .arg(v->points.size())
                      .arg(qs(graph->nodes[size_t(v->target)].token))
                      .arg(r(v->correlation.constrained), r(v->correlation.free))
                      .arg(v->downstream.size())
                      .arg(r(v->downstreamCorrelation.constrained), r(v->downstreamCorrelation.free));
            Q_EMIT validationChanged();
        },
        [this](const QString& message) {
            m_validating = false;
            m_validationText = message;
            Q_EMIT validationChanged();
        });
}

void ExplorerValidation::buildTable()
{
    if (m_core.unitGraph()) {
        m_tableText = QStringLiteral(
            "This checks a transcoder graph's predictions against the model; a neuron graph's units are "
            "the model's own: edit them in Interventions, and see its circuits' curve in Circuit");
        Q_EMIT tableChanged();
        return;
    }
    if (!m_core.m_graph || !m_core.m_contextReady)
        return;
    const auto& graph = *m_core.m_graph;
    const cs::graph::KindRanges ranges = graph.ranges();
    std::vector<int64_t> tokens;
    QStringList names;
    for (int64_t t = ranges.logits.begin; t < ranges.logits.end && tokens.size() < 4; ++t) {
        tokens.push_back(graph.nodes[size_t(t)].tokenId);
        names << qs(graph.nodes[size_t(t)].token);
    }
    // The model's own output, each enabled intervention alone, then all of them together.
    std::vector<std::pair<std::string, std::vector<cs::intervention::FeatureEdit>>> rows;
    rows.emplace_back("No intervention", std::vector<cs::intervention::FeatureEdit> {});
    const ExplorerState& state = m_core.m_state;
    size_t enabled = 0;
    for (size_t k = 0; k < state.interventions.size(); ++k) {
        if (!state.interventions[k].enabled)
            continue;
        ++enabled;
        ExplorerState alone = state;
        for (size_t j = 0; j < alone.interventions.size(); ++j)
            alone.interventions[j].enabled = j == k;
        const auto edits = interventionEdits(graph, alone);
        if (edits.empty())
            continue;
        const QModelIndex index = m_core.m_interventions->list()->index(int(k), 0);
        const QString label
            = m_core.m_interventions->list()->data(index, InterventionListModel::TargetLabelRole).toString()
            + QStringLiteral(": ")
            + m_core.m_interventions->list()->data(index, InterventionListModel::SummaryRole).toString();
        rows.emplace_back(label.toStdString(), edits);
    }
    if (enabled > 1)
        rows.emplace_back("All together", interventionEdits(graph, state));
    const auto regime
        = m_core.m_interventions->freeRegime() ? cs::intervention::Regime::Free : cs::intervention::Regime::Constrained;
    auto resources = m_core.m_resources;
    auto graphPtr = m_core.m_graph;
    m_tabling = true;
    Q_EMIT tableChanged();
    using Table = std::vector<InterventionTableRow>;
    m_core.m_worker.request<Table>(
        QStringLiteral("explorer-table"),
        [resources, rows, tokens, regime](EngineState&) {
            return std::make_shared<const Table>(interventionTable(*resources, rows, tokens, regime));
        },
        [this, graphPtr, names, regime](std::shared_ptr<const Table> table) {
            m_tabling = false;
            if (graphPtr != m_core.m_graph)
                return;
            m_tableTokens = names;
            m_table.clear();
            for (const auto& row : *table) {
                QVariantList logits;
                for (double l : row.logits)
                    logits.append(l);
                m_table.append(
                    QVariantMap { { QStringLiteral("name"), qs(row.name) }, { QStringLiteral("logits"), logits },
                        { QStringLiteral("top"), qs(row.top) }, { QStringLiteral("topProb"), row.topProb } });
            }
            m_tableText = QStringLiteral("Logits at the last position, %1 regime")
                              .arg(QString::fromLatin1(cs::intervention::regimeName(regime)));
            Q_EMIT tableChanged();
        },
        [this](const QString& message) {
            m_tabling = false;
            m_tableText = message;
            Q_EMIT tableChanged();
        });
}

void ExplorerValidation::clear()
{
    m_perturbation.clear();
    m_points.clear();
    m_downstreamPoints.clear();
    m_table.clear();
    m_tableTokens.clear();
    m_perturbationText.clear();
    m_validationText.clear();
    m_tableText.clear();
    m_correlationConstrained = m_correlationFree = 0;
    m_downstreamCorrelationConstrained = m_downstreamCorrelationFree = 0;
    Q_EMIT perturbationChanged();
    Q_EMIT validationChanged();
    Q_EMIT tableChanged();
}

} // namespace cs::app
