// The explorer's scripted flow on tinyworld, through the real window (Main.qml) offscreen:
// trace the start-up prompt, select a feature by clicking it on the canvas, Ctrl-click to pin,
// group into a named supernode with the subgraph pane's own field and button, ablate and then
// suppress it and see the top token change (checked against the engine run directly), export
// SVG, PDF and PNG, save, undo and redo, reopen, refuse a corrupt session while the open one
// survives, and recover the autosave of a process killed mid-session. Every list model the
// window shows is watched by QAbstractItemModelTester throughout.

#include "appcontroller.h"
#include "explorer_window.h"
#include "explorercontroller.h"
#include "figure/figure.h"
#include "mainwindow.h"

#include <cs/engine.h>
#include <cs/intervention.h>
#include <cs/model.h>
#include <cs/replacement.h>
#include <cs/transcoder.h>

#include <ATen/ATen.h>

#include <QAbstractItemModelTester>
#include <QFile>
#include <QImage>
#include <QProcess>
#include <QQmlApplicationEngine>
#include <QQuickItem>
#include <QQuickWindow>
#include <QRegularExpression>
#include <QSGRendererInterface>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>
#include <QXmlStreamReader>

#include <memory>
#include <set>

namespace {

const char* const kPrompt = "Fact: the capital of the state containing Dallas is";
// Features of the Dallas graph (node ids; scripts/tinyworld-experiments finds them): "say
// Austin" (top output token Austin) and Texas (it promotes TX, Texas and Austin), both at the
// last position.
const QString kSayCapital = QStringLiteral("3_976_12");
const QString kTexas = QStringLiteral("3_321_12");
const QString kSupernode = QStringLiteral("Say Austin");

// The top token after editing the given features at the last position, from the engine alone.
cs::intervention::InterventionResult engineOutcome(double value, cs::intervention::Op op)
{
    auto handle = cs::ModelHandle::open(cs::kDefaultModel, "cpu");
    auto model = handle->model();
    cs::transcoder::TranscoderSet::LoadOptions lo;
    lo.device = "cpu";
    auto set = cs::transcoder::TranscoderSet::load(cs::transcoder::resolveTranscoderFolder(model->folder(), "clt"), lo);
    const auto ids = model->tokenizer().encode(kPrompt);
    const auto context = cs::attribution::buildContext(model, set, at::tensor(ids, at::kLong));
    const int64_t last = int64_t(ids.size()) - 1;
    std::vector<cs::intervention::FeatureEdit> edits {
        { 3, last, 976, op, value },
        { 3, last, 321, op, value },
    };
    cs::intervention::InterventionOptions options;
    options.topK = 10;
    return cs::intervention::intervene(context, edits, options);
}

QByteArray readAll(const QString& path)
{
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

int distinctColours(const QImage& image)
{
    std::set<QRgb> colours;
    for (int y = 0; y < image.height(); y += 2)
        for (int x = 0; x < image.width(); x += 2)
            colours.insert(image.pixel(x, y));
    return int(colours.size());
}

} // namespace

class TestGuiFlow : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();
    void tracesStartupPrompt();
    void clickSelectsAndShowsCard();
    void ctrlClickPinsAndGroupNames();
    void ablateThenSuppressChangesTopToken();
    void exportsSvgPdfPng();
    void saveUndoRedoReopen();
    void corruptSessionIsRefusedAndSessionSurvives();
    void killedProcessIsRecovered();
    void graphJsonRoundTrip();
    void otherTranscodersAndStores();
    void windowIsDrawn();
    void closingWithEditsAsks();

private:
    QQuickItem* canvasOf(const char* viewName) const;
    // Clicks the node on the main canvas, with modifiers.
    void clickNode(const QString& id, Qt::KeyboardModifiers modifiers);
    void settle();

    std::unique_ptr<QTemporaryDir> m_tmp;
    cs::test::ExplorerWindow m_main;
    cs::app::AppController* m_app = nullptr;
    cs::app::ExplorerController* m_explorer = nullptr;
    QQuickWindow* m_window = nullptr;
    std::vector<std::unique_ptr<QAbstractItemModelTester>> m_testers;
    QString m_sessionPath;
    cs::app::ExplorerState m_savedState;
};

