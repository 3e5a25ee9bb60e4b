#include "tokentext.h"

#include <cstdio>

namespace cs::app {

int utf8SequenceLength(const std::string& s, std::size_t i, char32_t& codePoint)
{
    const auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char lead = byte(i);
    int length = 0;
    char32_t cp = 0;
    if (lead < 0x80) {
        codePoint = lead;
        return 1;
    } else if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
        cp = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        cp = lead & 0x0F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        cp = lead & 0x07;
    } else {
        return 0;
    }
    if (i + static_cast<std::size_t>(length) > s.size())
        return 0;
    for (int k = 1; k < length; ++k) {
        const unsigned char c = byte(i + static_cast<std::size_t>(k));
        if ((c & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (c & 0x3F);
    }
    const char32_t minimum = length == 2 ? 0x80 : length == 3 ? 0x800 : 0x10000;
    if (cp < minimum || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    codePoint = cp;
    return length;
}

bool isValidUtf8(const std::string& text)
{
    std::size_t i = 0;
    while (i < text.size()) {
        char32_t cp = 0;
        const int length = utf8SequenceLength(text, i, cp);
        if (length == 0)
            return false;
        i += static_cast<std::size_t>(length);
    }
    return true;
}

namespace {

void appendByte(std::string& out, unsigned char byte)
{
    char buffer[8];
    std::snprintf(buffer, sizeof buffer, "<0x%02X>", byte);
    out += buffer;
}

// Newline and tab get a glyph (fonts commonly have these), and with `token` the space and the
// no-break space too; other controls are written as their byte, as byte-fallback vocabularies
// name them (<0x0D>).
std::string visibleString(const std::string& utf8, bool token)
{
    std::string out;
    out.reserve(utf8.size() + 8);
    std::size_t i = 0;
    while (i < utf8.size()) {
        char32_t cp = 0;
        const int length = utf8SequenceLength(utf8, i, cp);
        if (length == 0) {
            appendByte(out, static_cast<unsigned char>(utf8[i]));
            i += 1;
            continue;
        }
        if (cp == U' ' && token)
            out += "\u2423"; // ␣ OPEN BOX
        else if (cp == U'\n')
            out += "\u23CE"; // ⏎ RETURN SYMBOL
        else if (cp == U'\t')
            out += "\u21E5"; // ⇥ RIGHTWARDS ARROW TO BAR
        else if (cp == 0xA0 && token)
            out += "\u237D"; // ⍽ SHOULDERED OPEN BOX: no-break space
        else if (cp < 0x20 || cp == 0x7F)
            appendByte(out, static_cast<unsigned char>(cp));
        else
            out.append(utf8, i, static_cast<std::size_t>(length));
        i += static_cast<std::size_t>(length);
    }
    return out;
}

} // namespace

std::string visibleToken(const std::string& utf8)
{
    if (utf8.empty())
        return "\u2205"; // ∅
    return visibleString(utf8, true);
}

QString visibleTokenText(const std::string& utf8)
{
    return QString::fromStdString(visibleToken(utf8));
}

std::string visibleText(const std::string& utf8)
{
    return visibleString(utf8, false);
}

} // namespace cs::app
