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

} // namespace cs
