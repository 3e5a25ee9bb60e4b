#include "transcoder/yaml.h"

#include "cs/error.h"
#include "cs/utf8.h"
#include "io/atomic_file.h"

#include <yaml-cpp/depthguard.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <sstream>

namespace cs::transcoder::yaml {

namespace {

bool isBlank(char c)
{
    return c == ' ' || c == '\t';
}

bool isKeyChar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.'
        || c == '-';
}

// Text for a message: control bytes as '?', cut to a readable length.
std::string printable(const std::string& text)
{
    std::string out;
    for (char c : text.substr(0, 60))
        out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7F ? '?' : c);
    return text.size() > 60 ? out + "..." : out;
}

// Builds a Document from yaml-cpp's parse events. The shape is checked as events arrive, so
// nothing deeper than a top-level list's map items is ever held, and an error names the line
// where the file leaves the shape.
class Builder final : public YAML::EventHandler {
public:
    Builder(std::vector<std::pair<std::string, Value>>& entries, const Document& doc)
        : m_entries(entries)
        , m_doc(doc)
    {
    }

    void OnDocumentStart(const YAML::Mark& mark) override
    {
        if (++m_documents > 1)
            throw error(mark, "several YAML documents in one file are not supported");
    }
    void OnDocumentEnd() override { }

    void OnNull(const YAML::Mark& mark, YAML::anchor_t) override { value(mark, Scalar { {}, false, line(mark) }); }
    void OnAlias(const YAML::Mark& mark, YAML::anchor_t) override
    {
        throw error(mark, "aliases (*name) are not supported; write the value out");
    }
    void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t, const std::string& text) override
    {
        // "?" is a plain scalar; "!" a quoted or block one: always a string, as is !!str.
        const bool quoted = tag == "!" || tag == "tag:yaml.org,2002:str";
        if (!quoted && tag != "?")
            throw error(mark, "tags (" + printable(tag) + ") are not supported");
        value(mark, Scalar { text, quoted, line(mark) });
    }

    void OnSequenceStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override
    {
        if (m_state == State::TopValue) {
            Value& v = m_entries.back().second;
            v.isList = true;
            m_state = State::List;
            return;
        }
        if (m_state == State::Root)
            throw error(mark, "expected \"key: value\" entries at the top level, got a list");
        if (m_state == State::List)
            throw error(mark, "nested lists are not supported (in \"" + m_key + "\")");
        throw error(mark, "nested values are not supported (under \"" + m_key + "\")");
    }
    void OnSequenceEnd() override { m_state = State::TopKey; }

    void OnMapStart(const YAML::Mark& mark, const std::string&, YAML::anchor_t, YAML::EmitterStyle::value) override
    {
        if (m_state == State::Root) {
            m_state = State::TopKey;
            return;
        }
        if (m_state == State::List) {
            Item item;
            item.isMap = true;
            item.line = line(mark);
            m_entries.back().second.items.push_back(std::move(item));
            m_state = State::ItemKey;
            return;
        }
        throw error(mark, "nested mappings are not supported (under \"" + m_key + "\")");
    }
    void OnMapEnd() override { m_state = m_state == State::ItemKey ? State::List : State::Done; }

