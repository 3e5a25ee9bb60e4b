// The tokenizer against hand-computed expectations. Every fixture is a small tokenizer.json
// built here in the style of a real family (GPT-2, Llama 3, Qwen 2, Llama 2, Gemma, tinyworld's
// digit splitting); the expected ids follow from the merges each fixture lists, worked out in
// the comments. Pre-tokenizer splits are the ones Hugging Face tokenizers produces for the
// family's pattern.

#include "cs/error.h"
#include "cs/tokenizer.h"

#include <QElapsedTimer>
#include <QTemporaryDir>
#include <QtTest/QtTest>

#include "utf8_encode.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <functional>
#include <random>
#include <stdexcept>
#include <sys/stat.h>

using cs::model::Tokenizer;
using json = nlohmann::json;

namespace {

// ---------------------------------------------------------------- helpers

std::string utf8(char32_t cp)
{
    return cs::test::utf8Encode(cp);
}

// GPT-2's bytes_to_unicode, written out again so the fixtures do not lean on the code under
// test: printable bytes stand for themselves, the others take U+0100 upwards in byte order.
bool printableByte(int b)
{
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

std::string byteChar(int b)
{
    if (printableByte(b))
        return utf8(static_cast<char32_t>(b));
    int n = 0;
    for (int k = 0; k < b; ++k)
        if (!printableByte(k))
            ++n;
    return utf8(static_cast<char32_t>(256 + n));
}

// Byte b has id b.
json byteLevelVocab()
{
    json vocab = json::object();
    for (int b = 0; b < 256; ++b)
        vocab[byteChar(b)] = b;
    return vocab;
}

json addedToken(int id, const std::string& content, bool special, bool normalized = false, bool lstrip = false,
    bool rstrip = false, bool singleWord = false)
{
    return { { "id", id }, { "content", content }, { "single_word", singleWord }, { "lstrip", lstrip },
        { "rstrip", rstrip }, { "normalized", normalized }, { "special", special } };
}

json bpeModel(const json& vocab, const json& merges)
{
    return { { "type", "BPE" }, { "dropout", nullptr }, { "unk_token", nullptr },
        { "continuing_subword_prefix", nullptr }, { "end_of_word_suffix", nullptr }, { "fuse_unk", false },
        { "byte_fallback", false }, { "ignore_merges", false }, { "vocab", vocab }, { "merges", merges } };
}

json byteLevelStep(bool useRegex)
{
    return { { "type", "ByteLevel" }, { "add_prefix_space", false }, { "trim_offsets", true },
        { "use_regex", useRegex } };
}

const char* const kLlama3Pattern
    = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern
    = R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// ---------------------------------------------------------------- fixtures

// GPT-2 style: ByteLevel pre-tokenizer with its built-in regex, merges in the "a b" form.
// Ids 0..255 are the bytes; the merges below get 256..266 in order, so a lower id is a lower
// rank. Added: <|endoftext|> 267, <mask> 268 (lstrip), "ab" 269 (single_word, not special).
json gpt2Json()
{
    json vocab = byteLevelVocab();
    const std::vector<std::pair<std::string, std::string>> merges = {
        { "Ġ", "w" }, // 256 Ġw
        { "o", "r" }, // 257 or
        { "Ġw", "or" }, // 258 Ġwor
        { "l", "d" }, // 259 ld
        { "Ġwor", "ld" }, // 260 Ġworld
        { "H", "e" }, // 261 He
        { "l", "l" }, // 262 ll
        { "He", "ll" }, // 263 Hell
        { "Hell", "o" }, // 264 Hello
        { "'", "s" }, // 265 's
        { "Ġ", "Ġ" }, // 266 ĠĠ
    };
    json list = json::array();
    int next = 256;
    for (const auto& [a, b] : merges) {
        vocab[a + b] = next++;
        list.push_back(a + " " + b);
    }
    return { { "version", "1.0" }, { "truncation", nullptr }, { "padding", nullptr },
        { "added_tokens",
            json::array({ addedToken(267, "<|endoftext|>", true), addedToken(268, "<mask>", true, false, true),
                addedToken(269, "ab", false, false, false, false, true) }) },
        { "normalizer", nullptr }, { "pre_tokenizer", byteLevelStep(true) }, { "post_processor", byteLevelStep(true) },
        { "decoder", byteLevelStep(true) }, { "model", bpeModel(vocab, list) } };
}

// Llama 3 style: Split(regex) then ByteLevel without its own regex, ignore_merges, merges in
// the [["a","b"]] form, BOS from a TemplateProcessing inside a Sequence. Bytes 0..255, merges
// he 256, ll 257, hell 258, hello 259; "Ġhello" 260, "123" 261 and "45" 262 are in the
// vocabulary but no merge makes them (only ignore_merges reaches them whole).
// <|begin_of_text|> 263, <|end_of_text|> 264.
json llama3Json(bool ignoreMerges = true, const char* pattern = kLlama3Pattern)
{
    json vocab = byteLevelVocab();
    const std::vector<std::pair<std::string, std::string>> merges
        = { { "h", "e" }, { "l", "l" }, { "he", "ll" }, { "hell", "o" } };
    json list = json::array();
    int next = 256;
    for (const auto& [a, b] : merges) {
        vocab[a + b] = next++;
        list.push_back({ a, b });
    }
    vocab["Ġhello"] = 260;
    vocab["123"] = 261;
    vocab["45"] = 262;
    json model = bpeModel(vocab, list);
    model["ignore_merges"] = ignoreMerges;
    const json bos = { { "SpecialToken", { { "id", "<|begin_of_text|>" }, { "type_id", 0 } } } };
    const json template_ = { { "type", "TemplateProcessing" },
        { "single", json::array({ bos, { { "Sequence", { { "id", "A" }, { "type_id", 0 } } } } }) },
        { "pair",
            json::array({ bos, { { "Sequence", { { "id", "A" }, { "type_id", 0 } } } }, bos,
                { { "Sequence", { { "id", "B" }, { "type_id", 1 } } } } }) },
        { "special_tokens",
            { { "<|begin_of_text|>",
                { { "id", "<|begin_of_text|>" }, { "ids", json::array({ 263 }) },
                    { "tokens", json::array({ "<|begin_of_text|>" }) } } } } } };
    return { { "version", "1.0" }, { "truncation", nullptr }, { "padding", nullptr },
        { "added_tokens",
            json::array({ addedToken(263, "<|begin_of_text|>", true), addedToken(264, "<|end_of_text|>", true) }) },
        { "normalizer", nullptr },
        { "pre_tokenizer",
            { { "type", "Sequence" },
                { "pretokenizers",
                    json::array({ { { "type", "Split" }, { "pattern", { { "Regex", pattern } } },
                                      { "behavior", "Isolated" }, { "invert", false } },
                        byteLevelStep(false) }) } } },
        { "post_processor",
            { { "type", "Sequence" }, { "processors", json::array({ byteLevelStep(true), template_ }) } } },
        { "decoder", byteLevelStep(true) }, { "model", model } };
}

// tinyworld style: Digits (one token per digit) in front of GPT-2's ByteLevel. Merges ca 256,
// lc 257, calc 258.
json digitsJson(bool individual = true)
{
    json vocab = byteLevelVocab();
    vocab["ca"] = 256;
    vocab["lc"] = 257;
    vocab["calc"] = 258;
    json tok = gpt2Json();
    tok["added_tokens"] = json::array();
    tok["model"] = bpeModel(vocab, json::array({ "c a", "l c", "ca lc" }));
    tok["pre_tokenizer"] = { { "type", "Sequence" },
        { "pretokenizers",
            json::array({ { { "type", "Digits" }, { "individual_digits", individual } }, byteLevelStep(true) }) } };
    return tok;
}

// Sentencepiece style with byte fallback (Llama 2 as converted by transformers): the
// normalizer prepends "▁" and turns spaces into "▁", there is no pre-tokenizer (the whole
// text is one word), and the decoder undoes it all, stripping the one prepended space.
// Ids: <unk> 0, <s> 1, </s> 2, <0x00>..<0xFF> 3..258, ▁ 259, h 260, e 261, l 262, o 263,
// w 264, r 265, d 266, then the merges in rank order:
//   ▁h 267, el 268, ▁hel 269, lo 270, ▁hello 271, ▁w 272, or 273, ▁wor 274, ld 275, ▁world 276.
const char* const kSp = "\xE2\x96\x81"; // ▁

json sentencepieceVocab()
{
    json vocab = { { "<unk>", 0 }, { "<s>", 1 }, { "</s>", 2 } };
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        vocab[name] = 3 + b;
    }
    int next = 259;
    for (const std::string& s : { std::string(kSp), std::string("h"), std::string("e"), std::string("l"),
             std::string("o"), std::string("w"), std::string("r"), std::string("d") })
        vocab[s] = next++;
    return vocab;
}

json sentencepieceMerges(json& vocab)
{
    const std::string sp = kSp;
    const std::vector<std::pair<std::string, std::string>> merges
        = { { sp, "h" }, { "e", "l" }, { sp + "h", "el" }, { "l", "o" }, { sp + "hel", "lo" }, { sp, "w" },
              { "o", "r" }, { sp + "w", "or" }, { "l", "d" }, { sp + "wor", "ld" } };
    json list = json::array();
    int next = 267;
    for (const auto& [a, b] : merges) {
        vocab[a + b] = next++;
        list.push_back(a + " " + b);
    }
    return list;
}

json replaceStep(const std::string& from, const std::string& to)
{
    return { { "type", "Replace" }, { "pattern", { { "String", from } } }, { "content", to } };
}

json llama2Json(bool withTemplate = true)
{
    json vocab = sentencepieceVocab();
    const json merges = sentencepieceMerges(vocab);
    json model = bpeModel(vocab, merges);
    model["unk_token"] = "<unk>";
    model["fuse_unk"] = true;
    model["byte_fallback"] = true;
    json post = nullptr;
    if (withTemplate) {
        const json bos = { { "SpecialToken", { { "id", "<s>" }, { "type_id", 0 } } } };
        post = { { "type", "TemplateProcessing" },
            { "single", json::array({ bos, { { "Sequence", { { "id", "A" }, { "type_id", 0 } } } } }) },
            { "pair", json::array() },
            { "special_tokens",
                { { "<s>",
                    { { "id", "<s>" }, { "ids", json::array({ 1 }) }, { "tokens", json::array({ "<s>" }) } } } } } };
    }
    return { { "version", "1.0" }, { "truncation", nullptr }, { "padding", nullptr },
        { "added_tokens",
            json::array({ addedToken(0, "<unk>", true), addedToken(1, "<s>", true), addedToken(2, "</s>", true) }) },
        { "normalizer",
            { { "type", "Sequence" },
                { "normalizers",
                    json::array({ { { "type", "Prepend" }, { "prepend", kSp } }, replaceStep(" ", kSp) }) } } },
        { "pre_tokenizer", nullptr }, { "post_processor", post },
        { "decoder",
            { { "type", "Sequence" },
                { "decoders",
                    json::array({ replaceStep(kSp, " "), { { "type", "ByteFallback" } }, { { "type", "Fuse" } },
                        { { "type", "Strip" }, { "content", " " }, { "start", 1 }, { "stop", 0 } } }) } } },
        { "model", model } };
}

// Gemma style: spaces become "▁" but nothing is prepended, so the decoder strips nothing.
json gemmaJson()
{
    json tok = llama2Json();
    tok["normalizer"] = replaceStep(" ", kSp);
    tok["decoder"]["decoders"].erase(3);
    return tok;
}

// Metaspace pre-tokenizer and decoder (the newer conversion of sentencepiece models).
json metaspaceJson(const std::string& scheme, bool split)
{
    json tok = llama2Json();
    tok["normalizer"] = nullptr;
    tok["pre_tokenizer"]
        = { { "type", "Metaspace" }, { "replacement", kSp }, { "prepend_scheme", scheme }, { "split", split } };
    tok["decoder"]
        = { { "type", "Metaspace" }, { "replacement", kSp }, { "prepend_scheme", scheme }, { "split", split } };
    return tok;
}

// A one-letter model behind an arbitrary normalizer / pre-tokenizer, to look at their output.
json textStagesJson(const json& normalizer, const json& preTokenizer)
{
    return { { "added_tokens", json::array() }, { "normalizer", normalizer }, { "pre_tokenizer", preTokenizer },
        { "post_processor", nullptr }, { "decoder", nullptr },
        { "model", bpeModel(json { { "a", 0 } }, json::array()) } };
}

json splitStep(const std::string& kind, const std::string& pattern, const std::string& behavior, bool invert)
{
    return { { "type", "Split" }, { "pattern", { { kind, pattern } } }, { "behavior", behavior },
        { "invert", invert } };
}

Tokenizer load(const json& tok, const json& config = nullptr)
{
    return Tokenizer::fromJson(tok.dump(), config.is_null() ? std::string() : config.dump());
}

Tokenizer fixture(const QString& name)
{
    if (name == "gpt2")
        return load(gpt2Json());
    if (name == "llama3")
        return load(llama3Json());
    if (name == "digits")
        return load(digitsJson());
    if (name == "llama2")
        return load(llama2Json());
    if (name == "gemma")
        return load(gemmaJson());
    throw std::logic_error("no fixture named " + name.toStdString());
}

QString ids(const std::vector<int64_t>& v)
{
    QStringList parts;
    for (int64_t id : v)
        parts << QString::number(id);
    return parts.join(' ');
}

QStringList pieces(const std::vector<std::string>& v)
{
    QStringList out;
    for (const auto& s : v)
        out << QString::fromStdString(s);
    return out;
}

QStringList list(std::initializer_list<const char*> items)
{
    QStringList out;
    for (const char* s : items)
        out << QString::fromUtf8(s);
    return out;
}

QByteArray bytes(const std::string& s)
{
    return QByteArray(s.data(), static_cast<qsizetype>(s.size()));
}
std::string str(const QByteArray& b)
{
    return std::string(b.constData(), static_cast<size_t>(b.size()));
}

// The message of the cs::Error that fn throws, or an empty string when it throws none.
QString errorOf(const std::function<void()>& fn)
{
    try {
        fn();
    } catch (const cs::Error& e) {
        return QString::fromStdString(e.what());
    }
    return {};
}

} // namespace

