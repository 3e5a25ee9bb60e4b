// The feature store (docs/ARCHITECTURE.md §9): records made here at random written and read back
// field by field (example activations through float16 where the store documents it, the expected
// rounding computed by c10::Half, not by the store's own converter); labels that survive a
// rebuild; search with LIKE's wildcards taken literally; a reader reading while another
// connection holds a write transaction (WAL); every kind of bad file refused with a message; the
// build state; circuit-tracer's JSON checked against Neuronpedia's feature-details schema; the
// export. Fast: label unit, also run under ASan.

#include "hf_fixtures.h"
#include "json_schema.h"

#include "cs/error.h"
#include "cs/features.h"

#include <c10/util/Half.h>
#include <sqlite3.h>

#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QFileInfo>
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

using cs::features::CoActivationList;
using cs::features::Example;
using cs::features::FeatureRecord;
using cs::features::FeatureStore;
using cs::features::StoreInfo;
using cs::features::TokenValue;
using nlohmann::json;

namespace {

StoreInfo storeInfo(const std::string& model = "tiny", int64_t nLayers = 3, int64_t nFeatures = 40)
{
    StoreInfo i;
    i.model = model;
    i.scan = "tiny-clt";
    i.nLayers = nLayers;
    i.nFeatures = nFeatures;
    i.contextLength = 16;
    i.tokens = 1234;
    i.buildOptions = { { "top_k", 4 }, { "window", 0 } };
    return i;
}

struct RecordSpec {
    int64_t nTop = 4;
    int64_t nBands = 3;
    int64_t perBand = 2;
    int64_t length = 16; // tokens per example
    int64_t vocab = 300; // token ids drawn from [0, vocab)
    double density = 0.3; // chance that an activation is non-zero
};

Example randomExample(std::mt19937_64& rng, const RecordSpec& spec, float scale)
{
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    Example e;
    e.context = static_cast<int64_t>(rng() % 100000);
    e.tokens.resize(static_cast<size_t>(spec.length));
    e.activations.resize(static_cast<size_t>(spec.length));
    for (int64_t i = 0; i < spec.length; ++i) {
        e.tokens[i] = static_cast<int64_t>(rng() % static_cast<uint64_t>(spec.vocab));
        e.activations[i] = uniform(rng) < spec.density ? scale * uniform(rng) : 0.0f;
    }
    e.position = static_cast<int64_t>(rng() % static_cast<uint64_t>(spec.length));
    e.activations[e.position] = scale * (1.0f + uniform(rng));
    e.activation = e.activations[e.position];
    return e;
}

std::vector<TokenValue> randomTokens(std::mt19937_64& rng, int64_t n, int64_t vocab)
{
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<TokenValue> out;
    for (int64_t i = 0; i < n; ++i) {
        TokenValue t;
        t.id = static_cast<int64_t>(rng() % static_cast<uint64_t>(vocab));
        t.token = " tok" + std::to_string(t.id);
        t.value = normal(rng);
        out.push_back(t);
    }
    return out;
}

FeatureRecord randomRecord(std::mt19937_64& rng, int64_t layer, int64_t feature, const RecordSpec& spec = {})
{
    std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
    FeatureRecord r;
    r.layer = layer;
    r.feature = feature;
    r.tokens = 100000 + static_cast<int64_t>(rng() % 1000);
    r.activeTokens = static_cast<int64_t>(rng() % 5000);
    r.actMax = 1.0f + 10 * uniform(rng);
    r.actMin = 1e-3f * uniform(rng);
    r.actSum = 1e4 * uniform(rng) + 1.0 / 3.0;
    r.quantileLevels = { 0.5, 0.9, 0.99 };
    for (size_t i = 0; i < r.quantileLevels.size(); ++i)
        r.quantileValues.push_back(r.actMax * static_cast<float>(r.quantileLevels[i]) * uniform(rng));
    for (int i = 0; i <= 8; ++i)
        r.histogramEdges.push_back(r.actMax * static_cast<float>(i) / 8.0f);
    for (int i = 0; i < 8; ++i)
        r.histogramCounts.push_back(static_cast<int64_t>(rng() % 100000));
    for (int64_t i = 0; i < spec.nTop; ++i)
        r.top.push_back(randomExample(rng, spec, r.actMax));
    for (int64_t b = 0; b < spec.nBands; ++b) {
        cs::features::QuantileExamples q;
        q.name = "Subsample Interval " + std::to_string(b);
        for (int64_t i = 0; i < spec.perBand; ++i)
            q.examples.push_back(randomExample(rng, spec, r.actMax / static_cast<float>(b + 2)));
        r.quantiles.push_back(q);
    }
    r.topLogits = randomTokens(rng, 5, spec.vocab);
    r.bottomLogits = randomTokens(rng, 5, spec.vocab);
    r.topInputs = randomTokens(rng, 3, spec.vocab);
    return r;
}

// What the store documents for example activations: float16 (round to nearest even) when every
// value of the example is finite and within float16's range, float32 otherwise.
std::vector<float> stored(const std::vector<float>& acts)
{
    const bool half
        = std::all_of(acts.begin(), acts.end(), [](float v) { return std::isfinite(v) && std::fabs(v) <= 65504.0f; });
    if (!half)
        return acts;
    std::vector<float> out;
    for (float v : acts)
        out.push_back(static_cast<float>(c10::Half(v)));
    return out;
}

void compareExamples(const std::vector<Example>& got, const std::vector<Example>& want, const std::string& where)
{
    QVERIFY2(got.size() == want.size(), where.c_str());
    for (size_t i = 0; i < got.size(); ++i) {
        const std::string at = where + "[" + std::to_string(i) + "]";
        QVERIFY2(got[i].context == want[i].context, at.c_str());
        QVERIFY2(got[i].tokens == want[i].tokens, at.c_str());
        QVERIFY2(got[i].position == want[i].position, at.c_str());
        QVERIFY2(got[i].activation == want[i].activation, at.c_str()); // the peak is exact
        QVERIFY2(got[i].activations == stored(want[i].activations), at.c_str());
    }
}

void compareTokens(const std::vector<TokenValue>& got, const std::vector<TokenValue>& want)
{
    QCOMPARE(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
        QCOMPARE(got[i].id, want[i].id);
        QCOMPARE(got[i].token, want[i].token);
        QCOMPARE(got[i].value, want[i].value);
    }
}

void compareRecords(const FeatureRecord& got, const FeatureRecord& want)
{
    QCOMPARE(got.layer, want.layer);
    QCOMPARE(got.feature, want.feature);
    QCOMPARE(got.tokens, want.tokens);
    QCOMPARE(got.activeTokens, want.activeTokens);
    QCOMPARE(got.actMax, want.actMax);
    QCOMPARE(got.actMin, want.actMin);
    QCOMPARE(got.actSum, want.actSum);
    QVERIFY(got.quantileLevels == want.quantileLevels);
    QVERIFY(got.quantileValues == want.quantileValues);
    QVERIFY(got.histogramEdges == want.histogramEdges);
    QVERIFY(got.histogramCounts == want.histogramCounts);
    compareExamples(got.top, want.top, "top");
    QCOMPARE(got.quantiles.size(), want.quantiles.size());
    for (size_t b = 0; b < got.quantiles.size(); ++b) {
        QCOMPARE(got.quantiles[b].name, want.quantiles[b].name);
        compareExamples(got.quantiles[b].examples, want.quantiles[b].examples, "band " + std::to_string(b));
    }
    compareTokens(got.topLogits, want.topLogits);
    compareTokens(got.bottomLogits, want.bottomLogits);
    compareTokens(got.topInputs, want.topInputs);
}

// The message of the cs::Error f throws; empty when it throws none.
std::string errorOf(const std::function<void()>& f)
{
    try {
        f();
    } catch (const cs::Error& e) {
        return e.what();
    }
    return {};
}

void writeBytes(const QString& path, const std::string& bytes)
{
    std::ofstream out(path.toStdString(), std::ios::binary);
    out << bytes;
}

// Runs SQL on a raw connection (fixtures the store API cannot make).
void rawExec(const QString& path, const std::string& sql)
{
    sqlite3* db = nullptr;
    QCOMPARE(sqlite3_open(path.toUtf8().constData(), &db), SQLITE_OK);
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    const std::string message = err ? err : "";
    sqlite3_free(err);
    sqlite3_close(db);
    QVERIFY2(rc == SQLITE_OK, message.c_str());
}

using cs::test::checkSchema;

} // namespace