void TestGuiFlow::initTestCase()
{
    cs::test::recordQmlWarnings();
    m_tmp = std::make_unique<QTemporaryDir>(qEnvironmentVariable("CS_TEST_TMP", QDir::tempPath()) + "/flow-XXXXXX");
    QVERIFY(m_tmp->isValid());
    QVERIFY2(m_main.open(), "Main.qml did not load or show");
    m_app = m_main.app;
    m_explorer = m_main.explorer;
    m_window = m_main.window;

    using Tester = QAbstractItemModelTester;
    const auto watch = [this](QAbstractItemModel* model) {
        QVERIFY(model);
        m_testers.push_back(std::make_unique<Tester>(model, Tester::FailureReportingMode::QtTest));
    };
    watch(m_explorer->subgraph());
    watch(m_explorer->interventions()->list());
    watch(m_explorer->interventions()->outcome());
    watch(m_explorer->inputs());
    watch(m_explorer->outputs());
    watch(m_explorer->featureCard()->examples());
    watch(m_explorer->featureCard()->topLogits());
    watch(m_explorer->featureCard()->bottomLogits());
    watch(m_explorer->featureCard()->topInputs());
    watch(m_explorer->files()->recentFiles());
    watch(m_app->distribution());
    watch(m_app->promptTokens());
    watch(qvariant_cast<QAbstractItemModel*>(canvasOf("graphView")->property("captions")));
    watch(qvariant_cast<QAbstractItemModel*>(canvasOf("subgraphView")->property("captions")));
}

void TestGuiFlow::cleanupTestCase()
{
    if (m_explorer)
        m_explorer->files()->finishSession();
    m_testers.clear();
    m_main.engine.reset();
}

QQuickItem* TestGuiFlow::canvasOf(const char* viewName) const
{
    QQuickItem* view = cs::app::findItem(m_window, QLatin1String(viewName));
    return view ? qvariant_cast<QQuickItem*>(view->property("canvas")) : nullptr;
}

void TestGuiFlow::settle()
{
    QTRY_VERIFY_WITH_TIMEOUT(
        !m_app->busy() && !m_explorer->isTracing() && !m_explorer->interventions()->isIntervening(), 60000);
    m_explorer->waitForIdle();
    QTest::qWait(50);
}

void TestGuiFlow::clickNode(const QString& id, Qt::KeyboardModifiers modifiers)
{
    QQuickItem* canvas = canvasOf("graphView");
    QVERIFY(canvas);
    int slot = -1;
    QVERIFY(QMetaObject::invokeMethod(canvas, "slotOf", Q_RETURN_ARG(int, slot), Q_ARG(QString, id)));
    QVERIFY2(slot >= 0, qPrintable(id + " is not on the canvas"));
    QPointF at;
    QVERIFY(QMetaObject::invokeMethod(canvas, "nodeItemPosition", Q_RETURN_ARG(QPointF, at), Q_ARG(int, slot)));
    QVERIFY(canvas->contains(at));
    QTest::mouseClick(m_window, Qt::LeftButton, modifiers, canvas->mapToScene(at).toPoint());
}

void TestGuiFlow::tracesStartupPrompt()
{
    QTRY_VERIFY_WITH_TIMEOUT(m_explorer->hasGraph(), 120000);
    settle();
    QCOMPARE(m_explorer->graphPrompt(), QLatin1String(kPrompt));
    QVERIFY(m_explorer->isReady());
    QVERIFY(m_explorer->hasFeatureStore());
    QVERIFY(m_explorer->interventionsAvailable());
    // The canvas shows exactly the nodes the prune kept.
    QCOMPARE(canvasOf("graphView")->property("nodeCount").toInt(), m_explorer->keptNodeCount());
    QVERIFY(m_explorer->keptNodeCount() < m_explorer->nodeCount());
    // The scores are circuit-tracer's of this graph, computed again here.
    const auto scores = cs::graph::graphScores(*m_explorer->graph());
    QCOMPARE(m_explorer->replacementScore(), scores.replacement);
    QCOMPARE(m_explorer->completenessScore(), scores.completeness);
    QCOMPARE(m_explorer->correctedCompletenessScore(), scores.correctedCompleteness);
    // The pruned graph's: what it explains of the whole, never more than the whole.
    const cs::graph::Pruner pruner(*m_explorer->graph());
    const auto pruned = pruner.scoresOf(*m_explorer->pruned());
    QCOMPARE(m_explorer->prunedReplacementScore(), pruned.replacement);
    QCOMPARE(m_explorer->prunedCompletenessScore(), pruned.completeness);
    QVERIFY(pruned.replacement < scores.replacement);
    // The bar shows them, named.
    QQuickItem* corrected = cs::app::findItem(m_window, QStringLiteral("correctedCompletenessScore"));
    QVERIFY(corrected && corrected->isVisible());
    QVERIFY(cs::app::findItem(m_window, QStringLiteral("prunedReplacementScore")));
    // Without interventions the panel shows the model's own answer.
    QCOMPARE(m_explorer->interventions()->topBefore(), QStringLiteral(" Austin"));
    QCOMPARE(m_explorer->interventions()->topAfter(), QStringLiteral(" Austin"));
}

