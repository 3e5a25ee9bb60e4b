// Global weights in the explorer (issue 19), through the real window (Main.qml) offscreen on
// tinyworld, each number checked against the engine called here on its own:
//  - the feature card's partners are weights::partners for the same feature and kind, and the
//    kind buttons re-rank them; clicking a partner row shows that feature's card (its node when
//    the graph holds it, else the card on its own);
//  - the token plots are embeddingToFeatures / featureToLogits of the chosen tokens, and a text
//    that is not one token says so;
//  - a sweep started from the Sweeps tab gives the operand plot the grid sweep::sweep gives, and
//    the drawn heat map's brightest cell is the grid's largest;
//  - bad sweep input is refused with a message; a large sweep cancelled from its button stops,
//    the window kept handling events while it ran, and it works afterwards.

#include "appcontroller.h"
#include "explorer_window.h"
#include "explorercontroller.h"
#include "explorerweights.h"
#include "mainwindow.h"
#include "operandplot.h"

#include <cs/engine.h>
#include <cs/features.h>
#include <cs/model.h>
#include <cs/sweep.h>
#include <cs/transcoder.h>
#include <cs/weights.h>

#include <ATen/ATen.h>

#include <QAbstractItemModelTester>
#include <QImage>
#include <QQuickItem>
#include <QQuickWindow>
#include <QTemporaryDir>
#include <QTest>
#include <QTimer>

#include <cmath>
#include <memory>

namespace {

// The feature the card tests use: "sum in 130..139", fired on calc prompts (tinyworld's L3 #103).
constexpr int kLayer = 3;
constexpr int kFeature = 103;

bool near(double a, double b)
{
    return std::abs(a - b) <= 1e-5 * std::max(1.0, std::abs(b));
}

double luminance(const QColor& c)
{
    return 0.2126 * c.redF() + 0.7152 * c.greenF() + 0.0722 * c.blueF();
}

} // namespace

class TestGuiWeights : public QObject {
    Q_OBJECT
private Q_SLOTS:
    void initTestCase();
    void cleanupTestCase();
    void partnersAreTheEngines();
    void clickingAPartnerShowsItsCard();
    void tokenPlotsAreTheEngines();
    void sweepFromTheWindowGivesTheOperandPlot();
    void badSweepInputIsRefused();
    void cancellingStopsALargeSweep();
    void storeWithoutStatisticsRanksByVirtualWeight();

private:
    void settle();
    // Waits for the partner lists of the shown feature.
    void waitForPartners();
    QQuickItem* item(const char* name) const { return cs::app::findItem(m_window, QLatin1String(name)); }
    void compareSide(
        const cs::app::PartnerListModel& model, const cs::weights::Partners& expected, cs::weights::Kind kind);

    cs::test::ExplorerWindow m_main;
    cs::app::AppController* m_app = nullptr;
    cs::app::ExplorerController* m_explorer = nullptr;
    cs::app::ExplorerWeights* m_weights = nullptr;
    QQuickWindow* m_window = nullptr;

    // The engine on its own.
    std::shared_ptr<const cs::model::Model> m_model;
    std::shared_ptr<const cs::transcoder::TranscoderSet> m_set;
    std::unique_ptr<cs::features::FeatureStore> m_store;
};

void TestGuiWeights::initTestCase()
{
    cs::test::recordQmlWarnings();
    QVERIFY2(m_main.open(QSize(1600, 1000)), "Main.qml did not load or show");
    m_app = m_main.app;
    m_explorer = m_main.explorer;
    m_weights = m_explorer->weights();
    m_window = m_main.window;
    QTRY_VERIFY_WITH_TIMEOUT(m_explorer->hasGraph(), 120000);
    settle();
    new QAbstractItemModelTester(m_weights->upstream(), QAbstractItemModelTester::FailureReportingMode::QtTest, this);
    new QAbstractItemModelTester(m_weights->downstream(), QAbstractItemModelTester::FailureReportingMode::QtTest, this);

    auto handle = cs::ModelHandle::open(cs::kDefaultModel, "cpu");
    m_model = handle->model();
    cs::transcoder::TranscoderSet::LoadOptions options;
    options.device = "cpu";
    const std::string setFolder = cs::transcoder::resolveTranscoderFolder(m_model->folder(), "clt");
    m_set = cs::transcoder::TranscoderSet::load(setFolder, options);
    m_store = cs::features::FeatureStore::open(cs::features::findStore(m_model->folder(), setFolder));
    QVERIFY(m_store->hasCoactivations());
}

