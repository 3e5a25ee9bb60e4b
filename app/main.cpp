// circuitscope: the attribution-graph explorer.
//   circuitscope [--model NAME_OR_FOLDER] [--device cpu|cuda|auto] [--prompt TEXT] [FILE]
//   circuitscope ... --screenshot OUT.png [--select NODE] [--pin IDS] [--group NAME=IDS]
//                [--intervene OP:TARGET[:VALUE]] [--perturb OP:TARGET[:VALUE]] [--validate N]
//                [--table] [--tab inspector|interventions|perturbation|validation|output|sweeps|circuit]
//                [--feature L:F] [--partners twera|era|virtual] [--weight-tokens "A|B|..."]
//                [--sweep TEMPLATE [--sweep-a 0..99] [--sweep-b 0..99] [--sweep-position P]]
//                [--scroll-to weights|operand-plot]
//                [--basis features|neurons [--method relp|ig] [--counterfactual TEXT] [--answer TEXT]
//                 [--counterfactual-answer TEXT] [--curve]]
//                [--size WxH] [--theme light|dark]        (render headless and exit)
//   circuitscope --bench                                   (the explorer's frame benchmark)
// FILE is a session (.circuitscope.json), a graph JSON or a .csgraph to open instead of
// tracing the start-up prompt.

#include "appcontroller.h"
#include "canvas/canvasbench.h"
#include "explorerengine.h"
#include "mainwindow.h"
#include "session/settings.h"

#include <cs/engine.h>
#include <cs/error.h>
#include <cs/model.h>

#include <QApplication>
#include <QCommandLineParser>
#include <QElapsedTimer>
#include <QImage>
#include <QQmlApplicationEngine>
#include <QQuickItem>
#include <QQuickWindow>
#include <QSGRendererInterface>
#include <QTimer>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <optional>
#include <utility>
#include <vector>

namespace {

// What --screenshot does to the window once the graph shows, before grabbing it.
struct Script {
    QString select;
    QStringList pins;
    std::vector<std::pair<QString, QStringList>> groups; // NAME, ids

    QStringList interventions; // OP:TARGET[:VALUE]
    QString perturb; // OP:TARGET[:VALUE]
    int validate = 0; // the top N nodes, ablated one at a time
    bool table = false; // the table of the interventions
    QString tab;

