#include "text/pretokenize.h"

#include "cs/json_reader.h"

#include "cs/error.h"
#include "cs/utf8.h"
#include "text/unicode.h"

#include <algorithm>
#include <array>
#include <functional>
#include <utility>

namespace cs::model {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// ---------------------------------------------------------------- JSON helpers

// tokenizer.json's fields through the one checked reader (cs/json_reader.h): messages say
// "tokenizer.json: {where}: ...".
const JsonReader& tokenizerJson()
{
    static const JsonReader reader("tokenizer.json");
    return reader;
}

const Json& jsonField(const Json& obj, const char* key, const std::string& where)
{
    const JsonReader& r = tokenizerJson();
    if (const Json* v = r.optional(r.object(obj, where), key))
        return *v;
    r.fail(where, std::string("has no \"") + key + "\"");
}

std::string jsonString(const Json& obj, const char* key, const std::string& where)
{
    return tokenizerJson().string(jsonField(obj, key, where), JsonReader::at(where, key));
}

std::string jsonString(const Json& obj, const char* key, const std::string& where, const std::string& fallback)
{
    return tokenizerJson().stringOr(obj, key, where, fallback);
}

bool jsonBool(const Json& obj, const char* key, const std::string& where, bool fallback)
{
    return tokenizerJson().booleanOr(obj, key, where, fallback);
}

std::string jsonType(const Json& obj, const std::string& where)
{
    return jsonString(obj, "type", where);
}

char32_t jsonChar(const Json& obj, const char* key, const std::string& where)
{
    const std::u32string s = utf8::decode(jsonString(obj, key, where));
    if (s.size() != 1)
        throw Error("tokenizer.json: " + where + "." + key + " should be exactly one character");
    return s.front();
}

namespace {

std::u32string jsonText(const Json& obj, const char* key, const std::string& where)
{
    return utf8::decode(jsonString(obj, key, where));
}

[[noreturn]] void unsupported(const std::string& what, const std::string& type)
{
    throw Error("tokenizer.json: the " + what + " type \"" + type + "\" is not supported");
}

// ---------------------------------------------------------------- byte-level alphabet

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
// themselves; the other 68 bytes take U+0100, U+0101, ... in byte order (space -> 'Ġ' U+0120).
struct ByteAlphabet {
    std::array<char32_t, 256> toChar {};
    std::array<int16_t, 324> toByte {}; // indexed by character; -1 = not in the alphabet

    ByteAlphabet()
    {
        toByte.fill(-1);
        char32_t nextExtra = 256;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            toChar[static_cast<size_t>(b)] = printable ? static_cast<char32_t>(b) : nextExtra++;
            toByte[toChar[static_cast<size_t>(b)]] = static_cast<int16_t>(b);
        }
    }
};

const ByteAlphabet& byteAlphabet()
{
    static const ByteAlphabet alphabet;
    return alphabet;
}

} // namespace

char32_t byteToChar(uint8_t byte)
{
    return byteAlphabet().toChar[byte];
}

std::optional<uint8_t> charToByte(char32_t c)
{
    const auto& a = byteAlphabet();
    if (c >= a.toByte.size() || a.toByte[c] < 0)
        return std::nullopt;
    return static_cast<uint8_t>(a.toByte[c]);
}

std::u32string toByteLevel(const std::u32string& text)
{
    std::u32string out;
    out.reserve(text.size() * 2);
    std::string bytes;
    for (char32_t cp : text) {
        bytes.clear();
        utf8::append(bytes, cp);
        for (char b : bytes)
            out.push_back(byteToChar(static_cast<uint8_t>(b)));
    }
    return out;
}

// ---------------------------------------------------------------- patterns

Pattern Pattern::fromJson(const Json& spec, const std::string& where)
{
    Pattern p;
    if (spec.is_object() && spec.contains("Regex")) {
        p.m_regex = std::make_shared<const Regex>(jsonString(spec, "Regex", where));
    } else if (spec.is_object() && spec.contains("String")) {
        p.m_literal = jsonText(spec, "String", where);
    } else {
        throw Error("tokenizer.json: " + where + " should be {\"String\": ...} or {\"Regex\": ...}");
    }
    return p;
}

