// Byte-level BPE training (Sennrich et al. 2016, on bytes as GPT-2 does) for tinyworld.
//
// The words are cut by the very pre-tokenizer the emitted tokenizer.json declares: a skeleton
// file with that pre-tokenizer and only the byte vocabulary is loaded with cs::model::Tokenizer
// and its preTokenize() splits the lines, so training and encoding cannot disagree on word
// boundaries. Unique lines are pre-tokenized once, unique words are counted once, and each
// merge updates the pair counts of only the words that contain the merged pair.

#include "cs/organism.h"

#include "cs/error.h"
#include "cs/tokenizer.h"
#include "cs/utf8.h"
#include "text/pretokenize.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <unordered_map>
#include <unordered_set>

namespace cs::organism {

namespace {

using OrderedJson = nlohmann::ordered_json;

// GPT-2's byte alphabet (bytes_to_unicode), as UTF-8 strings; index = byte.
std::vector<std::string> byteAlphabet()
{
    std::vector<std::string> chars(256);
    for (uint32_t b = 0; b < 256; ++b)
        utf8::append(chars[b], model::byteToChar(static_cast<uint8_t>(b)));
    return chars;
}

// Digits one per word first, then GPT-2's regex and byte mapping (docs/ARCHITECTURE.md §10:
// addition is learned far better with one token per digit).
OrderedJson preTokenizerJson()
{
    return { { "type", "Sequence" },
        { "pretokenizers",
            OrderedJson::array({ { { "type", "Digits" }, { "individual_digits", true } },
                { { "type", "ByteLevel" }, { "add_prefix_space", false }, { "trim_offsets", true },
                    { "use_regex", true } } }) } };
}

// The whole tokenizer.json for a vocabulary (id order) and merges.
std::string tokenizerJson(const std::vector<std::string>& specials, const std::vector<std::string>& tokens,
    const std::vector<std::string>& merges)
{
    OrderedJson added = OrderedJson::array();
    for (size_t i = 0; i < specials.size(); ++i)
        added.push_back({ { "id", i }, { "content", specials[i] }, { "single_word", false }, { "lstrip", false },
            { "rstrip", false }, { "normalized", false }, { "special", true } });

    OrderedJson postProcessor = nullptr;
    if (!specials.empty()) {
        const std::string& bos = specials.front();
        const auto special = [&](int typeId) {
            return OrderedJson { { "SpecialToken", { { "id", bos }, { "type_id", typeId } } } };
        };
        const auto sequence = [](const char* id, int typeId) {
            return OrderedJson { { "Sequence", { { "id", id }, { "type_id", typeId } } } };
        };
        postProcessor
            = { { "type", "TemplateProcessing" }, { "single", OrderedJson::array({ special(0), sequence("A", 0) }) },
                  { "pair", OrderedJson::array({ special(0), sequence("A", 0), special(1), sequence("B", 1) }) },
                  { "special_tokens",
                      { { bos,
                          { { "id", bos }, { "ids", OrderedJson::array({ 0 }) },
                              { "tokens", OrderedJson::array({ bos }) } } } } } };
    }

    OrderedJson vocab = OrderedJson::object();
    for (size_t i = 0; i < specials.size(); ++i)
        vocab[specials[i]] = i;
    for (size_t i = 0; i < tokens.size(); ++i)
        vocab[tokens[i]] = specials.size() + i;

    OrderedJson j;
    j["version"] = "1.0";
    j["truncation"] = nullptr;
    j["padding"] = nullptr;
    j["added_tokens"] = added;
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = preTokenizerJson();
    j["post_processor"] = postProcessor;
    j["decoder"]
        = { { "type", "ByteLevel" }, { "add_prefix_space", true }, { "trim_offsets", true }, { "use_regex", true } };
    j["model"] = { { "type", "BPE" }, { "dropout", nullptr }, { "unk_token", nullptr },
        { "continuing_subword_prefix", nullptr }, { "end_of_word_suffix", nullptr }, { "fuse_unk", false },
        { "byte_fallback", false }, { "ignore_merges", false }, { "vocab", vocab }, { "merges", merges } };
    return j.dump(2);
}

// Code-point boundaries of a UTF-8 string (the pre-tokenizer output is valid UTF-8).
std::vector<std::string> splitChars(const std::string& s)
{
    std::vector<std::string> out;
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        const size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
        out.push_back(s.substr(i, len));
        i += len;
    }
    return out;
}

uint64_t pairKey(int32_t a, int32_t b)
{
    return (static_cast<uint64_t>(a) << 32) | static_cast<uint32_t>(b);
}
int32_t pairLeft(uint64_t key)
{
    return static_cast<int32_t>(key >> 32);
}
int32_t pairRight(uint64_t key)
{
    return static_cast<int32_t>(key & 0xFFFFFFFFu);
}

} // namespace

