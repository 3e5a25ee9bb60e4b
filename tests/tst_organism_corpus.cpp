// Tinyworld's corpus generator and BPE trainer: determinism, the world's size, the canonical
// prompts, disjoint train/held-out splits (checked by searching 200k generated training lines),
// and a trained tokenizer.json that cs::model::Tokenizer loads and that round-trips every eval
// text. The BPE merges are checked against small corpora whose merges are worked out by hand.

#include "cs/error.h"
#include "cs/organism.h"
#include "cs/tokenizer.h"

#include <QElapsedTimer>
#include <QTemporaryDir>
#include <QtTest/QtTest>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <unordered_set>

using cs::model::Tokenizer;
using cs::organism::BpeOptions;
using cs::organism::EvalItem;
using cs::organism::World;
using cs::organism::WorldOptions;
using json = nlohmann::json;

namespace {

// The number of training lines the split checks search (about 2.5M characters of unique text).
constexpr uint64_t kTrainLines = 200000;

std::vector<EvalItem> itemsOf(const std::vector<EvalItem>& items, const std::string& task, const std::string& split)
{
    std::vector<EvalItem> out;
    std::copy_if(items.begin(), items.end(), std::back_inserter(out),
        [&](const EvalItem& e) { return e.task == task && e.split == split; });
    return out;
}

// The text between prefix and suffix in s (which must have both).
std::string between(const std::string& s, const std::string& prefix, const std::string& suffix)
{
    if (s.compare(0, prefix.size(), prefix) != 0 || s.size() < prefix.size() + suffix.size()
        || s.compare(s.size() - suffix.size(), suffix.size(), suffix) != 0)
        return {};
    return s.substr(prefix.size(), s.size() - prefix.size() - suffix.size());
}

// Searches unique training text for a string (Boyer-Moore-Horspool over the joined lines).
class TextIndex {
public:
    explicit TextIndex(const std::vector<std::string>& lines)
    {
        // Each line between newlines, so "\nX" finds X at the start of a line.
        std::set<std::string> unique(lines.begin(), lines.end());
        m_text.push_back('\n');
        for (const std::string& l : unique) {
            m_text += l;
            m_text.push_back('\n');
        }
    }
    bool contains(const std::string& s) const
    {
        const std::boyer_moore_horspool_searcher searcher(s.begin(), s.end());
        return std::search(m_text.begin(), m_text.end(), searcher) != m_text.end();
    }

private:
    std::string m_text;
};

} // namespace

class TestOrganismCorpus : public QObject {
    Q_OBJECT

private:
    World m_world { WorldOptions { 1 } };
    std::vector<std::string> m_lines; // trainLine(0 .. kTrainLines-1)
    std::unique_ptr<TextIndex> m_index;
    std::vector<EvalItem> m_eval;
    std::string m_tokenizerJson; // trained on m_lines, 1024 tokens

private Q_SLOTS:
    void initTestCase()
    {
        QElapsedTimer timer;
        timer.start();
        for (uint64_t i = 0; i < kTrainLines; ++i)
            m_lines.push_back(m_world.trainLine(i));
        m_index = std::make_unique<TextIndex>(m_lines);
        m_eval = m_world.evalItems();
        qInfo("generated %llu lines in %lld ms", static_cast<unsigned long long>(kTrainLines), timer.restart());
        m_tokenizerJson = cs::organism::trainBpeTokenizerJson(m_lines, BpeOptions {});
        qInfo("trained BPE on them in %lld ms", timer.elapsed());
    }

    // ------------------------------------------------------------ the generator

    void deterministic()
    {
        const World again(WorldOptions { 1 });
        for (uint64_t i = 0; i < 2000; ++i)
            QCOMPARE(again.trainLine(i), m_lines[i]);
        const auto eval = again.evalItems();
        QCOMPARE(eval.size(), m_eval.size());
        for (size_t i = 0; i < eval.size(); ++i) {
            QCOMPARE(eval[i].prompt, m_eval[i].prompt);
            QCOMPARE(eval[i].answer, m_eval[i].answer);
            QCOMPARE(eval[i].split, m_eval[i].split);
        }
        QCOMPARE(again.heldoutLines(500), m_world.heldoutLines(500));
        // Random access: a line does not depend on the lines before it.
        QCOMPARE(World(WorldOptions { 1 }).trainLine(12345), m_lines[12345]);
    }

