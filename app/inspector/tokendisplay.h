#pragma once
// Token text for the inspector's chips and lists: whitespace made visible, as the explorer's
// prompt chips show it (app/tokentext.h, which lives in cs_app and so cannot be linked from
// here): " " -> "␣", "\n" -> "⏎", "\t" -> "⇥", no-break space -> "⍽", other control bytes and
// bytes that are not valid UTF-8 (a token can hold part of a character) -> "<0xNN>", the empty
// token -> "∅".

#include <QString>

#include <string>

namespace cs::app::inspector {

QString displayTokenText(const std::string& utf8);

} // namespace cs::app::inspector
