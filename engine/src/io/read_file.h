#pragma once
// Reading a whole file a user gave us, the one implementation (cs_text and up), declared in
// cs/files.h for the app and the tools: only a regular file (a link to /dev/zero, a FIFO or a
// folder would read forever or not at all), at most the cap of its kind, and a cs::Error naming
// the path otherwise.

#include "cs/files.h"

namespace cs::io {

using cs::readFile;
using cs::requireRegularFile;
using cs::requireReplaceableFile;

} // namespace cs::io
