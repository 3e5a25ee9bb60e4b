// The explorer, driven through its real QML offscreen: a tiny random llama folder written by
// the test is opened through the controller, a prompt is typed into the prompt field, and
// the next-token rows are checked against a softmax of the engine's full logits computed
// here. Also the engine worker's job queue: bursts collapse to the newest, stale results
// are dropped.

#include "appcontroller.h"
#include "engineworker.h"
#include "hf_fixtures.h"
#include "jobqueue.h"
#include "mainwindow.h"
#include "tokentext.h"

#include <cs/engine.h>
#include <cs/error.h>

#include <QAbstractItemModelTester>
#include <QApplication>
#include <QDir>
#include <QFileDialog>
#include <QGuiApplication>
#include <QQmlApplicationEngine>
#include <QQuickItem>
#include <QQuickWindow>
#include <QSemaphore>
#include <QSet>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <numeric>
#include <thread>
#include <vector>

using cs::app::AppController;
using cs::app::EngineState;
using cs::app::EngineWorker;
using cs::app::JobQueue;
using cs::app::TokenDistributionModel;

namespace {

// Generous: a debug build on a loaded 2-core machine.
constexpr int kTimeoutMs = 60000;

// The k probabilities the distribution model shows, in row order.
std::vector<double> shownProbabilities(const TokenDistributionModel& model)
{
    std::vector<double> probs;
    for (int row = 0; row < model.rowCount(); ++row)
        probs.push_back(model.data(model.index(row), TokenDistributionModel::ProbabilityRole).toDouble());
    return probs;
}

// k rows, each a probability, sorted descending, summing to at most 1.
bool isTopKDistribution(const TokenDistributionModel& model, int k)
{
    if (model.rowCount() != k)
        return false;
    const std::vector<double> probs = shownProbabilities(model);
    for (double p : probs) {
        if (!(p >= 0.0 && p <= 1.0))
            return false;
    }
    if (!std::is_sorted(probs.begin(), probs.end(), std::greater<double>()))
        return false;
    return std::accumulate(probs.begin(), probs.end(), 0.0) <= 1.0 + 1e-5;
}

// The item with that objectName anywhere in the window's visual tree.
QQuickItem* findItem(QQuickWindow* window, const char* objectName)
{
    return cs::app::findItem(window, QLatin1String(objectName));
}

} // namespace

class TestGuiExplorer : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();

    // Token text shown with visible whitespace.
    void visibleTokenText_data();
    void visibleTokenText();

    // The job queue and the worker.
    void burstWithOneTagRunsTheLatest();
    void burstWithOneTagWhileBusyRunsOnlyTheLast();
    void untaggedJobsAllRunInOrder();
    void staleGenerationIsDropped();
    void replacedRequestNeverDelivers();
    void workerReportsErrors();

    // The window.
    void startsWithoutModel();
    void opensModelAndShowsDistribution();
    void distributionMatchesSoftmaxOfLogits();
    void typingIntoPromptFieldRuns();
    void enterRunsAndShiftEnterAddsNewline();
    void topKChangesRowCount();
    void generateShowsContinuation();
    void badFolderShowsErrorAndKeepsModel();
    void openButtonShowsFolderDialog();
    void windowGrabIsDrawn();

private:
    void waitForDistribution(int k);

    std::unique_ptr<QTemporaryDir> m_tmp;
    QString m_modelDir;
    std::unique_ptr<QQmlApplicationEngine> m_engine;
    AppController* m_controller = nullptr;
    QQuickWindow* m_window = nullptr;
    std::shared_ptr<cs::ModelHandle> m_reference; // the same folder, opened directly
};