void TestGuiFlow::clickSelectsAndShowsCard()
{
    clickNode(kSayCapital, Qt::NoModifier);
    QCOMPARE(m_explorer->selectedId(), kSayCapital);
    QCOMPARE(m_explorer->selectedKind(), QStringLiteral("feature"));
    QVERIFY(m_explorer->state().pinned.empty()); // a plain click selects only
    settle();
    auto* card = m_explorer->featureCard();
    QTRY_VERIFY_WITH_TIMEOUT(card->hasRecord(), 10000);
    QCOMPARE(card->layer(), 3);
    QCOMPARE(card->feature(), 976);
    QVERIFY(card->topLogits()->rowCount() > 0);
    const auto* logits = card->topLogits();
    QCOMPARE(logits->data(logits->index(0), logits->roleNames().key("rawToken")).toString(), QStringLiteral(" Austin"));
    // The inspector lists the node's inputs: as many as its kept incoming edges.
    const auto* pruned = m_explorer->pruned();
    const int64_t index = m_explorer->indexOf(kSayCapital.toStdString());
    const cs::graph::Adjacency::Row row = m_explorer->graph()->adjacency.row(index);
    int64_t kept = 0;
    for (int64_t k = 0; k < row.size; ++k)
        kept += pruned->edgeMask[static_cast<size_t>(row.entry(k))];
    QCOMPARE(m_explorer->inputs()->property("available").toInt(), int(kept));

    // Editing the label through the card is an undoable edit.
    card->commitLabel(QStringLiteral("say a capital"));
    QCOMPARE(m_explorer->selectedLabel(), QStringLiteral("say a capital"));
    QCOMPARE(m_explorer->undoText(), QStringLiteral("Label L3 #976"));
}

void TestGuiFlow::ctrlClickPinsAndGroupNames()
{
    clickNode(kSayCapital, Qt::ControlModifier);
    clickNode(kTexas, Qt::ControlModifier);
    QCOMPARE(m_explorer->pinnedCount(), 2);
    QCOMPARE(m_explorer->subgraph()->rowCount(), 2);
    // Two pinned features explain less than the pruned graph; Neuronpedia's score is its own.
    QVERIFY(m_explorer->subgraphReplacementScore() <= m_explorer->prunedReplacementScore() + 1e-7);
    QVERIFY(m_explorer->subgraphCompletenessScore() <= m_explorer->prunedCompletenessScore() + 1e-7);
    QVERIFY(m_explorer->neuronpediaSubgraphReplacementScore() > m_explorer->subgraphReplacementScore());
    settle();
    QTRY_COMPARE_WITH_TIMEOUT(canvasOf("subgraphView")->property("nodeCount").toInt(), 2, 10000);

    // One checked in the pinned list, one by Shift-click on the canvas.
    m_explorer->setChecked(kSayCapital, true);
    clickNode(kTexas, Qt::ShiftModifier);
    QCOMPARE(m_explorer->checkedCount(), 2);
    QCOMPARE(m_explorer->selectedId(), kSayCapital); // Shift-click checks, it does not select
    QQuickItem* name = cs::app::findItem(m_window, QStringLiteral("supernodeNameField"));
    QQuickItem* group = cs::app::findItem(m_window, QStringLiteral("groupButton"));
    QVERIFY(name && group);
    QVERIFY(group->isEnabled());
    name->setProperty("text", kSupernode);
    QTest::mouseClick(m_window, Qt::LeftButton, Qt::NoModifier,
        group->mapToScene(QPointF(group->width() / 2, group->height() / 2)).toPoint());
    QCOMPARE(m_explorer->supernodeNames(), QStringList { kSupernode });
    QCOMPARE(m_explorer->checkedCount(), 0);
    QCOMPARE(name->property("text").toString(), QString());
    settle();
    // The subgraph shows the supernode as one node.
    QTRY_COMPARE_WITH_TIMEOUT(canvasOf("subgraphView")->property("nodeCount").toInt(), 1, 10000);
    QCOMPARE(m_explorer->figureSpec(true).nodes.size(), size_t(1));
    QCOMPARE(m_explorer->figureSpec(true).nodes.front().label.substr(0, kSupernode.size()), kSupernode.toStdString());
}

