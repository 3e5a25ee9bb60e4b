#pragma once
// Unicode character properties and normalization forms for the tokenizer, answered from the
// generated tables in unicode_tables.h (tools/gen_unicode_tables.py).

#include <array>
#include <cstdint>
#include <string>

namespace cs::model::unicode {

// General categories; the order matches the generated tables (unicode.cpp checks it).
enum class Category : uint8_t {
    Cn, // unassigned; raw-byte code points (utf8.h) are Cs, the surrogate range they live in
    Lu,
    Ll,
    Lt,
    Lm,
    Lo,
    Mn,
    Mc,
    Me,
    Nd,
    Nl,
    No,
    Pc,
    Pd,
    Ps,
    Pe,
    Pi,
    Pf,
    Po,
    Sm,
    Sc,
    Sk,
    So,
    Zs,
    Zl,
    Zp,
    Cc,
    Cf,
    Cs,
    Co,
};
constexpr int kCategoryCount = 30;

constexpr uint32_t categoryBit(Category c)
{
    return uint32_t(1) << static_cast<int>(c);
}
// Masks of the one-letter groups, as \p{L}, \p{M}, ... mean them.
constexpr uint32_t kLetters = categoryBit(Category::Lu) | categoryBit(Category::Ll) | categoryBit(Category::Lt)
    | categoryBit(Category::Lm) | categoryBit(Category::Lo);
constexpr uint32_t kMarks = categoryBit(Category::Mn) | categoryBit(Category::Mc) | categoryBit(Category::Me);
constexpr uint32_t kNumbers = categoryBit(Category::Nd) | categoryBit(Category::Nl) | categoryBit(Category::No);
constexpr uint32_t kPunctuation = categoryBit(Category::Pc) | categoryBit(Category::Pd) | categoryBit(Category::Ps)
    | categoryBit(Category::Pe) | categoryBit(Category::Pi) | categoryBit(Category::Pf) | categoryBit(Category::Po);
constexpr uint32_t kSymbols
    = categoryBit(Category::Sm) | categoryBit(Category::Sc) | categoryBit(Category::Sk) | categoryBit(Category::So);
constexpr uint32_t kSeparators = categoryBit(Category::Zs) | categoryBit(Category::Zl) | categoryBit(Category::Zp);
constexpr uint32_t kOthers = categoryBit(Category::Cn) | categoryBit(Category::Cc) | categoryBit(Category::Cf)
    | categoryBit(Category::Cs) | categoryBit(Category::Co);

Category category(char32_t cp);
inline bool inCategories(char32_t cp, uint32_t mask)
{
    return (categoryBit(category(cp)) & mask) != 0;
}

// The White_Space property (what Oniguruma's \s and Rust's char::is_whitespace test).
bool isWhiteSpace(char32_t cp);
// Oniguruma's \w (what tokenizer.json regexes run on): the Unicode Word property below less
// Join_Control, plus Latin-1's superscript digits and fractions.
bool isWordChar(char32_t cp);
// The Unicode Word property (UTS #18), Rust regex's \w, which Hugging Face uses for added
// tokens' single_word: Alphabetic (letters, letter numbers, the Other_Alphabetic marks and
// symbols), marks, decimal digits, connector punctuation, ZWNJ/ZWJ.
bool isUnicodeWordChar(char32_t cp);

// Simple case folding: the one code point cp folds to (cp itself when it has no folding).
char32_t fold(char32_t cp);
// Every code point that folds to the same as cp, cp included (at most a handful).
struct CaseVariants {
    std::array<char32_t, 8> cps {};
    int count = 0;
};
CaseVariants caseVariants(char32_t cp);

// Canonical normalization forms (Unicode Standard Annex #15).
std::u32string nfd(const std::u32string& text);
std::u32string nfc(const std::u32string& text);

// The Unicode version the tables were generated from.
const char* version();

} // namespace cs::model::unicode
