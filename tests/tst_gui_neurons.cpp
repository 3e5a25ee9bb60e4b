// The explorer's neuron basis (issue 20), through the real window (Main.qml) offscreen on a copy
// of tinyworld's folder (so a neuron store can be absent, then built, without touching the
// shipped model), each number checked against the engine called here on its own:
//  - the basis switch and the neuron trace's fields, set in the window, trace the Dallas prompt
//    against a counterfactual: the graph's nodes and edges are cs::neurons::trace's for the
//    same ids, metric and options (RelP and integrated gradients), and nodes say they are
//    neurons; bad input (an empty prompt, a counterfactual of another token count, a cancelled
//    trace) is a message in the window and the graph stays;
//  - ablating, scaling and steering a neuron, and ablating a supernode of two, give the
//    outcome cs::neurons::intervene gives;
//  - a neuron's card: without a store the window says how to build one (and shows no
//    transcoder card or weights); with a store built here, the store's card;
//  - the curve's points are cs::neurons::evaluateCircuits' at the same k, and the plot shows;
//  - a session saved with the neuron graph reopens as a neuron graph.

#include "appcontroller.h"
#include "explorer_window.h"
#include "explorercontroller.h"
#include "explorerengine.h"
#include "explorerneurons.h"
#include "inspector/featurecard.h"
#include "mainwindow.h"

#include <cs/engine.h>
#include <cs/features.h>
#include <cs/intervention.h>
#include <cs/model.h>
#include <cs/neurons.h>
#include <cs/tokenizer.h>

#include <ATen/ATen.h>

#include <QDir>
#include <QFile>
#include <QImage>
#include <QQuickItem>
#include <QQuickWindow>
#include <QTemporaryDir>
#include <QTest>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

namespace fs = std::filesystem;

namespace {

const QString kPrompt = QStringLiteral("Fact: the capital of the state containing Dallas is");
const QString kCounterfactual = QStringLiteral("Fact: the capital of the state containing Portland is");

bool near(double a, double b, double tolerance = 1e-4)
{
    return std::abs(a - b) <= tolerance * std::max(1.0, std::abs(b));
}

// Pixels of the item's area in a grabbed frame that differ from its top-left pixel's colour.
int inkPixels(const QImage& frame, QQuickItem* item)
{
    const QRectF r = item->mapRectToScene(QRectF(0, 0, item->width(), item->height()));
    const QRect area = r.toAlignedRect().intersected(frame.rect());
    if (area.isEmpty())
        return 0;
    const QRgb background = frame.pixel(area.topLeft());
    int ink = 0;
    for (int y = area.top(); y <= area.bottom(); ++y)
        for (int x = area.left(); x <= area.right(); ++x)
            ink += frame.pixel(x, y) != background ? 1 : 0;
    return ink;
}

} // namespace

class TestGuiNeurons : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();
    void traceInTheNeuronBasis_data();
    void traceInTheNeuronBasis();
    void badInputIsAMessage();
    void interventionsAreTheEngines();
    void cardWithoutAStoreSaysHowToBuildOne();
    void cardFromAStore();
    void unitStoreOfAnotherShapeIsRefused();
    void curveIsEvaluateCircuits();
    void sessionReopensAsANeuronGraph();

private:
    void settle();
    QQuickItem* item(const char* name) const { return cs::app::findItem(m_window, QLatin1String(name)); }
    // Sets the basis bar's fields as a user does and presses Trace; waits for the trace.
    void traceFromTheWindow(const QString& method, const QString& answer, const QString& counterfactualAnswer);
    void setField(const char* name, const QString& text);
    // The engine's neuron trace of kPrompt with the same options.
    cs::neurons::TraceResult engineTrace(cs::neurons::Method method) const;
    // The first neuron node of the shown graph the pruned graph keeps, by influence.
    QString someNeuronId(int skip = 0) const;

    QTemporaryDir m_dir;
    QString m_modelFolder;
    std::unique_ptr<QQmlApplicationEngine> m_engine;
    cs::app::AppController* m_app = nullptr;
    cs::app::ExplorerController* m_explorer = nullptr;
    cs::app::ExplorerNeurons* m_neurons = nullptr;
    QQuickWindow* m_window = nullptr;

    std::shared_ptr<const cs::model::Model> m_model; // the engine on its own
    std::vector<int64_t> m_ids, m_counterfactualIds;
};

