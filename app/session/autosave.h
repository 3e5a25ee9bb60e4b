#pragma once
// Autosave and crash recovery (docs/ARCHITECTURE.md §11.5). Each running instance owns two
// files in the autosave folder, named by an id unique to the instance ("<pid>-<start ms>"):
//   autosave-ID.marker              JSON: pid, the boot id, the process start time (Linux), host,
//                                   start time; written by start(), removed by finish()
//   autosave-ID.circuitscope.json   the session, written atomically by save() / the timer
// A marker whose process is gone (its pid not running, a different boot, or the pid now held by
// a process started at another time) is a crash; its autosave is then recoverable. Two
// instances never touch each other's files (QLockFile is not used: it judges a live owner by
// pid and program name only, and treats a lock older than its stale time as dead).
//
// Usage by the controller: start() at launch; recoverable() -> offer it -> readSession(path)
// -> discardRecovery() (also when declined); setSnapshot(fn) and markDirty() on every edit;
// finish() on a clean exit.

#include "sessionfile.h"

#include <QObject>
#include <QString>
#include <QStringList>
#include <QThreadPool>
#include <QTimer>

#include <functional>

namespace cs::app {

class SessionAutosave : public QObject {
    Q_OBJECT
    Q_PROPERTY(int interval READ interval WRITE setInterval NOTIFY intervalChanged)
    Q_PROPERTY(bool dirty READ isDirty NOTIFY dirtyChanged)
    Q_PROPERTY(bool saving READ isSaving NOTIFY savingChanged)
    Q_PROPERTY(QString lastError READ lastError NOTIFY lastErrorChanged)
public:
    explicit SessionAutosave(QObject* parent = nullptr);
    // Waits for a save in flight; leaves the files (a destructor is no clean exit: call finish()).
    ~SessionAutosave() override;

    // QStandardPaths::AppLocalDataLocation + "/autosave".
    static QString defaultFolder();
    // The folder, before start() (tests use a temporary one). Default: defaultFolder().
    void setFolder(const QString& folder);
    QString folder() const { return m_folder; }

    // Milliseconds between markDirty() and the save it causes (default 60 000; at least 100);
    // 0 or less turns the timer off (ExplorerSettings::autosaveSeconds 0): markDirty() then only
    // marks, and saveNow() still saves.
    void setInterval(int ms);
    int interval() const { return m_enabled ? m_timer.interval() : 0; }

    // What the timer saves: called on this object's thread when the timer fires. The returned
    // graph's tensors are only read (on a worker thread), so the caller must not change them in
    // place afterwards (the controller replaces graphs whole).
    void setSnapshot(std::function<SessionData()> snapshot);

    // Creates the folder and writes this instance's marker; removes markers of dead instances
    // that left no autosave. Throws cs::Error naming the folder when it cannot be written.
    void start();
    bool isStarted() const { return !m_id.isEmpty(); }
    QString autosavePath() const; // this instance's autosave file (empty before start())
    QString markerPath() const;

    // Writes the autosave now, on this thread, atomically. Throws cs::Error (also before start()).
    void save(const SessionData& data);

    // The state changed: the timer saves interval() ms later (once, however many calls come).
    Q_INVOKABLE void markDirty();
    bool isDirty() const { return m_dirty; }
    // Takes the snapshot now and writes it on a worker thread; a save already in flight makes
    // this one wait for the next timer round (dirty stays true).
    Q_INVOKABLE void saveNow();
    bool isSaving() const { return m_saving; }
    // Blocks until no save is in flight (ms < 0: no limit); true when none is.
    bool waitForSave(int ms = -1);
    QString lastError() const { return m_lastError; }

    // A clean exit: stops the timer, waits for a save in flight, removes the marker and the
    // autosave. The instance can start() again afterwards.
    void finish();

    // The autosave of the most recently saved dead instance; empty when there is none.
    QString recoverable() const;
    // Every dead instance's autosave, newest first.
    QStringList recoverableSessions() const;
    // Removes every dead instance's marker and autosave (after recovering, or when declined).
    void discardRecovery();

Q_SIGNALS:
    void intervalChanged();
    void dirtyChanged();
    void savingChanged();
    void lastErrorChanged();
    // After each background save: the file, the time to make the JSON text and to write it (ms).
    void saved(const QString& path, double serializeMs, double writeMs);
    void saveFailed(const QString& message);

private:
    struct Dead {
        QString marker;
        QString autosave; // empty when the instance never saved
    };
    std::vector<Dead> deadInstances() const;
    void setDirty(bool dirty);
    void setSaving(bool saving);
    void setLastError(const QString& error);
    void onSaveDone(const QString& error, double serializeMs, double writeMs);

    QString m_folder;
    QString m_id; // "<pid>-<start ms>" after start()
    QTimer m_timer;
    QThreadPool m_pool; // one thread: saves never overlap
    std::function<SessionData()> m_snapshot;
    bool m_enabled = true;
    bool m_dirty = false;
    bool m_saving = false;
    QString m_lastError;
};

} // namespace cs::app