void TestGuiWeights::cleanupTestCase()
{
    if (m_explorer)
        m_explorer->files()->finishSession();
    m_main.engine.reset();
    QVERIFY2(cs::test::qmlWarnings().isEmpty(), qPrintable(cs::test::qmlWarnings().join('\n')));
}

void TestGuiWeights::settle()
{
    QTRY_VERIFY_WITH_TIMEOUT(!m_app->busy() && !m_explorer->isTracing() && !m_weights->isSweeping(), 120000);
    m_explorer->waitForIdle();
    QTest::qWait(50);
}

void TestGuiWeights::waitForPartners()
{
    settle();
    QTRY_VERIFY_WITH_TIMEOUT(!m_weights->isLoadingPartners(), 30000);
}

void TestGuiWeights::compareSide(
    const cs::app::PartnerListModel& model, const cs::weights::Partners& expected, cs::weights::Kind kind)
{
    QCOMPARE(model.rowCount(), int(expected.partners.size()));
    for (int i = 0; i < model.rowCount(); ++i) {
        const QModelIndex index = model.index(i);
        const cs::weights::Partner& p = expected.partners[size_t(i)];
        QCOMPARE(model.data(index, cs::app::PartnerListModel::LayerRole).toInt(), int(p.layer));
        QCOMPARE(model.data(index, cs::app::PartnerListModel::FeatureRole).toInt(), int(p.feature));
        QVERIFY(near(model.data(index, cs::app::PartnerListModel::WeightRole).toDouble(), p.weight(kind)));
        QVERIFY(near(model.data(index, cs::app::PartnerListModel::VirtualRole).toDouble(), p.virtualWeight));
        QCOMPARE(model.data(index, cs::app::PartnerListModel::CoactivationsRole).toLongLong(),
            p.statistics ? qint64(p.coactivations) : qint64(-1));
    }
}

void TestGuiWeights::partnersAreTheEngines()
{
    QVERIFY(m_explorer->showFeature(kLayer, kFeature));
    waitForPartners();
    QCOMPARE(m_explorer->cardLayer(), kLayer);
    QCOMPARE(m_explorer->cardFeature(), kFeature);
    QCOMPARE(m_weights->kind(), QStringLiteral("twera")); // the default
    QVERIFY(m_weights->statisticsAvailable());
    QVERIFY(item("globalWeights") && item("globalWeights")->isVisible());

    std::vector<int> firstByKind;
    for (const auto kind : { cs::weights::Kind::Twera, cs::weights::Kind::Era, cs::weights::Kind::Virtual }) {
        const QString name = QString::fromLatin1(cs::weights::kindName(kind));
        // The kind's button, as a user presses it.
        QQuickItem* button = item(qPrintable(QStringLiteral("partnerKind_") + name));
        QVERIFY(button && button->isEnabled());
        QVERIFY(QMetaObject::invokeMethod(button, "clicked"));
        waitForPartners();
        QCOMPARE(m_weights->shownKind(), name);
        const auto up = cs::weights::partners(*m_model, *m_set, m_store.get(), kLayer, kFeature,
            cs::weights::Direction::Up, kind, cs::app::ExplorerWeights::kTopPartners);
        const auto down = cs::weights::partners(*m_model, *m_set, m_store.get(), kLayer, kFeature,
            cs::weights::Direction::Down, kind, cs::app::ExplorerWeights::kTopPartners);
        QVERIFY(!up.partners.empty());
        compareSide(*m_weights->upstream(), up, kind);
        compareSide(*m_weights->downstream(), down, kind);
        QCOMPARE(m_weights->upCoactivating(), qint64(up.coactivating));
        QCOMPARE(m_weights->upKept(), qint64(up.kept));
        // The rows the card shows are the model's.
        QTRY_COMPARE(item("partnerRepeater")->property("count").toInt(), int(up.partners.size()));
        firstByKind.push_back(int(up.partners[0].layer * 100000 + up.partners[0].feature));
        if (kind != cs::weights::Kind::Virtual) {
            // Ranked by |weight| of the kind, largest first.
            for (size_t i = 1; i < up.partners.size(); ++i)
                QVERIFY(std::abs(up.partners[i - 1].weight(kind)) >= std::abs(up.partners[i].weight(kind)));
        }
    }
    // Virtual weights rank other partners first than TWERA does (the store's statistics count).
    QVERIFY(firstByKind[0] != firstByKind[2] || m_weights->upstream()->rows().size() > 1);
    const auto twera = cs::weights::partners(*m_model, *m_set, m_store.get(), kLayer, kFeature,
        cs::weights::Direction::Up, cs::weights::Kind::Twera, cs::app::ExplorerWeights::kTopPartners);
    const auto virt = cs::weights::partners(*m_model, *m_set, m_store.get(), kLayer, kFeature,
        cs::weights::Direction::Up, cs::weights::Kind::Virtual, cs::app::ExplorerWeights::kTopPartners);
    bool reranked = false;
    for (size_t i = 0; i < std::min(twera.partners.size(), virt.partners.size()); ++i)
        reranked |= twera.partners[i].feature != virt.partners[i].feature
            || twera.partners[i].layer != virt.partners[i].layer;
    QVERIFY2(reranked, "TWERA and virtual weight gave the same order");
    QVERIFY(QMetaObject::invokeMethod(item("partnerKind_twera"), "clicked"));
    waitForPartners();
    QCOMPARE(m_weights->shownKind(), QStringLiteral("twera"));
    qInfo("partners of L3 #103 in the window (TWERA, up and down, top %d): %.2f ms",
        int(cs::app::ExplorerWeights::kTopPartners), m_weights->partnersMs());
}