class TestFeatureStore : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir { cs::test::testTempRoot() + "/features-XXXXXX" };

    std::string path(const QString& name) const { return m_dir.filePath(name).toStdString(); }

    // A store with `n` random records over layers 0..2; returns the records.
    std::vector<FeatureRecord> makeStore(const std::string& file, int n, uint64_t seed, const RecordSpec& spec = {})
    {
        std::mt19937_64 rng(seed);
        auto store = FeatureStore::create(file, storeInfo());
        std::vector<FeatureRecord> records;
        for (int i = 0; i < n; ++i)
            records.push_back(randomRecord(rng, i % 3, (7 * i) % 40, spec));
        store->writeRecords(records, storeInfo());
        return records;
    }

private Q_SLOTS:
    void writeAndReadEveryField()
    {
        const std::string file = path("round.db");
        std::mt19937_64 rng(1);
        std::vector<FeatureRecord> records;
        for (int i = 0; i < 6; ++i)
            records.push_back(randomRecord(rng, i % 3, 3 * i + 1));
        // Edge cases: nothing but statistics; a band with no examples; activations beyond float16
        // (kept as float32); token ids beyond uint16 and int32; an empty token string.
        records[1].top.clear();
        records[1].quantiles.clear();
        records[1].quantileLevels.clear();
        records[1].quantileValues.clear();
        records[1].histogramEdges.clear();
        records[1].histogramCounts.clear();
        records[1].topLogits.clear();
        records[2].quantiles[1].examples.clear();
        records[3].top[0].activations[0] = 1e6f;
        records[3].top[1].activations[2] = 1e-7f; // a float16 subnormal
        records[4].top[0].tokens[0] = 70000;
        records[4].top[1].tokens[3] = int64_t(1) << 40;
        records[5].topLogits[0].token = "";
        records[5].topLogits[1].token = std::string("\xE2\x82", 2); // partial UTF-8, kept as bytes
        StoreInfo info = storeInfo();
        info.complete = true;
        {
            auto store = FeatureStore::create(file, info);
            store->writeRecords(records, info);
            for (const FeatureRecord& r : records) {
                QVERIFY(store->has(r.layer, r.feature));
                compareRecords(store->card(r.layer, r.feature), r);
            }
            QCOMPARE(store->count(), int64_t(records.size()));
            QVERIFY(!store->has(0, 0));
        }
        // The writer closed: the store is one file again, in rollback mode (header bytes 18 and 19
        // are 1, 2 in WAL mode), so a reader creates nothing beside it.
        const auto exists
            = [&](const char* suffix) { return QFileInfo::exists(QString::fromStdString(file + suffix)); };
        {
            QFile raw(QString::fromStdString(file));
            QVERIFY(raw.open(QIODevice::ReadOnly));
            const QByteArray header = raw.read(20);
            QCOMPARE(int(header[18]), 1);
            QCOMPARE(int(header[19]), 1);
        }
        QVERIFY(!exists("-wal") && !exists("-shm"));
        // ... and from a fresh read-only connection.
        auto store = FeatureStore::open(file);
        for (const FeatureRecord& r : records)
            compareRecords(store->card(r.layer, r.feature), r);
        QVERIFY(!exists("-wal") && !exists("-shm"));
        const StoreInfo got = store->info();
        QCOMPARE(got.model, info.model);
        QCOMPARE(got.scan, info.scan);
        QCOMPARE(got.nLayers, info.nLayers);
        QCOMPARE(got.nFeatures, info.nFeatures);
        QCOMPARE(got.contextLength, info.contextLength);
        QCOMPARE(got.tokens, info.tokens);
        QCOMPARE(got.complete, true);
        QCOMPARE(got.buildOptions, info.buildOptions);
        QCOMPARE(store->path(), file);
        std::vector<std::pair<int64_t, int64_t>> want;
        for (const FeatureRecord& r : records)
            want.emplace_back(r.layer, r.feature);
        std::sort(want.begin(), want.end());
        QVERIFY(store->listFeatures() == want);
        // A read-only store refuses writes.
        QVERIFY(errorOf([&] { store->setLabel(0, 1, "x"); }).find("read-only") != std::string::npos);
        QVERIFY(errorOf([&] { store->writeRecords(records, info); }).find("read-only") != std::string::npos);
    }

    void describeSaysWhatTheCardShows()
    {
        const std::vector<std::string> vocab
            = { "<bos>", " the", " capital", " of", " Texas", " is", " Austin", " Richmond", "\n", " state", " Ohio" };
        FeatureRecord r;
        QCOMPARE(cs::features::describe(r, vocab), std::string()); // nothing to say
        // Two of three top examples fire on " is": that token, the text before it in the
        // strongest such example (four tokens at most, an ellipsis when cut), the top two outputs.
        cs::features::Example a, b, c;
        a.tokens = { 0, 1, 2, 3, 4, 5 };
        a.position = 5;
        b.tokens = { 0, 9, 10 };
        b.position = 2;
        c.tokens = { 1, 10, 5 };
        c.position = 2;
        r.top = { a, b, c };
        r.topLogits = { { 6, " Austin", 2.5f }, { 7, " Richmond", 1.5f }, { 4, " Texas", 1.0f } };
        QCOMPARE(cs::features::describe(r, vocab),
            std::string("\u00ABis\u00BB after \"\u2026the capital of Texas\" \u2192 Austin, Richmond"));
        // No context before the token; only positive outputs; a whitespace token shown as ⏎.
        a.tokens = { 8 };
        a.position = 0;
        r.top = { a };
        r.topLogits = { { 6, " Austin", 0.5f }, { 7, " Richmond", -1.0f } };
        QCOMPARE(cs::features::describe(r, vocab), std::string("\u00AB\u23CE\u00BB \u2192 Austin"));
        // An id outside the vocabulary shows as [id]; no outputs, no arrow.
        a.tokens = { 1, 99 };
        a.position = 1;
        r.top = { a };
        r.topLogits.clear();
        QCOMPARE(cs::features::describe(r, vocab), std::string("\u00AB[99]\u00BB after \"the\""));
    }

    void labelsSurviveARebuild()
    {
        const std::string file = path("rebuild.db");
        auto records = makeStore(file, 6, 2);
        {
            auto store = FeatureStore::open(file, true);
            store->setLabel(records[0].layer, records[0].feature, "first", "some notes");
            store->setLabel(records[3].layer, records[3].feature, "fourth");
        }
        // The same model and set again: create() opens it; new statistics for the same features.
        std::mt19937_64 rng(99);
        std::vector<FeatureRecord> again;
        for (const FeatureRecord& r : records)
            again.push_back(randomRecord(rng, r.layer, r.feature));
        auto store = FeatureStore::create(file, storeInfo());
        store->clearRecords();
        QCOMPARE(store->count(), int64_t(0));
        store->writeRecords(again, storeInfo());
        const FeatureRecord first = store->card(records[0].layer, records[0].feature);
        compareRecords(first, again[0]);
        QCOMPARE(first.label, std::string("first"));
        QCOMPARE(first.notes, std::string("some notes"));
        QCOMPARE(store->card(records[3].layer, records[3].feature).label, std::string("fourth"));
        QCOMPARE(store->card(records[1].layer, records[1].feature).label, std::string());
        // Removing: both empty.
        store->setLabel(records[3].layer, records[3].feature, "");
        QCOMPARE(store->card(records[3].layer, records[3].feature).label, std::string());
        QCOMPARE(store->search("fourth").size(), size_t(0));
    }

    // A completed rebuild with fewer examples gives the freed pages back (incremental vacuum)
    // and drops the token sequences no example uses any more.
    void rebuildShrinksTheFile()
    {
        const std::string file = path("shrink.db");
        const auto records = makeStore(file, 60, 21);
        const qint64 before = QFileInfo(QString::fromStdString(file)).size();
        StoreInfo info = storeInfo();
        info.complete = true;
        {
            auto store = FeatureStore::create(file, info);
            store->clearRecords();
            std::vector<FeatureRecord> fewer(records.begin(), records.begin() + 5);
            store->writeRecords(fewer, info);
            for (const FeatureRecord& r : fewer)
                compareRecords(store->card(r.layer, r.feature), r);
        }
        const qint64 after = QFileInfo(QString::fromStdString(file)).size();
        QVERIFY2(after < before / 2, // a page per table and index remains
            qPrintable(QStringLiteral("%1 -> %2 bytes").arg(before).arg(after)));
        QCOMPARE(FeatureStore::open(file)->count(), int64_t(5));
    }

    void search()
    {
        const std::string file = path("search.db");
        makeStore(file, 3, 3);
        auto store = FeatureStore::open(file, true);
        store->setLabel(2, 5, "Texas cities");
        store->setLabel(0, 9, "TEXAS state names");
        store->setLabel(1, 1, "100% sure");
        store->setLabel(1, 2, "1000 sure");
        store->setLabel(0, 3, "snake_case words");
        store->setLabel(0, 4, "snakeXcase words");
        store->setLabel(2, 39, "back\\slash");
        const auto keys = [](const std::vector<cs::features::SearchHit>& hits) {
            std::vector<std::pair<int64_t, int64_t>> out;
            for (const auto& h : hits)
                out.emplace_back(h.layer, h.feature);
            return out;
        };
        using Keys = std::vector<std::pair<int64_t, int64_t>>;
        QVERIFY(keys(store->search("texas")) == (Keys { { 0, 9 }, { 2, 5 } })); // by layer, feature
        QCOMPARE(store->search("texas")[1].label, std::string("Texas cities"));
        QVERIFY(keys(store->search("0%")) == (Keys { { 1, 1 } })); // % literal
        QVERIFY(keys(store->search("e_c")) == (Keys { { 0, 3 } })); // _ literal
        QVERIFY(keys(store->search("\\")) == (Keys { { 2, 39 } }));
        QVERIFY(keys(store->search("SURE")) == (Keys { { 1, 1 }, { 1, 2 } }));
        QCOMPARE(store->search("").size(), size_t(7));
        QCOMPARE(store->search("", 2).size(), size_t(2));
        QCOMPARE(store->search("nothing like it").size(), size_t(0));
    }

    void labelWithoutStatistics()
    {
        const std::string file = path("nostats.db");
        makeStore(file, 2, 4);
        auto store = FeatureStore::open(file, true);
        QVERIFY(!store->has(2, 38));
        store->setLabel(2, 38, "never fired", "dead?");
        QCOMPARE(store->search("never").size(), size_t(1));
        QVERIFY(!store->has(2, 38));
        QVERIFY(errorOf([&] { store->card(2, 38); }).find("is not in") != std::string::npos);
        // Statistics arrive later and find the label.
        std::mt19937_64 rng(5);
        store->writeRecords({ randomRecord(rng, 2, 38) }, storeInfo());
        QCOMPARE(store->card(2, 38).label, std::string("never fired"));
        QCOMPARE(store->card(2, 38).notes, std::string("dead?"));
        QVERIFY(errorOf([&] { store->setLabel(3, 0, "x"); }).find("out of range") != std::string::npos);
        QVERIFY(errorOf([&] { store->setLabel(0, 40, "x"); }).find("out of range") != std::string::npos);
    }

    void readerWhileAWriterWrites()
    {
        const std::string file = path("wal.db");
        auto records = makeStore(file, 4, 6);
        auto writer = FeatureStore::open(file, true);
        auto early = FeatureStore::open(file); // a reader opened before the write
        QVERIFY(early->card(records[0].layer, records[0].feature).label.empty());

        // Another connection holds a write transaction ...
        sqlite3* db = nullptr;
        QCOMPARE(sqlite3_open(file.c_str(), &db), SQLITE_OK);
        QCOMPARE(sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
        const std::string update = "UPDATE features SET act_max = 99 WHERE layer = " + std::to_string(records[0].layer)
            + " AND feature = " + std::to_string(records[0].feature)
            + "; INSERT INTO labels VALUES(0, 0, 'written', '', 'now')";
        QCOMPARE(sqlite3_exec(db, update.c_str(), nullptr, nullptr, nullptr), SQLITE_OK);
        // ... while a new reader opens (quick_check included) and reads the last commit, fast.
        QElapsedTimer timer;
        timer.start();
        auto reader = FeatureStore::open(file);
        const FeatureRecord during = reader->card(records[0].layer, records[0].feature);
        QVERIFY2(timer.elapsed() < 2000, "the reader waited for the writer");
        QCOMPARE(during.actMax, records[0].actMax);
        QCOMPARE(reader->search("written").size(), size_t(0));
        QCOMPARE(early->card(records[0].layer, records[0].feature).actMax, records[0].actMax);
        // The store's own writer waits for the lock (busy timeout) rather than failing at once;
        // here it would wait, so only the raw connection commits.
        QCOMPARE(sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
        sqlite3_close(db);
        // Both readers see the commit on their next call (no statement kept a snapshot open).
        QCOMPARE(reader->card(records[0].layer, records[0].feature).actMax, 99.0f);
        QCOMPARE(early->card(records[0].layer, records[0].feature).actMax, 99.0f);
        QCOMPARE(early->search("written").size(), size_t(1));
        writer->setLabel(0, 1, "after");
        QCOMPARE(reader->search("after").size(), size_t(1));
    }

    void refusals_data()
    {
        QTest::addColumn<QString>("name");
        QTest::addColumn<QString>("phrase");
        QTest::newRow("missing") << "missing.db"
                                 << "no such feature store";
        QTest::newRow("folder") << "folder"
                                << "is a folder";
        // Only regular files are opened (issue 24): SQLite would read a device forever, or wait on
        // a FIFO for a writer.
        QTest::newRow("a link to /dev/zero") << "device.db"
                                             << "is not a regular file (a device)";
        QTest::newRow("a FIFO") << "fifo.db"
                                << "is not a regular file (a FIFO)";
        QTest::newRow("text file") << "text.db"
                                   << "is not an SQLite database (file is not a database)";
        QTest::newRow("random bytes") << "random.db"
                                      << "is not an SQLite database";
        QTest::newRow("other tables") << "other.db"
                                      << "is not a Circuitscope feature store";
        QTest::newRow("format other") << "format.db"
                                      << "is not a Circuitscope feature store (its format is \"other\"";
        QTest::newRow("version 99") << "version.db"
                                    << "made by a newer Circuitscope (feature store version 99";
        QTest::newRow("no version") << "noversion.db"
                                    << "no valid \"version\"";
        QTest::newRow("missing table") << "notable.db"
                                       << "it has no table \"labels\"";
        QTest::newRow("a trigger") << "trigger.db"
                                   << "holds a trigger \"t\" that Circuitscope does not create";
        QTest::newRow("a view") << "view.db"
                                << "holds a view \"v\" that Circuitscope does not create";
        QTest::newRow("an extra column") << "column.db"
                                         << "its table \"labels\" is not the one Circuitscope creates";
        QTest::newRow("an extra index") << "index.db"
                                        << "holds an index \"i\" that Circuitscope does not create";
        QTest::newRow("version 2 without its table") << "v2.db"
                                                     << "says version 2 but has the tables of version 1";
        QTest::newRow("version 1 with version 2's table") << "v1.db"
                                                          << "says version 1 but has the tables of version 2";
        // A meta table that contradicts itself or the contents (issue 23).
        QTest::newRow("version 0") << "version0.db"
                                   << "says version 0 but has the tables of version 2";
        QTest::newRow("n_layers -1") << "nlayers.db"
                                     << "its meta \"n_layers\" is -1 (not in [1, 4096])";
        QTest::newRow("n_layers below its features") << "nlayers1.db"
                                                     << "its meta \"n_layers\" is 1 (but it holds features of layer 1)";
        QTest::newRow("n_features 0") << "nfeatures.db"
                                      << "its meta \"n_features\" is 0 (not in [1, 2147483647])";
        QTest::newRow("n_features below its features") << "nfeatures5.db"
                                                       << "its meta \"n_features\" is 5 (but it holds feature 7)";
        QTest::newRow("context_length 0") << "context.db"
                                          << "its meta \"context_length\" is 0";
        QTest::newRow("tokens -1") << "metatokens.db"
                                   << "its meta \"tokens\" is -1";
    }

    void refusals()
    {
        QFETCH(QString, name);
        QFETCH(QString, phrase);
        const QString file = m_dir.filePath(name);
        const bool special = name == "device.db" || name == "fifo.db"; // never read by this test either
        if (name == "folder") {
            QVERIFY(QDir(m_dir.path()).mkpath(name));
        } else if (name == "device.db") {
            QVERIFY(QFile::link("/dev/zero", file));
        } else if (name == "fifo.db") {
            QCOMPARE(::mkfifo(QFile::encodeName(file).constData(), 0600), 0);
        } else if (name == "text.db") {
            writeBytes(file, std::string(5000, 'x') + "\nsome text\n");
        } else if (name == "random.db") {
            std::mt19937_64 rng(7);
            std::string bytes(20000, '\0');
            for (char& c : bytes)
                c = static_cast<char>(rng());
            writeBytes(file, bytes);
        } else if (name == "other.db") {
            rawExec(file, "CREATE TABLE people(name TEXT); INSERT INTO people VALUES('ada')");
        } else if (name != "missing.db") {
            makeStore(file.toStdString(), 2, 8);
            // The damage each case does to a whole store.
            static const std::map<QString, const char*> damage {
                { "format.db", "UPDATE meta SET value = 'other' WHERE key = 'format'" },
                { "version.db", "UPDATE meta SET value = '99' WHERE key = 'version'" },
                { "noversion.db", "DELETE FROM meta WHERE key = 'version'" },
                { "notable.db", "DROP TABLE labels" },
                { "trigger.db", "CREATE TRIGGER t AFTER INSERT ON labels BEGIN DELETE FROM features; END" },
                { "view.db", "CREATE VIEW v AS SELECT * FROM features" },
                { "column.db", "ALTER TABLE labels ADD COLUMN x TEXT" },
                { "index.db", "CREATE INDEX i ON labels(label)" },
                { "v2.db", "DROP TABLE coactivations" },
                { "v1.db", "UPDATE meta SET value = '1' WHERE key = 'version'" },
                { "version0.db", "UPDATE meta SET value = '0' WHERE key = 'version'" },
                { "nlayers.db", "UPDATE meta SET value = '-1' WHERE key = 'n_layers'" },
                { "nlayers1.db", "UPDATE meta SET value = '1' WHERE key = 'n_layers'" },
                { "nfeatures.db", "UPDATE meta SET value = '0' WHERE key = 'n_features'" },
                { "nfeatures5.db", "UPDATE meta SET value = '5' WHERE key = 'n_features'" },
                { "context.db", "UPDATE meta SET value = '0' WHERE key = 'context_length'" },
                { "metatokens.db", "UPDATE meta SET value = '-1' WHERE key = 'tokens'" },
            };
            if (const auto it = damage.find(name); it != damage.end())
                rawExec(file, it->second);
        }
        for (bool writable : { false, true }) {
            const std::string message = errorOf([&] { FeatureStore::open(file.toStdString(), writable); });
            QVERIFY2(message.find(phrase.toStdString()) != std::string::npos, message.c_str());
            QVERIFY2(message.find(file.toStdString()) != std::string::npos, message.c_str()); // names the file
        }
        if (special) { // create() refuses it too, unopened
            const std::string message = errorOf([&] { FeatureStore::create(file.toStdString(), storeInfo()); });
            QVERIFY2(message.find(phrase.toStdString()) != std::string::npos, message.c_str());
        }
        // create() never overwrites it.
        if (name != "missing.db" && name != "folder" && !special) {
            const QByteArray before = [&] {
                QFile f(file);
                f.open(QIODevice::ReadOnly);
                return f.readAll();
            }();
            const std::string message = errorOf([&] { FeatureStore::create(file.toStdString(), storeInfo()); });
            QVERIFY2(message.find(phrase.toStdString()) != std::string::npos, message.c_str());
            QFile f(file);
            QVERIFY(f.open(QIODevice::ReadOnly));
            QCOMPARE(f.readAll(), before);
        }
    }

    // Co-activation lists round-trip; lists on the wrong side or out of order are refused; a
    // damaged list is an error; a version 1 store (no such table) opens without them and is
    // upgraded, labels intact, when opened to write.
    void coactivations()
    {
        const std::string file = path("coact.db");
        makeStore(file, 6, 31);
        {
            auto store = FeatureStore::open(file, true);
            QVERIFY(!store->hasCoactivations());
            QVERIFY(errorOf([&] { store->coactivations(1, 2, true); }).find("no co-activation statistics")
                != std::string::npos);
            CoActivationList up;
            up.layer = 2;
            up.feature = 14;
            up.upstream = true;
            up.partners = 7;
            up.kept = { { 0, 3, 12, 4.5, 9.25 }, { 0, 39, 1, 0.125, 1e-9 }, { 1, 0, 400, 1e6 / 3, 7.0 } };
            CoActivationList down;
            down.layer = 0;
            down.feature = 3;
            down.upstream = false;
            down.partners = 1;
            down.kept = { { 2, 14, 12, 4.5, 9.25 } };
            store->writeCoactivations({ up, down });
            store->setLabel(2, 14, "kept");
            QVERIFY(store->hasCoactivations());
            const auto got = store->coactivations(2, 14, true);
            QCOMPARE(got.partners, int64_t(7));
            QCOMPARE(got.kept.size(), up.kept.size());
            for (size_t i = 0; i < got.kept.size(); ++i) {
                QCOMPARE(got.kept[i].layer, up.kept[i].layer);
                QCOMPARE(got.kept[i].feature, up.kept[i].feature);
                QCOMPARE(got.kept[i].count, up.kept[i].count);
                QCOMPARE(got.kept[i].sourceSum, up.kept[i].sourceSum); // float64, exact
                QCOMPARE(got.kept[i].productSum, up.kept[i].productSum);
            }
            QCOMPARE(store->coactivations(0, 3, false).kept.size(), size_t(1));
            QVERIFY(store->coactivations(2, 6, true).kept.empty()); // fired with nothing
            // Refused: a partner on the wrong side, out of order, more kept than partners.
            CoActivationList bad = up;
            bad.kept = { { 2, 1, 3, 1, 1 } };
            QVERIFY(errorOf([&] { store->writeCoactivations({ bad }); }).find("wrong side") != std::string::npos);
            bad.kept = { { 1, 0, 3, 1, 1 }, { 0, 3, 3, 1, 1 } };
            QVERIFY(errorOf([&] { store->writeCoactivations({ bad }); }).find("out of order") != std::string::npos);
            bad.partners = 1;
            QVERIFY(errorOf([&] { store->writeCoactivations({ bad }); }).find("more") != std::string::npos);
            QCOMPARE(store->coactivations(2, 14, true).kept.size(), size_t(3)); // a refused write changed nothing
        }
        // A damaged list: cut short, or a partner past the last layer.
        const QString copy = m_dir.filePath("coact-damaged.db");
        QFile::remove(copy);
        QVERIFY(QFile::copy(QString::fromStdString(file), copy));
        rawExec(copy, "UPDATE coactivations SET pairs = substr(pairs, 1, 7) WHERE layer = 2 AND feature = 14");
        {
            auto store = FeatureStore::open(copy.toStdString());
            const std::string message = errorOf([&] { store->coactivations(2, 14, true); });
            QVERIFY2(message.find("the feature store " + copy.toStdString()
                         + " is damaged: a malformed co-activation list (layer 2 feature 14)")
                    != std::string::npos,
                message.c_str()); // names the store and the feature (issue 23)
        }
        rawExec(copy,
            "UPDATE coactivations SET pairs = x'0101ff01010000000000000000000000000000000000' "
            "WHERE layer = 0 AND feature = 3");
        {
            auto store = FeatureStore::open(copy.toStdString());
            QVERIFY(errorOf([&] { store->coactivations(0, 3, false); }).find("malformed co-activation list")
                != std::string::npos);
        }
        // As version 1 wrote it.
        rawExec(QString::fromStdString(file),
            "DROP TABLE coactivations; UPDATE meta SET value = '1' WHERE key = 'version'; "
            "DELETE FROM meta WHERE key = 'coactivations'");
        {
            auto store = FeatureStore::open(file);
            QVERIFY(!store->hasCoactivations());
            QCOMPARE(store->card(2, 14).label, std::string("kept"));
        }
        {
            auto store = FeatureStore::open(file, true);
            QVERIFY(!store->hasCoactivations());
            CoActivationList one;
            one.layer = 1;
            one.feature = 1;
            one.partners = 1;
            one.kept = { { 0, 0, 2, 1.0, 2.0 } };
            store->writeCoactivations({ one });
        }
        auto store = FeatureStore::open(file);
        QVERIFY(store->hasCoactivations());
        QCOMPARE(store->coactivations(1, 1, true).kept.front().productSum, 2.0);
        QCOMPARE(store->card(2, 14).label, std::string("kept"));
    }

    // A store that carries SQL of its own (the trigger a mutation campaign planted): it is refused
    // for reading and writing, the trigger never fires, and every feature row is intact.
    void storeSqlNeverRuns()
    {
        const QString file = m_dir.filePath("planted.db");
        makeStore(file.toStdString(), 12, 21);
        rawExec(file, "CREATE TRIGGER t AFTER INSERT ON labels BEGIN DELETE FROM features; END");
        for (bool writable : { false, true })
            QVERIFY(errorOf([&] { FeatureStore::open(file.toStdString(), writable); }).find("trigger")
                != std::string::npos);
        sqlite3* db = nullptr;
        QCOMPARE(sqlite3_open_v2(file.toUtf8().constData(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
        sqlite3_stmt* s = nullptr;
        QCOMPARE(sqlite3_prepare_v2(db, "SELECT count(*) FROM features", -1, &s, nullptr), SQLITE_OK);
        QCOMPARE(sqlite3_step(s), SQLITE_ROW);
        const int64_t rows = sqlite3_column_int64(s, 0);
        sqlite3_finalize(s);
        sqlite3_close(db);
        QCOMPARE(rows, int64_t(12));
    }

    void truncatedCopiesAreRefused()
    {
        const std::string file = path("whole.db");
        makeStore(file, 60, 9);
        const qint64 size = QFileInfo(QString::fromStdString(file)).size();
        QVERIFY(size > 16 * 4096);
        for (qint64 cut : { qint64(1), qint64(50), qint64(100), qint64(4096), qint64(3 * 4096 + 17), size / 2,
                 size - 4096, size - 100, size - 1 }) {
            const QString copy = m_dir.filePath(QStringLiteral("cut-%1.db").arg(cut));
            QVERIFY(QFile::copy(QString::fromStdString(file), copy));
            QVERIFY(QFile::resize(copy, cut));
            const std::string message = errorOf([&] { FeatureStore::open(copy.toStdString()); });
            QVERIFY2(!message.empty(), qPrintable(QStringLiteral("a copy cut at %1 bytes opened").arg(cut)));
            QVERIFY2(message.find("is damaged") != std::string::npos
                    || message.find("is not an SQLite database") != std::string::npos,
                message.c_str());
        }
        // A page in the middle overwritten with random bytes.
        const QString scrambled = m_dir.filePath("scrambled.db");
        QVERIFY(QFile::copy(QString::fromStdString(file), scrambled));
        {
            QFile f(scrambled);
            QVERIFY(f.open(QIODevice::ReadWrite));
            std::mt19937_64 rng(3);
            QByteArray noise(4096, '\0');
            for (char& c : noise)
                c = static_cast<char>(rng());
            QVERIFY(f.seek(8 * 4096));
            QCOMPARE(f.write(noise), qint64(4096));
        }
        const std::string message = errorOf([&] { FeatureStore::open(scrambled.toStdString()); });
        QVERIFY2(message.find("is damaged") != std::string::npos, message.c_str());
        QVERIFY(errorOf([&] { FeatureStore::open(file); }).empty()); // the original is fine
    }

    // Bytes changed at random anywhere past the header: whatever SQLite's quick_check lets
    // through (record contents are not its business), reading every part of the store either
    // works or throws cs::Error; never a crash (ASan runs this too).
    void damagedBytesNeverCrash()
    {
        const std::string file = path("fuzz-source.db");
        makeStore(file, 12, 18);
        {
            std::vector<std::string> vocab(300, "v");
            FeatureStore::open(file, true)->writeVocabulary(vocab);
            FeatureStore::open(file, true)->setLabel(0, 0, "fuzzed");
        }
        QFile source(QString::fromStdString(file));
        QVERIFY(source.open(QIODevice::ReadOnly));
        const QByteArray whole = source.readAll();
        std::mt19937_64 rng(19);
        int opened = 0, refused = 0;
        for (int round = 0; round < 150; ++round) {
            QByteArray bytes = whole;
            const int flips = 1 + static_cast<int>(rng() % 16);
            for (int k = 0; k < flips; ++k)
                bytes[100 + static_cast<int>(rng() % static_cast<uint64_t>(bytes.size() - 100))]
                    = static_cast<char>(rng());
            const QString copy = m_dir.filePath(QStringLiteral("fuzz-%1.db").arg(round));
            writeBytes(copy, bytes.toStdString());
            try {
                auto store = FeatureStore::open(copy.toStdString());
                ++opened;
                store->info();
                store->vocabulary();
                store->search("z");
                for (const auto& [layer, feature] : store->listFeatures()) {
                    try {
                        cs::features::circuitTracerJson(store->card(layer, feature)).dump();
                    } catch (const cs::Error&) {
                    }
                }
            } catch (const cs::Error&) {
                ++refused;
            }
            QFile::remove(copy);
        }
        qInfo("%d damaged copies refused on open, %d opened (each read through or refused with cs::Error)", refused,
            opened);
    }

    // A store in a folder the reader cannot write: no -shm can be made beside it, so it is read
    // as immutable. (root ignores permissions: skipped there.)
    void readOnlyFolder()
    {
        if (::geteuid() == 0)
            QSKIP("running as root: file permissions do not apply");
        const QString folder = m_dir.filePath("locked");
        QVERIFY(QDir().mkpath(folder));
        const std::string file = (folder + "/store.db").toStdString();
        const auto records = makeStore(file, 3, 20);
        QVERIFY(QFile::setPermissions(folder, QFile::ReadOwner | QFile::ExeOwner));
        QVERIFY(QFile::setPermissions(QString::fromStdString(file), QFile::ReadOwner));
        std::string message;
        try {
            auto store = FeatureStore::open(file);
            compareRecords(store->card(records[1].layer, records[1].feature), records[1]);
            message = errorOf([&] { FeatureStore::open(file, true); });
        } catch (const cs::Error& e) {
            message = std::string("read-only open failed: ") + e.what();
        }
        QFile::setPermissions(folder, QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
        QFile::setPermissions(QString::fromStdString(file), QFile::ReadOwner | QFile::WriteOwner);
        QVERIFY2(message.find("read-only") != std::string::npos || message.find("cannot") != std::string::npos,
            message.c_str());
        QVERIFY2(message.find("read-only open failed") == std::string::npos, message.c_str());
    }

    void createOverAnotherStore()
    {
        const std::string file = path("theirs.db");
        makeStore(file, 2, 10);
        for (const StoreInfo& other : { storeInfo("another model"), storeInfo("tiny", 4), storeInfo("tiny", 3, 41) }) {
            const std::string message = errorOf([&] { FeatureStore::create(file, other); });
            QVERIFY2(message.find("is the feature store of model \"tiny\"") != std::string::npos, message.c_str());
            QVERIFY2(message.find("not overwriting it") != std::string::npos, message.c_str());
        }
        StoreInfo otherScan = storeInfo();
        otherScan.scan = "plt";
        QVERIFY(!errorOf([&] { FeatureStore::create(file, otherScan); }).empty());
        QCOMPARE(FeatureStore::open(file)->count(), int64_t(2)); // untouched
        // A bad shape is refused before any file is made.
        QVERIFY(errorOf([&] { FeatureStore::create(path("zero.db"), storeInfo("m", 0)); }).find("positive")
            != std::string::npos);
        QVERIFY(!QFile::exists(m_dir.filePath("zero.db")));
        // An empty file is no one's data: create() makes the store in it.
        writeBytes(m_dir.filePath("empty.db"), "");
        QVERIFY(FeatureStore::create(path("empty.db"), storeInfo()) != nullptr);
        QCOMPARE(FeatureStore::open(path("empty.db"))->info().model, std::string("tiny"));
        // No temporary files left beside the stores.
        for (const QString& entry : QDir(m_dir.path()).entryList(QDir::Files))
            QVERIFY2(!entry.contains(".tmp-"), qPrintable(entry));
    }

    // A damaged row of one feature: the message names the store and the feature (issue 23).
    void cardDamage_data()
    {
        QTest::addColumn<QString>("damage"); // SQL on the feature layer 1 feature 7's rows
        QTest::addColumn<QString>("phrase");
        QTest::newRow("tokens -1") << "UPDATE features SET tokens = -1 WHERE layer = 1"
                                   << "its statistics say";
        QTest::newRow("more active tokens than tokens")
            << "UPDATE features SET active_tokens = tokens + 1 WHERE layer = 1"
            << "active tokens of";
        QTest::newRow("an example's sequence missing")
            << "DELETE FROM sequences WHERE id IN (SELECT sequence FROM examples WHERE layer = 1)"
            << "which it does not hold";
        QTest::newRow("an example's position past its sequence")
            << "UPDATE examples SET position = 1000000 WHERE layer = 1"
            << "is outside its sequence of";
        // One activation per token (issue 23): the sequence a token longer than the activations.
        QTest::newRow("an example's activations shorter than its sequence")
            << "UPDATE sequences SET tokens = tokens || x'0100' WHERE id IN (SELECT sequence FROM examples WHERE layer "
               "= 1)"
            << "activations for its sequence of";
        QTest::newRow("a malformed histogram") << "UPDATE features SET histogram_counts = x'ff' WHERE layer = 1"
                                               << "a malformed histogram";
    }
    void cardDamage()
    {
        QFETCH(QString, damage);
        QFETCH(QString, phrase);
        const std::string file = path("card-damage.db");
        QFile::remove(QString::fromStdString(file));
        makeStore(file, 2, 8); // layer 0 feature 0, layer 1 feature 7
        rawExec(QString::fromStdString(file), damage.toStdString());
        auto store = FeatureStore::open(file);
        const std::string message = errorOf([&] { store->card(1, 7); });
        QVERIFY2(message.rfind("the feature store " + file + " is damaged: ", 0) == 0, message.c_str());
        QVERIFY2(message.find(phrase.toStdString()) != std::string::npos, message.c_str());
        QVERIFY2(message.find("(layer 1 feature 7)") != std::string::npos, message.c_str());
    }

    void cardOutOfRange()
    {
        const std::string file = path("range.db");
        makeStore(file, 2, 11);
        auto store = FeatureStore::open(file);
        for (auto [layer, feature] : { std::pair<int64_t, int64_t> { -1, 0 }, { 3, 0 }, { 0, -1 }, { 0, 40 } }) {
            const std::string message = errorOf([&] { store->card(layer, feature); });
            QVERIFY2(message.find("is out of range") != std::string::npos, message.c_str());
        }
        QVERIFY(errorOf([&] { store->card(2, 39); }).find("is not in") != std::string::npos);
        // A writer refuses records out of range, writing none of the batch.
        auto writer = FeatureStore::open(file, true);
        std::mt19937_64 rng(12);
        const std::string message = errorOf([&] {
            writer->writeRecords({ randomRecord(rng, 1, 30), randomRecord(rng, 3, 1) }, storeInfo());
        });
        QVERIFY2(message.find("out of range") != std::string::npos, message.c_str());
        QVERIFY(!writer->has(1, 30));
        // ... and inconsistent examples.
        FeatureRecord bad = randomRecord(rng, 1, 31);
        bad.top[0].activations.pop_back();
        QVERIFY(errorOf([&] { writer->writeRecords({ bad }, storeInfo()); }).find("activations") != std::string::npos);
        QVERIFY(!writer->has(1, 31));
    }

    void buildState()
    {
        const std::string file = path("state.db");
        makeStore(file, 1, 13);
        auto store = FeatureStore::open(file, true);
        QVERIFY(!store->buildState().has_value());
        std::mt19937_64 rng(14);
        std::vector<uint8_t> state(1 << 20);
        for (uint8_t& b : state)
            b = static_cast<uint8_t>(rng());
        StoreInfo info = storeInfo();
        info.tokens = 777777;
        store->saveBuildState(state, info);
        QCOMPARE(store->info().tokens, int64_t(777777));
        QVERIFY(FeatureStore::open(file)->buildState() == state);
        store->saveBuildState({ 1, 2, 3 }, info); // replaced, not appended
        QVERIFY(store->buildState() == (std::vector<uint8_t> { 1, 2, 3 }));
        store->saveBuildState({}, info);
        QVERIFY(store->buildState() == std::vector<uint8_t>());
        store->clearBuildState();
        QVERIFY(!store->buildState().has_value());
        QVERIFY(!FeatureStore::open(file)->buildState().has_value());
    }

    void circuitTracerJson()
    {
        std::mt19937_64 rng(15);
        FeatureRecord r = randomRecord(rng, 2, 17);
        r.label = "a label";
        std::vector<std::string> vocab;
        for (int i = 0; i < 300; ++i)
            vocab.push_back("t" + std::to_string(i));
        vocab[r.top[0].tokens[0]] = std::string("\xE2\x82", 2); // a partial UTF-8 token
        r.top[1].tokens[0] = 5000; // not in the vocabulary
        const json j = cs::features::circuitTracerJson(r, vocab);
        const std::string text = j.dump(); // valid UTF-8 throughout: the default dump succeeds
        QVERIFY(text.find("\xEF\xBF\xBD") != std::string::npos);
        QCOMPARE(j["index"].get<int64_t>(), int64_t(17));
        QCOMPARE(j["layer"].get<int64_t>(), int64_t(2));
        QCOMPARE(j["label"].get<std::string>(), std::string("a label"));
        QCOMPARE(j["act_max"].get<float>(), r.actMax);
        QCOMPARE(j["act_min"].get<float>(), r.actMin);
        QCOMPARE(j["activation_frequency"].get<double>(), double(r.activeTokens) / double(r.tokens));
        QVERIFY(j["quantile_values"].get<std::vector<float>>() == r.quantileValues);
        QVERIFY(j["histogram"]["edges"].get<std::vector<float>>() == r.histogramEdges);
        QVERIFY(j["histogram"]["counts"].get<std::vector<int64_t>>() == r.histogramCounts);
        QCOMPARE(j["top_logits"].size(), r.topLogits.size());
        QCOMPARE(j["top_logits"][0].get<std::string>(), r.topLogits[0].token);
        QCOMPARE(j["bottom_logits"][1].get<std::string>(), r.bottomLogits[1].token);
        const json& q = j["examples_quantiles"];
        QCOMPARE(q.size(), r.quantiles.size() + 1);
        QCOMPARE(q[0]["quantile_name"].get<std::string>(), std::string("Top activations"));
        QCOMPARE(q[1]["quantile_name"].get<std::string>(), r.quantiles[0].name);
        const json& e = q[0]["examples"][1];
        QCOMPARE(e["tokens"][0].get<std::string>(), std::string("[5000]"));
        QCOMPARE(e["tokens"][1].get<std::string>(), vocab[r.top[1].tokens[1]]);
        QVERIFY(e["tokens_acts_list"].get<std::vector<float>>() == r.top[1].activations);
        QCOMPARE(e["train_token_ind"].get<int64_t>(), r.top[1].position);
        QCOMPARE(e["is_repeated_datapoint"].get<bool>(), false);
        QCOMPARE(q[2]["examples"].size(), r.quantiles[1].examples.size());

        // Neuronpedia's feature-details schema: every key it requires, of its types.
        std::ifstream in(CS_FEATURE_SCHEMA);
        QVERIFY2(in, CS_FEATURE_SCHEMA);
        const json schema = json::parse(in);
        std::vector<std::string> errors;
        checkSchema(schema, j, "$", errors);
        QVERIFY2(errors.empty(), errors.empty() ? "" : errors.front().c_str());
        QVERIFY(j["index"].is_number() && j["examples_quantiles"].is_array());
        // The check bites: a wrong type is caught.
        json broken = j;
        broken["examples_quantiles"][0]["examples"][0]["tokens"][0] = 3;
        errors.clear();
        checkSchema(schema, broken, "$", errors);
        QVERIFY(!errors.empty());
    }

    void exportWritesFiles()
    {
        const std::string file = path("export.db");
        const auto records = makeStore(file, 7, 16);
        std::vector<std::string> vocab;
        for (int i = 0; i < 300; ++i)
            vocab.push_back(std::string("w") + std::to_string(i) + (i == 7 ? "\xFF" : ""));
        {
            auto store = FeatureStore::open(file, true);
            store->writeVocabulary(vocab);
            store->setLabel(records[2].layer, records[2].feature, "exported");
        }
        auto store = FeatureStore::open(file);
        QVERIFY(store->vocabulary() == vocab);
        const QString out = m_dir.filePath("export");
        QCOMPARE(cs::features::exportCircuitTracer(*store, out.toStdString()), int64_t(records.size()));
        for (const FeatureRecord& r : records) {
            const QString name = QStringLiteral("%1/%2/%3.json").arg(out).arg(r.layer).arg(r.feature);
            std::ifstream in(name.toStdString());
            QVERIFY2(in, qPrintable(name));
            const json j = json::parse(in);
            QCOMPARE(j, cs::features::circuitTracerJson(store->card(r.layer, r.feature), vocab));
            QCOMPARE(j["examples_quantiles"][0]["examples"][0]["tokens"][0].get<std::string>(),
                cs::features::circuitTracerJson(r, vocab)["examples_quantiles"][0]["examples"][0]["tokens"][0]
                    .get<std::string>());
        }
        // The Cantor layout: circuit-tracer's file names, "index" the same number.
        const QString flat = m_dir.filePath("export-cantor");
        QCOMPARE(cs::features::exportCircuitTracer(*store, flat.toStdString(), cs::features::ExportLayout::Cantor),
            int64_t(records.size()));
        QCOMPARE(QDir(flat).entryList(QDir::Files).size(), int(records.size()));
        for (const FeatureRecord& r : records) {
            const int64_t index = (r.layer + r.feature) * (r.layer + r.feature + 1) / 2 + r.feature;
            std::ifstream in(QStringLiteral("%1/%2.json").arg(flat).arg(index).toStdString());
            QVERIFY(in);
            const json j = json::parse(in);
            QCOMPARE(j["index"].get<int64_t>(), index);
            QCOMPARE(j["layer"].get<int64_t>(), r.layer);
        }
        // Nothing else in the folder: one file per feature, no temporary files.
        int files = 0;
        for (const QString& layer : QDir(out).entryList(QDir::Dirs | QDir::NoDotAndDotDot))
            files += QDir(out + "/" + layer).entryList(QDir::Files).size();
        QCOMPARE(files, int(records.size()));
    }

    // Bytes per feature of a store like the shipped one: 10 top and 5 x 5 quantile examples of
    // 64 tokens, contexts shared between features as a build shares them. Reported, and bounded
    // so that the shipped store (4,096 features) stays a few MB.
    void sizePerFeature()
    {
        for (double density : { 0.05, 1.0 }) {
            const std::string file = path(QStringLiteral("size-%1.db").arg(density));
            std::mt19937_64 rng(17);
            RecordSpec spec;
            spec.nTop = 10;
            spec.nBands = 5;
            spec.perBand = 5;
            spec.length = 64;
            spec.density = density;
            spec.vocab = 2000;
            // A pool of contexts (a 1M-token build has ~15,600 of 64 tokens; 4,096 features x 35
            // examples draw from it).
            std::vector<std::vector<int64_t>> pool(2000);
            for (auto& tokens : pool)
                for (int i = 0; i < 64; ++i)
                    tokens.push_back(static_cast<int64_t>(rng() % 2000));
            const int n = 512;
            StoreInfo info = storeInfo("size", 4, 1024);
            info.complete = true;
            auto store = FeatureStore::create(file, info);
            std::vector<FeatureRecord> records;
            for (int i = 0; i < n; ++i) {
                FeatureRecord r = randomRecord(rng, i % 4, i, spec);
                const auto share = [&](Example& e) {
                    e.context = static_cast<int64_t>(rng() % pool.size());
                    e.tokens = pool[static_cast<size_t>(e.context)];
                };
                for (Example& e : r.top)
                    share(e);
                for (auto& q : r.quantiles)
                    for (Example& e : q.examples)
                        share(e);
                records.push_back(std::move(r));
            }
            store->writeRecords(records, info);
            QElapsedTimer timer;
            timer.start();
            for (int i = 0; i < 100; ++i)
                store->card(i % 4, i);
            const double cardMs = double(timer.nsecsElapsed()) / 1e6 / 100;
            store.reset(); // checkpoints the WAL into the file
            const qint64 bytes = QFileInfo(QString::fromStdString(file)).size();
            const double contextBytes = 2000.0 * (64 * 2 + 1 + 12) / n; // the shared pool's share
            qInfo("activation density %.2f: %.0f bytes per feature (%.0f of them the shared contexts' tokens), "
                  "card in %.2f ms",
                density, double(bytes) / n, contextBytes, cardMs);
            QVERIFY(double(bytes) / n < (density < 1 ? 3000 : 8000));
            QVERIFY(cardMs < 20);
        }
    }
};

QTEST_GUILESS_MAIN(TestFeatureStore)
#include "tst_feature_store.moc"
