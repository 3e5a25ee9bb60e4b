#include "transcoder/yaml.h"

#include "cs/error.h"
#include "io/atomic_file.h"
#include "model/utf8.h"

#include <cerrno>
#include <cstdlib>
#include <limits>

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

int hexDigit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

// Text for a message: control bytes as '?', cut to a readable length.
std::string printable(const std::string& text)
{
    std::string out;
    for (char c : text.substr(0, 60))
        out.push_back(static_cast<unsigned char>(c) < 0x20 || c == 0x7F ? '?' : c);
    return text.size() > 60 ? out + "..." : out;
}

// Parses one line's scalar: `s` starts at the scalar (leading blanks removed) and runs to the
// end of the line, a trailing comment included.
class LineParser {
public:
    LineParser(const std::string& fileName, int line)
        : m_fileName(fileName)
        , m_line(line)
    {
    }

    Error error(const std::string& why) const
    {
        return Error(m_fileName + " line " + std::to_string(m_line) + ": " + why);
    }

    Scalar scalar(const std::string& s) const
    {
        Scalar out;
        out.line = m_line;
        if (s.empty() || s[0] == '#')
            return out; // null
        const char c = s[0];
        if (c == '"')
            return doubleQuoted(s);
        if (c == '\'')
            return singleQuoted(s);
        if (c == '[' || c == '{')
            throw error("flow style (" + std::string(1, c) + "...) is not supported; write one value per line");
        if (c == '&' || c == '*')
            throw error("anchors and aliases (&, *) are not supported");
        if (c == '!')
            throw error("tags (!) are not supported");
        if (c == '|' || c == '>')
            throw error("block scalars (| or >) are not supported; write the value on one line");
        if (c == '%' || c == '@' || c == '`')
            throw error("a plain value cannot start with '" + std::string(1, c) + "'; quote it");
        if ((c == '-' || c == '?') && (s.size() == 1 || isBlank(s[1])))
            throw error(
                c == '-' ? "a list must start on the line after its key" : "complex keys (?) are not supported");
        // A plain scalar runs to a comment (" #") or the end of the line.
        size_t end = s.size();
        for (size_t i = 1; i < s.size(); ++i)
            if (s[i] == '#' && isBlank(s[i - 1])) {
                end = i;
                break;
            }
        while (end > 0 && isBlank(s[end - 1]))
            --end;
        out.text = s.substr(0, end);
        for (size_t i = 0; i < out.text.size(); ++i)
            if (out.text[i] == ':' && (i + 1 == out.text.size() || isBlank(out.text[i + 1])))
                throw error("nested mappings are not supported (\"" + out.text + "\"); quote the value if it is one");
        return out;
    }

private:
    // After a closing quote only blanks and a comment may follow.
    void expectLineEnd(const std::string& s, size_t pos) const
    {
        while (pos < s.size() && isBlank(s[pos]))
            ++pos;
        if (pos < s.size() && s[pos] != '#')
            throw error("unexpected text after a quoted value: \"" + s.substr(pos) + "\"");
    }

    Scalar singleQuoted(const std::string& s) const
    {
        Scalar out;
        out.line = m_line;
        out.quoted = true;
        for (size_t i = 1; i < s.size(); ++i) {
            if (s[i] != '\'') {
                out.text.push_back(s[i]);
                continue;
            }
            if (i + 1 < s.size() && s[i + 1] == '\'') { // '' is a quote
                out.text.push_back('\'');
                ++i;
                continue;
            }
            expectLineEnd(s, i + 1);
            return out;
        }
        throw error("unterminated quoted value (values spanning lines are not supported)");
    }

    Scalar doubleQuoted(const std::string& s) const
    {
        Scalar out;
        out.line = m_line;
        out.quoted = true;
        for (size_t i = 1; i < s.size(); ++i) {
            const char c = s[i];
            if (c == '"') {
                expectLineEnd(s, i + 1);
                return out;
            }
            if (c != '\\') {
                out.text.push_back(c);
                continue;
            }
            if (++i == s.size())
                break;
            switch (s[i]) {
            case '\\':
            case '"':
            case '/':
                out.text.push_back(s[i]);
                break;
            case 'n':
                out.text.push_back('\n');
                break;
            case 't':
                out.text.push_back('\t');
                break;
            case 'r':
                out.text.push_back('\r');
                break;
            case '0':
                out.text.push_back('\0');
                break;
            case 'x':
            case 'u':
            case 'U': {
                const size_t digits = s[i] == 'x' ? 2 : s[i] == 'u' ? 4 : 8;
                uint32_t cp = 0;
                for (size_t d = 0; d < digits; ++d) {
                    const int h = i + 1 + d < s.size() ? hexDigit(s[i + 1 + d]) : -1;
                    if (h < 0)
                        throw error("bad \\" + std::string(1, s[i]) + " escape in a quoted value");
                    cp = cp * 16 + static_cast<uint32_t>(h);
                }
                if (cp > 0x10FFFF)
                    throw error("escape names no Unicode character");
                model::utf8::append(out.text, static_cast<char32_t>(cp));
                i += digits;
                break;
            }
            default:
                throw error("unsupported escape \\" + std::string(1, s[i]) + " in a quoted value");
            }
        }
        throw error("unterminated quoted value (values spanning lines are not supported)");
    }