void TestGuiExplorer::initTestCase()
{
    QStandardPaths::setTestModeEnabled(true); // QSettings out of the user's config
    QGuiApplication::setApplicationName(QStringLiteral("Circuitscope"));
    QGuiApplication::setOrganizationName(QStringLiteral("Circuitscope"));
    // Offscreen has no OpenGL: the software scene graph draws what grabWindow reads.
    QQuickWindow::setGraphicsApi(QSGRendererInterface::Software);

    // Under CS_TEST_TMP (set by CTest) when given, else the system's temporary folder.
    const QString base = qEnvironmentVariable("CS_TEST_TMP");
    if (!base.isEmpty()) {
        QDir().mkpath(base);
        m_tmp = std::make_unique<QTemporaryDir>(QDir(base).filePath(QStringLiteral("gui-explorer-XXXXXX")));
    } else {
        m_tmp = std::make_unique<QTemporaryDir>();
    }
    QVERIFY(m_tmp->isValid());
    m_modelDir = m_tmp->filePath(QStringLiteral("tiny-llama"));
    QVERIFY(QDir().mkpath(m_modelDir));
    cs::test::TinySpec spec;
    spec.family = "llama";
    cs::test::writeTinyModel(m_modelDir, spec);
    QVERIFY(QFileInfo::exists(m_modelDir + QStringLiteral("/config.json")));
    m_reference = cs::ModelHandle::open(m_modelDir.toStdString(), "cpu");
    QVERIFY(m_reference);

    m_engine = std::make_unique<QQmlApplicationEngine>();
    m_controller = cs::app::loadMainWindow(*m_engine, cs::app::LaunchOptions { QString(), QStringLiteral("cpu") });
    QVERIFY2(m_controller, "Main.qml did not load");
    m_window = cs::app::mainWindow(*m_engine);
    QVERIFY(m_window);
    QVERIFY(QTest::qWaitForWindowExposed(m_window));

    // Every model the window shows, checked on every change from here on.
    new QAbstractItemModelTester(
        m_controller->distribution(), QAbstractItemModelTester::FailureReportingMode::QtTest, this);
    new QAbstractItemModelTester(
        m_controller->promptTokens(), QAbstractItemModelTester::FailureReportingMode::QtTest, this);
}

void TestGuiExplorer::cleanupTestCase()
{
    m_engine.reset(); // the controller and its worker go with it
}

void TestGuiExplorer::waitForDistribution(int k)
{
    // upToDate: the rows are for the current prompt and top-k, and nothing newer is pending.
    QTRY_VERIFY_WITH_TIMEOUT(m_controller->isUpToDate(), kTimeoutMs);
    QVERIFY(isTopKDistribution(*m_controller->distribution(), k));
    QCOMPARE(m_controller->analyzedPrompt(), m_controller->prompt());
}

// --- token text

void TestGuiExplorer::visibleTokenText_data()
{
    QTest::addColumn<QByteArray>("bytes");
    QTest::addColumn<QString>("shown");
    QTest::newRow("leading space") << QByteArray(" the") << QStringLiteral("\u2423the");
    QTest::newRow("newline") << QByteArray("\n") << QStringLiteral("\u23CE");
    QTest::newRow("tab") << QByteArray("a\tb") << QStringLiteral("a\u21E5b");
    QTest::newRow("carriage return") << QByteArray("a\r") << QStringLiteral("a<0x0D>");
    QTest::newRow("control") << QByteArray("\x01") << QStringLiteral("<0x01>");
    QTest::newRow("no-break space") << QByteArray("\xC2\xA0") << QStringLiteral("\u237D");
    QTest::newRow("empty") << QByteArray() << QStringLiteral("\u2205");
    QTest::newRow("two-byte char") << QByteArray("caf\xC3\xA9") << QStringLiteral("caf\u00E9");
    QTest::newRow("partial char") << QByteArray("\xE2\x82") << QStringLiteral("<0xE2><0x82>");
    QTest::newRow("overlong") << QByteArray("\xC0\xAF") << QStringLiteral("<0xC0><0xAF>");
    QTest::newRow("surrogate") << QByteArray("\xED\xA0\x80") << QStringLiteral("<0xED><0xA0><0x80>");
    QTest::newRow("astral") << QByteArray("\xF0\x9F\x98\x80") << QString::fromUtf8("\xF0\x9F\x98\x80");
}

void TestGuiExplorer::visibleTokenText()
{
    QFETCH(QByteArray, bytes);
    QFETCH(QString, shown);
    QCOMPARE(cs::app::visibleTokenText(bytes.toStdString()), shown);
}

// --- job queue and worker

void TestGuiExplorer::burstWithOneTagRunsTheLatest()
{
    // Jobs slower than posting: most of a burst is still queued when the next one comes.
    for (int attempt = 0; attempt < 5; ++attempt) {
        JobQueue queue;
        std::atomic<int> ran { 0 };
        std::atomic<int> last { -1 };
        for (int i = 0; i < 20; ++i) {
            queue.post("prompt", [&, i] {
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
                ++ran;
                last = i;
            });
        }
        queue.waitForIdle();
        QVERIFY2(ran.load() <= 5, qPrintable(QStringLiteral("%1 of 20 ran").arg(ran.load())));
        QCOMPARE(last.load(), 19);
        QCOMPARE(queue.startedCount() + queue.replacedCount(), uint64_t(20));
    }
}