void TestGuiFlow::ablateThenSuppressChangesTopToken()
{
    // Ablating the supernode: both features set to 0 at the last position.
    QCOMPARE(m_explorer->interventions()->add(QStringLiteral("supernode:") + kSupernode, QStringLiteral("ablate")), 0);
    settle();
    const auto ablated = engineOutcome(0, cs::intervention::Op::Set);
    const auto* outcome = m_explorer->interventions()->outcome();
    double shownAustin = -1;
    double shownAustinBefore = -1;
    for (const auto& row : outcome->rows())
        if (row.token == QLatin1String(" Austin")) {
            shownAustin = row.probAfter;
            shownAustinBefore = row.probBefore;
        }
    QCOMPARE(ablated.after.front().token, std::string(" Austin"));
    QCOMPARE(m_explorer->interventions()->topAfter(), QString::fromStdString(ablated.after.front().token));
    QVERIFY(qAbs(shownAustin - ablated.after.front().prob) < 1e-6);
    QVERIFY(shownAustin < shownAustinBefore); // ablation lowers the answer but does not flip it

    // Suppressing it (scale by a negative factor) flips the answer; the value slider's moves
    // collapse into one undo step.
    m_explorer->interventions()->remove(0);
    QCOMPARE(
        m_explorer->interventions()->add(QStringLiteral("supernode:") + kSupernode, QStringLiteral("scale"), -1), 0);
    const int undoSteps = m_explorer->undoStack().count();
    for (double v : { -1.25, -1.5, -1.75, -2.0 })
        m_explorer->interventions()->setValue(0, v);
    QCOMPARE(m_explorer->undoStack().count(), undoSteps + 1);
    settle();
    const auto suppressed = engineOutcome(-2, cs::intervention::Op::Scale);
    QVERIFY(suppressed.after.front().token != " Austin");
    QCOMPARE(m_explorer->interventions()->topBefore(), QStringLiteral(" Austin"));
    QCOMPARE(m_explorer->interventions()->topAfter(), QString::fromStdString(suppressed.after.front().token));
    QCOMPARE(cs::app::findItem(m_window, QStringLiteral("topAfter"))->property("text").toString(),
        QStringLiteral("“%1”").arg(QString::fromStdString(suppressed.after.front().token)));
}

void TestGuiFlow::exportsSvgPdfPng()
{
    const QString base = m_tmp->filePath(QStringLiteral("subgraph"));
    QSignalSpy finished(m_explorer->files(), &cs::app::ExplorerFiles::exportFinished);
    for (const char* ext : { ".svg", ".pdf", ".png" })
        m_explorer->files()->exportFigure(base + QLatin1String(ext), QStringLiteral("subgraph"));
    QTRY_COMPARE_WITH_TIMEOUT(finished.count(), 3, 30000);
    for (const auto& args : finished)
        QVERIFY2(args.at(0).toBool(), qPrintable(m_explorer->message()));

    // SVG: well-formed XML holding the supernode's name and the suppression note.
    QFile svg(base + QStringLiteral(".svg"));
    QVERIFY(svg.open(QIODevice::ReadOnly));
    QXmlStreamReader xml(&svg);
    QStringList texts;
    while (!xml.atEnd())
        if (xml.readNext() == QXmlStreamReader::StartElement && xml.name() == QLatin1String("text"))
            texts << xml.readElementText(QXmlStreamReader::IncludeChildElements);
    QVERIFY2(!xml.hasError(), qPrintable(xml.errorString()));
    QVERIFY(texts.contains(kSupernode));
    QVERIFY(texts.join(QLatin1Char(' ')).contains(QStringLiteral("×−2")) || texts.join(' ').contains("×-2"));

    // PNG: the size the layout and the chosen resolution (300 dpi unless set) give, and drawn.
    const cs::app::FigureLayout layout = cs::app::layoutFigure(m_explorer->figureSpec(true));
    const QImage png(base + QStringLiteral(".png"));
    QVERIFY(!png.isNull());
    QCOMPARE(m_explorer->settings()->figureDpi(), 300);
    const double scale = 300.0 / 72.0;
    QVERIFY(qAbs(png.width() - (layout.width + 2 * layout.padding) * scale) <= 1.5);
    QVERIFY(qAbs(png.height() - (layout.height + 2 * layout.padding) * scale) <= 1.5);
    QVERIFY(distinctColours(png) >= 8);

    // PDF: its trailer's startxref points at the cross-reference, and it has one page.
    const QByteArray pdf = readAll(base + QStringLiteral(".pdf"));
    QVERIFY(pdf.startsWith("%PDF-"));
    QVERIFY(pdf.trimmed().endsWith("%%EOF"));
    const int startxref = pdf.lastIndexOf("startxref");
    QVERIFY(startxref > 0);
    bool ok = false;
    const int offset = pdf.mid(startxref + 9).trimmed().split('\n').value(0).trimmed().toInt(&ok);
    QVERIFY(ok && offset > 0 && offset < pdf.size());
    QVERIFY(pdf.mid(offset, 4) == "xref"
        || QRegularExpression(QStringLiteral("^\\d+ \\d+ obj"))
               .match(QString::fromLatin1(pdf.mid(offset, 20)))
               .hasMatch());
    QCOMPARE(
        pdf.count("/Type /Page\n") + pdf.count("/Type /Page ") + pdf.count("/Type /Page>") + pdf.count("/Type /Page/"),
        1);
}

