// Crash consistency (issue 21): real processes SIGKILLed at random points while they write, and
// after every kill the files on disk checked, then the work resumed.
//
// - sessionSave: tests/tools/session_write_loop writes a session again and again through
//   writeSession (graph inline, and in a .csgraph sidecar); after each kill the file opens with
//   readSession and is exactly the last generation the child reported complete or the one it
//   was writing, never a mix of two, and the next child reads it and goes on.
// - autosave: the same through SessionAutosave (its worker thread); after each kill a new
//   instance's recovery offers exactly the dead child's autosave, which is such a generation.
// - featureStoreBuild: `circuitscope-cli features build --checkpoint-every`; after each kill the
//   store opens, its saved progress never goes back, a store that says complete has every
//   figure of an uninterrupted build; the same command resumes from the saved tokens (its JSON
//   resumed_from_tokens) and finishes with every figure equal to the uninterrupted build's.
// - transcoderCheckpoints: `circuitscope-cli transcoder train --checkpoint-every`; after each
//   kill the checkpoint loads, is whole and finite, its step never goes back; a set with a
//   config.yaml loads; the same command resumes at the checkpoint's step (resumed_from) and
//   finishes a set that loads (bit-equal to the uninterrupted run's when nothing was resumed).
// The temporary files the kills leave break nothing, and are gone once the writes are done
// again (the last session saves, a finished training's set).
//
// Kill points follow the work, not the clock: each kill waits for the child's own progress (a
// generation printed, a checkpoint file or the store's WAL changing) and then a random extra
// delay scaled by an uninterrupted run measured first; some fall in the start-up and some in
// the final writes. The random choices come from one seed (CS_CRASH_SEED, default 21), printed,
// so a failure reproduces; CS_CRASH_KILLS sets the kills per operation (default 20: 15 for each
// kind of session write), CS_CRASH_CLI another circuitscope-cli to run.
#include "autosave.h"
#include "hf_fixtures.h"
#include "session_generation.h"
#include "sessionfile.h"

#include "cs/engine.h"
#include "cs/error.h"
#include "cs/features.h"
#include "cs/files.h"
#include "cs/model.h"
#include "cs/safetensors.h"
#include "cs/transcoder.h"

#include <ATen/ATen.h>
#include <QDir>
#include <QElapsedTimer>
#include <QFileInfo>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <functional>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sys/stat.h>
#include <thread>

using Json = nlohmann::json;

namespace {

int envInt(const char* name, int fallback)
{
    const QByteArray v = qgetenv(name);
    bool ok = false;
    const int n = v.toInt(&ok);
    return ok && n > 0 ? n : fallback;
}

// The circuitscope-cli the operations run: the build's, or CS_CRASH_CLI (another build, say one
// with a fault put in by hand to see this suite catch it).
QString cliPath()
{
    const QByteArray v = qgetenv("CS_CRASH_CLI");
    return v.isEmpty() ? QStringLiteral(CS_CLI_PATH) : QString::fromLocal8Bit(v);
}

// Kills per operation.
int killsPerOperation()
{
    return envInt("CS_CRASH_KILLS", 20);
}

// A child process whose stdout lines are collected as they come.
class Child {
public:
    Child(const QString& program, const QStringList& args)
    {
        m_process.setProgram(program);
        m_process.setArguments(args);
        m_process.start();
        m_started = m_process.waitForStarted(30000);
        m_clock.start();
    }
    ~Child()
    {
        if (m_process.state() != QProcess::NotRunning) {
            ::kill(static_cast<pid_t>(m_process.processId()), SIGKILL);
            m_process.waitForFinished(-1);
        }
    }
    bool started() const { return m_started; }
    QString startError() const { return m_process.program() + ": " + m_process.errorString(); }
    bool running() const { return m_process.state() == QProcess::Running; }
    double elapsedMs() const { return static_cast<double>(m_clock.nsecsElapsed()) / 1e6; }

