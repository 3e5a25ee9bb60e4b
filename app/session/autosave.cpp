#include "autosave.h"

#include <cs/error.h>

#include <QCoreApplication>
#include <QDateTime>
#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QJsonDocument>
#include <QJsonObject>
#include <QPointer>
#include <QSaveFile>
#include <QStandardPaths>
#include <QSysInfo>

#include <algorithm>

#ifdef Q_OS_UNIX
#include <cerrno>
#include <csignal>
#include <sys/types.h>
#include <unistd.h>
#endif

namespace cs::app {

namespace {

const QString kPrefix = QStringLiteral("autosave-");
const QString kMarkerSuffix = QStringLiteral(".marker");

qint64 currentPid()
{
    return QCoreApplication::applicationPid();
}

// The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), which tells
// a reused pid from the process that wrote the marker; empty where there is no /proc.
QString processStartTime(qint64 pid)
{
    QFile stat(QStringLiteral("/proc/%1/stat").arg(pid));
    if (!stat.open(QIODevice::ReadOnly))
        return {};
    const QByteArray text = stat.readAll();
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses; fields restart after the last ')'.
    const int close = text.lastIndexOf(')');
    if (close < 0)
        return {};
    const QList<QByteArray> fields = text.mid(close + 2).split(' ');
    // After comm: field 3 (state) is fields[0], so field 22 is fields[19].
    return fields.size() > 19 ? QString::fromLatin1(fields[19]) : QString();
}

// False only when the marker's process is surely gone.
bool markerAlive(const QJsonObject& marker)
{
    const qint64 pid = marker.value(QStringLiteral("pid")).toInteger(-1);
    if (pid <= 0)
        return false;
    const QString host = marker.value(QStringLiteral("host")).toString();
    if (host != QSysInfo::machineHostName())
        return true; // another machine sharing the folder: cannot tell, leave it alone
    const QString boot = marker.value(QStringLiteral("boot_id")).toString();
    const QString currentBoot = QString::fromLatin1(QSysInfo::bootUniqueId());
    if (!boot.isEmpty() && !currentBoot.isEmpty() && boot != currentBoot)
        return false; // written before a reboot
#ifdef Q_OS_UNIX
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
        return false;
#endif
    const QString started = marker.value(QStringLiteral("process_start")).toString();
    const QString now = processStartTime(pid);
    if (!started.isEmpty() && !now.isEmpty() && started != now)
        return false; // the pid now belongs to a later process
    return true;
}

// Removes every file of the dead instance whose marker is `marker` ("autosave-ID.marker"): its
// marker, autosave and sidecars, and the temporary files its writes left when it was killed
// mid-save (QSaveFile's where the folder has no O_TMPFILE, a sidecar's "NAME.tmp-XXXXXX"),
// which nobody else would ever remove. All of them, and only them, start with "autosave-ID.".
void removeInstanceFiles(const QString& marker)
{
    const QFileInfo info(marker);
    const QString stem = info.fileName().left(info.fileName().size() - kMarkerSuffix.size()) + QLatin1Char('.');
    const QDir dir = info.dir();
    for (const QString& name : dir.entryList({ stem + QLatin1Char('*') }, QDir::Files | QDir::Hidden | QDir::System))
        if (name != info.fileName())
            QFile::remove(dir.filePath(name));
    QFile::remove(marker); // last: while it is there, the files are known to be someone's
}

} // namespace

SessionAutosave::SessionAutosave(QObject* parent)
    : QObject(parent)
    , m_folder(defaultFolder())
{
    m_pool.setMaxThreadCount(1);
    m_timer.setSingleShot(true);
    m_timer.setInterval(60000);
    connect(&m_timer, &QTimer::timeout, this, &SessionAutosave::saveNow);
}

SessionAutosave::~SessionAutosave()
{
    m_pool.waitForDone();
}

QString SessionAutosave::defaultFolder()
{
    return QStandardPaths::writableLocation(QStandardPaths::AppLocalDataLocation) + QStringLiteral("/autosave");
}

void SessionAutosave::setFolder(const QString& folder)
{
    m_folder = folder;
}

void SessionAutosave::setInterval(int ms)
{
    const int before = interval();
    m_enabled = ms > 0;
    if (m_enabled)
        m_timer.setInterval(std::max(ms, 100));
    else
        m_timer.stop();
    if (interval() != before)
        Q_EMIT intervalChanged();
}

void SessionAutosave::setSnapshot(std::function<SessionData()> snapshot)
{
    m_snapshot = std::move(snapshot);
}

QString SessionAutosave::autosavePath() const
{
    return m_id.isEmpty() ? QString() : QDir(m_folder).filePath(kPrefix + m_id + QLatin1String(kSessionExtension));
}

QString SessionAutosave::markerPath() const
{
    return m_id.isEmpty() ? QString() : QDir(m_folder).filePath(kPrefix + m_id + kMarkerSuffix);
}

void SessionAutosave::start()
{
    if (!QDir().mkpath(m_folder))
        throw Error(m_folder.toStdString() + ": cannot create the autosave folder");
    const qint64 pid = currentPid();
    const qint64 now = QDateTime::currentMSecsSinceEpoch();
    QString id = QStringLiteral("%1-%2").arg(pid).arg(now);
    // Two instances of this class in one process (tests) started in the same millisecond.
    for (int k = 1; QFileInfo::exists(QDir(m_folder).filePath(kPrefix + id + kMarkerSuffix)); ++k)
        id = QStringLiteral("%1-%2-%3").arg(pid).arg(now).arg(k);

    const QJsonObject marker {
        { QStringLiteral("pid"), pid },
        { QStringLiteral("boot_id"), QString::fromLatin1(QSysInfo::bootUniqueId()) },
        { QStringLiteral("process_start"), processStartTime(pid) },
        { QStringLiteral("host"), QSysInfo::machineHostName() },
        { QStringLiteral("started_at"), QDateTime::currentDateTimeUtc().toString(Qt::ISODateWithMs) },
        { QStringLiteral("autosave"), kPrefix + id + QLatin1String(kSessionExtension) },
    };
    QSaveFile file(QDir(m_folder).filePath(kPrefix + id + kMarkerSuffix));
    if (!file.open(QIODevice::WriteOnly) || file.write(QJsonDocument(marker).toJson()) < 0 || !file.commit())
        throw Error(
            file.fileName().toStdString() + ": cannot write the autosave marker: " + file.errorString().toStdString());
    m_id = id;

    // Dead instances that never saved leave nothing to recover.
    for (const Dead& dead : deadInstances())
        if (dead.autosave.isEmpty())
            removeInstanceFiles(dead.marker);
}

void SessionAutosave::save(const SessionData& data)
{
    if (m_id.isEmpty())
        throw Error("autosave: start() was not called");
    writeSession(autosavePath().toStdString(), data);
}

void SessionAutosave::markDirty()
{
    setDirty(true);
    if (m_enabled && !m_timer.isActive())
        m_timer.start();
}

void SessionAutosave::saveNow()
{
    m_timer.stop();
    if (!m_snapshot || m_id.isEmpty())
        return;
    if (m_saving) {
        if (m_enabled)
            m_timer.start(); // try again next round
        return;
    }
    SessionData data;
    try {
        data = m_snapshot();
    } catch (const std::exception& e) {
        setLastError(QString::fromStdString(e.what()));
        Q_EMIT saveFailed(m_lastError);
        return;
    }
    setDirty(false);
    setSaving(true);
    const std::string path = autosavePath().toStdString();
    QPointer<SessionAutosave> self(this);
    m_pool.start([self, path, data = std::move(data)]() {
        QString error;
        SessionWriteStats stats;
        try {
            stats = writeSession(path, data);
        } catch (const std::exception& e) {
            error = QString::fromStdString(e.what());
        }
        // The destructor waits for this thread, so `self` outlives the call; the queued call
        // runs on the object's thread.
        QMetaObject::invokeMethod(
            self.data(),
            [self, error, stats]() {
                if (self)
                    self->onSaveDone(error, stats.serializeMs, stats.writeMs);
            },
            Qt::QueuedConnection);
    });
}

void SessionAutosave::onSaveDone(const QString& error, double serializeMs, double writeMs)
{
    setSaving(false);
    if (!error.isEmpty()) {
        setLastError(error);
        setDirty(true); // what failed to save is still unsaved
        Q_EMIT saveFailed(error);
        return;
    }
    setLastError(QString());
    Q_EMIT saved(autosavePath(), serializeMs, writeMs);
}

bool SessionAutosave::waitForSave(int ms)
{
    const bool done = m_pool.waitForDone(ms);
    // Deliver the finished save's result (queued to this thread) before returning.
    if (done)
        QCoreApplication::sendPostedEvents(this, QEvent::MetaCall);
    return done;
}

void SessionAutosave::finish()
{
    m_timer.stop();
    m_pool.waitForDone();
    QCoreApplication::sendPostedEvents(this, QEvent::MetaCall);
    if (!m_id.isEmpty()) {
        for (const std::string& sidecar : sidecarPaths(autosavePath().toStdString()))
            QFile::remove(QString::fromStdString(sidecar));
        QFile::remove(autosavePath());
        QFile::remove(markerPath());
    }
    m_id.clear();
    setDirty(false);
}

std::vector<SessionAutosave::Dead> SessionAutosave::deadInstances() const
{
    std::vector<Dead> dead;
    const QDir dir(m_folder);
    const QStringList markers
        = dir.entryList({ kPrefix + QStringLiteral("*") + kMarkerSuffix }, QDir::Files, QDir::Name);
    for (const QString& name : markers) {
        const QString path = dir.filePath(name);
        if (path == markerPath())
            continue;
        QFile file(path);
        if (!file.open(QIODevice::ReadOnly))
            continue;
        // A marker is a few hundred bytes; read no more (the name might be a link to /dev/zero).
        const QJsonDocument doc = QJsonDocument::fromJson(file.read(64 * 1024));
        const QJsonObject marker = doc.object(); // empty (pid -1: dead) when damaged
        if (markerAlive(marker))
            continue;
        // The autosave this marker names; a damaged marker pairs with its own id's file.
        QString autosave = marker.value(QStringLiteral("autosave")).toString();
        if (autosave.isEmpty() || autosave.contains(QLatin1Char('/')) || autosave.contains(QLatin1Char('\\')))
            autosave = name.left(name.size() - kMarkerSuffix.size()) + QLatin1String(kSessionExtension);
        autosave = dir.filePath(autosave);
        dead.push_back({ path, QFileInfo::exists(autosave) ? autosave : QString() });
    }
    return dead;
}

QStringList SessionAutosave::recoverableSessions() const
{
    std::vector<QFileInfo> files;
    for (const Dead& d : deadInstances())
        if (!d.autosave.isEmpty())
            files.emplace_back(d.autosave);
    std::stable_sort(files.begin(), files.end(),
        [](const QFileInfo& a, const QFileInfo& b) { return a.lastModified() > b.lastModified(); });
    QStringList out;
    for (const QFileInfo& f : files)
        out << f.absoluteFilePath();
    return out;
}

QString SessionAutosave::recoverable() const
{
    const QStringList all = recoverableSessions();
    return all.isEmpty() ? QString() : all.first();
}

void SessionAutosave::discardRecovery()
{
    for (const Dead& d : deadInstances()) {
        if (!d.autosave.isEmpty()) {
            for (const std::string& sidecar : sidecarPaths(d.autosave.toStdString()))
                QFile::remove(QString::fromStdString(sidecar));
            QFile::remove(d.autosave);
        }
        removeInstanceFiles(d.marker);
    }
}

void SessionAutosave::setDirty(bool dirty)
{
    if (dirty == m_dirty)
        return;
    m_dirty = dirty;
    Q_EMIT dirtyChanged();
}

void SessionAutosave::setSaving(bool saving)
{
    if (saving == m_saving)
        return;
    m_saving = saving;
    Q_EMIT savingChanged();
}

void SessionAutosave::setLastError(const QString& error)
{
    if (error == m_lastError)
        return;
    m_lastError = error;
    Q_EMIT lastErrorChanged();
}

} // namespace cs::app
