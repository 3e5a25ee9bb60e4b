// File-system helpers (cs/files.h).
#include "cs/files.h"

#include "io/atomic_file.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ftw.h>
#include <sys/stat.h>

namespace cs {

namespace {

int removeEntry(const char* path, const struct stat*, int, struct FTW*)
{
    return std::remove(path) == 0 ? 0 : errno;
}

} // namespace

bool removeTree(const std::string& path, std::string* error)
{
    struct stat st;
    if (lstat(path.c_str(), &st) != 0)
        return errno == ENOENT || (error && (*error = path + ": " + std::strerror(errno)).empty());
    // Depth first (contents before their folder), without following links or leaving the device.
    const int rc = nftw(path.c_str(), removeEntry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
    if (rc == 0)
        return true;
    if (error)
        *error = "cannot remove " + path + ": " + std::strerror(rc > 0 ? rc : errno);
    return false;
}

void writeFileAtomically(const std::string& path, const std::string& contents)
{
    io::writeFileAtomically(path, contents);
}

} // namespace cs