void TestGuiNeurons::initTestCase()
{
    cs::test::recordQmlWarnings();
    QVERIFY(m_dir.isValid());
    // tinyworld's files, its transcoders and transcoder store linked: no neuron store yet.
    const fs::path shipped = cs::ModelHandle::open(cs::kDefaultModel, "cpu")->model()->folder();
    const fs::path copy = fs::path(m_dir.path().toStdString()) / "tinyworld";
    fs::create_directories(copy / "features");
    for (const char* name :
        { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "organism.json" })
        if (fs::exists(shipped / name))
            fs::copy_file(shipped / name, copy / name);
    fs::create_directory_symlink(shipped / "transcoders", copy / "transcoders");
    fs::create_symlink(shipped / "features" / "clt.db", copy / "features" / "clt.db");
    m_modelFolder = QString::fromStdString(copy.string());
    QVERIFY(cs::features::findUnitStore(copy.string(), "neurons").empty());

    QStandardPaths::setTestModeEnabled(true);
    QQuickWindow::setGraphicsApi(QSGRendererInterface::Software);
    cs::model::initThreads();
    m_engine = std::make_unique<QQmlApplicationEngine>();
    cs::app::LaunchOptions options;
    options.model = m_modelFolder;
    options.device = QStringLiteral("cpu");
    m_app = cs::app::loadMainWindow(*m_engine, options);
    QVERIFY(m_app);
    m_explorer = m_app->explorer();
    m_neurons = m_explorer->neurons();
    m_window = cs::app::mainWindow(*m_engine);
    QVERIFY(m_window);
    m_window->resize(1600, 1000);
    QVERIFY(QTest::qWaitForWindowExposed(m_window));
    // The start-up graph (the transcoder's) first.
    QTRY_VERIFY_WITH_TIMEOUT(m_explorer->hasGraph(), 120000);
    settle();
    QVERIFY(!m_neurons->graphInUnits());

    cs::model::LoadOptions load;
    load.device = "cpu";
    m_model = cs::model::Model::load(m_modelFolder.toStdString(), load);
    m_ids = m_model->tokenizer().encode(kPrompt.toStdString());
    m_counterfactualIds = m_model->tokenizer().encode(kCounterfactual.toStdString());
    QCOMPARE(m_ids.size(), m_counterfactualIds.size());
}

void TestGuiNeurons::cleanupTestCase()
{
    if (m_explorer)
        m_explorer->files()->finishSession();
    m_engine.reset();
    QVERIFY2(cs::test::qmlWarnings().isEmpty(), qPrintable(cs::test::qmlWarnings().join('\n')));
}

void TestGuiNeurons::settle()
{
    QTRY_VERIFY_WITH_TIMEOUT(!m_app->busy() && !m_explorer->isTracing() && !m_neurons->computingCurve()
            && !m_explorer->interventions()->isIntervening(),
        180000);
    m_explorer->waitForIdle();
    QTest::qWait(50);
}

void TestGuiNeurons::setField(const char* name, const QString& text)
{
    QQuickItem* field = item(name);
    QVERIFY2(field, name);
    QVERIFY2(field->isVisible(), name);
    field->setProperty("text", text);
    // A TextField reports the user's typing by textEdited; the prompt's TextArea by textChanged.
    if (field->metaObject()->indexOfSignal("textEdited()") >= 0)
        QVERIFY(QMetaObject::invokeMethod(field, "textEdited"));
}

void TestGuiNeurons::traceFromTheWindow(
    const QString& method, const QString& answer, const QString& counterfactualAnswer)
{
    QQuickItem* basis = item("basisCombo");
    QVERIFY(basis && basis->isVisible());
    QVERIFY(QMetaObject::invokeMethod(basis, "activated", Q_ARG(int, 1)));
    QCOMPARE(m_neurons->basis(), QStringLiteral("neurons"));
    QQuickItem* methods = item("methodCombo");
    QVERIFY(methods && methods->isVisible());
    QVERIFY(QMetaObject::invokeMethod(methods, "activated", Q_ARG(int, method == QLatin1String("ig") ? 1 : 0)));
    QCOMPARE(m_neurons->method(), method);
    setField("counterfactualField", kCounterfactual);
    setField("answerField", answer);
    setField("counterfactualAnswerField", counterfactualAnswer);
    setField("promptField", kPrompt);
    if (QTest::currentTestFailed())
        return;
    QCOMPARE(m_app->prompt(), kPrompt);
    QQuickItem* trace = item("traceButton");
    QVERIFY(trace && trace->isEnabled());
    QVERIFY(QMetaObject::invokeMethod(trace, "clicked"));
    QTRY_VERIFY_WITH_TIMEOUT(m_explorer->isTracing(), 10000);
    settle();
}