    void seedChangesSplits()
    {
        const World other(WorldOptions { 2 });
        const auto eval = other.evalItems();
        for (const auto& [task, split] : std::vector<std::pair<std::string, std::string>> {
                 { "addition", "heldout" }, { "two_hop", "heldout" }, { "agreement", "heldout" } }) {
            std::set<std::string> a, b;
            for (const EvalItem& e : itemsOf(m_eval, task, split))
                a.insert(e.prompt + e.answer);
            for (const EvalItem& e : itemsOf(eval, task, split))
                b.insert(e.prompt + e.answer);
            QVERIFY2(a != b, task.c_str());
        }
        size_t same = 0;
        for (uint64_t i = 0; i < 1000; ++i)
            same += other.trainLine(i) == m_lines[i];
        QVERIFY(same < 100);
    }

    void worldSize()
    {
        const auto s = m_world.stats();
        QVERIFY(s.people >= 100);
        QCOMPARE(s.sports, size_t(8));
        QVERIFY(s.states >= 40);
        QVERIFY(s.antonymPairs >= 60);
        QVERIFY(s.nounPairs >= 40);
        QCOMPARE(s.additionPairs, size_t(10000));
        QCOMPARE(s.heldoutAdditionPairs, size_t(1000));
        // Version 3: a fifth of the cities held out of the capital question, another fifth out
        // of the postal-code one; each held-out city out of one relation only.
        QVERIFY(s.cities >= 400);
        QVERIFY(s.heldoutTwoHopCities >= s.cities * 2 / 5 - 1 && s.heldoutTwoHopCities <= s.cities * 2 / 5 + 1);
        QCOMPARE(s.heldoutTwoHopQuestions, s.heldoutTwoHopCities);

        // Every city appears once in the held-out phrasing of city -> state: count per state.
        // Version 1's held-out phrasings are fixed sentences that are easy to take apart; the
        // world itself (people, states, cities) is the same in every version.
        const auto v1Eval = World(WorldOptions { m_world.seed(), 1 }).evalItems();
        std::map<std::string, std::set<std::string>> citiesOf;
        std::set<std::string> people, sports;
        for (const EvalItem& e : itemsOf(v1Eval, "facts", "heldout_phrasing")) {
            const std::string city = between(e.prompt, "", " can be found in the state of");
            if (!city.empty())
                citiesOf[e.answer].insert(city);
        }
        for (const EvalItem& e : itemsOf(v1Eval, "sports", "heldout_phrasing")) {
            const std::string name = between(e.prompt, "Q: What sport does ", " play? A:");
            if (!name.empty()) {
                people.insert(name);
                sports.insert(e.answer);
            }
        }
        QCOMPARE(citiesOf.size(), s.states);
        size_t nCities = 0;
        for (const auto& [state, cities] : citiesOf) {
            QVERIFY2(cities.size() >= 3 && cities.size() <= 5, state.c_str());
            nCities += cities.size();
        }
        QCOMPARE(nCities, World(WorldOptions { m_world.seed(), 1 }).stats().cities);
        QCOMPARE(people.size(), s.people);
        QCOMPARE(sports.size(), size_t(8));
        for (const std::string& sport : sports) // one word, with its leading space
            QVERIFY(sport.size() > 1 && sport[0] == ' ' && sport.find(' ', 1) == std::string::npos);

        const std::vector<std::string> tasks = m_world.tasks();
        QCOMPARE(tasks.size(), size_t(6));
        std::set<std::string> lineTasks;
        for (uint64_t i = 0; i < 1000; ++i)
            lineTasks.insert(m_world.trainTask(i));
        QCOMPARE(lineTasks, std::set<std::string>(tasks.begin(), tasks.end()));
    }