    // Until `n` lines have come or the child has ended (or `ms` passed); the lines so far.
    const QStringList& waitForLines(int n, int ms = 60000)
    {
        read();
        while (m_lines.size() < n && running() && m_clock.elapsed() < ms) {
            m_process.waitForReadyRead(5);
            read();
        }
        return m_lines;
    }
    // Polls (every ms or so) until `done()` or the child has ended.
    template<typename F> void waitUntil(F done, int ms = 120000)
    {
        while (running() && !done() && m_clock.elapsed() < ms)
            m_process.waitForFinished(1);
    }
    void sleepMs(double ms)
    {
        const double until = elapsedMs() + ms;
        while (running() && elapsedMs() < until)
            std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    // SIGKILL now; true when the signal ended it (false: it had already exited by itself).
    bool kill()
    {
        if (running())
            ::kill(static_cast<pid_t>(m_process.processId()), SIGKILL);
        return finish();
    }
    // Waits for the end; true when a signal ended it.
    bool finish(int ms = 300000)
    {
        m_process.waitForFinished(ms);
        read();
        m_err += QString::fromUtf8(m_process.readAllStandardError());
        return m_process.exitStatus() == QProcess::CrashExit;
    }
    int exitCode() const { return m_process.exitCode(); }
    const QStringList& lines() const { return m_lines; }
    QString out() const { return m_lines.join('\n'); }
    const QString& err() const { return m_err; }

private:
    void read()
    {
        m_partial += m_process.readAllStandardOutput();
        int nl;
        while ((nl = m_partial.indexOf('\n')) >= 0) {
            m_lines << QString::fromUtf8(m_partial.left(nl));
            m_partial.remove(0, nl + 1);
        }
    }
    QProcess m_process;
    QElapsedTimer m_clock;
    bool m_started = false;
    QStringList m_lines;
    QByteArray m_partial;
    QString m_err;
};

// What tells a file changed: a rename puts a new inode in place, a write moves mtime or size.
struct Stamp {
    bool exists = false;
    ino_t inode = 0;
    off_t size = 0;
    int64_t mtimeNs = 0;
    bool operator==(const Stamp& o) const
    {
        return exists == o.exists && inode == o.inode && size == o.size && mtimeNs == o.mtimeNs;
    }
};

Stamp stampOf(const QString& path)
{
    struct stat st;
    if (::stat(path.toLocal8Bit().constData(), &st) != 0)
        return {};
    return { true, st.st_ino, st.st_size, int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec };
}

// Files a kill left beside the real ones (temporary siblings: "*.tmp-*" of the engine's atomic
// writes, QSaveFile's "NAME.XXXXXX").
QStringList leftovers(const QString& folder, const std::set<QString>& expected)
{
    QStringList out;
    for (const QString& name : QDir(folder).entryList(QDir::Files | QDir::Hidden | QDir::NoDotAndDotDot))
        if (!expected.count(name))
            out << name;
    return out;
}

// An uninterrupted run of a CLI command, watched: when `watched` changed (ms after the start)
// and how long the whole run took.
struct Timing {
    double totalMs = 0;
    std::vector<double> eventsMs;
    double firstMs() const { return eventsMs.empty() ? totalMs : eventsMs.front(); }
    double intervalMs() const
    {
        return eventsMs.size() < 2 ? totalMs / 4 : (eventsMs.back() - eventsMs.front()) / double(eventsMs.size() - 1);
    }
};

// How a kill is placed (see the file's comment): A (1 in 5) in the start-up, B (9 in 20) after
// the child's own progress, C (7 in 20) near the end of the work left: after the last checkpoint
// where the test can read it (transcoder), else at the time the work left should take.
struct KillPlan {
    char mode = 'B';
    double delayMs = 0; // A, C: after the start; B: after the events; C with atEnd: after it
    int events = 0; // B: changes of the watched file to wait for
    std::function<bool()> atEnd; // C: when the last checkpoint is on disk, where the child tells
    QString describe() const
    {
        return mode == 'B' ? QStringLiteral("B: %1 events + %2 ms").arg(events).arg(delayMs, 0, 'f', 1)
            : atEnd        ? QStringLiteral("C: the last checkpoint + %1 ms").arg(delayMs, 0, 'f', 1)
                           : QStringLiteral("%1: %2 ms").arg(QChar(mode)).arg(delayMs, 0, 'f', 1);
    }
};

KillPlan planKill(std::mt19937_64& rng, const Timing& t, double remaining)
{
    std::uniform_real_distribution<double> u(0.0, 1.0);
    const double pick = u(rng);
    KillPlan p;
    if (pick < 0.2) {
        p.mode = 'A';
        p.delayMs = 1.2 * t.firstMs() * u(rng);
    } else if (pick < 0.65) {
        p.mode = 'B';
        p.events = 1 + static_cast<int>(rng() % 3);
        p.delayMs = 1.5 * t.intervalMs() * u(rng);
    } else {
        p.mode = 'C';
        p.delayMs = t.firstMs() + (0.5 + 0.5 * u(rng)) * (t.totalMs - t.firstMs()) * remaining;
    }
    return p;
}

// Runs the child, kills it as planned; true when the kill ended it.
bool runAndKill(Child& child, const KillPlan& plan, const QString& watched)
{
    if (plan.mode == 'B') {
        Stamp last = stampOf(watched);
        int seen = 0;
        child.waitUntil([&] {
            const Stamp now = stampOf(watched);
            if (!(now == last)) {
                last = now;
                ++seen;
            }
            return seen >= plan.events;
        });
        child.sleepMs(plan.delayMs);
    } else if (plan.atEnd) {
        child.waitUntil(plan.atEnd);
        child.sleepMs(plan.delayMs);
    } else {
        child.waitUntil([&] { return child.elapsedMs() >= plan.delayMs; });
    }
    return child.kill();
}

Timing timeRun(const QString& program, const QStringList& args, const QString& watched)
{
    Timing t;
    Child child(program, args);
    Stamp last = stampOf(watched);
    child.waitUntil([&] {
        const Stamp now = stampOf(watched);
        if (!(now == last)) {
            last = now;
            t.eventsMs.push_back(child.elapsedMs());
        }
        return false;
    });
    child.finish();
    t.totalMs = child.elapsedMs();
    if (child.exitCode() != 0)
        qWarning("%s", qPrintable(child.err()));
    return t;
}

void removeWithSiblings(const QString& path)
{
    const QFileInfo info(path);
    for (const QString& name : info.dir().entryList({ info.fileName() + "*" }, QDir::Files | QDir::Hidden))
        QFile::remove(info.dir().filePath(name));
}

// Every figure of every feature, the co-activations and the meta of two stores.
QString storesDiffer(const cs::features::FeatureStore& a, const cs::features::FeatureStore& b)
{
    const auto ia = a.info(), ib = b.info();
    if (ia.tokens != ib.tokens || ia.complete != ib.complete || ia.nLayers != ib.nLayers
        || ia.nFeatures != ib.nFeatures)
        return QStringLiteral("meta: tokens %1 / %2, complete %3 / %4")
            .arg(ia.tokens)
            .arg(ib.tokens)
            .arg(ia.complete)
            .arg(ib.complete);
    if (a.vocabulary() != b.vocabulary())
        return QStringLiteral("vocabulary");
    const auto sameExamples
        = [](const std::vector<cs::features::Example>& x, const std::vector<cs::features::Example>& y) {
              if (x.size() != y.size())
                  return false;
              for (size_t i = 0; i < x.size(); ++i)
                  if (x[i].context != y[i].context || x[i].tokens != y[i].tokens || x[i].activations != y[i].activations
                      || x[i].position != y[i].position || x[i].activation != y[i].activation)
                      return false;
              return true;
          };
    const auto sameValues
        = [](const std::vector<cs::features::TokenValue>& x, const std::vector<cs::features::TokenValue>& y) {
              if (x.size() != y.size())
                  return false;
              for (size_t i = 0; i < x.size(); ++i)
                  if (x[i].id != y[i].id || x[i].value != y[i].value)
                      return false;
              return true;
          };
    for (int64_t l = 0; l < ia.nLayers; ++l)
        for (int64_t f = 0; f < ia.nFeatures; ++f) {
            const QString name = QStringLiteral("%1:%2").arg(l).arg(f);
            if (a.has(l, f) != b.has(l, f))
                return name + " present in one store only";
            if (!a.has(l, f))
                continue;
            const auto x = a.card(l, f), y = b.card(l, f);
            bool same = x.tokens == y.tokens && x.activeTokens == y.activeTokens && x.actMax == y.actMax
                && x.actMin == y.actMin && x.actSum == y.actSum && x.quantileLevels == y.quantileLevels
                && x.quantileValues == y.quantileValues && x.histogramEdges == y.histogramEdges
                && x.histogramCounts == y.histogramCounts && sameExamples(x.top, y.top)
                && x.quantiles.size() == y.quantiles.size() && sameValues(x.topLogits, y.topLogits)
                && sameValues(x.bottomLogits, y.bottomLogits) && sameValues(x.topInputs, y.topInputs);
            for (size_t q = 0; same && q < x.quantiles.size(); ++q)
                same = x.quantiles[q].name == y.quantiles[q].name
                    && sameExamples(x.quantiles[q].examples, y.quantiles[q].examples);
            if (!same)
                return name + " card";
            for (const bool up : { true, false }) {
                const auto p = a.coactivations(l, f, up), q = b.coactivations(l, f, up);
                bool samePairs = p.partners == q.partners && p.kept.size() == q.kept.size();
                for (size_t i = 0; samePairs && i < p.kept.size(); ++i)
                    samePairs = p.kept[i].layer == q.kept[i].layer && p.kept[i].feature == q.kept[i].feature
                        && p.kept[i].count == q.kept[i].count && p.kept[i].sourceSum == q.kept[i].sourceSum
                        && p.kept[i].productSum == q.kept[i].productSum;
                if (!samePairs)
                    return name + (up ? " upstream" : " downstream") + " co-activations";
            }
        }
    return {};
}

// A transcoder set's tensors as the folder holds them, by name.
std::map<std::string, at::Tensor> setTensors(const QString& folder)
{
    std::map<std::string, at::Tensor> out;
    for (const QString& name : QDir(folder).entryList({ "*.safetensors" }, QDir::Files)) {
        auto file = cs::io::SafetensorsFile::open(QDir(folder).filePath(name).toStdString());
        for (const auto& t : file->tensors())
            out[name.toStdString() + "/" + t.name] = file->tensor(t.name).clone();
    }
    return out;
}

} // namespace

class TestCrashConsistency : public QObject {
    Q_OBJECT

