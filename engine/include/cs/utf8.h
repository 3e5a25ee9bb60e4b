#pragma once
// UTF-8, the one implementation every part uses (cs_text; the engine, the CLI and the app's
// token text): UTF-8 to code points and back, without losing anything: every byte that is not part of a
// well-formed UTF-8 sequence becomes its own "raw byte" code point U+DC80..U+DCFF (0xDC00 +
// byte, Python's surrogateescape), which encode() turns back into that byte. Well-formed UTF-8
// never contains surrogates, so the two cannot be confused.

#include <string>
#include <string_view>

namespace cs::utf8 {

// Raw byte b (0x80..0xFF, the only bytes that can be invalid) is the code point kRawByteBase + b.
constexpr char32_t kRawByteBase = 0xDC00;

constexpr bool isRawByte(char32_t cp)
{
    return cp >= kRawByteBase + 0x80 && cp <= kRawByteBase + 0xFF;
}

// Length in bytes of the well-formed sequence that starts at bytes[i], or 0 when the byte
// there does not start one (then decode() makes it a raw byte on its own).
size_t sequenceLength(std::string_view bytes, size_t i);

// The code point of the well-formed sequence of `length` bytes (sequenceLength) at bytes[i].
char32_t codePointAt(std::string_view bytes, size_t i, size_t length);

// Code points of the bytes; invalid bytes become raw-byte code points, one each.
std::u32string decode(std::string_view bytes);

// Appends the UTF-8 form of cp; a raw-byte code point appends its one original byte.
void append(std::string& out, char32_t cp);

// The inverse of decode(): encode(decode(s)) == s for every byte string s.
std::string encode(std::u32string_view cps);

// True when the bytes are well-formed UTF-8 throughout.
bool isValid(std::string_view bytes);

} // namespace cs::utf8
