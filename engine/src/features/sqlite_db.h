#pragma once
// A small RAII wrapper of the SQLite C API for the feature store (store.cpp): the connection,
// prepared statements with checked binds and steps, and messages that say what a failure means
// for the file (not a database, damaged, read-only).

#include "cs/error.h"

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace cs::features::sqlite {

// The message for a failed call on `db`: sqlite's words, the path, and what it means to a user
// for the failures a bad file causes.
[[noreturn]] void fail(sqlite3* db, int rc, const std::string& path, const std::string& what);

struct DbClose {
    void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using DbPtr = std::unique_ptr<sqlite3, DbClose>;

class Statement {
public:
    Statement(sqlite3* db, const std::string& sql, const std::string& path)
        : m_db(db)
        , m_path(path)
    {
        const int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &m_stmt, nullptr);
        if (rc != SQLITE_OK)
            fail(db, rc, path, "cannot prepare \"" + sql + "\"");
    }
    ~Statement() { sqlite3_finalize(m_stmt); }
    Statement(const Statement&) = delete;
    Statement& operator=(const Statement&) = delete;

    // Binds parameters 1, 2, ... in order.
    Statement& reset()
    {
        sqlite3_reset(m_stmt);
        sqlite3_clear_bindings(m_stmt);
        m_next = 1;
        return *this;
    }
    Statement& bind(int64_t v) { return check(sqlite3_bind_int64(m_stmt, m_next++, v)); }
    Statement& bind(int v) { return bind(static_cast<int64_t>(v)); }
    Statement& bind(double v) { return check(sqlite3_bind_double(m_stmt, m_next++, v)); }
    Statement& bind(const std::string& v)
    {
        return check(sqlite3_bind_text(m_stmt, m_next++, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT));
    }
    Statement& bindBlob(const void* data, size_t size)
    {
        // A zero-length blob, not NULL, for an empty array.
        return check(size ? sqlite3_bind_blob64(m_stmt, m_next++, data, size, SQLITE_TRANSIENT)
                          : sqlite3_bind_zeroblob(m_stmt, m_next++, 0));
    }
    Statement& bindBlob(const std::vector<uint8_t>& v) { return bindBlob(v.data(), v.size()); }
    Statement& bindBlob(const std::string& v) { return bindBlob(v.data(), v.size()); }

    // True while there is a row.
    bool step()
    {
        const int rc = sqlite3_step(m_stmt);
        if (rc == SQLITE_ROW)
            return true;
        if (rc == SQLITE_DONE)
            return false;
        sqlite3_reset(m_stmt);
        fail(m_db, rc, m_path, "cannot run \"" + std::string(sqlite3_sql(m_stmt)) + "\"");
    }
    // Ends the statement's use of the database (its read snapshot, in WAL mode).
    void finish() { sqlite3_reset(m_stmt); }
    void run()
    {
        while (step()) { }
    }

    bool isNull(int i) const { return sqlite3_column_type(m_stmt, i) == SQLITE_NULL; }
    int64_t integer(int i) const { return sqlite3_column_int64(m_stmt, i); }
    double real(int i) const { return sqlite3_column_double(m_stmt, i); }
    std::string text(int i) const
    {
        const auto* p = sqlite3_column_blob(m_stmt, i); // the bytes as stored, no conversion
        return p ? std::string(static_cast<const char*>(p), static_cast<size_t>(sqlite3_column_bytes(m_stmt, i)))
                 : std::string();
    }
    // The column's bytes (valid until the next step or reset).
    std::pair<const void*, size_t> blob(int i) const
    {
        const void* p = sqlite3_column_blob(m_stmt, i);
        return { p, static_cast<size_t>(sqlite3_column_bytes(m_stmt, i)) };
    }

private:
    Statement& check(int rc)
    {
        if (rc != SQLITE_OK)
            fail(m_db, rc, m_path, "cannot bind a parameter");
        return *this;
    }
    sqlite3* m_db;
    const std::string& m_path;
    sqlite3_stmt* m_stmt = nullptr;
    int m_next = 1;
};

void exec(sqlite3* db, const std::string& sql, const std::string& path);

// A file: URI for sqlite3_open_v2 with SQLITE_OPEN_URI (RFC 3986: unreserved bytes as they are).
std::string fileUri(const std::string& path, const std::string& query);

// Opens `name` (a file: URI) with `flags`; extended result codes on, and a busy timeout.
DbPtr openDb(const std::string& name, int flags, const std::string& path, int busyTimeoutMs);

} // namespace cs::features::sqlite