    QString feature; // L:F, the card to show (its node when the graph holds it)
    QString partners; // twera, era or virtual
    std::optional<QString> weightTokens; // the token plots' tokens
    QString sweep; // a template: run this sweep first
    QString sweepA = QStringLiteral("0..99"), sweepB = QStringLiteral("0..99");
    int sweepPosition = -1;
    QString scrollTo; // weights or operand-plot: scroll the inspector there before the grab
    bool curve = false; // compute the neuron graph's faithfulness / completeness curve
};

int tabIndex(const QString& tab)
{
    if (tab == QLatin1String("interventions") || tab == QLatin1String("perturbation")
        || tab == QLatin1String("validation"))
        return 1;
    if (tab == QLatin1String("output"))
        return 2;
    if (tab == QLatin1String("sweeps"))
        return 3;
    if (tab == QLatin1String("circuit"))
        return 4;
    return 0;
}

// The page of the interventions tab: edits, perturbation, validation.
int interventionPage(const QString& tab)
{
    return tab == QLatin1String("perturbation") ? 1 : tab == QLatin1String("validation") ? 2 : 0;
}

// OP:TARGET[:VALUE]. A supernode target is "supernode:NAME", so the value, when given, is the
// last part.
void parseEditSpec(const QString& spec, QString& op, QString& target, double& value)
{
    const QStringList parts = spec.split(QLatin1Char(':'));
    op = parts.value(0);
    target = parts.mid(1).join(QLatin1Char(':'));
    value = 0;
    if (parts.size() >= 3) {
        bool numeric = false;
        const double v = parts.last().toDouble(&numeric);
        if (numeric) {
            value = v;
            target = parts.mid(1, parts.size() - 2).join(QLatin1Char(':'));
        }
    }
}

// Applies the script; returns an error message or an empty string.
QString applyScript(cs::app::ExplorerController& explorer, QQuickWindow* window, const Script& script)
{
    if (!script.pins.isEmpty())
        explorer.pinNodes(script.pins);
    for (const auto& [name, ids] : script.groups)
        if (explorer.group(ids, name).isEmpty())
            return QStringLiteral("--group %1: %2").arg(name, explorer.message());
    for (const QString& spec : script.interventions) {
        QString op, target;
        double value = 0;
        parseEditSpec(spec, op, target, value);
        if (explorer.interventions()->add(target, op, value, {}) < 0)
            return QStringLiteral("--intervene %1: no such node or supernode").arg(spec);
    }
    if (!script.perturb.isEmpty()) {
        QString op, target;
        double value = 0;
        parseEditSpec(script.perturb, op, target, value);
        explorer.validation()->perturb(target, op, value);
    }
    if (script.validate > 0)
        explorer.validation()->validate(script.validate, QStringLiteral("ablate"));
    if (script.table)
        explorer.validation()->buildTable();
    if (!script.select.isEmpty()) {
        explorer.select(script.select);
        if (explorer.selectedId() != script.select)
            return QStringLiteral("--select %1: the graph has no such node").arg(script.select);
    }
    cs::app::ExplorerWeights* weights = explorer.weights();
    if (!script.partners.isEmpty()) {
        weights->setKind(script.partners);
        if (weights->kind() != script.partners)
            return QStringLiteral("--partners %1: %2").arg(script.partners, weights->partnersText());
    }
    if (script.weightTokens)
        weights->setWeightTokens(*script.weightTokens);
    if (!script.sweep.isEmpty()) {
        weights->startSweep(script.sweep, script.sweepA, script.sweepB, script.sweepPosition);
        if (!weights->isSweeping())
            return QStringLiteral("--sweep: %1").arg(weights->sweepText());
    }
    if (!script.feature.isEmpty()) {
        const QStringList lf = script.feature.split(QLatin1Char(':'));
        bool okLayer = false, okFeature = false;
        const int layer = lf.value(0).toInt(&okLayer), feature = lf.value(1).toInt(&okFeature);
        if (lf.size() != 2 || !okLayer || !okFeature || !explorer.showFeature(layer, feature))
            return QStringLiteral("--feature %1: name a feature of the transcoders as LAYER:INDEX").arg(script.feature);
    }
    if (script.curve) {
        explorer.neurons()->computeCurve();
        if (!explorer.neurons()->computingCurve())
            return QStringLiteral("--curve: %1").arg(explorer.neurons()->curveText());
    }
    if (!script.tab.isEmpty() && window) {
        QObject* tabs = cs::app::findItem(window, QStringLiteral("rightTabs"));
        if (!tabs)
            return QStringLiteral("--tab: the window has no tabs");
        tabs->setProperty("currentIndex", tabIndex(script.tab));
        if (QObject* pages = cs::app::findItem(window, QStringLiteral("interventionModes")))
            pages->setProperty("currentIndex", interventionPage(script.tab));
    }
    return {};
}

// The benchmark: traces the start-up prompt with the engine, runs the canvas benchmark
// (panning a synthetic 10k-node graph; re-prune plus redraw of the start-up graph's canvas),
// then times the same re-prune through the whole explorer window: a node-threshold move (the
// controller re-prunes, rebuilds the scene, the connections, the subgraph scores) and the
// next frame of the window.
int runBench(const QString& model, const QString& device)
{
    cs::app::LaunchOptions options;
    options.model = model;
    options.device = device;
    try {
        cs::model::initThreads();
        auto handle = cs::ModelHandle::open(model.toStdString(), device.toStdString());
        cs::app::ExplorerResources resources;
        cs::app::loadResources(resources, handle->model(), "clt");
        cs::app::TraceRequest request;
        request.prompt = cs::app::AppController::kStartupPrompt;
        const cs::app::TraceOutput traced = cs::app::traceGraph(resources, request);
        std::cout << "start-up graph: \"" << request.prompt << "\", " << traced.graph->size() << " nodes, traced in "
                  << traced.traceMs << " ms\n";
        cs::app::runCanvasBench(std::cout, traced.graph.get());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "circuitscope: %s\n", e.what());
        return 1;
    }

