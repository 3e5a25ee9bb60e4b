#include "io/read_file.h"

#include "cs/error.h"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cs {

namespace {

const char* kindOf(mode_t mode)
{
    return S_ISDIR(mode)                 ? "a folder"
        : S_ISFIFO(mode)                 ? "a FIFO"
        : S_ISCHR(mode) || S_ISBLK(mode) ? "a device"
        : S_ISSOCK(mode)                 ? "a socket"
                                         : "not a file";
}

void requireRegularMode(const std::string& path, mode_t mode)
{
    if (S_ISREG(mode))
        return;
    throw Error(path + " is not a regular file (" + kindOf(mode) + "); refused");
}

// Closes the descriptor on every way out.
struct Descriptor {
    int fd = -1;
    ~Descriptor()
    {
        if (fd >= 0)
            ::close(fd);
    }
};

} // namespace

void requireRegularFile(const std::string& path)
{
    struct stat st { };
    if (::stat(path.c_str(), &st) != 0)
        throw Error("cannot read " + path + ": " + std::strerror(errno));
    requireRegularMode(path, st.st_mode);
}

void requireReplaceableFile(const std::string& path)
{
    struct stat st { };
    if (::stat(path.c_str(), &st) != 0)
        return; // nothing there (or nothing we can see): the write itself reports its failure
    if (!S_ISREG(st.st_mode))
        throw Error("cannot write " + path + ": it exists and is not a regular file (" + kindOf(st.st_mode)
            + "); refused, so as not to replace it");
}

std::string readFile(const std::string& path, uint64_t maxBytes)
{
    requireRegularFile(path);
    Descriptor file;
    file.fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (file.fd < 0)
        throw Error("cannot read " + path + ": " + std::strerror(errno));
    struct stat st { };
    if (::fstat(file.fd, &st) != 0)
        throw Error("cannot read " + path + ": " + std::strerror(errno));
    requireRegularMode(path, st.st_mode); // the path may name something else since the stat
    const auto size = static_cast<uint64_t>(st.st_size);
    if (size > maxBytes)
        throw Error(path + " is " + std::to_string(size) + " bytes, more than the " + std::to_string(maxBytes)
            + " a file of its kind may have; refused");
    std::string out(static_cast<size_t>(size), '\0');
    size_t got = 0;
    while (got < out.size()) {
        const ssize_t n = ::read(file.fd, out.data() + got, out.size() - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            throw Error("cannot read " + path + ": " + std::strerror(errno));
        if (n == 0)
            break;
        got += static_cast<size_t>(n);
    }
    if (got != size)
        throw Error("cannot read " + path + " (it changed while being read?)");
    return out;
}

} // namespace cs