std::vector<Regex::Match> Pattern::findAll(const std::u32string& text) const
{
    if (m_regex)
        return m_regex->findAll(text);
    std::vector<Regex::Match> out;
    if (m_literal.empty())
        return out;
    size_t pos = 0;
    while ((pos = text.find(m_literal, pos)) != std::u32string::npos) {
        out.push_back({ pos, pos + m_literal.size() });
        pos += m_literal.size();
    }
    return out;
}

namespace {

std::vector<Regex::Match> charMatches(const std::u32string& text, const std::function<bool(char32_t)>& pred)
{
    std::vector<Regex::Match> out;
    for (size_t i = 0; i < text.size(); ++i)
        if (pred(text[i]))
            out.push_back({ i, i + 1 });
    return out;
}

std::u32string replaceAll(
    const std::u32string& text, const std::vector<Regex::Match>& matches, const std::u32string& content)
{
    if (matches.empty())
        return text;
    std::u32string out;
    out.reserve(text.size() + matches.size() * content.size());
    size_t last = 0;
    for (const auto& m : matches) {
        out.append(text, last, m.begin - last);
        out += content;
        last = m.end;
    }
    out.append(text, last, std::u32string::npos);
    return out;
}

// ---------------------------------------------------------------- normalizers

class SequenceNormalizer final : public Normalizer {
public:
    std::vector<std::unique_ptr<const Normalizer>> steps;
    void normalize(std::u32string& text) const override
    {
        for (const auto& s : steps)
            s->normalize(text);
    }
};

class PrependNormalizer final : public Normalizer {
public:
    std::u32string prefix;
    void normalize(std::u32string& text) const override
    {
        if (!text.empty())
            text.insert(0, prefix);
    }
};

class ReplaceNormalizer final : public Normalizer {
public:
    Pattern pattern;
    std::u32string content;
    void normalize(std::u32string& text) const override { text = replaceAll(text, pattern.findAll(text), content); }
};

class NfcNormalizer final : public Normalizer {
public:
    void normalize(std::u32string& text) const override { text = unicode::nfc(text); }
};

class NfdNormalizer final : public Normalizer {
public:
    void normalize(std::u32string& text) const override { text = unicode::nfd(text); }
};

class StripNormalizer final : public Normalizer {
public:
    bool left = true, right = true;
    void normalize(std::u32string& text) const override
    {
        size_t b = 0, e = text.size();
        if (left)
            while (b < e && unicode::isWhiteSpace(text[b]))
                ++b;
        if (right)
            while (e > b && unicode::isWhiteSpace(text[e - 1]))
                --e;
        text = text.substr(b, e - b);
    }
};

class ByteLevelNormalizer final : public Normalizer {
public:
    void normalize(std::u32string& text) const override { text = toByteLevel(text); }
};

std::unique_ptr<const Normalizer> makeNormalizerAt(const Json& spec, const std::string& where)
{
    if (spec.is_null())
        return nullptr;
    const std::string type = jsonType(spec, where);
    if (type == "Sequence") {
        auto seq = std::make_unique<SequenceNormalizer>();
        const Json& list = jsonField(spec, "normalizers", where);
        if (!list.is_array())
            throw Error("tokenizer.json: " + where + ".normalizers should be a list");
        for (size_t i = 0; i < list.size(); ++i)
            if (auto n = makeNormalizerAt(list[i], where + ".normalizers[" + std::to_string(i) + "]"))
                seq->steps.push_back(std::move(n));
        return seq;
    }
    if (type == "Prepend") {
        auto n = std::make_unique<PrependNormalizer>();
        n->prefix = jsonText(spec, "prepend", where);
        return n;
    }
    if (type == "Replace") {
        auto n = std::make_unique<ReplaceNormalizer>();
        n->pattern = Pattern::fromJson(jsonField(spec, "pattern", where), where + ".pattern");
        n->content = jsonText(spec, "content", where);
        return n;
    }
    if (type == "NFC")
        return std::make_unique<NfcNormalizer>();
    if (type == "NFD")
        return std::make_unique<NfdNormalizer>();
    if (type == "Strip") {
        auto n = std::make_unique<StripNormalizer>();
        n->left = jsonBool(spec, "strip_left", where, true);
        n->right = jsonBool(spec, "strip_right", where, true);
        return n;
    }
    if (type == "ByteLevel")
        return std::make_unique<ByteLevelNormalizer>();
    // NFKC/NFKD need the compatibility mappings, Lowercase the full case mappings, BertNormalizer
    // and Precompiled belong to WordPiece / Unigram models: none are in the tables here.
    unsupported("normalizer", type);
}

// ---------------------------------------------------------------- pre-tokenizers

// Applies fn to every piece, collecting what it appends.
template<class Fn> void eachPiece(std::vector<PreToken>& pieces, Fn&& fn)
{
    std::vector<PreToken> out;
    out.reserve(pieces.size());
    for (const PreToken& piece : pieces)
        fn(piece, out);
    pieces = std::move(out);
}

class SequencePreTokenizer final : public PreTokenizer {
public:
    std::vector<std::unique_ptr<const PreTokenizer>> steps;
    void split(std::vector<PreToken>& pieces) const override
    {
        for (const auto& s : steps)
            s->split(pieces);
    }
    bool isByteLevel() const override
    {
        for (const auto& s : steps)
            if (s->isByteLevel())
                return true;
        return false;
    }
};

class ByteLevelPreTokenizer final : public PreTokenizer {
public:
    bool addPrefixSpace = false;
    std::shared_ptr<const Regex> regex; // null when use_regex is false

