// The feature store (docs/ARCHITECTURE.md §9, §11.6) on SQLite, through the sqlite3 C API.
//
// Schema (kStoreVersion 2; version 1 lacks the coactivations table). Tables without a rowid where the key is the
// natural one, so a card is a handful of primary-key lookups.
//
//   meta(key TEXT PRIMARY KEY, value TEXT)
//       format = kStoreFormat, version = kStoreVersion, model, scan, n_layers, n_features,
//       context_length, tokens, complete (0/1), build_options (JSON text).
//   features(layer, feature, tokens, active_tokens, act_max, act_min, act_sum,
//            quantile_levels, quantile_values, histogram_edges, histogram_counts, bands,
//            top_logits, bottom_logits, top_inputs, PRIMARY KEY(layer, feature))
//       one row per feature with statistics. Arrays are compact little-endian BLOBs:
//       quantile_levels float64[], quantile_values float32[], histogram_edges float32[],
//       histogram_counts zigzag varints, bands the names.id of each quantile band in order
//       (varints), top_logits / bottom_logits / top_inputs a varint count then per entry
//       (zigzag varint id, float32 value, varint length, the token's bytes).
//   names(id INTEGER PRIMARY KEY, name TEXT UNIQUE)
//       band names ("Subsample Interval 0", ...), written once and shared by every feature.
//   examples(layer, feature, band, rank, context, position, activation, sequence, activations,
//            PRIMARY KEY(layer, feature, band, rank))
//       band -1 is the top-activating list, 0.. the quantile bands in order; rank the order in
//       the list. activation (the peak) is exact (REAL). sequence points into sequences: the
//       tokens. activations is byte 0 the encoding, then a varint n (the token count):
//         1 dense float16 [n]      2 dense float32 [n]
//         3 sparse float16: varint k, then k x (varint gap to the previous non-zero, float16)
//         4 sparse float32: the same with float32
//       float16 whenever every value is finite and within float16's range (round to nearest
//       even: about 3 significant digits, enough to colour a token), sparse when smaller
//       (a feature is zero on most tokens of most contexts).
//   sequences(id INTEGER PRIMARY KEY, hash INTEGER, tokens BLOB), index on hash
//       token windows, stored once however many features' examples show them (with whole
//       contexts as examples, every feature that fired in a context shares its row). tokens is
//       byte 0 the width (2: uint16, 4: int32, 8: int64), then the ids little-endian. Rows no
//       example uses any more are deleted when a build completes.
//   labels(layer, feature, label, notes, updated, PRIMARY KEY(layer, feature))
//       the user's; writeRecords and clearRecords never touch it.
//   vocab(id INTEGER PRIMARY KEY, text BLOB)
//       each token's text (bytes as the tokenizer gives them: may be partial UTF-8).
//   build_state(id INTEGER PRIMARY KEY CHECK(id = 1), state BLOB)
//       the builder's resume state.
//   coactivations(layer, feature, side, pairs, PRIMARY KEY(layer, feature, side))   (version 2)
//       the features that fired with this one at the same position: side 0 its sources (earlier
//       layers), side 1 its targets (later layers), so either query is one row. pairs is a
//       varint (partners in all), a varint count kept, then per kept partner by global id
//       (layer * n_features + feature) ascending: varint gap from the previous id (the first
//       from -1), varint count, float64 sum of the source's activation, float64 sum of the
//       product. meta coactivations = 1 once written.
//
// Journal: WAL while a writer has the store open, synchronous=NORMAL, so a reader reads the last
// committed state while the builder writes. A writer that closes puts the file back in rollback
// mode (when no reader holds it), so a finished store is one file that readers open without
// creating -wal and -shm files beside it (an installed store in a read-only folder, a store in
// a source checkout). auto_vacuum=INCREMENTAL: a completed build returns
// the pages a rebuild freed.

#include "cs/features.h"
#include "cs/json_reader.h"

#include "cs/error.h"
#include "cs/graph.h"
#include "cs/utf8.h"
#include "features/blob_codec.h"
#include "features/sqlite_db.h"
#include "io/atomic_file.h"

#include <sqlite3.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <sys/stat.h>
#include <unistd.h>

namespace cs::features {

namespace {

namespace fs = std::filesystem;
using namespace blob; // the BLOB encodings (blob_codec.h)
using sqlite::DbPtr; // the SQLite wrapper (sqlite_db.h)
using sqlite::exec;
using sqlite::fail;
using sqlite::fileUri;
using sqlite::Statement;

constexpr const char* kTopName = "Top activations"; // circuit-tracer's name of the top band
constexpr int kBusyTimeoutMs = 10000; // how long a statement waits for another writer's lock

constexpr const char* kSchema = R"sql(
CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE features(
    layer INTEGER NOT NULL, feature INTEGER NOT NULL,
    tokens INTEGER NOT NULL, active_tokens INTEGER NOT NULL,
    act_max REAL NOT NULL, act_min REAL NOT NULL, act_sum REAL NOT NULL,
    quantile_levels BLOB, quantile_values BLOB, histogram_edges BLOB, histogram_counts BLOB,
    bands BLOB, top_logits BLOB, bottom_logits BLOB, top_inputs BLOB,
    PRIMARY KEY(layer, feature)) WITHOUT ROWID;
CREATE TABLE names(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE examples(
    layer INTEGER NOT NULL, feature INTEGER NOT NULL, band INTEGER NOT NULL, rank INTEGER NOT NULL,
    context INTEGER NOT NULL, position INTEGER NOT NULL, activation REAL NOT NULL,
    sequence INTEGER NOT NULL, activations BLOB NOT NULL,
    PRIMARY KEY(layer, feature, band, rank)) WITHOUT ROWID;
CREATE TABLE sequences(id INTEGER PRIMARY KEY, hash INTEGER NOT NULL, tokens BLOB NOT NULL);
CREATE INDEX sequences_hash ON sequences(hash);
CREATE TABLE labels(
    layer INTEGER NOT NULL, feature INTEGER NOT NULL,
    label TEXT NOT NULL, notes TEXT NOT NULL, updated TEXT NOT NULL,
    PRIMARY KEY(layer, feature)) WITHOUT ROWID;
CREATE TABLE vocab(id INTEGER PRIMARY KEY, text BLOB NOT NULL);
CREATE TABLE build_state(id INTEGER PRIMARY KEY CHECK(id = 1), state BLOB NOT NULL);
)sql";

// Version 2's addition.
constexpr const char* kCoactivationsSchema = R"sql(
CREATE TABLE coactivations(
    layer INTEGER NOT NULL, feature INTEGER NOT NULL, side INTEGER NOT NULL, pairs BLOB NOT NULL,
    PRIMARY KEY(layer, feature, side)) WITHOUT ROWID;
)sql";

constexpr const char* kTables[]
    = { "meta", "features", "names", "examples", "sequences", "labels", "vocab", "build_state" };

// The bytes as valid UTF-8: each byte that does not belong to a well-formed sequence becomes
// U+FFFD (what nlohmann's error_handler_t::replace does when dumping).
std::string validUtf8(const std::string& bytes)
{
    std::string out;
    out.reserve(bytes.size());
    for (size_t i = 0; i < bytes.size();) {
        const size_t n = utf8::sequenceLength(bytes, i);
        if (n == 0) {
            out += "\xEF\xBF\xBD";
            ++i;
        } else {
            out.append(bytes, i, n);
            i += n;
        }
    }
    return out;
}

std::string describe(const StoreInfo& i)
{
    return "model \"" + i.model + "\", transcoders \"" + i.scan + "\", " + std::to_string(i.nLayers) + " layers x "
        + std::to_string(i.nFeatures) + " features";
}

std::string featureName(int64_t layer, int64_t feature)
{
    return "layer " + std::to_string(layer) + " feature " + std::to_string(feature);
}

} // namespace