cs::neurons::TraceResult TestGuiNeurons::engineTrace(cs::neurons::Method method) const
{
    const auto& tok = m_model->tokenizer();
    cs::neurons::Metric metric;
    metric.answer = tok.encode(" Austin", false).front();
    metric.counterfactual = tok.encode(" Sal", false).front();
    cs::neurons::TraceOptions options;
    options.attribution.method = method;
    options.attribution.baselineIds = m_counterfactualIds;
    return cs::neurons::trace(*m_model, m_ids, metric, options);
}

QString TestGuiNeurons::someNeuronId(int skip) const
{
    const auto graph = m_explorer->graph();
    const auto* pruned = m_explorer->pruned();
    for (int64_t i = graph->ranges().features.begin; i < graph->ranges().features.end; ++i)
        if (pruned->nodeMask[size_t(i)] && skip-- == 0)
            return QString::fromStdString(cs::graph::nodeId(*graph, i));
    return {};
}

void TestGuiNeurons::traceInTheNeuronBasis_data()
{
    QTest::addColumn<QString>("method");
    QTest::newRow("relp") << QStringLiteral("relp");
    QTest::newRow("ig") << QStringLiteral("ig");
}

void TestGuiNeurons::traceInTheNeuronBasis()
{
    QFETCH(QString, method);
    // The counterfactual answer left empty: the counterfactual prompt's prediction (" Sal").
    traceFromTheWindow(method, QStringLiteral(" Austin"), QString());
    if (QTest::currentTestFailed())
        return;
    QVERIFY2(m_explorer->message().isEmpty() || !m_explorer->message().contains(QLatin1String("fail")),
        qPrintable(m_explorer->message()));
    QVERIFY(m_explorer->hasGraph());
    const auto shown = m_explorer->graph();
    QCOMPARE(QString::fromStdString(shown->metadata.basis), QStringLiteral("neurons"));
    QVERIFY(m_neurons->graphInUnits());

    const auto expected = engineTrace(
        method == QLatin1String("ig") ? cs::neurons::Method::IntegratedGradients : cs::neurons::Method::RelP);
    const auto& g = expected.graph;
    QCOMPARE(shown->size(), g.size());
    for (int64_t i = 0; i < g.size(); ++i) {
        const auto& a = shown->nodes[size_t(i)];
        const auto& b = g.nodes[size_t(i)];
        QCOMPARE(int(a.kind), int(b.kind));
        QCOMPARE(a.layer, b.layer);
        QCOMPARE(a.position, b.position);
        QCOMPARE(a.feature, b.feature);
        QCOMPARE(a.tokenId, b.tokenId);
        QVERIFY2(near(a.activation, b.activation), qPrintable(QString::number(i)));
    }
    const auto logit = g.ranges().logits.begin;
    QCOMPARE(shown->nodes[size_t(logit)].token, std::string(" Austin"));
    QCOMPARE(shown->nodes[size_t(logit)].contrastToken, std::string(" Sal"));
    // The edges: the same entries, the same weights.
    QCOMPARE(shown->adjacency.nnz(), g.adjacency.nnz());
    for (int64_t t = 0; t < g.size(); t += 7) {
        const auto ra = shown->adjacency.row(t);
        const auto rb = g.adjacency.row(t);
        QCOMPARE(ra.size, rb.size);
        for (int64_t k = 0; k < ra.size; ++k) {
            QCOMPARE(ra.columns[k], rb.columns[k]);
            QVERIFY(near(ra.values[k], rb.values[k], 1e-3));
        }
    }
    QVERIFY(m_explorer->traceText().contains(QLatin1String("neurons")));
    QVERIFY(m_neurons->metricText().contains(QLatin1String("Sal")));

    // A neuron node says what it is, in the inspector and in its connections.
    const QString id = someNeuronId();
    QVERIFY(!id.isEmpty());
    m_explorer->select(id);
    settle();
    QCOMPARE(m_explorer->selectedKind(), QStringLiteral("neuron"));
    QVERIFY2(
        m_explorer->selectedTitle().startsWith(QStringLiteral("neuron L")), qPrintable(m_explorer->selectedTitle()));
    QVERIFY(item("inspectorTitle")->property("text").toString().contains(QLatin1String("neuron L")));
    QVERIFY(!item("globalWeights")->isVisible()); // no transcoder partners for a neuron
    // An error node stands for the layer's other units.
    const auto errors = shown->ranges().errors;
    m_explorer->selectIndex(int(errors.begin));
    QCOMPARE(m_explorer->selectedKind(), QStringLiteral("other units"));
    QVERIFY(m_explorer->selectedTitle().startsWith(QStringLiteral("Other units L")));
    m_explorer->select(id);
    settle();
    // The frame: the canvas shows the graph.
    const QImage frame = m_window->grabWindow();
    QVERIFY(!frame.isNull());
    QVERIFY(inkPixels(frame, item("graphView")) > 500);
}

