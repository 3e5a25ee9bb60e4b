#pragma once
// One serial worker thread with a queue of tagged jobs, after RenderDoc's
// ReplayManager::AsyncInvoke(tag, f): a job posted under a tag replaces the queued, not yet
// started, job with the same tag, so a burst of requests of one kind (typing, a slider being
// dragged) collapses to the newest. The job already running is never interrupted.
// Qt-free on purpose: results go back through the caller's own channel (EngineWorker posts
// them to the UI thread).

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace cs::app {

class JobQueue {
public:
    using Job = std::function<void()>;

    // threadName: shown by debuggers and `top -H` (Linux truncates it to 15 bytes).
    explicit JobQueue(const std::string& threadName = "cs-engine");
    // Drops the queued jobs, lets the running one finish, joins the thread.
    ~JobQueue();

    JobQueue(const JobQueue&) = delete;
    JobQueue& operator=(const JobQueue&) = delete;

    // Appends job under tag. A queued job with the same non-empty tag is dropped (destroyed
    // without running); returns true when that happened. An empty tag never replaces.
    bool post(const std::string& tag, Job job);
    // Blocks the caller until nothing is queued or running.
    void waitForIdle();
    // Drops the queued jobs, waits for the running one and joins; later posts are ignored.
    // Called by the destructor; safe to call twice.
    void stop();

    bool isIdle() const;
    std::size_t queuedCount() const;
    // Jobs started since construction.
    uint64_t startedCount() const;
    // Queued jobs that a newer one with the same tag replaced.
    uint64_t replacedCount() const;

private:
    struct Entry {
        std::string tag;
        Job job;
    };

    void run();

    mutable std::mutex m_mutex;
    std::condition_variable m_wake; // the worker waits on it for work or for stop
    std::condition_variable m_idle; // waitForIdle() waits on it
    std::deque<Entry> m_queue;
    bool m_running = false; // a job is executing (outside the lock)
    bool m_stopping = false;
    uint64_t m_started = 0;
    uint64_t m_replaced = 0;
    std::string m_threadName;
    std::thread m_thread; // last: starts after the state it reads is constructed
};

} // namespace cs::app
