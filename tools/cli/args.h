#pragma once
// A parsed command line of circuitscope-cli (command_line.h fills it with CLI11): the command's
// words and positionals, each option's values, the flags given; and typed reads of them.

#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace cs::cli {

class Args {
public:
    // values: every occurrence of each option, in order, by name without dashes.
    Args(std::vector<std::string> positional, std::map<std::string, std::vector<std::string>> values,
        std::set<std::string> flags)
        : m_positional(std::move(positional))
        , m_values(std::move(values))
        , m_flags(std::move(flags))
    {
    }

    const std::vector<std::string>& positional() const { return m_positional; }
    bool has(const std::string& name) const { return m_values.count(name) || m_flags.count(name); }
    bool flag(const std::string& name) const { return m_flags.count(name) > 0; }
    // The option's value; given several times, the last one.
    std::optional<std::string> value(const std::string& name) const;
    // Every value the option was given, in order (options that may repeat, e.g. --set).
    std::vector<std::string> values(const std::string& name) const;
    std::string valueOr(const std::string& name, const std::string& fallback) const;
    int64_t intOr(const std::string& name, int64_t fallback) const;
    double doubleOr(const std::string& name, double fallback) const;
    // A size in bytes: "4G", "512M", "1.5GiB", "65536" (K, M, G, T are powers of 1024, with an
    // optional "iB" or "B"), or "none": -1. Throws cs::Error naming the option otherwise.
    int64_t bytesOr(const std::string& name, int64_t fallback) const;

private:
    std::vector<std::string> m_positional;
    std::map<std::string, std::vector<std::string>> m_values; // every occurrence, in order
    std::set<std::string> m_flags;
};

// "1,2,3" -> {1, 2, 3}; throws cs::Error naming the bad entry.
std::vector<int64_t> parseIdList(const std::string& text);
// "0.5,1,2e-1" -> {0.5, 1, 0.2}, each finite; throws cs::Error naming `option` and the entry.
std::vector<double> parseNumberList(const std::string& text, const std::string& option);

} // namespace cs::cli
