#pragma once
// Picking: which node lies under a point, through a uniform grid over the scene's node centres.

#include "canvasscene.h"

#include <cstdint>
#include <vector>

namespace cs::app {

class SpatialIndex {
public:
    SpatialIndex() = default;
    explicit SpatialIndex(const CanvasScene& scene);

    // The node whose centre is nearest to (x, y) among those within their radius plus
    // `tolerance` (scene units) of it; ties go to the lower slot; -1 when none.
    int nodeAt(double x, double y, double tolerance = 0) const;

    // The same by looking at every node (tests, and scenes without an index).
    static int nodeAtBruteForce(const CanvasScene& scene, double x, double y, double tolerance = 0);

private:
    const CanvasScene* m_scene = nullptr; // not owned; the index lives with the scene it indexes
    double m_x0 = 0, m_y0 = 0; // the grid's origin
    double m_cell = 1; // cell size, scene units
    int m_columns = 0, m_rows = 0;
    double m_maxRadius = 0;
    std::vector<uint32_t> m_cellStart; // [cells + 1]
    std::vector<uint32_t> m_slots; // the slots of each cell's nodes, cell by cell
};

} // namespace cs::app
