#include "io/atomic_file.h"

#include "cs/error.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cs::io {

namespace {

constexpr const char* kTmpInfix = ".tmp-"; // "<path>.tmp-XXXXXX", mkstemp's six characters

// Removes the temporary siblings of `path` that writers killed mid-write left behind (a
// SIGKILL runs no destructor): those whose lock no process holds. Each writer holds an
// exclusive flock on its temporary file from just after creating it to the rename, and the
// kernel drops it when the process dies, so a live writer's file is never taken; only in the
// microseconds between another writer's mkstemp and its flock could its file go, and that
// writer then fails its rename with an error (nothing is lost). Without this, every kill during
// a write left a file as large as the one written (a CLT's decoder, a large graph's sidecar)
// beside it for good. Best effort: errors are ignored.
void removeStaleTemporaries(const std::string& path)
{
    const std::filesystem::path target(path);
    const std::filesystem::path folder = target.has_parent_path() ? target.parent_path() : ".";
    const std::string prefix = target.filename().string() + kTmpInfix;
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
        const std::string name = entry.path().filename().string();
        if (name.size() != prefix.size() + 6 || name.compare(0, prefix.size(), prefix) != 0)
            continue;
        const int fd = ::open(entry.path().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            continue;
        struct stat st;
        if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ::flock(fd, LOCK_EX | LOCK_NB) == 0)
            ::unlink(entry.path().c_str());
        ::close(fd);
    }
}

} // namespace

AtomicFile::AtomicFile(const std::string& path)
    : m_path(path)
{
    requireReplaceableFile(path);
    std::string templ = path + kTmpInfix + "XXXXXX";
    m_fd = ::mkstemp(templ.data());
    if (m_fd < 0)
        throw Error("cannot write " + path + ": " + std::strerror(errno));
    // Held until the rename or this process's end: tells removeStaleTemporaries a live writer.
    ::flock(m_fd, LOCK_EX | LOCK_NB);
    m_tmpPath = templ;
}

AtomicFile::~AtomicFile()
{
    if (m_fd >= 0) {
        ::close(m_fd);
        ::unlink(m_tmpPath.c_str());
    }
}

void AtomicFile::write(const void* data, size_t size)
{
    const char* p = static_cast<const char*>(data);
    while (size > 0) {
        ssize_t n = ::write(m_fd, p, size);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            throw Error("cannot write " + m_path + ": " + std::strerror(errno));
        }
        p += n;
        size -= static_cast<size_t>(n);
    }
}

void AtomicFile::commit()
{
    // The lock lives as long as a descriptor of the file: this one keeps it past the close below
    // until the rename, so no other writer's removeStaleTemporaries takes the file meanwhile.
    struct LockHolder {
        int fd;
        ~LockHolder()
        {
            if (fd >= 0)
                ::close(fd);
        }
    } lock { ::dup(m_fd) };
    if (::fsync(m_fd) != 0 || ::close(m_fd) != 0) {
        m_fd = -1;
        ::unlink(m_tmpPath.c_str());
        throw Error("cannot write " + m_path + ": " + std::strerror(errno));
    }
    m_fd = -1;
    ::chmod(m_tmpPath.c_str(), 0644);
    try {
        requireReplaceableFile(m_path); // it may have become a device or a FIFO since the constructor
    } catch (const Error&) {
        ::unlink(m_tmpPath.c_str());
        throw;
    }
    if (::rename(m_tmpPath.c_str(), m_path.c_str()) != 0) {
        std::string why = std::strerror(errno);
        ::unlink(m_tmpPath.c_str());
        throw Error("cannot replace " + m_path + ": " + why);
    }
    removeStaleTemporaries(m_path);
}

void writeFileAtomically(const std::string& path, const std::string& contents)
{
    AtomicFile f(path);
    f.write(contents.data(), contents.size());
    f.commit();
}

} // namespace cs::io