struct FeatureStore::Impl {
    DbPtr db;
    std::string path;
    bool writable = false;
    int64_t nLayers = 0, nFeatures = 0; // from meta, for range checks
    int64_t version = 0; // the store's (meta "version", matching its tables)
    bool coactivations = false; // meta "coactivations" is 1
    mutable std::mutex mutex; // one connection: statements and their caches are not shared safely
    mutable std::map<std::string, std::unique_ptr<Statement>> statements;
    std::map<std::string, int64_t> nameIds; // names table, within one writeRecords transaction

    // A cached prepared statement, reset and ready to bind.
    Statement& sql(const std::string& text) const
    {
        auto it = statements.find(text);
        if (it == statements.end()) // prepared before it is inserted: a failed prepare leaves no entry
            it = statements.emplace(text, std::make_unique<Statement>(db.get(), text, path)).first;
        return it->second->reset();
    }
    void exec(const std::string& text) const { cs::features::exec(db.get(), text, path); }
    // Resets every cached statement, so that none keeps a read snapshot open between calls (in
    // WAL mode that would hide later commits and hold back checkpoints).
    void finishAll() const
    {
        for (auto& [text, s] : statements)
            s->finish();
    }

    void requireWritable(const char* what) const
    {
        if (!writable)
            throw Error(std::string("cannot ") + what + ": " + path + " is open read-only");
    }
    void checkRange(int64_t layer, int64_t feature) const
    {
        if (layer < 0 || layer >= nLayers || feature < 0 || feature >= nFeatures)
            throw Error(featureName(layer, feature) + " is out of range: " + path + " holds " + std::to_string(nLayers)
                + " layers of " + std::to_string(nFeatures) + " features");
    }

