#include "canvasbench.h"

#include "canvasscene.h"
#include "graphcanvas.h"

#include <cs/attribution.h>
#include <cs/engine.h>
#include <cs/model.h>
#include <cs/tokenizer.h>
#include <cs/transcoder.h>

#include <QGuiApplication>
#include <QImage>
#include <QQuickWindow>
#include <QSGRendererInterface>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <exception>
#include <memory>
#include <optional>
#include <vector>

namespace cs::app {

namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t0)
{
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

// The q-quantile of the values (nearest rank).
double quantile(std::vector<double> values, double q)
{
    if (values.empty())
        return 0;
    std::sort(values.begin(), values.end());
    const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(values.size())));
    return values[std::min(values.size() - 1, rank == 0 ? 0 : rank - 1)];
}

double maxOf(const std::vector<double>& values)
{
    return values.empty() ? 0 : *std::max_element(values.begin(), values.end());
}

const char* backendName(QSGRendererInterface::GraphicsApi api)
{
    switch (api) {
    case QSGRendererInterface::Software:
        return "software";
    case QSGRendererInterface::OpenGL:
        return "opengl";
    case QSGRendererInterface::Vulkan:
        return "vulkan";
    case QSGRendererInterface::Metal:
        return "metal";
    case QSGRendererInterface::Direct3D11:
        return "direct3d11";
    default:
        return "other";
    }
}

// Renders one frame synchronously.
void renderFrame(QQuickWindow& window)
{
    (void)window.grabWindow();
}

struct PanRun {
    std::vector<double> frames;
    int repaints = 0;
};

// `frames` frames, each moving the view by (dx, dy) px.
PanRun pan(QQuickWindow& window, GraphCanvas& canvas, int frames, double dx, double dy)
{
    PanRun run;
    const int paints0 = canvas.softwarePaints();
    for (int i = 0; i < frames; ++i) {
        const Clock::time_point t0 = Clock::now();
        canvas.setView(canvas.zoom(), canvas.centerX() + dx / canvas.zoom(), canvas.centerY() + dy / canvas.zoom());
        renderFrame(window);
        run.frames.push_back(msSince(t0));
    }
    run.repaints = canvas.softwarePaints() - paints0;
    return run;
}

// Tinyworld's canonical prompt with its shipped CLT, traced here when no graph is given.
std::optional<cs::graph::Graph> traceDallas(std::ostream& out)
{
    try {
        const std::string folder = cs::resolveModelFolder("tinyworld");
        auto model = cs::model::Model::load(folder, { "cpu", true });
        auto transcoders = cs::transcoder::TranscoderSet::load(cs::transcoder::resolveTranscoderFolder(folder, "clt"));
        const std::vector<int64_t> ids
            = model->tokenizer().encode("Fact: the capital of the state containing Dallas is");
        auto context = cs::attribution::buildContext(model, transcoders, ids);
        return cs::attribution::trace(context, {}).graph;
    } catch (const std::exception& e) {
        out << "canvas re-prune: skipped, no start-up graph (" << e.what() << ")\n";
        return std::nullopt;
    }
}

} // namespace

