#include "cs/tokenizer.h"
#include "cs/json_reader.h"

#include "cs/error.h"
#include "cs/utf8.h"
#include "io/read_file.h"
#include "text/pretokenize.h"
#include "text/unicode.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <queue>
#include <sstream>
#include <unordered_map>

namespace cs::model {

namespace {

// Ids index a vector; a file with ids beyond this is not a tokenizer we can hold.
constexpr int64_t kMaxTokenId = (int64_t(1) << 24) - 1;
// Words remembered by the BPE cache before it starts over.
constexpr size_t kCacheCapacity = 100000;
// Longer words are tokenized every time rather than cached.
constexpr size_t kMaxCachedWordBytes = 256;

int64_t readId(const Json& v, const std::string& where)
{
    if (!v.is_number_integer())
        throw Error("tokenizer.json: " + where + " should be an integer token id");
    const int64_t id = v.get<int64_t>();
    if (id < 0 || id > kMaxTokenId)
        throw Error("tokenizer.json: " + where + " has the token id " + std::to_string(id) + ", outside 0.."
            + std::to_string(kMaxTokenId));
    return id;
}

// ---------------------------------------------------------------- BPE

// The BPE model of Hugging Face tokenizers (models/bpe): each word starts as one symbol per
// character (or <0xXX> byte tokens, or unk), then the lowest-ranked adjacent pair is merged,
// leftmost first, until no pair has a merge.
class BpeModel {
public:
    explicit BpeModel(const Json& spec);

    void tokenize(const std::string& word, std::vector<int64_t>& out) const;
    std::optional<int64_t> idOf(const std::string& token) const
    {
        const auto it = m_vocab.find(token);
        return it == m_vocab.end() ? std::nullopt : std::optional<int64_t>(it->second);
    }
    const std::string* tokenOf(int64_t id) const
    {
        if (id < 0 || id >= static_cast<int64_t>(m_tokens.size()) || !m_present[static_cast<size_t>(id)])
            return nullptr;
        return &m_tokens[static_cast<size_t>(id)];
    }
    int64_t idCount() const { return static_cast<int64_t>(m_tokens.size()); }
    // Hugging Face's Model::get_vocab_size (entries, not highest id + 1).
    int64_t entryCount() const { return static_cast<int64_t>(m_vocab.size()); }
    const std::optional<std::string>& unkToken() const { return m_unkToken; }

private:
    struct Merge {
        int32_t rank;
        int64_t newId;
    };

    std::unordered_map<std::string, int64_t> m_vocab;
    std::vector<std::string> m_tokens; // by id
    std::vector<bool> m_present;
    std::unordered_map<uint64_t, Merge> m_merges; // key: (left id << 32) | right id
    std::array<int64_t, 256> m_byteIds {}; // <0xXX> tokens, -1 where the vocabulary lacks one
    std::optional<std::string> m_unkToken;
    std::string m_prefix; // continuing_subword_prefix
    std::string m_suffix; // end_of_word_suffix
    bool m_fuseUnk = false;
    bool m_byteFallback = false;
    bool m_ignoreMerges = false;

    mutable std::mutex m_cacheMutex;
    mutable std::unordered_map<std::string, std::vector<int64_t>> m_cache;

    static uint64_t pairKey(int64_t a, int64_t b)
    {
        return (static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b);
    }
    const Merge* findMerge(int64_t a, int64_t b) const
    {
        const auto it = m_merges.find(pairKey(a, b));
        return it == m_merges.end() ? nullptr : &it->second;
    }
    std::vector<int64_t> mergeWord(const std::string& word) const;
};

BpeModel::BpeModel(const Json& spec)
{
    const std::string where = "model";
    const Json& vocab = jsonField(spec, "vocab", where);
    if (!vocab.is_object())
        throw Error("tokenizer.json: model.vocab should be an object of token: id");
    m_vocab.reserve(vocab.size());
    int64_t maxId = -1;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
        const int64_t id = readId(it.value(), "model.vocab[\"" + it.key() + "\"]");
        m_vocab[it.key()] = id;
        maxId = std::max(maxId, id);
    }
    m_tokens.resize(static_cast<size_t>(maxId + 1));
    m_present.resize(static_cast<size_t>(maxId + 1), false);
    for (const auto& [token, id] : m_vocab) {
        m_tokens[static_cast<size_t>(id)] = token;
        m_present[static_cast<size_t>(id)] = true;
    }

    m_unkToken = spec.contains("unk_token") && !spec.at("unk_token").is_null()
        ? std::optional<std::string>(jsonString(spec, "unk_token", where))
        : std::nullopt;
    m_prefix = jsonString(spec, "continuing_subword_prefix", where, "");
    m_suffix = jsonString(spec, "end_of_word_suffix", where, "");
    m_fuseUnk = jsonBool(spec, "fuse_unk", where, false);
    m_byteFallback = jsonBool(spec, "byte_fallback", where, false);
    m_ignoreMerges = jsonBool(spec, "ignore_merges", where, false);
    // "dropout" only matters when training (it skips merges at random); inference ignores it.

    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        const auto id = idOf(name);
        m_byteIds[static_cast<size_t>(b)] = id ? *id : -1;
    }

