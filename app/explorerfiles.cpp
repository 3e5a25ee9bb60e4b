#include "explorerfiles.h"

#include "explorercontroller.h"
#include "figure/figure.h"
#include "jobqueue.h"
#include "session/autosave.h"
#include "session/sessionfile.h"
#include "session/settings.h"

#include <cs/error.h>

#include <QDir>
#include <QFileInfo>
#include <QPointer>
#include <QUrl>

namespace cs::app {

namespace {

QString qs(const std::string& s)
{
    return QString::fromStdString(s);
}

} // namespace

ExplorerFiles::ExplorerFiles(ExplorerController& core, const QString& autosaveFolder)
    : QObject(&core)
    , m_core(core)
{
    m_recent = new RecentFilesModel(nullptr, this);

    // Autosave: every edit marks the session dirty; the autosave's timer writes a snapshot on
    // its own thread a while later. A marker left by a process that died offers recovery.
    m_autosave = new SessionAutosave(this);
    if (!autosaveFolder.isEmpty())
        m_autosave->setFolder(autosaveFolder);
    m_autosave->setInterval(m_core.m_settings->autosaveSeconds() * 1000);
    m_autosave->setSnapshot([this] { return *sessionData(); });
    try {
        m_autosave->start();
        m_recoveryPath = m_autosave->recoverable();
    } catch (const std::exception& e) {
        m_core.m_message = QStringLiteral("Autosave is off: %1").arg(QString::fromStdString(e.what()));
    }
    connect(m_autosave, &SessionAutosave::saveFailed, this, [this](const QString& message) {
        m_core.setMessage(QStringLiteral("Autosave failed: %1").arg(message), true);
    });
}

QString ExplorerFiles::localPath(const QString& pathOrUrl)
{
    const QUrl url(pathOrUrl);
    if (url.isLocalFile())
        return url.toLocalFile();
    return pathOrUrl;
}

bool ExplorerFiles::isModified() const
{
    return !m_core.m_undo.isClean();
}

void ExplorerFiles::exportFigure(const QString& pathOrUrl, const QString& scope)
{
    const QString path = localPath(pathOrUrl);
    if (!m_core.m_graph) {
        m_core.setMessage(QStringLiteral("Nothing to export: trace a prompt first"), true);
        Q_EMIT exportFinished(false, path);
        return;
    }
    const FigureScope figureScope = scope == QLatin1String("graph") ? FigureScope::PrunedGraph : FigureScope::Subgraph;
    if (figureScope == FigureScope::Subgraph && m_core.m_state.pinned.empty()) {
        m_core.setMessage(
            QStringLiteral("The subgraph is empty: pin nodes (Ctrl-click) first, or export the whole graph"), true);
        Q_EMIT exportFinished(false, path);
        return;
    }
    FigureSpec spec;
    FigureFormat format;
    try {
        format = formatFromPath(path.toStdString());
        spec = m_core.figureSpec(figureScope == FigureScope::Subgraph);
    } catch (const std::exception& e) {
        m_core.setMessage(QString::fromStdString(e.what()), true);
        Q_EMIT exportFinished(false, path);
        return;
    }
    ++m_exporting;
    Q_EMIT exportingChanged();
    QPointer<ExplorerFiles> guard(this);
    ExportOptions options;
    options.dpi = m_core.m_settings->figureDpi(); // PNG only; 300 unless the user chose
    m_core.m_graphviz->post({}, [guard, spec = std::move(spec), path, format, options] {
        QString error;
        try {
            cs::app::exportFigure(spec, path.toStdString(), format, options);
        } catch (const std::exception& e) {
            error = QString::fromStdString(e.what());
        }
        QMetaObject::invokeMethod(
            guard.data(),
            [guard, path, error] {
                if (!guard)
                    return;
                --guard->m_exporting;
                Q_EMIT guard->exportingChanged();
                if (error.isEmpty()) {
                    guard->m_core.setMessage(QStringLiteral("Exported %1").arg(QDir::toNativeSeparators(path)));
                } else {
                    guard->m_core.setMessage(error, true);
                }
                Q_EMIT guard->exportFinished(error.isEmpty(), path);
            },
            Qt::QueuedConnection);
    });
}

bool ExplorerFiles::exportGraphJson(const QString& pathOrUrl)
{
    const QString path = localPath(pathOrUrl);
    if (!m_core.m_graph) {
        m_core.setMessage(QStringLiteral("Nothing to export: trace a prompt first"), true);
        return false;
    }
    try {
        cs::graph::Graph graph = *m_core.m_graph;
        // The user's labels travel as each node's clerp, the subgraph as Neuronpedia's qParams.
        for (int64_t i = 0; i < graph.size(); ++i)
            graph.nodes[size_t(i)].label = m_core.labelOf(i);
        stateToQParams(m_core.m_state, graph.metadata.qParams, graph.metadata.basis);
        graph.metadata.nodeThreshold = m_core.m_state.nodeThreshold;
        graph.metadata.edgeThreshold = m_core.m_state.edgeThreshold;
        graph.metadata.extra["scores"] = cs::graph::scoresMetadata(*m_core.m_pruner, *m_core.m_pruned);
        cs::graph::writeJsonFile(path.toStdString(), graph, *m_core.m_pruned);
    } catch (const std::exception& e) {
        m_core.setMessage(QString::fromStdString(e.what()), true);
        return false;
    }
    m_recent->add(path, QStringLiteral("graph"));
    m_core.setMessage(QStringLiteral("Wrote %1").arg(QDir::toNativeSeparators(path)));
    return true;
}

std::unique_ptr<SessionData> ExplorerFiles::sessionData() const
{
    auto data = std::make_unique<SessionData>();
    data->model = m_core.m_modelFolder.toStdString();
    data->transcoder = m_core.m_transcoderName.toStdString();
    data->prompt = m_core.graphPrompt().toStdString();
    data->graph = *m_core.m_graph;
    data->state = m_core.m_state;
    return data;
}

bool ExplorerFiles::saveSession(const QString& pathOrUrl)
{
    QString path = localPath(pathOrUrl);
    if (!m_core.m_graph) {
        m_core.setMessage(QStringLiteral("Nothing to save: trace a prompt first"), true);
        return false;
    }
    if (!path.endsWith(QLatin1String(".json")))
        path += QLatin1String(kSessionExtension);
    try {
        writeSession(path.toStdString(), *sessionData());
    } catch (const std::exception& e) {
        m_core.setMessage(QString::fromStdString(e.what()), true);
        return false;
    }
    m_sessionPath = path;
    m_core.m_undo.setClean();
    m_recent->add(path, QStringLiteral("session"));
    m_core.setMessage(QStringLiteral("Saved %1").arg(QDir::toNativeSeparators(path)));
    Q_EMIT sessionChanged();
    return true;
}

bool ExplorerFiles::save()
{
    if (m_sessionPath.isEmpty()) {
        m_core.setMessage(QStringLiteral("Choose where to save the session (Save As)"), true);
        return false;
    }
    return saveSession(m_sessionPath);
}

bool ExplorerFiles::loadSession(const SessionData& data, const QString& path)
{
    auto graph = std::make_shared<const cs::graph::Graph>(data.graph);
    std::shared_ptr<const cs::graph::Pruner> pruner;
    try {
        pruner = std::make_shared<const cs::graph::Pruner>(*graph);
    } catch (const std::exception& e) {
        m_core.setMessage(
            QStringLiteral("%1: %2").arg(QDir::toNativeSeparators(path), QString::fromStdString(e.what())), true);
        return false;
    }
    m_core.m_contextReady = false;
    m_core.m_traceText = QStringLiteral("opened %1").arg(QFileInfo(path).fileName());
    m_core.setGraph(graph, pruner, data.state, {}, {});
    m_core.m_state.view = data.state.view;
    // A view saved with the session (not the default one) is shown again.
    if (data.state.view != CanvasView {})
        Q_EMIT m_core.viewRequested(data.state.view.zoom, data.state.view.centerX, data.state.view.centerY);
    m_core.requestContext();
    Q_EMIT m_core.graphOpened(m_core.graphPrompt());
    if (!data.warnings.empty())
        m_core.setMessage(
            QStringLiteral("Opened %1 (%2)").arg(QDir::toNativeSeparators(path), qs(data.warnings.front())));
    else
        m_core.setMessage(QStringLiteral("Opened %1").arg(QDir::toNativeSeparators(path)));
    return true;
}

bool ExplorerFiles::openFile(const QString& pathOrUrl)
{
    const QString path = localPath(pathOrUrl);
    const std::string p = path.toStdString();
    try {
        if (path.endsWith(QLatin1String(kSessionExtension))) {
            const SessionData data = readSession(p);
            if (!loadSession(data, path))
                return false;
            m_sessionPath = path;
            m_recent->add(path, QStringLiteral("session"));
        } else {
            SessionData data;
            const bool graphFile = cs::graph::isGraphFile(p);
            data.graph = graphFile ? cs::graph::readGraphFile(p) : cs::graph::readJsonFile(p);
            data.graph.validate();
            // A graph JSON from Neuronpedia or circuit-tracer may carry a saved subgraph.
            data.state = stateFromQParams(data.graph.metadata.qParams, data.graph);
            data.state.nodeThreshold = m_core.m_settings->nodeThreshold();
            data.state.edgeThreshold = m_core.m_settings->edgeThreshold();
            if (!graphFile) {
                // A graph JSON was pruned by its writer: shown as it is, with the file's
                // thresholds on the sliders, until one moves. (A .csgraph holds the whole graph.)
                data.state.asFile = true;
                const auto& m = data.graph.metadata;
                if (m.nodeThreshold > 0 && m.nodeThreshold <= 1)
                    data.state.nodeThreshold = m.nodeThreshold;
                if (m.edgeThreshold > 0 && m.edgeThreshold <= 1)
                    data.state.edgeThreshold = m.edgeThreshold;
            }
            for (int64_t i = 0; i < data.graph.size(); ++i) {
                const auto& node = data.graph.nodes[size_t(i)];
                if (node.kind == cs::graph::NodeKind::Feature && !node.label.empty())
                    data.state.labels[labelKey(data.graph.metadata.basis, node.layer, node.feature)] = node.label;
            }
            if (!loadSession(data, path))
                return false;
            m_sessionPath.clear();
            m_recent->add(path, QStringLiteral("graph"));
        }
    } catch (const std::exception& e) {
        // The session open before stays as it was.
        m_core.setMessage(QString::fromStdString(e.what()), true);
        return false;
    }
    Q_EMIT sessionChanged();
    return true;
}

void ExplorerFiles::markDirty()
{
    if (m_core.m_graph && m_autosave->isStarted())
        m_autosave->markDirty();
}

void ExplorerFiles::autosaveNow()
{
    if (m_core.m_graph && m_autosave->isStarted())
        m_autosave->saveNow();
}

bool ExplorerFiles::recoverSession()
{
    if (m_recoveryPath.isEmpty())
        return false;
    const QString path = m_recoveryPath;
    bool ok = false;
    try {
        const SessionData data = readSession(path.toStdString());
        ok = loadSession(data, path);
        if (ok)
            m_core.m_undo.resetClean(); // recovered work is not saved anywhere yet
    } catch (const std::exception& e) {
        m_core.setMessage(QString::fromStdString(e.what()), true);
    }
    m_autosave->discardRecovery();
    m_recoveryPath.clear();
    Q_EMIT recoveryChanged();
    Q_EMIT sessionChanged();
    return ok;
}

void ExplorerFiles::discardRecovery()
{
    m_autosave->discardRecovery();
    m_recoveryPath.clear();
    Q_EMIT recoveryChanged();
}

void ExplorerFiles::finishSession()
{
    m_autosave->finish();
}

} // namespace cs::app
