#include "args.h"

#include "cs/error.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace cs::cli {

std::optional<std::string> Args::value(const std::string& name) const
{
    auto it = m_values.find(name);
    if (it == m_values.end())
        return std::nullopt;
    return it->second.back();
}

std::vector<std::string> Args::values(const std::string& name) const
{
    auto it = m_values.find(name);
    return it == m_values.end() ? std::vector<std::string>() : it->second;
}

std::string Args::valueOr(const std::string& name, const std::string& fallback) const
{
    return value(name).value_or(fallback);
}

int64_t Args::intOr(const std::string& name, int64_t fallback) const
{
    auto v = value(name);
    if (!v)
        return fallback;
    char* end = nullptr;
    errno = 0;
    long long n = std::strtoll(v->c_str(), &end, 10);
    if (v->empty() || *end != '\0' || errno == ERANGE)
        throw Error("--" + name + " needs an integer, not \"" + *v + "\"");
    return n;
}

int64_t Args::bytesOr(const std::string& name, int64_t fallback) const
{
    auto v = value(name);
    if (!v)
        return fallback;
    if (*v == "none")
        return -1;
    char* end = nullptr;
    const double number = std::strtod(v->c_str(), &end);
    std::string unit(end);
    for (const char* suffix : { "iB", "B" })
        if (unit.size() > std::strlen(suffix)
            && unit.compare(unit.size() - std::strlen(suffix), std::string::npos, suffix) == 0) {
            unit.resize(unit.size() - std::strlen(suffix));
            break;
        }
    const std::string units = "KMGT";
    const size_t power = unit.empty() ? 0 : unit.size() == 1 ? units.find(unit[0]) + 1 : 0;
    const double bytes = number * std::pow(1024.0, static_cast<double>(power));
    if (end == v->c_str() || (!unit.empty() && power == 0) || !std::isfinite(bytes) || bytes < 1 || bytes > 9.0e18)
        throw Error("--" + name + " needs a size such as 4G, 512M or 65536 (bytes), or none, not \"" + *v + "\"");
    return static_cast<int64_t>(bytes);
}

double Args::doubleOr(const std::string& name, double fallback) const
{
    auto v = value(name);
    if (!v)
        return fallback;
    char* end = nullptr;
    double d = std::strtod(v->c_str(), &end);
    if (v->empty() || *end != '\0')
        throw Error("--" + name + " needs a number, not \"" + *v + "\"");
    if (!std::isfinite(d)) // strtod reads "nan", "inf" and 1e999: no option of ours means them
        throw Error("--" + name + " needs a finite number, not \"" + *v + "\"");
    return d;
}

std::vector<int64_t> parseIdList(const std::string& text)
{
    std::vector<int64_t> ids;
    size_t start = 0;
    while (start <= text.size()) {
        size_t comma = text.find(',', start);
        std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        char* end = nullptr;
        errno = 0;
        long long n = std::strtoll(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || errno == ERANGE)
            throw Error("--ids: \"" + item + "\" is not a token id");
        ids.push_back(n);
        if (comma == std::string::npos)
            break;
        start = comma + 1;
    }
    return ids;
}

std::vector<double> parseNumberList(const std::string& text, const std::string& option)
{
    std::vector<double> numbers;
    size_t start = 0;
    while (start <= text.size()) {
        const size_t comma = std::min(text.find(',', start), text.size());
        const std::string item = text.substr(start, comma - start);
        char* end = nullptr;
        const double d = std::strtod(item.c_str(), &end);
        if (item.empty() || *end != '\0' || !std::isfinite(d))
            throw Error(option + ": \"" + item + "\" is not a finite number");
        numbers.push_back(d);
        start = comma + 1;
    }
    return numbers;
}

} // namespace cs::cli
