#pragma once
// Reading a whole file a user gave us, the one implementation (cs_text and up): only a regular
// file (a link to /dev/zero, a FIFO or a folder would read forever or not at all), at most
// maxBytes of it, and a cs::Error naming the path otherwise.

#include <cstdint>
#include <string>

namespace cs::io {

// Larger than any config, tokenizer, session or graph JSON we read (a graph JSON of a long
// trace is some hundreds of MB).
constexpr uint64_t kMaxReadBytes = uint64_t(2) << 30;

std::string readFile(const std::string& path, uint64_t maxBytes = kMaxReadBytes);

} // namespace cs::io
