#include "cs/utf8.h"

namespace cs::utf8 {

namespace {

constexpr bool isContinuation(unsigned char b)
{
    return (b & 0xC0) == 0x80;
}

} // namespace

// Well-formed sequences as Unicode's table 3-7 lists them: no overlong forms, no surrogates
// (ED A0..BF), nothing above U+10FFFF.
size_t sequenceLength(std::string_view bytes, size_t i)
{
    const size_t n = bytes.size();
    const auto at = [&](size_t k) { return static_cast<unsigned char>(bytes[k]); };
    const unsigned char b0 = at(i);
    if (b0 < 0x80)
        return 1;
    if (b0 >= 0xC2 && b0 <= 0xDF)
        return (i + 1 < n && isContinuation(at(i + 1))) ? 2 : 0;
    if (b0 >= 0xE0 && b0 <= 0xEF) {
        if (i + 2 >= n)
            return 0;
        const unsigned char b1 = at(i + 1);
        const unsigned char lo = b0 == 0xE0 ? 0xA0 : 0x80;
        const unsigned char hi = b0 == 0xED ? 0x9F : 0xBF;
        return (b1 >= lo && b1 <= hi && isContinuation(at(i + 2))) ? 3 : 0;
    }
    if (b0 >= 0xF0 && b0 <= 0xF4) {
        if (i + 3 >= n)
            return 0;
        const unsigned char b1 = at(i + 1);
        const unsigned char lo = b0 == 0xF0 ? 0x90 : 0x80;
        const unsigned char hi = b0 == 0xF4 ? 0x8F : 0xBF;
        return (b1 >= lo && b1 <= hi && isContinuation(at(i + 2)) && isContinuation(at(i + 3))) ? 4 : 0;
    }
    return 0; // 80..C1 (continuation or overlong lead) and F5..FF never start a sequence
}

char32_t codePointAt(std::string_view bytes, size_t i, size_t length)
{
    const auto at = [&](size_t k) { return static_cast<char32_t>(static_cast<unsigned char>(bytes[k])); };
    switch (length) {
    case 1:
        return at(i);
    case 2:
        return ((at(i) & 0x1F) << 6) | (at(i + 1) & 0x3F);
    case 3:
        return ((at(i) & 0x0F) << 12) | ((at(i + 1) & 0x3F) << 6) | (at(i + 2) & 0x3F);
    default:
        return ((at(i) & 0x07) << 18) | ((at(i + 1) & 0x3F) << 12) | ((at(i + 2) & 0x3F) << 6) | (at(i + 3) & 0x3F);
    }
}

std::u32string decode(std::string_view bytes)
{
    std::u32string out;
    out.reserve(bytes.size());
    size_t i = 0;
    while (i < bytes.size()) {
        const size_t length = sequenceLength(bytes, i);
        if (length == 0) { // one invalid byte; decoding resumes at the next byte
            out.push_back(kRawByteBase + static_cast<unsigned char>(bytes[i]));
            i += 1;
        } else {
            out.push_back(codePointAt(bytes, i, length));
            i += length;
        }
    }
    return out;
}

void append(std::string& out, char32_t cp)
{
    if (isRawByte(cp)) {
        out.push_back(static_cast<char>(cp - kRawByteBase));
    } else if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        // Other surrogates cannot come out of decode(); should one appear it is written in the
        // generalized 3-byte form rather than dropped.
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x110000) {
        out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out += "\xEF\xBF\xBD"; // U+FFFD: not a code point at all
    }
}

std::string encode(std::u32string_view cps)
{
    std::string out;
    out.reserve(cps.size());
    for (char32_t cp : cps)
        append(out, cp);
    return out;
}

bool isValid(std::string_view bytes)
{
    size_t i = 0;
    while (i < bytes.size()) {
        const size_t len = sequenceLength(bytes, i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

} // namespace cs::utf8
