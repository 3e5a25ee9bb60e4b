#include "explorerinterventions.h"

#include "explorercontroller.h"
#include "explorerengine.h"

#include <cmath>
#include <map>

namespace cs::app {

namespace {

// Undo merge id of a value slider: consecutive moves collapse into one undo step (the core's
// thresholds use 1 and 2).
constexpr int kMergeInterventionValue = 3;

QString qs(const std::string& s)
{
    return QString::fromStdString(s);
}

QString positionsText(const std::vector<int64_t>& positions)
{
    if (positions.size() == 1 && positions.front() == -1)
        return QStringLiteral("*");
    QStringList parts;
    for (int64_t p : positions)
        parts << QString::number(p);
    return parts.join(QLatin1Char(','));
}

} // namespace

ExplorerInterventions::ExplorerInterventions(ExplorerController& core)
    : QObject(&core)
    , m_core(core)
    , m_list(this)
    , m_outcome(this)
{
}

int ExplorerInterventions::add(const QString& target, const QString& op, double value, const QString& positions)
{
    Intervention intervention;
    intervention.target = target.toStdString();
    const auto supernode = supernodeOfTarget(intervention.target);
    if (supernode) {
        if (!m_core.supernodeNames().contains(qs(*supernode)))
            return -1;
    } else if (m_core.indexOf(intervention.target) < 0) {
        return -1;
    }
    const auto parsed = interventionOpFromName(op.toStdString());
    if (!parsed) {
        m_core.setMessage(QStringLiteral("An intervention is ablate, scale or inject, not \"%1\"").arg(op), true);
        return -1;
    }
    intervention.op = *parsed;
    intervention.value = std::isfinite(value) ? value : 0;
    const QString p = positions.trimmed();
    if (p == QLatin1String("*")) {
        intervention.positions = { -1 };
    } else if (!p.isEmpty()) {
        for (const QString& part : p.split(QLatin1Char(','), Qt::SkipEmptyParts)) {
            bool ok = false;
            const int64_t at = part.trimmed().toLongLong(&ok);
            if (!ok || at < 0 || (m_core.m_graph && at >= m_core.m_graph->nPositions())) {
                m_core.setMessage(QStringLiteral("Positions are \"*\" or a list such as 3,5 within the prompt"), true);
                return -1;
            }
            intervention.positions.push_back(at);
        }
    }
    intervention.free = m_freeRegime;
    ExplorerState next = m_core.m_state;
    const QString text = QStringLiteral("%1 %2").arg(
        op, supernode ? qs(*supernode) : m_core.nodeTitle(m_core.indexOf(intervention.target)));
    // An edit of the same kind on the same target and positions replaces the one there: two
    // scales would multiply and a scale after an ablate would do nothing, silently.
    for (size_t i = 0; i < next.interventions.size(); ++i) {
        Intervention& old = next.interventions[i];
        if (old.target == intervention.target && old.op == intervention.op && old.positions == intervention.positions) {
            old = intervention;
            m_core.commit(next, text);
            return int(i);
        }
    }
    next.interventions.push_back(intervention);
    m_core.commit(next, text);
    return int(m_core.m_state.interventions.size()) - 1;
}

void ExplorerInterventions::setValue(int row, double value)
{
    if (row < 0 || row >= int(m_core.m_state.interventions.size()) || !std::isfinite(value))
        return;
    ExplorerState next = m_core.m_state;
    next.interventions[size_t(row)].value = value;
    m_core.commit(next, QStringLiteral("Intervention value %1").arg(value, 0, 'g', 3), kMergeInterventionValue);
}

void ExplorerInterventions::setEnabled(int row, bool enabled)
{
    if (row < 0 || row >= int(m_core.m_state.interventions.size()))
        return;
    ExplorerState next = m_core.m_state;
    next.interventions[size_t(row)].enabled = enabled;
    m_core.commit(next, enabled ? QStringLiteral("Enable intervention") : QStringLiteral("Disable intervention"));
}

void ExplorerInterventions::remove(int row)
{
    if (row < 0 || row >= int(m_core.m_state.interventions.size()))
        return;
    ExplorerState next = m_core.m_state;
    next.interventions.erase(next.interventions.begin() + row);
    m_core.commit(next, QStringLiteral("Remove intervention"));
}

void ExplorerInterventions::clear()
{
    ExplorerState next = m_core.m_state;
    next.interventions.clear();
    m_core.commit(next, QStringLiteral("Clear interventions"));
}

void ExplorerInterventions::setFreeRegime(bool free)
{
    if (free == m_freeRegime)
        return;
    m_freeRegime = free;
    ExplorerState next = m_core.m_state;
    for (Intervention& i : next.interventions)
        i.free = free;
    if (next != m_core.m_state)
        m_core.commit(next, free ? QStringLiteral("Free regime") : QStringLiteral("Constrained regime"));
    else
        Q_EMIT m_core.stateChanged();
    Q_EMIT freeRegimeChanged();
}

void ExplorerInterventions::syncRegime()
{
    const auto& list = m_core.m_state.interventions;
    if (list.empty())
        return; // nothing says: the switch stays as the user set it
    const bool free = interventionsFree(m_core.m_state);
    if (free == m_freeRegime)
        return;
    m_freeRegime = free;
    Q_EMIT freeRegimeChanged();
}

void ExplorerInterventions::requestOutcome()
{
    if (!m_core.m_graph || !m_core.m_contextReady)
        return;
    std::vector<std::string> skipped;
    const auto edits = interventionEdits(*m_core.m_graph, m_core.m_state, &skipped);
    cs::intervention::InterventionOptions options;
    options.topK = m_core.m_settings->topK();
    options.generate = m_core.m_settings->generateTokens();
    options.regime
        = interventionsFree(m_core.m_state) ? cs::intervention::Regime::Free : cs::intervention::Regime::Constrained;
    auto resources = m_core.m_resources;
    m_intervening = true;
    Q_EMIT outcomeChanged();
    // A unit graph's edits act on the model's own units (cs::neurons::intervene: the real model,
    // nothing frozen, the next token only).
    const bool units = m_core.unitGraph();
    const QString noun
        = units ? qs(unitNoun(m_core.m_graph->metadata.basis)) + QStringLiteral("s") : QStringLiteral("features");
    QString note = skipped.empty() ? QString()
                                   : QStringLiteral("%1 node(s) are not %2 and cannot be edited: %3")
                                         .arg(skipped.size())
                                         .arg(noun, qs(skipped.front()));
    if (units && !edits.empty())
        note = (note.isEmpty() ? QString() : note + QStringLiteral(" · "))
            + QStringLiteral("%1 edit(s) of the model's %2 (the real model, nothing frozen)")
                  .arg(edits.size())
                  .arg(noun);
    m_core.m_worker.request<cs::intervention::InterventionResult>(
        QStringLiteral("explorer-intervene"),
        [resources, edits, options, units](EngineState&) {
            if (units)
                return std::make_shared<const cs::intervention::InterventionResult>(
                    runUnitIntervention(*resources, edits, options.topK, options.generate));
            return std::make_shared<const cs::intervention::InterventionResult>(edits.empty()
                    ? baseline(*resources, options.topK, options.generate)
                    : runIntervention(*resources, edits, options));
        },
        [this, note, nEdits = edits.size()](std::shared_ptr<const cs::intervention::InterventionResult> r) {
            m_intervening = false;
            std::vector<TokenComparisonRow> rows;
            std::map<int64_t, size_t> at;
            for (size_t k = 0; k < r->before.size(); ++k) {
                const auto& t = r->before[k];
                at[t.id] = rows.size();
                TokenComparisonRow row;
                row.token = qs(t.token);
                row.id = t.id;
                row.probBefore = t.prob;
                row.rankBefore = int(k);
                rows.push_back(row);
            }
            for (size_t k = 0; k < r->after.size(); ++k) {
                const auto& t = r->after[k];
                auto it = at.find(t.id);
                if (it == at.end()) {
                    at[t.id] = rows.size();
                    TokenComparisonRow row;
                    row.token = qs(t.token);
                    row.id = t.id;
                    rows.push_back(row);
                    it = at.find(t.id);
                }
                rows[it->second].probAfter = t.prob;
                rows[it->second].rankAfter = int(k);
            }
            for (auto& row : rows)
                if (auto d = r->logitDelta.find(row.id); d != r->logitDelta.end())
                    row.logitDelta = d->second;
            m_outcome.setRows(std::move(rows));
            m_topBefore = r->before.empty() ? QString() : qs(r->before.front().token);
            m_topAfter = r->after.empty() ? QString() : qs(r->after.front().token);
            m_generationBefore = qs(r->generationBefore);
            m_generationAfter = qs(r->generationAfter);
            m_interventionNote = nEdits == 0 ? QStringLiteral("No intervention: the model's own output") : note;
            Q_EMIT outcomeChanged();
        },
        [this](const QString& message) {
            m_intervening = false;
            m_interventionNote = message;
            Q_EMIT outcomeChanged();
        });
}

void ExplorerInterventions::clearOutcome()
{
    m_outcome.setRows({});
    m_topBefore.clear();
    m_topAfter.clear();
    m_generationBefore.clear();
    m_generationAfter.clear();
    m_interventionNote.clear();
    Q_EMIT outcomeChanged();
}

void ExplorerInterventions::refreshList()
{
    std::vector<InterventionRow> rows;
    for (const Intervention& i : m_core.m_state.interventions) {
        InterventionRow row;
        row.target = qs(i.target);
        const auto supernode = supernodeOfTarget(i.target);
        row.targetLabel = supernode ? qs(*supernode) : m_core.nodeTitle(m_core.indexOf(i.target));
        row.op = QString::fromLatin1(interventionOpName(i.op));
        row.value = i.value;
        row.positions = positionsText(i.positions);
        row.enabled = i.enabled;
        row.free = i.free;
        rows.push_back(row);
    }
    // Rows that still act on one target together (different kinds: an ablate and a scale, an
    // inject and a scale) say how they compose: in list order, each on what the one before left.
    const auto& all = m_core.m_state.interventions;
    for (size_t r = 0; r < all.size(); ++r) {
        if (!all[r].enabled)
            continue;
        std::vector<size_t> group;
        for (size_t k = 0; k < all.size(); ++k)
            if (all[k].enabled && all[k].target == all[r].target && all[k].positions == all[r].positions)
                group.push_back(k);
        if (group.size() < 2)
            continue;
        QStringList others, steps;
        double factor = 1, constant = 0; // the result is factor × activation + constant
        for (const size_t k : group) {
            if (k != r)
                others << QString::number(k + 1);
            InterventionRow bare = rows[k];
            bare.positions.clear();
            bare.free = false;
            steps << InterventionListModel::summary(bare);
            switch (all[k].op) {
            case InterventionOp::Ablate:
                factor = constant = 0;
                break;
            case InterventionOp::Scale:
                factor *= all[k].value;
                constant *= all[k].value;
                break;
            case InterventionOp::Inject:
                factor = 0;
                constant = all[k].value;
                break;
            case InterventionOp::Add:
                constant += all[k].value;
                break;
            }
        }
        const QString result = factor != 0 ? QStringLiteral("× %1").arg(factor, 0, 'g', 3)
                                           : QStringLiteral("= %1").arg(constant, 0, 'g', 3);
        rows[r].combined = QStringLiteral("with row %1: %2 → %3")
                               .arg(others.join(QStringLiteral(", ")), steps.join(QStringLiteral(", then ")), result);
    }
    m_list.setRows(std::move(rows));
}

} // namespace cs::app