    const Json& merges = jsonField(spec, "merges", where);
    if (!merges.is_array())
        throw Error("tokenizer.json: model.merges should be a list");
    m_merges.reserve(merges.size());
    for (size_t rank = 0; rank < merges.size(); ++rank) {
        const Json& m = merges[rank];
        std::string left, right;
        if (m.is_string()) { // the older "left right" form
            const std::string line = m.get<std::string>();
            const size_t space = line.find(' ');
            if (space == std::string::npos || line.find(' ', space + 1) != std::string::npos)
                throw Error("tokenizer.json: merge " + std::to_string(rank + 1) + " (\"" + line
                    + "\") is not two tokens separated by one space");
            left = line.substr(0, space);
            right = line.substr(space + 1);
        } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
            left = m[0].get<std::string>();
            right = m[1].get<std::string>();
        } else {
            throw Error("tokenizer.json: merge " + std::to_string(rank + 1) + " should be \"a b\" or [\"a\", \"b\"]");
        }
        const auto leftId = idOf(left);
        const auto rightId = idOf(right);
        if (!leftId || !rightId)
            throw Error("tokenizer.json: merge " + std::to_string(rank + 1) + " uses \"" + (leftId ? right : left)
                + "\", which is not in the vocabulary");
        // With a continuing_subword_prefix ("##"), the right part loses it when merged.
        const size_t cut
            = (!m_prefix.empty() && right.compare(0, m_prefix.size(), m_prefix) == 0) ? m_prefix.size() : 0;
        const std::string merged = left + right.substr(cut);
        const auto newId = idOf(merged);
        if (!newId)
            throw Error("tokenizer.json: merge " + std::to_string(rank + 1) + " makes \"" + merged
                + "\", which is not in the vocabulary");
        // A repeated pair keeps its last rank, as Hugging Face's map does.
        m_merges[pairKey(*leftId, *rightId)] = Merge { static_cast<int32_t>(rank), *newId };
    }
}

