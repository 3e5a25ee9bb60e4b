#pragma once
// The explorer's frame benchmark (circuitscope --bench): frames while panning a large synthetic
// scene, and re-prune + scene + frame on the start-up graph as a threshold slider moves.
// Renders in an offscreen QQuickWindow; needs a QGuiApplication. On the offscreen platform the
// software scene graph is selected (call before any window is created, or select it yourself).

#include <cs/graph.h>

#include <ostream>
#include <string>

namespace cs::app {

struct CanvasBenchFigures {
    std::string backend; // "software", "opengl", ...
    int windowWidth = 0, windowHeight = 0; // px
    // Panning a synthetic scene.
    int panNodes = 0, panEdges = 0, panFrames = 0;
    double firstFrameMs = 0; // geometry build and the first frame
    double panMedianMs = 0, panP95Ms = 0, panMaxMs = 0; // per frame
    int panRepaints = 0; // software backend: image repaints during the pan
    // The same scene at zoom 1 (a detail), dragged 1,440 px sideways.
    double detailFirstFrameMs = 0;
    double detailMedianMs = 0, detailP95Ms = 0, detailMaxMs = 0;
    int detailRepaints = 0;
    // Re-pruning the start-up graph (skipped when there is none).
    bool reprune = false;
    int repruneGraphNodes = 0, repruneSteps = 0;
    double pruneMedianMs = 0, sceneMedianMs = 0, frameMedianMs = 0; // the parts of a step
    double repruneMedianMs = 0, repruneMaxMs = 0; // prune + scene + frame
    double repruneMaxShownNodes = 0, repruneMaxShownEdges = 0;
};

// Prints one line per figure to `out` and returns them. startupGraph: the graph to re-prune
// (the traced Dallas graph); when null, tinyworld's Dallas prompt is traced here when the model
// can be found, else that part is skipped.
CanvasBenchFigures runCanvasBench(std::ostream& out, const cs::graph::Graph* startupGraph);

} // namespace cs::app
