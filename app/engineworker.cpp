#include "engineworker.h"

namespace cs::app {

EngineWorker::EngineWorker(QObject* parent)
    : QObject(parent)
{
}

EngineWorker::~EngineWorker()
{
    // Join before the QObject goes: a running job may still queue a call to this object,
    // which Qt discards with it.
    m_queue.stop();
}

void EngineWorker::onPosted(bool replacedQueued)
{
    // A replaced job never reports back, so it no longer counts.
    if (replacedQueued)
        return;
    if (m_outstanding++ == 0)
        Q_EMIT busyChanged(true);
}

void EngineWorker::onFinished()
{
    Q_ASSERT(m_outstanding > 0);
    if (--m_outstanding == 0)
        Q_EMIT busyChanged(false);
}

bool EngineWorker::isCurrent(const QString& tag, quint64 generation) const
{
    return m_generations.value(tag) == generation;
}

} // namespace cs::app
