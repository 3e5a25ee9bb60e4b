#pragma once
// Checked reading of graph documents (graph JSON and the graph file's header): every failure is
// a cs::Error that starts with the source (a path) and names the place ("nodes[3].layer").

#include "cs/error.h"

#include <nlohmann/json.hpp>

#include <string>
#include <utility>

namespace cs::graph {

// "an integer", "a string", ...: what a JSON value is, for messages.
inline std::string jsonTypeName(const nlohmann::json& value)
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

class JsonReader {
public:
    explicit JsonReader(std::string source)
        : m_source(std::move(source))
    {
    }

    [[noreturn]] void fail(const std::string& where, const std::string& what) const
    {
        throw Error(m_source + ": " + (where.empty() ? "" : where + ": ") + what);
    }

    const nlohmann::json& member(const nlohmann::json& object, const char* key, const std::string& where) const
    {
        auto it = object.find(key);
        if (it == object.end())
            fail(where, std::string("missing key \"") + key + "\"");
        return *it;
    }

    const nlohmann::json& object(const nlohmann::json& value, const std::string& where) const
    {
        if (!value.is_object())
            fail(where, "expected an object, got " + jsonTypeName(value));
        return value;
    }

    const nlohmann::json& array(const nlohmann::json& value, const std::string& where) const
    {
        if (!value.is_array())
            fail(where, "expected an array, got " + jsonTypeName(value));
        return value;
    }

    double number(const nlohmann::json& value, const std::string& where) const
    {
        if (!value.is_number())
            fail(where, "expected a number, got " + jsonTypeName(value));
        return value.get<double>();
    }

protected:
    std::string m_source;
};

} // namespace cs::graph