void TestGuiWeights::clickingAPartnerShowsItsCard()
{
    QVERIFY(m_explorer->showFeature(kLayer, kFeature));
    waitForPartners();
    QVERIFY(m_weights->upstream()->rowCount() > 0);
    const auto partner = m_weights->upstream()->rows().front().partner;

    // The first row of the list, scrolled into view and clicked.
    QQuickItem* row = nullptr;
    for (QQuickItem* candidate : item("partnerList")->childItems())
        if (candidate->objectName() == QLatin1String("partnerRow") && candidate->isVisible()
            && candidate->property("index").toInt() == 0)
            row = candidate;
    QVERIFY(row);
    QVERIFY(QMetaObject::invokeMethod(
        item("inspector"), "scrollToItem", Q_ARG(QVariant, QVariant::fromValue<QObject*>(row))));
    QTest::qWait(50);
    const QPointF center = row->mapToScene(QPointF(row->width() * 0.3, row->height() / 2));
    QTest::mouseClick(m_window, Qt::LeftButton, {}, center.toPoint());
    waitForPartners();
    QCOMPARE(m_explorer->cardLayer(), int(partner.layer));
    QCOMPARE(m_explorer->cardFeature(), int(partner.feature));
    // Its card from the store; its node when the graph holds the feature, on its own otherwise.
    QTRY_VERIFY_WITH_TIMEOUT(m_explorer->featureCard()->hasRecord()
            && m_explorer->featureCard()->layer() == int(partner.layer)
            && m_explorer->featureCard()->feature() == int(partner.feature),
        10000);
    bool inGraph = false;
    const auto graph = m_explorer->graph();
    for (const auto& node : graph->nodes)
        inGraph |= node.kind == cs::graph::NodeKind::Feature && node.layer == partner.layer
            && node.feature == partner.feature;
    QCOMPARE(m_explorer->cardOnly(), !inGraph);
    QCOMPARE(m_explorer->selectedId().isEmpty(), !inGraph);
    QVERIFY(item("inspectorTitle")
                ->property("text")
                .toString()
                .startsWith(QStringLiteral("L%1 #%2").arg(partner.layer).arg(partner.feature))
        || inGraph);

    // A feature the graph holds: its node is selected.
    int64_t held = -1;
    for (int64_t i = graph->ranges().features.begin; i < graph->ranges().features.end && held < 0; ++i)
        held = i;
    const auto& node = graph->nodes[size_t(held)];
    QVERIFY(m_explorer->showFeature(int(node.layer), int(node.feature)));
    settle();
    QVERIFY(!m_explorer->cardOnly());
    QCOMPARE(m_explorer->selectedKind(), QStringLiteral("feature"));
    QCOMPARE(m_explorer->selectedLayer(), int(node.layer));
    QCOMPARE(m_explorer->cardFeature(), int(node.feature));
    // Out of range: refused.
    QVERIFY(!m_explorer->showFeature(0, 1 << 30));

    // A card on its own takes a label like any feature's (one undo step).
    QVERIFY(m_explorer->showFeature(kLayer, kFeature));
    settle();
    QVERIFY(m_explorer->cardOnly()); // the Dallas graph does not hold "sum in 130..139"
    QTRY_VERIFY(m_explorer->featureCard()->hasRecord() && m_explorer->featureCard()->feature() == kFeature);
    m_explorer->featureCard()->commitLabel(QStringLiteral("sum in the 130s"));
    settle();
    const std::string key = cs::app::featureKey(kLayer, kFeature);
    QCOMPARE(QString::fromStdString(m_explorer->state().labels.at(key)), QStringLiteral("sum in the 130s"));
    QVERIFY(m_explorer->cardTitle().endsWith(QStringLiteral("sum in the 130s")));
    QVERIFY(m_explorer->cardOnly());
    m_explorer->undo();
    settle();
    QVERIFY(!m_explorer->state().labels.count(key));
}

