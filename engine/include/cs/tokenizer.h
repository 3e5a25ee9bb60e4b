#pragma once
// A Hugging Face `tokenizer.json` BPE tokenizer: byte-level BPE (GPT-2, Llama 3, Qwen) with
// the pre-tokenizer regex the file names, and metaspace / sentencepiece-style BPE with byte
// fallback (Gemma, Llama 2). Added and special tokens are matched before pre-tokenization;
// BOS is added as the file's post-processor (or tokenizer_config.json) says.
// Strings are UTF-8 bytes; invalid UTF-8 survives encode/decode where the model can express
// it (every byte in byte-level BPE, <0xXX> tokens under byte fallback).

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cs::model {

class Tokenizer {
public:
    // Parses a tokenizer.json; throws cs::Error for malformed or unsupported files
    // (the message says which model/pre-tokenizer/decoder kind is not supported).
    static Tokenizer fromJson(const std::string& tokenizerJson, const std::string& tokenizerConfigJson = {});
    // Reads FOLDER/tokenizer.json and, when present, FOLDER/tokenizer_config.json.
    static Tokenizer fromFolder(const std::string& folder);

    // Text to ids; with addSpecial the post-processor's tokens (BOS) are added.
    std::vector<int64_t> encode(const std::string& text, bool addSpecial = true) const;
    // The words encode() hands to BPE, in the model's alphabet ("Ġworld", "▁the"): added tokens
    // split off (each appears as its content), then the normalizer and pre-tokenizer applied.
    std::vector<std::string> preTokenize(const std::string& text) const;
    // Ids to text, the inverse of encode for any text; special tokens are kept unless skipped.
    // Ids with no vocabulary entry (padded embedding rows) are skipped, as Hugging Face does.
    std::string decode(const std::vector<int64_t>& ids, bool skipSpecial = false) const;
    // One token as text (its bytes decoded on their own; may be a partial UTF-8 sequence), as
    // it reads inside a text: "▁the" gives " the" even where decode() would strip the space.
    // Empty for an id with no vocabulary entry.
    std::string tokenText(int64_t id) const;
    // The vocabulary entry as written in the file ("Ġthe", "▁the", "<0x0A>"); empty for an id
    // with no entry.
    std::string piece(int64_t id) const;
    std::optional<int64_t> pieceId(const std::string& piece) const;

    int64_t vocabSize() const; // highest id + 1, added tokens included
    std::optional<int64_t> bosId() const;
    std::optional<int64_t> eosId() const;
    bool addsBos() const;
    std::optional<int64_t> padId() const; // tokenizer_config.json's pad_token
    std::optional<int64_t> unkId() const; // the model's unk_token
    // An added token marked "special" in tokenizer.json (what decode(..., skipSpecial) skips).
    bool isSpecial(int64_t id) const;
    // Every special token, sorted: the added tokens marked special and the BOS, EOS, PAD and
    // UNK tokens (what transformers' all_special_ids names, and more where a file marks more).
    std::vector<int64_t> specialIds() const;
    std::string kind() const; // "byte-level" or "metaspace"

    struct Impl;

private:
    std::shared_ptr<const Impl> d;
};

} // namespace cs::model