    void split(std::vector<PreToken>& pieces) const override
    {
        eachPiece(pieces, [&](const PreToken& piece, std::vector<PreToken>& out) {
            PreToken p = piece;
            if (addPrefixSpace && (p.text.empty() || p.text.front() != U' '))
                p.text.insert(p.text.begin(), U' ');
            const size_t first = out.size();
            if (regex)
                splitPiece(p, regex->findAll(p.text), SplitBehavior::Isolated, false, out);
            else if (!p.text.empty())
                out.push_back(std::move(p));
            for (size_t i = first; i < out.size(); ++i)
                out[i].text = toByteLevel(out[i].text);
        });
    }
    bool isByteLevel() const override { return true; }
};

class SplitPreTokenizer final : public PreTokenizer {
public:
    Pattern pattern;
    SplitBehavior behavior = SplitBehavior::Isolated;
    bool invert = false;
    void split(std::vector<PreToken>& pieces) const override
    {
        eachPiece(pieces, [&](const PreToken& piece, std::vector<PreToken>& out) {
            splitPiece(piece, pattern.findAll(piece.text), behavior, invert, out);
        });
    }
};

// Splits at every code point the predicate accepts (Digits, Punctuation, WhitespaceSplit, ...).
class CharPreTokenizer final : public PreTokenizer {
public:
    std::function<bool(char32_t)> pred;
    SplitBehavior behavior = SplitBehavior::Isolated;
    void split(std::vector<PreToken>& pieces) const override
    {
        eachPiece(pieces, [&](const PreToken& piece, std::vector<PreToken>& out) {
            splitPiece(piece, charMatches(piece.text, pred), behavior, false, out);
        });
    }
};

enum class PrependScheme { First, Always, Never };

class MetaspacePreTokenizer final : public PreTokenizer {
public:
    char32_t replacement = U'\u2581';
    PrependScheme scheme = PrependScheme::Always;
    bool splitWords = true;

    void split(std::vector<PreToken>& pieces) const override
    {
        eachPiece(pieces, [&](const PreToken& piece, std::vector<PreToken>& out) {
            PreToken p = piece;
            for (char32_t& c : p.text)
                if (c == U' ')
                    c = replacement;
            const bool startsWithReplacement = !p.text.empty() && p.text.front() == replacement;
            const bool prepend = !startsWithReplacement
                && (scheme == PrependScheme::Always || (scheme == PrependScheme::First && p.atStart));
            if (prepend)
                p.text.insert(p.text.begin(), replacement);
            if (splitWords)
                splitPiece(p, charMatches(p.text, [this](char32_t c) { return c == replacement; }),
                    SplitBehavior::MergedWithNext, false, out);
            else if (!p.text.empty())
                out.push_back(std::move(p));
        });
    }
};

SplitBehavior parseBehavior(const std::string& name, const std::string& where)
{
    // tokenizer.json spells them in PascalCase; the Python API's lower-case names are accepted too.
    std::string n;
    for (char c : name)
        if (c != '_' && c != '-')
            n.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c));
    if (n == "removed")
        return SplitBehavior::Removed;
    if (n == "isolated")
        return SplitBehavior::Isolated;
    if (n == "mergedwithprevious")
        return SplitBehavior::MergedWithPrevious;
    if (n == "mergedwithnext")
        return SplitBehavior::MergedWithNext;
    if (n == "contiguous")
        return SplitBehavior::Contiguous;
    throw Error("tokenizer.json: " + where + " has an unknown split behavior \"" + name + "\"");
}