class TestTokenizer : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void gpt2Encode_data();
    void gpt2Encode();
    void gpt2PreTokenize_data();
    void gpt2PreTokenize();
    void gpt2AddedTokens();
    void specialIds();
    void gpt2Vocabulary();
    void llama3Encode_data();
    void llama3Encode();
    void llama3PreTokenize_data();
    void llama3PreTokenize();
    void digits();
    void sentencepieceEncode_data();
    void sentencepieceEncode();
    void sentencepieceDecode();
    void unknownCharacters();
    void metaspacePreTokenizer();
    void regexFeatures_data();
    void regexFeatures();
    void splitBehaviors_data();
    void splitBehaviors();
    void normalizers_data();
    void normalizers();
    void bosAndEos();
    void roundTrip_data();
    void roundTrip();
    void sentencepieceLosesMetaspace();
    void randomRoundTrip_data();
    void randomRoundTrip();
    void refused_data();
    void refused();
    void emptyTokenizer();
    void fromFolder();
    void speed();
};

// ---------------------------------------------------------------- GPT-2

void TestTokenizer::gpt2Encode_data()
{
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QString>("expected");

    // Words "Hello" "Ġworld" "'s" "Ġ" "Ġend". Hello: H e (rank 6) then l l (7), He ll (8),
    // Hell o (9) -> 264. Ġworld: Ġ w (1), o r (2), Ġw or (3), l d (4), Ġwor ld (5) -> 260.
    // 's (10) -> 265. "Ġ" is byte 0x20 -> 32. Ġend has no merge: 32 e n d.
    QTest::newRow("sentence") << QByteArray("Hello world's  end") << "264 260 265 32 32 101 110 100";
    // "a", "ĠĠ" (\s+(?!\S) leaves the last space to the word), "Ġb": Ġ Ġ (11) -> 266.
    QTest::newRow("spaces") << QByteArray("a   b") << "97 266 32 98";
    // No merge applies to "Hel" alone beyond H e: He l -> 261 108.
    QTest::newRow("partial") << QByteArray("Hel") << "261 108";
    QTest::newRow("empty") << QByteArray("") << "";
    // Bytes of é (C3 A9) are ids 195 169; of the invalid byte FF, 255.
    QTest::newRow("non-ascii") << QByteArray("\xC3\xA9\xFF") << "195 169 255";
    QTest::newRow("special") << QByteArray("Hello<|endoftext|> world") << "264 267 260";
}