    std::mt19937_64 m_rng;
    uint64_t m_seed = 21;

    // Logs the kills of one operation: how many, by mode, what ended complete.
    static void summary(const char* what, int kills, const std::map<char, int>& modes, int completions,
        int leftoverFiles, double seconds)
    {
        QString byMode;
        for (const auto& [m, n] : modes)
            byMode += QStringLiteral(" %1:%2").arg(QChar(m)).arg(n);
        qInfo("%s: %d kills (modes%s), %d runs finished, %d temporary files left by kills, %.1f s", what, kills,
            qPrintable(byMode), completions, leftoverFiles, seconds);
    }

    static void logOutcomes(const std::map<QString, int>& outcomes)
    {
        QStringList parts;
        for (const auto& [what, n] : outcomes)
            parts << QStringLiteral("%1 %2").arg(n).arg(what);
        qInfo("  kills by what they left: %s", qPrintable(parts.join(", ")));
    }

private Q_SLOTS:
    void initTestCase()
    {
        m_seed = static_cast<uint64_t>(envInt("CS_CRASH_SEED", 21));
        qInfo("CS_CRASH_SEED=%llu CS_CRASH_KILLS=%d", static_cast<unsigned long long>(m_seed), killsPerOperation());
    }

    void sessionSave_data()
    {
        QTest::addColumn<bool>("sidecar");
        QTest::newRow("inline") << false;
        QTest::newRow("sidecar") << true;
    }