bool isPunctuation(char32_t c)
{
    if (c < 0x80)
        return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') || (c >= '{' && c <= '~');
    return unicode::inCategories(c, unicode::kPunctuation);
}

std::unique_ptr<const PreTokenizer> makePreTokenizerAt(const Json& spec, const std::string& where)
{
    if (spec.is_null())
        return nullptr;
    const std::string type = jsonType(spec, where);
    if (type == "Sequence") {
        auto seq = std::make_unique<SequencePreTokenizer>();
        const Json& list = jsonField(spec, "pretokenizers", where);
        if (!list.is_array())
            throw Error("tokenizer.json: " + where + ".pretokenizers should be a list");
        for (size_t i = 0; i < list.size(); ++i)
            if (auto p = makePreTokenizerAt(list[i], where + ".pretokenizers[" + std::to_string(i) + "]"))
                seq->steps.push_back(std::move(p));
        return seq;
    }
    if (type == "ByteLevel") {
        auto p = std::make_unique<ByteLevelPreTokenizer>();
        p->addPrefixSpace = jsonBool(spec, "add_prefix_space", where, true);
        if (jsonBool(spec, "use_regex", where, true)) {
            static const auto gpt2 = std::make_shared<const Regex>(kGpt2Pattern);
            p->regex = gpt2;
        }
        return p;
    }
    if (type == "Split") {
        auto p = std::make_unique<SplitPreTokenizer>();
        p->pattern = Pattern::fromJson(jsonField(spec, "pattern", where), where + ".pattern");
        p->behavior = parseBehavior(jsonString(spec, "behavior", where), where);
        p->invert = jsonBool(spec, "invert", where, false);
        return p;
    }
    if (type == "Digits") {
        auto p = std::make_unique<CharPreTokenizer>();
        // Rust's char::is_numeric: the N categories, not only ASCII digits.
        p->pred = [](char32_t c) {
            return c < 0x80 ? (c >= '0' && c <= '9') : unicode::inCategories(c, unicode::kNumbers);
        };
        p->behavior
            = jsonBool(spec, "individual_digits", where, false) ? SplitBehavior::Isolated : SplitBehavior::Contiguous;
        return p;
    }
    if (type == "Metaspace") {
        auto p = std::make_unique<MetaspacePreTokenizer>();
        p->replacement = jsonChar(spec, "replacement", where);
        const std::string scheme = jsonString(spec, "prepend_scheme", where, "");
        if (scheme == "first")
            p->scheme = PrependScheme::First;
        else if (scheme == "always")
            p->scheme = PrependScheme::Always;
        else if (scheme == "never")
            p->scheme = PrependScheme::Never;
        else if (scheme.empty()) // files written before prepend_scheme existed
            p->scheme = jsonBool(spec, "add_prefix_space", where, true) ? PrependScheme::Always : PrependScheme::Never;
        else
            throw Error("tokenizer.json: " + where + " has an unknown prepend_scheme \"" + scheme + "\"");
        p->splitWords = jsonBool(spec, "split", where, true);
        return p;
    }
    if (type == "Whitespace") {
        // \w+|[^\w\s]+ kept, everything else (white space) dropped.
        auto p = std::make_unique<SplitPreTokenizer>();
        p->pattern = Pattern::fromJson(Json { { "Regex", R"(\w+|[^\w\s]+)" } }, where);
        p->behavior = SplitBehavior::Removed;
        p->invert = true;
        return p;
    }
    if (type == "WhitespaceSplit") {
        auto p = std::make_unique<CharPreTokenizer>();
        p->pred = [](char32_t c) { return unicode::isWhiteSpace(c); };
        p->behavior = SplitBehavior::Removed;
        return p;
    }
    if (type == "Punctuation") {
        auto p = std::make_unique<CharPreTokenizer>();
        p->pred = isPunctuation;
        p->behavior = parseBehavior(jsonString(spec, "behavior", where, "Isolated"), where);
        return p;
    }
    if (type == "CharDelimiterSplit") {
        auto p = std::make_unique<CharPreTokenizer>();
        const char32_t delimiter = jsonChar(spec, "delimiter", where);
        p->pred = [delimiter](char32_t c) { return c == delimiter; };
        p->behavior = SplitBehavior::Removed;
        return p;
    }
    unsupported("pre-tokenizer", type);
}

} // namespace