std::string trainBpeTokenizerJson(const std::vector<std::string>& lines, const BpeOptions& options)
{
    const std::vector<std::string>& specials = options.specialTokens;
    const auto nSpecials = static_cast<int64_t>(specials.size());
    if (options.vocabSize < nSpecials + 256)
        throw Error("BPE training: a vocabulary of " + std::to_string(options.vocabSize)
            + " cannot hold the special tokens and the 256 byte tokens");

    // Token strings in id order, without the specials (id = index + nSpecials when written).
    std::vector<std::string> tokens = byteAlphabet();
    std::unordered_map<std::string, int32_t> tokenIds;
    for (size_t i = 0; i < tokens.size(); ++i)
        tokenIds[tokens[i]] = static_cast<int32_t>(i);

    // 1. Words and their counts, cut by the declared pre-tokenizer.
    const model::Tokenizer skeleton = model::Tokenizer::fromJson(tokenizerJson(specials, tokens, {}));
    std::unordered_map<std::string, int64_t> lineCounts;
    for (const std::string& line : lines)
        ++lineCounts[line];
    std::unordered_map<std::string, int64_t> wordCounts;
    const std::unordered_set<std::string> specialSet(specials.begin(), specials.end());
    for (const auto& [line, count] : lineCounts)
        for (std::string& word : skeleton.preTokenize(line))
            if (!specialSet.count(word))
                wordCounts[std::move(word)] += count;

    // Sorted, so the word order (and with it everything below) does not depend on hashing.
    std::vector<std::pair<std::string, int64_t>> sortedWords(wordCounts.begin(), wordCounts.end());
    std::sort(sortedWords.begin(), sortedWords.end());
    std::vector<std::vector<int32_t>> words; // symbol ids of each word
    std::vector<int64_t> counts;
    words.reserve(sortedWords.size());
    for (const auto& [word, count] : sortedWords) {
        std::vector<int32_t> symbols;
        for (const std::string& c : splitChars(word)) {
            const auto it = tokenIds.find(c);
            if (it == tokenIds.end())
                throw Error("BPE training: the pre-tokenizer produced a character outside the byte alphabet");
            symbols.push_back(it->second);
        }
        words.push_back(std::move(symbols));
        counts.push_back(count);
    }

    // 2. Pair counts (weighted by word counts) and, for each pair, the words that may hold it
    //    (a superset: entries go stale when a merge removes the pair from a word).
    std::unordered_map<uint64_t, int64_t> pairCounts;
    std::unordered_map<uint64_t, std::vector<int32_t>> pairWords;
    const auto addWordPairs = [&](int32_t w, int64_t sign) {
        const std::vector<int32_t>& s = words[static_cast<size_t>(w)];
        for (size_t i = 0; i + 1 < s.size(); ++i) {
            const uint64_t key = pairKey(s[i], s[i + 1]);
            const int64_t c = (pairCounts[key] += sign * counts[static_cast<size_t>(w)]);
            if (c == 0)
                pairCounts.erase(key);
            if (sign > 0)
                pairWords[key].push_back(w);
        }
    };
    for (size_t w = 0; w < words.size(); ++w)
        addWordPairs(static_cast<int32_t>(w), +1);

    // 3. Merge until the vocabulary is full or no pair is frequent enough.
    std::vector<std::string> merges;
    std::vector<uint32_t> visited(words.size(), 0); // merge number that last touched each word
    while (nSpecials + static_cast<int64_t>(tokens.size()) < options.vocabSize) {
        uint64_t best = 0;
        int64_t bestCount = 0;
        for (const auto& [key, count] : pairCounts) {
            if (count < bestCount)
                continue;
            if (count == bestCount) {
                // Ties go to the lexicographically smallest (left, right).
                const std::string& l = tokens[static_cast<size_t>(pairLeft(key))];
                const std::string& bl = tokens[static_cast<size_t>(pairLeft(best))];
                const int byLeft = l.compare(bl);
                if (byLeft > 0
                    || (byLeft == 0
                        && tokens[static_cast<size_t>(pairRight(key))].compare(
                               tokens[static_cast<size_t>(pairRight(best))])
                            >= 0))
                    continue;
            }
            best = key;
            bestCount = count;
        }
        if (bestCount < std::max<int64_t>(options.minPairCount, 1))
            break;

        const int32_t left = pairLeft(best);
        const int32_t right = pairRight(best);
        const std::string merged = tokens[static_cast<size_t>(left)] + tokens[static_cast<size_t>(right)];
        merges.push_back(tokens[static_cast<size_t>(left)] + " " + tokens[static_cast<size_t>(right)]);
        int32_t mergedId;
        if (const auto it = tokenIds.find(merged); it != tokenIds.end()) {
            mergedId = it->second; // reached before by another split of the same string
        } else {
            mergedId = static_cast<int32_t>(tokens.size());
            tokens.push_back(merged);
            tokenIds.emplace(merged, mergedId);
        }

        const auto stamp = static_cast<uint32_t>(merges.size());
        const std::vector<int32_t> candidates = std::move(pairWords[best]);
        pairWords.erase(best);
        for (const int32_t w : candidates) {
            if (visited[static_cast<size_t>(w)] == stamp)
                continue;
            visited[static_cast<size_t>(w)] = stamp;
            std::vector<int32_t>& s = words[static_cast<size_t>(w)];
            bool holds = false;
            for (size_t i = 0; i + 1 < s.size() && !holds; ++i)
                holds = s[i] == left && s[i + 1] == right;
            if (!holds)
                continue;
            addWordPairs(w, -1);
            // Left to right, non-overlapping, as the tokenizer applies a merge.
            std::vector<int32_t> next;
            next.reserve(s.size());
            for (size_t i = 0; i < s.size(); ++i) {
                if (i + 1 < s.size() && s[i] == left && s[i + 1] == right) {
                    next.push_back(mergedId);
                    ++i;
                } else {
                    next.push_back(s[i]);
                }
            }
            s = std::move(next);
            addWordPairs(w, +1);
        }
    }

    return tokenizerJson(specials, tokens, merges);
}

std::string bpeTokenizerConfigJson(const BpeOptions& options)
{
    const std::vector<std::string>& specials = options.specialTokens;
    OrderedJson j;
    j["tokenizer_class"] = "PreTrainedTokenizerFast";
    j["bos_token"] = specials.size() > 0 ? OrderedJson(specials[0]) : OrderedJson(nullptr);
    j["eos_token"] = specials.size() > 1 ? OrderedJson(specials[1]) : OrderedJson(nullptr);
    j["pad_token"] = specials.size() > 2 ? OrderedJson(specials[2]) : OrderedJson(nullptr);
    j["add_bos_token"] = !specials.empty();
    j["add_eos_token"] = false;
    j["clean_up_tokenization_spaces"] = false;
    return j.dump(2);
}

} // namespace cs::organism
