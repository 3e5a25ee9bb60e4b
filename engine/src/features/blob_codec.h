#pragma once
// The feature store's compact BLOB encodings (store.cpp): little-endian varints, zigzag
// integers, fixed-width values, float16 activations when every value fits, and the lists a
// feature record holds. BlobReader refuses a BLOB that is cut short or malformed, so a damaged
// store is an error, never a crash.

#include "cs/error.h"
#include "cs/features.h"

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace cs::features::blob {

class Writer {
public:
    void byte(uint8_t b) { m_bytes.push_back(b); }
    void varint(uint64_t v)
    {
        while (v >= 0x80) {
            byte(static_cast<uint8_t>(v | 0x80));
            v >>= 7;
        }
        byte(static_cast<uint8_t>(v));
    }
    void zigzag(int64_t v) { varint((static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63)); }
    template<typename T> void fixed(T v)
    {
        uint8_t raw[sizeof(T)];
        std::memcpy(raw, &v, sizeof(T)); // the engine runs on little-endian machines only
        m_bytes.insert(m_bytes.end(), raw, raw + sizeof(T));
    }
    void bytes(const std::string& s)
    {
        varint(s.size());
        m_bytes.insert(m_bytes.end(), s.begin(), s.end());
    }
    const std::vector<uint8_t>& data() const { return m_bytes; }

private:
    std::vector<uint8_t> m_bytes;
};

// Reads what Writer wrote; a BLOB cut short or otherwise malformed is a damaged store.
class Reader {
public:
    Reader(const void* data, size_t size, std::string what)
        : m_p(static_cast<const uint8_t*>(data))
        , m_end(m_p + size)
        , m_what(std::move(what))
    {
    }
    bool atEnd() const { return m_p == m_end; }
    size_t left() const { return static_cast<size_t>(m_end - m_p); }
    uint8_t byte()
    {
        need(1);
        return *m_p++;
    }
    uint64_t varint()
    {
        uint64_t v = 0;
        for (int shift = 0; shift < 64; shift += 7) {
            const uint8_t b = byte();
            v |= static_cast<uint64_t>(b & 0x7f) << shift;
            if (!(b & 0x80))
                return v;
        }
        fail();
    }
    int64_t zigzag()
    {
        const uint64_t u = varint();
        return static_cast<int64_t>(u >> 1) ^ -static_cast<int64_t>(u & 1);
    }
    // A count of items of at least `itemBytes` bytes each, checked against what is left.
    size_t count(size_t itemBytes)
    {
        const uint64_t n = varint();
        if (n > left() / std::max<size_t>(itemBytes, 1))
            fail();
        return static_cast<size_t>(n);
    }
    template<typename T> T fixed()
    {
        need(sizeof(T));
        T v;
        std::memcpy(&v, m_p, sizeof(T));
        m_p += sizeof(T);
        return v;
    }
    std::string bytes()
    {
        const size_t n = count(1);
        std::string s(reinterpret_cast<const char*>(m_p), n);
        m_p += n;
        return s;
    }
    [[noreturn]] void fail() const { throw Error("the feature store is damaged: a malformed " + m_what); }

private:
    void need(size_t n) const
    {
        if (left() < n)
            fail();
    }
    const uint8_t* m_p;
    const uint8_t* m_end;
    std::string m_what;
};

template<typename T> std::vector<uint8_t> encodeFixed(const std::vector<T>& values)
{
    Writer w;
    for (T v : values)
        w.fixed(v);
    return w.data();
}

template<typename T> std::vector<T> decodeFixed(const void* data, size_t size, const char* what)
{
    Reader r(data, size, what);
    if (size % sizeof(T))
        r.fail();
    std::vector<T> out(size / sizeof(T));
    for (T& v : out)
        v = r.fixed<T>();
    return out;
}

std::vector<uint8_t> encodeCounts(const std::vector<int64_t>& counts);

std::vector<int64_t> decodeCounts(const void* data, size_t size);

std::vector<uint8_t> encodeTokenValues(const std::vector<TokenValue>& list);

std::vector<TokenValue> decodeTokenValues(const void* data, size_t size);

std::vector<uint8_t> encodeTokens(const std::vector<int64_t>& ids);

std::vector<int64_t> decodeTokens(const void* data, size_t size);

std::vector<uint8_t> encodeActivations(const std::vector<float>& acts);

std::vector<float> decodeActivations(const void* data, size_t size);

uint64_t fnv1a(const std::vector<uint8_t>& bytes);

} // namespace cs::features::blob