void TestTokenizer::gpt2Encode()
{
    QFETCH(QByteArray, text);
    QFETCH(QString, expected);
    const Tokenizer tok = fixture("gpt2");
    QCOMPARE(ids(tok.encode(str(text))), expected);
    QCOMPARE(ids(tok.encode(str(text), false)), expected); // GPT-2 adds no BOS
}

void TestTokenizer::gpt2PreTokenize_data()
{
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QStringList>("expected");
    // What Hugging Face's ByteLevel(use_regex) gives, in the byte alphabet (Ġ space, Ċ \n).
    QTest::newRow("contraction") << QByteArray("Hello world's  end") << list({ "Hello", "Ġworld", "'s", "Ġ", "Ġend" });
    QTest::newRow("numbers") << QByteArray("I'm 12 years old!!") << list({ "I", "'m", "Ġ12", "Ġyears", "Ġold", "!!" });
    QTest::newRow("newlines") << QByteArray("a\n\nb") << list({ "a", "Ċ", "Ċ", "b" });
    // GPT-2's contractions are case-sensitive: 'LL is punctuation then letters.
    QTest::newRow("upper contraction") << QByteArray("HE'LL") << list({ "HE", "'", "LL" });
    QTest::newRow("punctuation") << QByteArray("$3.50 !?") << list({ "$", "3", ".", "50", "Ġ!?" });
    QTest::newRow("trailing spaces") << QByteArray("end   ") << list({ "end", "ĠĠĠ" });
}

void TestTokenizer::gpt2PreTokenize()
{
    QFETCH(QByteArray, text);
    QFETCH(QStringList, expected);
    QCOMPARE(pieces(fixture("gpt2").preTokenize(str(text))), expected);
}

void TestTokenizer::gpt2AddedTokens()
{
    const Tokenizer tok = fixture("gpt2");
    // <mask> has lstrip: it swallows the space before it; " b" stays a word (Ġ b).
    QCOMPARE(ids(tok.encode("a <mask> b")), QString("97 268 32 98"));
    // "ab" is single_word: not inside "xab", but on its own after a space.
    QCOMPARE(ids(tok.encode("xab ab")), QString("120 97 98 32 269"));
    // Word characters are Unicode's Word property (Rust regex's \w): a letter number such as Ⅲ
    // continues the word, so "ab" stays text; ½ (No) does not, so "ab" is the token.
    QCOMPARE(ids(tok.encode("ab\xE2\x85\xA2")), QString("97 98 226 133 162"));
    QCOMPARE(ids(tok.encode("ab\xC2\xBD")), QString("269 194 189"));
    // Special tokens decode as written unless skipped.
    QCOMPARE(bytes(tok.decode({ 264, 267, 260 })), QByteArray("Hello<|endoftext|> world"));
    QCOMPARE(bytes(tok.decode({ 264, 267, 260 }, true)), QByteArray("Hello world"));
    QVERIFY(tok.isSpecial(267));
    QVERIFY(tok.isSpecial(268));
    QVERIFY(!tok.isSpecial(269));
    QVERIFY(!tok.isSpecial(264));
    // An id with no entry (a padded embedding row) decodes to nothing, as in Hugging Face.
    QCOMPARE(bytes(tok.decode({ 264, 5000, 260 })), QByteArray("Hello world"));
}

// Every special token: added tokens marked special, and BOS, EOS, PAD and UNK by their roles
// (what transformers' all_special_ids names), whether or not the file marks them.
void TestTokenizer::specialIds()
{
    // gpt2: <|endoftext|> (BOS and EOS by its name) and <mask>, the two marked special.
    QCOMPARE(fixture("gpt2").specialIds(), std::vector<int64_t>({ 267, 268 }));
    // llama2 with no added token marked special: <unk> (the model's unk_token), <s> and </s>
    // (tokenizer_config.json's BOS and EOS) and the PAD it names.
    json tok = llama2Json();
    for (auto& t : tok["added_tokens"])
        t["special"] = false;
    const Tokenizer t = load(tok, { { "bos_token", "<s>" }, { "eos_token", "</s>" }, { "pad_token", "<0x00>" } });
    const int64_t pad = *t.pieceId("<0x00>");
    QVERIFY(!t.isSpecial(0) && !t.isSpecial(1) && !t.isSpecial(2));
    QCOMPARE(t.unkId(), std::optional<int64_t>(0));
    QCOMPARE(t.padId(), std::optional<int64_t>(pad));
    std::vector<int64_t> want { 0, 1, 2, pad };
    std::sort(want.begin(), want.end());
    QCOMPARE(t.specialIds(), want);
    // A PAD the vocabulary lacks is left out, not an error.
    QCOMPARE(load(tok, { { "pad_token", "<nope>" } }).padId(), std::optional<int64_t>());
}

void TestTokenizer::gpt2Vocabulary()
{
    const Tokenizer tok = fixture("gpt2");
    QCOMPARE(bytes(tok.kind()), QByteArray("byte-level"));
    QCOMPARE(tok.vocabSize(), int64_t(270));
    QCOMPARE(bytes(tok.piece(260)), QByteArray("Ġworld"));
    QCOMPARE(bytes(tok.tokenText(260)), QByteArray(" world"));
    QCOMPARE(bytes(tok.tokenText(0xC3)), QByteArray("\xC3")); // half a character on its own
    QCOMPARE(bytes(tok.piece(267)), QByteArray("<|endoftext|>"));
    QCOMPARE(tok.pieceId("Ġworld"), std::optional<int64_t>(260));
    QCOMPARE(tok.pieceId("<|endoftext|>"), std::optional<int64_t>(267));
    QVERIFY(!tok.pieceId("nope").has_value());
    QCOMPARE(tok.piece(9999), std::string());
    QCOMPARE(tok.tokenText(-1), std::string());
    // No post-processor template and no config: no BOS added; BOS/EOS guessed by name.
    QVERIFY(!tok.addsBos());
    QCOMPARE(tok.bosId(), std::optional<int64_t>(267));
    QCOMPARE(tok.eosId(), std::optional<int64_t>(267));
}

// ---------------------------------------------------------------- Llama 3 / Qwen 2