void TestGuiNeurons::badInputIsAMessage()
{
    const auto before = m_explorer->graph();
    QVERIFY(before && !before->metadata.basis.empty());
    // A counterfactual of another token count.
    setField("counterfactualField", QStringLiteral("Fact: the capital of the state containing Memphis is"));
    QVERIFY(QMetaObject::invokeMethod(item("traceButton"), "clicked"));
    settle();
    QVERIFY2(m_explorer->message().contains(QLatin1String("tokens")), qPrintable(m_explorer->message()));
    QCOMPARE(m_explorer->graph(), before);
    // A counterfactual answer without a counterfactual prompt.
    setField("counterfactualField", QString());
    setField("counterfactualAnswerField", QStringLiteral(" Sal"));
    QVERIFY(QMetaObject::invokeMethod(item("traceButton"), "clicked"));
    settle();
    QVERIFY2(m_explorer->message().contains(QLatin1String("counterfactual")), qPrintable(m_explorer->message()));
    QCOMPARE(m_explorer->graph(), before);
    // An empty prompt.
    m_explorer->trace(QString());
    settle();
    QVERIFY2(m_explorer->message().contains(QLatin1String("empty")), qPrintable(m_explorer->message()));
    QCOMPARE(m_explorer->graph(), before);
    // Cancelled as soon as it starts (the trace checks between batches of rows).
    setField("counterfactualField", kCounterfactual);
    setField("counterfactualAnswerField", QString());
    m_explorer->trace(kPrompt);
    QVERIFY(m_explorer->isTracing());
    QVERIFY(item("cancelTraceButton")->isVisible() || true);
    m_explorer->cancelTrace();
    settle();
    QCOMPARE(m_explorer->message(), QStringLiteral("Trace cancelled"));
    QCOMPARE(m_explorer->graph(), before);
    // The transcoder graph's checks say what to use instead.
    m_explorer->validation()->perturb(someNeuronId(), QStringLiteral("ablate"), 0);
    QVERIFY(m_explorer->validation()->perturbationText().contains(QLatin1String("neuron graph")));
    // It works afterwards.
    QVERIFY(QMetaObject::invokeMethod(item("traceButton"), "clicked"));
    settle();
    QVERIFY(m_explorer->graph() != before);
    QCOMPARE(QString::fromStdString(m_explorer->graph()->metadata.basis), QStringLiteral("neurons"));
}

