#include "jobqueue.h"

#include <QtGlobal>

#include <algorithm>
#include <exception>

#ifdef __linux__
#include <pthread.h>
#endif

namespace cs::app {

JobQueue::JobQueue(const std::string& threadName)
    : m_threadName(threadName)
    , m_thread([this] { run(); })
{
}

JobQueue::~JobQueue()
{
    stop();
}

bool JobQueue::post(const std::string& tag, Job job)
{
    Job replaced; // destroyed outside the lock: its captures may be heavy
    bool didReplace = false;
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        if (m_stopping)
            return false;
        if (!tag.empty()) {
            auto it = std::find_if(m_queue.begin(), m_queue.end(), [&](const Entry& e) { return e.tag == tag; });
            if (it != m_queue.end()) {
                // Remove rather than overwrite in place: the newest request goes to the back, so
                // it runs after anything posted before it (a model switch, say).
                replaced = std::move(it->job);
                m_queue.erase(it);
                ++m_replaced;
                didReplace = true;
            }
        }
        m_queue.push_back(Entry { tag, std::move(job) });
    }
    m_wake.notify_one();
    return didReplace;
}

void JobQueue::waitForIdle()
{
    std::unique_lock<std::mutex> lock(m_mutex);
    m_idle.wait(lock, [this] { return (m_queue.empty() && !m_running) || m_stopping; });
}

void JobQueue::stop()
{
    std::deque<Entry> dropped;
    {
        std::lock_guard<std::mutex> lock(m_mutex);
        m_stopping = true;
        dropped.swap(m_queue);
    }
    m_wake.notify_all();
    m_idle.notify_all();
    if (m_thread.joinable())
        m_thread.join();
}

bool JobQueue::isIdle() const
{
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_queue.empty() && !m_running;
}

std::size_t JobQueue::queuedCount() const
{
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_queue.size();
}

uint64_t JobQueue::startedCount() const
{
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_started;
}

uint64_t JobQueue::replacedCount() const
{
    std::lock_guard<std::mutex> lock(m_mutex);
    return m_replaced;
}

void JobQueue::run()
{
#ifdef __linux__
    pthread_setname_np(pthread_self(), m_threadName.substr(0, 15).c_str());
#endif
    for (;;) {
        Job job;
        {
            std::unique_lock<std::mutex> lock(m_mutex);
            m_wake.wait(lock, [this] { return !m_queue.empty() || m_stopping; });
            if (m_stopping)
                return;
            job = std::move(m_queue.front().job);
            m_queue.pop_front();
            m_running = true;
            ++m_started;
        }
        // Jobs report their own failures; this only keeps one escaping exception from taking
        // the whole program down.
        try {
            job();
        } catch (const std::exception& e) {
            qWarning("cs::app::JobQueue: a job threw: %s", e.what());
        } catch (...) {
            qWarning("cs::app::JobQueue: a job threw an unknown exception");
        }
        job = nullptr; // release captures before reporting idle
        {
            std::lock_guard<std::mutex> lock(m_mutex);
            m_running = false;
        }
        m_idle.notify_all();
    }
}

} // namespace cs::app