    void sessionSave()
    {
        QFETCH(bool, sidecar);
        m_rng.seed(m_seed * 100 + (sidecar ? 2 : 1));
        QElapsedTimer clock;
        clock.start();
        QTemporaryDir dir(cs::test::testTempRoot() + "/crash-session-XXXXXX");
        const QString path = dir.filePath("s.circuitscope.json");
        QStringList extra;
        if (sidecar)
            extra << "--sidecar";

        // Uninterrupted: 12 generations, for the time one takes.
        double perGenMs = 0;
        {
            Child c(CS_SESSION_LOOP_PATH, QStringList { "save", path, "--count", "12" } + extra);
            c.waitForLines(1);
            const double firstMs = c.elapsedMs();
            QVERIFY2(!c.finish() && c.exitCode() == 0, qPrintable(c.err()));
            QCOMPARE(c.lines().size(), 12);
            perGenMs = (c.elapsedMs() - firstMs) / 11;
        }
        int64_t last = 11; // the generation on disk
        const int kills = killsPerOperation() * 3 / 4;
        std::set<QString> leftoverNames;
        std::uniform_real_distribution<double> u(0.0, 1.0);
        for (int k = 0; k < kills; ++k) {
            Child c(CS_SESSION_LOOP_PATH, QStringList { "save", path } + extra);
            QVERIFY2(c.started(), qPrintable(c.startError()));
            const int lines = static_cast<int>(m_rng() % 4);
            const double delay = 1.5 * perGenMs * u(m_rng);
            c.waitForLines(lines);
            c.sleepMs(delay);
            QVERIFY2(c.kill(), qPrintable("the writer ended by itself: " + c.err()));
            int64_t done = last; // the last generation reported complete
            for (const QString& line : c.lines()) {
                QVERIFY2(line == QStringLiteral("gen %1").arg(done + 1), qPrintable(line));
                ++done;
            }
            const QString where = QStringLiteral("kill %1 (%2 lines + %3 ms, generation %4 complete)")
                                      .arg(k)
                                      .arg(lines)
                                      .arg(delay, 0, 'f', 2)
                                      .arg(done);
            cs::app::SessionData d;
            try {
                d = cs::app::readSession(path.toStdString());
            } catch (const std::exception& e) {
                QFAIL(qPrintable(where + ": " + e.what()));
            }
            const int64_t g = d.extra.value("generation", int64_t(-1));
            QVERIFY2(g == done || g == done + 1, qPrintable(where + QStringLiteral(": generation %1 on disk").arg(g)));
            const std::string why = cs::test::differsFromGeneration(d, g);
            QVERIFY2(why.empty(), qPrintable(where + ": not generation " + QString::number(g) + ": " + why.c_str()));
            last = g;
            for (const QString& name : leftovers(dir.path(), { "s.circuitscope.json", "s.csgraph", "s.alt.csgraph" }))
                leftoverNames.insert(name);
        }
        // The temporary files the kills left break nothing: one more uninterrupted run goes on.
        Child c(CS_SESSION_LOOP_PATH, QStringList { "save", path, "--count", "2" } + extra);
        QVERIFY2(!c.finish() && c.exitCode() == 0, qPrintable(c.err()));
        QCOMPARE(
            c.lines(), QStringList({ QStringLiteral("gen %1").arg(last + 1), QStringLiteral("gen %1").arg(last + 2) }));
        // And takes them away: a commit removes the temporary siblings no live writer holds.
        const QStringList stale = leftovers(dir.path(), { "s.circuitscope.json", "s.csgraph", "s.alt.csgraph" });
        QVERIFY2(stale.isEmpty(), qPrintable("left after two saves: " + stale.join(", ")));
        summary(sidecar ? "session save (sidecar)" : "session save (inline)", kills, { { 'B', kills } }, 0,
            int(leftoverNames.size()), static_cast<double>(clock.elapsed()) / 1000);
        qInfo("  one generation takes %.1f ms uninterrupted", perGenMs);
    }