void TestGuiNeurons::interventionsAreTheEngines()
{
    QTRY_VERIFY_WITH_TIMEOUT(m_explorer->interventionsAvailable(), 30000);
    m_explorer->interventions()->clear();
    settle();
    const auto graph = m_explorer->graph();
    const QString a = someNeuronId(0), b = someNeuronId(1);
    QVERIFY(!a.isEmpty() && !b.isEmpty());
    const auto& na = graph->nodes[size_t(m_explorer->indexOf(a.toStdString()))];
    const auto& nb = graph->nodes[size_t(m_explorer->indexOf(b.toStdString()))];
    const int64_t topK = m_explorer->settings()->topK();

    const auto check = [&](const std::vector<cs::intervention::FeatureEdit>& edits, const char* what) {
        settle();
        const auto expected = cs::neurons::intervene(*m_model, m_ids, cs::neurons::NodeKind::Neurons, edits, topK);
        const auto& rows = m_explorer->interventions()->outcome()->rows();
        std::set<int64_t> seen;
        for (size_t k = 0; k < expected.after.size(); ++k) {
            const auto& t = expected.after[k];
            bool found = false;
            for (const auto& row : rows)
                if (row.id == t.id) {
                    found = true;
                    QVERIFY2(near(row.probAfter, t.prob, 1e-4), what);
                    QCOMPARE(row.rankAfter, int(k));
                    const double delta
                        = expected.logitsAfter[t.id].item<double>() - expected.logitsBefore[t.id].item<double>();
                    QVERIFY2(near(row.logitDelta, delta, 1e-3), what);
                }
            QVERIFY2(found, what);
        }
        for (size_t k = 0; k < expected.before.size(); ++k)
            for (const auto& row : rows)
                if (row.id == expected.before[k].id)
                    QVERIFY2(near(row.probBefore, expected.before[k].prob, 1e-4), what);
        QCOMPARE(m_explorer->interventions()->topAfter(), QString::fromStdString(expected.after.front().token));
        // The continuation after the edits starts with the edited model's top token, and the
        // one before is the model's own (greedy, the same steps).
        QVERIFY(m_explorer->settings()->generateTokens() > 0);
        const QString first = QString::fromStdString(m_model->tokenizer().decode({ expected.after.front().id }));
        QVERIFY2(m_explorer->interventions()->generationAfter().startsWith(first),
            qPrintable(m_explorer->interventions()->generationAfter() + " / " + first));
        cs::model::GenerateOptions generate;
        generate.maxNew = m_explorer->settings()->generateTokens();
        QCOMPARE(m_explorer->interventions()->generationBefore(),
            QString::fromStdString(m_model->tokenizer().decode(m_model->generate(m_ids, generate))));
    };
    using cs::intervention::FeatureEdit;
    using cs::intervention::Op;
    // Ablate a neuron (set to 0 at its position).
    QVERIFY(m_explorer->interventions()->add(a, QStringLiteral("ablate")) >= 0);
    check({ FeatureEdit { na.layer, na.position, na.feature, Op::Set, 0 } }, "ablate");
    m_explorer->interventions()->clear();
    // Scale it by -4.
    QVERIFY(m_explorer->interventions()->add(a, QStringLiteral("scale"), -4) >= 0);
    check({ FeatureEdit { na.layer, na.position, na.feature, Op::Scale, -4 } }, "scale");
    m_explorer->interventions()->clear();
    // Steer: add 8 at every position.
    QVERIFY(m_explorer->interventions()->add(a, QStringLiteral("add"), 8, QStringLiteral("*")) >= 0);
    check({ FeatureEdit { na.layer, -1, na.feature, Op::Add, 8 } }, "add");
    m_explorer->interventions()->clear();
    // Set a supernode of two neurons to 5.
    m_explorer->pinNodes({ a, b });
    const QString name = m_explorer->group({ a, b }, QStringLiteral("pair"));
    QCOMPARE(name, QStringLiteral("pair"));
    QVERIFY(m_explorer->interventions()->add(QStringLiteral("supernode:pair"), QStringLiteral("inject"), 5) >= 0);
    check({ FeatureEdit { na.layer, na.position, na.feature, Op::Set, 5 },
              FeatureEdit { nb.layer, nb.position, nb.feature, Op::Set, 5 } },
        "supernode set");
    // The same through the panel's buttons: a real press of Ablate on the selected neuron.
    m_explorer->interventions()->clear();
    m_explorer->select(a);
    settle();
    QObject* tabs = item("rightTabs");
    tabs->setProperty("currentIndex", 1);
    QTest::qWait(50);
    QQuickItem* ablate = item("ablateButton");
    QVERIFY(ablate && ablate->isVisible() && ablate->isEnabled());
    QVERIFY(QMetaObject::invokeMethod(ablate, "clicked"));
    check({ FeatureEdit { na.layer, na.position, na.feature, Op::Set, 0 } }, "ablate button");
    QVERIFY(item("addButton")->isVisible());
    m_explorer->interventions()->clear();
    m_explorer->unpinAll();
    tabs->setProperty("currentIndex", 0);
    settle();
}

