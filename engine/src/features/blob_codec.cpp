#include "features/blob_codec.h"

#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>

namespace cs::features::blob {

namespace {

// float16 through c10::Half (round to nearest, ties to even; overflow to infinity).
uint16_t halfFromFloat(float f)
{
    return c10::Half(f).x;
}

float floatFromHalf(uint16_t h)
{
    return static_cast<float>(c10::Half(h, c10::Half::from_bits()));
}

bool fitsHalf(float v)
{
    return std::isfinite(v) && std::fabs(v) <= 65504.0f;
}

} // namespace

std::vector<uint8_t> encodeCounts(const std::vector<int64_t>& counts)
{
    Writer w;
    for (int64_t c : counts)
        w.zigzag(c);
    return w.data();
}

std::vector<int64_t> decodeCounts(const void* data, size_t size)
{
    Reader r(data, size, "histogram");
    std::vector<int64_t> out;
    while (!r.atEnd())
        out.push_back(r.zigzag());
    return out;
}

std::vector<uint8_t> encodeTokenValues(const std::vector<TokenValue>& list)
{
    Writer w;
    w.varint(list.size());
    for (const TokenValue& t : list) {
        w.zigzag(t.id);
        w.fixed(t.value);
        w.bytes(t.token);
    }
    return w.data();
}

std::vector<TokenValue> decodeTokenValues(const void* data, size_t size)
{
    std::vector<TokenValue> out;
    if (size == 0)
        return out;
    Reader r(data, size, "token list");
    out.resize(r.count(6));
    for (TokenValue& t : out) {
        t.id = r.zigzag();
        t.value = r.fixed<float>();
        t.token = r.bytes();
    }
    if (!r.atEnd())
        r.fail();
    return out;
}

std::vector<uint8_t> encodeTokens(const std::vector<int64_t>& ids)
{
    int64_t lo = 0, hi = 0;
    for (int64_t id : ids) {
        lo = std::min(lo, id);
        hi = std::max(hi, id);
    }
    Writer w;
    if (lo >= 0 && hi <= 0xffff) {
        w.byte(2);
        for (int64_t id : ids)
            w.fixed(static_cast<uint16_t>(id));
    } else if (lo >= std::numeric_limits<int32_t>::min() && hi <= std::numeric_limits<int32_t>::max()) {
        w.byte(4);
        for (int64_t id : ids)
            w.fixed(static_cast<int32_t>(id));
    } else {
        w.byte(8);
        for (int64_t id : ids)
            w.fixed(id);
    }
    return w.data();
}

std::vector<int64_t> decodeTokens(const void* data, size_t size)
{
    Reader r(data, size, "token sequence");
    const uint8_t width = r.byte();
    if ((width != 2 && width != 4 && width != 8) || r.left() % width)
        r.fail();
    std::vector<int64_t> ids(r.left() / width);
    for (int64_t& id : ids)
        id = width == 2 ? r.fixed<uint16_t>() : width == 4 ? r.fixed<int32_t>() : r.fixed<int64_t>();
    return ids;
}

enum ActivationCoding : uint8_t { kDenseHalf = 1, kDenseFloat = 2, kSparseHalf = 3, kSparseFloat = 4 };

std::vector<uint8_t> encodeActivations(const std::vector<float>& acts)
{
    const bool half = std::all_of(acts.begin(), acts.end(), fitsHalf);
    const size_t valueBytes = half ? 2 : 4;
    size_t nonZero = 0;
    for (float v : acts)
        nonZero += v != 0.0f;
    // Sparse costs a gap (one byte, mostly) and a value per non-zero.
    const bool sparse = nonZero * (valueBytes + 1) + 2 < acts.size() * valueBytes;
    Writer w;
    w.byte(sparse ? (half ? kSparseHalf : kSparseFloat) : (half ? kDenseHalf : kDenseFloat));
    w.varint(acts.size());
    const auto value = [&](float v) {
        if (half)
            w.fixed(halfFromFloat(v));
        else
            w.fixed(v);
    };
    if (sparse) {
        w.varint(nonZero);
        size_t next = 0; // the index after the previous non-zero
        for (size_t i = 0; i < acts.size(); ++i)
            if (acts[i] != 0.0f) {
                w.varint(i - next);
                value(acts[i]);
                next = i + 1;
            }
    } else {
        for (float v : acts)
            value(v);
    }
    return w.data();
}

std::vector<float> decodeActivations(const void* data, size_t size)
{
    Reader r(data, size, "activation list");
    const uint8_t coding = r.byte();
    if (coding < kDenseHalf || coding > kSparseFloat)
        r.fail();
    const bool half = coding == kDenseHalf || coding == kSparseHalf;
    const auto value = [&] { return half ? floatFromHalf(r.fixed<uint16_t>()) : r.fixed<float>(); };
    const uint64_t n = r.varint();
    if (n > (uint64_t(1) << 24)) // no context is that long; a damaged count
        r.fail();
    std::vector<float> acts;
    if (coding == kDenseHalf || coding == kDenseFloat) {
        if (r.left() != n * (half ? 2 : 4))
            r.fail();
        acts.resize(n);
        for (float& v : acts)
            v = value();
    } else {
        acts.assign(n, 0.0f);
        const size_t k = r.count(half ? 3 : 5);
        uint64_t i = 0;
        for (size_t j = 0; j < k; ++j) {
            i += r.varint();
            if (i >= n)
                r.fail();
            acts[i++] = value();
        }
    }
    if (!r.atEnd())
        r.fail();
    return acts;
}

uint64_t fnv1a(const std::vector<uint8_t>& bytes)
{
    uint64_t h = 1469598103934665603ull;
    for (uint8_t b : bytes)
        h = (h ^ b) * 1099511628211ull;
    return h;
}

} // namespace cs::features::blob