private:
    enum class State { Root, TopKey, TopValue, List, ItemKey, ItemValue, Done };

    static int line(const YAML::Mark& mark) { return mark.is_null() ? 0 : mark.line + 1; }
    Error error(const YAML::Mark& mark, const std::string& why) const { return Error(m_doc.where(line(mark)) + why); }

    // A scalar (or null) where the state says what it is.
    void value(const YAML::Mark& mark, Scalar scalar)
    {
        switch (m_state) {
        case State::Root:
            if (!scalar.quoted && scalar.text.empty())
                return; // an empty document
            throw error(mark, "expected \"key: value\", got \"" + printable(scalar.text) + "\"");
        case State::TopKey: {
            if (m_doc.find(scalar.text))
                throw error(mark, "\"" + printable(scalar.text) + "\" appears twice");
            Value v;
            v.line = scalar.line;
            m_entries.emplace_back(scalar.text, std::move(v));
            m_key = scalar.text;
            m_state = State::TopValue;
            return;
        }
        case State::TopValue: {
            Value& v = m_entries.back().second;
            if (scalar.line == 0)
                scalar.line = v.line;
            v.scalar = std::move(scalar);
            m_state = State::TopKey;
            return;
        }
        case State::List: {
            Item item;
            item.line = scalar.line;
            item.scalar = std::move(scalar);
            m_entries.back().second.items.push_back(std::move(item));
            return;
        }
        case State::ItemKey: {
            Item& item = m_entries.back().second.items.back();
            if (item.field(scalar.text))
                throw error(mark, "\"" + printable(scalar.text) + "\" appears twice in an item of \"" + m_key + "\"");
            item.fields.emplace_back(scalar.text, Scalar {});
            m_state = State::ItemValue;
            return;
        }
        case State::ItemValue: {
            Item& item = m_entries.back().second.items.back();
            if (scalar.line == 0)
                scalar.line = item.line;
            item.fields.back().second = std::move(scalar);
            m_state = State::ItemKey;
            return;
        }
        case State::Done:
            break;
        }
        throw error(mark, "unexpected value after the top-level mapping");
    }

    std::vector<std::pair<std::string, Value>>& m_entries; // the document's
    const Document& m_doc;
    State m_state = State::Root;
    std::string m_key; // the top-level key being read
    int m_documents = 0;
};

} // namespace

bool isNull(const Scalar& scalar)
{
    if (scalar.quoted)
        return false;
    const std::string& t = scalar.text;
    return t.empty() || t == "~" || t == "null" || t == "Null" || t == "NULL";
}

const Value* Document::find(const std::string& key) const
{
    for (const auto& [k, v] : m_entries)
        if (k == key)
            return &v;
    return nullptr;
}

bool Document::has(const std::string& key) const
{
    const Value* v = find(key);
    return v && (v->isList || !isNull(v->scalar));
}

std::string Document::where(int line) const
{
    return line > 0 ? m_fileName + " line " + std::to_string(line) + ": " : m_fileName + ": ";
}

std::string Document::string(const std::string& key, const std::string& fallback) const
{
    const Value* v = find(key);
    if (!v)
        return fallback;
    if (v->isList)
        throw Error(where(v->line) + key + " must be a single value, not a list");
    return isNull(v->scalar) ? fallback : v->scalar.text;
}

int64_t Document::integer(const std::string& key, int64_t fallback) const
{
    const Value* v = find(key);
    if (!v || (!v->isList && isNull(v->scalar)))
        return fallback;
    const std::string& t = v->scalar.text;
    bool ok = !v->isList && !v->scalar.quoted && !t.empty();
    for (size_t i = 0; ok && i < t.size(); ++i)
        ok = (t[i] >= '0' && t[i] <= '9') || (i == 0 && (t[i] == '-' || t[i] == '+') && t.size() > 1);
    long long n = 0;
    if (ok) {
        errno = 0;
        n = std::strtoll(t.c_str(), nullptr, 10);
        ok = errno == 0;
    }
    if (!ok)
        throw Error(
            where(v->line) + key + " must be an integer, got " + (v->isList ? std::string("a list") : "\"" + t + "\""));
    return static_cast<int64_t>(n);
}

bool Document::boolean(const std::string& key, bool fallback) const
{
    const Value* v = find(key);
    if (!v || (!v->isList && isNull(v->scalar)))
        return fallback;
    if (!v->isList && !v->scalar.quoted) {
        // YAML 1.1 (PyYAML) booleans.
        for (const char* s : { "true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON" })
            if (v->scalar.text == s)
                return true;
        for (const char* s : { "false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF" })
            if (v->scalar.text == s)
                return false;
    }
    throw Error(where(v->line) + key + " must be true or false");
}

std::vector<Item> Document::items(const std::string& key) const
{
    const Value* v = find(key);
    if (!v || (!v->isList && isNull(v->scalar)))
        return {};
    if (!v->isList)
        throw Error(where(v->line) + key + " must be a list (one \"- item\" per line below it)");
    return v->items;
}

std::vector<Scalar> Document::list(const std::string& key) const
{
    std::vector<Scalar> out;
    for (const Item& item : items(key)) {
        if (item.isMap)
            throw Error(where(item.line) + key + " must be a list of values, not of mappings");
        out.push_back(item.scalar);
    }
    return out;
}