    void autosave()
    {
        m_rng.seed(m_seed * 100 + 3);
        QElapsedTimer clock;
        clock.start();
        QTemporaryDir dir(cs::test::testTempRoot() + "/crash-autosave-XXXXXX");
        const QString folder = dir.filePath("autosave");
        double perGenMs = 0;
        {
            Child c(CS_SESSION_LOOP_PATH, { "autosave", folder, "--start", "0", "--count", "12" });
            c.waitForLines(2);
            const double firstMs = c.elapsedMs();
            QVERIFY2(!c.finish() && c.exitCode() == 0, qPrintable(c.err()));
            QCOMPARE(c.lines().size(), 13);
            perGenMs = (c.elapsedMs() - firstMs) / 11;
            QVERIFY(leftovers(folder, {}).isEmpty()); // finish() removed its files
        }
        int64_t next = 0; // the generation the next child starts at
        const int kills = killsPerOperation() * 3 / 4;
        std::set<QString> leftoverNames;
        int recovered = 0;
        std::uniform_real_distribution<double> u(0.0, 1.0);
        for (int k = 0; k < kills; ++k) {
            Child c(CS_SESSION_LOOP_PATH, { "autosave", folder, "--start", QString::number(next) });
            QVERIFY2(c.started(), qPrintable(c.startError()));
            const int lines = static_cast<int>(m_rng() % 5); // the first is "autosave PATH"
            const double delay = 1.5 * perGenMs * u(m_rng);
            c.waitForLines(lines);
            c.sleepMs(delay);
            QVERIFY2(c.kill(), qPrintable("the autosaver ended by itself: " + c.err()));
            QString autosavePath;
            int64_t done = next - 1;
            for (const QString& line : c.lines()) {
                if (line.startsWith("autosave ")) {
                    autosavePath = QFileInfo(line.mid(9)).absoluteFilePath();
                    continue;
                }
                QVERIFY2(line == QStringLiteral("gen %1").arg(done + 1), qPrintable(line));
                ++done;
            }
            const QString where = QStringLiteral("kill %1 (%2 lines + %3 ms, generation %4 complete)")
                                      .arg(k)
                                      .arg(lines)
                                      .arg(delay, 0, 'f', 2)
                                      .arg(done);
            // The next instance, as the explorer starts: what does it offer back?
            cs::app::SessionAutosave checker;
            checker.setFolder(folder);
            checker.setInterval(0);
            checker.start();
            const QStringList offered = checker.recoverableSessions();
            if (done >= next)
                QVERIFY2(
                    offered == QStringList { autosavePath }, qPrintable(where + ": offered " + offered.join(", ")));
            else
                QVERIFY2(offered.isEmpty() || (!autosavePath.isEmpty() && offered == QStringList { autosavePath }),
                    qPrintable(where + ": offered " + offered.join(", ")));
            if (!offered.isEmpty()) {
                cs::app::SessionData d;
                try {
                    d = cs::app::readSession(offered.front().toStdString());
                } catch (const std::exception& e) {
                    QFAIL(qPrintable(where + ": " + e.what()));
                }
                const int64_t g = d.extra.value("generation", int64_t(-1));
                QVERIFY2(
                    g == done || g == done + 1, qPrintable(where + QStringLiteral(": generation %1 offered").arg(g)));
                const std::string why = cs::test::differsFromGeneration(d, g);
                QVERIFY2(
                    why.empty(), qPrintable(where + ": not generation " + QString::number(g) + ": " + why.c_str()));
                next = g + 1;
                ++recovered;
            }
            checker.discardRecovery();
            QVERIFY(checker.recoverableSessions().isEmpty());
            checker.finish();
            // Nothing stays: no marker, autosave or temporary file of the dead child (discarding
            // removes them all), but a marker's own temporary file where a kill cut its write
            // (with no marker, nothing names it; QSaveFile leaves none where O_TMPFILE works).
            for (const QString& name : leftovers(folder, {})) {
                QVERIFY2(name.contains(".marker."), qPrintable(where + ": left " + name));
                leftoverNames.insert(name);
            }
        }
        summary("autosave", kills, { { 'B', kills } }, 0, int(leftoverNames.size()),
            static_cast<double>(clock.elapsed()) / 1000);
        qInfo("  %d kills left a session to recover; one generation takes %.1f ms uninterrupted", recovered, perGenMs);
    }