    QQmlApplicationEngine engine;
    cs::app::AppController* controller = cs::app::loadMainWindow(engine, options);
    QQuickWindow* window = cs::app::mainWindow(engine);
    if (!controller || !window)
        return 1;
    window->resize(1440, 900);
    cs::app::ExplorerController* explorer = controller->explorer();
    QElapsedTimer clock;
    clock.start();
    while (!(explorer->hasGraph() && !controller->busy()) && clock.elapsed() < 120000)
        QCoreApplication::processEvents(QEventLoop::AllEvents, 50);
    if (!explorer->hasGraph()) {
        std::fprintf(stderr, "circuitscope: the start-up graph did not arrive\n");
        return 1;
    }
    explorer->pinNodes({ QStringLiteral("3_918_12"), QStringLiteral("2_574_12") }); // scores of a subgraph too
    explorer->waitForIdle();
    window->grabWindow();
    std::vector<double> ms;
    for (int pass = 0; pass < 3; ++pass)
        for (int step = 0; step <= 13; ++step) {
            const double threshold = pass % 2 == 0 ? 0.95 - 0.05 * step : 0.30 + 0.05 * step;
            QElapsedTimer frame;
            frame.start();
            explorer->setNodeThreshold(threshold);
            QCoreApplication::processEvents();
            window->grabWindow(); // renders the frame synchronously (software backend offscreen)
            ms.push_back(double(frame.nsecsElapsed()) / 1e6);
        }
    std::sort(ms.begin(), ms.end());
    std::cout << "explorer window re-prune plus redraw (1440x900, start-up graph, " << ms.size()
              << " node-threshold moves 0.95..0.30..0.95): median " << ms[ms.size() / 2] << " ms, p95 "
              << ms[size_t(double(ms.size() - 1) * 0.95)] << " ms, max " << ms.back() << " ms (target <= 50 ms)\n";
    explorer->files()->finishSession();
    return 0;
}

// --screenshot and --bench render without a screen. With no display to reach (no DISPLAY, no
// WAYLAND_DISPLAY) and no platform chosen, Qt would try xcb and abort; use offscreen instead.
// Runs before the application object exists, so it reads argv itself (QCommandLineParser's
// spellings: "--screenshot FILE" and "--screenshot=FILE"; "--" ends the options).
void chooseHeadlessPlatform(int argc, char* argv[])
{
    if (!qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM") || !qEnvironmentVariableIsEmpty("DISPLAY")
        || !qEnvironmentVariableIsEmpty("WAYLAND_DISPLAY"))
        return;
    for (int i = 1; i < argc; ++i) {
        const QByteArray arg(argv[i]);
        if (arg == "--")
            return;
        if (arg == "--screenshot" || arg.startsWith("--screenshot=") || arg == "--bench") {
            qputenv("QT_QPA_PLATFORM", "offscreen");
            return;
        }
    }
}

} // namespace

