#pragma once
// Loading the explorer's window: shared by main() and the GUI test, so the test drives
// exactly what the program shows.

#include <QString>

class QQmlApplicationEngine;
class QQuickItem;
class QQuickWindow;

namespace cs::app {

class AppController;

struct LaunchOptions {
    // A model name or Hugging Face folder to open once the window shows; empty opens none.
    QString model;
    QString device = QStringLiteral("auto"); // cpu, cuda or auto
    // Trace the prompt once the model opens (false when a file is opened instead).
    bool traceAtStartup = true;
};

// Sets the Controls style (before any QML loads), loads Circuitscope/Main.qml into engine,
// and asks the controller to open options.model. Returns the controller singleton (owned by
// engine), or null when the QML failed to load (the engine has printed why).
AppController* loadMainWindow(QQmlApplicationEngine& engine, const LaunchOptions& options);

// The window loadMainWindow made, or null.
QQuickWindow* mainWindow(const QQmlApplicationEngine& engine);

// The item with that objectName anywhere in the window's visual tree (the header, footer and
// popups are not QObject children of the content item, so findChild alone misses them); null
// when there is none.
QQuickItem* findItem(QQuickWindow* window, const QString& objectName);

} // namespace cs::app