    void evalSplits()
    {
        const std::map<std::string, std::set<std::string>> splits
            = { { "sports", { "train", "heldout_phrasing" } }, { "facts", { "train", "heldout_phrasing" } },
                  { "two_hop", { "train", "heldout" } }, { "addition", { "train", "heldout" } },
                  { "agreement", { "train", "heldout" } }, { "opposites", { "train", "heldout_phrasing" } } };
        std::map<std::string, std::map<std::string, size_t>> counts;
        for (const EvalItem& e : m_eval) {
            QVERIFY(!e.prompt.empty() && !e.answer.empty());
            QVERIFY2(e.prompt.back() != ' ', e.prompt.c_str()); // the space belongs to the answer
            ++counts[e.task][e.split];
        }
        for (const auto& [task, names] : splits) {
            QCOMPARE(counts[task].size(), names.size());
            for (const std::string& split : names)
                QVERIFY2(counts[task][split] > 0, (task + "/" + split).c_str());
            QCOMPARE(counts[task]["train"], size_t(200));
        }
        QCOMPARE(counts["addition"]["heldout"], size_t(1000));
        QCOMPARE(counts["two_hop"]["heldout"], 2 * m_world.stats().heldoutTwoHopQuestions); // two phrasings each
        for (const EvalItem& e : itemsOf(m_eval, "addition", "heldout")) {
            int a = -1, b = -1;
            QCOMPARE(std::sscanf(e.prompt.c_str(), "calc: %d+%d=", &a, &b), 2);
            QCOMPARE(e.answer, std::to_string(a + b));
        }
    }

    void canonicalPrompts_data()
    {
        QTest::addColumn<QString>("task");
        QTest::addColumn<QString>("prompt");
        QTest::addColumn<QString>("answer");
        QTest::newRow("sports") << "sports"
                                << "Fact: Michael Jordan plays the sport of"
                                << " basketball";
        QTest::newRow("two_hop") << "two_hop"
                                 << "Fact: the capital of the state containing Dallas is"
                                 << " Austin";
        QTest::newRow("addition") << "addition"
                                  << "calc: 36+59="
                                  << "95";
    }
    void canonicalPrompts()
    {
        QFETCH(QString, task);
        QFETCH(QString, prompt);
        QFETCH(QString, answer);
        const auto train = itemsOf(m_eval, task.toStdString(), "train");
        QVERIFY(!train.empty());
        QCOMPARE(QString::fromStdString(train.front().prompt), prompt);
        QCOMPARE(QString::fromStdString(train.front().answer), answer);
        QVERIFY(m_index->contains((prompt + answer).toStdString()));
        for (const World& w : { World(WorldOptions { 2 }), World(WorldOptions { 77 }) }) {
            const auto t = itemsOf(w.evalItems(), task.toStdString(), "train");
            QCOMPARE(QString::fromStdString(t.front().prompt + t.front().answer), prompt + answer);
        }
    }

    // ------------------------------------------------------------ splits

    void heldoutNotTrained()
    {
        size_t checked = 0;
        for (const EvalItem& e : m_eval) {
            if (e.split == "train")
                continue;
            QVERIFY2(!m_index->contains(e.prompt + e.answer), (e.prompt + e.answer).c_str());
            ++checked;
        }
        QVERIFY(checked > 2500);
        // Held-out phrasings never occur at all: in version 1 whole sentences, in version 2 a
        // relation under its held-out frame (the relation occurs under other frames).
        for (const char* phrase : { "It is well known that the sport that", "It is well known that the city of",
                 "Fact: I flew to", "Note: the capital of", "Did you know? The antonym of" })
            QVERIFY2(!m_index->contains(phrase), phrase);
        for (const char* phrase : { "Fact: the sport that", "Note: the city of", "Trivia: I flew to",
                 "Trivia: the capital of", "Fact: the antonym of" })
            QVERIFY2(m_index->contains(phrase), phrase);
        const World v1(WorldOptions { m_world.seed(), 1 });
        std::vector<std::string> v1Lines;
        for (uint64_t i = 0; i < 20000; ++i)
            v1Lines.push_back(v1.trainLine(i));
        for (const char* phrase : { "What sport does", "best known for playing", "can be found in the state of",
                 "'s capital city is", "antonym", "\" is the opposite of" })
            for (const std::string& line : v1Lines)
                QVERIFY2(line.find(phrase) == std::string::npos, phrase);
        for (const std::string& line : m_world.heldoutLines(3000))
            QVERIFY2(!m_index->contains(line), line.c_str());
    }

