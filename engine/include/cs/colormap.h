#pragma once
// The colour map of operand plots, shared by the CLI's PNG heat maps and the explorer's plot:
// matplotlib's viridis (perceptually even, readable in grey) sampled at eleven even steps and
// interpolated linearly in between.

#include <algorithm>
#include <array>
#include <cmath>
#include <cstddef>
#include <cstdint>

namespace cs {

// t in [0, 1] (clamped; NaN is 0) -> {r, g, b}.
inline std::array<uint8_t, 3> viridis(double t)
{
    static constexpr std::array<std::array<int, 3>, 11> stops { { { 68, 1, 84 }, { 72, 36, 117 }, { 65, 68, 135 },
        { 53, 95, 141 }, { 42, 120, 142 }, { 33, 145, 140 }, { 34, 168, 132 }, { 68, 191, 112 }, { 122, 209, 81 },
        { 189, 223, 38 }, { 253, 231, 37 } } };
    const double x = std::clamp(std::isfinite(t) ? t : 0.0, 0.0, 1.0) * double(stops.size() - 1);
    const size_t i = std::min(static_cast<size_t>(x), stops.size() - 2);
    const double f = x - double(i);
    std::array<uint8_t, 3> rgb {};
    for (size_t c = 0; c < 3; ++c)
        rgb[c] = static_cast<uint8_t>(std::lround(stops[i][c] + (stops[i + 1][c] - stops[i][c]) * f));
    return rgb;
}

} // namespace cs
