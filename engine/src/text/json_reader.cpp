// The checked JSON reader of cs/json_reader.h.

#include "cs/json_reader.h"

#include "cs/utf8.h"
#include <algorithm>
#include <charconv>

#include <cmath>
#include <limits>
#include <utility>

namespace cs {

using nlohmann::json;

void checkJsonDepth(std::string_view text, const std::string& source)
{
    int depth = 0;
    bool inString = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (inString) {
            if (c == '\\')
                ++i; // the escaped character, whatever it is
            else if (c == '"')
                inString = false;
        } else if (c == '"') {
            inString = true;
        } else if (c == '[' || c == '{') {
            if (++depth > kMaxJsonDepth)
                throw Error(source + ": nested deeper than " + std::to_string(kMaxJsonDepth) + " levels (at byte "
                    + std::to_string(i) + "); refused");
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
}

json parseJson(std::string_view text, const std::string& source)
{
    checkJsonDepth(text, source);
    try {
        return json::parse(text.begin(), text.end());
    } catch (const json::out_of_range& e) {
        // A number beyond a double ("1e400"): nlohmann names the text but not where it is.
        const std::string what = e.what();
        const size_t open = what.find('\'');
        const size_t close = open == std::string::npos ? open : what.find('\'', open + 1);
        std::string place;
        if (close != std::string::npos) {
            const size_t at = text.find(what.substr(open + 1, close - open - 1));
            if (at != std::string_view::npos) {
                const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n');
                place = " at line " + std::to_string(line) + " (byte " + std::to_string(at) + ")";
            }
        }
        throw Error(source + ": a number too large for a double" + place + " (" + what + ")");
    }
}

std::optional<int64_t> parseInteger(const std::string& text)
{
    int64_t value = 0;
    const char* end = text.data() + text.size();
    auto [p, ec] = std::from_chars(text.data(), end, value);
    if (text.empty() || ec != std::errc() || p != end)
        return std::nullopt;
    return value;
}

std::string jsonTypeName(const json& value)
{
    if (value.is_null())
        return "null";
    if (value.is_boolean())
        return "a boolean";
    if (value.is_number_integer())
        return "an integer";
    if (value.is_number())
        return "a number";
    if (value.is_string())
        return "a string";
    if (value.is_array())
        return "an array";
    return "an object";
}

json textJson(const std::string& text)
{
    if (utf8::isValid(text))
        return text;
    json bytes = json::array();
    for (unsigned char c : text)
        bytes.push_back(static_cast<int>(c));
    return bytes;
}

JsonReader::JsonReader(std::string source)
    : m_source(std::move(source))
{
}

void JsonReader::fail(const std::string& where, const std::string& what) const
{
    throw Error(m_source + ": " + (where.empty() ? "" : where + ": ") + what);
}

std::string JsonReader::at(const std::string& where, const char* key)
{
    return where.empty() ? std::string(key) : where + "." + key;
}

std::string JsonReader::at(const std::string& where, size_t index)
{
    return where + "[" + std::to_string(index) + "]";
}

const json& JsonReader::member(const json& object, const char* key, const std::string& where) const
{
    auto it = object.find(key);
    if (it == object.end())
        fail(where, std::string("missing key \"") + key + "\"");
    return *it;
}

const json* JsonReader::optional(const json& object, const char* key) const
{
    auto it = object.find(key);
    return it == object.end() ? nullptr : &*it;
}

const json& JsonReader::object(const json& value, const std::string& where) const
{
    if (!value.is_object())
        fail(where, "expected an object, got " + jsonTypeName(value));
    return value;
}

const json& JsonReader::array(const json& value, const std::string& where) const
{
    if (!value.is_array())
        fail(where, "expected an array, got " + jsonTypeName(value));
    return value;
}

bool JsonReader::boolean(const json& value, const std::string& where) const
{
    if (!value.is_boolean())
        fail(where, "expected a boolean, got " + jsonTypeName(value));
    return value.get<bool>();
}

std::string JsonReader::string(const json& value, const std::string& where) const
{
    if (!value.is_string())
        fail(where, "expected a string, got " + jsonTypeName(value));
    return value.get<std::string>();
}

std::vector<std::string> JsonReader::strings(const json& value, const std::string& where) const
{
    std::vector<std::string> out;
    for (size_t i = 0; i < array(value, where).size(); ++i)
        out.push_back(string(value[i], at(where, i)));
    return out;
}

std::string JsonReader::text(const json& value, const std::string& where) const
{
    if (value.is_string())
        return value.get<std::string>();
    if (!value.is_array())
        fail(where, "expected a string or an array of bytes, got " + jsonTypeName(value));
    std::string out;
    for (const json& b : value) {
        if (!b.is_number_integer() || b.get<int64_t>() < 0 || b.get<int64_t>() > 255)
            fail(where,
                "expected a string or an array of bytes, got an array holding " + jsonTypeName(b)
                    + (b.is_number_integer() ? " outside 0..255" : ""));
        out.push_back(static_cast<char>(b.get<int64_t>()));
    }
    return out;
}

std::vector<std::string> JsonReader::texts(const json& value, const std::string& where) const
{
    std::vector<std::string> out;
    for (size_t i = 0; i < array(value, where).size(); ++i)
        out.push_back(text(value[i], at(where, i)));
    return out;
}

double JsonReader::number(const json& value, const std::string& where) const
{
    if (!value.is_number())
        fail(where, "expected a number, got " + jsonTypeName(value));
    const double d = value.get<double>();
    if (!std::isfinite(d))
        fail(where, "is not finite");
    return d;
}

int64_t JsonReader::integer(const json& value, const std::string& where) const
{
    // get<int64_t> would wrap an unsigned value past int64's range into a negative one.
    if (value.is_number_unsigned() && value.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
        fail(where, "is too large");
    if (value.is_number_integer())
        return value.get<int64_t>();
    if (value.is_number_float()) {
        // Below 2^53 (about 9.007e15) every whole double is exactly an integer.
        const double d = value.get<double>();
        if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 9e15)
            return static_cast<int64_t>(d);
    }
    fail(where, "expected an integer, got " + jsonTypeName(value));
}

namespace {

// The member, or nullptr when it is absent or null.
const json* given(const json& object, const char* key)
{
    if (!object.is_object())
        return nullptr;
    auto it = object.find(key);
    return it == object.end() || it->is_null() ? nullptr : &*it;
}

} // namespace

int64_t JsonReader::integerOr(const json& object, const char* key, const std::string& where, int64_t fallback) const
{
    const json* v = given(object, key);
    return v ? integer(*v, at(where, key)) : fallback;
}

double JsonReader::numberOr(const json& object, const char* key, const std::string& where, double fallback) const
{
    const json* v = given(object, key);
    return v ? number(*v, at(where, key)) : fallback;
}

bool JsonReader::booleanOr(const json& object, const char* key, const std::string& where, bool fallback) const
{
    const json* v = given(object, key);
    return v ? boolean(*v, at(where, key)) : fallback;
}

std::string JsonReader::stringOr(
    const json& object, const char* key, const std::string& where, const std::string& fallback) const
{
    const json* v = given(object, key);
    return v ? string(*v, at(where, key)) : fallback;
}

} // namespace cs