void TestGuiWeights::tokenPlotsAreTheEngines()
{
    QVERIFY(m_explorer->showFeature(kLayer, kFeature));
    settle();
    // tinyworld's digits are single tokens without a space: the default is "0|1|...|9".
    QCOMPARE(m_weights->weightTokens(), QStringLiteral("0|1|2|3|4|5|6|7|8|9"));
    QQuickItem* field = item("weightTokensField");
    QVERIFY(field && field->isVisible());
    field->setProperty("text", QStringLiteral("0|1|9| Austin|+| 0"));
    QVERIFY(QMetaObject::invokeMethod(field, "accepted"));
    settle();
    QCOMPARE(m_weights->weightTokens(), QStringLiteral("0|1|9| Austin|+| 0"));
    const QVariantList rows = m_weights->tokenRows();
    QCOMPARE(rows.size(), 6);

    const at::Tensor ids = at::tensor(std::vector<int64_t> { kFeature }, at::kLong);
    const at::Tensor in = cs::weights::embeddingToFeatures(*m_model, *m_set, kLayer, ids).select(0, 0);
    const at::Tensor out = cs::weights::featureToLogits(*m_model, *m_set, kLayer, ids).select(0, 0);
    int valid = 0;
    for (const QVariant& v : rows) {
        const QVariantMap row = v.toMap();
        const auto encoded = m_model->tokenizer().encode(row.value("token").toString().toStdString(), false);
        QCOMPARE(row.value("valid").toBool(), encoded.size() == 1);
        if (encoded.size() != 1) {
            QVERIFY(!row.value("message").toString().isEmpty());
            continue;
        }
        ++valid;
        QCOMPARE(row.value("id").toLongLong(), qint64(encoded[0]));
        QVERIFY(near(row.value("input").toDouble(), in[encoded[0]].item<double>()));
        QVERIFY(near(row.value("output").toDouble(), out[encoded[0]].item<double>()));
    }
    QVERIFY(valid >= 4);
    // " 0" is two tokens in tinyworld: the plot says so inline.
    QVERIFY2(m_weights->tokenPlotText().contains(QStringLiteral("“ 0”")), qPrintable(m_weights->tokenPlotText()));
    QVERIFY(item("tokenPlotText")->isVisible());
    QVERIFY(item("tokenInputPlot")->isVisible() && item("tokenOutputPlot")->isVisible());
}

