// circuitscope: the attribution-graph explorer.
//   circuitscope [--model NAME_OR_FOLDER] [--device cpu|cuda|auto]

#include "appcontroller.h"
#include "mainwindow.h"

#include <cs/engine.h>

#include <QCommandLineParser>
#include <QGuiApplication>
#include <QQmlApplicationEngine>

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
    parser.addOption(modelOption);
    parser.addOption(deviceOption);
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

    QQmlApplicationEngine engine;
    if (!cs::app::loadMainWindow(engine, options))
        return 1;
    return QGuiApplication::exec();
}