std::vector<int64_t> BpeModel::mergeWord(const std::string& word) const
{
    // Symbols form a linked list; merged-away ones are marked dead.
    struct Symbol {
        int64_t id;
        int prev, next;
        bool alive;
    };
    std::vector<Symbol> syms;
    syms.reserve(word.size());
    const auto add = [&](int64_t id) {
        const int index = static_cast<int>(syms.size());
        syms.push_back({ id, index - 1, -1, true });
        if (index > 0)
            syms[static_cast<size_t>(index - 1)].next = index;
    };
    const auto unkId = [&]() -> int64_t {
        const auto id = idOf(*m_unkToken);
        if (!id)
            throw Error("tokenizer.json: the unk_token \"" + *m_unkToken + "\" is not in the vocabulary");
        return *id;
    };

    int64_t pendingUnk = -1; // >= 0: unknown characters waiting to be (fused and) added
    size_t i = 0;
    while (i < word.size()) {
        size_t len = utf8::sequenceLength(word, i);
        if (len == 0)
            len = 1; // an invalid byte is a character of its own
        std::string s = word.substr(i, len);
        if (i > 0 && !m_prefix.empty())
            s = m_prefix + s;
        i += len;
        if (i == word.size() && !m_suffix.empty())
            s += m_suffix;

        if (const auto id = idOf(s)) {
            if (pendingUnk >= 0) {
                add(pendingUnk);
                pendingUnk = -1;
            }
            add(*id);
            continue;
        }
        if (m_byteFallback) {
            const bool all
                = std::all_of(s.begin(), s.end(), [&](char b) { return m_byteIds[static_cast<uint8_t>(b)] >= 0; });
            if (all) {
                // As Hugging Face does, a pending unknown stays pending behind these bytes (only a
                // vocabulary with some <0xXX> tokens missing gets here with one).
                for (char b : s)
                    add(m_byteIds[static_cast<uint8_t>(b)]);
                continue;
            }
        }
        if (m_unkToken) {
            if (!(pendingUnk >= 0 && m_fuseUnk)) {
                if (pendingUnk >= 0)
                    add(pendingUnk);
                pendingUnk = unkId();
            }
        }
        // No unk_token: the character is dropped, as in Hugging Face.
    }
    if (pendingUnk >= 0)
        add(pendingUnk);

    // Merge by lowest rank, then leftmost position.
    struct Candidate {
        int32_t rank;
        int pos;
        int64_t newId;
        bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
    for (size_t k = 0; k + 1 < syms.size(); ++k)
        if (const Merge* m = findMerge(syms[k].id, syms[k + 1].id))
            queue.push({ m->rank, static_cast<int>(k), m->newId });
    while (!queue.empty()) {
        const Candidate top = queue.top();
        queue.pop();
        Symbol& left = syms[static_cast<size_t>(top.pos)];
        if (!left.alive || left.next < 0)
            continue;
        Symbol& right = syms[static_cast<size_t>(left.next)];
        const Merge* current = findMerge(left.id, right.id);
        if (!current || current->newId != top.newId)
            continue; // stale: one side was merged with something else meanwhile
        left.id = top.newId;
        right.alive = false;
        left.next = right.next;
        if (left.next >= 0)
            syms[static_cast<size_t>(left.next)].prev = top.pos;
        if (left.prev >= 0)
            if (const Merge* m = findMerge(syms[static_cast<size_t>(left.prev)].id, left.id))
                queue.push({ m->rank, left.prev, m->newId });
        if (left.next >= 0)
            if (const Merge* m = findMerge(left.id, syms[static_cast<size_t>(left.next)].id))
                queue.push({ m->rank, top.pos, m->newId });
    }

    std::vector<int64_t> ids;
    for (int k = syms.empty() ? -1 : 0; k >= 0; k = syms[static_cast<size_t>(k)].next)
        ids.push_back(syms[static_cast<size_t>(k)].id);
    return ids;
}

void BpeModel::tokenize(const std::string& word, std::vector<int64_t>& out) const
{
    if (word.empty())
        return;
    if (m_ignoreMerges) {
        if (const auto id = idOf(word)) {
            out.push_back(*id);
            return;
        }
    }
    const bool cacheable = word.size() <= kMaxCachedWordBytes;
    if (cacheable) {
        std::lock_guard<std::mutex> lock(m_cacheMutex);
        const auto it = m_cache.find(word);
        if (it != m_cache.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    std::vector<int64_t> ids = mergeWord(word);
    out.insert(out.end(), ids.begin(), ids.end());
    if (cacheable) {
        std::lock_guard<std::mutex> lock(m_cacheMutex);
        if (m_cache.size() >= kCacheCapacity)
            m_cache.clear();
        m_cache.emplace(word, std::move(ids));
    }
}

// ---------------------------------------------------------------- added tokens

struct AddedToken {
    int64_t id = 0;
    std::string content;
    bool special = false;
    bool singleWord = false;
    bool lstrip = false;
    bool rstrip = false;
    bool normalized = true;
    // What decode() writes for it: the content after the normalizer when `normalized` (Hugging
    // Face keeps that form as the token's text: Llama 2's Prepend("▁") makes an added "▁▁"
    // decode as three spaces), else the content.
    std::string decoded;
};

// Leftmost-longest matching of a set of strings (Hugging Face uses Aho-Corasick with
// MatchKind::LeftmostLongest): a trie walked from every position.
class TokenMatcher {
public:
    void add(const std::u32string& text, size_t token)
    {
        if (text.empty())
            return;
        size_t node = 0;
        for (char32_t c : text) {
            auto it = m_nodes[node].next.find(c);
            if (it == m_nodes[node].next.end()) {
                m_nodes.emplace_back();
                it = m_nodes[node].next.emplace(c, m_nodes.size() - 1).first;
            }
            node = it->second;
        }
        if (m_nodes[node].token < 0) // the same text twice: the first one listed wins
            m_nodes[node].token = static_cast<std::ptrdiff_t>(token);
    }

    bool empty() const { return m_nodes.front().next.empty(); }

    // (length, token) of the longest string that starts at pos.
    std::optional<std::pair<size_t, size_t>> longestAt(const std::u32string& text, size_t pos) const
    {
        std::optional<std::pair<size_t, size_t>> best;
        size_t node = 0;
        for (size_t i = pos; i < text.size(); ++i) {
            const auto it = m_nodes[node].next.find(text[i]);
            if (it == m_nodes[node].next.end())
                break;
            node = it->second;
            if (m_nodes[node].token >= 0)
                best = std::make_pair(i + 1 - pos, static_cast<size_t>(m_nodes[node].token));
        }
        return best;
    }

private:
    struct TrieNode {
        std::map<char32_t, size_t> next;
        std::ptrdiff_t token = -1;
    };
    std::vector<TrieNode> m_nodes { 1 };
};

// A piece of the input: text still to tokenize, or an added token already recognized.
struct Segment {
    std::u32string text;
    int64_t id = -1; // >= 0: an added token
    bool atStart = false;
};

// ---------------------------------------------------------------- decoders

class Decoder {
public:
    virtual ~Decoder() = default;
    // Hugging Face's decode_chain: rewrites the token strings (UTF-8 bytes, possibly partial
    // sequences). `display` asks for one token as it reads inside a text: nothing stripped
    // because it happens to come first.
    virtual void chain(std::vector<std::string>& tokens, bool display) const = 0;
    virtual bool isByteLevel() const { return false; }
};

class SequenceDecoder final : public Decoder {
public:
    std::vector<std::unique_ptr<const Decoder>> steps;
    void chain(std::vector<std::string>& tokens, bool display) const override
    {
        for (const auto& s : steps)
            s->chain(tokens, display);
    }
    bool isByteLevel() const override
    {
        return std::any_of(steps.begin(), steps.end(), [](const auto& s) { return s->isByteLevel(); });
    }
};

// Byte-level characters back to their bytes, all tokens into one string. A token with a
// character outside the alphabet (an added token with a space or a CJK character in it) is
// kept as written. Unlike Hugging Face, invalid UTF-8 is kept as bytes rather than replaced
// by U+FFFD, so that decode(encode(s)) == s for any bytes.
class ByteLevelDecoder final : public Decoder {
public:
    void chain(std::vector<std::string>& tokens, bool) const override
    {
        std::string out;
        for (const std::string& token : tokens) {
            const std::u32string cps = utf8::decode(token);
            std::string bytes;
            bool all = true;
            for (char32_t c : cps) {
                const auto b = charToByte(c);
                if (!b) {
                    all = false;
                    break;
                }
                bytes.push_back(static_cast<char>(*b));
            }
            out += all ? bytes : token;
        }
        tokens.assign(1, std::move(out));
    }
    bool isByteLevel() const override { return true; }
};

class ReplaceDecoder final : public Decoder {
public:
    Pattern pattern;
    std::u32string content;
    void chain(std::vector<std::string>& tokens, bool) const override
    {
        for (std::string& token : tokens) {
            const std::u32string cps = utf8::decode(token);
            const auto matches = pattern.findAll(cps);
            if (matches.empty())
                continue;
            std::u32string out;
            size_t last = 0;
            for (const auto& m : matches) {
                out.append(cps, last, m.begin - last);
                out += content;
                last = m.end;
            }
            out.append(cps, last, std::u32string::npos);
            token = utf8::encode(out);
        }
    }
};

// Runs of <0xXX> tokens become their bytes (one string per run). Hugging Face turns a run that
// is not valid UTF-8 into U+FFFD per byte; the bytes are kept here (see ByteLevelDecoder).
class ByteFallbackDecoder final : public Decoder {
public:
    void chain(std::vector<std::string>& tokens, bool) const override
    {
        std::vector<std::string> out;
        out.reserve(tokens.size());
        std::string run;
        bool inRun = false;
        for (std::string& token : tokens) {
            if (const auto b = byteOf(token)) {
                run.push_back(static_cast<char>(*b));
                inRun = true;
                continue;
            }
            if (inRun) {
                out.push_back(std::move(run));
                run.clear();
                inRun = false;
            }
            out.push_back(std::move(token));
        }
        if (inRun)
            out.push_back(std::move(run));
        tokens = std::move(out);
    }

    static std::optional<uint8_t> byteOf(const std::string& token)
    {
        if (token.size() != 6 || token.compare(0, 3, "<0x") != 0 || token[5] != '>')
            return std::nullopt;
        int v = 0;
        for (int k = 3; k < 5; ++k) {
            const char c = token[static_cast<size_t>(k)];
            int digit = -1;
            if (c >= '0' && c <= '9')
                digit = c - '0';
            else if (c >= 'a' && c <= 'f')
                digit = c - 'a' + 10;
            else if (c >= 'A' && c <= 'F')
                digit = c - 'A' + 10;
            if (digit < 0)
                return std::nullopt;
            v = v * 16 + digit;
        }
        return static_cast<uint8_t>(v);
    }
};

class FuseDecoder final : public Decoder {
public:
    void chain(std::vector<std::string>& tokens, bool) const override
    {
        std::string all;
        for (const auto& t : tokens)
            all += t;
        tokens.assign(1, std::move(all));
    }
};

// Removes up to `start` leading and `stop` trailing `content` characters from each token.
class StripDecoder final : public Decoder {
public:
    char32_t content = U' ';
    size_t start = 0, stop = 0;
    void chain(std::vector<std::string>& tokens, bool display) const override
    {
        if (display)
            return; // it exists to undo the space a sentencepiece model puts before the text
        for (std::string& token : tokens) {
            const std::u32string cps = utf8::decode(token);
            size_t b = 0;
            while (b < start && b < cps.size() && cps[b] == content)
                ++b;
            size_t e = cps.size();
            for (size_t k = 0; k < stop && e > b && cps[e - 1] == content; ++k)
                --e;
            token = utf8::encode(std::u32string_view(cps).substr(b, e - b));
        }
    }
};

// The Metaspace decoder: the replacement character becomes a space, except that the first
// token loses its replacement characters when the pre-tokenizer prepends one.
class MetaspaceDecoder final : public Decoder {
public:
    char32_t replacement = U'\u2581';
    bool prepends = true;
    void chain(std::vector<std::string>& tokens, bool display) const override
    {
        for (size_t i = 0; i < tokens.size(); ++i) {
            const std::u32string cps = utf8::decode(tokens[i]);
            std::u32string out;
            for (char32_t c : cps) {
                if (c != replacement)
                    out.push_back(c);
                else if (!(i == 0 && prepends && !display))
                    out.push_back(U' ');
            }
            tokens[i] = utf8::encode(out);
        }
    }
};

// The BPE decoder: end_of_word_suffix becomes a space (nothing after the last token).
class BpeSuffixDecoder final : public Decoder {
public:
    std::string suffix = "</w>";
    void chain(std::vector<std::string>& tokens, bool) const override
    {
        for (size_t i = 0; i < tokens.size(); ++i) {
            if (suffix.empty())
                continue;
            const std::string with = i + 1 == tokens.size() ? "" : " ";
            std::string& t = tokens[i];
            std::string out;
            size_t pos = 0, hit;
            while ((hit = t.find(suffix, pos)) != std::string::npos) {
                out.append(t, pos, hit - pos);
                out += with;
                pos = hit + suffix.size();
            }
            out.append(t, pos, std::string::npos);
            t = std::move(out);
        }
    }
};

std::unique_ptr<const Decoder> makeDecoder(const Json& spec, const std::string& where)
{
    if (spec.is_null())
        return nullptr;
    const std::string type = jsonType(spec, where);
    if (type == "Sequence") {
        auto seq = std::make_unique<SequenceDecoder>();
        const Json& list = jsonField(spec, "decoders", where);
        if (!list.is_array())
            throw Error("tokenizer.json: " + where + ".decoders should be a list");
        for (size_t i = 0; i < list.size(); ++i)
            if (auto d = makeDecoder(list[i], where + ".decoders[" + std::to_string(i) + "]"))
                seq->steps.push_back(std::move(d));
        return seq;
    }
    if (type == "ByteLevel")
        return std::make_unique<ByteLevelDecoder>();
    if (type == "Replace") {
        auto d = std::make_unique<ReplaceDecoder>();
        d->pattern = Pattern::fromJson(jsonField(spec, "pattern", where), where + ".pattern");
        d->content = utf8::decode(jsonString(spec, "content", where));
        return d;
    }
    if (type == "ByteFallback")
        return std::make_unique<ByteFallbackDecoder>();
    if (type == "Fuse")
        return std::make_unique<FuseDecoder>();
    if (type == "Strip") {
        auto d = std::make_unique<StripDecoder>();
        d->content = jsonChar(spec, "content", where);
        const Json& start = jsonField(spec, "start", where);
        const Json& stop = jsonField(spec, "stop", where);
        if (!start.is_number_unsigned() || !stop.is_number_unsigned())
            throw Error("tokenizer.json: " + where + ".start and .stop should be counts");
        d->start = start.get<size_t>();
        d->stop = stop.get<size_t>();
        return d;
    }
    if (type == "Metaspace") {
        auto d = std::make_unique<MetaspaceDecoder>();
        d->replacement = jsonChar(spec, "replacement", where);
        const std::string scheme = jsonString(spec, "prepend_scheme", where, "");
        d->prepends = scheme.empty() ? jsonBool(spec, "add_prefix_space", where, true) : scheme != "never";
        return d;
    }
    if (type == "BPEDecoder") {
        auto d = std::make_unique<BpeSuffixDecoder>();
        d->suffix = jsonString(spec, "suffix", where, "</w>");
        return d;
    }
    throw Error("tokenizer.json: the decoder type \"" + type + "\" is not supported");
}

// ---------------------------------------------------------------- post-processors

// What a post-processor adds around a single sequence.
struct SpecialFrame {
    std::vector<int64_t> prefix, suffix;
};

SpecialFrame makeFrame(const Json& spec, const std::string& where)
{
    SpecialFrame frame;
    if (spec.is_null())
        return frame;
    const std::string type = jsonType(spec, where);
    if (type == "Sequence") {
        const Json& list = jsonField(spec, "processors", where);
        if (!list.is_array())
            throw Error("tokenizer.json: " + where + ".processors should be a list");
        // Each processor wraps what the previous ones produced.
        for (size_t i = 0; i < list.size(); ++i) {
            const SpecialFrame inner = makeFrame(list[i], where + ".processors[" + std::to_string(i) + "]");
            frame.prefix.insert(frame.prefix.begin(), inner.prefix.begin(), inner.prefix.end());
            frame.suffix.insert(frame.suffix.end(), inner.suffix.begin(), inner.suffix.end());
        }
        return frame;
    }
    if (type == "ByteLevel")
        return frame; // only trims offsets
    if (type == "TemplateProcessing") {
        const Json& single = jsonField(spec, "single", where);
        const Json& specials = spec.contains("special_tokens") ? spec.at("special_tokens") : Json::object();
        if (!single.is_array())
            throw Error("tokenizer.json: " + where + ".single should be a list");
        bool seenSequence = false;
        for (const Json& piece : single) {
            std::string tokenName;
            bool isSequence = false;
            std::string sequenceId;
            if (piece.is_object() && piece.contains("Sequence")) {
                isSequence = true;
                sequenceId = jsonString(piece.at("Sequence"), "id", where + ".single");
            } else if (piece.is_object() && piece.contains("SpecialToken")) {
                tokenName = jsonString(piece.at("SpecialToken"), "id", where + ".single");
            } else if (piece.is_string()) { // the "$A:0" / "<s>:0" shorthand
                std::string s = piece.get<std::string>();
                const size_t colon = s.rfind(':');
                if (colon != std::string::npos && colon + 1 < s.size()
                    && s.find_first_not_of("0123456789", colon + 1) == std::string::npos)
                    s = s.substr(0, colon);
                if (!s.empty() && s[0] == '$') {
                    isSequence = true;
                    sequenceId = s.size() == 1 ? "A" : s.substr(1);
                    if (sequenceId == "0")
                        sequenceId = "A";
                } else {
                    tokenName = s;
                }
            } else {
                throw Error("tokenizer.json: " + where
                    + ".single has an item that is neither a sequence nor a "
                      "special token");
            }
            if (isSequence) {
                if (sequenceId != "A")
                    throw Error("tokenizer.json: " + where + ".single refers to sequence $" + sequenceId
                        + " (only $A exists for one text)");
                seenSequence = true;
                continue;
            }
            if (!specials.is_object() || !specials.contains(tokenName))
                throw Error("tokenizer.json: " + where + " uses the special token \"" + tokenName
                    + "\" but its special_tokens do not define it");
            const Json& ids = jsonField(specials.at(tokenName), "ids", where + ".special_tokens");
            if (!ids.is_array())
                throw Error("tokenizer.json: " + where + ".special_tokens[\"" + tokenName + "\"].ids should be a list");
            auto& target = seenSequence ? frame.suffix : frame.prefix;
            for (const Json& id : ids)
                target.push_back(readId(id, where + ".special_tokens"));
        }
        return frame;
    }
    if (type == "BertProcessing" || type == "RobertaProcessing") {
        // "cls": ["[CLS]", 101], "sep": ["[SEP]", 102]: [CLS] $A [SEP]
        const auto readPair = [&](const char* key) {
            const Json& pair = jsonField(spec, key, where);
            if (!pair.is_array() || pair.size() != 2)
                throw Error(std::string("tokenizer.json: ") + where + "." + key + " should be [token, id]");
            return readId(pair[1], where + "." + key);
        };
        frame.prefix.push_back(readPair("cls"));
        frame.suffix.push_back(readPair("sep"));
        return frame;
    }
    throw Error("tokenizer.json: the post-processor type \"" + type + "\" is not supported");
}

// bos_token / eos_token in tokenizer_config.json: a string, or an AddedToken object.
std::optional<std::string> configToken(const Json& config, const char* key)
{
    if (!config.is_object() || !config.contains(key))
        return std::nullopt;
    const Json& v = config.at(key);
    if (v.is_string())
        return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v.at("content").is_string())
        return v.at("content").get<std::string>();
    if (v.is_null())
        return std::nullopt;
    throw Error(std::string("tokenizer_config.json: ") + key + " should be a string");
}

} // namespace

// ---------------------------------------------------------------- the tokenizer

struct Tokenizer::Impl {
    std::unique_ptr<BpeModel> model;
    std::vector<AddedToken> added;
    std::unordered_map<int64_t, size_t> addedById;
    std::unordered_map<std::string, size_t> addedByContent;
    TokenMatcher rawMatcher; // added tokens with normalized: false, matched on the input
    TokenMatcher normalizedMatcher; // normalized: true, matched on normalized text
    std::unique_ptr<const Normalizer> normalizer;
    std::unique_ptr<const PreTokenizer> preTokenizer;
    std::unique_ptr<const Decoder> decoder;
    SpecialFrame frame; // what encode(..., addSpecial) puts around the text
    std::optional<int64_t> bos, eos, pad, unk;
    bool byteLevel = false;
    int64_t vocabSize = 0;

    const AddedToken* addedToken(int64_t id) const
    {
        const auto it = addedById.find(id);
        return it == addedById.end() ? nullptr : &added[it->second];
    }

    std::optional<int64_t> pieceId(const std::string& piece) const
    {
        const auto it = addedByContent.find(piece);
        if (it != addedByContent.end())
            return added[it->second].id;
        return model->idOf(piece);
    }

    const std::string* piece(int64_t id) const
    {
        if (const AddedToken* t = addedToken(id))
            return &t->content;
        return model->tokenOf(id);
    }

    // The token's text as decode() hands it to the decoder.
    const std::string* decodedPiece(int64_t id) const
    {
        if (const AddedToken* t = addedToken(id))
            return &t->decoded;
        return model->tokenOf(id);
    }

    // Cuts seg at the matcher's added tokens, as Hugging Face's AddedVocabulary::find_matches.
    void splitOnAdded(Segment seg, const TokenMatcher& matcher, std::vector<Segment>& out) const
    {
        if (seg.text.empty())
            return;
        if (matcher.empty()) {
            out.push_back(std::move(seg));
            return;
        }
        const std::u32string& s = seg.text;
        const auto emitText = [&](size_t b, size_t e) {
            if (e > b)
                out.push_back(Segment { s.substr(b, e - b), -1, seg.atStart && b == 0 });
        };
        size_t emitted = 0; // text before this is already out
        size_t i = 0;
        while (i < s.size()) {
            const auto hit = matcher.longestAt(s, i);
            if (!hit) {
                ++i;
                continue;
            }
            const AddedToken& token = added[hit->second];
            size_t start = i, stop = i + hit->first;
            i = stop;
            if (token.singleWord) {
                const bool spaceBefore = start == 0 || !unicode::isUnicodeWordChar(s[start - 1]);
                const bool spaceAfter = stop == s.size() || !unicode::isUnicodeWordChar(s[stop]);
                if (!spaceBefore || !spaceAfter)
                    continue; // inside a word: plain text
            }
            if (token.lstrip) { // the token swallows the white space before it
                size_t b = start;
                while (b > emitted && unicode::isWhiteSpace(s[b - 1]))
                    --b;
                start = b;
            }
            if (token.rstrip) { // ... and after it
                while (stop < s.size() && unicode::isWhiteSpace(s[stop]))
                    ++stop;
                i = stop;
            }
            emitText(emitted, start);
            out.push_back(Segment { {}, token.id, false });
            emitted = stop;
        }
        emitText(emitted, s.size());
    }

    // The input cut into added tokens and normalized text.
    std::vector<Segment> segment(const std::string& text) const
    {
        // 1. Added tokens that are matched on the raw text.
        std::vector<Segment> raw;
        splitOnAdded(Segment { utf8::decode(text), -1, true }, rawMatcher, raw);
        // 2. Normalize the rest, then the added tokens matched on normalized text.
        std::vector<Segment> segments;
        for (Segment& seg : raw) {
            if (seg.id >= 0) {
                segments.push_back(std::move(seg));
                continue;
            }
            if (normalizer)
                normalizer->normalize(seg.text);
            splitOnAdded(std::move(seg), normalizedMatcher, segments);
        }
        return segments;
    }

    // 3. The words of one text segment.
    std::vector<PreToken> words(Segment& seg) const
    {
        std::vector<PreToken> out;
        out.push_back(PreToken { std::move(seg.text), seg.atStart });
        if (preTokenizer)
            preTokenizer->split(out);
        return out;
    }

    std::vector<int64_t> encode(const std::string& text, bool addSpecial) const
    {
        std::vector<int64_t> ids;
        if (addSpecial)
            ids = frame.prefix;
        for (Segment& seg : segment(text)) {
            if (seg.id >= 0) {
                ids.push_back(seg.id);
                continue;
            }
            for (const PreToken& w : words(seg))
                model->tokenize(utf8::encode(w.text), ids);
        }
        if (addSpecial)
            ids.insert(ids.end(), frame.suffix.begin(), frame.suffix.end());
        return ids;
    }

    std::vector<std::string> preTokenize(const std::string& text) const
    {
        std::vector<std::string> out;
        for (Segment& seg : segment(text)) {
            if (seg.id >= 0) {
                out.push_back(*piece(seg.id));
                continue;
            }
            for (const PreToken& w : words(seg))
                out.push_back(utf8::encode(w.text));
        }
        return out;
    }

    std::string decodeTokens(std::vector<std::string> tokens, bool display) const
    {
        if (!decoder) { // Hugging Face joins with spaces when there is no decoder
            std::string out;
            for (size_t i = 0; i < tokens.size(); ++i)
                out += (i ? " " : "") + tokens[i];
            return out;
        }
        decoder->chain(tokens, display);
        std::string out;
        for (const auto& t : tokens)
            out += t;
        return out;
    }
};

Tokenizer Tokenizer::fromJson(const std::string& tokenizerJson, const std::string& tokenizerConfigJson)
{
    Json j;
    try {
        j = parseJson(tokenizerJson, "tokenizer.json");
    } catch (const Json::exception& e) {
        throw Error(std::string("tokenizer.json is not valid JSON: ") + e.what());
    }
    if (!j.is_object())
        throw Error("tokenizer.json should hold a JSON object");
    Json config;
    if (!tokenizerConfigJson.empty()) {
        try {
            config = parseJson(tokenizerConfigJson, "tokenizer_config.json");
        } catch (const Json::exception& e) {
            throw Error(std::string("tokenizer_config.json is not valid JSON: ") + e.what());
        }
        if (!config.is_object())
            throw Error("tokenizer_config.json should hold a JSON object");
    }

    auto impl = std::make_shared<Impl>();
    try {
        // The model.
        const Json& model = jsonField(j, "model", "the file");
        const std::string type = model.is_object() && model.contains("type") ? jsonType(model, "model")
            : (model.is_object() && model.contains("merges"))                ? std::string("BPE")
                                                                             : std::string();
        if (type != "BPE")
            throw Error("tokenizer.json: the model type \"" + type
                + "\" is not supported (only BPE models: byte-level or sentencepiece-style)");
        impl->model = std::make_unique<BpeModel>(model);

        // Text stages.
        impl->normalizer = makeNormalizer(j.contains("normalizer") ? j.at("normalizer") : Json());
        impl->preTokenizer = makePreTokenizer(j.contains("pre_tokenizer") ? j.at("pre_tokenizer") : Json());
        impl->decoder = makeDecoder(j.contains("decoder") ? j.at("decoder") : Json(), "decoder");
        impl->byteLevel = (impl->preTokenizer && impl->preTokenizer->isByteLevel())
            || (impl->decoder && impl->decoder->isByteLevel());

        // Added tokens. Hugging Face does not take their ids from the file: it re-adds them in
        // order, giving each the model's id for its text, or else the next id after the model's
        // vocabulary and the added tokens so far (it warns where the file disagrees). For files it
        // wrote itself the two agree.
        int64_t maxId = impl->model->idCount() - 1;
        if (j.contains("added_tokens") && !j.at("added_tokens").is_null()) {
            const Json& list = j.at("added_tokens");
            if (!list.is_array())
                throw Error("tokenizer.json: added_tokens should be a list");
            const int64_t modelEntries = impl->model->entryCount();
            std::optional<int64_t> maxAdded;
            for (size_t i = 0; i < list.size(); ++i) {
                const std::string where = "added_tokens[" + std::to_string(i) + "]";
                const Json& t = list[i];
                AddedToken token;
                readId(jsonField(t, "id", where), where + ".id"); // checked, not used (see above)
                token.content = jsonString(t, "content", where);
                token.special = jsonBool(t, "special", where, false);
                token.singleWord = jsonBool(t, "single_word", where, false);
                token.lstrip = jsonBool(t, "lstrip", where, false);
                token.rstrip = jsonBool(t, "rstrip", where, false);
                token.normalized = jsonBool(t, "normalized", where, !token.special);
                if (token.content.empty() || impl->addedByContent.count(token.content))
                    continue; // ignored, as Hugging Face does
                if (const auto modelId = impl->model->idOf(token.content))
                    token.id = *modelId;
                else if (!maxAdded)
                    token.id = modelEntries;
                else
                    token.id = (*maxAdded >= modelEntries || modelEntries == 0) ? *maxAdded + 1 : modelEntries;
                if (token.id > kMaxTokenId)
                    throw Error("tokenizer.json: too many added tokens");
                maxAdded = std::max(maxAdded.value_or(token.id), token.id);
                maxId = std::max(maxId, token.id);
                token.decoded = token.content;
                if (token.normalized && impl->normalizer) {
                    std::u32string text = utf8::decode(token.content);
                    impl->normalizer->normalize(text);
                    token.decoded = utf8::encode(text);
                }
                const size_t index = impl->added.size();
                impl->added.push_back(token);
                impl->addedById[token.id] = index;
                impl->addedByContent.emplace(token.content, index);
                if (token.normalized) {
                    // Matched against normalized text, so its own text is normalized the same way.
                    impl->normalizedMatcher.add(utf8::decode(token.decoded), index);
                } else {
                    impl->rawMatcher.add(utf8::decode(token.content), index);
                }
            }
        }
        impl->vocabSize = maxId + 1;

        // BOS/EOS: the post-processor, and tokenizer_config.json where it has a say.
        impl->frame = makeFrame(j.contains("post_processor") ? j.at("post_processor") : Json(), "post_processor");
        const bool hasPostProcessor = j.contains("post_processor") && !j.at("post_processor").is_null();
        const auto resolve = [&](const std::string& token, const char* key) {
            const auto id = impl->pieceId(token);
            if (!id)
                throw Error(std::string("tokenizer_config.json: ") + key + " \"" + token
                    + "\" is not in the tokenizer's vocabulary");
            return *id;
        };
        const auto bosToken = configToken(config, "bos_token");
        const auto eosToken = configToken(config, "eos_token");
        if (bosToken)
            impl->bos = resolve(*bosToken, "bos_token");
        if (eosToken)
            impl->eos = resolve(*eosToken, "eos_token");
        if (!config.is_null()) {
            // transformers' Llama and Gemma fast tokenizers rebuild their post-processor from
            // add_bos_token (default true) and add_eos_token (default false); other classes use
            // tokenizer.json's, and the config flags only fill in when it has none.
            static const char* const kRebuilding[] = { "LlamaTokenizer", "LlamaTokenizerFast", "GemmaTokenizer",
                "GemmaTokenizerFast", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast" };
            const std::string cls = config.contains("tokenizer_class") && config.at("tokenizer_class").is_string()
                ? config.at("tokenizer_class").get<std::string>()
                : std::string();
            const bool rebuilds
                = std::find(std::begin(kRebuilding), std::end(kRebuilding), cls) != std::end(kRebuilding);
            if (rebuilds || !hasPostProcessor) {
                const bool addBos = jsonBool(config, "add_bos_token", "tokenizer_config", rebuilds);
                const bool addEos = jsonBool(config, "add_eos_token", "tokenizer_config", false);
                if ((addBos && !impl->bos) || (addEos && !impl->eos))
                    throw Error(std::string("tokenizer_config.json: ")
                        + (addBos && !impl->bos ? "add_bos_token" : "add_eos_token")
                        + " is true but the config names no such token");
                impl->frame = SpecialFrame {};
                if (addBos)
                    impl->frame.prefix.push_back(*impl->bos);
                if (addEos)
                    impl->frame.suffix.push_back(*impl->eos);
            }
        }
        // Without a config: the template's first token is BOS, else a well-known name.
        const auto guess = [&](std::initializer_list<const char*> names) -> std::optional<int64_t> {
            for (const char* name : names)
                if (const auto id = impl->pieceId(name))
                    return id;
            return std::nullopt;
        };
        const bool configNamesBos = config.is_object() && config.contains("bos_token");
        const bool configNamesEos = config.is_object() && config.contains("eos_token");
        if (!impl->bos && !configNamesBos)
            impl->bos = !impl->frame.prefix.empty() ? std::optional<int64_t>(impl->frame.prefix.front())
                                                    : guess({ "<|begin_of_text|>", "<bos>", "<s>", "<|endoftext|>" });
        if (!impl->eos && !configNamesEos)
            impl->eos = guess({ "<|end_of_text|>", "<eos>", "</s>", "<|endoftext|>" });
        // PAD and UNK only widen specialIds(): one the vocabulary lacks is left out, not an error.
        if (const auto padToken = configToken(config, "pad_token"))
            impl->pad = impl->pieceId(*padToken);
        if (const auto unkToken = configToken(config, "unk_token"))
            impl->unk = impl->pieceId(*unkToken);
        else if (impl->model->unkToken())
            impl->unk = impl->pieceId(*impl->model->unkToken());
    } catch (const Json::exception& e) {
        throw Error(std::string("tokenizer.json is malformed: ") + e.what());
    }

    Tokenizer t;
    t.d = std::move(impl);
    return t;
}

Tokenizer Tokenizer::fromFolder(const std::string& folder)
{
    const std::filesystem::path dir(folder);
    const auto tokenizerPath = dir / "tokenizer.json";
    std::error_code ec;
    if (!std::filesystem::exists(tokenizerPath, ec))
        throw Error("no tokenizer.json in " + folder);
    // Present but not a regular file (a FIFO, a link to /dev/zero): readFile refuses it by name
    // rather than the folder being read as if the file were missing.
    const auto configPath = dir / "tokenizer_config.json";
    const std::string config = std::filesystem::exists(configPath, ec)
        ? io::readFile(configPath.string(), kMaxConfigFileBytes)
        : std::string();
    return fromJson(io::readFile(tokenizerPath.string(), kMaxTokenizerFileBytes), config);
}

namespace {

// A default-constructed Tokenizer has no Impl; using it is an error, not a crash.
const Tokenizer::Impl& impl(const std::shared_ptr<const Tokenizer::Impl>& d)
{
    if (!d)
        throw Error("the tokenizer is empty: make one with Tokenizer::fromJson or fromFolder");
    return *d;
}

} // namespace

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool addSpecial) const
{
    return impl(d).encode(text, addSpecial);
}

std::vector<std::string> Tokenizer::preTokenize(const std::string& text) const
{
    return impl(d).preTokenize(text);
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skipSpecial) const
{
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int64_t id : ids) {
        if (skipSpecial && isSpecial(id))
            continue;
        if (const std::string* p = impl(d).decodedPiece(id))
            tokens.push_back(*p); // ids with no entry are skipped, as Hugging Face does
    }
    return impl(d).decodeTokens(std::move(tokens), false);
}

