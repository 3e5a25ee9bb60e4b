#pragma once
// The text-side stages of a Hugging Face tokenizer.json: normalizers (rewrite the text) and
// pre-tokenizers (cut it into the words BPE sees), with the semantics of Hugging Face
// `tokenizers`. Text is code points (utf8.h: invalid bytes are raw-byte code points).
//
// Normalizers: Prepend, Replace (String or Regex), NFC, NFD, Strip, ByteLevel, Sequence.
// Pre-tokenizers: ByteLevel (add_prefix_space, use_regex with GPT-2's pattern), Split (String
// or Regex; Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous; invert), Digits,
// Metaspace (replacement, prepend_scheme first/always/never or the older add_prefix_space,
// split), Whitespace, WhitespaceSplit, Punctuation, CharDelimiterSplit, Sequence.
// Anything else is refused with a cs::Error that names the kind.

#include "text/regex.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cs::model {

using Json = nlohmann::json;

// --- reading tokenizer.json: each throws cs::Error that says where the file is wrong

// obj[key]; throws when obj is not an object or has no such key. `where` names obj for the
// message ("model", "pre_tokenizer", ...).
const Json& jsonField(const Json& obj, const char* key, const std::string& where);
std::string jsonString(const Json& obj, const char* key, const std::string& where);
// A missing or null key gives the default.
std::string jsonString(const Json& obj, const char* key, const std::string& where, const std::string& fallback);
bool jsonBool(const Json& obj, const char* key, const std::string& where, bool fallback);
// The "type" of a component.
std::string jsonType(const Json& obj, const std::string& where);
// A string that must hold exactly one character (Metaspace's replacement, Strip's content).
char32_t jsonChar(const Json& obj, const char* key, const std::string& where);

// --- GPT-2's byte-level alphabet: every byte as a printable character (bytes_to_unicode)

char32_t byteToChar(uint8_t byte);
std::optional<uint8_t> charToByte(char32_t c);
// Each byte of the text's UTF-8 form (raw bytes as themselves) as its alphabet character.
std::u32string toByteLevel(const std::u32string& text);

// --- patterns: {"String": "..."} (a literal) or {"Regex": "..."}

class Pattern {
public:
    static Pattern fromJson(const Json& spec, const std::string& where);
    // Non-overlapping occurrences, left to right (a literal is searched for as is).
    std::vector<Regex::Match> findAll(const std::u32string& text) const;

private:
    std::shared_ptr<const Regex> m_regex;
    std::u32string m_literal;
};

// --- normalizers

class Normalizer {
public:
    virtual ~Normalizer() = default;
    virtual void normalize(std::u32string& text) const = 0;
};

// Null JSON gives nullptr (no normalizer).
std::unique_ptr<const Normalizer> makeNormalizer(const Json& spec);

// --- pre-tokenizers

struct PreToken {
    std::u32string text;
    // Begins where the input text begins (Metaspace's prepend_scheme "first" looks at this).
    bool atStart = false;
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// Cuts piece at the matches as Hugging Face's NormalizedString::split does with `behavior`
// (invert swaps matches and the text between them); appends the non-empty parts to out.
void splitPiece(const PreToken& piece, const std::vector<Regex::Match>& matches, SplitBehavior behavior, bool invert,
    std::vector<PreToken>& out);

class PreTokenizer {
public:
    virtual ~PreTokenizer() = default;
    // Replaces the pieces by their parts.
    virtual void split(std::vector<PreToken>& pieces) const = 0;
    // Maps text into the byte-level alphabet (a ByteLevel step, possibly inside a Sequence).
    virtual bool isByteLevel() const { return false; }
};

// Null JSON gives nullptr (no pre-tokenizer: the whole piece is one word).
std::unique_ptr<const PreTokenizer> makePreTokenizer(const Json& spec);

// GPT-2's pre-tokenizer pattern, which ByteLevel uses when use_regex is true.
extern const char* const kGpt2Pattern;

} // namespace cs::model