void TestTokenizer::llama3Encode_data()
{
    QTest::addColumn<bool>("ignoreMerges");
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QString>("expected");
    // Words: "hello" "Ġhello" "Ġ" "123" "45" (\p{N}{1,3} takes three digits at most).
    // With ignore_merges each word found whole in the vocabulary is that token: 259 260 32 261
    // 262. BOS 263 first.
    QTest::newRow("ignore_merges") << true << QByteArray("hello hello 12345") << "263 259 260 32 261 262";
    // Without it "Ġhello" is merged: he, ll, hell, hello -> Ġ 259; digits stay bytes (0x31.. = 49..).
    QTest::newRow("merges") << false << QByteArray("hello hello 12345") << "263 259 32 259 32 49 50 51 52 53";
    QTest::newRow("special in text") << true << QByteArray("hello<|end_of_text|>") << "263 259 264";
    QTest::newRow("empty") << true << QByteArray("") << "263";
}

void TestTokenizer::llama3Encode()
{
    QFETCH(bool, ignoreMerges);
    QFETCH(QByteArray, text);
    QFETCH(QString, expected);
    const Tokenizer tok = load(llama3Json(ignoreMerges));
    QCOMPARE(ids(tok.encode(str(text))), expected);
    QVERIFY(tok.addsBos());
    QCOMPARE(tok.bosId(), std::optional<int64_t>(263));
    QCOMPARE(bytes(tok.decode(tok.encode(str(text), false))), text);
}

void TestTokenizer::llama3PreTokenize_data()
{
    QTest::addColumn<QString>("pattern");
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QStringList>("expected");
    const QString llama3 = QString::fromUtf8(kLlama3Pattern);
    const QString qwen2 = QString::fromUtf8(kQwen2Pattern);
    // "I" ; "'m" ; "  " (\s+(?!\S) keeps one space for " fine") ; " fine" ; ".\n\n" (punctuation
    // takes the newlines after it) ; "OK" ; "?" ; " " (\s+(?!\S)) ; " " (\s+) ; "123" ; "45".
    QTest::newRow("llama3 sentence") << llama3 << QByteArray("I'm   fine.\n\nOK?  12345")
                                     << list({ "I", "'m", "ĠĠ", "Ġfine", ".ĊĊ", "OK", "?", "Ġ", "Ġ", "123", "45" });
    QTest::newRow("llama3 case-insensitive contraction") << llama3 << QByteArray("HE'LL") << list({ "HE", "'LL" });
    QTest::newRow("llama3 punctuation joins the word") << llama3 << QByteArray("(hello)") << list({ "(hello", ")" });
    // \s*[\r\n]+ takes "\n\n"; then " " and " y".
    QTest::newRow("llama3 newlines") << llama3 << QByteArray("x\n\n  y") << list({ "x", "ĊĊ", "Ġ", "Ġy" });
    QTest::newRow("llama3 digits") << llama3 << QByteArray("word1234567") << list({ "word", "123", "456", "7" });
    QTest::newRow("qwen2 digits") << qwen2 << QByteArray("12345") << list({ "1", "2", "3", "4", "5" });
}

void TestTokenizer::llama3PreTokenize()
{
    QFETCH(QString, pattern);
    QFETCH(QByteArray, text);
    QFETCH(QStringList, expected);
    const std::string p = pattern.toStdString();
    const Tokenizer tok = load(llama3Json(true, p.c_str()));
    QCOMPARE(pieces(tok.preTokenize(str(text))), expected);
}

// ---------------------------------------------------------------- digits (tinyworld)

void TestTokenizer::digits()
{
    const Tokenizer tok = load(digitsJson(true));
    // Digits cuts "calc: ", then each digit alone and the operators between; ByteLevel's regex
    // cuts "calc: " into "calc" ":" "Ġ". calc: c a (1), l c (2), ca lc (3) -> 258.
    QCOMPARE(
        pieces(tok.preTokenize("calc: 36+59=95")), list({ "calc", ":", "Ġ", "3", "6", "+", "5", "9", "=", "9", "5" }));
    QCOMPARE(ids(tok.encode("calc: 36+59=95")), QString("258 58 32 51 54 43 53 57 61 57 53"));
    QCOMPARE(bytes(tok.decode(tok.encode("calc: 36+59=95"))), QByteArray("calc: 36+59=95"));

    // individual_digits false keeps runs of digits together.
    const Tokenizer runs = load(textStagesJson(nullptr, { { "type", "Digits" }, { "individual_digits", false } }));
    QCOMPARE(pieces(runs.preTokenize("ab 123x45")), list({ "ab ", "123", "x", "45" }));
    const Tokenizer each = load(textStagesJson(nullptr, { { "type", "Digits" }, { "individual_digits", true } }));
    QCOMPARE(pieces(each.preTokenize("ab 123x45")), list({ "ab ", "1", "2", "3", "x", "4", "5" }));
}

// ---------------------------------------------------------------- sentencepiece style

void TestTokenizer::sentencepieceEncode_data()
{
    QTest::addColumn<QString>("fixtureName");
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QString>("expected");
    // Llama 2: "▁hello▁world" is one word. ▁ h (1) -> ▁h; e l (2) -> el; ▁h el (3) -> ▁hel;
    // l o (4) on the second l -> lo; ▁hel lo (5) -> ▁hello 271; likewise ▁w (6), or (7),
    // ▁wor (8), ld (9), ▁world (10) 276. BOS 1 first.
    QTest::newRow("llama2 words") << "llama2" << QByteArray("hello world") << "1 271 276";
    // 你 is not in the vocabulary: its bytes E4 BD A0 -> <0xE4> <0xBD> <0xA0> = 3 + byte.
    QTest::newRow("llama2 byte fallback") << "llama2" << QByteArray("hello \xE4\xBD\xA0") << "1 271 259 231 192 163";
    // An invalid byte falls back to its <0xXX> token too: ▁ then <0xFF> 258.
    QTest::newRow("llama2 invalid byte") << "llama2" << QByteArray("\xFF") << "1 259 258";
    // Two spaces: "▁hello▁▁world"; (▁,▁) has no merge, so one ▁ stays alone.
    QTest::newRow("llama2 double space") << "llama2" << QByteArray("hello  world") << "1 271 259 276";
    // Gemma: no ▁ in front, so "hello" is h el lo (no ▁h to start ▁hel); then ▁world.
    QTest::newRow("gemma") << "gemma" << QByteArray("hello world") << "1 260 268 270 276";
}

void TestTokenizer::sentencepieceEncode()
{
    QFETCH(QString, fixtureName);
    QFETCH(QByteArray, text);
    QFETCH(QString, expected);
    const Tokenizer tok = fixture(fixtureName);
    QCOMPARE(bytes(tok.kind()), QByteArray("metaspace"));
    QCOMPARE(ids(tok.encode(str(text))), expected);
    QCOMPARE(tok.decode(tok.encode(str(text)), true), str(text));
}

void TestTokenizer::sentencepieceDecode()
{
    const Tokenizer tok = fixture("llama2");
    // Replace ▁ -> " ", ByteFallback, Fuse, then Strip removes the one prepended space.
    QCOMPARE(bytes(tok.decode({ 271, 276 })), QByteArray("hello world"));
    QCOMPARE(bytes(tok.decode({ 271, 259, 231, 192, 163 })), QByteArray("hello \xE4\xBD\xA0"));
    // Bytes that are not UTF-8 come back as the same bytes.
    QCOMPARE(bytes(tok.decode({ 259, 258, 257 })), QByteArray("\xFF\xFE"));
    // Special tokens go through the decoder too: "<s>" then " hello", nothing to strip.
    QCOMPARE(bytes(tok.decode({ 1, 271 })), QByteArray("<s> hello"));
    QCOMPARE(bytes(tok.decode({ 1, 271 }, true)), QByteArray("hello"));
    // One token as it reads inside a text: the space stays.
    QCOMPARE(bytes(tok.tokenText(271)), QByteArray(" hello"));
    QCOMPARE(bytes(tok.tokenText(231)), QByteArray("\xE4"));
    QCOMPARE(bytes(tok.piece(231)), QByteArray("<0xE4>"));
    QCOMPARE(tok.piece(271), std::string(kSp) + "hello");
}