void TestGuiExplorer::burstWithOneTagWhileBusyRunsOnlyTheLast()
{
    JobQueue queue;
    QSemaphore started;
    QSemaphore gate;
    queue.post("load", [&] {
        started.release();
        gate.acquire();
    });
    started.acquire(); // the worker is now busy
    std::vector<int> ran;
    for (int i = 0; i < 20; ++i)
        queue.post("prompt", [&ran, i] { ran.push_back(i); });
    QCOMPARE(queue.queuedCount(), std::size_t(1));
    gate.release();
    queue.waitForIdle();
    QCOMPARE(ran, std::vector<int> { 19 });
    QCOMPARE(queue.replacedCount(), uint64_t(19));
}

void TestGuiExplorer::untaggedJobsAllRunInOrder()
{
    JobQueue queue;
    std::vector<int> ran;
    for (int i = 0; i < 20; ++i)
        queue.post(std::string(), [&ran, i] { ran.push_back(i); });
    queue.waitForIdle();
    std::vector<int> expected(20);
    std::iota(expected.begin(), expected.end(), 0);
    QCOMPARE(ran, expected);
}

void TestGuiExplorer::staleGenerationIsDropped()
{
    EngineWorker worker;
    QSignalSpy stale(&worker, &EngineWorker::staleResultDropped);
    QSignalSpy busy(&worker, &EngineWorker::busyChanged);
    QSemaphore started;
    QSemaphore gate;
    std::vector<int> delivered;
    const auto record = [&delivered](std::shared_ptr<const int> v) { delivered.push_back(*v); };

    const quint64 first = worker.request<int>(
        QStringLiteral("prompt"),
        [&](EngineState&) {
            started.release();
            gate.acquire();
            return std::make_shared<const int>(1);
        },
        record, nullptr);
    started.acquire(); // running: a newer request cannot replace it, only outdate it
    const quint64 second = worker.request<int>(
        QStringLiteral("prompt"), [](EngineState&) { return std::make_shared<const int>(2); }, record, nullptr);
    QCOMPARE(second, first + 1);
    QVERIFY(worker.isBusy());
    gate.release();

    QTRY_VERIFY_WITH_TIMEOUT(!worker.isBusy(), kTimeoutMs);
    QCOMPARE(delivered, std::vector<int> { 2 });
    QCOMPARE(stale.count(), 1);
    QCOMPARE(stale.at(0).at(1).toULongLong(), first);
    QCOMPARE(busy.count(), 2); // true, then false once
    QCOMPARE(busy.last().at(0).toBool(), false);
}

void TestGuiExplorer::replacedRequestNeverDelivers()
{
    EngineWorker worker;
    QSignalSpy stale(&worker, &EngineWorker::staleResultDropped);
    QSemaphore started;
    QSemaphore gate;
    std::vector<int> delivered;
    const auto record = [&delivered](std::shared_ptr<const int> v) { delivered.push_back(*v); };
    worker.request<int>(
        QStringLiteral("open"),
        [&](EngineState&) {
            started.release();
            gate.acquire();
            return std::make_shared<const int>(0);
        },
        record, nullptr);
    started.acquire();
    for (int i = 1; i <= 20; ++i)
        worker.request<int>(
            QStringLiteral("prompt"), [i](EngineState&) { return std::make_shared<const int>(i); }, record, nullptr);
    gate.release();
    QTRY_VERIFY_WITH_TIMEOUT(!worker.isBusy(), kTimeoutMs);
    QCOMPARE(delivered, (std::vector<int> { 0, 20 }));
    QCOMPARE(stale.count(), 0); // replaced in the queue: never ran, never reported
    QCOMPARE(worker.queue().startedCount(), uint64_t(2));
}

void TestGuiExplorer::workerReportsErrors()
{
    EngineWorker worker;
    QString error;
    bool gotResult = false;
    worker.request<int>(
        QStringLiteral("open"), [](EngineState&) -> std::shared_ptr<const int> { throw cs::Error("no such folder"); },
        [&](std::shared_ptr<const int>) { gotResult = true; }, [&](const QString& message) { error = message; });
    QTRY_VERIFY_WITH_TIMEOUT(!worker.isBusy(), kTimeoutMs);
    QVERIFY(!gotResult);
    QCOMPARE(error, QStringLiteral("no such folder"));
}