std::string Tokenizer::tokenText(int64_t id) const
{
    const std::string* p = impl(d).decodedPiece(id);
    return p ? impl(d).decodeTokens({ *p }, true) : std::string();
}

std::string Tokenizer::piece(int64_t id) const
{
    const std::string* p = impl(d).piece(id);
    return p ? *p : std::string();
}

std::optional<int64_t> Tokenizer::pieceId(const std::string& piece) const
{
    return impl(d).pieceId(piece);
}

int64_t Tokenizer::vocabSize() const
{
    return impl(d).vocabSize;
}

std::optional<int64_t> Tokenizer::bosId() const
{
    return impl(d).bos;
}

std::optional<int64_t> Tokenizer::eosId() const
{
    return impl(d).eos;
}

bool Tokenizer::addsBos() const
{
    return !impl(d).frame.prefix.empty();
}

std::optional<int64_t> Tokenizer::padId() const
{
    return impl(d).pad;
}

std::optional<int64_t> Tokenizer::unkId() const
{
    return impl(d).unk;
}

bool Tokenizer::isSpecial(int64_t id) const
{
    const AddedToken* t = impl(d).addedToken(id);
    return t && t->special;
}

std::vector<int64_t> Tokenizer::specialIds() const
{
    const Impl& i = impl(d);
    std::vector<int64_t> ids;
    for (const AddedToken& t : i.added)
        if (t.special)
            ids.push_back(t.id);
    for (const auto& id : { i.bos, i.eos, i.pad, i.unk })
        if (id)
            ids.push_back(*id);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return ids;
}

std::string Tokenizer::kind() const
{
    return impl(d).byteLevel ? "byte-level" : "metaspace";
}

} // namespace cs::model