void TestTokenizer::unknownCharacters()
{
    // Without byte fallback, characters outside the vocabulary become <unk>; fuse_unk joins a run.
    json spec = llama2Json();
    spec["model"]["byte_fallback"] = false;
    // ▁h (267), then 你你 -> one fused <unk>.
    QCOMPARE(ids(load(spec).encode("h\xE4\xBD\xA0\xE4\xBD\xA0", false)), QString("267 0"));
    spec["model"]["fuse_unk"] = false;
    QCOMPARE(ids(load(spec).encode("h\xE4\xBD\xA0\xE4\xBD\xA0", false)), QString("267 0 0"));
    // With no unk_token at all the character is dropped (as Hugging Face does).
    spec["model"]["unk_token"] = nullptr;
    QCOMPARE(ids(load(spec).encode("h\xE4\xBD\xA0", false)), QString("267"));
}

void TestTokenizer::metaspacePreTokenizer()
{
    // prepend_scheme always + split: "▁hello", "▁", "▁world" (each ▁ starts a word).
    const Tokenizer always = load(metaspaceJson("always", true));
    const std::string sp = kSp;
    QCOMPARE(always.preTokenize("hello  world"), (std::vector<std::string> { sp + "hello", sp, sp + "world" }));
    QCOMPARE(ids(always.encode("hello  world", false)), QString("271 259 276"));
    // The Metaspace decoder drops the first token's ▁ and turns the others into spaces.
    QCOMPARE(bytes(always.decode({ 271, 259, 276 })), QByteArray("hello  world"));

    // prepend_scheme first, no split: ▁ only at the very start of the input, not after <s>.
    // "hello" alone: h, el (2), lo (4) -> 260 268 270.
    const Tokenizer first = load(metaspaceJson("first", false));
    QCOMPARE(ids(first.encode("hello<s>hello", false)), QString("271 1 260 268 270"));
    QCOMPARE(ids(first.encode("hello world", false)), QString("271 276"));
}

// ---------------------------------------------------------------- the regex engine

void TestTokenizer::regexFeatures_data()
{
    // Split(pattern, Removed, invert) keeps exactly the matches, so the output lists them.
    QTest::addColumn<QString>("pattern");
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QStringList>("matches");
    QTest::newRow("lazy") << R"(a+?)" << QByteArray("aaa") << list({ "a", "a", "a" });
    QTest::newRow("greedy backtracks") << R"(a+a)" << QByteArray("aaab") << list({ "aaa" });
    QTest::newRow("possessive") << R"(a++a)" << QByteArray("aaab") << QStringList();
    QTest::newRow("possessive star") << R"(a*+b)" << QByteArray("aaab") << list({ "aaab" });
    QTest::newRow("atomic group") << R"((?>a+)a)" << QByteArray("aaa") << QStringList();
    QTest::newRow("{m,n}") << R"(\d{2,3})" << QByteArray("12345") << list({ "123", "45" });
    QTest::newRow("{m}") << R"(\d{2})" << QByteArray("12345") << list({ "12", "34" });
    QTest::newRow("{m,}") << R"(\d{2,})" << QByteArray("1 22 333") << list({ "22", "333" });
    QTest::newRow("{m}b") << R"(a{2}b)" << QByteArray("aaab") << list({ "aab" });
    QTest::newRow("range") << R"([a-c]+)" << QByteArray("abcdcba") << list({ "abc", "cba" });
    QTest::newRow("negated class") << R"([^a-c\s]+)" << QByteArray("ab xyz c") << list({ "xyz" });
    QTest::newRow("escapes in class") << R"([\]\-]+)" << QByteArray("a]-b") << list({ "]-" });
    QTest::newRow("Lu") << R"([\p{Lu}]+)" << QByteArray("abcDEFgh") << list({ "DEF" });
    QTest::newRow("Ll") << R"(\p{Ll}+)" << QByteArray("abcDEFgh") << list({ "abc", "gh" });
    QTest::newRow("P{L}") << R"(\P{L}+)" << QByteArray("ab12cd!") << list({ "12", "!" });
    QTest::newRow("pN") << R"(\pN+)" << QByteArray("a1b22") << list({ "1", "22" });
    QTest::newRow("Unicode letters") << R"(\p{L}+)" << QByteArray("d\xC3\xA9j\xC3\xA0 \xE4\xB8\xAD\xE6\x96\x87")
                                     << list({ "déjà", "中文" });
    QTest::newRow("Unicode digits") << R"(\d+)" << QByteArray("x\xD9\xA3\xD9\xA4y") << list({ "٣٤" });
    QTest::newRow("punctuation class") << R"([^\s\p{L}\p{N}]+)" << QByteArray("ab!?12 ..") << list({ "!?", ".." });
    QTest::newRow("case-insensitive group")
        << R"((?i:abc))" << QByteArray("ABC aBc abc") << list({ "ABC", "aBc", "abc" });
    QTest::newRow("inline flag") << R"((?i)x[a-c])" << QByteArray("XA xb Xd") << list({ "XA", "xb" });
    QTest::newRow("lookahead") << R"(a(?=b))" << QByteArray("ab ac ab") << list({ "a", "a" });
    QTest::newRow("negative lookahead") << R"(a(?!b))" << QByteArray("ab ac ab") << list({ "a" });
    QTest::newRow("line start") << R"(^\w)" << QByteArray("ab\ncd") << list({ "a", "c" });
    QTest::newRow("line end") << R"(\w$)" << QByteArray("ab\ncd") << list({ "b", "d" });
    QTest::newRow("word boundary") << R"(\bfo)" << QByteArray("fo foo afo") << list({ "fo", "fo" });
    QTest::newRow("optional") << R"(colou?r)" << QByteArray("color colour") << list({ "color", "colour" });
    // Leftmost-first, not longest: "cat" wins over "category" because it is listed first.
    QTest::newRow("leftmost-first") << R"(cat|category)" << QByteArray("category") << list({ "cat" });
    QTest::newRow("leftmost-first groups") << R"((?:ab|a)(?:bc)?)" << QByteArray("abc") << list({ "ab" });
    QTest::newRow("repeated group") << R"((ab)+)" << QByteArray("ababab abx") << list({ "ababab", "ab" });
    QTest::newRow("hex escapes") << R"(\x41\u0042\x{43})" << QByteArray("ABC") << list({ "ABC" });
    QTest::newRow("Unicode spaces") << R"(\s+)"
                                    << QByteArray("a \t\xC2\xA0\xE3\x80\x80"
                                                  "b")
                                    << list({ " \t\xC2\xA0\xE3\x80\x80" });
    QTest::newRow("dot skips newline") << R"(.+)" << QByteArray("ab\ncd") << list({ "ab", "cd" });
    QTest::newRow("escaped dot") << R"(\.)" << QByteArray("a.b") << list({ "." });
    QTest::newRow("literal brace") << R"(a{b)" << QByteArray("a{b") << list({ "a{b" });
    // Oniguruma's \w is letters, marks, numbers (½ too) and connector punctuation; not ZWJ.
    QTest::newRow("word characters") << R"(\w+)"
                                     << QByteArray("a\xC2\xBD_b\xE2\x80\x8D"
                                                   "c")
                                     << list({ "a½_b", "c" });
    QTest::newRow("named group and comment") << R"((?<x>a)(?#note)b)" << QByteArray("ab") << list({ "ab" });
}

