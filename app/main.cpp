// circuitscope: the attribution-graph explorer.
//   circuitscope [--model NAME_OR_FOLDER] [--device cpu|cuda|auto]
//                [--prompt TEXT] [--screenshot OUT.png]   (render headless and exit)

#include "appcontroller.h"
#include "mainwindow.h"

#include <cs/engine.h>

#include <QCommandLineParser>
#include <QGuiApplication>
#include <QElapsedTimer>
#include <QImage>
#include <QQmlApplicationEngine>
#include <QQuickWindow>
#include <QSGRendererInterface>
#include <QTimer>

#include <cstdio>

int main(int argc, char* argv[])
{
    QGuiApplication app(argc, argv);
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
    const QCommandLineOption modelOption(QStringList { QStringLiteral("m"), QStringLiteral("model") },
        QStringLiteral("A Hugging Face model folder, or the name of a shipped model (default: %1).")
            .arg(QLatin1String(cs::kDefaultModel)),
        QStringLiteral("name-or-folder"), QLatin1String(cs::kDefaultModel));
    const QCommandLineOption deviceOption(QStringList { QStringLiteral("d"), QStringLiteral("device") },
        QStringLiteral("Where the model runs: cpu, cuda or auto (default: auto)."), QStringLiteral("device"),
        QStringLiteral("auto"));
    const QCommandLineOption promptOption(QStringLiteral("prompt"), QStringLiteral("A prompt to run at start-up."),
        QStringLiteral("text"));
    const QCommandLineOption screenshotOption(QStringLiteral("screenshot"),
        QStringLiteral("Render the window once the prompt's results show, save it as this PNG, and exit."),
        QStringLiteral("file.png"));
    parser.addOption(modelOption);
    parser.addOption(deviceOption);
    parser.addOption(promptOption);
    parser.addOption(screenshotOption);
    parser.process(app);

    cs::app::LaunchOptions options;
    options.model = parser.value(modelOption);
    options.device = parser.value(deviceOption).toLower();
    if (options.device != QLatin1String("cpu") && options.device != QLatin1String("cuda")
        && options.device != QLatin1String("auto")) {
        std::fprintf(stderr, "circuitscope: --device must be cpu, cuda or auto, not \"%s\"\n",
            qPrintable(parser.value(deviceOption)));
        return 2;
    }

    const QString screenshot = parser.value(screenshotOption);
    if (!screenshot.isEmpty() && QGuiApplication::platformName() == QLatin1String("offscreen"))
        QQuickWindow::setGraphicsApi(QSGRendererInterface::Software); // offscreen has no OpenGL

    QQmlApplicationEngine engine;
    cs::app::AppController* controller = cs::app::loadMainWindow(engine, options);
    if (!controller)
        return 1;
    if (parser.isSet(promptOption))
        controller->setPrompt(parser.value(promptOption));
    if (screenshot.isEmpty())
        return QGuiApplication::exec();

    // Headless rendering: wait until the model is open and the prompt's results show (or an
    // error does), then grab the window.
    QElapsedTimer clock;
    clock.start();
    QTimer poll;
    int exitCode = 0;
    QObject::connect(&poll, &QTimer::timeout, [&] {
        const bool settled = !controller->loading() && !controller->busy()
            && (!controller->hasModel() || controller->prompt().isEmpty() || controller->isUpToDate());
        if (!settled && clock.elapsed() < 120000)
            return;
        poll.stop();
        QQuickWindow* window = cs::app::mainWindow(engine);
        const QImage image = window ? window->grabWindow() : QImage();
        if (image.isNull() || !image.save(screenshot)) {
            std::fprintf(stderr, "circuitscope: could not save a screenshot to %s\n", qPrintable(screenshot));
            exitCode = 1;
        }
        QGuiApplication::exit(exitCode);
    });
    poll.start(100);
    return QGuiApplication::exec();
}
