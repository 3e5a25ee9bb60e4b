// The explorer as a researcher tries it (issue 17), through the real window (Main.qml) offscreen
// on tinyworld: each behaviour that once gave a wrong or misleading result, checked the way a
// user would meet it.
//  - Opening a session brings its prompt: the prompt box, the token chips and the next-token
//    panel show the opened graph's prompt, not the one typed before.
//  - A graph JSON written by the CLI opens as the file holds it: no second prune, the file's
//    scores, until a slider moves.
//  - A second edit of the same kind on the same target replaces the first; edits of other kinds
//    that still combine say how.
//  - Opening another file with unsaved edits asks first; Cancel keeps everything, Discard opens;
//    the title marks an untitled session with edits.
//  - The feature card shows while a trace runs; search counts, highlights and Enter's walk are
//    the nodes on the canvas, embeddings found by their token.
//  - The pruned graph's figure keeps positions left to right in every layer row and leaves out
//    embeddings no kept edge leaves from.
//  - Controls: undo brings the regime switch back; two drags of a slider are two undo steps; a
//    dragged intervention slider keeps its delegate (it stays under the mouse); Save and a
//    cancelled dialog say so in the status bar; menus show their shortcuts; Help has the
//    keyboard reference and About; closing runs finishSession with no QML error.
//  - (Issue 18) The perturbation page shows the nodes an ablation reaches, the graph's
//    constrained prediction equal to the model's; the validation page plots the top features'
//    effects with r = 1 in the constrained regime; the table lists the interventions' logits.

#include "appcontroller.h"
#include "canvas/graphcanvas.h"
#include "explorer_window.h"
#include "explorercontroller.h"
#include "explorervalidation.h"
#include "figure/figure.h"
#include "mainwindow.h"

#include <cs/engine.h>
#include <cs/features.h>
#include <cs/graph.h>
#include <cs/graph_paths.h>
#include <cs/model.h>

#include <nlohmann/json.hpp>

#include <QAbstractItemModel>
#include <QElapsedTimer>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QKeySequence>
#include <QLineEdit>
#include <QPointer>
#include <QProcess>
#include <QQmlApplicationEngine>
#include <QQuickItem>
#include <QQuickWindow>
#include <QSGRendererInterface>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QTest>

#include <cmath>
#include <map>
#include <memory>
#include <set>

namespace {

const QString kDallas = QStringLiteral("Fact: the capital of the state containing Dallas is");
const QString kJordan = QStringLiteral("Fact: Michael Jordan plays the sport of");
const QString kCalc = QStringLiteral("calc: 36+59=");
const QString kSayCapital = QStringLiteral("3_976_12"); // "say Austin", a feature of the Dallas graph

} // namespace

class TestGuiResearcher : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();
    void openedSessionBringsItsPrompt();
    void cliGraphJsonOpensAsWritten();
    void sameEditReplacesAndCombinationsAreSpelledOut();
    void openingAnotherFileWithEditsAsks();
    void cardShowsWhileTracing();
    void captionsDescribeUnlabelledFeatures();
    void searchCountsWhatTheCanvasShows();
    void graphFigureKeepsTokenOrder();
    void longPromptIsReadableAndFast();
    void perturbationAndValidationPages();
    void undoRestoresRegimeAndSeparatesDrags();
    void darkThemeIsReadable();
    void smallWindowKeepsTheGraph();
    void statusSaysSavedAndCancelled();
    void menusShowShortcutsAndHelp();
    void closesCleanly();

private:
    void settle();
    void traceFromPromptBox(const QString& prompt);
    QQuickItem* item(const char* name) const { return cs::app::findItem(m_window, QLatin1String(name)); }

    std::unique_ptr<QTemporaryDir> m_tmp;
    cs::test::ExplorerWindow m_main;
    cs::app::AppController* m_app = nullptr;
    cs::app::ExplorerController* m_explorer = nullptr;
    QQuickWindow* m_window = nullptr;
    QString m_jordanSession;
};

void TestGuiResearcher::initTestCase()
{
    cs::test::recordQmlWarnings();
    m_tmp
        = std::make_unique<QTemporaryDir>(qEnvironmentVariable("CS_TEST_TMP", QDir::tempPath()) + "/researcher-XXXXXX");
    QVERIFY(m_tmp->isValid());
    QVERIFY2(m_main.open(), "Main.qml did not load or show");
    m_app = m_main.app;
    m_explorer = m_main.explorer;
    m_window = m_main.window;
    QTRY_VERIFY_WITH_TIMEOUT(m_explorer->hasGraph(), 120000);
    settle();
    QCOMPARE(m_explorer->graphPrompt(), kDallas);
}

void TestGuiResearcher::cleanupTestCase()
{
    // Cards were read from the shipped feature store all along: nothing was written beside it
    // (an installation in a read-only folder works the same).
    const QString store
        = QString::fromStdString(cs::resolveModelFolder(cs::kDefaultModel)) + QStringLiteral("/features/clt.db");
    QVERIFY(QFileInfo::exists(store));
    QVERIFY(!QFileInfo::exists(store + QStringLiteral("-wal")));
    QVERIFY(!QFileInfo::exists(store + QStringLiteral("-shm")));
    if (m_explorer)
        m_explorer->files()->finishSession();
    m_main.engine.reset();
}

void TestGuiResearcher::settle()
{
    QTRY_VERIFY_WITH_TIMEOUT(
        !m_app->busy() && !m_explorer->isTracing() && !m_explorer->interventions()->isIntervening(), 60000);
    m_explorer->waitForIdle();
    QTest::qWait(50);
}

