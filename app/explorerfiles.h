#pragma once
// The explorer's files (docs/ARCHITECTURE.md §12.1, §11.5): opening sessions and graph JSON,
// saving sessions (Save, Save As), exporting figures and graph JSON, the recent files, the
// modified flag the unsaved-changes prompt reads, autosave and crash recovery. Owned by
// ExplorerController, which QML reaches it through (explorer.files).
//
// A session is the graph and the core's ExplorerState; opening one hands both to the core,
// which resets its undo stack. Figure export runs on the core's Graphviz thread, autosave on a
// thread pool of its own (§13). Results and errors go to the core's message.

#include "session/recentfiles.h"

#include <QObject>
#include <QString>
#include <QtQml/qqmlregistration.h>

#include <memory>

namespace cs::app {

class ExplorerController;
class SessionAutosave;
struct SessionData;

class ExplorerFiles : public QObject {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("owned by ExplorerController")

    Q_PROPERTY(QString sessionPath READ sessionPath NOTIFY sessionChanged)
    // Edits since the session was saved or opened (the undo stack is not clean).
    Q_PROPERTY(bool modified READ isModified NOTIFY sessionChanged)
    Q_PROPERTY(bool recoveryAvailable READ recoveryAvailable NOTIFY recoveryChanged)
    Q_PROPERTY(QString recoveryPath READ recoveryPath NOTIFY recoveryChanged)
    Q_PROPERTY(bool exporting READ isExporting NOTIFY exportingChanged)
    Q_PROPERTY(cs::app::RecentFilesModel* recentFiles READ recentFiles CONSTANT)

public:
    // `autosaveFolder` overrides the default (tests).
    ExplorerFiles(ExplorerController& core, const QString& autosaveFolder);

    QString sessionPath() const { return m_sessionPath; }
    bool isModified() const;
    bool recoveryAvailable() const { return !m_recoveryPath.isEmpty(); }
    QString recoveryPath() const { return m_recoveryPath; }
    bool isExporting() const { return m_exporting > 0; }
    RecentFilesModel* recentFiles() const { return m_recent; }

    // Paths or file:// URLs. Export: the format from the extension (.svg, .pdf, .png); scope
    // "subgraph" or "graph". Results arrive in the controller's message and exportFinished.
    Q_INVOKABLE void exportFigure(const QString& path, const QString& scope = QStringLiteral("subgraph"));
    Q_INVOKABLE bool exportGraphJson(const QString& path);
    // Opens a session file, a graph JSON (circuit-tracer / Neuronpedia) or a .csgraph.
    Q_INVOKABLE bool openFile(const QString& path);
    Q_INVOKABLE bool saveSession(const QString& path);
    Q_INVOKABLE bool save(); // to sessionPath
    Q_INVOKABLE bool recoverSession();
    Q_INVOKABLE void discardRecovery();
    // Writes the autosave now (in the background).
    Q_INVOKABLE void autosaveNow();
    // A clean exit: no recovery offered next time. Main.qml calls it when the window closes;
    // the program calls it again on aboutToQuit (main.cpp); a second call does nothing.
    Q_INVOKABLE void finishSession();

    static QString localPath(const QString& pathOrUrl);

    // Called by the core. An edit or a new graph: the autosave saves a while later.
    void markDirty();
    // A traced graph is no session file: Save asks where.
    void forgetSessionPath() { m_sessionPath.clear(); }

Q_SIGNALS:
    void sessionChanged();
    void recoveryChanged();
    void exportingChanged();
    void exportFinished(bool ok, const QString& path);

private:
    std::unique_ptr<SessionData> sessionData() const;
    bool loadSession(const SessionData& data, const QString& path);

    ExplorerController& m_core;
    QString m_sessionPath;
    QString m_recoveryPath;
    int m_exporting = 0;
    RecentFilesModel* m_recent = nullptr;
    SessionAutosave* m_autosave = nullptr;
};

} // namespace cs::app
