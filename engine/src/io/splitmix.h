#pragma once
// splitmix64 (Steele, Lea and Flood 2014; the finalizer of Java's SplittableRandom): a 64-bit
// mix with full avalanche, the one used wherever the engine needs a reproducible hash or stream
// (the feature store's sample choice, tinyworld's random choices).

#include <cstdint>

namespace cs::io {

constexpr uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

} // namespace cs::io