CanvasBenchFigures runCanvasBench(std::ostream& out, const cs::graph::Graph* startupGraph)
{
    CanvasBenchFigures f;
    if (QGuiApplication::platformName() == QLatin1String("offscreen"))
        QQuickWindow::setGraphicsApi(QSGRendererInterface::Software); // offscreen has no OpenGL

    QQuickWindow window;
    f.windowWidth = 1280;
    f.windowHeight = 800;
    window.resize(f.windowWidth, f.windowHeight);
    auto* canvas = new GraphCanvas(window.contentItem());
    canvas->setSize(QSizeF(f.windowWidth, f.windowHeight));
    window.show();
    f.backend = backendName(window.rendererInterface()->graphicsApi());
    out << "canvas: " << f.backend << " scene graph, window " << f.windowWidth << "x" << f.windowHeight << "\n";

    // 1. Panning a synthetic scene: the whole scene in view, then a detail at zoom 1.
    f.panNodes = 10000;
    f.panEdges = 100000;
    f.panFrames = 120;
    canvas->setScene(makeSyntheticScene(f.panNodes, f.panEdges, 1234));
    canvas->fitToView();
    Clock::time_point t0 = Clock::now();
    renderFrame(window);
    f.firstFrameMs = msSince(t0);
    // 2 px per frame each way: a slow drag, the whole scene staying in view.
    const PanRun overview = pan(window, *canvas, f.panFrames, 2, 1);
    f.panMedianMs = quantile(overview.frames, 0.5);
    f.panP95Ms = quantile(overview.frames, 0.95);
    f.panMaxMs = maxOf(overview.frames);
    f.panRepaints = overview.repaints;
    out << "canvas pan, " << f.panNodes << " nodes, " << f.panEdges << " edges, whole scene in view: first frame "
        << f.firstFrameMs << " ms; " << f.panFrames << " frames median " << f.panMedianMs << " ms, p95 " << f.panP95Ms
        << " ms, max " << f.panMaxMs << " ms (target <= 16 ms), " << f.panRepaints << " repaints\n";
    // A drag across a detail at zoom 1, 12 px per frame (1,440 px in all).
    const QRectF b = canvas->scene()->bounds;
    canvas->setView(1.0, b.left() + 0.3 * b.width(), b.center().y());
    t0 = Clock::now();
    renderFrame(window);
    f.detailFirstFrameMs = msSince(t0);
    const PanRun detail = pan(window, *canvas, f.panFrames, 12, 0);
    f.detailMedianMs = quantile(detail.frames, 0.5);
    f.detailP95Ms = quantile(detail.frames, 0.95);
    f.detailMaxMs = maxOf(detail.frames);
    f.detailRepaints = detail.repaints;
    out << "canvas pan, same scene at zoom 1: first frame " << f.detailFirstFrameMs << " ms; " << f.panFrames
        << " frames median " << f.detailMedianMs << " ms, p95 " << f.detailP95Ms << " ms, max " << f.detailMaxMs
        << " ms, " << f.detailRepaints << " repaints\n";

    // 2. Re-prune + scene + frame on the start-up graph, as a node-threshold slider moves.
    std::optional<cs::graph::Graph> traced;
    if (!startupGraph) {
        traced = traceDallas(out);
        if (traced)
            startupGraph = &*traced;
    }
    if (startupGraph) {
        try {
            const cs::graph::Graph& graph = *startupGraph;
            t0 = Clock::now();
            const cs::graph::Pruner pruner(graph);
            const double pruner0 = msSince(t0);
            ExplorerState state;
            SceneStyle style;
            canvas->setScene(nullptr);
            canvas->setAutoFit(true);
            std::vector<double> prune, build, frame, total;
            // Down from 0.95 to 0.3 and back, 0.05 a step; the first step also fits the view.
            std::vector<double> thresholds;
            for (int k = 19; k >= 6; --k)
                thresholds.push_back(k * 0.05);
            for (int k = 7; k <= 19; ++k)
                thresholds.push_back(k * 0.05);
            for (double threshold : thresholds) {
                const Clock::time_point s0 = Clock::now();
                const cs::graph::PruneResult pruned = pruner.prune(threshold, state.edgeThreshold);
                const Clock::time_point s1 = Clock::now();
                auto scene = buildGraphScene(graph, pruned, state, style);
                const Clock::time_point s2 = Clock::now();
                f.repruneMaxShownNodes = std::max<double>(f.repruneMaxShownNodes, scene->nodes.size());
                f.repruneMaxShownEdges = std::max<double>(f.repruneMaxShownEdges, scene->edges.size());
                canvas->setScene(std::move(scene));
                renderFrame(window);
                const Clock::time_point s3 = Clock::now();
                prune.push_back(std::chrono::duration<double, std::milli>(s1 - s0).count());
                build.push_back(std::chrono::duration<double, std::milli>(s2 - s1).count());
                frame.push_back(std::chrono::duration<double, std::milli>(s3 - s2).count());
                total.push_back(std::chrono::duration<double, std::milli>(s3 - s0).count());
            }
            f.reprune = true;
            f.repruneGraphNodes = static_cast<int>(graph.size());
            f.repruneSteps = static_cast<int>(total.size());
            f.pruneMedianMs = quantile(prune, 0.5);
            f.sceneMedianMs = quantile(build, 0.5);
            f.frameMedianMs = quantile(frame, 0.5);
            f.repruneMedianMs = quantile(total, 0.5);
            f.repruneMaxMs = maxOf(total);
            out << "canvas re-prune, " << f.repruneGraphNodes << "-node graph (Pruner built in " << pruner0 << " ms), "
                << f.repruneSteps << " node thresholds 0.95..0.30..0.95 (up to " << f.repruneMaxShownNodes << " nodes, "
                << f.repruneMaxShownEdges << " edges shown): prune " << f.pruneMedianMs << " + scene "
                << f.sceneMedianMs << " + frame " << f.frameMedianMs << " ms median; total median " << f.repruneMedianMs
                << " ms, max " << f.repruneMaxMs << " ms (target <= 50 ms)\n";
        } catch (const std::exception& e) {
            out << "canvas re-prune: failed: " << e.what() << "\n";
        }
    }
    return f;
}

} // namespace cs::app
