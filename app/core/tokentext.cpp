#include "tokentext.h"

#include "cs/utf8.h"

#include <cstdio>

namespace cs::app {

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
        const std::size_t length = cs::utf8::sequenceLength(utf8, i);
        if (length == 0) {
            appendByte(out, static_cast<unsigned char>(utf8[i]));
            i += 1;
            continue;
        }
        const char32_t cp = cs::utf8::codePointAt(utf8, i, length);
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
            out.append(utf8, i, length);
        i += length;
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