// Types the prompt into the prompt box and presses Enter, as a user does.
void TestGuiResearcher::traceFromPromptBox(const QString& prompt)
{
    QQuickItem* field = item("promptField");
    QVERIFY(field);
    field->setProperty("text", prompt);
    QCOMPARE(m_app->prompt(), prompt);
    field->forceActiveFocus();
    QSignalSpy traced(m_explorer, &cs::app::ExplorerController::traceFinished);
    QTest::keyClick(m_window, Qt::Key_Return);
    QTRY_COMPARE_WITH_TIMEOUT(traced.count(), 1, 60000);
    QVERIFY(traced.first().at(0).toBool());
    settle();
    QCOMPARE(m_explorer->graphPrompt(), prompt);
}

void TestGuiResearcher::openedSessionBringsItsPrompt()
{
    // A Jordan session on disk, then Dallas traced from the prompt box.
    traceFromPromptBox(kJordan);
    m_jordanSession = m_tmp->filePath(QStringLiteral("jordan.circuitscope.json"));
    QVERIFY2(m_explorer->files()->saveSession(m_jordanSession), qPrintable(m_explorer->message()));
    traceFromPromptBox(kDallas);
    QTRY_COMPARE_WITH_TIMEOUT(m_app->analyzedPrompt(), kDallas, 30000);

    QVERIFY(m_explorer->files()->openFile(m_jordanSession));
    settle();
    QCOMPARE(m_explorer->graphPrompt(), kJordan);
    // The window shows the opened graph's prompt: the box, its tokens, the next-token panel.
    QCOMPARE(item("promptField")->property("text").toString(), kJordan);
    QCOMPARE(m_app->prompt(), kJordan);
    QTRY_COMPARE_WITH_TIMEOUT(m_app->analyzedPrompt(), kJordan, 30000);
    QCOMPARE(m_app->promptTokens()->rowCount(), int(m_explorer->graph()->metadata.promptTokens.size()));
    QVERIFY(m_app->isUpToDate());
    // So Enter traces what the graph shows.
    QSignalSpy traced(m_explorer, &cs::app::ExplorerController::traceFinished);
    item("promptField")->forceActiveFocus();
    QTest::keyClick(m_window, Qt::Key_Return);
    QTRY_COMPARE_WITH_TIMEOUT(traced.count(), 1, 60000);
    settle();
    QCOMPARE(m_explorer->graphPrompt(), kJordan);
}

void TestGuiResearcher::cliGraphJsonOpensAsWritten()
{
    // The CLI's pruned graph of the calculator prompt.
    const QString json = m_tmp->filePath(QStringLiteral("calc.json"));
    QProcess cli;
    cli.start(QStringLiteral(CS_CLI_PATH),
        { QStringLiteral("trace"), QLatin1String(cs::kDefaultModel), QStringLiteral("--device"), QStringLiteral("cpu"),
            QStringLiteral("--text"), kCalc, QStringLiteral("--out"), json });
    QVERIFY(cli.waitForFinished(120000));
    QVERIFY2(cli.exitCode() == 0, cli.readAllStandardError().constData());
    QFile file(json);
    QVERIFY(file.open(QIODevice::ReadOnly));
    const nlohmann::json doc = nlohmann::json::parse(file.readAll().toStdString());
    const int fileNodes = int(doc.at("nodes").size());
    const int fileLinks = int(doc.at("links").size());
    const auto& scores = doc.at("metadata").at("scores");

    QVERIFY(m_explorer->files()->openFile(json));
    settle();
    // Every node and link the file holds is shown; the scores are the file's.
    QCOMPARE(m_explorer->nodeCount(), fileNodes);
    QCOMPARE(m_explorer->keptNodeCount(), fileNodes);
    QCOMPARE(m_explorer->keptEdgeCount(), fileLinks);
    QCOMPARE(m_explorer->replacementScore(), scores.at("full").at("replacement").get<double>());
    QCOMPARE(m_explorer->completenessScore(), scores.at("full").at("completeness").get<double>());
    QCOMPARE(m_explorer->prunedReplacementScore(), scores.at("pruned").at("replacement").get<double>());
    QCOMPARE(m_explorer->prunedCompletenessScore(), scores.at("pruned").at("completeness").get<double>());
    QCOMPARE(m_explorer->nodeThreshold(), doc.at("metadata").at("node_threshold").get<double>());
    QCOMPARE(m_explorer->files()->sessionPath(), QString()); // a graph: Save asks where
    // The canvas shows them all.
    QQuickItem* view = item("graphView");
    QVERIFY(view);
    auto* canvas = qvariant_cast<QQuickItem*>(view->property("canvas"));
    QVERIFY(canvas);
    QCOMPARE(canvas->property("nodeCount").toInt(), fileNodes);

    // The panel's path-length metric is the graph's (cs/graph_paths.h), computed beside the UI.
    QTRY_VERIFY(m_explorer->meanPathLength() > 0);
    QCOMPARE(m_explorer->meanPathLength(), cs::graph::pathLengths(*m_explorer->graph()).meanLength);
    QVERIFY(item("meanPathLength"));
    // Moving the slider prunes what the file held, and the scores become the ones computed here.
    m_explorer->setNodeThreshold(0.5);
    settle();
    QVERIFY(m_explorer->keptNodeCount() < fileNodes);
    const auto computed = cs::graph::graphScores(*m_explorer->graph());
    QCOMPARE(m_explorer->replacementScore(), computed.replacement);
    // Undo brings the file's view back.
    m_explorer->undo();
    settle();
    QCOMPARE(m_explorer->keptNodeCount(), fileNodes);
    QCOMPARE(m_explorer->replacementScore(), scores.at("full").at("replacement").get<double>());

    // A session saved from it opens the same way.
    const QString session = m_tmp->filePath(QStringLiteral("calc.circuitscope.json"));
    QVERIFY(m_explorer->files()->saveSession(session));
    QVERIFY(m_explorer->files()->openFile(m_jordanSession));
    settle();
    QVERIFY(m_explorer->files()->openFile(session));
    settle();
    QCOMPARE(m_explorer->keptNodeCount(), fileNodes);
    QCOMPARE(m_explorer->prunedReplacementScore(), scores.at("pruned").at("replacement").get<double>());
}

