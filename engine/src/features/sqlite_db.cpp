#include "features/sqlite_db.h"

#include <cctype>
#include <filesystem>
#include <utility>

namespace cs::features::sqlite {

namespace fs = std::filesystem;

// The message for a failed call on `db`: sqlite's words, the path, and what it means to a user
// for the failures a bad file causes.
[[noreturn]] void fail(sqlite3* db, int rc, const std::string& path, const std::string& what)
{
    const std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
        throw Error(path + " is not an SQLite database (" + message + ")");
    case SQLITE_CORRUPT:
        throw Error(path + " is damaged, a truncated or corrupt file (" + message + ")");
    case SQLITE_READONLY:
        throw Error(path + " is open read-only (" + message + ")");
    default:
        throw Error(path + ": " + what + ": " + message);
    }
}

void exec(sqlite3* db, const std::string& sql, const std::string& path)
{
    char* err = nullptr;
    const int rc = sqlite3_exec(db, sql.c_str(), nullptr, nullptr, &err);
    if (rc != SQLITE_OK) {
        sqlite3_free(err);
        fail(db, rc, path, "cannot run \"" + sql + "\"");
    }
}

// A file: URI for sqlite3_open_v2 with SQLITE_OPEN_URI (RFC 3986: unreserved bytes as they are).
std::string fileUri(const std::string& path, const std::string& query)
{
    const std::string absolute = fs::absolute(path).string();
    std::string uri = "file:";
    const char* hex = "0123456789ABCDEF";
    for (unsigned char c : absolute) {
        if (std::isalnum(c) || c == '/' || c == '-' || c == '.' || c == '_' || c == '~') {
            uri += static_cast<char>(c);
        } else {
            uri += '%';
            uri += hex[c >> 4];
            uri += hex[c & 15];
        }
    }
    return uri + "?" + query;
}

DbPtr openDb(const std::string& name, int flags, const std::string& path, int busyTimeoutMs)
{
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(name.c_str(), &raw, flags, nullptr);
    DbPtr db(raw);
    if (rc != SQLITE_OK)
        fail(db.get(), rc, path, "cannot open");
    sqlite3_extended_result_codes(raw, 1);
    sqlite3_busy_timeout(raw, busyTimeoutMs);
    // A database is a file someone else may have written: nothing in it runs as SQL of ours.
    // Defensive mode (no writes to the schema or to pages behind SQLite's back), no trust in the
    // schema's functions, and neither triggers nor views at all.
    for (const auto& [option, value] :
        { std::pair { SQLITE_DBCONFIG_DEFENSIVE, 1 }, std::pair { SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0 },
            std::pair { SQLITE_DBCONFIG_ENABLE_TRIGGER, 0 }, std::pair { SQLITE_DBCONFIG_ENABLE_VIEW, 0 } }) {
        const int set = sqlite3_db_config(raw, option, value, nullptr);
        if (set != SQLITE_OK)
            fail(raw, set, path, "cannot open it defensively");
    }
    return db;
}

} // namespace cs::features::sqlite