void TestTokenizer::regexFeatures()
{
    QFETCH(QString, pattern);
    QFETCH(QByteArray, text);
    QFETCH(QStringList, matches);
    const Tokenizer tok = load(textStagesJson(nullptr, splitStep("Regex", pattern.toStdString(), "Removed", true)));
    QCOMPARE(pieces(tok.preTokenize(str(text))), matches);
}

void TestTokenizer::splitBehaviors_data()
{
    QTest::addColumn<QString>("kind");
    QTest::addColumn<QString>("pattern");
    QTest::addColumn<QString>("behavior");
    QTest::addColumn<bool>("invert");
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QStringList>("expected");
    // "a b  c" cut at each space, as Hugging Face's SplitDelimiterBehavior defines.
    QTest::newRow("removed") << "String"
                             << " "
                             << "Removed" << false << QByteArray("a b  c") << list({ "a", "b", "c" });
    QTest::newRow("isolated") << "String"
                              << " "
                              << "Isolated" << false << QByteArray("a b  c") << list({ "a", " ", "b", " ", " ", "c" });
    QTest::newRow("merged with previous")
        << "String"
        << " "
        << "MergedWithPrevious" << false << QByteArray("a b  c") << list({ "a ", "b ", " ", "c" });
    QTest::newRow("merged with next") << "String"
                                      << " "
                                      << "MergedWithNext" << false << QByteArray("a b  c")
                                      << list({ "a", " b", " ", " c" });
    QTest::newRow("contiguous") << "String"
                                << " "
                                << "Contiguous" << false << QByteArray("a b  c") << list({ "a", " ", "b", "  ", "c" });
    QTest::newRow("inverted removed") << "Regex"
                                      << R"(\d+)"
                                      << "Removed" << true << QByteArray("ab12cd34") << list({ "12", "34" });
    QTest::newRow("literal is not a regex") << "String"
                                            << "."
                                            << "Isolated" << false << QByteArray("a.b") << list({ "a", ".", "b" });
    QTest::newRow("no match") << "String"
                              << ","
                              << "Removed" << false << QByteArray("abc") << list({ "abc" });
}

void TestTokenizer::splitBehaviors()
{
    QFETCH(QString, kind);
    QFETCH(QString, pattern);
    QFETCH(QString, behavior);
    QFETCH(bool, invert);
    QFETCH(QByteArray, text);
    QFETCH(QStringList, expected);
    const Tokenizer tok = load(
        textStagesJson(nullptr, splitStep(kind.toStdString(), pattern.toStdString(), behavior.toStdString(), invert)));
    QCOMPARE(pieces(tok.preTokenize(str(text))), expected);
}

// ---------------------------------------------------------------- normalizers

void TestTokenizer::normalizers_data()
{
    QTest::addColumn<QByteArray>("normalizer");
    QTest::addColumn<QByteArray>("text");
    QTest::addColumn<QByteArray>("expected");
    const QByteArray nfc = R"({"type": "NFC"})";
    QTest::newRow("NFC e+acute") << nfc << QByteArray("e\xCC\x81") << QByteArray("\xC3\xA9");
    // Marks in the wrong order are reordered first: e + U+0302 + U+0323 -> U+1EC7 (ệ).
    QTest::newRow("NFC reorders marks") << nfc << QByteArray("e\xCC\x82\xCC\xA3") << QByteArray("\xE1\xBB\x87");
    // Conjoining jamo compose arithmetically: U+1100 U+1161 U+11A8 -> U+AC01.
    QTest::newRow("NFC hangul") << nfc << QByteArray("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8")
                                << QByteArray("\xEA\xB0\x81");
    // A singleton: ANGSTROM SIGN U+212B -> U+00C5.
    QTest::newRow("NFC singleton") << nfc << QByteArray("\xE2\x84\xAB") << QByteArray("\xC3\x85");
    QTest::newRow("NFC keeps invalid bytes") << nfc << QByteArray("e\xCC\x81\xFF") << QByteArray("\xC3\xA9\xFF");
    QTest::newRow("NFD") << QByteArray(R"({"type": "NFD"})") << QByteArray("\xEA\xB0\x81\xC3\xA9")
                         << QByteArray("\xE1\x84\x80\xE1\x85\xA1\xE1\x86\xA8"
                                       "e\xCC\x81");
    QTest::newRow("NFD Latin Extended") << QByteArray(R"({"type": "NFD"})") << QByteArray("\xC4\x85")
                                        << QByteArray("a\xCC\xA8");
    QTest::newRow("Replace regex") << QByteArray(R"({"type": "Replace", "pattern": {"Regex": "\\s+"}, "content": "_"})")
                                   << QByteArray("a  b\tc") << QByteArray("a_b_c");
    QTest::newRow("Prepend") << QByteArray(R"({"type": "Prepend", "prepend": "#"})") << QByteArray("x")
                             << QByteArray("#x");
    QTest::newRow("Strip") << QByteArray(R"({"type": "Strip", "strip_left": true, "strip_right": true})")
                           << QByteArray("  a b \n") << QByteArray("a b");
    QTest::newRow("Sequence") << QByteArray(R"({"type": "Sequence", "normalizers": [{"type": "NFC"},
        {"type": "Replace", "pattern": {"String": "\u00e9"}, "content": "E"}]})")
                              << QByteArray("e\xCC\x81t\xC3\xA9") << QByteArray("EtE");
}

void TestTokenizer::normalizers()
{
    QFETCH(QByteArray, normalizer);
    QFETCH(QByteArray, text);
    QFETCH(QByteArray, expected);
    const Tokenizer tok = load(textStagesJson(json::parse(str(normalizer)), nullptr));
    const auto out = tok.preTokenize(str(text));
    QCOMPARE(out.size(), size_t(1));
    QCOMPARE(bytes(out.front()), expected);
}

// ---------------------------------------------------------------- BOS / EOS

void TestTokenizer::bosAndEos()
{
    // Llama 2 files with no post-processor: tokenizer_config.json's add_bos_token decides.
    const json config = { { "add_bos_token", true }, { "add_eos_token", false },
        { "bos_token", { { "__type", "AddedToken" }, { "content", "<s>" } } }, { "eos_token", "</s>" } };
    const Tokenizer withConfig = load(llama2Json(false), config);
    QVERIFY(withConfig.addsBos());
    QCOMPARE(withConfig.bosId(), std::optional<int64_t>(1));
    QCOMPARE(withConfig.eosId(), std::optional<int64_t>(2));
    QCOMPARE(ids(withConfig.encode("hello")), QString("1 271"));
    QCOMPARE(ids(withConfig.encode("hello", false)), QString("271"));

    // add_eos_token appends EOS.
    json eosConfig = config;
    eosConfig["add_eos_token"] = true;
    QCOMPARE(ids(load(llama2Json(false), eosConfig).encode("hello")), QString("1 271 2"));

    // No post-processor and no config: nothing is added, but BOS is still known by name.
    const Tokenizer bare = load(llama2Json(false));
    QVERIFY(!bare.addsBos());
    QCOMPARE(ids(bare.encode("hello")), QString("271"));
    QCOMPARE(bare.bosId(), std::optional<int64_t>(1));

    // transformers' LlamaTokenizerFast rebuilds the template from the config, so
    // add_bos_token false wins over the file's template.
    json noBos = config;
    noBos["add_bos_token"] = false;
    noBos["tokenizer_class"] = "LlamaTokenizerFast";
    QCOMPARE(ids(load(llama2Json(true), noBos).encode("hello")), QString("271"));
    // Other classes keep the file's post-processor.
    noBos["tokenizer_class"] = "PreTrainedTokenizerFast";
    QCOMPARE(ids(load(llama2Json(true), noBos).encode("hello")), QString("1 271"));

    // A config that asks for a BOS it cannot name is refused.
    const json broken = { { "add_bos_token", true }, { "bos_token", "<nope>" } };
    QVERIFY(errorOf([&] { load(llama2Json(false), broken); }).contains("<nope>"));
}

