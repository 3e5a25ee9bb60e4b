#pragma once
// The explorer's interventions (docs/ARCHITECTURE.md §12.1): the list of edits in the current
// ExplorerState, adding, changing and removing them, running them on the engine worker
// (tag explorer-intervene, §13) and their results, the top tokens and generations before and
// after. Owned by ExplorerController, which QML reaches it through (explorer.interventions).
//
// The edits are part of the state: each change is one ExplorerController::commit(), and the
// core asks for a new result (requestOutcome) and a new list (refreshList) from applyState().

#include "explorerlists.h"

#include <QObject>
#include <QString>
#include <QtQml/qqmlregistration.h>

namespace cs::app {

class ExplorerController;

class ExplorerInterventions : public QObject {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("owned by ExplorerController")

    // The edits of the current state, one row each.
    Q_PROPERTY(cs::app::InterventionListModel* list READ list CONSTANT)
    // The top tokens before and after the edits, and what the model generates.
    Q_PROPERTY(cs::app::TokenComparisonModel* outcome READ outcome CONSTANT)
    Q_PROPERTY(bool intervening READ isIntervening NOTIFY outcomeChanged)
    Q_PROPERTY(QString generationBefore READ generationBefore NOTIFY outcomeChanged)
    Q_PROPERTY(QString generationAfter READ generationAfter NOTIFY outcomeChanged)
    Q_PROPERTY(QString topBefore READ topBefore NOTIFY outcomeChanged)
    Q_PROPERTY(QString topAfter READ topAfter NOTIFY outcomeChanged)
    Q_PROPERTY(QString interventionNote READ interventionNote NOTIFY outcomeChanged)
    // Free regime: the edits' effects propagate through the attention patterns too.
    Q_PROPERTY(bool freeRegime READ freeRegime WRITE setFreeRegime NOTIFY freeRegimeChanged)

public:
    explicit ExplorerInterventions(ExplorerController& core);

    InterventionListModel* list() { return &m_list; }
    TokenComparisonModel* outcome() { return &m_outcome; }
    bool isIntervening() const { return m_intervening; }
    QString generationBefore() const { return m_generationBefore; }
    QString generationAfter() const { return m_generationAfter; }
    QString topBefore() const { return m_topBefore; }
    QString topAfter() const { return m_topAfter; }
    QString interventionNote() const { return m_interventionNote; }
    bool freeRegime() const { return m_freeRegime; }
    void setFreeRegime(bool free);
    // The regime switch follows the state's interventions (after undo, redo, an opened session).
    void syncRegime();

    // target: a node id or "supernode:NAME"; op: "ablate", "scale", "inject"; positions: ""
    // (the node's own), "*" (every position, generated ones too) or "3,5". Returns the new
    // row, or -1 (the reason in the controller's message).
    Q_INVOKABLE int add(const QString& target, const QString& op, double value = 0, const QString& positions = {});
    Q_INVOKABLE void setValue(int row, double value);
    Q_INVOKABLE void setEnabled(int row, bool enabled);
    Q_INVOKABLE void remove(int row);
    Q_INVOKABLE void clear();

    // Called by the core. A new graph: what the panel showed belongs to the graph before.
    void clearOutcome();
    bool hasOutcome() const { return m_outcome.rowCount() > 0; }
    // Runs the current state's edits (or the baseline when there are none) on the worker.
    void requestOutcome();
    // Rebuilds the list from the current state.
    void refreshList();

Q_SIGNALS:
    void outcomeChanged();
    void freeRegimeChanged();

private:
    ExplorerController& m_core;
    InterventionListModel m_list;
    TokenComparisonModel m_outcome;
    bool m_intervening = false;
    bool m_freeRegime = false;
    QString m_generationBefore, m_generationAfter, m_topBefore, m_topAfter, m_interventionNote;
};

} // namespace cs::app