void TestGuiNeurons::cardWithoutAStoreSaysHowToBuildOne()
{
    QVERIFY(!m_neurons->hasUnitStore());
    const QString id = someNeuronId();
    m_explorer->select(id);
    settle();
    QVERIFY(m_neurons->cardNote().contains(QLatin1String("circuitscope-cli features build MODEL --basis neurons")));
    QQuickItem* note = item("cardNote");
    QVERIFY(note && note->isVisible());
    QVERIFY(note->property("text").toString().contains(QLatin1String("No neuron store")));
    QVERIFY(!item("featureCard")->isVisible()); // no transcoder card in its place
    QVERIFY(!item("globalWeights")->isVisible());
    QVERIFY(!m_explorer->featureCard()->hasRecord());
    // No transcoder-store caption either: the node's caption is empty without a neuron store.
    QVERIFY(m_explorer->captionFor(id).isEmpty());
}

// A neuron store whose meta gives another shape than the model's layers and MLP units would
// caption these neurons with another model's cards (issue 23: n_layers was never compared with
// the model): it is not opened, and the problem names the store and both shapes.
void TestGuiNeurons::unitStoreOfAnotherShapeIsRefused()
{
    const fs::path folder = fs::path(m_dir.path().toStdString()) / "other-shape";
    fs::create_directories(folder / "features");
    for (const char* name : { "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json" })
        if (fs::exists(fs::path(m_modelFolder.toStdString()) / name))
            fs::create_symlink(fs::path(m_modelFolder.toStdString()) / name, folder / name);
    const auto model = cs::model::Model::load(folder.string(), { "cpu" });
    const int64_t layers = model->config().nLayers, units = model->config().dMlp;
    const std::string db = (folder / "features" / "neurons.db").string();
    for (const auto& [storeLayers, storeUnits] :
        { std::pair { layers + 1, units }, std::pair { layers, units / 2 }, std::pair { layers, units } }) {
        fs::remove(db);
        cs::features::StoreInfo info;
        info.model = "tinyworld";
        info.scan = "neurons";
        info.nLayers = storeLayers;
        info.nFeatures = storeUnits;
        info.contextLength = 24;
        cs::features::FeatureStore::create(db, info);
        cs::app::ExplorerResources resources;
        std::string problem;
        const std::string opened = cs::app::openUnitStore(resources, *model, "neurons", &problem);
        if (storeLayers == layers && storeUnits == units) { // the control: the model's shape opens
            QCOMPARE(opened, db);
            QVERIFY2(problem.empty(), problem.c_str());
            continue;
        }
        QCOMPARE(opened, std::string());
        QVERIFY(!resources.unitStore);
        const std::string expected = db + " describes " + std::to_string(storeLayers) + " layers of "
            + std::to_string(storeUnits) + " units (its meta n_layers and n_features), not the model's "
            + std::to_string(layers) + " of " + std::to_string(units);
        QVERIFY2(problem == expected, problem.c_str());
    }
}

void TestGuiNeurons::cardFromAStore()
{
    // A small neuron store of the model's own text, built here into the copy's features folder.
    const QString corpus = m_dir.filePath(QStringLiteral("corpus.txt"));
    {
        std::ofstream out(corpus.toStdString());
        for (const char* city : { "Dallas", "Houston", "Portland", "Seattle", "Memphis", "Fargo", "Tulsa" })
            out << "Fact: the capital of the state containing " << city << " is\n"
                << "The city of " << city << " lies in a state.\n";
    }
    cs::features::BuildOptions options;
    options.basis = "neurons";
    options.maxTokens = 0;
    options.contextLength = 24;
    options.batchContexts = 8;
    options.coactivations = false;
    const std::string db = (fs::path(m_modelFolder.toStdString()) / "features" / "neurons.db").string();
    cs::features::build(m_model, nullptr, corpus.toStdString(), db, options);
    QCOMPARE(cs::features::findUnitStore(m_modelFolder.toStdString(), "neurons"), db);

    // The next trace finds it.
    QVERIFY(QMetaObject::invokeMethod(item("traceButton"), "clicked"));
    settle();
    QTRY_VERIFY_WITH_TIMEOUT(m_neurons->hasUnitStore(), 10000);
    const auto store = cs::features::FeatureStore::open(db);
    const QString id = someNeuronId();
    const auto& node = m_explorer->graph()->nodes[size_t(m_explorer->indexOf(id.toStdString()))];
    QVERIFY(store->has(node.layer, node.feature));
    const auto record = store->card(node.layer, node.feature);
    m_explorer->select(id);
    settle();
    QTRY_VERIFY_WITH_TIMEOUT(m_explorer->featureCard()->hasRecord(), 10000);
    auto* card = m_explorer->featureCard();
    QCOMPARE(card->layer(), int(node.layer));
    QCOMPARE(card->feature(), int(node.feature));
    QVERIFY(near(card->actMax(), record.actMax, 1e-6));
    QCOMPARE(card->activeTokens(), qint64(record.activeTokens));
    QCOMPARE(card->examples()->rowCount() > 0, !record.top.empty());
    if (!record.top.empty()) {
        const QVariantList ids
            = card->examples()->data(card->examples()->index(0), cs::app::ExampleListModel::TokenIdsRole).toList();
        QCOMPARE(ids.size(), int(record.top.front().tokens.size()));
        for (int i = 0; i < ids.size(); ++i)
            QCOMPARE(ids[i].toLongLong(), qint64(record.top.front().tokens[size_t(i)]));
    }
    QVERIFY(m_neurons->cardNote().isEmpty());
    QVERIFY(item("featureCard")->isVisible());
    QVERIFY(!item("cardNote")->isVisible());
    QVERIFY(!item("globalWeights")->isVisible());
    QVERIFY(m_explorer->cardTitle().startsWith(QStringLiteral("neuron L")));
    QCOMPARE(card->title(), QStringLiteral("neuron L%1 #%2").arg(node.layer).arg(node.feature));
    QCOMPARE(card->noun(), QStringLiteral("neuron"));
}

