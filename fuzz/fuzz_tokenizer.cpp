// tokenizer.json (cs::model::Tokenizer::fromJson), then text through the tokenizer it makes.
// Input: the tokenizer.json, then optionally a NUL byte and the text to encode (JSON text holds
// no raw NUL). Without one a few fixed texts are encoded.
#include "fuzz_common.h"

#include <cs/tokenizer.h>

#include <nlohmann/json.hpp>

#include <cstring>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const char* chars = reinterpret_cast<const char*>(data);
    const char* nul = static_cast<const char*>(std::memchr(chars, 0, size));
    const std::string json(chars, nul ? size_t(nul - chars) : size);
    std::vector<std::string> texts;
    if (nul)
        texts.emplace_back(nul + 1, chars + size);
    else
        texts = { "Hello world", " the  cat's 123\n\tend", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \xff\xfe" };
    try {
        const cs::model::Tokenizer tokenizer = cs::model::Tokenizer::fromJson(json);
        for (const auto& text : texts) {
            (void)tokenizer.preTokenize(text);
            const std::vector<int64_t> ids = tokenizer.encode(text, true);
            (void)tokenizer.decode(ids, false);
            (void)tokenizer.decode(ids, true);
            for (int64_t id : ids) {
                (void)tokenizer.tokenText(id);
                (void)tokenizer.pieceId(tokenizer.piece(id));
            }
        }
        (void)tokenizer.specialIds();
        (void)tokenizer.decode({ -1, 0, 1, tokenizer.vocabSize(), int64_t(1) << 40 });
    } catch (const cs::Error& e) {
        cs::fuzz::refused(e);
    }
    return 0;
}