int main(int argc, char* argv[])
{
    chooseHeadlessPlatform(argc, argv);
    QApplication app(argc, argv); // widgets for the file dialogs (filedialogs.h)
    // Names QSettings files and the window manager's idea of the program.
    QGuiApplication::setApplicationName(QStringLiteral("Circuitscope"));
    QGuiApplication::setOrganizationName(QStringLiteral("Circuitscope"));
    QGuiApplication::setOrganizationDomain(QStringLiteral("circuitscope.io"));
    QGuiApplication::setApplicationVersion(QStringLiteral(CS_VERSION));
    QGuiApplication::setDesktopFileName(QStringLiteral("io.circuitscope.Circuitscope"));

    QCommandLineParser parser;
    parser.setApplicationDescription(QStringLiteral("Attribution-graph explorer for language models"));
    parser.addHelpOption();
    parser.addVersionOption();
    parser.addPositionalArgument(QStringLiteral("file"),
        QStringLiteral("A session (.circuitscope.json), graph JSON or .csgraph to open instead of tracing."),
        QStringLiteral("[file]"));
    const QCommandLineOption modelOption(QStringList { QStringLiteral("m"), QStringLiteral("model") },
        QStringLiteral("A Hugging Face model folder, or the name of a shipped model (default: %1).")
            .arg(QLatin1String(cs::kDefaultModel)),
        QStringLiteral("name-or-folder"), QLatin1String(cs::kDefaultModel));
    const QCommandLineOption deviceOption(QStringList { QStringLiteral("d"), QStringLiteral("device") },
        QStringLiteral("Where the model runs: cpu, cuda or auto (default: auto)."), QStringLiteral("device"),
        QStringLiteral("auto"));
    const QCommandLineOption promptOption(QStringLiteral("prompt"),
        QStringLiteral("The prompt to trace at start-up (default: \"%1\").")
            .arg(QLatin1String(cs::app::AppController::kStartupPrompt)),
        QStringLiteral("text"));
    const QCommandLineOption screenshotOption(QStringLiteral("screenshot"),
        QStringLiteral("Render the window once the graph shows, save it as this PNG, and exit."),
        QStringLiteral("file.png"));
    const QCommandLineOption selectOption(QStringLiteral("select"),
        QStringLiteral("With --screenshot: select this node (a node id such as 3_918_12)."), QStringLiteral("node"));
    const QCommandLineOption pinOption(QStringLiteral("pin"),
        QStringLiteral("With --screenshot: pin these nodes (ids separated by commas)."), QStringLiteral("ids"));
    const QCommandLineOption groupOption(QStringLiteral("group"),
        QStringLiteral("With --screenshot: group nodes into a supernode, NAME=ID,ID,... (repeatable)."),
        QStringLiteral("name=ids"));
    const QCommandLineOption interveneOption(QStringLiteral("intervene"),
        QStringLiteral(
            "With --screenshot: add an intervention, OP:TARGET[:VALUE] with OP ablate, scale, inject or add and "
            "TARGET a node id or supernode:NAME (repeatable)."),
        QStringLiteral("op:target:value"));
    const QCommandLineOption perturbOption(QStringLiteral("perturb"),
        QStringLiteral("With --screenshot: the perturbation chart of OP:TARGET[:VALUE], OP ablate or scale."),
        QStringLiteral("spec"));
    const QCommandLineOption validateOption(QStringLiteral("validate"),
        QStringLiteral("With --screenshot: validate the graph on its N most influential features."),
        QStringLiteral("n"));
    const QCommandLineOption tableOption(
        QStringLiteral("table"), QStringLiteral("With --screenshot: make the table of the interventions' logits."));
    const QCommandLineOption tabOption(QStringLiteral("tab"),
        QStringLiteral("With --screenshot: the right-hand tab to show: inspector, interventions, perturbation, "
                       "validation, output, sweeps or circuit."),
        QStringLiteral("tab"));
    const QCommandLineOption featureOption(QStringLiteral("feature"),
        QStringLiteral("With --screenshot: show this feature's card, LAYER:INDEX (its node when the graph holds it)."),
        QStringLiteral("layer:index"));
    const QCommandLineOption partnersOption(QStringLiteral("partners"),
        QStringLiteral("With --screenshot: rank the card's partners by twera, era or virtual (default twera)."),
        QStringLiteral("kind"));
    const QCommandLineOption weightTokensOption(QStringLiteral("weight-tokens"),
        QStringLiteral("With --screenshot: the tokens of the card's weight plots, separated by | (default the "
                       "digits)."),
        QStringLiteral("tokens"));
    const QCommandLineOption sweepOption(QStringLiteral("sweep"),
        QStringLiteral("With --screenshot: run an operand sweep of this template (with {a} and {b}) first."),
        QStringLiteral("template"));
    const QCommandLineOption sweepAOption(QStringLiteral("sweep-a"),
        QStringLiteral("With --sweep: a's values, FROM..TO or a list (default 0..99)."), QStringLiteral("range"));
    const QCommandLineOption sweepBOption(QStringLiteral("sweep-b"),
        QStringLiteral("With --sweep: b's values, FROM..TO or a list (default 0..99)."), QStringLiteral("range"));
    const QCommandLineOption sweepPositionOption(QStringLiteral("sweep-position"),
        QStringLiteral("With --sweep: the token position read (default -1, the last)."), QStringLiteral("p"));
    const QCommandLineOption scrollToOption(QStringLiteral("scroll-to"),
        QStringLiteral("With --screenshot: scroll the inspector to the card's global weights (weights) or its operand "
                       "plot (operand-plot)."),
        QStringLiteral("section"));
    const QCommandLineOption figureOption(QStringLiteral("export-figure"),
        QStringLiteral("With --screenshot: also export the subgraph's figure (the pruned graph's when nothing is "
                       "pinned) to this .svg, .pdf or .png (PNG at the dpi setting, 300 by default)."),
        QStringLiteral("file"));
    const QCommandLineOption basisOption(QStringLiteral("basis"),
        QStringLiteral("Trace in this basis: features (the transcoder's, the default) or neurons (the model's MLP "
                       "neurons)."),
        QStringLiteral("basis"));
    const QCommandLineOption methodOption(QStringLiteral("method"),
        QStringLiteral("With --basis neurons: relp (the default) or ig (integrated gradients)."), QStringLiteral("m"));
    const QCommandLineOption counterfactualOption(QStringLiteral("counterfactual"),
        QStringLiteral("With --basis neurons: the counterfactual prompt (as many tokens as the prompt)."),
        QStringLiteral("text"));
    const QCommandLineOption answerOption(QStringLiteral("answer"),
        QStringLiteral("With --basis neurons: the answer whose logit is the metric, e.g. \" Austin\" (default: the "
                       "model's prediction)."),
        QStringLiteral("text"));
    const QCommandLineOption counterfactualAnswerOption(QStringLiteral("counterfactual-answer"),
        QStringLiteral("With --counterfactual: the metric is logit(answer) - logit(this) (default: the "
                       "counterfactual prompt's prediction)."),
        QStringLiteral("text"));
    const QCommandLineOption curveOption(QStringLiteral("curve"),
        QStringLiteral("With --screenshot and --basis neurons: compute the circuit's faithfulness / completeness "
                       "curve first (see --tab circuit)."));
    const QCommandLineOption sizeOption(
        QStringLiteral("size"), QStringLiteral("The window size, WxH."), QStringLiteral("WxH"));
    const QCommandLineOption themeOption(
        QStringLiteral("theme"), QStringLiteral("light or dark (saved as a setting)."), QStringLiteral("theme"));
    const QCommandLineOption benchOption(QStringLiteral("bench"),
        QStringLiteral("Run the explorer's benchmark offscreen (frame time while panning a 10,000-node graph; "
                       "re-prune plus redraw of the start-up graph), print the figures and exit."));
    for (const auto* option :
        { &modelOption, &deviceOption, &promptOption, &screenshotOption, &selectOption, &pinOption, &groupOption,
            &interveneOption, &perturbOption, &validateOption, &tableOption, &tabOption, &figureOption, &sizeOption,
            &themeOption, &benchOption, &featureOption, &partnersOption, &weightTokensOption, &sweepOption,
            &sweepAOption, &sweepBOption, &sweepPositionOption, &scrollToOption, &basisOption, &methodOption,
            &counterfactualOption, &answerOption, &counterfactualAnswerOption, &curveOption })
        parser.addOption(*option);
    parser.process(app);

    if (parser.isSet(benchOption))
        return runBench(parser.value(modelOption), parser.value(deviceOption));

    cs::app::LaunchOptions options;
    options.model = parser.value(modelOption);
    options.device = parser.value(deviceOption).toLower();
    if (options.device != QLatin1String("cpu") && options.device != QLatin1String("cuda")
        && options.device != QLatin1String("auto")) {
        std::fprintf(stderr, "circuitscope: --device must be cpu, cuda or auto, not \"%s\"\n",
            qPrintable(parser.value(deviceOption)));
        return 2;
    }
    const QString file = parser.positionalArguments().value(0);
    options.traceAtStartup = file.isEmpty();

    Script script;
    script.select = parser.value(selectOption);
    if (parser.isSet(pinOption))
        script.pins = parser.value(pinOption).split(QLatin1Char(','), Qt::SkipEmptyParts);
    for (const QString& spec : parser.values(groupOption)) {
        const int eq = spec.indexOf(QLatin1Char('='));
        if (eq <= 0) {
            std::fprintf(stderr, "circuitscope: --group takes NAME=ID,ID,...\n");
            return 2;
        }
        script.groups.emplace_back(spec.left(eq), spec.mid(eq + 1).split(QLatin1Char(','), Qt::SkipEmptyParts));
    }
    script.interventions = parser.values(interveneOption);
    script.tab = parser.value(tabOption);
    script.perturb = parser.value(perturbOption);
    script.validate = parser.value(validateOption).toInt();
    script.table = parser.isSet(tableOption);
    script.feature = parser.value(featureOption);
    script.partners = parser.value(partnersOption);
    if (parser.isSet(weightTokensOption))
        script.weightTokens = parser.value(weightTokensOption);
    script.sweep = parser.value(sweepOption);
    script.scrollTo = parser.value(scrollToOption);
    script.curve = parser.isSet(curveOption);
    const QString basis = parser.value(basisOption);
    if (!basis.isEmpty() && basis != QLatin1String("features") && basis != QLatin1String("neurons")) {
        std::fprintf(stderr, "circuitscope: --basis takes features or neurons\n");
        return 2;
    }
    const QString method = parser.value(methodOption);
    if (!method.isEmpty() && method != QLatin1String("relp") && method != QLatin1String("ig")) {
        std::fprintf(stderr, "circuitscope: --method takes relp or ig\n");
        return 2;
    }
    if (!script.scrollTo.isEmpty() && script.scrollTo != QLatin1String("weights")
        && script.scrollTo != QLatin1String("operand-plot")) {
        std::fprintf(stderr, "circuitscope: --scroll-to takes weights or operand-plot\n");
        return 2;
    }
    if (parser.isSet(sweepAOption))
        script.sweepA = parser.value(sweepAOption);
    if (parser.isSet(sweepBOption))
        script.sweepB = parser.value(sweepBOption);
    if (parser.isSet(sweepPositionOption)) {
        bool ok = false;
        script.sweepPosition = parser.value(sweepPositionOption).toInt(&ok);
        if (!ok) {
            std::fprintf(stderr, "circuitscope: --sweep-position takes an integer\n");
            return 2;
        }
    }

    const QString screenshot = parser.value(screenshotOption);
    if (!screenshot.isEmpty() && QGuiApplication::platformName() == QLatin1String("offscreen"))
        QQuickWindow::setGraphicsApi(QSGRendererInterface::Software); // offscreen has no OpenGL

    QQmlApplicationEngine engine;
    cs::app::AppController* controller = cs::app::loadMainWindow(engine, options);
    if (!controller)
        return 1;
    cs::app::ExplorerController* explorer = controller->explorer();
    // The basis and the neuron trace's options before the start-up trace runs.
    cs::app::ExplorerNeurons* neurons = explorer->neurons();
    if (!basis.isEmpty())
        neurons->setBasis(basis);
    if (!method.isEmpty())
        neurons->setMethod(method);
    neurons->setCounterfactual(parser.value(counterfactualOption));
    neurons->setAnswer(parser.value(answerOption));
    neurons->setCounterfactualAnswer(parser.value(counterfactualAnswerOption));
    if (parser.isSet(themeOption))
        explorer->settings()->setTheme(parser.value(themeOption));
    QQuickWindow* window = cs::app::mainWindow(engine);
    if (parser.isSet(sizeOption) && window) {
        const QStringList wh = parser.value(sizeOption).split(QLatin1Char('x'));
        if (wh.size() == 2 && wh[0].toInt() > 0 && wh[1].toInt() > 0)
            window->resize(wh[0].toInt(), wh[1].toInt());
    }
    if (parser.isSet(promptOption))
        controller->setPrompt(parser.value(promptOption));
    if (!file.isEmpty() && !explorer->files()->openFile(file) && !screenshot.isEmpty()) {
        std::fprintf(stderr, "circuitscope: %s\n", qPrintable(explorer->message()));
        return 1;
    }
    QObject::connect(&app, &QGuiApplication::aboutToQuit, explorer->files(), &cs::app::ExplorerFiles::finishSession);
    if (screenshot.isEmpty())
        return QGuiApplication::exec();

    // Headless rendering: wait until the model is open and the graph shows (or an error
    // does), apply the script, let everything it asked for arrive, then grab the window.
    QElapsedTimer clock;
    clock.start();
    QTimer poll;
    int exitCode = 0;
    bool scripted = false;
    QObject::connect(&poll, &QTimer::timeout, [&] {
        const bool failed = !controller->errorText().isEmpty() && !controller->loading() && !explorer->isTracing();
        const bool settled = !controller->loading() && !controller->busy() && !explorer->isTracing()
            && !explorer->neurons()->computingCurve() && (!controller->hasModel() || explorer->hasGraph() || failed)
            && (!controller->hasModel() || controller->prompt().isEmpty() || controller->isUpToDate());
        if (!settled && clock.elapsed() < 180000)
            return;
        if (!scripted && explorer->hasGraph()) {
            scripted = true;
            const QString error = applyScript(*explorer, window, script);
            if (!error.isEmpty()) {
                std::fprintf(stderr, "circuitscope: %s\n", qPrintable(error));
                exitCode = 1;
            }
            return; // let the results of the script arrive
        }
        poll.stop();
        explorer->waitForIdle();
        if (parser.isSet(figureOption)) {
            bool exported = false;
            QObject::connect(explorer->files(), &cs::app::ExplorerFiles::exportFinished,
                [&exported](bool ok, const QString&) { exported = ok; });
            explorer->files()->exportFigure(parser.value(figureOption),
                explorer->pinnedCount() > 0 ? QStringLiteral("subgraph") : QStringLiteral("graph"));
            explorer->waitForIdle();
            if (!exported) {
                std::fprintf(
                    stderr, "circuitscope: the figure was not exported: %s\n", qPrintable(explorer->message()));
                exitCode = 1;
            }
        }
        if (!script.scrollTo.isEmpty() && window) {
            const QString name = script.scrollTo == QLatin1String("operand-plot") ? QStringLiteral("operandTitle")
                                                                                  : QStringLiteral("globalWeights");
            QQuickItem* inspector = cs::app::findItem(window, QStringLiteral("inspector"));
            QQuickItem* target = cs::app::findItem(window, name);
            if (!inspector || !target || !target->isVisible()) {
                std::fprintf(stderr, "circuitscope: --scroll-to %s: the inspector does not show it\n",
                    qPrintable(script.scrollTo));
                exitCode = 1;
            } else {
                QMetaObject::invokeMethod(
                    inspector, "scrollToItem", Q_ARG(QVariant, QVariant::fromValue<QObject*>(target)));
            }
        }
        // Two frames: one for the last results, one for the items they resized.
        QTimer::singleShot(300, [&] {
            const QImage image = window ? window->grabWindow() : QImage();
            if (image.isNull() || !image.save(screenshot)) {
                std::fprintf(stderr, "circuitscope: could not save a screenshot to %s\n", qPrintable(screenshot));
                exitCode = 1;
            }
            if (!explorer->message().isEmpty())
                std::fprintf(stderr, "circuitscope: %s\n", qPrintable(explorer->message()));
            explorer->files()->finishSession();
            QGuiApplication::exit(exitCode);
        });
    });
    poll.start(100);
    return QGuiApplication::exec();
}