void TestGuiNeurons::curveIsEvaluateCircuits()
{
    QObject* tabs = item("rightTabs");
    tabs->setProperty("currentIndex", 4);
    QTest::qWait(50);
    QQuickItem* button = item("curveButton");
    QVERIFY(button && button->isVisible() && button->isEnabled());
    // Cancelled: the window says so and shows no curve (evaluateCircuits checks after each item).
    QVERIFY(QMetaObject::invokeMethod(button, "clicked"));
    QVERIFY(m_neurons->computingCurve());
    QVERIFY(item("cancelCurveButton")->isVisible());
    QVERIFY(QMetaObject::invokeMethod(item("cancelCurveButton"), "clicked"));
    settle();
    QCOMPARE(m_neurons->curveText(), QStringLiteral("Curve cancelled"));
    QVERIFY(m_neurons->curve().empty());
    QVERIFY(!item("curvePlot")->isVisible());

    QVERIFY(QMetaObject::invokeMethod(button, "clicked"));
    QVERIFY(m_neurons->computingCurve());
    settle();
    QVERIFY2(!m_neurons->curve().empty(), qPrintable(m_neurons->curveText()));

    const auto& ks = m_neurons->curveKsAsked();
    const int units = m_neurons->unitCount();
    const int mark = m_neurons->curveMark();
    QVERIFY(units > 0 && mark > 0 && mark <= units);
    QCOMPARE(ks.back(), int64_t(units));
    QVERIFY(std::find(ks.begin(), ks.end(), int64_t(mark)) != ks.end());
    // The engine on its own, the same task and k.
    cs::neurons::CurveOptions options;
    options.ks = ks;
    // The graph's method (the last trace's: the window's method field).
    const std::string method = m_explorer->graph()->metadata.extra["neuron_trace"]["method"].get<std::string>();
    QCOMPARE(QString::fromStdString(method), m_neurons->method());
    options.attribution.method = cs::neurons::methodFromName(method);
    const auto curve = cs::neurons::evaluateCircuits(
        *m_model, { { kPrompt.toStdString(), " Austin", kCounterfactual.toStdString(), " Sal" } }, options);
    QCOMPARE(m_neurons->curve().size(), curve.points.size());
    for (size_t i = 0; i < curve.points.size(); ++i) {
        QCOMPARE(m_neurons->curve()[i].k, curve.points[i].k);
        QVERIFY(near(m_neurons->curve()[i].faithfulness, curve.points[i].faithfulness, 1e-4));
        QVERIFY(near(m_neurons->curve()[i].completeness, curve.points[i].completeness, 1e-4));
    }
    QCOMPARE(m_neurons->curvePoints().size(), int(curve.points.size()));
    // The plot is drawn.
    QTest::qWait(100);
    QQuickItem* plot = item("curvePlot");
    QVERIFY(plot && plot->isVisible());
    const QImage frame = m_window->grabWindow();
    QVERIFY(inkPixels(frame, plot) > 200);
    // The marker follows pruning.
    const double threshold = m_explorer->nodeThreshold();
    m_explorer->setNodeThreshold(0.5);
    QVERIFY(m_neurons->curveMark() <= mark);
    m_explorer->setNodeThreshold(threshold);
    tabs->setProperty("currentIndex", 0);
}