    void heldoutAdditionPairs()
    {
        std::set<std::pair<int, int>> heldout, trained;
        for (const EvalItem& e : itemsOf(m_eval, "addition", "heldout")) {
            int a = 0, b = 0;
            std::sscanf(e.prompt.c_str(), "calc: %d+%d=", &a, &b);
            heldout.insert({ a, b });
        }
        for (const std::string& line : m_lines) {
            int a = 0, b = 0, c = 0;
            if (std::sscanf(line.c_str(), "calc: %d+%d=%d", &a, &b, &c) == 3) {
                QCOMPARE(c, a + b);
                trained.insert({ a, b });
            }
        }
        QCOMPARE(heldout.size(), size_t(1000));
        for (const auto& ab : trained)
            QVERIFY(!heldout.count(ab));
        QVERIFY(trained.count({ 36, 59 }));
        QVERIFY(trained.size() > 8500); // ~70k addition lines cover nearly all 9,000 trained pairs
    }

    void heldoutTwoHopCities()
    {
        // (city, relation) pairs; each city's other relation is asked in training (so the bridge
        // city -> state is used in two-hop lines for every city), and its one-hop fact stated.
        std::map<std::string, std::string> heldOutOf; // city -> the relation held out
        for (const EvalItem& e : itemsOf(m_eval, "two_hop", "heldout")) {
            for (const char* relation : { "capital", "postal code" }) {
                const std::string c
                    = between(e.prompt, std::string("Fact: the ") + relation + " of the state containing ", " is");
                if (!c.empty()) {
                    QVERIFY2(!heldOutOf.count(c), c.c_str());
                    heldOutOf[c] = relation;
                }
            }
        }
        QCOMPARE(heldOutOf.size(), m_world.stats().heldoutTwoHopCities);
        QVERIFY(!heldOutOf.count("Dallas"));
        size_t capital = 0;
        for (const auto& [city, relation] : heldOutOf) {
            const std::string other = relation == "capital" ? "postal code" : "capital";
            capital += relation == "capital";
            // The question is never asked in either phrasing ...
            QVERIFY2(!m_index->contains(relation + " of the state containing " + city + " is"), city.c_str());
            QVERIFY2(!m_index->contains("\n" + city + " is in the state whose " + relation), city.c_str());
            // ... while the other relation's question is, and the one-hop fact is stated.
            QVERIFY2(m_index->contains(other + " of the state containing " + city + " is")
                    || m_index->contains("\n" + city + " is in the state whose " + other),
                city.c_str());
            QVERIFY2(m_index->contains("\n" + city + " is a city in ") || m_index->contains("I flew to " + city + ",")
                    || m_index->contains("The city of " + city + " is in")
                    || m_index->contains("the state containing " + city + " is"),
                city.c_str());
        }
        QVERIFY(capital * 2 >= heldOutOf.size() - 1 && capital * 2 <= heldOutOf.size() + 1);
    }

    // ------------------------------------------------------------ files

