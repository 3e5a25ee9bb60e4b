// PNG heat maps of operand plots (heatmap.h), encoded by libpng into memory.
#include "heatmap.h"

#include "cs/colormap.h"
#include "cs/error.h"

#include <ATen/ATen.h>
#include <png.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <csetjmp>
#include <vector>

namespace cs::cli {

namespace {

void appendBytes(png_structp png, png_bytep data, png_size_t size)
{
    auto* out = static_cast<std::string*>(png_get_io_ptr(png));
    out->append(reinterpret_cast<const char*>(data), size);
}

// Encodes RGB rows into `out`; false on a libpng error. libpng reports errors by longjmp, so
// nothing between its setjmp and its calls has a destructor to skip (the pixels and the
// output live in the caller).
bool encodePng(const uint8_t* pixels, png_uint_32 width, png_uint_32 height, std::string* out)
{
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
    if (!png)
        return false;
    png_infop info = png_create_info_struct(png);
    if (!info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        return false;
    }
    png_set_write_fn(png, out, appendBytes, nullptr);
    png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
        PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (png_uint_32 y = 0; y < height; ++y)
        png_write_row(png, pixels + size_t(y) * width * 3);
    png_write_end(png, nullptr);
    png_destroy_write_struct(&png, &info);
    return true;
}

} // namespace

std::string heatmapPng(const at::Tensor& grid, int cell)
{
    if (grid.dim() != 2 || grid.size(0) < 1 || grid.size(1) < 1 || cell < 1)
        throw Error("a heat map needs a non-empty two-dimensional grid");
    const at::Tensor g = grid.to(at::kCPU, at::kDouble).contiguous();
    const int64_t rows = g.size(0), cols = g.size(1);
    const double* v = g.data_ptr<double>();
    const double lo = std::min(0.0, g.min().item<double>()), hi = g.max().item<double>();
    const double span = hi > lo ? hi - lo : 1.0;
    const int64_t width = cols * cell, height = rows * cell;
    if (width > 1 << 15 || height > 1 << 15)
        throw Error("the heat map would be larger than 32768 pixels a side: sweep fewer values");
    std::vector<uint8_t> pixels(static_cast<size_t>(width * height * 3));
    for (int64_t y = 0; y < height; ++y)
        for (int64_t x = 0; x < width; ++x) {
            const int64_t r = y / cell, c = x / cell;
            std::array<uint8_t, 3> rgb = viridis((v[r * cols + c] - lo) / span);
            // A grey line along the first pixel row / column of every tenth cell.
            if ((r % 10 == 0 && r > 0 && y % cell == 0) || (c % 10 == 0 && c > 0 && x % cell == 0))
                rgb = { 128, 128, 128 };
            std::copy(rgb.begin(), rgb.end(), pixels.begin() + (y * width + x) * 3);
        }
    std::string out;
    out.reserve(pixels.size() / 4);
    if (!encodePng(pixels.data(), static_cast<png_uint_32>(width), static_cast<png_uint_32>(height), &out))
        throw Error("cannot encode the heat map (libpng failed)");
    return out;
}

} // namespace cs::cli