    void featureStoreBuild()
    {
        m_rng.seed(m_seed * 100 + 4);
        QElapsedTimer clock;
        clock.start();
        QTemporaryDir dir(cs::test::testTempRoot() + "/crash-features-XXXXXX");
        // Tinyworld with a small random CLT of its shape, saved where the CLI reads it.
        const std::string modelFolder = cs::resolveModelFolder("tinyworld");
        const auto config = cs::model::Model::load(modelFolder, { "cpu", true })->config();
        const QString clt = dir.filePath("clt");
        {
            at::manual_seed(5);
            cs::transcoder::TranscoderConfig c;
            c.architecture = cs::transcoder::Architecture::CrossLayer;
            c.activation = cs::transcoder::Activation::ReLU;
            c.nLayers = config.nLayers;
            c.dModel = config.dModel;
            c.nFeatures = 24;
            c.scan = "tinyworld/crash-clt";
            std::vector<cs::transcoder::LayerWeights> layers;
            for (int64_t l = 0; l < c.nLayers; ++l) {
                cs::transcoder::LayerWeights w;
                w.encoder = at::randn({ c.nFeatures, c.dModel }) / std::sqrt(double(c.dModel));
                w.encoderBias = at::randn({ c.nFeatures }) * 0.3 - 0.6;
                w.decoder = at::randn({ c.nFeatures, c.nLayers - l, c.dModel }) * 0.1;
                w.decoderBias = at::zeros({ c.dModel });
                layers.push_back(w);
            }
            cs::transcoder::TranscoderSet::fromWeights(c, layers, "cpu")->save(clt.toStdString());
        }
        const QString corpus
            = QString::fromStdString(cs::test::writeWordCorpus(dir.filePath("corpus.txt").toStdString(), 2000));
        constexpr int64_t kTokens = 6000, kContext = 16, kEvery = 20;
        auto args = [&](const QString& db) {
            return QStringList { "--device", "cpu", "features", "build", "tinyworld", "--transcoder", clt, "--corpus",
                corpus, "--out", db, "--tokens", QString::number(kTokens), "--context", QString::number(kContext),
                "--batch-size", "4", "--checkpoint-every", QString::number(kEvery), "--json" };
        };
        const QString refDb = dir.filePath("ref.db"), db = dir.filePath("run.db");
        const Timing t = timeRun(cliPath(), args(refDb), refDb + "-wal");
        auto reference = cs::features::FeatureStore::open(refDb.toStdString());
        QVERIFY(reference->info().complete);
        qInfo("  uninterrupted build: %.0f ms, first WAL change at %.0f ms, %zu changes, %.0f ms apart", t.totalMs,
            t.firstMs(), t.eventsMs.size(), t.intervalMs());

        const int kills = killsPerOperation();
        int killed = 0, completions = 0, resumedRuns = 0;
        std::set<QString> leftoverNames;
        std::map<QString, int> outcomes; // where the kills fell, by what they left
        std::map<char, int> modes;
        int64_t savedTokens = -1; // the progress the store holds (-1: no store)
        bool hasState = false;
        // Past the kills, the chain is finished uninterrupted; kills go on until one run has
        // finished from a saved state.
        while (killed < kills || hasState || resumedRuns == 0) {
            QVERIFY2(clock.elapsed() < 600000, "the feature-store kills took more than 10 minutes");
            const bool last = killed >= kills && hasState; // finish the chain uninterrupted
            const double remaining = savedTokens > 0 ? 1.0 - double(savedTokens) / double(kTokens) : 1.0;
            const KillPlan plan = planKill(m_rng, t, remaining);
            Child c(cliPath(), args(db));
            QVERIFY2(c.started(), qPrintable(c.startError()));
            const bool wasKilled = last ? c.finish() : runAndKill(c, plan, db + "-wal");
            const QString where
                = QStringLiteral("kill %1 (%2, saved %3 tokens)").arg(killed).arg(plan.describe()).arg(savedTokens);
            if (!wasKilled) {
                QVERIFY2(c.exitCode() == 0, qPrintable(where + ": " + c.err()));
                const Json j = Json::parse(c.lines().join('\n').toStdString());
                // Resumed from the state it found, not from zero.
                QCOMPARE(j.at("resumed_from_tokens").get<int64_t>(), hasState ? savedTokens : int64_t(0));
                resumedRuns += hasState;
                auto store = cs::features::FeatureStore::open(db.toStdString());
                const QString why = storesDiffer(*reference, *store);
                QVERIFY2(why.isEmpty(), qPrintable(where + ": the finished store differs: " + why));
                QVERIFY(!store->buildState());
                store.reset();
                ++completions;
                removeWithSiblings(db); // the next chain starts afresh
                savedTokens = -1;
                hasState = false;
                continue;
            }
            ++killed;
            ++modes[plan.mode];
            for (const QString& name :
                leftovers(dir.path(), { "corpus.txt", "ref.db", "run.db", "run.db-wal", "run.db-shm" }))
                leftoverNames.insert(name);
            if (!QFileInfo::exists(db)) { // killed before the store was created: nothing to check
                QCOMPARE(savedTokens, int64_t(-1));
                ++outcomes["before the store existed"];
                continue;
            }
            std::unique_ptr<cs::features::FeatureStore> store;
            try {
                store = cs::features::FeatureStore::open(db.toStdString());
            } catch (const std::exception& e) {
                QFAIL(qPrintable(where + ": " + e.what()));
            }
            const auto info = store->info();
            const bool state = store->buildState().has_value();
            if (info.complete) { // the final records are in: every figure is there
                const QString why = storesDiffer(*reference, *store);
                QVERIFY2(why.isEmpty(), qPrintable(where + ": a store that says complete differs: " + why));
            }
            QVERIFY2(info.tokens >= std::max<int64_t>(savedTokens, 0),
                qPrintable(where + QStringLiteral(": the saved progress went back to %1 tokens").arg(info.tokens)));
            QVERIFY2(
                state || info.complete || info.tokens == 0, qPrintable(where + ": progress without a build state"));
            ++outcomes[info.complete ? (state ? "in the final writes (complete, state kept)" : "after the end")
                    : state          ? "with a saved state"
                                     : "before the first checkpoint"];
            savedTokens = info.tokens;
            hasState = state;
            store.reset();
            if (info.complete && !state) { // it got to the very end
                ++completions;
                removeWithSiblings(db);
                savedTokens = -1;
            }
        }
        summary("features build", killed, modes, completions, int(leftoverNames.size()),
            static_cast<double>(clock.elapsed()) / 1000);
        logOutcomes(outcomes);
        qInfo("  %d finished runs resumed from a saved state", resumedRuns);
        QVERIFY(resumedRuns > 0);
    }