// ---------------------------------------------------------------- round trips

void TestTokenizer::roundTrip_data()
{
    QTest::addColumn<QString>("fixtureName");
    QTest::addColumn<QByteArray>("text");
    const QList<QPair<const char*, QByteArray>> texts = {
        { "plain", QByteArray("Hello world") }, { "empty", QByteArray("") },
        { "edge spaces", QByteArray("  leading and trailing  ") },
        { "tabs and newlines", QByteArray("tabs\tand\nnewlines\n\n") }, { "two newlines", QByteArray("\n\n") },
        { "three spaces", QByteArray("   ") },
        { "emoji ZWJ",
            QByteArray("family \xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA9\xE2\x80\x8D\xF0\x9F\x91\xA7 !") },
        { "combining marks", QByteArray("e\xCC\x81 a\xCC\x8A\xCC\x81 n\xCC\x83") },
        { "arabic",
            QByteArray(
                "\xD8\xA7\xD9\x84\xD8\xB9\xD8\xB1\xD8\xA8\xD9\x8A\xD8\xA9 \xD9\x85\xD8\xB1\xD8\xAD\xD8\xA8\xD8\xA7") },
        { "cjk", QByteArray("\xE4\xB8\xAD\xE6\x96\x87\xE5\xAD\x97 \xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E") },
        { "digits", QByteArray("calc: 36+59=95 and 1234567890") }, { "contractions", QByteArray("HE'LL I'm 'S we've") },
        { "invalid bytes", QByteArray("\xFF\xFE") }, { "truncated euro", QByteArray("\xE2\x82") },
        { "bad continuation", QByteArray("mixed \xC3\x28 invalid") }, { "lone continuation", QByteArray("\x80 lone") },
        { "surrogate bytes", QByteArray("\xED\xA0\x80") }, { "nul byte", QByteArray("a\0b", 3) },
        { "alphabet characters", QByteArray("\xC4\xA0 and \xC4\x8A") }, // Ġ and Ċ typed by the user
    };
    for (const char* f : { "gpt2", "llama3", "digits", "llama2", "gemma" })
        for (const auto& [name, text] : texts)
            QTest::addRow("%s: %s", f, name) << QString(f) << text;
    // A "▁" typed by the user survives byte-level models (see sentencepieceLosesMetaspace).
    for (const char* f : { "gpt2", "llama3", "digits" })
        QTest::addRow("%s: metaspace character", f) << QString(f)
                                                    << QByteArray("a\xE2\x96\x81"
                                                                  "b \xE2\x96\x81");
}

void TestTokenizer::roundTrip()
{
    QFETCH(QString, fixtureName);
    QFETCH(QByteArray, text);
    const Tokenizer tok = fixture(fixtureName);
    QCOMPARE(bytes(tok.decode(tok.encode(str(text), false))), text);
    QCOMPARE(bytes(tok.decode(tok.encode(str(text), true), true)), text);
}

void TestTokenizer::sentencepieceLosesMetaspace()
{
    // Sentencepiece-style models write spaces as "▁", so a "▁" in the input is a space to them
    // (the ids are the same); decoding gives a space back. Hugging Face and sentencepiece
    // behave the same: this is the one thing these models cannot round-trip.
    for (const char* f : { "llama2", "gemma" }) {
        const Tokenizer tok = fixture(f);
        const std::string typed = std::string("hello") + kSp + "world";
        QCOMPARE(ids(tok.encode(typed, false)), ids(tok.encode("hello world", false)));
        QCOMPARE(bytes(tok.decode(tok.encode(typed, false))), QByteArray("hello world"));
    }
}

void TestTokenizer::randomRoundTrip_data()
{
    QTest::addColumn<QString>("fixtureName");
    for (const char* f : { "gpt2", "llama3", "digits", "llama2", "gemma" })
        QTest::newRow(f) << QString(f);
}

void TestTokenizer::randomRoundTrip()
{
    QFETCH(QString, fixtureName);
    const Tokenizer tok = fixture(fixtureName);
    const bool sentencepiece = tok.kind() == "metaspace";
    std::mt19937 rng(20240611);
    const std::vector<std::string> chars = { "\xC3\xA9", "\xE4\xB8\xAD", "\xF0\x9F\x98\x80", "\xE2\x96\x81", "\xCC\x81",
        "\xC4\xA0", "\xE2\x80\x8D", "'s" };
    std::uniform_int_distribution<int> length(0, 48), kind(0, 99), byte(0, 255), printable(0x20, 0x7E);
    for (int round = 0; round < 300; ++round) {
        std::string text;
        const int n = length(rng);
        for (int k = 0; k < n; ++k) {
            const int r = kind(rng);
            if (r < 40) {
                char c = static_cast<char>(printable(rng));
                text.push_back(c == '<' ? '>' : c); // keep special-token spellings out
            } else if (r < 50) {
                text.push_back(' ');
            } else if (r < 55) {
                text.push_back(r % 2 ? '\n' : '\t');
            } else if (r < 75) {
                text.push_back(static_cast<char>(0x80 + byte(rng) % 0x80)); // mostly invalid
            } else if (r < 90) {
                text += chars[static_cast<size_t>(byte(rng)) % chars.size()];
            } else {
                const int b = byte(rng);
                text.push_back(static_cast<char>(b == '<' ? '>' : b));
            }
        }
        if (sentencepiece && text.find(kSp) != std::string::npos)
            continue; // it would come back as a space (see sentencepieceLosesMetaspace)
        const std::string back = tok.decode(tok.encode(text, false));
        if (back != text)
            QFAIL(qPrintable(QString("round %1: %2 came back as %3")
                                 .arg(round)
                                 .arg(QString::fromLatin1(bytes(text).toHex(' ')))
                                 .arg(QString::fromLatin1(bytes(back).toHex(' ')))));
    }
}

// ---------------------------------------------------------------- refused input