// --- the window

void TestGuiExplorer::startsWithoutModel()
{
    // A second window, as main() starts it: with the default model. Until tinyworld ships,
    // the window says so and stays usable; once it ships, it opens.
    QQmlApplicationEngine engine;
    AppController* controller = cs::app::loadMainWindow(
        engine, cs::app::LaunchOptions { QLatin1String(cs::kDefaultModel), QStringLiteral("cpu") });
    QVERIFY(controller);
    QVERIFY(controller != m_controller); // one controller per engine
    QTRY_VERIFY_WITH_TIMEOUT(!controller->loading() && !controller->busy(), kTimeoutMs);

    bool shipped = true;
    try {
        cs::resolveModelFolder(cs::kDefaultModel);
    } catch (const cs::Error&) {
        shipped = false;
    }
    if (shipped) {
        QVERIFY(controller->hasModel());
        QCOMPARE(controller->modelName(), QLatin1String(cs::kDefaultModel));
        return;
    }
    QVERIFY(!controller->hasModel());
    QVERIFY2(controller->errorText().contains(QLatin1String("was not found")), qPrintable(controller->errorText()));
    QQuickWindow* window = cs::app::mainWindow(engine);
    QVERIFY(window);
    QQuickItem* message = findItem(window, "noModelMessage");
    QVERIFY(message);
    QCOMPARE(message->property("text").toString(), controller->errorText());
    QVERIFY(findItem(window, "openModelButton"));

    const QString base = qEnvironmentVariable("CS_TEST_TMP");
    if (!base.isEmpty() && QTest::qWaitForWindowExposed(window))
        window->grabWindow().save(QDir(base).filePath(QStringLiteral("tst_gui_explorer_nomodel.png")));
}

void TestGuiExplorer::opensModelAndShowsDistribution()
{
    QSignalSpy opened(m_controller, &AppController::modelOpenFinished);
    m_controller->openModel(m_modelDir);
    QTRY_COMPARE_WITH_TIMEOUT(opened.count(), 1, kTimeoutMs);
    QCOMPARE(opened.first().at(0).toBool(), true);
    QVERIFY(m_controller->hasModel());
    QCOMPARE(m_controller->modelName(), QStringLiteral("tiny-llama"));
    QCOMPARE(m_controller->modelFamily(), QStringLiteral("llama"));
    QCOMPARE(m_controller->modelLayers(), int(m_reference->info().nLayers));
    QCOMPARE(m_controller->modelDModel(), int(m_reference->info().dModel));
    QVERIFY(m_controller->errorText().isEmpty());
    QQuickItem* nameLabel = findItem(m_window, "modelNameLabel");
    QVERIFY(nameLabel);
    QCOMPARE(nameLabel->property("text").toString(), QStringLiteral("tiny-llama"));

    m_controller->setPrompt(QStringLiteral("the cat sat on the"));
    waitForDistribution(m_controller->topK());
    QCOMPARE(m_controller->topK(), 10);
    const std::vector<int64_t> ids = m_reference->encode("the cat sat on the");
    QCOMPARE(m_controller->promptTokens()->rowCount(), int(ids.size()));
    // The ListView shows the same rows.
    QQuickItem* view = findItem(m_window, "distributionView");
    QVERIFY(view);
    QTRY_COMPARE(view->property("count").toInt(), 10);
}

