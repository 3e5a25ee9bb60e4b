#include "io/read_file.h"

#include "cs/error.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sys/stat.h>

namespace cs::io {

std::string readFile(const std::string& path, uint64_t maxBytes)
{
    struct stat st { };
    if (::stat(path.c_str(), &st) != 0)
        throw Error("cannot read " + path + ": " + std::strerror(errno));
    if (!S_ISREG(st.st_mode))
        throw Error(path + " is not a regular file (" + (S_ISDIR(st.st_mode) ? "a folder" : "a device, pipe or socket")
            + "); refused");
    const auto size = static_cast<uint64_t>(st.st_size);
    if (size > maxBytes)
        throw Error(path + " is " + std::to_string(size) + " bytes, more than the " + std::to_string(maxBytes)
            + " this file may have; refused");
    std::ifstream in(path, std::ios::binary);
    if (!in)
        throw Error("cannot read " + path + ": " + std::strerror(errno));
    std::string out(static_cast<size_t>(size), '\0');
    in.read(out.data(), static_cast<std::streamsize>(size));
    if (in.bad() || static_cast<uint64_t>(in.gcount()) != size)
        throw Error("cannot read " + path + " (it changed while being read?)");
    return out;
}

} // namespace cs::io