    const std::string& m_fileName;
    int m_line;
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

std::vector<Scalar> Document::list(const std::string& key) const
{
    const Value* v = find(key);
    if (!v || (!v->isList && isNull(v->scalar)))
        return {};
    if (!v->isList)
        throw Error(where(v->line) + key + " must be a list (one \"- item\" per line below it)");
    return v->items;
}

Document parse(const std::string& text, const std::string& fileName)
{
    Document doc;
    doc.m_fileName = fileName;
    Value* open = nullptr; // the last entry while it had no value on its line: a list may follow
    std::string openKey;
    int itemIndent = -1;

    size_t pos = 0;
    if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) // a UTF-8 byte order mark
        pos = 3;
    for (int lineNo = 1; pos <= text.size(); ++lineNo) {
        size_t end = text.find('\n', pos);
        if (end == std::string::npos)
            end = text.size();
        std::string line = text.substr(pos, end - pos);
        pos = end + 1;
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        const LineParser parser(fileName, lineNo);

        size_t indent = 0;
        bool tab = false;
        while (indent < line.size() && isBlank(line[indent]))
            tab |= line[indent++] == '\t';
        const std::string content = line.substr(indent);
        if (content.empty() || content[0] == '#')
            continue;
        if (tab)
            throw parser.error("tabs are not allowed in indentation; use spaces");
        if (content.rfind("---", 0) == 0 && (content.size() == 3 || isBlank(content[3]))) {
            if (!doc.m_entries.empty())
                throw parser.error("several YAML documents in one file are not supported");
            const size_t after = content.find_first_not_of(" \t", 3);
            if (after != std::string::npos && content[after] != '#')
                throw parser.error("unexpected text after ---");
            continue;
        }
        if (content == "..." || content.rfind("... ", 0) == 0)
            throw parser.error("document end markers (...) are not supported");
        if (content[0] == '%')
            throw parser.error("YAML directives (%) are not supported");

        // A list item of the open key.
        if (content[0] == '-' && (content.size() == 1 || isBlank(content[1]))) {
            if (!open)
                throw parser.error("a list item outside a list (lists must follow a \"key:\" line)");
            if (itemIndent < 0)
                itemIndent = static_cast<int>(indent);
            else if (static_cast<int>(indent) != itemIndent)
                throw parser.error("list items of \"" + openKey + "\" must all have the same indentation");
            size_t start = 1;
            while (start < content.size() && isBlank(content[start]))
                ++start;
            const std::string rest = content.substr(start);
            if (rest.empty() || rest[0] == '#')
                throw parser.error("empty list item");
            if (rest[0] == '-' && (rest.size() == 1 || isBlank(rest[1])))
                throw parser.error("nested lists are not supported");
            open->isList = true;
            open->items.push_back(parser.scalar(rest));
            continue;
        }

        if (indent > 0) {
            if (open && !open->isList)
                throw parser.error("nested mappings are not supported (under \"" + openKey + "\")");
            throw parser.error("unexpected indentation (values spanning lines are not supported)");
        }
        const char c = content[0];
        if (c == '"' || c == '\'')
            throw parser.error("quoted keys are not supported");
        if (c == '[' || c == '{')
            throw parser.error("flow style is not supported; write one \"key: value\" per line");
        if (c == '?')
            throw parser.error("complex keys (?) are not supported");
        if (c == '&' || c == '*' || c == '!')
            throw parser.error("anchors, aliases and tags are not supported");
        size_t colon = 0;
        while (colon < content.size() && isKeyChar(content[colon]))
            ++colon;
        if (colon == 0 || colon == content.size() || content[colon] != ':'
            || (colon + 1 < content.size() && !isBlank(content[colon + 1])))
            throw parser.error("expected \"key: value\", got \"" + printable(content) + "\"");
        const std::string key = content.substr(0, colon);
        if (doc.find(key))
            throw parser.error("\"" + key + "\" appears twice");
        size_t start = colon + 1;
        while (start < content.size() && isBlank(content[start]))
            ++start;
        Value value;
        value.line = lineNo;
        value.scalar = parser.scalar(content.substr(start));
        const bool empty = !value.scalar.quoted && value.scalar.text.empty();
        doc.m_entries.emplace_back(key, std::move(value));
        open = empty ? &doc.m_entries.back().second : nullptr;
        openKey = key;
        itemIndent = -1;
    }
    return doc;
}

Document parseFile(const std::string& path)
{
    return parse(io::readFile(path), path);
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