void TestGuiFlow::saveUndoRedoReopen()
{
    // The canvas's view goes into the session.
    QQuickItem* canvas = canvasOf("graphView");
    QVERIFY(
        QMetaObject::invokeMethod(canvas, "setView", Q_ARG(double, 1.5), Q_ARG(double, 120.0), Q_ARG(double, 60.0)));
    const double zoom = canvas->property("zoom").toDouble();
    QCOMPARE(m_explorer->state().view.zoom, zoom);
    QCOMPARE(m_explorer->state().view.centerX, 120.0);

    m_sessionPath = m_tmp->filePath(QStringLiteral("flow.circuitscope.json"));
    QVERIFY2(m_explorer->files()->saveSession(m_sessionPath), qPrintable(m_explorer->message()));
    QVERIFY(!m_explorer->files()->isModified());
    QCOMPARE(m_explorer->files()->sessionPath(), m_sessionPath);
    m_savedState = m_explorer->state();
    QCOMPARE(m_explorer->files()->recentFiles()->pathAt(0), QFileInfo(m_sessionPath).canonicalFilePath());

    // Undo walks back through the edits; redo comes forward again.
    QVERIFY(m_explorer->canUndo());
    m_explorer->undo(); // the value slider's run
    QCOMPARE(m_explorer->state().interventions.front().value, -1.0);
    QVERIFY(m_explorer->files()->isModified());
    m_explorer->redo();
    QVERIFY(m_explorer->state() == m_savedState);
    QVERIFY(!m_explorer->files()->isModified());

    // An edit and a pan after saving, then reopening the file, give back the saved state, view
    // and results.
    m_explorer->ungroup(kSupernode);
    QVERIFY(QMetaObject::invokeMethod(canvas, "setView", Q_ARG(double, 0.7), Q_ARG(double, 0.0), Q_ARG(double, 0.0)));
    QVERIFY(m_explorer->supernodeNames().isEmpty());
    QVERIFY(m_explorer->files()->openFile(m_sessionPath));
    QVERIFY(m_explorer->state() == m_savedState);
    QCOMPARE(canvas->property("zoom").toDouble(), zoom);
    QCOMPARE(canvas->property("centerX").toDouble(), 120.0);
    QVERIFY(!m_explorer->canUndo()); // a reopened session starts a new history
    settle();
    QTRY_VERIFY_WITH_TIMEOUT(m_explorer->interventionsAvailable(), 30000);
    settle();
    QVERIFY(m_explorer->interventions()->topAfter() != QStringLiteral(" Austin"));
    QCOMPARE(m_explorer->selectedLabel(), QStringLiteral("say a capital"));

    // An edit on the reopened session undoes.
    m_explorer->ungroup(kSupernode);
    QVERIFY(m_explorer->supernodeNames().isEmpty());
    m_explorer->undo();
    QCOMPARE(m_explorer->supernodeNames(), QStringList { kSupernode });
    QVERIFY(m_explorer->state() == m_savedState);
}

