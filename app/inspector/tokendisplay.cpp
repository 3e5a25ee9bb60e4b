#include "tokendisplay.h"

namespace cs::app::inspector {

namespace {

// The code point of the well-formed UTF-8 sequence at s[i] and its length in bytes; length 0
// when the bytes there are not one (overlong forms, surrogates, > U+10FFFF, truncated).
int decodeUtf8(const std::string& s, std::size_t i, char32_t& codePoint)
{
    const auto lead = static_cast<unsigned char>(s[i]);
    if (lead < 0x80) {
        codePoint = lead;
        return 1;
    }
    int length = 0;
    char32_t cp = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2;
        cp = lead & 0x1Fu;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3;
        cp = lead & 0x0Fu;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4;
        cp = lead & 0x07u;
    } else {
        return 0;
    }
    if (i + static_cast<std::size_t>(length) > s.size())
        return 0;
    for (int k = 1; k < length; ++k) {
        const auto c = static_cast<unsigned char>(s[i + static_cast<std::size_t>(k)]);
        if ((c & 0xC0u) != 0x80u)
            return 0;
        cp = (cp << 6) | (c & 0x3Fu);
    }
    static constexpr char32_t kMinimum[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    if (cp < kMinimum[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    codePoint = cp;
    return length;
}

QString byteMarker(unsigned char byte)
{
    return QStringLiteral("<0x") + QString::number(byte, 16).rightJustified(2, QLatin1Char('0')).toUpper()
        + QLatin1Char('>');
}

} // namespace

QString displayTokenText(const std::string& utf8)
{
    if (utf8.empty())
        return QStringLiteral("\u2205");
    QString out;
    out.reserve(static_cast<int>(utf8.size()));
    std::size_t i = 0;
    while (i < utf8.size()) {
        char32_t cp = 0;
        const int length = decodeUtf8(utf8, i, cp);
        if (length == 0) {
            out += byteMarker(static_cast<unsigned char>(utf8[i]));
            ++i;
            continue;
        }
        i += static_cast<std::size_t>(length);
        switch (cp) {
        case U' ':
            out += QChar(0x2423);
            continue;
        case U'\n':
            out += QChar(0x23CE);
            continue;
        case U'\t':
            out += QChar(0x21E5);
            continue;
        case 0xA0:
            out += QChar(0x237D);
            continue;
        default:
            break;
        }
        if (cp < 0x20 || cp == 0x7F) {
            out += byteMarker(static_cast<unsigned char>(cp));
            continue;
        }
        const char32_t one[1] = { cp };
        out += QString::fromUcs4(one, 1);
    }
    return out;
}

} // namespace cs::app::inspector
