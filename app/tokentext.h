#pragma once
// Token text for display: whitespace and control bytes made visible, bytes that are not
// valid UTF-8 on their own (a token can hold part of a character) shown as <0xNN>.

#include <QString>

#include <string>

namespace cs::app {

// " the\n" -> "␣the⏎"; "\t" -> "⇥"; no-break space -> "⍽"; other controls ("\r") -> "<0x0D>";
// a stray byte 0xE2 -> "<0xE2>"; the empty token -> "∅".
QString visibleTokenText(const std::string& utf8);

} // namespace cs::app
