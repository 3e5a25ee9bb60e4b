#include "tokentext.h"

namespace cs::app {

namespace {

// Length of the well-formed UTF-8 sequence at s[i], or 0 when the bytes there are not one
// (overlong forms, surrogates and code points above U+10FFFF count as ill-formed).
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
    if (i + length > s.size())
        return 0;
    for (int k = 1; k < length; ++k) {
        const unsigned char c = byte(i + k);
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

void appendByte(QString& out, unsigned char byte)
{
    out += QStringLiteral("<0x%1>").arg(QString::number(byte, 16).rightJustified(2, QLatin1Char('0')).toUpper());
}

// Space, newline and tab get a glyph (fonts commonly have these three); other controls
// are written as their byte, as byte-fallback vocabularies name them (<0x0D>).
void appendVisible(QString& out, char32_t cp)
{
    switch (cp) {
    case U' ':
        out += QChar(0x2423); // ␣ OPEN BOX
        return;
    case U'\n':
        out += QChar(0x23CE); // ⏎ RETURN SYMBOL
        return;
    case U'\t':
        out += QChar(0x21E5); // ⇥ RIGHTWARDS ARROW TO BAR
        return;
    case 0xA0:
        out += QChar(0x237D); // ⍽ SHOULDERED OPEN BOX: no-break space
        return;
    default:
        break;
    }
    if (cp < 0x20 || cp == 0x7F) {
        appendByte(out, static_cast<unsigned char>(cp));
        return;
    }
    const char32_t one[1] = { cp };
    out += QString::fromUcs4(one, 1);
}

} // namespace

QString visibleTokenText(const std::string& utf8)
{
    if (utf8.empty())
        return QStringLiteral("\u2205"); // ∅
    QString out;
    out.reserve(static_cast<int>(utf8.size()));
    std::size_t i = 0;
    while (i < utf8.size()) {
        char32_t cp = 0;
        const int length = utf8SequenceLength(utf8, i, cp);
        if (length == 0) {
            appendByte(out, static_cast<unsigned char>(utf8[i]));
            i += 1;
            continue;
        }
        appendVisible(out, cp);
        i += static_cast<std::size_t>(length);
    }
    return out;
}

} // namespace cs::app
