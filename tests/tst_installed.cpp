// The programs as a user runs them once installed, each as a process: `circuitscope
// --screenshot` on a machine with no display and no QT_QPA_PLATFORM (it picks offscreen itself),
// and circuitscope-cli run from an unpacked prefix (PREFIX/bin) finding the model shipped in
// PREFIX/share/circuitscope/models before the source tree's (dpkg-deb -x into any folder).

#include "hf_fixtures.h"

#include <QDir>
#include <QFile>
#include <QImage>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QTemporaryDir>
#include <QTest>

#include <filesystem>
#include <memory>
#include <set>

namespace {

// The environment of a machine with no screen: no display server, no platform chosen, no
// model folder override; settings and autosaves under `home`.
QProcessEnvironment headlessEnvironment(const QString& home)
{
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    for (const char* name : { "DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM", "CIRCUITSCOPE_MODELS" })
        env.remove(QLatin1String(name));
    env.insert(QStringLiteral("XDG_CONFIG_HOME"), home + "/config");
    env.insert(QStringLiteral("XDG_DATA_HOME"), home + "/data");
    env.insert(QStringLiteral("XDG_CACHE_HOME"), home + "/cache");
    return env;
}

int distinctColours(const QImage& image)
{
    std::set<QRgb> colours;
    for (int y = 0; y < image.height(); y += 2)
        for (int x = 0; x < image.width(); x += 2)
            colours.insert(image.pixel(x, y));
    return int(colours.size());
}

// Runs `program args` to the end (at most `timeoutMs`); returns its stdout, and its stderr
// through `err`.
QByteArray run(const QString& program, const QStringList& args, const QProcessEnvironment& env, int timeoutMs,
    int& exitCode, QByteArray& err)
{
    QProcess process;
    process.setProcessEnvironment(env);
    process.start(program, args);
    exitCode = -1;
    if (!process.waitForStarted() || !process.waitForFinished(timeoutMs)) {
        process.kill();
        process.waitForFinished();
        err = "did not start or did not finish: " + process.readAllStandardError();
        return {};
    }
    err = process.readAllStandardError();
    exitCode = process.exitStatus() == QProcess::NormalExit ? process.exitCode() : -1;
    return process.readAllStandardOutput();
}

} // namespace

class TestInstalled : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void screenshotWithoutDisplay();
    void cliFindsModelsBesideItself();

private:
    std::unique_ptr<QTemporaryDir> m_tmp;
};

void TestInstalled::initTestCase()
{
    m_tmp = std::make_unique<QTemporaryDir>(cs::test::testTempRoot() + "/installed-XXXXXX");
    QVERIFY(m_tmp->isValid());
}

void TestInstalled::screenshotWithoutDisplay()
{
    // Without the program's own choice Qt tries xcb, finds no display and aborts.
    const QString png = m_tmp->filePath(QStringLiteral("window.png"));
    int exitCode = -1;
    QByteArray err;
    run(QStringLiteral(CS_APP_PATH),
        { QStringLiteral("--device"), QStringLiteral("cpu"), QStringLiteral("--size"), QStringLiteral("800x600"),
            QStringLiteral("--screenshot"), png },
        headlessEnvironment(m_tmp->filePath(QStringLiteral("home"))), 240000, exitCode, err);
    QVERIFY2(exitCode == 0, err.constData());
    QImage image;
    QVERIFY2(image.load(png), "the screenshot is not a readable PNG");
    QCOMPARE(image.size(), QSize(800, 600)); // offscreen: device pixel ratio 1
    QVERIFY2(distinctColours(image) > 50, "the screenshot is (nearly) one colour");
}

void TestInstalled::cliFindsModelsBesideItself()
{
    // PREFIX/bin/circuitscope-cli (a hard link: /proc/self/exe names the link's path) and a
    // "tinyworld" in PREFIX/share/circuitscope/models that differs from the shipped one (2
    // layers, 32 wide; the shipped one has 4 and 128).
    const QString prefix = m_tmp->filePath(QStringLiteral("prefix"));
    QVERIFY(QDir().mkpath(prefix + "/bin"));
    const QString cli = prefix + "/bin/circuitscope-cli";
    std::error_code ec;
    std::filesystem::create_hard_link(CS_CLI_PATH, cli.toStdString(), ec);
    if (ec) // another file system: a copy does as well
        QVERIFY(QFile::copy(QStringLiteral(CS_CLI_PATH), cli));
    cs::test::TinySpec spec;
    spec.nLayers = 2;
    spec.dModel = 32;
    const QString model = cs::test::writeTinyModel(prefix + "/share/circuitscope/models/tinyworld", spec);

    int exitCode = -1;
    QByteArray err;
    const QByteArray out = run(cli,
        { QStringLiteral("--device"), QStringLiteral("cpu"), QStringLiteral("info"), QStringLiteral("tinyworld"),
            QStringLiteral("--json") },
        headlessEnvironment(m_tmp->filePath(QStringLiteral("home"))), 60000, exitCode, err);
    QVERIFY2(exitCode == 0, err.constData());
    const QJsonObject info = QJsonDocument::fromJson(out).object();
    QCOMPARE(QDir(info.value(QLatin1String("folder")).toString()).canonicalPath(), QDir(model).canonicalPath());
    QCOMPARE(info.value(QLatin1String("layers")).toInt(), 2);
    QCOMPARE(info.value(QLatin1String("d_model")).toInt(), 32);
}

QTEST_MAIN(TestInstalled)
#include "tst_installed.moc"
