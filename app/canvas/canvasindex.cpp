#include "canvasindex.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace cs::app {

SpatialIndex::SpatialIndex(const CanvasScene& scene)
    : m_scene(&scene)
{
    const size_t n = scene.nodes.size();
    if (n == 0)
        return;
    double x0 = scene.nodes[0].x, x1 = x0, y0 = scene.nodes[0].y, y1 = y0;
    for (const CanvasNode& node : scene.nodes) {
        x0 = std::min(x0, node.x);
        x1 = std::max(x1, node.x);
        y0 = std::min(y0, node.y);
        y1 = std::max(y1, node.y);
        m_maxRadius = std::max(m_maxRadius, node.radius);
    }
    // About two nodes per cell on average, but never cells smaller than a node.
    const double area = std::max((x1 - x0) * (y1 - y0), 1.0);
    m_cell = std::max({ std::sqrt(2.0 * area / static_cast<double>(n)), 2.0 * m_maxRadius, 1.0 });
    m_x0 = x0;
    m_y0 = y0;
    m_columns = std::max(1, static_cast<int>((x1 - x0) / m_cell) + 1);
    m_rows = std::max(1, static_cast<int>((y1 - y0) / m_cell) + 1);
    const size_t cells = static_cast<size_t>(m_columns) * static_cast<size_t>(m_rows);
    m_cellStart.assign(cells + 1, 0);
    std::vector<uint32_t> cellOf(n);
    for (size_t i = 0; i < n; ++i) {
        const int cx = std::clamp(static_cast<int>((scene.nodes[i].x - m_x0) / m_cell), 0, m_columns - 1);
        const int cy = std::clamp(static_cast<int>((scene.nodes[i].y - m_y0) / m_cell), 0, m_rows - 1);
        cellOf[i] = static_cast<uint32_t>(cy * m_columns + cx);
        ++m_cellStart[cellOf[i] + 1];
    }
    for (size_t c = 0; c < cells; ++c)
        m_cellStart[c + 1] += m_cellStart[c];
    m_slots.resize(n);
    std::vector<uint32_t> fill(m_cellStart.begin(), m_cellStart.end() - 1);
    for (size_t i = 0; i < n; ++i)
        m_slots[fill[cellOf[i]]++] = static_cast<uint32_t>(i);
}

int SpatialIndex::nodeAt(double x, double y, double tolerance) const
{
    if (!m_scene || m_slots.empty() || !std::isfinite(x) || !std::isfinite(y))
        return -1;
    // Every node that can contain the point has its centre within maxRadius + tolerance.
    const double reach = m_maxRadius + std::max(tolerance, 0.0);
    const double gx0 = (x - reach - m_x0) / m_cell, gx1 = (x + reach - m_x0) / m_cell;
    const double gy0 = (y - reach - m_y0) / m_cell, gy1 = (y + reach - m_y0) / m_cell;
    if (gx1 < 0 || gy1 < 0 || gx0 >= m_columns || gy0 >= m_rows)
        return -1;
    const int cx0 = std::max(0, static_cast<int>(std::floor(gx0))),
              cx1 = std::min(m_columns - 1, static_cast<int>(gx1));
    const int cy0 = std::max(0, static_cast<int>(std::floor(gy0))), cy1 = std::min(m_rows - 1, static_cast<int>(gy1));
    int best = -1;
    double bestD2 = std::numeric_limits<double>::infinity();
    for (int cy = cy0; cy <= cy1; ++cy) {
        for (int cx = cx0; cx <= cx1; ++cx) {
            const size_t c = static_cast<size_t>(cy) * static_cast<size_t>(m_columns) + static_cast<size_t>(cx);
            for (uint32_t k = m_cellStart[c]; k < m_cellStart[c + 1]; ++k) {
                const uint32_t slot = m_slots[k];
                const CanvasNode& node = m_scene->nodes[slot];
                const double dx = node.x - x, dy = node.y - y;
                const double d2 = dx * dx + dy * dy;
                const double r = node.radius + std::max(tolerance, 0.0);
                if (d2 > r * r)
                    continue;
                if (d2 < bestD2 || (d2 == bestD2 && static_cast<int>(slot) < best)) {
                    bestD2 = d2;
                    best = static_cast<int>(slot);
                }
            }
        }
    }
    return best;
}

int SpatialIndex::nodeAtBruteForce(const CanvasScene& scene, double x, double y, double tolerance)
{
    int best = -1;
    double bestD2 = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < scene.nodes.size(); ++i) {
        const CanvasNode& node = scene.nodes[i];
        const double dx = node.x - x, dy = node.y - y;
        const double d2 = dx * dx + dy * dy;
        const double r = node.radius + std::max(tolerance, 0.0);
        if (d2 <= r * r && d2 < bestD2) {
            bestD2 = d2;
            best = static_cast<int>(i);
        }
    }
    return best;
}

} // namespace cs::app
