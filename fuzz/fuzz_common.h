#pragma once
// What every fuzz target shares (docs/fuzzing.md). A target feeds its input to one parser and
// catches cs::Error, the parser's refusal of a bad file; anything else that escapes (another
// exception, a crash, a sanitizer report, a hang, memory past -rss_limit_mb) is a finding.
// Parsers that only read paths get the input as a file in a scratch folder of this process's own.

#include <cs/error.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

namespace cs::fuzz {

// A folder of this process's own under $TMPDIR (else /tmp; scripts/fuzz points TMPDIR at a tmpfs),
// made on first use and removed when the process exits normally.
inline const std::string& scratchDir()
{
    // Never freed: the removal at exit still reads it after static objects are gone.
    static const std::string* dir = [] {
        const char* tmp = std::getenv("TMPDIR");
        std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/cs-fuzz-XXXXXX";
        if (!mkdtemp(pattern.data())) {
            std::perror("cs-fuzz: mkdtemp");
            std::abort();
        }
        return new std::string(pattern);
    }();
    static const bool removeAtExit = [] {
        return std::atexit([] {
            std::error_code ec;
            std::filesystem::remove_all(*dir, ec);
        }) == 0;
    }();
    (void)removeAtExit;
    return *dir;
}

// Writes `size` bytes to scratchDir()/name, replacing what was there, and returns the path.
inline std::string writeScratch(const std::string& name, const uint8_t* data, size_t size)
{
    const std::string path = scratchDir() + "/" + name;
    std::FILE* f = std::fopen(path.c_str(), "wb");
    if (!f || (size > 0 && std::fwrite(data, 1, size, f) != size) || std::fclose(f) != 0) {
        std::perror(("cs-fuzz: writing " + path).c_str());
        std::abort();
    }
    return path;
}

// The parser refused the input: expected. With CS_FUZZ_VERBOSE set (rerunning one input by
// hand, checking that a seed is accepted) the message goes to stderr.
inline void refused(const cs::Error& e)
{
    static const bool verbose = std::getenv("CS_FUZZ_VERBOSE") != nullptr;
    if (verbose)
        std::fprintf(stderr, "refused: %s\n", e.what());
}

inline std::string writeScratch(const std::string& name, const std::string& text)
{
    return writeScratch(name, reinterpret_cast<const uint8_t*>(text.data()), text.size());
}

} // namespace cs::fuzz