void TestGuiWeights::sweepFromTheWindowGivesTheOperandPlot()
{
    item("rightTabs")->setProperty("currentIndex", 3);
    item("sweepA")->setProperty("text", QStringLiteral("0..9"));
    item("sweepB")->setProperty("text", QStringLiteral("0..9"));
    QQuickItem* run = item("sweepButton");
    QVERIFY(run && run->isVisible() && run->isEnabled());
    QVERIFY(QMetaObject::invokeMethod(run, "clicked"));
    QTRY_VERIFY_WITH_TIMEOUT(!m_weights->isSweeping() && m_weights->hasSweep(), 60000);
    settle();
    QVERIFY2(!m_weights->findings().isEmpty(), qPrintable(m_weights->sweepText()));
    qInfo("%s", qPrintable(m_weights->sweepText()));

    // The same sweep from the engine.
    cs::sweep::SweepOptions options;
    options.templateText = "calc: {a}+{b}=";
    for (int64_t v = 0; v < 10; ++v) {
        options.a.push_back(v);
        options.b.push_back(v);
    }
    const cs::sweep::SweepResult expected = cs::sweep::sweep(*m_model, *m_set, options);
    const auto ranked = cs::sweep::rank(expected, cs::app::ExplorerWeights::kTopFindings);
    QCOMPARE(m_weights->findings().size(), int(ranked.size()));
    const QVariantMap top = m_weights->findings().front().toMap();
    QCOMPARE(top.value("layer").toInt(), int(ranked[0].layer));
    QCOMPARE(top.value("feature").toInt(), int(ranked[0].feature));
    QCOMPARE(top.value("structure").toString(), QString::fromLatin1(cs::sweep::structureName(ranked[0].structure)));

    // Clicking the top finding shows its card with the operand plot.
    QQuickItem* list = item("sweepFindings");
    QTRY_VERIFY(list->property("count").toInt() > 0);
    QQuickItem* first = nullptr;
    QMetaObject::invokeMethod(list, "itemAtIndex", Q_RETURN_ARG(QQuickItem*, first), Q_ARG(int, 0));
    QVERIFY(first);
    const QPointF at = first->mapToScene(QPointF(first->width() / 2, first->height() / 2));
    QTest::mouseClick(m_window, Qt::LeftButton, {}, at.toPoint());
    settle();
    QCOMPARE(item("rightTabs")->property("currentIndex").toInt(), 0);
    const int64_t layer = ranked[0].layer, feature = ranked[0].feature;
    QCOMPARE(m_explorer->cardLayer(), int(layer));
    QCOMPARE(m_explorer->cardFeature(), int(feature));
    QTRY_VERIFY(m_weights->hasOperandPlot());
    const at::Tensor grid = expected.activations[size_t(layer)].select(2, feature).contiguous(); // [10, 10]
    const std::vector<float>& shown = m_weights->operandValues();
    QCOMPARE(int64_t(shown.size()), grid.numel());
    int64_t argmax = 0, argmin = 0;
    for (int64_t k = 0; k < grid.numel(); ++k) {
        const double want = grid.view({ -1 })[k].item<double>();
        QVERIFY2(near(shown[size_t(k)], want),
            qPrintable(QStringLiteral("cell %1: %2 vs %3").arg(k).arg(shown[size_t(k)]).arg(want)));
        if (shown[size_t(k)] > shown[size_t(argmax)])
            argmax = k;
        if (shown[size_t(k)] < shown[size_t(argmin)])
            argmin = k;
    }
    QVERIFY(shown[size_t(argmax)] > shown[size_t(argmin)]);

    // The drawn heat map: the largest cell is the brightest pixel of the cells, the smallest the darkest.
    auto* plot = qobject_cast<cs::app::OperandPlot*>(item("operandPlot"));
    QVERIFY(plot && plot->isVisible());
    QVERIFY(QMetaObject::invokeMethod(
        item("inspector"), "scrollToItem", Q_ARG(QVariant, QVariant::fromValue<QObject*>(item("operandTitle")))));
    QTest::qWait(200);
    const QImage frame = m_window->grabWindow();
    const qreal dpr = frame.devicePixelRatio();
    double brightest = -1, darkest = 2;
    int64_t brightestCell = -1;
    std::vector<double> lum(size_t(grid.numel()));
    for (int i = 0; i < 10; ++i)
        for (int j = 0; j < 10; ++j) {
            const QPointF p = plot->mapToScene(plot->cellCenter(i, j)) * dpr;
            QVERIFY(frame.rect().contains(p.toPoint()));
            const double l = luminance(frame.pixelColor(p.toPoint()));
            lum[size_t(i * 10 + j)] = l;
            if (l > brightest) {
                brightest = l;
                brightestCell = i * 10 + j;
            }
            darkest = std::min(darkest, l);
        }
    QVERIFY2(std::abs(lum[size_t(argmax)] - brightest) < 1e-6,
        qPrintable(QStringLiteral("the brightest cell is %1, the largest %2").arg(brightestCell).arg(argmax)));
    QVERIFY(std::abs(lum[size_t(argmin)] - darkest) < 1e-6);
    QVERIFY(brightest - darkest > 0.5); // viridis: dark purple to yellow
}

