#pragma once
// The handle QML passes around for a scene built in C++: the controller owns one per view (the
// main graph, the subgraph), sets a new scene on every snapshot, and QML binds
// `GraphCanvas { source: Explorer.mainScene }`.

#include "canvasscene.h"

#include <QObject>
#include <QtQml/qqmlregistration.h>

#include <memory>

namespace cs::app {

class CanvasSceneSource : public QObject {
    Q_OBJECT
    QML_ELEMENT
    Q_PROPERTY(int nodeCount READ nodeCount NOTIFY sceneChanged)
    Q_PROPERTY(int edgeCount READ edgeCount NOTIFY sceneChanged)

public:
    explicit CanvasSceneSource(QObject* parent = nullptr);

    std::shared_ptr<const CanvasScene> scene() const { return m_scene; }
    // Any thread may build the scene; set it on the source's thread (the GUI thread).
    void setScene(std::shared_ptr<const CanvasScene> scene);

    int nodeCount() const;
    int edgeCount() const;

Q_SIGNALS:
    void sceneChanged();

private:
    std::shared_ptr<const CanvasScene> m_scene;
};

} // namespace cs::app
