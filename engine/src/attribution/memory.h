#pragma once
// The memory checks before recording a prompt and before tracing it (memory.cpp).

#include "cs/attribution.h"

#include <optional>
#include <string>

namespace cs::attribution {

// What is short when `estimate` does not fit on `device` (its GPU parts there, its host parts in
// the CPU's memory; all of it in the CPU's memory for a CPU model), as the rest of a sentence
// ("needs about 9.8 GiB (…), and the machine has 4.0 GiB available"); nothing when it fits.
// limit: as ContextOptions::memoryLimitBytes.
std::optional<std::string> shortfall(const MemoryEstimate& estimate, c10::Device device, int64_t limit);

// Throw cs::Error naming the need, what is available and what would fit (the longest prompt, the
// largest feature cap) when the work would not fit.
void checkContextMemory(const model::Model& model, const transcoder::TranscoderSet& set, int64_t nPos, int64_t limit);
// `estimate`: estimateTraceMemory's for these options, which the tracer keeps for its stats.
void checkTraceMemory(
    const ReplacementContext& context, const TraceOptions& options, int64_t nLogits, const MemoryEstimate& estimate);

} // namespace cs::attribution
