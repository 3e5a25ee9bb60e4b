#pragma once
// The one engine worker thread of the explorer. It owns the open model (EngineState) and
// runs jobs on it in order; the UI thread posts a job under a tag, and a newer job with the
// same tag replaces a queued one. Each request gets a generation id per tag; its result
// comes back to the UI thread as an immutable snapshot through a queued call guarded by a
// QPointer, and is dropped there when a newer request with that tag was made meanwhile
// (KDAB Hotspot's JobTracker).

#include "jobqueue.h"

#include <cs/engine.h>
#include <cs/error.h>

#include <QHash>
#include <QMetaObject>
#include <QObject>
#include <QPointer>
#include <QString>
#include <QThread>

#include <exception>
#include <functional>
#include <memory>

namespace cs::app {

// What only the worker thread touches: jobs receive it by reference.
struct EngineState {
    std::shared_ptr<cs::ModelHandle> model; // null until a model opened
};

class EngineWorker : public QObject {
    Q_OBJECT
public:
    template<typename T> using Work = std::function<std::shared_ptr<const T>(EngineState&)>;
    template<typename T> using ResultHandler = std::function<void(std::shared_ptr<const T>)>;
    using ErrorHandler = std::function<void(const QString& message)>;

    explicit EngineWorker(QObject* parent = nullptr);
    // Drops queued jobs and waits for the running one: no callback runs after this.
    ~EngineWorker() override;

    // Runs work on the worker thread under tag. Then, on this object's thread, calls onResult
    // with what it returned, or onError with the message of what it threw (cs::Error's for a
    // person; anything else prefixed "Internal error"), unless a newer request under the same
    // tag was made in between. Returns the request's generation (1, 2, ... per tag).
    template<typename T>
    quint64 request(const QString& tag, Work<T> work, ResultHandler<T> onResult, ErrorHandler onError);

    // Requests posted and not yet delivered or replaced.
    bool isBusy() const { return m_outstanding > 0; }
    quint64 latestGeneration(const QString& tag) const { return m_generations.value(tag); }
    // Blocks until the worker is idle (tests; shutdown paths).
    void waitForIdle() { m_queue.waitForIdle(); }
    const JobQueue& queue() const { return m_queue; }

Q_SIGNALS:
    void busyChanged(bool busy);
    // A result arrived for a generation a newer request made stale; it was not delivered.
    void staleResultDropped(const QString& tag, quint64 generation);

private:
    void onPosted(bool replacedQueued);
    void onFinished();
    bool isCurrent(const QString& tag, quint64 generation) const;

    EngineState m_state; // worker thread only (jobs)
    QHash<QString, quint64> m_generations; // UI thread only
    int m_outstanding = 0; // UI thread only
    JobQueue m_queue; // last: destroyed (joined) before the state its jobs use
};

template<typename T>
quint64 EngineWorker::request(const QString& tag, Work<T> work, ResultHandler<T> onResult, ErrorHandler onError)
{
    Q_ASSERT(QThread::currentThread() == thread());
    const quint64 generation = ++m_generations[tag];
    EngineState* state = &m_state;
    QPointer<EngineWorker> guard(this);
    auto job = [this, guard, state, tag, generation, work = std::move(work), onResult = std::move(onResult),
                   onError = std::move(onError)]() {
        std::shared_ptr<const T> result;
        QString error;
        try {
            result = work(*state);
        } catch (const cs::Error& e) {
            error = QString::fromStdString(e.what());
        } catch (const std::exception& e) {
            error = QStringLiteral("Internal error: %1").arg(QString::fromStdString(e.what()));
        } catch (...) {
            error = QStringLiteral("Internal error: an unknown exception");
        }
        // `this` outlives every job (the destructor joins the worker first); the QPointer
        // guards the queued call itself.
        QMetaObject::invokeMethod(
            this,
            [guard, tag, generation, result = std::move(result), error, onResult, onError]() {
                if (!guard)
                    return;
                Q_ASSERT(QThread::currentThread() == guard->thread());
                if (!guard->isCurrent(tag, generation)) {
                    Q_EMIT guard->staleResultDropped(tag, generation);
                } else if (error.isEmpty()) {
                    if (onResult)
                        onResult(result);
                } else if (onError) {
                    onError(error);
                }
                if (guard)
                    guard->onFinished();
            },
            Qt::QueuedConnection);
    };
    onPosted(m_queue.post(tag.toStdString(), std::move(job)));
    return generation;
}

} // namespace cs::app