void TestGuiResearcher::sameEditReplacesAndCombinationsAreSpelledOut()
{
    traceFromPromptBox(kDallas);
    auto* interventions = m_explorer->interventions();
    auto* list = interventions->list();
    QCOMPARE(interventions->add(kSayCapital, QStringLiteral("scale"), -2), 0);
    QCOMPARE(interventions->add(kSayCapital, QStringLiteral("scale"), -5), 0); // replaces, not × 10
    settle();
    QCOMPARE(list->rowCount(), 1);
    QCOMPARE(m_explorer->state().interventions.size(), size_t(1));
    QCOMPARE(m_explorer->state().interventions[0].value, -5.0);
    const auto combinedRole = list->roleNames().key("combined");
    QVERIFY(list->data(list->index(0), combinedRole).toString().isEmpty());
    // The same kind at other positions is another edit.
    QCOMPARE(interventions->add(kSayCapital, QStringLiteral("scale"), 3, QStringLiteral("*")), 1);
    QCOMPARE(list->rowCount(), 2);
    interventions->remove(1);

    // An ablate on the same target stays beside the scale, and both rows say what they make.
    QCOMPARE(interventions->add(kSayCapital, QStringLiteral("ablate")), 1);
    settle();
    QCOMPARE(list->rowCount(), 2);
    const QString first = list->data(list->index(0), combinedRole).toString();
    const QString second = list->data(list->index(1), combinedRole).toString();
    QVERIFY2(first.contains(QStringLiteral("row 2")) && first.contains(QStringLiteral("= 0")), qPrintable(first));
    QVERIFY2(
        second.contains(QStringLiteral("row 1")) && second.contains(QStringLiteral("then ablate")), qPrintable(second));
    // Shown in the intervention list as well.
    QQuickItem* summary = item("interventionSummary");
    QVERIFY(summary);
    QVERIFY2(summary->property("text").toString().contains(first), qPrintable(summary->property("text").toString()));
    // Undo walks back ablate, remove, add at every position, and the replacement: -2 again.
    for (int i = 0; i < 4; ++i)
        m_explorer->undo();
    settle();
    QCOMPARE(list->rowCount(), 1);
    QCOMPARE(m_explorer->state().interventions[0].value, -2.0);
    interventions->clear();
    settle();
}

void TestGuiResearcher::openingAnotherFileWithEditsAsks()
{
    traceFromPromptBox(kDallas);
    QVERIFY(!m_explorer->files()->isModified());
    QVERIFY(m_window->title().startsWith(QStringLiteral("Untitled — ")));
    m_explorer->hideNode(kSayCapital);
    QVERIFY(m_explorer->files()->isModified());
    QTRY_VERIFY(m_window->title().startsWith(QStringLiteral("Untitled • — ")));

    QObject* dialog = m_window->findChild<QObject*>(QStringLiteral("closeDialog"));
    QVERIFY(dialog);
    const QVariant path = QUrl::fromLocalFile(m_jordanSession).toString();
    QVERIFY(QMetaObject::invokeMethod(m_window, "requestOpen", Q_ARG(QVariant, path)));
    QTRY_VERIFY(dialog->property("visible").toBool());
    QVERIFY(dialog->property("title").toString().contains(QStringLiteral("opening")));
    QCOMPARE(m_explorer->graphPrompt(), kDallas); // nothing opened yet
    // Cancel: the graph and the edit stay.
    QMetaObject::invokeMethod(dialog, "reject");
    QTRY_VERIFY(!dialog->property("visible").toBool());
    QCOMPARE(m_explorer->graphPrompt(), kDallas);
    QCOMPARE(m_explorer->hiddenCount(), 1);
    QVERIFY(m_window->isVisible());

    // Discard: the other file opens.
    QVERIFY(QMetaObject::invokeMethod(m_window, "requestOpen", Q_ARG(QVariant, path)));
    QTRY_VERIFY(dialog->property("visible").toBool());
    QMetaObject::invokeMethod(dialog, "discarded");
    QTRY_COMPARE_WITH_TIMEOUT(m_explorer->graphPrompt(), kJordan, 30000);
    settle();
    QCOMPARE(m_explorer->hiddenCount(), 0);
    QVERIFY(m_window->isVisible()); // opening is not closing
    QVERIFY(!m_explorer->files()->isModified());
    QVERIFY(m_window->title().startsWith(QStringLiteral("jordan.circuitscope.json — ")));

    // Without edits nothing asks.
    QVERIFY(QMetaObject::invokeMethod(m_window, "requestOpen", Q_ARG(QVariant, path)));
    QVERIFY(!dialog->property("visible").toBool());
}

void TestGuiResearcher::cardShowsWhileTracing()
{
    traceFromPromptBox(kDallas);
    auto* card = m_explorer->featureCard();
    m_explorer->select(kSayCapital);
    QTRY_VERIFY_WITH_TIMEOUT(card->hasRecord() && card->feature() == 976, 30000);
    // A long prompt keeps the engine busy for a while; a feature selected meanwhile shows its
    // card before the trace ends (the card is read beside the trace, not after it).
    QString longPrompt;
    for (int i = 0; i < 12; ++i)
        longPrompt += kDallas + QLatin1Char(' ');
    QSignalSpy traced(m_explorer, &cs::app::ExplorerController::traceFinished);
    m_explorer->trace(longPrompt);
    QTRY_VERIFY(m_explorer->isTracing());
    m_explorer->select(QStringLiteral("3_321_12")); // Texas
    QTRY_VERIFY_WITH_TIMEOUT(card->hasRecord() && card->layer() == 3 && card->feature() == 321, 10000);
    QVERIFY2(traced.isEmpty() && m_explorer->isTracing(), "the trace ended before the card showed: make it longer");
    QTRY_COMPARE_WITH_TIMEOUT(traced.count(), 1, 120000);
    settle();
}