void TestGuiFlow::corruptSessionIsRefusedAndSessionSurvives()
{
    const auto graphBefore = m_explorer->graph();
    const QByteArray good = readAll(m_sessionPath);
    QVERIFY(good.size() > 1000);
    const QString corrupt = m_tmp->filePath(QStringLiteral("corrupt.circuitscope.json"));
    QFile out(corrupt);
    QVERIFY(out.open(QIODevice::WriteOnly));
    out.write(good.left(good.size() / 2)); // cut mid-way, as a crash during a copy would
    out.close();

    QSignalSpy errors(m_explorer, &cs::app::ExplorerController::errorOccurred);
    QVERIFY(!m_explorer->files()->openFile(corrupt));
    QCOMPARE(errors.count(), 1);
    QVERIFY2(m_explorer->message().contains(corrupt), qPrintable(m_explorer->message()));
    // The session open before is untouched: same graph, same state, same file.
    QCOMPARE(m_explorer->graph(), graphBefore);
    QVERIFY(m_explorer->state() == m_savedState);
    QCOMPARE(m_explorer->files()->sessionPath(), m_sessionPath);
    QCOMPARE(readAll(m_sessionPath), good);
    // The window shows the message.
    QTRY_VERIFY(m_app->errorText().contains(corrupt));
}

void TestGuiFlow::killedProcessIsRecovered()
{
    // The real program opens the saved session, autosaves after its interval, and is killed.
    const QString home = m_tmp->filePath(QStringLiteral("home"));
    QVERIFY(QDir().mkpath(home + "/config/Circuitscope"));
    QFile conf(home + "/config/Circuitscope/Circuitscope.conf");
    QVERIFY(conf.open(QIODevice::WriteOnly));
    conf.write("[explorer]\nautosaveSeconds=5\n");
    conf.close();
    QProcess app;
    QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
    env.insert(QStringLiteral("XDG_CONFIG_HOME"), home + "/config");
    env.insert(QStringLiteral("XDG_DATA_HOME"), home + "/data");
    env.insert(QStringLiteral("QT_QPA_PLATFORM"), QStringLiteral("offscreen"));
    app.setProcessEnvironment(env);
    app.start(QStringLiteral(CS_APP_PATH), { QStringLiteral("--device"), QStringLiteral("cpu"), m_sessionPath });
    QVERIFY(app.waitForStarted());
    const QString folder = home + "/data/Circuitscope/Circuitscope/autosave";
    QTRY_VERIFY_WITH_TIMEOUT(
        QDir(folder).entryList({ QStringLiteral("*.circuitscope.json") }, QDir::Files).size() == 1, 60000);
    QTest::qWait(500); // the autosave is renamed into place whole; let the process get on
    app.kill();
    QVERIFY(app.waitForFinished());

    // A new explorer on that folder offers the autosave back, and it is the session's state.
    cs::app::EngineWorker worker;
    cs::app::ExplorerController recovered(worker, nullptr, folder);
    QVERIFY(recovered.files()->recoveryAvailable());
    QVERIFY(recovered.files()->recoverSession());
    QVERIFY(recovered.hasGraph());
    QVERIFY(recovered.state() == m_savedState);
    QCOMPARE(recovered.nodeCount(), m_explorer->nodeCount());
    QVERIFY(!recovered.files()->recoveryAvailable());
    recovered.files()->finishSession();
    QVERIFY(QDir(folder).entryList({ QStringLiteral("*.circuitscope.json") }, QDir::Files).isEmpty());
}

void TestGuiFlow::graphJsonRoundTrip()
{
    // The pruned graph as Neuronpedia / circuit-tracer JSON, with the subgraph in its qParams and
    // the labels as clerps; opening it gives that graph and that work back.
    const QString json = m_tmp->filePath(QStringLiteral("dallas.json"));
    const int kept = m_explorer->keptNodeCount();
    QVERIFY2(m_explorer->files()->exportGraphJson(json), qPrintable(m_explorer->message()));
    QVERIFY(m_explorer->files()->openFile(json));
    QCOMPARE(m_explorer->nodeCount(), kept);
    QVERIFY(m_explorer->files()->sessionPath().isEmpty()); // a graph, not a session: Save asks where
    QCOMPARE(m_explorer->state().pinned, m_savedState.pinned);
    QVERIFY(m_explorer->state().supernodes == m_savedState.supernodes);
    QCOMPARE(m_explorer->state().labels, m_savedState.labels);
    QVERIFY(m_explorer->state().interventions.empty()); // not part of the graph format
    // Its prompt fits the open model, so interventions work on it again.
    QTRY_VERIFY_WITH_TIMEOUT(m_explorer->interventionsAvailable(), 30000);
    settle();
    QCOMPARE(m_explorer->interventions()->topAfter(), QStringLiteral(" Austin"));
    // Back to the saved session for what follows.
    QVERIFY(m_explorer->files()->openFile(m_sessionPath));
    settle();
}