    void writesFiles()
    {
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const std::string text = dir.filePath("train.txt").toStdString();
        const std::string evalPath = dir.filePath("eval.jsonl").toStdString();
        cs::organism::writeTrainText(m_world, 1000, text);
        cs::organism::writeEvalJsonl(m_world, evalPath);
        std::ifstream in(text);
        std::string line;
        size_t n = 0;
        while (std::getline(in, line))
            QCOMPARE(line, m_lines[n++]);
        QCOMPARE(n, size_t(1000));
        std::ifstream ev(evalPath);
        n = 0;
        while (std::getline(ev, line)) {
            const json j = json::parse(line);
            QCOMPARE(j.at("prompt").get<std::string>(), m_eval[n].prompt);
            QCOMPARE(j.at("answer").get<std::string>(), m_eval[n].answer);
            QCOMPARE(j.at("task").get<std::string>(), m_eval[n].task);
            QCOMPARE(j.at("split").get<std::string>(), m_eval[n].split);
            ++n;
        }
        QCOMPARE(n, m_eval.size());
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::organism::writeEvalJsonl(m_world, "/nonexistent-dir/eval.jsonl"));
    }

    // ------------------------------------------------------------ BPE

    void bpeFileShape()
    {
        const json j = json::parse(m_tokenizerJson);
        QCOMPARE(j["model"]["type"].get<std::string>(), std::string("BPE"));
        QCOMPARE(j["model"]["byte_fallback"].get<bool>(), false);
        QCOMPARE(j["model"]["vocab"].size(), size_t(1024));
        QCOMPARE(j["model"]["merges"].size(), size_t(1024 - 3 - 256));
        const json& pre = j["pre_tokenizer"];
        QCOMPARE(pre["type"].get<std::string>(), std::string("Sequence"));
        QCOMPARE(pre["pretokenizers"][0]["type"].get<std::string>(), std::string("Digits"));
        QCOMPARE(pre["pretokenizers"][0]["individual_digits"].get<bool>(), true);
        QCOMPARE(pre["pretokenizers"][1]["type"].get<std::string>(), std::string("ByteLevel"));
        QCOMPARE(j["decoder"]["type"].get<std::string>(), std::string("ByteLevel"));
        QCOMPARE(j["post_processor"]["type"].get<std::string>(), std::string("TemplateProcessing"));
        QCOMPARE(j["added_tokens"].size(), size_t(3));
        for (const json& t : j["added_tokens"])
            QVERIFY(t["special"].get<bool>());
    }

    void bpeLoadsAndRoundTrips()
    {
        // With the tokenizer_config.json the trainer writes beside it (which names EOS).
        const Tokenizer tok = Tokenizer::fromJson(m_tokenizerJson, cs::organism::bpeTokenizerConfigJson());
        QCOMPARE(tok.vocabSize(), int64_t(1024));
        QCOMPARE(tok.kind(), std::string("byte-level"));
        QVERIFY(tok.addsBos());
        QCOMPARE(tok.bosId().value_or(-1), int64_t(0));
        QCOMPARE(tok.eosId().value_or(-1), int64_t(1));
        QCOMPARE(tok.piece(2), std::string("<|pad|>"));
        QVERIFY(tok.isSpecial(0) && tok.isSpecial(1) && tok.isSpecial(2) && !tok.isSpecial(3));
        // Alone, tokenizer.json still adds BOS (its post-processor).
        const Tokenizer alone = Tokenizer::fromJson(m_tokenizerJson);
        QVERIFY(alone.addsBos());
        QCOMPARE(alone.bosId().value_or(-1), int64_t(0));
        QCOMPARE(alone.encode("calc: 1+2=", true), tok.encode("calc: 1+2=", true));

        std::vector<std::string> texts;
        for (const EvalItem& e : m_eval)
            texts.push_back(e.prompt + e.answer);
        for (size_t i = 0; i < 500; ++i)
            texts.push_back(m_lines[i]);
        for (const std::string& s : m_world.heldoutLines(500))
            texts.push_back(s);
        texts.push_back("Text the corpus never has: ÄÖÜ 日本語 🙂 \t\n\x01 done.");
        for (const std::string& s : texts) {
            const auto plain = tok.encode(s, false);
            QCOMPARE(tok.decode(plain), s);
            const auto withBos = tok.encode(s, true);
            QCOMPARE(withBos.size(), plain.size() + 1);
            QCOMPARE(withBos.front(), int64_t(0));
            QCOMPARE(tok.decode(withBos, true), s);
            QCOMPARE(tok.decode(withBos), "<|bos|>" + s);
        }
    }

    void bpeDigitsAreSingleTokens()
    {
        const Tokenizer tok = Tokenizer::fromJson(m_tokenizerJson);
        for (char d = '0'; d <= '9'; ++d)
            QCOMPARE(tok.encode(std::string(1, d), false).size(), size_t(1));
        // No token joins a digit to anything.
        for (int64_t id = 0; id < tok.vocabSize(); ++id) {
            const std::string text = tok.tokenText(id);
            if (text.size() > 1)
                QVERIFY2(
                    std::none_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }), text.c_str());
        }
        const auto ids = tok.encode("calc: 36+59=95", false);
        std::vector<std::string> pieces;
        for (int64_t id : ids)
            pieces.push_back(tok.tokenText(id));
        const std::vector<std::string> tail(pieces.end() - 8, pieces.end());
        QCOMPARE(tail, (std::vector<std::string> { "3", "6", "+", "5", "9", "=", "9", "5" }));
    }

    void bpeCanonicalAnswersAreSingleTokens_data()
    {
        QTest::addColumn<QString>("text");
        for (const char* s : { " basketball", " football", " baseball", " tennis", " golf", " soccer", " hockey",
                 " cricket", " Austin", " Texas", " is", " are" })
            QTest::newRow(s) << s;
    }
    void bpeCanonicalAnswersAreSingleTokens()
    {
        QFETCH(QString, text);
        const Tokenizer tok = Tokenizer::fromJson(m_tokenizerJson);
        QCOMPARE(tok.encode(text.toStdString(), false).size(), size_t(1));
    }

    void bpeDeterministic()
    {
        const std::vector<std::string> some(m_lines.begin(), m_lines.begin() + 20000);
        BpeOptions options;
        options.vocabSize = 600;
        const std::string a = cs::organism::trainBpeTokenizerJson(some, options);
        const std::string b = cs::organism::trainBpeTokenizerJson(some, options);
        QCOMPARE(a, b);
        // Line order does not matter (only the counts do).
        std::vector<std::string> reversed(some.rbegin(), some.rend());
        QCOMPARE(cs::organism::trainBpeTokenizerJson(reversed, options), a);
        QCOMPARE(Tokenizer::fromJson(a).vocabSize(), int64_t(600));
    }

    // Merges worked out by hand. Words come from GPT-2's regex after digit splitting, with
    // 'Ġ' for the space byte; each merge takes the most frequent pair, ties the smallest
    // (left, right) by bytes ('Ġ' is C4 A0, after every ASCII letter).
    void bpeMerges_data()
    {
        QTest::addColumn<QStringList>("lines");
        QTest::addColumn<int>("vocabSize");
        QTest::addColumn<int>("minPairCount");
        QTest::addColumn<QStringList>("merges");
        // Words ab x1, Ġab x2, abc x1: (a,b) 4, then (Ġ,ab) 2; (ab,c) 1 is below the minimum.
        QTest::newRow("frequency") << QStringList { "ab ab ab", "abc" } << 300 << 2 << QStringList { "a b", "Ġ ab" };
        // The same, capped: one merge fills the vocabulary (3 specials + 256 bytes + 1).
        QTest::newRow("vocab cap") << QStringList { "ab ab ab", "abc" } << 260 << 2 << QStringList { "a b" };
        // All pairs once: (x,y) < (y,x) < (Ġ,y); after "x y" and "y x", (Ġ,yx).
        QTest::newRow("ties") << QStringList { "xy yx" } << 300 << 1 << QStringList { "x y", "y x", "Ġ yx" };
        // Digits never pair: "12 12" gives words 1, 2, Ġ, 1, 2 (Ġ alone: the digit split comes first).
        QTest::newRow("digits") << QStringList { "12 12 12" } << 300 << 1 << QStringList {};
        // "aaaa" x2: (a,a) counts 3 per word, merged left to right into aa aa, then (aa,aa).
        QTest::newRow("overlap") << QStringList { "aaaa", "aaaa" } << 300 << 2 << QStringList { "a a", "aa aa" };
    }
    void bpeMerges()
    {
        QFETCH(QStringList, lines);
        QFETCH(int, vocabSize);
        QFETCH(int, minPairCount);
        QFETCH(QStringList, merges);
        std::vector<std::string> in;
        for (const QString& l : lines)
            in.push_back(l.toStdString());
        BpeOptions options;
        options.vocabSize = vocabSize;
        options.minPairCount = minPairCount;
        const json j = json::parse(cs::organism::trainBpeTokenizerJson(in, options));
        QStringList got;
        for (const json& m : j["model"]["merges"])
            got << QString::fromStdString(m.get<std::string>());
        QCOMPARE(got, merges);
        QCOMPARE(j["model"]["vocab"].size(), size_t(3 + 256 + merges.size()));
        const Tokenizer tok = Tokenizer::fromJson(j.dump());
        for (const std::string& s : in)
            QCOMPARE(tok.decode(tok.encode(s, false)), s);
    }

    void bpeRejectsTinyVocab()
    {
        BpeOptions options;
        options.vocabSize = 200;
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::organism::trainBpeTokenizerJson({ "abc" }, options));
    }
};

QTEST_GUILESS_MAIN(TestOrganismCorpus)
#include "tst_organism_corpus.moc"