const Scalar* Item::field(const std::string& key) const
{
    for (const auto& [k, v] : fields)
        if (k == key)
            return &v;
    return nullptr;
}

Document parse(const std::string& text, const std::string& fileName)
{
    Document doc;
    doc.m_fileName = fileName;
    if (!utf8::isValid(text))
        throw Error(fileName + ": not UTF-8 text");
    // Trailing line breaks are left out: yaml-cpp 0.7 takes a quoted value that the end of the
    // file cuts off after a line break ("k: \"gemma\n") as closed, and refuses it only when the
    // file ends on the value's own line.
    size_t end = text.size();
    while (end > 0 && (text[end - 1] == '\n' || text[end - 1] == '\r' || text[end - 1] == ' '))
        --end;
    std::istringstream in(text.substr(0, end));
    Builder builder(doc.m_entries, doc);
    try {
        YAML::Parser parser(in);
        while (parser.HandleNextDocument(builder)) { }
    } catch (const YAML::DeepRecursion& e) {
        throw Error(doc.where(e.mark.line + 1) + "nested " + std::to_string(e.depth()) + " deep; refused");
    } catch (const YAML::Exception& e) {
        throw Error(doc.where(e.mark.is_null() ? 0 : e.mark.line + 1) + e.msg);
    }
    return doc;
}

Document parseFile(const std::string& path)
{
    return parse(io::readFile(path, kMaxConfigFileBytes), path);
}

std::string quote(const std::string& value)
{
    bool plain = !value.empty() && !isBlank(value.front()) && !isBlank(value.back());
    if (plain) {
        const std::string indicators = "-?:,[]{}#&*!|>'\"%@`+.0123456789~";
        plain = indicators.find(value.front()) == std::string::npos && value.back() != ':';
    }
    for (size_t i = 0; plain && i < value.size(); ++i) {
        const auto c = static_cast<unsigned char>(value[i]);
        if (c < 0x20 || c == 0x7F)
            plain = false;
        else if (i + 1 < value.size()
            && ((c == ':' && isBlank(value[i + 1])) || (isBlank(value[i]) && value[i + 1] == '#')))
            plain = false;
    }
    if (plain) {
        // Words YAML (1.1, as PyYAML reads it) would take for a bool or a null.
        std::string lower;
        for (char c : value)
            lower.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
        for (const char* word : { "true", "false", "yes", "no", "on", "off", "y", "n", "null" })
            if (lower == word)
                plain = false;
    }
    if (plain)
        return value;
    std::string out = "\"";
    for (char ch : value) {
        const auto c = static_cast<unsigned char>(ch);
        if (ch == '"' || ch == '\\') {
            out.push_back('\\');
            out.push_back(ch);
        } else if (ch == '\n') {
            out += "\\n";
        } else if (ch == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7F) {
            const char* hex = "0123456789abcdef";
            out += "\\x";
            out.push_back(hex[c >> 4]);
            out.push_back(hex[c & 0xF]);
        } else {
            out.push_back(ch);
        }
    }
    return out + "\"";
}

void Writer::comment(const std::string& text)
{
    m_text += "# " + text + "\n";
}

void Writer::key(const std::string& key)
{
    for (char c : key)
        if (!isKeyChar(c))
            throw Error("internal: YAML key \"" + key + "\" has characters the reader refuses");
    m_text += key + ":";
}

void Writer::string(const std::string& k, const std::string& value)
{
    key(k);
    m_text += " " + quote(value) + "\n";
}

void Writer::integer(const std::string& k, int64_t value)
{
    key(k);
    m_text += " " + std::to_string(value) + "\n";
}

void Writer::boolean(const std::string& k, bool value)
{
    key(k);
    m_text += value ? " true\n" : " false\n";
}

void Writer::list(const std::string& k, const std::vector<std::string>& items)
{
    key(k);
    m_text += "\n"; // no items: null, which Document::list() reads as an empty list
    for (const auto& item : items)
        m_text += "  - " + quote(item) + "\n";
}

} // namespace cs::transcoder::yaml
