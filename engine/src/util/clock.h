#pragma once
// The engine's one timer for the figures its results report (trace_ms and the like).

#include <chrono>

namespace cs {

using Clock = std::chrono::steady_clock;

// Milliseconds since `start` on the steady clock.
inline double msSince(Clock::time_point start)
{
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

} // namespace cs
