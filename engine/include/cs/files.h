#pragma once
// File-system helpers the engine and its tools share.

#include <cstdint>
#include <string>

namespace cs {

// The most bytes a file we read whole may have, by kind of file: a mistaken path fails at once
// with a message instead of filling memory.
// config.json, tokenizer_config.json, organism.json, shard indexes, caches' manifests, YAML.
constexpr uint64_t kMaxConfigFileBytes = uint64_t(64) << 20;
// tokenizer.json (the largest public ones, of 256k-token vocabularies, are some tens of MB).
constexpr uint64_t kMaxTokenizerFileBytes = uint64_t(1) << 30;
// Graph JSON and session files (a long trace's graph JSON is some hundreds of MB).
constexpr uint64_t kMaxDocumentFileBytes = uint64_t(2) << 30;

// Throws cs::Error naming `path` unless it is a regular file (links followed): a FIFO would
// block the open until someone writes to it, and a device such as /dev/zero or /dev/urandom
// never ends, so neither is ever opened.
void requireRegularFile(const std::string& path);

// Throws cs::Error naming `path` when something that is not a regular file is there (links
// followed): a device such as /dev/full, a FIFO, a socket or a folder. Every atomic write checks
// this before it starts and again just before its rename, which would otherwise replace the
// device node or FIFO with a file. A path that does not exist passes.
void requireReplaceableFile(const std::string& path);

// The whole of the regular file `path`, at most maxBytes of it (one of the caps above). Checked
// with stat before the open and again with fstat after it (the open is non-blocking, so a path
// swapped for a FIFO in between is refused, not waited on). Throws cs::Error naming the path.
std::string readFile(const std::string& path, uint64_t maxBytes);

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
