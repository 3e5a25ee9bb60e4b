#include "io/atomic_file.h"

#include "cs/error.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <sstream>
#include <sys/stat.h>
#include <unistd.h>

namespace cs::io {

AtomicFile::AtomicFile(const std::string& path)
    : m_path(path)
{
    requireReplaceableFile(path);
    std::string templ = path + ".tmp-XXXXXX";
    m_fd = ::mkstemp(templ.data());
    if (m_fd < 0)
        throw Error("cannot write " + path + ": " + std::strerror(errno));
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
}

void writeFileAtomically(const std::string& path, const std::string& contents)
{
    AtomicFile f(path);
    f.write(contents.data(), contents.size());
    f.commit();
}

} // namespace cs::io
