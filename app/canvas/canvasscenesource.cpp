#include "canvasscenesource.h"

namespace cs::app {

CanvasSceneSource::CanvasSceneSource(QObject* parent)
    : QObject(parent)
{
}

void CanvasSceneSource::setScene(std::shared_ptr<const CanvasScene> scene)
{
    m_scene = std::move(scene);
    Q_EMIT sceneChanged();
}

int CanvasSceneSource::nodeCount() const
{
    return m_scene ? static_cast<int>(m_scene->nodes.size()) : 0;
}

int CanvasSceneSource::edgeCount() const
{
    return m_scene ? static_cast<int>(m_scene->edges.size()) : 0;
}

} // namespace cs::app