void TestGuiFlow::otherTranscodersAndStores()
{
    QSignalSpy errors(m_explorer, &cs::app::ExplorerController::errorOccurred);
    // A folder that is no transcoder set is refused by name; the set before stays loaded.
    m_explorer->openTranscoders(m_tmp->path());
    QTRY_COMPARE_WITH_TIMEOUT(errors.count(), 1, 30000);
    settle();
    QVERIFY(m_explorer->isReady());
    QCOMPARE(m_explorer->transcoderName(), QStringLiteral("clt"));
    QVERIFY(m_explorer->hasFeatureStore());

    // Tinyworld's per-layer transcoders have no store of their own, and the CLT's is refused
    // for them: its cards describe other features.
    m_explorer->openTranscoders(QStringLiteral("plt"));
    QTRY_VERIFY_WITH_TIMEOUT(m_explorer->isReady(), 30000);
    settle();
    QCOMPARE(m_explorer->transcoderName(), QStringLiteral("plt"));
    QVERIFY(!m_explorer->hasFeatureStore());
    const QString cltStore
        = QString::fromStdString(cs::resolveModelFolder(cs::kDefaultModel)) + QStringLiteral("/features/clt.db");
    errors.clear();
    m_explorer->openFeatureStore(cltStore);
    QTRY_COMPARE_WITH_TIMEOUT(errors.count(), 1, 30000);
    settle();
    QVERIFY(!m_explorer->hasFeatureStore());
    QVERIFY2(m_explorer->message().contains(QStringLiteral("tinyworld/clt")), qPrintable(m_explorer->message()));

    // Tracing with them gives the PLT's graph of the same prompt.
    QSignalSpy traced(m_explorer, &cs::app::ExplorerController::traceFinished);
    m_explorer->trace(QLatin1String(kPrompt));
    QTRY_COMPARE_WITH_TIMEOUT(traced.count(), 1, 60000);
    QVERIFY(traced.first().at(0).toBool());
    settle();
    QVERIFY(m_explorer->graph()->metadata.scan.find("plt") != std::string::npos);

    // Back to the CLT and its store, and to the saved session.
    m_explorer->openTranscoders(QStringLiteral("clt"));
    QTRY_VERIFY_WITH_TIMEOUT(m_explorer->isReady() && m_explorer->hasFeatureStore(), 30000);
    QVERIFY(m_explorer->files()->openFile(m_sessionPath));
    settle();
}

void TestGuiFlow::windowIsDrawn()
{
    const QImage image = m_window->grabWindow();
    QVERIFY(!image.isNull());
    QCOMPARE(image.size(), m_window->size() * m_window->devicePixelRatio());
    QVERIFY(distinctColours(image) > 50);
    QVERIFY2(cs::test::qmlWarnings().isEmpty(), qPrintable(cs::test::qmlWarnings().join(QLatin1Char('\n'))));
}

void TestGuiFlow::closingWithEditsAsks()
{
    m_explorer->hideNode(kTexas);
    QVERIFY(m_explorer->files()->isModified());
    QObject* dialog = m_window->findChild<QObject*>(QStringLiteral("closeDialog"));
    QVERIFY(dialog);
    QVERIFY(!m_window->close()); // refused: the dialog asks
    QTRY_VERIFY(dialog->property("visible").toBool());
    QVERIFY(m_window->isVisible());
    QMetaObject::invokeMethod(dialog, "reject"); // Cancel keeps the window and the edit
    QTRY_VERIFY(!dialog->property("visible").toBool());
    QVERIFY(m_window->isVisible());
    QCOMPARE(m_explorer->hiddenCount(), 1);
}

QTEST_MAIN(TestGuiFlow)
#include "tst_gui_flow.moc"