std::unique_ptr<const Normalizer> makeNormalizer(const Json& spec)
{
    return makeNormalizerAt(spec, "normalizer");
}

std::unique_ptr<const PreTokenizer> makePreTokenizer(const Json& spec)
{
    return makePreTokenizerAt(spec, "pre_tokenizer");
}

void splitPiece(const PreToken& piece, const std::vector<Regex::Match>& matches, SplitBehavior behavior, bool invert,
    std::vector<PreToken>& out)
{
    // 1. The text as alternating spans: (begin, end, isMatch), gaps included.
    struct Span {
        size_t begin, end;
        bool isMatch;
    };
    std::vector<Span> spans;
    spans.reserve(matches.size() * 2 + 1);
    size_t prev = 0;
    for (const auto& m : matches) {
        if (m.begin > prev)
            spans.push_back({ prev, m.begin, false });
        spans.push_back({ m.begin, m.end, true });
        prev = m.end;
    }
    if (prev < piece.text.size())
        spans.push_back({ prev, piece.text.size(), false });
    if (invert)
        for (auto& s : spans)
            s.isMatch = !s.isMatch;

    // 2. Hugging Face's behaviours; `drop` marks the spans that Removed throws away.
    struct Part {
        size_t begin, end;
        bool drop;
    };
    std::vector<Part> parts;
    parts.reserve(spans.size());
    switch (behavior) {
    case SplitBehavior::Removed:
        for (const auto& s : spans)
            parts.push_back({ s.begin, s.end, s.isMatch });
        break;
    case SplitBehavior::Isolated:
        for (const auto& s : spans)
            parts.push_back({ s.begin, s.end, false });
        break;
    case SplitBehavior::MergedWithPrevious: {
        // A match joins the part before it (unless that part was itself a match).
        bool previousMatch = false;
        for (const auto& s : spans) {
            if (s.isMatch && !previousMatch && !parts.empty())
                parts.back().end = s.end;
            else
                parts.push_back({ s.begin, s.end, false });
            previousMatch = s.isMatch;
        }
        break;
    }
    case SplitBehavior::MergedWithNext: {
        // Walking backwards: a match joins the part after it (unless that was a match).
        bool previousMatch = false;
        for (auto it = spans.rbegin(); it != spans.rend(); ++it) {
            if (it->isMatch && !previousMatch && !parts.empty())
                parts.back().begin = it->begin;
            else
                parts.push_back({ it->begin, it->end, false });
            previousMatch = it->isMatch;
        }
        std::reverse(parts.begin(), parts.end());
        break;
    }
    case SplitBehavior::Contiguous: {
        // Runs of adjacent matches become one part.
        bool previousMatch = false;
        for (const auto& s : spans) {
            if (s.isMatch == previousMatch && !parts.empty())
                parts.back().end = s.end;
            else
                parts.push_back({ s.begin, s.end, false });
            previousMatch = s.isMatch;
        }
        break;
    }
    }

    // 3. Non-empty parts that are kept.
    for (const auto& p : parts) {
        if (p.drop || p.end == p.begin)
            continue;
        PreToken t;
        t.text = piece.text.substr(p.begin, p.end - p.begin);
        t.atStart = piece.atStart && p.begin == 0;
        out.push_back(std::move(t));
    }
}

} // namespace cs::model
