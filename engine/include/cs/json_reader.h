#pragma once
// Checked reading of JSON documents (tokenizer.json, config.json, graph JSON, the graph file's
// header, session files), the one reader the engine, its plugins and the app share (cs_text):
// every failure is a cs::Error that starts with the
// source (a path, or "graph JSON") and names the place in the document ("nodes[3].layer"), so
// a person can find what to fix.
//
// Text that may not be UTF-8 (byte-level BPE tokens hold parts of characters) travels as
// textJson writes it and comes back through JsonReader::text byte for byte.

#include "cs/error.h"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace cs {

// The deepest nesting a document may have (arrays and objects inside one another). nlohmann's
// parser is iterative, but copying, comparing or walking a value recurses, so a file nested
// 100,000 deep would run the stack out later; it is refused before it is parsed.
constexpr int kMaxJsonDepth = 512;

// Throws cs::Error "{source}: nested deeper than 512 levels (at byte N)" when the text's arrays and
// objects nest deeper than kMaxJsonDepth. One linear scan (strings and their escapes skipped);
// malformed text passes, for the parser to refuse with its own message.
void checkJsonDepth(std::string_view text, const std::string& source);

// checkJsonDepth, then nlohmann::json::parse (whose parse_error propagates as before, for the
// caller's own message). Every document a user's file holds goes through this.
nlohmann::json parseJson(std::string_view text, const std::string& source);

// "an integer", "a string", ...: what a JSON value is, for messages.
std::string jsonTypeName(const nlohmann::json& value);

// A whole decimal integer written as text (a node id's part, a qParams key); none for anything
// else (empty, signs of other kinds, trailing characters, out of range).
std::optional<int64_t> parseInteger(const std::string& text);

// A string as JSON: itself when it is well-formed UTF-8, otherwise the array of its bytes
// (JSON text must be UTF-8; JsonReader::text reads either form back).
nlohmann::json textJson(const std::string& text);

class JsonReader {
public:
    // `source` starts every message: the path of the file, or what the document is.
    explicit JsonReader(std::string source);

    const std::string& source() const { return m_source; }

    // Throws "{source}: {where}: {what}" ("{source}: {what}" for the top level).
    [[noreturn]] void fail(const std::string& where, const std::string& what) const;

    // The place of a member ("state.pinned"; just the key at the top level) and of an element
    // ("state.pinned[1]"), for `where`.
    static std::string at(const std::string& where, const char* key);
    static std::string at(const std::string& where, size_t index);

    // The member `key` of an object known to be one; missing is an error.
    const nlohmann::json& member(const nlohmann::json& object, const char* key, const std::string& where) const;
    // The member `key`, or nullptr when the object has none.
    const nlohmann::json* optional(const nlohmann::json& object, const char* key) const;

    // Each checks the type and returns the value; `where` names it in the message.
    const nlohmann::json& object(const nlohmann::json& value, const std::string& where) const;
    const nlohmann::json& array(const nlohmann::json& value, const std::string& where) const;
    bool boolean(const nlohmann::json& value, const std::string& where) const;
    std::string string(const nlohmann::json& value, const std::string& where) const;
    std::vector<std::string> strings(const nlohmann::json& value, const std::string& where) const;
    // A string, or the array of its bytes (textJson).
    std::string text(const nlohmann::json& value, const std::string& where) const;
    std::vector<std::string> texts(const nlohmann::json& value, const std::string& where) const;
    // A finite number (the parser turns an overflowing literal such as 1e999 into infinity).
    double number(const nlohmann::json& value, const std::string& where) const;
    // An integer that fits int64, or a number with no fraction that a double holds exactly
    // (other writers, Python's json among them, may write 3.0 for 3).
    int64_t integer(const nlohmann::json& value, const std::string& where) const;

    // The member `key` of the object at `where` read as above, or the fallback when it is
    // absent or null (optional settings: config.json files leave them out or write null).
    int64_t integerOr(const nlohmann::json& object, const char* key, const std::string& where, int64_t fallback) const;
    double numberOr(const nlohmann::json& object, const char* key, const std::string& where, double fallback) const;
    bool booleanOr(const nlohmann::json& object, const char* key, const std::string& where, bool fallback) const;
    std::string stringOr(
        const nlohmann::json& object, const char* key, const std::string& where, const std::string& fallback) const;

private:
    std::string m_source;
};

} // namespace cs