void TestGuiWeights::badSweepInputIsRefused()
{
    const auto before = m_weights->sweepResult();
    m_weights->startSweep(QStringLiteral("calc: {a}+="), QStringLiteral("0..9"), QStringLiteral("0..9"), -1);
    QVERIFY(!m_weights->isSweeping());
    QVERIFY2(m_weights->sweepText().contains(QStringLiteral("{b}")), qPrintable(m_weights->sweepText()));
    m_weights->startSweep(QStringLiteral("calc: {a}+{b}="), QStringLiteral("9..0"), QStringLiteral("0..9"), -1);
    QVERIFY(!m_weights->isSweeping());
    QVERIFY2(m_weights->sweepText().contains(QStringLiteral("empty")), qPrintable(m_weights->sweepText()));
    m_weights->startSweep(QStringLiteral("calc: {a}+{b}="), QStringLiteral("0..9"), QStringLiteral("x"), -1);
    QVERIFY(!m_weights->isSweeping());
    QVERIFY2(m_weights->sweepText().startsWith(QStringLiteral("b:")), qPrintable(m_weights->sweepText()));
    // A position outside the prompts: the engine's message.
    m_weights->startSweep(QStringLiteral("calc: {a}+{b}="), QStringLiteral("0..2"), QStringLiteral("0..2"), 60);
    settle();
    QVERIFY(!m_weights->sweepText().isEmpty() && !m_weights->sweepText().startsWith(QStringLiteral("“calc")));
    QCOMPARE(m_weights->sweepResult(), before); // the last sweep stays
    QString error;
    QCOMPARE(cs::app::ExplorerWeights::parseRange(QStringLiteral("3, 5,8"), error), (std::vector<int64_t> { 3, 5, 8 }));
    QCOMPARE(cs::app::ExplorerWeights::parseRange(QStringLiteral("2..4"), error), (std::vector<int64_t> { 2, 3, 4 }));
}

