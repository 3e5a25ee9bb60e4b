// describe(): a feature's automatic caption from its card (cs/features.h).

#include "cs/features.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

namespace cs::features {

namespace {

std::string tokenOf(int64_t id, const std::vector<std::string>& vocabulary)
{
    if (id < 0 || id >= static_cast<int64_t>(vocabulary.size()))
        return "[" + std::to_string(id) + "]";
    return vocabulary[static_cast<size_t>(id)];
}

bool isSpace(char c)
{
    return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}

std::string trimmed(const std::string& text)
{
    size_t begin = 0, end = text.size();
    while (begin < end && isSpace(text[begin]))
        ++begin;
    while (end > begin && isSpace(text[end - 1]))
        --end;
    return text.substr(begin, end - begin);
}

// A token for the caption: trimmed; one made only of whitespace shows what it is.
std::string shown(const std::string& token)
{
    const std::string t = trimmed(token);
    if (!t.empty())
        return t;
    if (token.find('\n') != std::string::npos)
        return "\u23CE"; // ⏎
    return token.empty() ? std::string("\u2205") : std::string("\u2423"); // ∅, ␣
}

// Cuts text to at most `limit` bytes from its end, at a UTF-8 character boundary.
std::string tail(const std::string& text, size_t limit, bool& cut)
{
    if (text.size() <= limit)
        return text;
    cut = true;
    size_t start = text.size() - limit;
    while (start < text.size() && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80)
        ++start;
    return text.substr(start);
}

} // namespace

std::string describe(const FeatureRecord& record, const std::vector<std::string>& vocabulary)
{
    std::string out;
    // The token the top examples fire on most often (the first seen among equals).
    std::map<int64_t, int> counts;
    int64_t best = -1;
    int bestCount = 0;
    for (const Example& e : record.top) {
        if (e.position < 0 || e.position >= static_cast<int64_t>(e.tokens.size()))
            continue;
        const int64_t id = e.tokens[static_cast<size_t>(e.position)];
        const int c = ++counts[id];
        if (c > bestCount) {
            best = id;
            bestCount = c;
        }
    }
    if (bestCount > 0) {
        out = "\u00AB" + shown(tokenOf(best, vocabulary)) + "\u00BB"; // «token»
        // The text before it in the strongest example that fires on it.
        for (const Example& e : record.top) {
            if (e.position < 0 || e.position >= static_cast<int64_t>(e.tokens.size())
                || e.tokens[static_cast<size_t>(e.position)] != best)
                continue;
            const int64_t from = std::max<int64_t>(0, e.position - kDescriptionContextTokens);
            std::string before;
            for (int64_t k = from; k < e.position; ++k)
                before += tokenOf(e.tokens[static_cast<size_t>(k)], vocabulary);
            bool cut = from > 0;
            before = trimmed(tail(trimmed(before), 32, cut));
            if (!before.empty())
                out += " after \"" + std::string(cut ? "\u2026" : "") + before + "\"";
            break;
        }
    }
    // What it writes: the two tokens its decoder promotes most (positive ones only).
    std::vector<std::string> promoted;
    for (const TokenValue& t : record.topLogits) {
        if (promoted.size() == 2 || !(t.value > 0))
            break;
        promoted.push_back(shown(t.token));
    }
    if (!promoted.empty()) {
        if (!out.empty())
            out += " ";
        out += "\u2192 " + promoted[0]; // →
        if (promoted.size() > 1)
            out += ", " + promoted[1];
    }
    return out;
}

} // namespace cs::features