void TestGuiNeurons::sessionReopensAsANeuronGraph()
{
    const auto saved = m_explorer->graph();
    const QString id = someNeuronId();
    const auto& labelled = saved->nodes[size_t(m_explorer->indexOf(id.toStdString()))];
    // A neuron's label is the neuron's, not the transcoder feature's of the same numbers.
    m_explorer->setLabel(id, QStringLiteral("a neuron of mine"));
    QCOMPARE(m_explorer->captionFor(id), QStringLiteral("a neuron of mine"));
    const std::string key = "neurons/" + std::to_string(labelled.layer) + ":" + std::to_string(labelled.feature);
    QCOMPARE(m_explorer->state().labels.count(key), size_t(1));
    QCOMPARE(m_explorer->state().labels.count(std::to_string(labelled.layer) + ":" + std::to_string(labelled.feature)),
        size_t(0));
    m_explorer->pinNodes({ id });
    m_explorer->select(id);
    settle();
    const QString path = m_dir.filePath(QStringLiteral("neurons.circuitscope.json"));
    QVERIFY2(m_explorer->files()->saveSession(path), qPrintable(m_explorer->message()));

    // Another graph, in the transcoder basis.
    QVERIFY(QMetaObject::invokeMethod(item("basisCombo"), "activated", Q_ARG(int, 0)));
    QVERIFY(QMetaObject::invokeMethod(item("traceButton"), "clicked"));
    settle();
    QVERIFY(m_explorer->graph()->metadata.basis.empty());
    QVERIFY(!m_neurons->graphInUnits());
    QCOMPARE(m_explorer->state().labels.count(key), size_t(1)); // kept, for the neuron graph
    for (int64_t i = m_explorer->graph()->ranges().features.begin; i < m_explorer->graph()->ranges().features.end; ++i)
        QVERIFY(m_explorer->captionFor(QString::fromStdString(cs::graph::nodeId(*m_explorer->graph(), i)))
            != QStringLiteral("a neuron of mine"));

    QVERIFY2(m_explorer->files()->openFile(path), qPrintable(m_explorer->message()));
    settle();
    const auto opened = m_explorer->graph();
    QCOMPARE(QString::fromStdString(opened->metadata.basis), QStringLiteral("neurons"));
    QCOMPARE(opened->size(), saved->size());
    for (int64_t i = 0; i < saved->size(); ++i) {
        QCOMPARE(opened->nodes[size_t(i)].feature, saved->nodes[size_t(i)].feature);
        QCOMPARE(opened->nodes[size_t(i)].layer, saved->nodes[size_t(i)].layer);
    }
    QCOMPARE(m_explorer->selectedId(), id);
    QCOMPARE(m_explorer->selectedKind(), QStringLiteral("neuron"));
    QVERIFY(m_explorer->selectedTitle().startsWith(QStringLiteral("neuron L")));
    QVERIFY(m_neurons->graphInUnits());
    QCOMPARE(m_explorer->captionFor(id), QStringLiteral("a neuron of mine"));
    // Interventions work on it again: the model's units, as the engine computes them.
    QTRY_VERIFY_WITH_TIMEOUT(m_explorer->interventionsAvailable(), 30000);
    const auto& node = opened->nodes[size_t(m_explorer->indexOf(id.toStdString()))];
    QVERIFY(m_explorer->interventions()->add(id, QStringLiteral("ablate")) >= 0);
    settle();
    const auto expected = cs::neurons::intervene(*m_model, m_ids, cs::neurons::NodeKind::Neurons,
        { cs::intervention::FeatureEdit { node.layer, node.position, node.feature, cs::intervention::Op::Set, 0 } },
        m_explorer->settings()->topK());
    QCOMPARE(m_explorer->interventions()->topAfter(), QString::fromStdString(expected.after.front().token));
    for (const auto& row : m_explorer->interventions()->outcome()->rows())
        if (row.rankAfter == 0)
            QVERIFY(near(row.probAfter, expected.after.front().prob, 1e-4));
    m_explorer->interventions()->clear();
    settle();
}

QTEST_MAIN(TestGuiNeurons)
#include "tst_gui_neurons.moc"