void TestGuiResearcher::captionsDescribeUnlabelledFeatures()
{
    traceFromPromptBox(kDallas);
    // The store's own card of the feature, described independently of the window.
    const auto store = cs::features::FeatureStore::open(cs::resolveModelFolder(cs::kDefaultModel) + "/features/clt.db");
    const std::string expected = cs::features::describe(store->card(3, 976), store->vocabulary());
    QVERIFY2(expected.find("\u2192 Austin") != std::string::npos, expected.c_str());
    // On the canvas, the selected node's caption is that description (the tooltip holds it too).
    m_explorer->select(kSayCapital);
    settle();
    auto* canvas = qvariant_cast<QQuickItem*>(item("graphView")->property("canvas"));
    auto* captions = qvariant_cast<QAbstractItemModel*>(canvas->property("captions"));
    QVERIFY(captions);
    int slot = -1;
    QMetaObject::invokeMethod(canvas, "slotOf", Q_RETURN_ARG(int, slot), Q_ARG(QString, kSayCapital));
    QVERIFY(slot >= 0);
    const auto roles = captions->roleNames();
    QString shown;
    for (int r = 0; r < captions->rowCount(); ++r)
        if (captions->data(captions->index(r, 0), roles.key("slot")).toInt() == slot)
            shown = captions->data(captions->index(r, 0), roles.key("text")).toString();
    QCOMPARE(shown, QString::fromStdString(expected));
    // A user's label replaces it; undo brings the description back.
    m_explorer->setLabel(kSayCapital, QStringLiteral("say Austin"));
    settle();
    QVERIFY(m_explorer->captionFor(kSayCapital) == QStringLiteral("say Austin"));
    m_explorer->undo();
    settle();
    QCOMPARE(m_explorer->captionFor(kSayCapital), QString::fromStdString(expected));
}

void TestGuiResearcher::searchCountsWhatTheCanvasShows()
{
    traceFromPromptBox(kDallas);
    auto* canvas = qvariant_cast<QQuickItem*>(item("graphView")->property("canvas"));
    QVERIFY(canvas);
    // Enter walks exactly the counted hits, each one on the canvas.
    const auto walk = [&] {
        std::set<QString> seen;
        QString at;
        for (int i = 0; i < m_explorer->searchHits(); ++i) {
            at = m_explorer->nextSearchHit(at);
            int slot = -1;
            QMetaObject::invokeMethod(canvas, "slotOf", Q_RETURN_ARG(int, slot), Q_ARG(QString, at));
            if (slot < 0)
                return std::set<QString> { QStringLiteral("off the canvas: ") + at };
            seen.insert(at);
        }
        return seen;
    };
    // "the" is on the token axis twice: its embeddings are found.
    m_explorer->setSearchText(QStringLiteral("the"));
    settle();
    QVERIFY2(m_explorer->searchHits() >= 2, qPrintable(QString::number(m_explorer->searchHits())));
    QCOMPARE(int(walk().size()), m_explorer->searchHits());
    // A prune that drops hits drops them from the count, and hiding one does too.
    m_explorer->setSearchText(QStringLiteral("L"));
    settle();
    const int all = m_explorer->searchHits();
    QCOMPARE(int(walk().size()), all);
    m_explorer->setNodeThreshold(0.3);
    settle();
    QVERIFY(m_explorer->searchHits() < all);
    QCOMPARE(int(walk().size()), m_explorer->searchHits());
    const int pruned = m_explorer->searchHits();
    m_explorer->hideNode(m_explorer->nextSearchHit({}));
    settle();
    QCOMPARE(m_explorer->searchHits(), pruned - 1);
    m_explorer->undo();
    m_explorer->undo();
    m_explorer->setSearchText({});
    settle();
}

