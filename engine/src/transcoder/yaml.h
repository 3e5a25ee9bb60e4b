#pragma once
// Reading transcoder config.yaml files (circuit-tracer's, PyYAML's dump of them, and ours) with
// yaml-cpp's event parser into the shapes these files have: one mapping at the top level whose
// values are scalars or lists, and whose list items are scalars or flat mappings of scalars,
//   model_kind: cross_layer_transcoder    # a comment
//   k: 64
//   transcoders:
//     - "layer_0.safetensors"             (or "- ..." at column 0, as PyYAML writes lists)
//     - {layer: 1, filepath: layer_1.safetensors}     (maps in lists, as circuit-tracer's configs)
// Flow style, block scalars, anchors and comments are YAML's. Anything deeper (a map under a
// top-level key, a list in a list, a map in a map), aliases (*name), tags other than !!str,
// several documents and keys that repeat are refused with a cs::Error naming the file and
// line, rather than read as something the file did not mean. Depth never exceeds three.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cs::transcoder::yaml {

struct Scalar {
    std::string text; // unquoted, escapes resolved
    bool quoted = false; // 'x' or "x": always a string, never null, a number or a bool
    int line = 0; // 1-based
};

// A list item: a scalar, or a flat map of scalars.
struct Item {
    bool isMap = false;
    Scalar scalar; // when !isMap
    std::vector<std::pair<std::string, Scalar>> fields; // when isMap, in file order
    int line = 0; // 1-based
    // A field of a map item (nullptr when absent or when the item is a scalar).
    const Scalar* field(const std::string& key) const;
};

struct Value {
    bool isList = false;
    Scalar scalar; // when !isList (empty and unquoted for "key:" with nothing after it)
    std::vector<Item> items; // when isList
    int line = 0; // the key's line
};

class Document {
public:
    const std::string& fileName() const { return m_fileName; }
    // The top-level entries in file order.
    const std::vector<std::pair<std::string, Value>>& entries() const { return m_entries; }
    const Value* find(const std::string& key) const;
    // Present and not null.
    bool has(const std::string& key) const;

    // Typed reads of a scalar entry; each throws cs::Error naming file, line and key when the
    // entry is a list or does not read as the type. Absent or null keys give the fallback.
    std::string string(const std::string& key, const std::string& fallback = {}) const;
    int64_t integer(const std::string& key, int64_t fallback) const;
    bool boolean(const std::string& key, bool fallback) const;
    // A list entry's items (a single scalar is not a list: refused). Absent gives {}.
    std::vector<Item> items(const std::string& key) const;
    // The same for a list of scalars only (a map item is refused).
    std::vector<Scalar> list(const std::string& key) const;

    // "config.yaml line 3: " (or "config.yaml: " for line 0), for messages about an entry.
    std::string where(int line) const;

private:
    friend Document parse(const std::string& text, const std::string& fileName);
    std::string m_fileName;
    std::vector<std::pair<std::string, Value>> m_entries;
};

// Parses text; fileName is only used in messages. Throws cs::Error.
Document parse(const std::string& text, const std::string& fileName);
// Reads and parses a file. Throws cs::Error naming the path.
Document parseFile(const std::string& path);

// A plain scalar that is YAML null: "", "~", "null", "Null", "NULL".
bool isNull(const Scalar& scalar);

// Builds a document in the same subset, keys in the order they are added.
class Writer {
public:
    void comment(const std::string& text); // "# text"
    void string(const std::string& key, const std::string& value); // quoted when it must be
    void integer(const std::string& key, int64_t value);
    void boolean(const std::string& key, bool value);
    void list(const std::string& key, const std::vector<std::string>& items);
    const std::string& text() const { return m_text; }

private:
    void key(const std::string& key);
    std::string m_text;
};

// value as a YAML scalar that parse() reads back as the same string: plain when that is
// unambiguous, double-quoted otherwise.
std::string quote(const std::string& value);

} // namespace cs::transcoder::yaml