void TestGuiExplorer::distributionMatchesSoftmaxOfLogits()
{
    // An independent computation: softmax over the full last-position logits, sorted here.
    const std::string prompt = "the cat sat on the";
    QCOMPARE(m_controller->prompt(), QString::fromStdString(prompt));
    const std::vector<int64_t> ids = m_reference->encode(prompt);
    const cs::LogitsResult full = m_reference->logits(ids, 1, false);
    QVERIFY(!full.logits.empty());
    const std::vector<float>& logits = full.logits.back(); // [vocab]
    const double maxLogit = *std::max_element(logits.begin(), logits.end());
    double z = 0;
    for (float l : logits)
        z += std::exp(double(l) - maxLogit);
    std::vector<int64_t> order(logits.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return logits[a] > logits[b]; });

    const TokenDistributionModel& model = *m_controller->distribution();
    for (int row = 0; row < model.rowCount(); ++row) {
        const QModelIndex index = model.index(row);
        const double shownProb = model.data(index, TokenDistributionModel::ProbabilityRole).toDouble();
        const double shownLogit = model.data(index, TokenDistributionModel::LogitRole).toDouble();
        const int64_t shownId = model.data(index, TokenDistributionModel::TokenIdRole).toLongLong();
        const double expected = std::exp(double(logits[shownId]) - maxLogit) / z;
        QVERIFY2(std::abs(shownProb - expected) < 1e-4,
            qPrintable(QStringLiteral("row %1: p %2, softmax %3").arg(row).arg(shownProb).arg(expected)));
        QVERIFY(std::abs(shownLogit - logits[shownId]) < 1e-3);
        // Same probability as the reference ranking's row (ties may swap ids).
        QVERIFY(std::abs(double(logits[order[row]]) - shownLogit) < 1e-3);
        const std::vector<std::string> text = m_reference->tokenTexts({ shownId });
        QCOMPARE(model.data(index, TokenDistributionModel::TextRole).toString(), cs::app::visibleTokenText(text[0]));
    }
}

void TestGuiExplorer::typingIntoPromptFieldRuns()
{
    QQuickItem* field = findItem(m_window, "promptField");
    QVERIFY(field);
    // The field follows the controller.
    QCOMPARE(field->property("text").toString(), m_controller->prompt());

    field->setProperty("text", QString());
    QTRY_COMPARE(m_controller->prompt(), QString());
    m_window->requestActivate();
    field->forceActiveFocus();
    QTRY_VERIFY(field->hasActiveFocus());

    QSignalSpy analyzed(m_controller, &AppController::promptAnalyzed);
    QTRY_VERIFY_WITH_TIMEOUT(!m_controller->busy(), kTimeoutMs);
    analyzed.clear();
    // QTest::keyClicks takes only widgets: one key event per character.
    for (char c : std::string("a dog ran"))
        QTest::keyClick(m_window, c);
    QCOMPARE(m_controller->prompt(), QStringLiteral("a dog ran"));
    const int k = m_controller->topK();
    QTRY_VERIFY_WITH_TIMEOUT(analyzed.count() >= 1 && !m_controller->busy(), kTimeoutMs);
    waitForDistribution(k);
    // Nine keys inside the debounce window ran the model once, not nine times.
    QTest::qWait(2 * AppController::kPromptDebounceMs);
    QVERIFY2(analyzed.count() <= 2, qPrintable(QString::number(analyzed.count())));
    QCOMPARE(m_controller->promptTokens()->rowCount(), int(m_reference->encode("a dog ran").size()));
}

void TestGuiExplorer::enterRunsAndShiftEnterAddsNewline()
{
    QQuickItem* field = findItem(m_window, "promptField");
    QVERIFY(field);
    field->forceActiveFocus();
    QTRY_VERIFY(field->hasActiveFocus());
    const QString before = m_controller->prompt();

    QSignalSpy analyzed(m_controller, &AppController::promptAnalyzed);
    QTest::keyClick(m_window, Qt::Key_Return);
    QCOMPARE(m_controller->prompt(), before); // Enter runs, it does not edit
    QTRY_VERIFY_WITH_TIMEOUT(analyzed.count() > 0, kTimeoutMs);

    QTest::keyClick(m_window, Qt::Key_Return, Qt::ShiftModifier);
    QCOMPARE(m_controller->prompt(), before + QLatin1Char('\n'));
    waitForDistribution(m_controller->topK());
    QCOMPARE(m_controller->promptTokens()->rowCount(),
        int(m_reference->encode(m_controller->prompt().toStdString()).size()));
}

void TestGuiExplorer::topKChangesRowCount()
{
    m_controller->setPrompt(QStringLiteral("the cat sat on the"));
    for (int k : { 3, 25, 10 }) {
        m_controller->setTopK(k);
        QCOMPARE(m_controller->topK(), k);
        waitForDistribution(k);
    }
    QQuickItem* spin = findItem(m_window, "topKSpinBox");
    QVERIFY(spin);
    QCOMPARE(spin->property("value").toInt(), 10);
}