void TestGuiResearcher::graphFigureKeepsTokenOrder()
{
    traceFromPromptBox(kDallas);
    const auto spec = cs::app::buildFigure(
        *m_explorer->graph(), *m_explorer->pruned(), m_explorer->state(), cs::app::FigureScope::PrunedGraph, {});
    // Every embedding drawn has an edge.
    std::set<std::string> linked;
    for (const auto& edge : spec.edges) {
        linked.insert(edge.source);
        linked.insert(edge.target);
    }
    int embeddings = 0;
    for (const auto& node : spec.nodes)
        if (node.kind == cs::app::FigureNodeKind::Embedding) {
            ++embeddings;
            QVERIFY2(linked.count(node.id), node.id.c_str());
        }
    QVERIFY(embeddings > 0);
    // In every layer row, x grows with the token position.
    const auto layout = cs::app::layoutFigure(spec);
    std::map<double, std::vector<std::pair<double, double>>> rows; // layer -> (position, x)
    for (size_t i = 0; i < spec.nodes.size(); ++i)
        rows[spec.nodes[i].layer].push_back({ spec.nodes[i].position, layout.nodes[i].x });
    for (auto& [layer, row] : rows) {
        std::stable_sort(row.begin(), row.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
        for (size_t k = 1; k < row.size(); ++k)
            QVERIFY2(row[k - 1].first <= row[k].first,
                qPrintable(QStringLiteral("layer %1: position %2 drawn left of position %3")
                               .arg(layer)
                               .arg(row[k - 1].first)
                               .arg(row[k].first)));
    }
}

// A long prompt: the window's trace costs little more than the engine's, and after the fit the
// graph fills the pane (not a thin band), its nodes of a readable size.
void TestGuiResearcher::longPromptIsReadableAndFast()
{
    QString prompt;
    const QString facts[] = { kDallas + QStringLiteral(" Austin."), kJordan + QStringLiteral(" basketball."),
        QStringLiteral("calc: 36+59=95."),
        QStringLiteral("The capital of the state containing Richmond is Richmond.") };
    int k = 0;
    while (prompt.size() < 330)
        prompt += facts[k++ % 4] + QLatin1Char(' ');
    prompt += kDallas;
    // The progress line says what the trace does, past the last row too.
    QStringList stages;
    const auto connection = connect(m_explorer, &cs::app::ExplorerController::traceProgressChanged, this, [&] {
        if (stages.isEmpty() || stages.back() != m_explorer->traceStage())
            stages << m_explorer->traceStage();
    });
    QElapsedTimer clock;
    clock.start();
    traceFromPromptBox(prompt);
    disconnect(connection);
    qInfo("trace stages shown: %s", qPrintable(stages.join(QStringLiteral(" → "))));
    for (const char* stage : { "computing the attribution rows", "assembling the graph and checking its exactness",
             "pruning", "reading feature descriptions" })
        QVERIFY2(stages.contains(QLatin1String(stage)), stage);
    const double windowMs = double(clock.elapsed());
    const int tokens = int(m_explorer->graph()->nPositions());
    qInfo("long prompt: %d tokens, %d nodes shown; window %.0f ms from Enter to the settled window, engine trace "
          "%.0f ms, feature-store captions %.0f ms",
        tokens, m_explorer->keptNodeCount(), windowMs, m_explorer->lastTraceMs(), m_explorer->lastCaptionMs());
    QVERIFY(tokens >= 100);
    // Readable after the fit: the nodes span most of the pane's height and width.
    auto* canvas = qvariant_cast<QQuickItem*>(item("graphView")->property("canvas"));
    QVERIFY(canvas);
    double top = 1e9, bottom = -1e9, left = 1e9, right = -1e9;
    const int n = canvas->property("nodeCount").toInt();
    for (int slot = 0; slot < n; ++slot) {
        QPointF p;
        QMetaObject::invokeMethod(canvas, "nodeItemPosition", Q_RETURN_ARG(QPointF, p), Q_ARG(int, slot));
        top = std::min(top, p.y());
        bottom = std::max(bottom, p.y());
        left = std::min(left, p.x());
        right = std::max(right, p.x());
    }
    qInfo("after the fit: nodes span %.0f x %.0f px of a %.0f x %.0f px canvas, zoom %.3f", right - left, bottom - top,
        canvas->width(), canvas->height(), canvas->property("zoom").toDouble());
    QVERIFY2((bottom - top) > 0.6 * canvas->height(), "the graph is a band, not the pane");
    QVERIFY((right - left) > 0.6 * canvas->width());
    // Nodes big enough to see and click (6 scene units of radius), empty positions collapsed.
    QVERIFY(m_explorer->collapseEmptyPositions());
    const double radius = 6 * canvas->property("zoom").toDouble();
    QVERIFY2(radius >= 2.0, qPrintable(QString::number(radius)));
}

namespace {

// WCAG 2 contrast ratio of two opaque colours.
double contrast(const QColor& a, const QColor& b)
{
    const auto luminance = [](const QColor& c) {
        const auto channel = [](double v) { return v <= 0.03928 ? v / 12.92 : std::pow((v + 0.055) / 1.055, 2.4); };
        return 0.2126 * channel(c.redF()) + 0.7152 * channel(c.greenF()) + 0.0722 * channel(c.blueF());
    };
    const double la = luminance(a), lb = luminance(b);
    return (std::max(la, lb) + 0.05) / (std::min(la, lb) + 0.05);
}

// `over` with its alpha laid on the opaque `under`.
QColor blend(const QColor& over, const QColor& under)
{
    const double a = over.alphaF();
    return QColor::fromRgbF(over.redF() * a + under.redF() * (1 - a), over.greenF() * a + under.greenF() * (1 - a),
        over.blueF() * a + under.blueF() * (1 - a));
}

} // namespace

// Dark theme: caption text on its background and the axes' labels on theirs read at WCAG AA
// (4.5:1) in both canvases; a logit has the same colour in the graph and in the subgraph.
void TestGuiResearcher::darkThemeIsReadable()
{
    traceFromPromptBox(kDallas);
    m_explorer->settings()->setTheme(QStringLiteral("dark"));
    const QString logit
        = QString::fromStdString(cs::graph::nodeId(*m_explorer->graph(), m_explorer->graph()->ranges().logits.begin));
    m_explorer->pinNodes({ kSayCapital, logit });
    settle();
    for (const char* name : { "graphView", "subgraphView" }) {
        QQuickItem* view = item(name);
        QVERIFY(view);
        const QColor window = m_window->color();
        const QColor text = view->property("captionColor").value<QColor>();
        const QColor background = blend(view->property("captionBackground").value<QColor>(), window);
        QVERIFY2(contrast(text, background) >= 4.5,
            qPrintable(QStringLiteral("%1 captions: %2:1").arg(name).arg(contrast(text, background))));
        const QColor axis = view->property("axisColor").value<QColor>();
        const QColor axisBackground = view->property("axisBackground").value<QColor>();
        if (view->property("hasAxes").toBool())
            QVERIFY2(contrast(axis, axisBackground) >= 4.5,
                qPrintable(QStringLiteral("%1 axis: %2:1").arg(name).arg(contrast(axis, axisBackground))));
    }
    const auto fillOf = [&](const char* viewName) {
        auto* canvas = qvariant_cast<cs::app::GraphCanvas*>(item(viewName)->property("canvas"));
        const auto scene = canvas->scene();
        const int slot = scene->slotOf(logit.toStdString());
        return slot < 0 ? QRgb(0) : scene->nodes[size_t(slot)].fill;
    };
    QVERIFY(fillOf("graphView") != 0);
    QCOMPARE(fillOf("subgraphView"), fillOf("graphView"));
    m_explorer->unpinAll();
    m_explorer->settings()->setTheme(QStringLiteral("light"));
    settle();
}

// At 1024 × 700 with nothing pinned, the graph keeps the height: the subgraph pane is its header,
// the token chips are whole.
void TestGuiResearcher::smallWindowKeepsTheGraph()
{
    const QSize before = m_window->size();
    m_window->resize(1024, 700);
    traceFromPromptBox(kDallas);
    QTest::qWait(300);
    QQuickItem* graph = item("graphView");
    QQuickItem* subgraph = item("subgraphPane");
    QVERIFY(graph && subgraph);
    qInfo("1024 x 700: graph canvas %.0f px high, subgraph pane %.0f px", graph->height(), subgraph->height());
    QVERIFY(subgraph->height() <= 50);
    QVERIFY(graph->height() >= 250);
    QQuickItem* chipsView = item("tokenChipsView");
    QQuickItem* chips = item("tokenChips");
    QVERIFY(chipsView && chips);
    QVERIFY2(chipsView->height() + 0.5 >= std::min(chips->implicitHeight(), 2 * 26.0), "token chips are cut off");
    // Pinning opens the pane; the graph still keeps more than the subgraph.
    m_explorer->pinNodes({ kSayCapital });
    settle();
    QTest::qWait(300);
    QVERIFY(subgraph->height() > 100);
    QVERIFY(graph->height() > subgraph->height() * 0.6);
    m_explorer->unpinAll();
    m_window->resize(before);
    settle();
}

void TestGuiResearcher::undoRestoresRegimeAndSeparatesDrags()
{
    traceFromPromptBox(kDallas);
    auto* interventions = m_explorer->interventions();
    QVERIFY(!interventions->freeRegime());
    QCOMPARE(interventions->add(kSayCapital, QStringLiteral("scale"), -2), 0);
    settle();
    interventions->setFreeRegime(true);
    settle();
    QVERIFY(m_explorer->state().interventions[0].free);
    m_explorer->undo();
    settle();
    QVERIFY(!m_explorer->state().interventions[0].free);
    QVERIFY2(!interventions->freeRegime(), "the switch stayed on after undo");
    m_explorer->redo();
    settle();
    QVERIFY(interventions->freeRegime());
    m_explorer->undo();
    settle();

    // The row's slider: moves change the value in place (the delegate and its slider stay).
    QQuickItem* slider = item("interventionValueSlider");
    QVERIFY(slider);
    QPointer<QQuickItem> kept(slider);
    const int steps = m_explorer->undoStack().index();
    interventions->setValue(0, -3);
    interventions->setValue(0, -4);
    settle();
    QVERIFY2(kept, "the list rebuilt its delegates during a drag");
    QCOMPARE(item("interventionValueSlider"), slider);
    QCOMPARE(slider->property("value").toDouble(), -4.0);
    QCOMPARE(m_explorer->undoStack().index(), steps + 1); // one drag, one step
    m_explorer->endGesture(); // released
    interventions->setValue(0, -1);
    interventions->setValue(0, -1.5);
    settle();
    QCOMPARE(m_explorer->undoStack().index(), steps + 2); // a second drag, a second step
    m_explorer->undo();
    settle();
    QCOMPARE(m_explorer->state().interventions[0].value, -4.0);
    m_explorer->undo();
    settle();
    QCOMPARE(m_explorer->state().interventions[0].value, -2.0);

    // The same for the threshold slider, dragged by the mouse.
    QQuickItem* threshold = item("nodeThresholdSlider");
    QVERIFY(threshold);
    const double before = m_explorer->nodeThreshold();
    const auto drag = [&](double from, double to) {
        const QPointF a = threshold->mapToScene(QPointF(threshold->width() * from, threshold->height() / 2));
        const QPointF b = threshold->mapToScene(QPointF(threshold->width() * to, threshold->height() / 2));
        QTest::mousePress(m_window, Qt::LeftButton, {}, a.toPoint());
        for (int k = 1; k <= 5; ++k)
            QTest::mouseMove(m_window, (a + (b - a) * k / 5.0).toPoint());
        QTest::mouseRelease(m_window, Qt::LeftButton, {}, b.toPoint());
        settle();
    };
    const int thresholdSteps = m_explorer->undoStack().index();
    drag(0.5, 0.4);
    QVERIFY(m_explorer->nodeThreshold() != before);
    const double afterFirst = m_explorer->nodeThreshold();
    drag(0.4, 0.3);
    QCOMPARE(m_explorer->undoStack().index(), thresholdSteps + 2);
    m_explorer->undo();
    settle();
    QCOMPARE(m_explorer->nodeThreshold(), afterFirst);
    m_explorer->undo();
    settle();
    QCOMPARE(m_explorer->nodeThreshold(), before);
    interventions->clear();
    settle();
}

void TestGuiResearcher::statusSaysSavedAndCancelled()
{
    QQuickItem* status = item("statusLabel");
    QVERIFY(status);
    auto* dialogs = m_app->fileDialogs();
    // Save as: the dialog says Save, starts in the last folder used for sessions or in the
    // user's documents (never the program's folder), and takes a typed name with Enter.
    QVERIFY(QMetaObject::invokeMethod(m_window, "saveSessionDialog", Q_ARG(QVariant, false)));
    QTRY_VERIFY(dialogs->current() && dialogs->current()->isVisible());
    QFileDialog* dialog = dialogs->current();
    QCOMPARE(dialog->acceptMode(), QFileDialog::AcceptSave);
    QCOMPARE(dialog->labelText(QFileDialog::Accept), QStringLiteral("Save"));
    QCOMPARE(
        QDir(dialog->directory()).absolutePath(), QDir(dialogs->startFolder(QStringLiteral("session"))).absolutePath());
    QVERIFY(QDir(dialog->directory()).absolutePath() != QDir(QCoreApplication::applicationDirPath()).absolutePath());
    auto* name = dialog->findChild<QLineEdit*>(QStringLiteral("fileNameEdit"));
    QVERIFY(name);
    QVERIFY2(name->text().endsWith(QStringLiteral(".circuitscope.json")), qPrintable(name->text())); // suggested
    const QString path = m_tmp->filePath(QStringLiteral("typed.circuitscope.json"));
    // A whole path typed into the name field (set at once: keystrokes would open the path
    // completer's list, whose Enter picks a completion first), then Enter.
    name->setText(path);
    QTest::keyClick(name, Qt::Key_Return);
    QTRY_VERIFY(QFileInfo::exists(path));
    QTRY_VERIFY(!dialogs->current());
    QCOMPARE(m_explorer->files()->sessionPath(), path);
    QTRY_VERIFY(status->property("text").toString().startsWith(QStringLiteral("Saved ")));
    // The next one starts where that one ended; Cancel says so.
    QVERIFY(QMetaObject::invokeMethod(m_window, "saveSessionDialog", Q_ARG(QVariant, false)));
    QTRY_VERIFY(dialogs->current() && dialogs->current()->isVisible());
    QCOMPARE(QDir(dialogs->current()->directory()).absolutePath(), QDir(m_tmp->path()).absolutePath());
    dialogs->current()->reject();
    QTRY_COMPARE(status->property("text").toString(), QStringLiteral("Save cancelled"));
    // Export dialogs say Export.
    QVERIFY(QMetaObject::invokeMethod(m_window, "exportJsonDialog"));
    QTRY_VERIFY(dialogs->current() && dialogs->current()->isVisible());
    QCOMPARE(dialogs->current()->labelText(QFileDialog::Accept), QStringLiteral("Export"));
    dialogs->current()->reject();
    QTRY_COMPARE(status->property("text").toString(), QStringLiteral("Export cancelled"));
}

void TestGuiResearcher::menusShowShortcutsAndHelp()
{
    QCOMPARE(m_app->shortcutText(QStringLiteral("Ctrl+Shift+S")),
        QKeySequence(QStringLiteral("Ctrl+Shift+S")).toString(QKeySequence::NativeText));
    QCOMPARE(m_app->shortcutText(int(QKeySequence::Save)),
        QKeySequence(QKeySequence::Save).toString(QKeySequence::NativeText));
    // The File menu's items, opened as a user opens it, show their shortcuts.
    QObject* menuBar = m_window->findChild<QObject*>(QStringLiteral("menuBar"));
    QVERIFY(menuBar);
    QStringList shown;
    for (QObject* label : m_window->findChildren<QObject*>(QStringLiteral("menuShortcut")))
        shown << label->property("text").toString();
    QVERIFY2(shown.contains(QKeySequence(QKeySequence::Save).toString(QKeySequence::NativeText)),
        qPrintable(shown.join(", ")));
    QVERIFY2(shown.contains(QStringLiteral("F")), qPrintable(shown.join(", ")));
    // Help: the keyboard reference and About.
    QObject* keys = m_window->findChild<QObject*>(QStringLiteral("keysDialog"));
    QObject* about = m_window->findChild<QObject*>(QStringLiteral("aboutDialog"));
    QVERIFY(keys && about);
    QObject* help = m_window->findChild<QObject*>(QStringLiteral("helpDialogs"));
    QVERIFY(help);
    QVERIFY(QMetaObject::invokeMethod(help, "showKeys"));
    QTRY_VERIFY(keys->property("visible").toBool());
    QMetaObject::invokeMethod(keys, "close");
    QVERIFY(QMetaObject::invokeMethod(help, "showAbout"));
    QTRY_VERIFY(about->property("visible").toBool());
    const QString text = m_window->findChild<QObject*>(QStringLiteral("aboutText"))->property("text").toString();
    QVERIFY2(text.contains(QStringLiteral("Qt ")) && text.contains(QStringLiteral("LibTorch ")), qPrintable(text));
    QMetaObject::invokeMethod(about, "close");
}

// Counts the pixels of `image` within `rect` that are `color` (to 8 per channel).
static int pixelsOf(const QImage& image, const QRect& rect, const QColor& color)
{
    int n = 0;
    const QRect r = rect.intersected(image.rect());
    for (int y = r.top(); y <= r.bottom(); ++y)
        for (int x = r.left(); x <= r.right(); ++x) {
            const QColor c = image.pixelColor(x, y);
            n += std::abs(c.red() - color.red()) <= 8 && std::abs(c.green() - color.green()) <= 8
                && std::abs(c.blue() - color.blue()) <= 8;
        }
    return n;
}

void TestGuiResearcher::perturbationAndValidationPages()
{
    traceFromPromptBox(kDallas);
    m_explorer->settings()->setTheme(QStringLiteral("light"));
    const auto graph = m_explorer->graph();
    const cs::graph::KindRanges ranges = graph->ranges();
    const cs::graph::Pruner pruner(*graph);
    int64_t top = -1;
    for (int64_t i = ranges.features.begin; i < ranges.features.end; ++i)
        if (top < 0 || pruner.influence()[size_t(i)] > pruner.influence()[size_t(top)])
            top = i;
    const QString topId = QString::fromStdString(cs::graph::nodeId(*graph, top));
    m_explorer->select(topId);
    item("rightTabs")->setProperty("currentIndex", 1);
    item("interventionModes")->setProperty("currentIndex", 1);
    settle();
    cs::app::ExplorerValidation* validation = m_explorer->validation();

    // Perturbation: the selected feature, ablated, from the page's own button.
    QQuickItem* target = item("perturbationTarget");
    QVERIFY(target && target->isVisible());
    QCOMPARE(target->property("currentValue").toString(), topId);
    QQuickItem* perturb = item("perturbButton");
    QVERIFY(perturb && perturb->isVisible() && perturb->isEnabled());
    QVERIFY(QMetaObject::invokeMethod(perturb, "clicked"));
    QTRY_VERIFY_WITH_TIMEOUT(!validation->isPerturbing() && !validation->perturbation().isEmpty(), 30000);
    int logits = 0, moved = 0;
    for (const QVariant& v : validation->perturbation()) {
        const QVariantMap row = v.toMap();
        const double predicted = row.value("predictedConstrained").toDouble();
        const double actual = row.value("actualConstrained").toDouble();
        QVERIFY2(std::abs(predicted - actual) <= 1e-3 * std::max(1.0, std::abs(actual)),
            qPrintable(row.value("nodeId").toString()));
        logits += row.value("kind").toString() == QLatin1String("logit");
        moved += std::abs(actual - 1) > 0.01;
    }
    QCOMPARE(logits, int(ranges.logits.size()));
    QVERIFY(moved > 0);
    QQuickItem* chart = item("perturbationChart");
    QTRY_COMPARE(chart->property("count").toInt(), int(validation->perturbation().size()));
    settle();
    const QColor modelConstrained(QStringLiteral("#2f6db5"));
    const QRectF chartRect = chart->mapRectToScene(QRectF(0, 0, chart->width(), chart->height()));
    QImage frame = m_window->grabWindow();
    QVERIFY2(pixelsOf(frame, chartRect.toAlignedRect(), modelConstrained) > 50, "the chart's bars are not drawn");

    // Validation: the top 12 features, ablated one at a time.
    item("interventionModes")->setProperty("currentIndex", 2);
    item("validationCount")->setProperty("value", 12);
    QQuickItem* validate = item("validateButton");
    QVERIFY(validate && validate->isVisible());
    QVERIFY(QMetaObject::invokeMethod(validate, "clicked"));
    QTRY_VERIFY_WITH_TIMEOUT(!validation->isValidating() && validation->points().size() == 12, 60000);
    QVERIFY(std::abs(validation->correlationConstrained() - 1) < 1e-6);
    QVERIFY(std::isfinite(validation->correlationFree()));
    qInfo("validation of the Dallas graph (top 12, ablated): r constrained %.4f, free %.4f",
        validation->correlationConstrained(), validation->correlationFree());
    settle();
    QQuickItem* scatter = item("validationScatter");
    QVERIFY(scatter && scatter->isVisible() && scatter->width() <= item("interventionModes")->width());
    QTest::qWait(200); // the canvas paints on the next frame
    frame = m_window->grabWindow();
    const QRect scatterRect
        = scatter->mapRectToScene(QRectF(0, 0, scatter->width(), scatter->height())).toAlignedRect();
    QVERIFY2(pixelsOf(frame, scatterRect, modelConstrained) > 20, "the constrained points are not drawn");
    QVERIFY2(pixelsOf(frame, scatterRect, QColor(QStringLiteral("#d9731f"))) > 20, "the free points are not drawn");
    // The other top nodes each edit reaches, on the same scatter.
    QVERIFY(!validation->downstreamPoints().isEmpty());
    QVERIFY(std::abs(validation->downstreamCorrelationConstrained() - 1) < 1e-6);
    item("validationShown")->setProperty("currentIndex", 1);
    QTest::qWait(200);
    const QImage downstream = m_window->grabWindow();
    QVERIFY2(pixelsOf(downstream, scatterRect, modelConstrained) > 20, "the downstream points are not drawn");
    QVERIFY(downstream.copy(scatterRect) != frame.copy(scatterRect));
    item("validationShown")->setProperty("currentIndex", 0);

    // The table: the model's own logits, then the ablation of the top feature.
    QVERIFY(m_explorer->interventions()->add(topId, QStringLiteral("ablate")) >= 0);
    settle();
    QVERIFY(QMetaObject::invokeMethod(item("tableButton"), "clicked"));
    QTRY_VERIFY_WITH_TIMEOUT(!validation->isTabling() && validation->table().size() == 2, 30000);
    const QVariantMap own = validation->table().at(0).toMap(), ablated = validation->table().at(1).toMap();
    QCOMPARE(own.value("name").toString(), QStringLiteral("No intervention"));
    QCOMPARE(own.value("top").toString(), QString::fromStdString(graph->nodes[size_t(ranges.logits.begin)].token));
    QCOMPARE(own.value("logits").toList().size(), validation->tableTokens().size());
    // The table's own row equals the interventions tab's result for the same edit.
    QCOMPARE(ablated.value("top").toString(), m_explorer->interventions()->topAfter());
    QVERIFY(ablated.value("logits").toList().at(0).toDouble() != own.value("logits").toList().at(0).toDouble());
    m_explorer->interventions()->clear();
    item("interventionModes")->setProperty("currentIndex", 0);
    item("rightTabs")->setProperty("currentIndex", 0);
    settle();
    QVERIFY2(cs::test::qmlWarnings().isEmpty(), qPrintable(cs::test::qmlWarnings().join('\n')));
}

void TestGuiResearcher::closesCleanly()
{
    // No unsaved edits: the window closes, finishSession runs from QML (the autosave goes).
    QVERIFY(m_explorer->files()->save());
    QVERIFY(!m_explorer->files()->isModified());
    QElapsedTimer clock;
    clock.start();
    QVERIFY(m_window->close());
    QTRY_VERIFY(!m_window->isVisible());
    const qint64 hidden = clock.elapsed();
    // The rest of quitting: the window, the controllers, the engine's worker and card threads.
    m_main.engine.reset();
    m_explorer = nullptr;
    m_app = nullptr;
    m_window = nullptr;
    qInfo("closing: the window gone after %lld ms, everything torn down after %lld ms", hidden, clock.elapsed());
    QVERIFY2(cs::test::qmlWarnings().isEmpty(), qPrintable(cs::test::qmlWarnings().join(QLatin1Char('\n'))));
}

QTEST_MAIN(TestGuiResearcher)
#include "tst_gui_researcher.moc"