    void transcoderCheckpoints()
    {
        m_rng.seed(m_seed * 100 + 5);
        QElapsedTimer clock;
        clock.start();
        QTemporaryDir dir(cs::test::testTempRoot() + "/crash-transcoder-XXXXXX");
        const QString corpus
            = QString::fromStdString(cs::test::writeWordCorpus(dir.filePath("corpus.txt").toStdString(), 400));
        constexpr int64_t kSteps = 240, kEvery = 10, kFeatures = 48;
        constexpr int64_t kLastCheckpoint = (kSteps - 1) / kEvery * kEvery; // none at the last step
        auto args = [&](const QString& out) {
            return QStringList { "--device", "cpu", "transcoder", "train", "tinyworld", "--corpus", corpus, "--kind",
                "clt", "--features", QString::number(kFeatures), "--steps", QString::number(kSteps), "--batch-tokens",
                "64", "--buffer-tokens", "256", "--seq-len", "16", "--checkpoint-every", QString::number(kEvery),
                "--out", out, "--json" };
        };
        const QString refOut = dir.filePath("ref"), out = dir.filePath("run");
        const QString ckpt = out + "/.train/checkpoint.safetensors";
        const Timing t = timeRun(cliPath(), args(refOut), refOut + "/.train/checkpoint.safetensors");
        QVERIFY(QFileInfo::exists(refOut + "/config.yaml"));
        QVERIFY(!QFileInfo::exists(refOut + "/.train"));
        const auto reference = setTensors(refOut);
        qInfo("  uninterrupted training: %.0f ms, first checkpoint at %.0f ms, %zu checkpoints, %.0f ms apart",
            t.totalMs, t.firstMs(), t.eventsMs.size(), t.intervalMs());

        const int kills = killsPerOperation();
        int killed = 0, completions = 0, resumedRuns = 0;
        std::set<QString> leftoverNames;
        std::map<QString, int> outcomes; // where the kills fell, by what they left
        std::map<char, int> modes;
        int64_t savedStep = 0; // the checkpoint's step (0: none)
        std::set<std::string> checkpointNames; // the tensors of the first checkpoint seen
        while (killed < kills || savedStep > 0 || resumedRuns == 0) {
            QVERIFY2(clock.elapsed() < 600000, "the transcoder kills took more than 10 minutes");
            const bool last = killed >= kills && savedStep > 0;
            KillPlan plan = planKill(m_rng, t, 1.0 - double(savedStep) / double(kSteps));
            // C: in the last steps, the set's save and the checkpoint's removal, after the last
            // checkpoint appears (its step read from the file), over the uninterrupted run's tail.
            Stamp seen = stampOf(ckpt);
            int64_t seenStep = savedStep;
            if (plan.mode == 'C' && !t.eventsMs.empty()) {
                const double tailMs = t.totalMs - t.eventsMs.back();
                plan.delayMs = tailMs * std::uniform_real_distribution<double>(0.0, 1.0)(m_rng)
                    + (savedStep == kLastCheckpoint ? t.firstMs() : 0.0); // resumed there: its start-up too
                plan.atEnd = [&] {
                    const Stamp now = stampOf(ckpt);
                    if (!(now == seen)) {
                        seen = now;
                        try {
                            seenStep
                                = std::stoll(cs::io::SafetensorsFile::open(ckpt.toStdString())->metadata().at("step"));
                        } catch (const std::exception&) { // gone (the run ended); a damaged one fails below
                        }
                    }
                    return seenStep >= kLastCheckpoint;
                };
            }
            Child c(cliPath(), args(out));
            QVERIFY2(c.started(), qPrintable(c.startError()));
            const bool wasKilled = last ? c.finish() : runAndKill(c, plan, ckpt);
            const QString where
                = QStringLiteral("kill %1 (%2, checkpoint at step %3)").arg(killed).arg(plan.describe()).arg(savedStep);
            if (!wasKilled) {
                QVERIFY2(c.exitCode() == 0, qPrintable(where + ": " + c.err()));
                const Json j = Json::parse(c.lines().join('\n').toStdString());
                // Resumed at the step the test read from the checkpoint, not from zero.
                QCOMPARE(j.at("resumed_from").get<int64_t>(), savedStep);
                QCOMPARE(j.at("steps").get<int64_t>(), kSteps);
                resumedRuns += savedStep > 0;
                QVERIFY(!QFileInfo::exists(out + "/.train"));
                const auto set = cs::transcoder::TranscoderSet::load(out.toStdString());
                QCOMPARE(set->config().nFeatures, kFeatures);
                const auto tensors = setTensors(out);
                QCOMPARE(tensors.size(), reference.size());
                for (const auto& [name, tensor] : tensors) {
                    QVERIFY2(reference.count(name) && reference.at(name).sizes() == tensor.sizes(), name.c_str());
                    QVERIFY2(at::isfinite(tensor).all().item<bool>(), name.c_str());
                    if (savedStep == 0) // nothing resumed: the very same weights
                        QVERIFY2(at::equal(reference.at(name), tensor), name.c_str());
                }
                // The temporary files of writes the kills cut short are gone with the saves.
                const QStringList stale = leftovers(out, {}).filter(".tmp-");
                QVERIFY2(stale.isEmpty(), qPrintable(where + ": left in the set: " + stale.join(", ")));
                ++completions;
                cs::removeTree(out.toStdString());
                savedStep = 0;
                continue;
            }
            ++killed;
            ++modes[plan.mode];
            for (const QString& name : leftovers(out + "/.train", { "checkpoint.safetensors" }))
                leftoverNames.insert(QStringLiteral("chain %1: .train/%2").arg(completions).arg(name));
            for (const QString& name : leftovers(out, {}).filter(".tmp-"))
                leftoverNames.insert(QStringLiteral("chain %1: %2").arg(completions).arg(name));
            const bool hasCheckpoint = QFileInfo::exists(ckpt);
            const bool hasConfig = QFileInfo::exists(out + "/config.yaml");
            ++outcomes[hasCheckpoint ? (hasConfig ? "set saved, checkpoint kept"
                                                  : (QDir(out).entryList({ "*.safetensors" }, QDir::Files).isEmpty()
                                                          ? "with a checkpoint"
                                                          : "in the set's save"))
                                     : (hasConfig ? "after the end" : "before the first checkpoint")];
            if (hasCheckpoint) {
                try {
                    auto file = cs::io::SafetensorsFile::open(ckpt.toStdString());
                    const int64_t step = std::stoll(file->metadata().at("step"));
                    QVERIFY2(step % kEvery == 0 && step > 0 && step < kSteps && step >= savedStep,
                        qPrintable(where + QStringLiteral(": checkpoint step %1").arg(step)));
                    std::set<std::string> names;
                    for (const auto& info : file->tensors()) {
                        names.insert(info.name);
                        QVERIFY2(at::isfinite(file->tensor(info.name)).all().item<bool>(), info.name.c_str());
                    }
                    if (checkpointNames.empty())
                        checkpointNames = names;
                    QVERIFY2(names == checkpointNames, qPrintable(where + ": the checkpoint's tensors differ"));
                    savedStep = step;
                } catch (const std::exception& e) {
                    QFAIL(qPrintable(where + ": " + e.what()));
                }
            }
            // The checkpoint goes only once the set is saved.
            QVERIFY2(hasCheckpoint || savedStep == 0 || QFileInfo::exists(out + "/config.yaml"),
                qPrintable(where + ": the checkpoint is gone and no set was saved"));
            if (QFileInfo::exists(out + "/config.yaml")) { // a set with its config is whole
                try {
                    const auto set = cs::transcoder::TranscoderSet::load(out.toStdString());
                    QCOMPARE(set->config().nFeatures, kFeatures);
                } catch (const std::exception& e) {
                    QFAIL(qPrintable(where + ": " + e.what()));
                }
                if (!hasCheckpoint) { // complete: the checkpoint was spent
                    ++completions;
                    cs::removeTree(out.toStdString());
                    savedStep = 0;
                }
            }
        }
        summary("transcoder train", killed, modes, completions, int(leftoverNames.size()),
            static_cast<double>(clock.elapsed()) / 1000);
        logOutcomes(outcomes);
        qInfo("  %d finished runs resumed from a checkpoint", resumedRuns);
        QVERIFY(resumedRuns > 0);
    }
};

QTEST_GUILESS_MAIN(TestCrashConsistency)
#include "tst_crash_consistency.moc"
