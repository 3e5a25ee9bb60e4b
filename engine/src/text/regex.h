#pragma once
// A small backtracking regex engine over Unicode code points, for the pre-tokenizer patterns
// tokenizer.json files carry (GPT-2, Llama 3, Qwen, ...). Semantics are Oniguruma's (what
// Hugging Face tokenizers runs): leftmost-first alternation, greedy / lazy / possessive
// quantifiers, and findAll() that walks the text as Oniguruma's find_iter does.
//
// Supported: literals and escapes (\t \n \r \f \v \a \e \0 \xHH \x{H..} \uHHHH, escaped
// punctuation), `.` (anything but \n), classes [...] with ranges and negation, \p{..} / \P{..}
// / \pL for the general categories (L Lu Ll Lt Lm Lo LC M Mn Mc Me N Nd Nl No P Pc Pd Ps Pe Pi
// Pf Po S Sm Sc Sk So Z Zs Zl Zp C Cc Cf Cs Co Cn, long names too) and \p{^..}; \s \S \d \D
// \w \W with Oniguruma's Unicode meanings (\s White_Space, \d Nd, \w letters, marks, numbers
// and connector punctuation); case-insensitive matching by simple case folding; groups ( )
// (?: ) (?<name> ), (?i) (?i: ) (?-i: ), lookahead (?= ) (?! ), atomic (?> ), comments (?# );
// quantifiers * + ? {m} {m,} {m,n} {,n}, each with a lazy `?` or possessive `+` suffix;
// anchors ^ $ (line anchors, as in Ruby syntax) \A \z \Z \b \B.
// Refused with cs::Error: lookbehind, backreferences, nested classes and class
// intersections, flags other than i, and malformed patterns.
//
// Raw-byte code points (utf8.h) are category Cs (they live in the surrogate range): no letter,
// number or space class matches them, so [^\s\p{L}\p{N}] and `.` do.

#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cs::model {

class Regex {
public:
    struct Match {
        size_t begin = 0; // code point offsets into the searched text, [begin, end)
        size_t end = 0;
    };

    // Compiles a UTF-8 pattern; throws cs::Error naming the problem and its position.
    explicit Regex(std::string_view pattern);

    // The end of the match that starts exactly at `pos`, if there is one.
    std::optional<size_t> matchAt(std::u32string_view text, size_t pos) const;
    // The leftmost match that starts at or after `from`.
    std::optional<Match> search(std::u32string_view text, size_t from = 0) const;
    // Every non-overlapping match, left to right; an empty match right where the previous
    // match ended is skipped (as Oniguruma's and Rust regex's find_iter do).
    std::vector<Match> findAll(std::u32string_view text) const;

    const std::string& pattern() const { return m_pattern; }

    struct Node;

private:
    std::string m_pattern;
    std::shared_ptr<const Node> m_root;
};

} // namespace cs::model