void TestGuiWeights::cancellingStopsALargeSweep()
{
    const auto before = m_weights->sweepResult();
    QVERIFY(before);
    item("rightTabs")->setProperty("currentIndex", 3);
    // A huge grid: cut to what the window runs, and said so.
    item("sweepA")->setProperty("text", QStringLiteral("0..999"));
    item("sweepB")->setProperty("text", QStringLiteral("0..99"));
    int ticks = 0;
    QTimer timer;
    connect(&timer, &QTimer::timeout, [&ticks] { ++ticks; });
    timer.start(10);
    QVERIFY(QMetaObject::invokeMethod(item("sweepButton"), "clicked"));
    QVERIFY(m_weights->isSweeping());
    QVERIFY2(m_weights->sweepText().contains(QStringLiteral("capped to a 0..199 × b 0..99")),
        qPrintable(m_weights->sweepText()));
    QTRY_VERIFY_WITH_TIMEOUT(m_weights->sweepProgress() > 0, 60000);
    QQuickItem* progress = item("sweepProgress");
    QVERIFY(progress && progress->isVisible());
    QVERIFY(m_weights->isSweeping()); // 20,000 prompts: far from done after the first batch
    QQuickItem* cancel = item("sweepCancelButton");
    QVERIFY(cancel->isEnabled());
    const int ticksWhileRunning = ticks;
    const QPointF at = cancel->mapToScene(QPointF(cancel->width() / 2, cancel->height() / 2));
    QTest::mouseClick(m_window, Qt::LeftButton, {}, at.toPoint());
    QTRY_VERIFY_WITH_TIMEOUT(!m_weights->isSweeping(), 60000);
    const double stoppedAt = m_weights->sweepProgress();
    QVERIFY2(m_weights->sweepText().contains(QStringLiteral("cancelled")), qPrintable(m_weights->sweepText()));
    QVERIFY(stoppedAt < 1);
    // The event loop ran while the engine swept (the GUI thread was never blocked).
    QVERIFY(ticksWhileRunning > 0);
    QCOMPARE(m_weights->sweepResult(), before); // the cancelled one left nothing behind
    QVERIFY(!cancel->isEnabled());
    QVERIFY(item("sweepButton")->isEnabled());

    // The window works afterwards: partners arrive, and a small sweep runs to its end.
    QVERIFY(m_explorer->showFeature(kLayer, kFeature));
    waitForPartners();
    QVERIFY(m_weights->upstream()->rowCount() > 0);
    item("sweepA")->setProperty("text", QStringLiteral("0..3"));
    item("sweepB")->setProperty("text", QStringLiteral("0..3"));
    QVERIFY(QMetaObject::invokeMethod(item("sweepButton"), "clicked"));
    QTRY_VERIFY_WITH_TIMEOUT(!m_weights->isSweeping(), 60000);
    QVERIFY(m_weights->sweepResult() != before);
    QCOMPARE(m_weights->sweepResult()->prompts, int64_t(16));
    item("rightTabs")->setProperty("currentIndex", 0);
    settle();
}

void TestGuiWeights::storeWithoutStatisticsRanksByVirtualWeight()
{
    // A store of the same shape with no co-activation statistics (nor cards).
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const QString path = dir.filePath(QStringLiteral("plain.db"));
    {
        cs::features::StoreInfo info;
        info.model = "tinyworld";
        info.scan = "tinyworld/clt";
        info.nLayers = m_set->nLayers();
        info.nFeatures = m_set->nFeatures();
        info.contextLength = 64;
        auto plain = cs::features::FeatureStore::create(path.toStdString(), info);
        QVERIFY(!plain->hasCoactivations());
    }
    m_explorer->openFeatureStore(path);
    settle();
    QTRY_VERIFY_WITH_TIMEOUT(m_explorer->isReady(), 30000);
    QVERIFY(m_explorer->showFeature(kLayer, kFeature));
    waitForPartners();
    QCOMPARE(m_weights->kind(), QStringLiteral("twera")); // what was asked
    QVERIFY(!m_weights->statisticsAvailable());
    QCOMPARE(m_weights->shownKind(), QStringLiteral("virtual")); // what it could do
    QVERIFY2(m_weights->partnersText().contains(QStringLiteral("co-activation statistics")),
        qPrintable(m_weights->partnersText()));
    QVERIFY(item("partnersText")->isVisible());
    QVERIFY(!item("partnerKind_twera")->isEnabled() && !item("partnerKind_era")->isEnabled());
    QVERIFY(item("partnerKind_virtual")->isEnabled());
    const auto up = cs::weights::partners(*m_model, *m_set, nullptr, kLayer, kFeature, cs::weights::Direction::Up,
        cs::weights::Kind::Virtual, cs::app::ExplorerWeights::kTopPartners);
    compareSide(*m_weights->upstream(), up, cs::weights::Kind::Virtual);
    QCOMPARE(m_weights->upCoactivating(), qint64(-1));

    // The shipped store again: TWERA as asked.
    m_explorer->openFeatureStore(QString());
    settle();
    QTRY_VERIFY_WITH_TIMEOUT(m_explorer->isReady() && m_explorer->hasFeatureStore(), 30000);
    waitForPartners();
    QVERIFY(m_weights->statisticsAvailable());
    QCOMPARE(m_weights->shownKind(), QStringLiteral("twera"));
    QVERIFY(m_weights->partnersText().isEmpty());
}

QTEST_MAIN(TestGuiWeights)
#include "tst_gui_weights.moc"
