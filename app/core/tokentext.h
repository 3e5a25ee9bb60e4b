#pragma once
// Token text for display, the one implementation shared by the explorer (cs_app), the
// inspector (cs_inspector) and figure export (cs_figure) through the cs_explorer_core library (app/core/):
// whitespace and control bytes made visible, bytes that are not valid UTF-8 on their own (a
// token can hold part of a character) shown as <0xNN>.

#include <QString>

#include <cstddef>
#include <string>

namespace cs::app {

// " the\n" -> "␣the⏎"; "\t" -> "⇥"; no-break space -> "⍽"; other controls ("\r") -> "<0x0D>";
// a stray byte 0xE2 -> "<0xE2>"; the empty token -> "∅". The result is valid UTF-8.
std::string visibleToken(const std::string& utf8);

// The same as a QString, for the models and QML.
QString visibleTokenText(const std::string& utf8);

// Text that is not one token (labels, names, titles) made safe to show: valid UTF-8 (stray
// bytes as <0xNN>), "\n" -> "⏎", "\t" -> "⇥", other controls as <0xNN>; spaces and no-break
// spaces kept, so words read as words; "" stays "".
std::string visibleText(const std::string& utf8);

} // namespace cs::app
