#pragma once
// Writes a file through a temporary sibling ("<path>.tmp-XXXXXX") and renames it into place on
// commit(), so readers see the old file or the complete new one, never a partial write. An
// uncommitted AtomicFile removes its temporary file. A writer killed mid-write cannot, so the
// writer holds a flock on its temporary file and commit() removes the siblings of the same
// target whose lock nobody holds (tst_crash_consistency, tst_safetensors).

#include "io/read_file.h" // readFile, for this header's users

#include <cstddef>
#include <string>

namespace cs::io {

class AtomicFile {
public:
    explicit AtomicFile(const std::string& path);
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;

    void write(const void* data, size_t size);
    void commit(); // fsync, close, rename over the target; throws cs::Error on failure

private:
    std::string m_path;
    std::string m_tmpPath;
    int m_fd = -1;
};

// Writes text to path atomically.
void writeFileAtomically(const std::string& path, const std::string& contents);

} // namespace cs::io
