#pragma once
// File-system helpers the engine and its tools share.

#include <string>

namespace cs {

// Removes `path` and everything under it (symbolic links are removed, not followed); a path
// that does not exist is fine. Returns false and sets *error on a failure.
//
// Not std::filesystem::remove_all: the libtorch.so of PyPI's wheel exports its own copy of that
// function (from its toolchain's static libstdc++ part) whose directory iteration it leaves
// unresolved, and a program that binds to that copy jumps to address 0. nftw(3) is libc's.
bool removeTree(const std::string& path, std::string* error = nullptr);

// Writes `contents` to `path` through a temporary sibling renamed into place: readers see the
// old file or the whole new one. Throws cs::Error (the path named) on failure.
void writeFileAtomically(const std::string& path, const std::string& contents);

} // namespace cs