void TestGuiExplorer::generateShowsContinuation()
{
    QSignalSpy generated(m_controller, &AppController::generationChanged);
    m_controller->generate(6);
    QTRY_VERIFY_WITH_TIMEOUT(!m_controller->generation().isEmpty() && !m_controller->busy(), kTimeoutMs);
    // Greedy: the same continuation as the engine's, computed directly.
    cs::GenerateRequest request;
    request.maxNew = 6;
    const cs::GenerateResult expected
        = m_reference->generate(m_reference->encode(m_controller->prompt().toStdString()), request);
    QCOMPARE(m_controller->generation(), QString::fromStdString(expected.text));
    QCOMPARE(m_controller->generationPrompt(), m_controller->prompt());
    QQuickItem* text = findItem(m_window, "generationText");
    QVERIFY(text);
    QVERIFY(!text->property("text").toString().isEmpty());

    // A new prompt makes the continuation stale.
    m_controller->setPrompt(m_controller->prompt() + QStringLiteral(" mat"));
    QVERIFY(m_controller->generation().isEmpty());
    waitForDistribution(m_controller->topK());
}

void TestGuiExplorer::badFolderShowsErrorAndKeepsModel()
{
    const QString name = m_controller->modelName();
    const int rows = m_controller->distribution()->rowCount();
    QSignalSpy finished(m_controller, &AppController::modelOpenFinished);
    m_controller->openModel(m_tmp->filePath(QStringLiteral("does-not-exist")));
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 1, kTimeoutMs);
    QCOMPARE(finished.first().at(0).toBool(), false);

    QVERIFY(!m_controller->errorText().isEmpty());
    QVERIFY(m_controller->hasModel());
    QCOMPARE(m_controller->modelName(), name);
    QCOMPARE(m_controller->distribution()->rowCount(), rows);
    QQuickItem* status = findItem(m_window, "statusLabel");
    QVERIFY(status);
    QCOMPARE(status->property("text").toString(), m_controller->errorText());

    // Still usable: the old model answers the next prompt.
    m_controller->setPrompt(QStringLiteral("a dog"));
    waitForDistribution(m_controller->topK());
    m_controller->clearError();
    QTRY_COMPARE(status->property("text").toString(), m_controller->statusText());
}

void TestGuiExplorer::openButtonShowsFolderDialog()
{
    // The folder dialog is Qt Widgets' (the platform's own where there is one; offscreen, Qt's).
    QVERIFY(qobject_cast<QApplication*>(QCoreApplication::instance()));
    QQuickItem* button = findItem(m_window, "openModelButton");
    QVERIFY(button);
    QVERIFY(QMetaObject::invokeMethod(button, "clicked"));
    QTRY_VERIFY(m_controller->fileDialogs()->current() && m_controller->fileDialogs()->current()->isVisible());
    QFileDialog* dialog = m_controller->fileDialogs()->current();
    QCOMPARE(dialog->fileMode(), QFileDialog::Directory);
    // It starts beside the open model's folder.
    QCOMPARE(QDir(dialog->directory()).absolutePath(), QDir(m_controller->browseFolder().toLocalFile()).absolutePath());
    dialog->reject();
    QTRY_VERIFY(!m_controller->fileDialogs()->current());
    QVERIFY(m_controller->hasModel());
}

void TestGuiExplorer::windowGrabIsDrawn()
{
    // Every pane filled: prompt, tokens, distribution, continuation.
    m_controller->setPrompt(QStringLiteral("the cat sat on the"));
    waitForDistribution(m_controller->topK());
    m_controller->generate(12);
    QTRY_VERIFY_WITH_TIMEOUT(!m_controller->generation().isEmpty() && !m_controller->busy(), kTimeoutMs);
    m_window->resize(1180, 760);
    QTest::qWait(100);
    const QImage image = m_window->grabWindow();
    QVERIFY(!image.isNull());
    QCOMPARE(image.size(), m_window->size() * m_window->devicePixelRatio());
    // Not one flat colour: panels, text and bars were drawn.
    QSet<QRgb> colours;
    for (int y = 0; y < image.height() && colours.size() < 64; y += 3) {
        for (int x = 0; x < image.width() && colours.size() < 64; x += 3)
            colours.insert(image.pixel(x, y));
    }
    QVERIFY2(colours.size() >= 16, qPrintable(QStringLiteral("%1 colours").arg(colours.size())));

    const QString base = qEnvironmentVariable("CS_TEST_TMP");
    if (!base.isEmpty())
        image.save(QDir(base).filePath(QStringLiteral("tst_gui_explorer.png")));
}

QTEST_MAIN(TestGuiExplorer)
#include "tst_gui_explorer.moc"