void TestTokenizer::refused_data()
{
    QTest::addColumn<QByteArray>("tokenizerJson");
    QTest::addColumn<QByteArray>("configJson");
    QTest::addColumn<QString>("fragment");
    const auto row = [](const char* name, const json& tok, const QString& fragment, const QByteArray& config = {}) {
        QTest::newRow(name) << bytes(tok.dump()) << config << fragment;
    };
    const auto withModelType = [](const char* type) {
        json t = gpt2Json();
        t["model"]["type"] = type;
        return t;
    };
    row("WordPiece model", withModelType("WordPiece"), "model type \"WordPiece\"");
    row("Unigram model", withModelType("Unigram"), "model type \"Unigram\"");
    row("WordLevel model", withModelType("WordLevel"), "model type \"WordLevel\"");
    json t = gpt2Json();
    t["pre_tokenizer"] = { { "type", "BertPreTokenizer" } };
    row("BertPreTokenizer", t, "pre-tokenizer type \"BertPreTokenizer\"");
    t = gpt2Json();
    t["normalizer"] = { { "type", "NFKC" } };
    row("NFKC", t, "normalizer type \"NFKC\"");
    t["normalizer"] = { { "type", "Lowercase" } };
    row("Lowercase", t, "normalizer type \"Lowercase\"");
    t = gpt2Json();
    t["decoder"] = { { "type", "WordPiece" }, { "prefix", "##" }, { "cleanup", true } };
    row("WordPiece decoder", t, "decoder type \"WordPiece\"");
    t["decoder"] = { { "type", "CTC" } };
    row("CTC decoder", t, "decoder type \"CTC\"");
    t = gpt2Json();
    t["post_processor"] = { { "type", "Mystery" } };
    row("post-processor", t, "post-processor type \"Mystery\"");
    t = gpt2Json();
    t["model"]["merges"].push_back("Ġ zzz");
    row("merge outside vocabulary", t, "not in the vocabulary");
    t = gpt2Json();
    t["model"]["merges"].push_back("a b c");
    row("bad merge", t, "one space");
    t = gpt2Json();
    t.erase("model");
    row("no model", t, "no \"model\"");
    t = gpt2Json();
    t["model"]["vocab"] = json::array();
    row("vocab not an object", t, "vocab");
    t = gpt2Json();
    t["model"]["vocab"]["x"] = "seven";
    row("vocab id not a number", t, "token id");
    t = gpt2Json();
    t["added_tokens"].push_back({ { "id", 300 } });
    row("added token without content", t, "content");
    const auto withRegex
        = [](const char* pattern) { return textStagesJson(nullptr, splitStep("Regex", pattern, "Isolated", false)); };
    row("unbalanced group", withRegex("(ab"), "regular expression");
    row("unbalanced paren", withRegex("ab)"), "unmatched ')'");
    row("lookbehind", withRegex("(?<=a)b"), "lookbehind");
    row("backreference", withRegex("(a)\\1"), "backreferences");
    row("unknown property", withRegex("\\p{Greek}"), "property");
    row("nothing to repeat", withRegex("*a"), "nothing to repeat");
    row("bad range", withRegex("[z-a]"), "range");
    row("unterminated class", withRegex("[abc"), "unterminated");
    row("bad repeat", withRegex("a{3,2}"), "n < m");
    row("unknown escape", withRegex("\\q"), "escape");
    row("unknown flag", withRegex("(?x)a"), "flag");
    t = textStagesJson(nullptr, splitStep("Regex", "a", "Sideways", false));
    row("unknown behavior", t, "behavior");
    t = textStagesJson(nullptr, { { "type", "Metaspace" }, { "replacement", "ab" } });
    row("long replacement", t, "one character");
    QTest::newRow("malformed JSON") << QByteArray(R"({"model": )") << QByteArray() << "not valid JSON";
    QTest::newRow("not an object") << QByteArray("[1, 2]") << QByteArray() << "JSON object";
    // Nesting that would run the stack out: refused with the depth, before any copy.
    QTest::newRow("nested 100,000 deep") << QByteArray::fromStdString(
        "{\"use_regex\": " + std::string(100000, '[') + std::string(100000, ']') + "}")
                                         << QByteArray() << "tokenizer.json: nested deeper than 512 levels";
    row("groups nested 20,000 deep", withRegex((std::string(20000, '(') + "a" + std::string(20000, ')')).c_str()),
        "groups nested deeper than 1000 levels");
    // Quantifiers stacked on one atom nest the tree as deeply (300,000: a SIGSEGV before).
    std::string stacked = "a";
    for (int i = 0; i < 300000; ++i)
        stacked += "{1}";
    row("quantifiers stacked 300,000 deep", withRegex(stacked.c_str()), "the pattern nests deeper than 4000 levels");
    QTest::newRow("bad config JSON") << bytes(gpt2Json().dump()) << QByteArray("{") << "tokenizer_config.json";
}

void TestTokenizer::refused()
{
    QFETCH(QByteArray, tokenizerJson);
    QFETCH(QByteArray, configJson);
    QFETCH(QString, fragment);
    const QString message = errorOf([&] { Tokenizer::fromJson(str(tokenizerJson), str(configJson)); });
    QVERIFY2(!message.isEmpty(), "no cs::Error thrown");
    QVERIFY2(message.contains(fragment), qPrintable(message));
}

void TestTokenizer::emptyTokenizer()
{
    const Tokenizer empty;
    QVERIFY(errorOf([&] { empty.encode("x"); }).contains("empty"));
    QVERIFY(errorOf([&] { empty.decode({ 1 }); }).contains("empty"));
}

// ---------------------------------------------------------------- files and speed

void TestTokenizer::fromFolder()
{
    QTemporaryDir dir;
    QVERIFY(dir.isValid());
    const std::string folder = dir.path().toStdString();
    QVERIFY(errorOf([&] { Tokenizer::fromFolder(folder); }).contains("no tokenizer.json"));
    {
        std::ofstream(folder + "/tokenizer.json") << llama2Json(false).dump();
        std::ofstream(folder + "/tokenizer_config.json")
            << json { { "add_bos_token", true }, { "bos_token", "<s>" }, { "eos_token", "</s>" } }.dump();
    }
    const Tokenizer tok = Tokenizer::fromFolder(folder);
    QCOMPARE(ids(tok.encode("hello world")), QString("1 271 276"));
    QCOMPARE(tok.eosId(), std::optional<int64_t>(2));

    // Either file a FIFO or a link to a device (issue 24): refused by name, never opened, and
    // not taken for a missing file.
    const QString config = QString::fromStdString(folder + "/tokenizer_config.json");
    QVERIFY(QFile::remove(config));
    QVERIFY(QFile::link("/dev/zero", config));
    QString message = errorOf([&] { Tokenizer::fromFolder(folder); });
    QVERIFY2(message.contains("tokenizer_config.json is not a regular file (a device)"), qPrintable(message));
    QVERIFY(QFile::remove(config));
    const std::string tokenizer = folder + "/tokenizer.json";
    QVERIFY(QFile::remove(QString::fromStdString(tokenizer)));
    QCOMPARE(::mkfifo(tokenizer.c_str(), 0600), 0);
    message = errorOf([&] { Tokenizer::fromFolder(folder); });
    QVERIFY2(message.contains("tokenizer.json is not a regular file (a FIFO)"), qPrintable(message));
}

void TestTokenizer::speed()
{
    // About 20 KB of mixed text, a 20,000-space run and a 20,000-letter word: each fixture must
    // get through all of it well within a second (and the long runs must not exhaust the stack).
    std::string text;
    while (text.size() < 20000)
        text += "The quick brown fox's 123 jumps\tover the lazy dog!\n\n  Caf\xC3\xA9 \xE4\xB8\xAD\xE6\x96\x87 "
                "\xF0\x9F\x98\x80 don't   stop 4567.89\n";
    const std::string spaces(20000, ' ');
    const std::string letters(20000, 'x');
    for (const char* f : { "gpt2", "llama3", "digits", "llama2", "gemma" }) {
        const Tokenizer tok = fixture(f);
        QElapsedTimer timer;
        timer.start();
        const auto ids = tok.encode(text, false);
        const auto idsSpaces = tok.encode(spaces + "x" + spaces, false);
        const auto idsLetters = tok.encode(letters, false);
        const qint64 ms = timer.elapsed();
        QVERIFY(!ids.empty() && !idsSpaces.empty() && !idsLetters.empty());
        QCOMPARE(tok.decode(ids), text);
        QVERIFY2(ms < 1000, qPrintable(QString("%1 took %2 ms").arg(f).arg(ms)));
        qInfo("%s: 20 KB text + long runs in %lld ms", f, ms);
    }
}

QTEST_GUILESS_MAIN(TestTokenizer)
#include "tst_tokenizer.moc"