    std::map<std::string, std::string> meta() const
    {
        std::map<std::string, std::string> m;
        Statement& s = sql("SELECT key, value FROM meta");
        while (s.step())
            m[s.text(0)] = s.text(1);
        return m;
    }
    void setMeta(const std::string& key, const std::string& value) const
    {
        sql("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)").bind(key).bind(value).run();
    }
    // What a build reports as it goes (the identity keys stay as created).
    void setProgress(const StoreInfo& info) const
    {
        setMeta("tokens", std::to_string(info.tokens));
        setMeta("complete", info.complete ? "1" : "0");
        setMeta("context_length", std::to_string(info.contextLength));
        setMeta("build_options", info.buildOptions.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    }

    int64_t nameId(const std::string& name)
    {
        if (nameIds.empty()) {
            Statement& s = sql("SELECT id, name FROM names");
            while (s.step())
                nameIds[s.text(1)] = s.integer(0);
        }
        auto it = nameIds.find(name);
        if (it != nameIds.end())
            return it->second;
        sql("INSERT OR IGNORE INTO names(name) VALUES(?)").bind(name).run();
        Statement& s = sql("SELECT id FROM names WHERE name = ?").bind(name);
        if (!s.step())
            throw Error(path + ": cannot record the band name \"" + name + "\"");
        return nameIds[name] = s.integer(0);
    }

    int64_t sequenceId(const std::vector<int64_t>& tokens)
    {
        const std::vector<uint8_t> bytes = encodeTokens(tokens);
        const auto hash = static_cast<int64_t>(fnv1a(bytes));
        Statement& find = sql("SELECT id, tokens FROM sequences WHERE hash = ?").bind(hash);
        while (find.step()) {
            const auto [p, n] = find.blob(1);
            if (n == bytes.size() && (n == 0 || std::memcmp(p, bytes.data(), n) == 0))
                return find.integer(0);
        }
        sql("INSERT INTO sequences(hash, tokens) VALUES(?, ?)").bind(hash).bindBlob(bytes).run();
        return sqlite3_last_insert_rowid(db.get());
    }
};

namespace {

// One public call: the connection to itself, and every statement reset at the end.
class Use {
public:
    explicit Use(const FeatureStore::Impl& impl)
        : m_lock(impl.mutex)
        , m_impl(impl)
    {
    }
    ~Use() { m_impl.finishAll(); }

private:
    std::lock_guard<std::mutex> m_lock;
    const FeatureStore::Impl& m_impl;
};

// BEGIN IMMEDIATE ... COMMIT; rolled back unless committed (an exception on the way).
class Transaction {
public:
    explicit Transaction(const FeatureStore::Impl& impl)
        : m_impl(impl)
    {
        m_impl.exec("BEGIN IMMEDIATE");
    }
    ~Transaction()
    {
        if (!m_done)
            sqlite3_exec(m_impl.db.get(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
    void commit()
    {
        m_impl.exec("COMMIT");
        m_done = true;
    }

private:
    const FeatureStore::Impl& m_impl;
    bool m_done = false;
};

// The most layers and features per layer a store's meta may claim (a model's layer count; the
// feature ids of a graph, int32).
constexpr int64_t kMaxStoreLayers = 4096;
constexpr int64_t kMaxStoreFeatures = (int64_t(1) << 31) - 1;

int64_t parseInt(const std::map<std::string, std::string>& meta, const std::string& key, const std::string& path)
{
    auto it = meta.find(key);
    try {
        size_t used = 0;
        if (it != meta.end()) {
            const int64_t v = std::stoll(it->second, &used);
            if (used == it->second.size())
                return v;
        }
    } catch (const std::exception&) {
    }
    throw Error(path + " is not a usable feature store: its meta table has no valid \"" + key + "\"");
}

// The schema's objects, (type, name) -> CREATE statement with its whitespace collapsed; SQLite's
// own automatic indexes (no statement) left out.
std::map<std::pair<std::string, std::string>, std::string> schemaObjects(sqlite3* db, const std::string& path)
{
    std::map<std::pair<std::string, std::string>, std::string> out;
    Statement s(db, "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL", path);
    while (s.step()) {
        std::string sql;
        for (const char c : s.text(2)) {
            const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
            if (!space)
                sql.push_back(c);
            else if (!sql.empty() && sql.back() != ' ')
                sql.push_back(' ');
        }
        out[{ s.text(0), s.text(1) }] = sql;
    }
    return out;
}

// Refuses a store whose schema holds anything Circuitscope did not create: triggers, views,
// other tables, indexes or columns. Stores travel between people like any file, and SQL in one
// must never run (the connection also has triggers and views switched off).
// The schema's objects of a store version (1 or 2), as SQLite stores them: built once, in an
// in-memory database.
const std::map<std::pair<std::string, std::string>, std::string>& ourSchemaObjects(int version)
{
    const auto make = [](bool coactivations) {
        const std::string where = "the reference schema (in memory)";
        sqlite3* reference = nullptr;
        const int rc = sqlite3_open_v2(":memory:", &reference, SQLITE_OPEN_READWRITE, nullptr);
        DbPtr holder(reference);
        if (rc != SQLITE_OK)
            fail(reference, rc, where, "cannot open an in-memory database");
        exec(reference, kSchema, where);
        if (coactivations)
            exec(reference, kCoactivationsSchema, where);
        return schemaObjects(reference, where);
    };
    static const auto version1 = make(false);
    static const auto version2 = make(true);
    return version < 2 ? version1 : version2;
}

// Returns the schema's version: 1 without the coactivations table, else 2.
int checkSchemaIsOurs(FeatureStore::Impl& impl)
{
    const auto theirs = schemaObjects(impl.db.get(), impl.path);
    const int version = theirs.count({ "table", "coactivations" }) ? 2 : 1;
    const auto& ours = ourSchemaObjects(version);
    for (const auto& [key, sql] : theirs) {
        const auto it = ours.find(key);
        if (it == ours.end())
            throw Error(impl.path + " is not a usable feature store: it holds "
                + (key.first == "index" ? std::string("an ") : std::string("a ")) + key.first + " \"" + key.second
                + "\" that Circuitscope does not create (a store may not carry SQL of its own)");
        if (it->second != sql)
            throw Error(impl.path + " is not a usable feature store: its " + key.first + " \"" + key.second
                + "\" is not the one Circuitscope creates (" + sql.substr(0, 120) + ")");
    }
    for (const auto& [key, sql] : ours)
        if (!theirs.count(key))
            throw Error(
                impl.path + " is not a usable feature store: it has no " + key.first + " \"" + key.second + "\"");
    return version;
}

// Checks that the connection reads a sound feature store, and reads its shape. Throws
// cs::Error saying what the file is instead.
void validate(FeatureStore::Impl& impl)
{
    // Any first read fails with SQLITE_NOTADB on a file that is not a database.
    std::map<std::string, bool> tables;
    {
        Statement& s = impl.sql("SELECT name FROM sqlite_master WHERE type = 'table'");
        while (s.step())
            tables[s.text(0)] = true;
    }
    // A truncated or corrupt file can still have a readable first page; quick_check reads every
    // page (O(size): tens of milliseconds for a store of a few MB).
    {
        Statement& s = impl.sql("PRAGMA quick_check");
        std::string first = "no result";
        if (s.step())
            first = s.text(0);
        if (first != "ok")
            throw Error(impl.path + " is damaged, a truncated or corrupt file (" + first + ")");
    }
    if (!tables.count("meta"))
        throw Error(impl.path + " is not a Circuitscope feature store (an SQLite database without its meta table)");
    const int schemaVersion = checkSchemaIsOurs(impl);
    const auto meta = impl.meta();
    const auto format = meta.find("format");
    if (format == meta.end() || format->second != kStoreFormat)
        throw Error(impl.path + " is not a Circuitscope feature store (its format is \""
            + (format == meta.end() ? std::string("unnamed") : format->second) + "\", not \"" + kStoreFormat + "\")");
    const int64_t version = parseInt(meta, "version", impl.path);
    if (version > kStoreVersion)
        throw Error(impl.path + " was made by a newer Circuitscope (feature store version " + std::to_string(version)
            + "; this one reads up to " + std::to_string(kStoreVersion) + ")");
    if (version != schemaVersion)
        throw Error(impl.path + " is not a usable feature store: it says version " + std::to_string(version)
            + " but has the tables of version " + std::to_string(schemaVersion));
    impl.version = version;
    impl.coactivations = version >= 2 && meta.count("coactivations") && meta.at("coactivations") == "1";
    for (const char* table : kTables)
        if (!tables.count(table))
            throw Error(impl.path + " is not a usable feature store: it has no table \"" + table + "\"");
    impl.nLayers = parseInt(meta, "n_layers", impl.path);
    impl.nFeatures = parseInt(meta, "n_features", impl.path);
    // The meta table against itself and the contents (issue 23): a count that cannot be, or
    // features past the layers and features it says it holds.
    const auto refuse = [&](const std::string& key, int64_t value, const std::string& why) {
        throw Error(impl.path + " is not a usable feature store: its meta \"" + key + "\" is " + std::to_string(value)
            + " (" + why + ")");
    };
    if (impl.nLayers < 1 || impl.nLayers > kMaxStoreLayers)
        refuse("n_layers", impl.nLayers, "not in [1, " + std::to_string(kMaxStoreLayers) + "]");
    if (impl.nFeatures < 1 || impl.nFeatures > kMaxStoreFeatures)
        refuse("n_features", impl.nFeatures, "not in [1, " + std::to_string(kMaxStoreFeatures) + "]");
    const int64_t contextLength = parseInt(meta, "context_length", impl.path);
    if (contextLength < 1)
        refuse("context_length", contextLength, "a context holds at least one token");
    const int64_t tokens = parseInt(meta, "tokens", impl.path);
    if (tokens < 0)
        refuse("tokens", tokens, "negative");
    Statement extent(
        impl.db.get(), "SELECT MIN(layer), MAX(layer), MIN(feature), MAX(feature) FROM features", impl.path);
    if (extent.step() && !extent.isNull(0)) {
        if (extent.integer(0) < 0 || extent.integer(1) >= impl.nLayers)
            refuse("n_layers", impl.nLayers,
                "but it holds features of layer " + std::to_string(extent.integer(extent.integer(0) < 0 ? 0 : 1)));
        if (extent.integer(2) < 0 || extent.integer(3) >= impl.nFeatures)
            refuse("n_features", impl.nFeatures,
                "but it holds feature " + std::to_string(extent.integer(extent.integer(2) < 0 ? 2 : 3)));
    }
}

} // namespace

FeatureStore::FeatureStore(std::unique_ptr<Impl> impl)
    : m_impl(std::move(impl))
{
}

FeatureStore::~FeatureStore()
{
    if (m_impl && m_impl->writable && m_impl->db) {
        std::lock_guard<std::mutex> lock(m_impl->mutex);
        m_impl->statements.clear();
        // Checkpoints the WAL into the file and removes it; SQLITE_BUSY (a reader still has the
        // store open) leaves WAL mode, which stays correct, just not one file.
        sqlite3_exec(m_impl->db.get(), "PRAGMA journal_mode=DELETE", nullptr, nullptr, nullptr);
    }
}

std::unique_ptr<FeatureStore> FeatureStore::open(const std::string& path, bool writable)
{
    std::error_code ec;
    if (!fs::exists(path, ec))
        throw Error("no such feature store: " + path);
    if (fs::is_directory(path, ec))
        throw Error(path + " is a folder, not a feature store");
    requireRegularFile(path); // SQLite would open a FIFO or a device (a link to /dev/zero) too
    // SQLite reads a file shorter than its 100-byte header as an empty database; say what it is.
    const auto size = fs::file_size(path, ec);
    if (!ec && size == 0)
        throw Error(path + " is an empty file, not a feature store");
    if (!ec && size < 100)
        throw Error(path + " is not an SQLite database (" + std::to_string(size)
            + " bytes, shorter than the header: a truncated file?)");
    // SQLite reads a last page cut short as if zero-filled, and quick_check checks structure, not
    // record contents: a file cut inside its last page would open. Every database file is a
    // whole number of pages (header bytes 16-17: the page size, big-endian, 1 meaning 65536).
    if (!ec) {
        std::ifstream in(path, std::ios::binary);
        unsigned char header[18] = {};
        if (in.read(reinterpret_cast<char*>(header), sizeof header)
            && std::memcmp(header, "SQLite format 3", 16) == 0) {
            const uint32_t raw = uint32_t(header[16]) << 8 | header[17];
            const uint32_t pageSize = raw == 1 ? 65536 : raw;
            if (pageSize >= 512 && (pageSize & (pageSize - 1)) == 0 && size % pageSize != 0)
                throw Error(path + " is damaged, a truncated or corrupt file (" + std::to_string(size)
                    + " bytes: not a whole number of " + std::to_string(pageSize) + "-byte pages)");
        }
    }
    auto impl = std::make_unique<Impl>();
    impl->path = path;
    impl->writable = writable;
    impl->db = sqlite::openDb(path, writable ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY, path, kBusyTimeoutMs);
    try {
        validate(*impl);
    } catch (const Error&) {
        // A WAL database opened read-only needs its -shm file, which SQLite creates beside it; in
        // a folder we cannot write (an installed store) that fails (SQLITE_CANTOPEN). Then read
        // it as immutable: no locks and no WAL, which is right for a store nobody is building
        // (a writer that closes checkpoints the WAL into the file and removes it).
        const int code = sqlite3_extended_errcode(impl->db.get()) & 0xff;
        if (writable || (code != SQLITE_CANTOPEN && code != SQLITE_READONLY))
            throw;
        impl->statements.clear();
        impl->db.reset();
        impl->db = sqlite::openDb(
            fileUri(path, "immutable=1"), SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, path, kBusyTimeoutMs);
        validate(*impl);
    }
    impl->finishAll();
    if (writable && sqlite3_db_readonly(impl->db.get(), "main") == 1)
        throw Error("cannot write " + path + ": the file is read-only");
    if (writable) {
        try {
            impl->exec("PRAGMA journal_mode=WAL");
        } catch (const Error&) {
            // The journal is a file beside the store: a folder nobody may write to has none.
            if ((sqlite3_extended_errcode(impl->db.get()) & 0xff) != SQLITE_CANTOPEN)
                throw;
            throw Error("cannot write " + path + ": its folder "
                + std::filesystem::absolute(path).parent_path().string()
                + " is read-only (a store keeps its journal beside it)");
        }
        impl->exec("PRAGMA synchronous=NORMAL");
        if (impl->version < 2) { // a version 1 store, upgraded: it gains the (empty) coactivations table
            Transaction t(*impl);
            impl->exec(kCoactivationsSchema);
            impl->setMeta("version", "2");
            t.commit();
            impl->version = 2;
        }
    }
    return std::unique_ptr<FeatureStore>(new FeatureStore(std::move(impl)));
}

std::unique_ptr<FeatureStore> FeatureStore::create(const std::string& path, const StoreInfo& info)
{
    if (info.nLayers <= 0 || info.nFeatures <= 0)
        throw Error("a feature store needs a positive number of layers and features, got " + describe(info));
    std::error_code ec;
    if (fs::exists(path, ec) && (fs::is_directory(path, ec) || fs::file_size(path, ec) > 0)) {
        // An existing store of the same model and set: opened to rebuild or resume it. Anything
        // else is someone's file, never overwritten.
        std::unique_ptr<FeatureStore> store;
        try {
            store = open(path, true);
        } catch (const Error& e) {
            throw Error(std::string(e.what()) + "; not overwriting it");
        }
        const StoreInfo have = store->info();
        if (have.model != info.model || have.scan != info.scan || have.nLayers != info.nLayers
            || have.nFeatures != info.nFeatures)
            throw Error(path + " is the feature store of " + describe(have) + ", not of " + describe(info)
                + "; not overwriting it (give another path, or delete it)");
        return store;
    }
    // A new store: the schema and meta are written to a temporary sibling that is renamed into
    // place, so that an interrupted create leaves no half-made store behind.
    std::string tmp = path + ".tmp-XXXXXX";
    const int fd = ::mkstemp(tmp.data());
    if (fd < 0)
        throw Error("cannot create " + path + ": " + std::strerror(errno));
    ::close(fd);
    ::chmod(tmp.c_str(), 0644);
    try {
        DbPtr db = sqlite::openDb(tmp, SQLITE_OPEN_READWRITE, path, kBusyTimeoutMs);
        // Pages freed by a rebuild go back to the file system when a build completes.
        exec(db.get(), "PRAGMA auto_vacuum = INCREMENTAL", path);
        exec(db.get(), "BEGIN", path);
        exec(db.get(), kSchema, path);
        exec(db.get(), kCoactivationsSchema, path);
        Statement meta(db.get(), "INSERT INTO meta(key, value) VALUES(?, ?)", path);
        const std::pair<std::string, std::string> rows[] = {
            { "format", kStoreFormat },
            { "version", std::to_string(kStoreVersion) },
            { "model", info.model },
            { "scan", info.scan },
            { "n_layers", std::to_string(info.nLayers) },
            { "n_features", std::to_string(info.nFeatures) },
            { "context_length", std::to_string(info.contextLength) },
            { "tokens", std::to_string(info.tokens) },
            { "complete", info.complete ? "1" : "0" },
            { "build_options", info.buildOptions.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) },
        };
        for (const auto& [key, value] : rows)
            meta.reset().bind(key).bind(value).run();
        exec(db.get(), "COMMIT", path);
        exec(db.get(), "PRAGMA journal_mode=WAL", path); // persistent: readers find the file in WAL mode
    } catch (...) {
        ::unlink(tmp.c_str());
        ::unlink((tmp + "-wal").c_str());
        ::unlink((tmp + "-shm").c_str());
        throw;
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const std::string why = std::strerror(errno);
        ::unlink(tmp.c_str());
        throw Error("cannot create " + path + ": " + why);
    }
    return open(path, true);
}

StoreInfo FeatureStore::info() const
{
    Use use(*m_impl);
    const auto meta = m_impl->meta();
    const auto get = [&](const char* key) {
        auto it = meta.find(key);
        return it == meta.end() ? std::string() : it->second;
    };
    StoreInfo i;
    i.model = get("model");
    i.scan = get("scan");
    i.nLayers = m_impl->nLayers;
    i.nFeatures = m_impl->nFeatures;
    i.contextLength = parseInt(meta, "context_length", m_impl->path);
    i.tokens = parseInt(meta, "tokens", m_impl->path);
    i.complete = get("complete") == "1";
    const std::string buildOptions = get("build_options");
    // Not JSON, or nested past the limit: no build options (they are only shown).
    i.buildOptions = nlohmann::json::value_t::discarded;
    try {
        i.buildOptions = parseJson(buildOptions, "build_options");
    } catch (const std::exception&) {
    }
    if (i.buildOptions.is_discarded())
        i.buildOptions = nlohmann::json::object();
    return i;
}

const std::string& FeatureStore::path() const
{
    return m_impl->path;
}

bool FeatureStore::has(int64_t layer, int64_t feature) const
{
    Use use(*m_impl);
    return m_impl->sql("SELECT 1 FROM features WHERE layer = ? AND feature = ?").bind(layer).bind(feature).step();
}

FeatureRecord FeatureStore::card(int64_t layer, int64_t feature) const
{
    Use use(*m_impl);
    Impl& d = *m_impl;
    d.checkRange(layer, feature);
    // One read transaction: the row and its examples from the same commit of a running build.
    d.exec("BEGIN");
    struct End {
        const Impl& d;
        ~End()
        {
            d.finishAll();
            sqlite3_exec(d.db.get(), "COMMIT", nullptr, nullptr, nullptr);
        }
    } end { d };

    // A damaged row names the store and the feature (the BLOB decoders know neither).
    const auto damaged = [&](const std::string& what) {
        return Error("the feature store " + d.path + " is damaged: " + what + " (" + featureName(layer, feature) + ")");
    };
    try {
        FeatureRecord r;
        r.layer = layer;
        r.feature = feature;
        std::vector<std::string> bandNames;
        {
            Statement& s
                = d.sql("SELECT tokens, active_tokens, act_max, act_min, act_sum, quantile_levels, "
                        "quantile_values, histogram_edges, histogram_counts, bands, top_logits, bottom_logits, "
                        "top_inputs FROM features WHERE layer = ? AND feature = ?")
                      .bind(layer)
                      .bind(feature);
            if (!s.step())
                throw Error(featureName(layer, feature) + " is not in " + d.path
                    + " (no statistics: it never fired, or the build has not reached it)");
            r.tokens = s.integer(0);
            r.activeTokens = s.integer(1);
            if (r.tokens < 0 || r.activeTokens < 0 || r.activeTokens > r.tokens)
                throw damaged("its statistics say " + std::to_string(r.activeTokens) + " active tokens of "
                    + std::to_string(r.tokens));
            r.actMax = static_cast<float>(s.real(2));
            r.actMin = static_cast<float>(s.real(3));
            r.actSum = s.real(4);
            const auto blob = [&](int i) { return s.blob(i); };
            auto [p, n] = blob(5);
            r.quantileLevels = decodeFixed<double>(p, n, "quantile list");
            std::tie(p, n) = blob(6);
            r.quantileValues = decodeFixed<float>(p, n, "quantile list");
            std::tie(p, n) = blob(7);
            r.histogramEdges = decodeFixed<float>(p, n, "histogram");
            std::tie(p, n) = blob(8);
            r.histogramCounts = decodeCounts(p, n);
            std::tie(p, n) = blob(9);
            std::vector<int64_t> bandIds;
            {
                Reader br(p, n, "band list");
                while (!br.atEnd())
                    bandIds.push_back(static_cast<int64_t>(br.varint()));
            }
            std::tie(p, n) = blob(10);
            r.topLogits = decodeTokenValues(p, n);
            std::tie(p, n) = blob(11);
            r.bottomLogits = decodeTokenValues(p, n);
            std::tie(p, n) = blob(12);
            r.topInputs = decodeTokenValues(p, n);
            for (int64_t id : bandIds) {
                Statement& name = d.sql("SELECT name FROM names WHERE id = ?").bind(id);
                if (!name.step())
                    throw Error("the feature store " + d.path + " is damaged: a band name is missing");
                bandNames.push_back(name.text(0));
            }
        }
        r.quantiles.resize(bandNames.size());
        for (size_t b = 0; b < bandNames.size(); ++b)
            r.quantiles[b].name = bandNames[b];
        {
            Statement& s = d.sql("SELECT e.band, e.context, e.position, e.activation, e.activations, q.tokens, "
                                 "e.sequence, q.id FROM examples e LEFT JOIN sequences q ON q.id = e.sequence "
                                 "WHERE e.layer = ? AND e.feature = ? ORDER BY e.band, e.rank")
                               .bind(layer)
                               .bind(feature);
            while (s.step()) {
                const int64_t band = s.integer(0);
                if (band < -1 || band >= static_cast<int64_t>(r.quantiles.size()))
                    throw Error("the feature store " + d.path + " is damaged: an example of "
                        + featureName(layer, feature) + " is in an unknown band");
                Example e;
                e.context = s.integer(1);
                e.position = s.integer(2);
                e.activation = static_cast<float>(s.real(3));
                auto [p, n] = s.blob(4);
                e.activations = decodeActivations(p, n);
                if (s.isNull(7))
                    throw damaged(
                        "an example points at sequence " + std::to_string(s.integer(6)) + ", which it does not hold");
                std::tie(p, n) = s.blob(5);
                e.tokens = decodeTokens(p, n);
                if (e.position < 0 || e.position >= static_cast<int64_t>(e.tokens.size()))
                    throw damaged("an example's position " + std::to_string(e.position) + " is outside its sequence of "
                        + std::to_string(e.tokens.size()) + " tokens");
                // One activation per token: the card marks tokens by their activations.
                if (e.activations.size() != e.tokens.size())
                    throw damaged("an example holds " + std::to_string(e.activations.size())
                        + " activations for its sequence of " + std::to_string(e.tokens.size()) + " tokens");
                (band < 0 ? r.top : r.quantiles[static_cast<size_t>(band)].examples).push_back(std::move(e));
            }
        }
        {
            Statement& s
                = d.sql("SELECT label, notes FROM labels WHERE layer = ? AND feature = ?").bind(layer).bind(feature);
            if (s.step()) {
                r.label = s.text(0);
                r.notes = s.text(1);
            }
        }
        return r;
    } catch (const Error& e) {
        const std::string prefix = "the feature store is damaged: ";
        const std::string what = e.what();
        if (what.compare(0, prefix.size(), prefix) == 0)
            throw damaged(what.substr(prefix.size()));
        throw;
    }
}

std::vector<SearchHit> FeatureStore::search(const std::string& text, int64_t limit) const
{
    Use use(*m_impl);
    // LIKE is case-insensitive for ASCII letters; %, _ and the escape itself are taken literally.
    std::string pattern = "%";
    for (char c : text) {
        if (c == '%' || c == '_' || c == '\\')
            pattern += '\\';
        pattern += c;
    }
    pattern += '%';
    Statement& s = m_impl
                       ->sql("SELECT layer, feature, label FROM labels WHERE label <> '' AND label LIKE ? ESCAPE '\\' "
                             "ORDER BY layer, feature LIMIT ?")
                       .bind(pattern)
                       .bind(limit < 0 ? int64_t(-1) : limit);
    std::vector<SearchHit> hits;
    while (s.step())
        hits.push_back({ s.integer(0), s.integer(1), s.text(2) });
    return hits;
}

void FeatureStore::setLabel(int64_t layer, int64_t feature, const std::string& label, const std::string& notes)
{
    Use use(*m_impl);
    m_impl->requireWritable("set a label");
    m_impl->checkRange(layer, feature);
    if (label.empty() && notes.empty()) {
        m_impl->sql("DELETE FROM labels WHERE layer = ? AND feature = ?").bind(layer).bind(feature).run();
        return;
    }
    m_impl
        ->sql("INSERT OR REPLACE INTO labels(layer, feature, label, notes, updated) "
              "VALUES(?, ?, ?, ?, strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))")
        .bind(layer)
        .bind(feature)
        .bind(label)
        .bind(notes)
        .run();
}

std::vector<std::pair<int64_t, int64_t>> FeatureStore::listFeatures() const
{
    Use use(*m_impl);
    Statement& s = m_impl->sql("SELECT layer, feature FROM features ORDER BY layer, feature");
    std::vector<std::pair<int64_t, int64_t>> out;
    while (s.step())
        out.emplace_back(s.integer(0), s.integer(1));
    return out;
}

int64_t FeatureStore::count() const
{
    Use use(*m_impl);
    Statement& s = m_impl->sql("SELECT count(*) FROM features");
    return s.step() ? s.integer(0) : 0;
}

std::vector<std::string> FeatureStore::vocabulary() const
{
    Use use(*m_impl);
    Statement& s = m_impl->sql("SELECT id, text FROM vocab ORDER BY id");
    std::vector<std::string> texts;
    while (s.step()) {
        // writeVocabulary writes ids 0, 1, 2, ...: a gap is a damaged table.
        if (s.integer(0) != static_cast<int64_t>(texts.size()))
            throw Error("the feature store " + m_impl->path + " is damaged: its vocabulary skips token id "
                + std::to_string(texts.size()));
        texts.push_back(s.text(1));
    }
    return texts;
}

void FeatureStore::writeRecords(const std::vector<FeatureRecord>& records, const StoreInfo& info)
{
    Use use(*m_impl);
    Impl& d = *m_impl;
    d.requireWritable("write features");
    Transaction t(d);
    d.nameIds.clear(); // ids cached by a transaction that rolled back, or another writer's, are stale
    for (const FeatureRecord& r : records) {
        d.checkRange(r.layer, r.feature);
        if (r.quantileLevels.size() != r.quantileValues.size())
            throw Error(featureName(r.layer, r.feature) + ": " + std::to_string(r.quantileLevels.size())
                + " quantile levels but " + std::to_string(r.quantileValues.size()) + " values");
        Writer bands;
        for (const QuantileExamples& q : r.quantiles)
            bands.varint(static_cast<uint64_t>(d.nameId(q.name)));
        d.sql("INSERT OR REPLACE INTO features(layer, feature, tokens, active_tokens, act_max, act_min, act_sum, "
              "quantile_levels, quantile_values, histogram_edges, histogram_counts, bands, top_logits, bottom_logits, "
              "top_inputs) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(r.layer)
            .bind(r.feature)
            .bind(r.tokens)
            .bind(r.activeTokens)
            .bind(static_cast<double>(r.actMax))
            .bind(static_cast<double>(r.actMin))
            .bind(r.actSum)
            .bindBlob(encodeFixed(r.quantileLevels))
            .bindBlob(encodeFixed(r.quantileValues))
            .bindBlob(encodeFixed(r.histogramEdges))
            .bindBlob(encodeCounts(r.histogramCounts))
            .bindBlob(bands.data())
            .bindBlob(encodeTokenValues(r.topLogits))
            .bindBlob(encodeTokenValues(r.bottomLogits))
            .bindBlob(encodeTokenValues(r.topInputs))
            .run();
        d.sql("DELETE FROM examples WHERE layer = ? AND feature = ?").bind(r.layer).bind(r.feature).run();
        const auto insert = [&](int64_t band, int64_t rank, const Example& e) {
            if (e.activations.size() != e.tokens.size())
                throw Error(featureName(r.layer, r.feature) + ": an example with " + std::to_string(e.tokens.size())
                    + " tokens and " + std::to_string(e.activations.size()) + " activations");
            if (!e.tokens.empty() && (e.position < 0 || e.position >= static_cast<int64_t>(e.tokens.size())))
                throw Error(featureName(r.layer, r.feature) + ": an example's position " + std::to_string(e.position)
                    + " is outside its " + std::to_string(e.tokens.size()) + " tokens");
            d.sql("INSERT INTO examples(layer, feature, band, rank, context, position, activation, sequence, "
                  "activations) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?)")
                .bind(r.layer)
                .bind(r.feature)
                .bind(band)
                .bind(rank)
                .bind(e.context)
                .bind(e.position)
                .bind(static_cast<double>(e.activation))
                .bind(d.sequenceId(e.tokens))
                .bindBlob(encodeActivations(e.activations))
                .run();
        };
        for (size_t i = 0; i < r.top.size(); ++i)
            insert(-1, static_cast<int64_t>(i), r.top[i]);
        for (size_t b = 0; b < r.quantiles.size(); ++b)
            for (size_t i = 0; i < r.quantiles[b].examples.size(); ++i)
                insert(static_cast<int64_t>(b), static_cast<int64_t>(i), r.quantiles[b].examples[i]);
    }
    d.setProgress(info);
    if (info.complete)
        d.exec("DELETE FROM sequences WHERE id NOT IN (SELECT sequence FROM examples)");
    t.commit();
    if (info.complete)
        d.exec("PRAGMA incremental_vacuum");
}

void FeatureStore::clearRecords()
{
    Use use(*m_impl);
    m_impl->requireWritable("clear the features");
    Transaction t(*m_impl);
    m_impl->exec("DELETE FROM examples");
    m_impl->exec("DELETE FROM features");
    m_impl->exec("DELETE FROM sequences");
    m_impl->exec("DELETE FROM coactivations");
    m_impl->setMeta("coactivations", "0");
    t.commit();
    m_impl->coactivations = false;
}

std::optional<FeatureTotals> FeatureStore::totals(int64_t layer, int64_t feature) const
{
    Use use(*m_impl);
    m_impl->checkRange(layer, feature);
    Statement& s = m_impl->sql("SELECT tokens, active_tokens, act_sum FROM features WHERE layer = ? AND feature = ?")
                       .bind(layer)
                       .bind(feature);
    if (!s.step())
        return std::nullopt;
    return FeatureTotals { s.integer(0), s.integer(1), s.real(2) };
}

bool FeatureStore::hasCoactivations() const
{
    Use use(*m_impl);
    return m_impl->coactivations;
}

CoActivationList FeatureStore::coactivations(int64_t layer, int64_t feature, bool upstream) const
{
    Use use(*m_impl);
    const Impl& d = *m_impl;
    d.checkRange(layer, feature);
    if (!d.coactivations)
        throw Error(d.path
            + " has no co-activation statistics (built without them, or by an older Circuitscope): rebuild it with "
              "features build");
    CoActivationList out;
    out.layer = layer;
    out.feature = feature;
    out.upstream = upstream;
    Statement& s = d.sql("SELECT pairs FROM coactivations WHERE layer = ? AND feature = ? AND side = ?")
                       .bind(layer)
                       .bind(feature)
                       .bind(int64_t(upstream ? 0 : 1));
    if (!s.step())
        return out; // it fired with no feature on that side
    const auto [p, n] = s.blob(0);
    try {
        Reader r(p, n, "co-activation list");
        out.partners = static_cast<int64_t>(r.varint());
        const size_t count = r.count(2 + 2 * sizeof(double));
        if (static_cast<int64_t>(count) > out.partners)
            r.fail();
        out.kept.reserve(count);
        int64_t previous = -1;
        for (size_t i = 0; i < count; ++i) {
            const uint64_t gap = r.varint();
            if (gap == 0 || gap > static_cast<uint64_t>(d.nLayers * d.nFeatures))
                r.fail();
            const int64_t id = previous + static_cast<int64_t>(gap);
            previous = id;
            CoActivation c;
            c.layer = id / d.nFeatures;
            c.feature = id % d.nFeatures;
            c.count = static_cast<int64_t>(r.varint());
            c.sourceSum = r.fixed<double>();
            c.productSum = r.fixed<double>();
            // A partner on the wrong side, past the last layer, or never seen with it is damage.
            if (c.layer >= d.nLayers || (upstream ? c.layer >= layer : c.layer <= layer) || c.count <= 0
                || !std::isfinite(c.sourceSum) || !std::isfinite(c.productSum))
                r.fail();
            out.kept.push_back(c);
        }
        if (!r.atEnd())
            r.fail();
    } catch (const Error& e) { // the decoder's message names neither the store nor the feature
        const std::string prefix = "the feature store is damaged: ";
        const std::string what = e.what();
        if (what.compare(0, prefix.size(), prefix) != 0)
            throw;
        throw Error("the feature store " + d.path + " is damaged: " + what.substr(prefix.size()) + " ("
            + featureName(layer, feature) + ")");
    }
    return out;
}

void FeatureStore::writeCoactivations(const std::vector<CoActivationList>& lists)
{
    Use use(*m_impl);
    Impl& d = *m_impl;
    d.requireWritable("write co-activation statistics");
    Transaction t(d);
    d.exec("DELETE FROM coactivations");
    for (const CoActivationList& list : lists) {
        d.checkRange(list.layer, list.feature);
        if (static_cast<int64_t>(list.kept.size()) > list.partners)
            throw Error(featureName(list.layer, list.feature) + ": more co-activation partners kept than it has");
        Writer w;
        w.varint(static_cast<uint64_t>(list.partners));
        w.varint(list.kept.size());
        int64_t previous = -1;
        for (const CoActivation& c : list.kept) {
            d.checkRange(c.layer, c.feature);
            const int64_t id = c.layer * d.nFeatures + c.feature;
            if ((list.upstream ? c.layer >= list.layer : c.layer <= list.layer) || id <= previous || c.count <= 0)
                throw Error(featureName(list.layer, list.feature) + ": its co-activation partner "
                    + featureName(c.layer, c.feature) + " is on the wrong side, out of order or never seen with it");
            w.varint(static_cast<uint64_t>(id - previous));
            previous = id;
            w.varint(static_cast<uint64_t>(c.count));
            w.fixed(c.sourceSum);
            w.fixed(c.productSum);
        }
        d.sql("INSERT INTO coactivations(layer, feature, side, pairs) VALUES(?, ?, ?, ?)")
            .bind(list.layer)
            .bind(list.feature)
            .bind(int64_t(list.upstream ? 0 : 1))
            .bindBlob(w.data())
            .run();
    }
    d.setMeta("coactivations", "1");
    t.commit();
    d.coactivations = true;
}

void FeatureStore::writeVocabulary(const std::vector<std::string>& texts)
{
    Use use(*m_impl);
    m_impl->requireWritable("write the vocabulary");
    Transaction t(*m_impl);
    m_impl->exec("DELETE FROM vocab");
    for (size_t id = 0; id < texts.size(); ++id)
        m_impl->sql("INSERT INTO vocab(id, text) VALUES(?, ?)")
            .bind(static_cast<int64_t>(id))
            .bindBlob(texts[id])
            .run();
    t.commit();
}

void FeatureStore::saveBuildState(const std::vector<uint8_t>& state, const StoreInfo& info)
{
    Use use(*m_impl);
    m_impl->requireWritable("save the build state");
    Transaction t(*m_impl);
    m_impl->sql("INSERT OR REPLACE INTO build_state(id, state) VALUES(1, ?)").bindBlob(state).run();
    m_impl->setProgress(info);
    t.commit();
}

std::optional<std::vector<uint8_t>> FeatureStore::buildState() const
{
    Use use(*m_impl);
    Statement& s = m_impl->sql("SELECT state FROM build_state WHERE id = 1");
    if (!s.step())
        return std::nullopt;
    const auto [p, n] = s.blob(0);
    const auto* bytes = static_cast<const uint8_t*>(p);
    return std::vector<uint8_t>(bytes, bytes + n);
}

void FeatureStore::clearBuildState()
{
    Use use(*m_impl);
    m_impl->requireWritable("clear the build state");
    m_impl->sql("DELETE FROM build_state").run();
    // The state is tens of MB: give its pages back, and fold the WAL into the file, so a
    // finished store is as small as its contents.
    m_impl->exec("PRAGMA incremental_vacuum");
    m_impl->exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

// circuit-tracer's feature JSON, as its frontend reads it (features/{scan}/{index}.json): the
// examples and logits are what it draws. Its histogram layout is not fixed by the frontend
// (some producers write a bare list of counts); ours is {"edges", "counts"}, the counts of
// [edges[i], edges[i + 1]), so a reader needs no other field to place the bars.
nlohmann::json circuitTracerJson(const FeatureRecord& record, const std::vector<std::string>& vocabulary)
{
    using Json = nlohmann::json;
    const auto tokenText = [&](int64_t id) {
        if (id >= 0 && static_cast<size_t>(id) < vocabulary.size())
            return validUtf8(vocabulary[static_cast<size_t>(id)]);
        return "[" + std::to_string(id) + "]";
    };
    const auto examples = [&](const std::string& name, const std::vector<Example>& list) {
        Json out = Json::array();
        for (const Example& e : list) {
            Json tokens = Json::array();
            for (int64_t id : e.tokens)
                tokens.push_back(tokenText(id));
            out.push_back({ { "tokens", tokens }, { "tokens_acts_list", e.activations },
                { "train_token_ind", e.position }, { "is_repeated_datapoint", false } });
        }
        return Json { { "quantile_name", name }, { "examples", out } };
    };
    const auto texts = [](const std::vector<TokenValue>& list) {
        Json out = Json::array();
        for (const TokenValue& t : list)
            out.push_back(validUtf8(t.token));
        return out;
    };
    Json quantiles = Json::array();
    quantiles.push_back(examples(kTopName, record.top));
    for (const QuantileExamples& q : record.quantiles)
        quantiles.push_back(examples(validUtf8(q.name), q.examples));
    return Json { { "index", record.feature }, { "layer", record.layer }, { "examples_quantiles", quantiles },
        { "top_logits", texts(record.topLogits) }, { "bottom_logits", texts(record.bottomLogits) },
        { "act_min", record.actMin }, { "act_max", record.actMax }, { "quantile_values", record.quantileValues },
        { "histogram", { { "edges", record.histogramEdges }, { "counts", record.histogramCounts } } },
        { "activation_frequency", record.activationFrequency() }, { "label", validUtf8(record.label) } };
}

std::string findStore(const std::string& modelFolder, const std::string& transcoderFolder)
{
    const fs::path set(transcoderFolder);
    const std::string name = set.filename().empty() ? set.parent_path().filename().string() : set.filename().string();
    const fs::path shipped = fs::path(modelFolder) / "features" / (name + ".db");
    std::error_code ec;
    if (fs::is_regular_file(shipped, ec))
        return shipped.string();
    const fs::path beside = set / "features.db";
    if (fs::is_regular_file(beside, ec))
        return beside.string();
    return {};
}

std::string findUnitStore(const std::string& modelFolder, const std::string& basis)
{
    const fs::path path = fs::path(modelFolder) / "features" / (basis + ".db");
    std::error_code ec;
    return !basis.empty() && fs::is_regular_file(path, ec) ? path.string() : std::string();
}

int64_t exportCircuitTracer(const FeatureStore& store, const std::string& dir, ExportLayout layout)
{
    const std::vector<std::string> vocabulary = store.vocabulary();
    int64_t written = 0;
    std::string made; // the last folder made
    for (const auto& [layer, feature] : store.listFeatures()) {
        const bool cantor = layout == ExportLayout::Cantor;
        const fs::path folder = cantor ? fs::path(dir) : fs::path(dir) / std::to_string(layer);
        if (folder.string() != made) {
            std::error_code ec;
            fs::create_directories(folder, ec);
            if (ec)
                throw Error("cannot create " + folder.string() + ": " + ec.message());
            made = folder.string();
        }
        nlohmann::json j = circuitTracerJson(store.card(layer, feature), vocabulary);
        const int64_t index = cantor ? graph::cantorPairing(layer, feature) : feature;
        j["index"] = index;
        io::writeFileAtomically((folder / (std::to_string(index) + ".json")).string(), j.dump());
        ++written;
    }
    return written;
}

} // namespace cs::features
