#include "explorercontroller.h"

#include "canvas/canvasscenesource.h"
#include "explorerengine.h"
#include "figure/figure.h"
#include "inspector/connectionsmodel.h"
#include "inspector/featurecard.h"
#include "jobqueue.h"
#include "session/sessionfile.h" // pruneStateToGraph
#include "session/settings.h"

#include <cs/error.h>
#include <cs/graph_paths.h>

#include <QCoreApplication>
#include <QUndoCommand>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <tuple>
#include <unordered_set>

namespace cs::app {

namespace {

// The scores a graph file records under metadata.extra.scores.<part> (the CLI writes "full" and
// "pruned"; graph::scoresMetadata), or none when they are missing or not three finite numbers.
std::optional<cs::graph::Scores> fileScores(const nlohmann::json& extra, const char* part)
{
    const auto scores = extra.find("scores");
    if (scores == extra.end() || !scores->is_object())
        return std::nullopt;
    const auto it = scores->find(part);
    if (it == scores->end() || !it->is_object())
        return std::nullopt;
    const auto number = [&](const char* key) -> std::optional<double> {
        const auto v = it->find(key);
        if (v == it->end() || !v->is_number() || !std::isfinite(v->get<double>()))
            return std::nullopt;
        return v->get<double>();
    };
    const auto replacement = number("replacement"), completeness = number("completeness"),
               corrected = number("corrected_completeness");
    if (!replacement || !completeness || !corrected)
        return std::nullopt;
    cs::graph::Scores s;
    s.replacement = *replacement;
    s.completeness = *completeness;
    s.correctedCompleteness = *corrected;
    return s;
}

// Undo merge ids: consecutive edits of one slider collapse into one undo step.
constexpr int kMergeNodeThreshold = 1;
constexpr int kMergeEdgeThreshold = 2;

int64_t countTrue(const std::vector<bool>& mask)
{
    return std::count(mask.begin(), mask.end(), true);
}

bool contains(const std::vector<std::string>& list, const std::string& value)
{
    return std::find(list.begin(), list.end(), value) != list.end();
}

QString qs(const std::string& s)
{
    return QString::fromStdString(s);
}

} // namespace

// One edit: the whole state before and after. mergeWith joins a run of slider moves.
class StateCommand : public QUndoCommand {
public:
    StateCommand(ExplorerController* controller, ExplorerState before, ExplorerState after, const QString& text,
        int mergeId, quint64 gesture)
        : QUndoCommand(text)
        , m_controller(controller)
        , m_before(std::move(before))
        , m_after(std::move(after))
        , m_mergeId(mergeId)
        , m_gesture(gesture)
    {
    }
    void undo() override { m_controller->applyState(m_before); }
    void redo() override { m_controller->applyState(m_after); }
    int id() const override { return m_mergeId > 0 ? m_mergeId : -1; }
    bool mergeWith(const QUndoCommand* other) override
    {
        // One drag of one slider is one step; the next drag (a new gesture) is another.
        const auto* next = static_cast<const StateCommand*>(other);
        if (next->m_gesture != m_gesture)
            return false;
        m_after = next->m_after;
        return true;
    }

private:
    ExplorerController* m_controller;
    ExplorerState m_before;
    ExplorerState m_after;
    int m_mergeId;
    quint64 m_gesture;
};

ExplorerController::ExplorerController(EngineWorker& worker, QObject* parent, const QString& autosaveFolder)
    : QObject(parent)
    , m_worker(worker)
    , m_resources(std::make_shared<ExplorerResources>())
    , m_graphviz(std::make_unique<JobQueue>("cs-graphviz"))
    , m_cards(std::make_unique<JobQueue>("cs-cards"))
    , m_subgraphList(this)
{
    m_mainScene = new CanvasSceneSource(this);
    m_subgraphScene = new CanvasSceneSource(this);
    m_inputs = new ConnectionsModel(this);
    m_inputs->setDirection(ConnectionsModel::Inputs);
    m_outputs = new ConnectionsModel(this);
    m_outputs->setDirection(ConnectionsModel::Outputs);
    const auto labels = [this](int64_t layer, int64_t feature) {
        const std::string key = labelKey(graphBasis(), layer, feature);
        if (auto it = m_state.labels.find(key); it != m_state.labels.end())
            return qs(it->second);
        return qs(storeCaption(layer, feature)); // the store's label, else the card's description
    };
    m_inputs->setLabelFunction(labels);
    m_outputs->setLabelFunction(labels);
    m_card = new FeatureCard(this);
    connect(m_card, &FeatureCard::labelEdited, this, [this](const QString& label) {
        if (m_loneFeature) { // a card shown on its own: the label is the feature's all the same
            labelFeature(m_loneFeature->first, m_loneFeature->second, label);
            m_card->setLabel(label.trimmed());
        } else {
            setLabel(selectedId(), label);
        }
    });

    m_settings = new ExplorerSettings(nullptr, this);
    m_state.nodeThreshold = m_settings->nodeThreshold();
    m_state.edgeThreshold = m_settings->edgeThreshold();
    connect(m_settings, &ExplorerSettings::themeChanged, this, [this] {
        if (m_graph) {
            rebuildMainScene();
            rebuildSubgraph();
        }
    });

    m_interventions = new ExplorerInterventions(*this);
    m_validation = new ExplorerValidation(*this);
    m_weights = new ExplorerWeights(*this);
    // Files after the settings: the autosave's interval is one of them.
    m_files = new ExplorerFiles(*this, autosaveFolder);
    m_neurons = new ExplorerNeurons(*this);

    connect(&m_undo, &QUndoStack::canUndoChanged, this, &ExplorerController::undoChanged);
    connect(&m_undo, &QUndoStack::canRedoChanged, this, &ExplorerController::undoChanged);
    connect(&m_undo, &QUndoStack::indexChanged, this, [this] {
        m_files->markDirty();
        Q_EMIT undoChanged();
    });
    connect(&m_undo, &QUndoStack::cleanChanged, m_files, &ExplorerFiles::sessionChanged);
}

ExplorerController::~ExplorerController()
{
    // The Graphviz and card threads first: their jobs post back to this object.
    m_graphviz.reset();
    m_cards.reset();
}

void ExplorerController::waitForIdle()
{
    // A Graphviz result may queue engine work and the reverse: settle both.
    for (int round = 0; round < 4; ++round) {
        m_worker.waitForIdle();
        m_graphviz->waitForIdle();
        m_cards->waitForIdle();
        QCoreApplication::processEvents();
    }
}

// ---------------------------------------------------------------------------------------------
// Resources and tracing

void ExplorerController::onModelOpened(const QString& modelFolder, const QString& prompt)
{
    if (modelFolder != m_modelFolder) {
        // Another model: its own shipped set and store.
        m_transcoderName = QStringLiteral("clt");
        m_storePath.clear();
    }
    m_modelFolder = modelFolder;
    m_pendingPrompt = prompt;
    loadResourcesJob();
}

void ExplorerController::openTranscoders(const QString& folderOrName)
{
    m_transcoderName = ExplorerFiles::localPath(folderOrName);
    m_storePath.clear();
    loadResourcesJob();
}

void ExplorerController::openFeatureStore(const QString& path)
{
    m_storePath = ExplorerFiles::localPath(path);
    loadResourcesJob();
}

void ExplorerController::loadResourcesJob()
{
    m_ready = false;
    Q_EMIT resourcesChanged();
    auto resources = m_resources;
    const std::string transcoder = m_transcoderName.toStdString();
    const std::string storePath = m_storePath.toStdString();
    struct Loaded {
        ResourcesInfo info;
        std::shared_ptr<const std::vector<std::string>> vocabulary;
    };
    m_worker.request<Loaded>(
        QStringLiteral("explorer-resources"),
        [resources, transcoder, storePath](EngineState& state) {
            auto loaded = std::make_shared<Loaded>();
            loaded->info
                = loadResources(*resources, state.model ? state.model->model() : nullptr, transcoder, storePath);
            if (resources->store)
                loaded->vocabulary = std::make_shared<const std::vector<std::string>>(resources->store->vocabulary());
            resources->vocabulary = loaded->vocabulary;
            return std::shared_ptr<const Loaded>(loaded);
        },
        [this](std::shared_ptr<const Loaded> loaded) {
            const ResourcesInfo& info = loaded->info;
            m_ready = true;
            m_loadedTranscoder = m_transcoderName;
            m_loadedStore = m_storePath;
            m_loadedModel = m_modelFolder;
            m_hasStore = !info.storePath.empty();
            m_vocabulary = loaded->vocabulary;
            m_featuresPerLayer = info.featuresPerLayer;
            openCardStore(info.storePath);
            m_weights->resourcesReloaded();
            m_resourcesText = QStringLiteral("%1 · %2 features per layer · %3")
                                  .arg(qs(info.transcoderName).toUpper())
                                  .arg(info.featuresPerLayer)
                                  .arg(m_hasStore ? QStringLiteral("feature store: %1 features").arg(info.storeFeatures)
                                          : info.storeProblem.empty()
                                          ? QStringLiteral("no feature store")
                                          : QStringLiteral("feature store unreadable: %1").arg(qs(info.storeProblem)));
            Q_EMIT resourcesChanged();
            if (!info.storeProblem.empty())
                setMessage(
                    QStringLiteral("The feature store could not be opened: %1").arg(qs(info.storeProblem)), true);
            if (!m_pendingPrompt.isEmpty())
                trace(m_pendingPrompt);
            else if (m_graph)
                requestContext();
            m_pendingPrompt.clear();
        },
        [this](const QString& message) {
            // The set before (if any) is still loaded: loadResources replaces nothing on failure.
            const bool userChoice = m_transcoderName != QLatin1String("clt") || !m_storePath.isEmpty();
            m_ready = !m_loadedTranscoder.isEmpty() && m_loadedModel == m_modelFolder;
            if (m_ready) {
                m_transcoderName = m_loadedTranscoder;
                m_storePath = m_loadedStore;
            } else {
                // Not an error of the user's: a model without transcoders still shows its output.
                m_resourcesText = QStringLiteral("no transcoders: %1").arg(message);
            }
            Q_EMIT resourcesChanged();
            if (userChoice)
                setMessage(message, true);
            // The neuron basis needs no transcoders: the prompt waiting for them is traced.
            if (m_neurons->tracesNeurons() && !m_pendingPrompt.isEmpty()) {
                const QString prompt = m_pendingPrompt;
                m_pendingPrompt.clear();
                trace(prompt);
            }
        });
}

void ExplorerController::setTracing(bool tracing)
{
    if (m_tracing == tracing)
        return;
    m_tracing = tracing;
    Q_EMIT tracingChanged();
}

void ExplorerController::trace(const QString& prompt)
{
    // A neuron trace needs the model only; the worker runs jobs in order, so one posted while
    // the transcoders load runs after them.
    const NeuronTraceSpec neurons = m_neurons->traceSpec();
    if (!m_ready && !neurons.on) {
        m_pendingPrompt = prompt; // traced once the transcoders are in
        return;
    }
    if (m_cancel)
        m_cancel->store(true); // a newer trace replaces the running one
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    m_cancel = cancel;
    m_traceProgress = 0;
    m_traceStage = QStringLiteral("tokenizing");
    Q_EMIT traceProgressChanged();
    setTracing(true);

    TraceRequest request;
    request.prompt = prompt.toStdString();
    request.maxFeatureNodes = m_settings->maxFeatureNodes() > 0 ? m_settings->maxFeatureNodes() : -1;
    request.neurons = neurons;
    // Progress and stage reports come from the worker; they reach the UI thread and count only
    // while this trace is the current one.
    QPointer<ExplorerController> guard(this);
    const auto report = [guard, cancel](double fraction, const QString& stage) {
        QMetaObject::invokeMethod(
            guard.data(),
            [guard, cancel, fraction, stage] {
                if (!guard || guard->m_cancel != cancel)
                    return;
                if (fraction >= 0)
                    guard->m_traceProgress = fraction;
                if (!stage.isEmpty())
                    guard->m_traceStage = stage;
                Q_EMIT guard->traceProgressChanged();
            },
            Qt::QueuedConnection);
    };
    request.progress = [report, cancel](double fraction) {
        report(fraction, {});
        return !cancel->load();
    };
    request.stage = [report](const char* text) { report(-1, QString::fromUtf8(text)); };
    auto resources = m_resources;
    m_worker.request<TraceOutput>(
        QStringLiteral("explorer-trace"),
        [resources, request](EngineState& state) {
            return std::make_shared<const TraceOutput>(request.neurons.on
                    ? traceNeuronGraph(*resources, state.model ? state.model->model() : nullptr, request)
                    : traceGraph(*resources, request));
        },
        [this, cancel](std::shared_ptr<const TraceOutput> out) {
            if (m_cancel == cancel) {
                m_cancel.reset();
                setTracing(false);
            }
            // Labels belong to features and always carry over. Re-tracing the same prompt (after
            // opening other transcoders, or with another feature cap) keeps the rest of the work
            // on the nodes the new graph still has.
            // Node ids say layer, unit and position, not the basis: pins, supernodes and
            // interventions carry over only between graphs of one basis (a neuron's id may be a
            // transcoder feature's); labels are keyed by basis and always do.
            const bool sameBasis = m_graph && m_graph->metadata.basis == out->graph->metadata.basis;
            ExplorerState state;
            if (sameBasis && m_graph->metadata.prompt == out->graph->metadata.prompt) {
                state = m_state;
                pruneStateToGraph(state, *out->graph);
            } else {
                state.nodeThreshold = m_settings->nodeThreshold();
                state.edgeThreshold = m_settings->edgeThreshold();
            }
            state.labels = m_state.labels; // keyed by basis (labelKey): every basis's carry over
            m_contextReady = true;
            const std::string& basis = out->graph->metadata.basis;
            m_traceText
                = QStringLiteral("traced %1 tokens in %2 ms · %3exact to %4 (relative)")
                      .arg(out->graph->nPositions())
                      .arg(out->traceMs, 0, 'f', 0)
                      .arg(basis.empty()
                              ? QString()
                              : QStringLiteral("%1 %2s · ")
                                    .arg(out->graph->ranges().features.end - out->graph->ranges().features.begin)
                                    .arg(qs(unitNoun(basis))))
                      .arg(out->maxRelResidual, 0, 'g', 2);
            if (!basis.empty())
                openUnitCardStore(out->unitStorePath, out->unitStoreProblem);
            m_lastTraceMs = out->traceMs;
            m_lastCaptionMs = out->captionMs;
            m_files->forgetSessionPath();
            setGraph(out->graph, out->pruner, state, out->storeLabels, out->autoCaptions);
            Q_EMIT traceFinished(true);
        },
        [this, cancel](const QString& message) {
            if (m_cancel == cancel) {
                m_cancel.reset();
                setTracing(false);
            }
            const bool cancelled = cancel->load();
            setMessage(cancelled ? QStringLiteral("Trace cancelled") : message, !cancelled);
            if (!cancelled)
                Q_EMIT errorOccurred(message);
            Q_EMIT traceFinished(false);
        });
}

void ExplorerController::cancelTrace()
{
    if (m_cancel)
        m_cancel->store(true);
}

void ExplorerController::requestContext()
{
    if (!m_graph || (!m_ready && !unitGraph()))
        return;
    auto resources = m_resources;
    auto graph = m_graph;
    struct Prepared {
        bool ok = false;
        std::map<std::string, std::string> storeLabels, autoCaptions;
        std::string unitStorePath, unitStoreProblem;
    };
    m_worker.request<Prepared>(
        QStringLiteral("explorer-context"),
        [resources, graph](EngineState& state) {
            auto prepared = std::make_shared<Prepared>();
            auto model = state.model ? state.model->model() : nullptr;
            prepared->ok = prepareContext(*resources, *graph, model);
            if (graph->metadata.basis == "neurons" && model)
                prepared->unitStorePath = openUnitStore(*resources, *model, "neurons", &prepared->unitStoreProblem);
            readCaptions(*resources, *graph, prepared->storeLabels, prepared->autoCaptions);
            return std::shared_ptr<const Prepared>(prepared);
        },
        [this, graph](std::shared_ptr<const Prepared> prepared) {
            if (graph != m_graph)
                return;
            m_contextReady = prepared->ok;
            if (unitGraph())
                openUnitCardStore(prepared->unitStorePath, prepared->unitStoreProblem);
            m_storeLabels = prepared->storeLabels;
            m_autoCaptions = prepared->autoCaptions;
            Q_EMIT graphChanged();
            // Captions and the interventions' results can show now.
            rebuildMainScene();
            rebuildSubgraph();
            refreshLists();
            m_interventions->requestOutcome();
        },
        [this](const QString& message) {
            m_contextReady = false;
            setMessage(QStringLiteral("Interventions are off for this graph: %1").arg(message), true);
            Q_EMIT graphChanged();
        });
}

// ---------------------------------------------------------------------------------------------
// The graph and the state

void ExplorerController::setGraph(std::shared_ptr<const cs::graph::Graph> graph,
    std::shared_ptr<const cs::graph::Pruner> pruner, const ExplorerState& state,
    std::map<std::string, std::string> storeLabels, std::map<std::string, std::string> autoCaptions)
{
    m_graph = std::move(graph);
    m_pruner = std::move(pruner);
    m_storeLabels = std::move(storeLabels);
    m_autoCaptions = std::move(autoCaptions);
    m_index.clear();
    for (int64_t i = 0; i < m_graph->size(); ++i)
        m_index.emplace(cs::graph::nodeId(*m_graph, i), i);
    m_edgeCount = int(m_graph->adjacency.nnz());
    if (m_collapseEmptyPositions < 0)
        Q_EMIT collapseEmptyPositionsChanged(); // automatic: follows the prompt's length
    m_scores = m_pruner->scores();
    requestPathLengths();
    m_fileScores = fileScores(m_graph->metadata.extra, "full");
    m_filePrunedScores = fileScores(m_graph->metadata.extra, "pruned");
    m_checked.clear();
    m_pruned.reset();
    // What the panels showed belongs to the graph before.
    m_interventions->clearOutcome();
    m_validation->clear();
    m_state = state;
    m_inputs->setGraph(m_graph, nullptr);
    m_outputs->setGraph(m_graph, nullptr);
    m_undo.clear();
    m_undo.setClean();
    m_files->markDirty();
    Q_EMIT graphChanged();
    applyState(state);
    m_neurons->onGraphChanged();
    Q_EMIT m_files->sessionChanged();
}

int64_t ExplorerController::indexOf(const std::string& id) const
{
    const auto it = m_index.find(id);
    return it == m_index.end() ? -1 : it->second;
}

bool ExplorerController::isPinned(const std::string& id) const
{
    return !id.empty() && contains(m_state.pinned, id);
}

void ExplorerController::commit(const ExplorerState& after, const QString& text, int mergeId)
{
    if (after == m_state)
        return;
    m_undo.push(new StateCommand(this, m_state, after, text, mergeId, m_gesture));
}

void ExplorerController::applyState(const ExplorerState& state)
{
    const ExplorerState before = m_state;
    m_state = state;
    // The view follows the canvas, not the undo stack: undo and redo leave it where it is.
    m_state.view = before.view;
    if (!m_graph) {
        Q_EMIT stateChanged();
        return;
    }
    const bool thresholds = !m_pruned || before.nodeThreshold != state.nodeThreshold
        || before.edgeThreshold != state.edgeThreshold || before.asFile != state.asFile;
    if (thresholds)
        reprune();
    if (thresholds || before.hidden != state.hidden)
        updateSearch(); // hits count what the canvas shows
    rebuildMainScene();
    const bool subgraph = thresholds || before.pinned != state.pinned || before.supernodes != state.supernodes
        || before.labels != state.labels || before.interventions != state.interventions || !m_subgraphGeneration;
    if (subgraph)
        rebuildSubgraph();
    if (before.selected != state.selected || thresholds || before.labels != state.labels
        || before.pinned != state.pinned)
        updateSelection();
    if (before.labels != state.labels)
        m_weights->refreshCaptions();
    if (before.interventions != state.interventions || before.supernodes != state.supernodes
        || !m_interventions->hasOutcome() || thresholds)
        m_interventions->requestOutcome();
    m_interventions->syncRegime();
    refreshLists();
    Q_EMIT stateChanged();
}

void ExplorerController::reprune()
{
    if (m_state.asFile) {
        // What the file holds, as it holds it: its writer pruned it already.
        cs::graph::PruneResult all;
        all.nodeMask.assign(size_t(m_graph->size()), true);
        all.edgeMask.assign(size_t(m_graph->adjacency.nnz()), true);
        all.cumulativeInfluence = m_pruner->cumulativeInfluence();
        m_pruned = std::make_shared<const cs::graph::PruneResult>(std::move(all));
    } else {
        m_pruned = std::make_shared<const cs::graph::PruneResult>(
            m_pruner->prune(m_state.nodeThreshold, m_state.edgeThreshold));
    }
    m_keptNodes = int(countTrue(m_pruned->nodeMask));
    m_keptEdges = int(m_pruned->edgeCount());
    m_prunedScores = m_state.asFile && m_filePrunedScores ? *m_filePrunedScores : m_pruner->scoresOf(*m_pruned);
    m_inputs->setGraph(m_graph, m_pruned);
    m_outputs->setGraph(m_graph, m_pruned);
    Q_EMIT pruneChanged();
}

const cs::graph::Scores& ExplorerController::graphScores() const
{
    return m_state.asFile && m_fileScores ? *m_fileScores : m_scores;
}

std::string ExplorerController::labelOf(int64_t index) const
{
    if (!m_graph || index < 0 || index >= m_graph->size())
        return {};
    const auto& node = m_graph->nodes[size_t(index)];
    if (node.kind != cs::graph::NodeKind::Feature)
        return node.label;
    if (auto it = m_state.labels.find(labelKey(graphBasis(), node.layer, node.feature)); it != m_state.labels.end())
        return it->second;
    const std::string key = featureKey(node.layer, node.feature);
    if (!node.label.empty())
        return node.label;
    if (auto it = m_storeLabels.find(key); it != m_storeLabels.end())
        return it->second;
    return {};
}

std::string ExplorerController::storeCaption(int64_t layer, int64_t feature) const
{
    const std::string key = featureKey(layer, feature);
    if (auto it = m_storeLabels.find(key); it != m_storeLabels.end())
        return it->second;
    if (auto it = m_autoCaptions.find(key); it != m_autoCaptions.end())
        return it->second;
    return {};
}

void ExplorerController::setCanvasAspect(double aspect)
{
    if (!(aspect > 0) || !std::isfinite(aspect))
        return;
    if (m_viewAspect > 0 && std::abs(aspect / m_viewAspect - 1) < 0.05)
        return; // a few pixels: the layout stays
    m_viewAspect = aspect;
    if (m_graph && m_pruned)
        rebuildMainScene();
}

bool ExplorerController::collapseEmptyPositions() const
{
    if (m_collapseEmptyPositions >= 0)
        return m_collapseEmptyPositions == 1;
    return m_graph && m_graph->nPositions() > kCollapseAfterPositions;
}

void ExplorerController::setCollapseEmptyPositions(bool on)
{
    if (m_collapseEmptyPositions == int(on))
        return;
    m_collapseEmptyPositions = int(on);
    Q_EMIT collapseEmptyPositionsChanged();
    if (m_graph && m_pruned)
        rebuildMainScene();
}

QString ExplorerController::captionFor(const QString& id) const
{
    const int64_t index = indexOf(id.toStdString());
    return index < 0 ? QString() : qs(captionOf(index));
}

std::string ExplorerController::captionOf(int64_t index) const
{
    const std::string label = labelOf(index);
    if (!label.empty())
        return label;
    const auto& node = m_graph->nodes[size_t(index)];
    return node.kind == cs::graph::NodeKind::Feature ? storeCaption(node.layer, node.feature) : std::string();
}

void ExplorerController::rebuildMainScene()
{
    SceneStyle style = sceneStyle();
    style.labelFunction = [this](int64_t layer, int64_t feature) { return qs(storeCaption(layer, feature)); };
    m_mainScene->setScene(
        buildGraphScene(*m_graph, *m_pruned, m_state, style, m_searchHitCount > 0 ? &m_searchHits : nullptr));
}

SceneStyle ExplorerController::sceneStyle() const
{
    SceneStyle style;
    style.minColumnWidth = 40;
    // The canvas's shape: the layout spreads the layers to fill it.
    style.viewAspect = m_viewAspect;
    style.collapseEmptyPositions = collapseEmptyPositions();
    if (m_settings->theme() == QLatin1String("dark")) {
        style.look.selectedRing = qRgb(0xf2, 0xf2, 0xf2);
        style.positiveEdge = qRgba(0x5d, 0xa5, 0xe8, 0xc0);
        style.negativeEdge = qRgba(0xef, 0x6a, 0x6a, 0xc0);
    }
    return style;
}

FigureOptions ExplorerController::figureOptions() const
{
    FigureOptions options;
    // Labels (the store's) and automatic descriptions apart: a figure shows them differently.
    options.featureLabel = [this](int64_t layer, int64_t feature) {
        const auto it = m_storeLabels.find(featureKey(layer, feature));
        return it == m_storeLabels.end() ? std::string() : it->second;
    };
    options.autoCaption = [this](int64_t layer, int64_t feature) {
        const auto it = m_autoCaptions.find(featureKey(layer, feature));
        return it == m_autoCaptions.end() ? std::string() : it->second;
    };
    options.scores = QStringLiteral("replacement %1 · completeness %2")
                         .arg(graphScores().replacement, 0, 'f', 2)
                         .arg(graphScores().completeness, 0, 'f', 2)
                         .toStdString();
    return options;
}

void ExplorerController::rebuildSubgraph()
{
    // Scores of the pinned subgraph (what it leaves out counts as unexplained), and
    // Neuronpedia's subgraph score of it for comparison.
    std::vector<bool> pinned(size_t(m_graph->size()), false);
    for (const std::string& id : m_state.pinned)
        if (int64_t i = indexOf(id); i >= 0)
            pinned[size_t(i)] = true;
    m_subgraphScores = m_state.pinned.empty() ? cs::graph::Scores {} : m_pruner->subgraphScores(pinned, m_pruned.get());
    m_neuronpediaSubgraphScores = m_state.pinned.empty()
        ? cs::graph::Scores {}
        : cs::graph::neuronpediaSubgraphScores(*m_graph, pinned, m_pruned.get());
    Q_EMIT subgraphChanged();

    const quint64 generation = ++m_subgraphGeneration;
    if (m_state.pinned.empty()) {
        m_subgraphScene->setScene(buildLayoutScene({}, {}, sceneStyle()));
        return;
    }
    // The figure is built here (it reads the graph and the state), laid out by Graphviz on its
    // own thread, and shown when the newest layout comes back.
    auto spec = std::make_shared<const FigureSpec>(figureSpec(true));
    QPointer<ExplorerController> guard(this);
    m_graphviz->post("layout", [guard, spec, generation] {
        std::shared_ptr<const FigureLayout> layout;
        QString error;
        try {
            layout = std::make_shared<const FigureLayout>(layoutFigure(*spec));
        } catch (const std::exception& e) {
            error = QString::fromStdString(e.what());
        }
        QMetaObject::invokeMethod(
            guard.data(),
            [guard, spec, layout, error, generation] {
                if (!guard || generation != guard->m_subgraphGeneration)
                    return;
                if (!layout) {
                    guard->setMessage(QStringLiteral("Subgraph layout failed: %1").arg(error), true);
                    return;
                }
                guard->showSubgraphLayout(*spec, *layout);
            },
            Qt::QueuedConnection);
    });
}

void ExplorerController::showSubgraphLayout(const FigureSpec& spec, const FigureLayout& layout)
{
    const SceneStyle style = sceneStyle();
    std::vector<CanvasNode> nodes;
    std::map<std::string, int32_t> slots;
    for (const FigureLayoutNode& placed : layout.nodes) {
        const int at = spec.indexOf(placed.id);
        if (at < 0)
            continue;
        const FigureNode& f = spec.nodes[size_t(at)];
        CanvasNode node;
        node.id = f.id; // a graph node id, or "supernode:NAME"
        node.graphIndex = f.kind == FigureNodeKind::Supernode ? -1 : indexOf(f.id);
        node.x = placed.x;
        node.y = placed.y;
        node.radius = std::max(6.0, std::min(placed.width, placed.height) * 0.25);
        switch (f.kind) {
        case FigureNodeKind::Feature:
            node.shape = NodeShape::Circle;
            break;
        case FigureNodeKind::Error:
            node.shape = NodeShape::Diamond;
            break;
        case FigureNodeKind::Embedding:
            node.shape = NodeShape::Square;
            break;
        case FigureNodeKind::Logit:
            node.shape = NodeShape::Square;
            node.fill = style.logitFill; // the main canvas's logit colour, not the embeddings'
            break;
        case FigureNodeKind::Supernode:
            node.shape = NodeShape::RoundedBox;
            node.radius = std::max(12.0, placed.height * 0.4);
            break;
        }
        node.caption = qs(f.autoLabel.empty() ? f.label : f.label + "\n" + f.autoLabel);
        if (!f.annotation.empty())
            node.caption += QStringLiteral(" [%1]").arg(qs(f.annotation));
        node.tooltip = qs(f.label);
        if (f.intervened)
            node.flags |= NodeIntervened;
        if (node.id == m_state.selected)
            node.flags |= NodeSelected;
        slots[f.id] = int32_t(nodes.size());
        nodes.push_back(std::move(node));
    }
    std::vector<LayoutEdge> edges;
    for (const FigureEdge& e : spec.edges) {
        const auto s = slots.find(e.source);
        const auto t = slots.find(e.target);
        if (s != slots.end() && t != slots.end())
            edges.push_back({ s->second, t->second, float(e.weight) });
    }
    m_subgraphScene->setScene(buildLayoutScene(std::move(nodes), edges, style));
}

void ExplorerController::updateSelection()
{
    if (!m_state.selected.empty())
        m_loneFeature.reset(); // a node was selected: the card is its
    const int64_t index = indexOf(m_state.selected);
    m_inputs->setNode(int(index));
    m_outputs->setNode(int(index));
    Q_EMIT selectionChanged();
    requestCard();
}

void ExplorerController::requestPathLengths()
{
    const quint64 generation = ++m_pathGeneration;
    m_meanPathLength = 0;
    m_pathLengthText.clear();
    Q_EMIT pathLengthsChanged();
    std::shared_ptr<const cs::graph::Graph> graph = m_graph;
    QPointer<ExplorerController> guard(this);
    m_cards->post("path-lengths", [guard, graph, generation] {
        cs::graph::PathLengths paths;
        try {
            paths = cs::graph::pathLengths(*graph);
        } catch (const std::exception&) {
            return; // a graph Pruner accepted is never refused here; nothing to show otherwise
        }
        QStringList shares;
        for (size_t l = 1; l < paths.cumulative.size(); ++l)
            shares << QStringLiteral("≤%1: %2").arg(l).arg(
                paths.total > 0 ? paths.cumulative[l] / paths.total : 0.0, 0, 'f', 2);
        const QString text = QStringLiteral("share by length %1").arg(shares.join(QStringLiteral(", ")));
        QMetaObject::invokeMethod(
            guard.data(),
            [guard, generation, mean = paths.meanLength, text] {
                if (!guard || generation != guard->m_pathGeneration)
                    return;
                guard->m_meanPathLength = mean;
                guard->m_pathLengthText = text;
                Q_EMIT guard->pathLengthsChanged();
            },
            Qt::QueuedConnection);
    });
}

void ExplorerController::openCardStore(const std::string& path)
{
    auto reader = m_cardReader;
    m_cards->post("open-store", [reader, path] {
        reader->store.reset();
        if (path.empty())
            return;
        try {
            reader->store = cs::features::FeatureStore::open(path);
        } catch (const std::exception&) {
            // The worker opened the same file; a failure here leaves cards to say there is none.
        }
    });
}

void ExplorerController::openUnitCardStore(const std::string& path, const std::string& problem)
{
    m_neurons->setStore(qs(path), qs(problem));
    auto reader = m_cardReader;
    m_cards->post("open-unit-store", [reader, path] {
        if (path == reader->unitPath && (reader->unitStore || path.empty()))
            return;
        reader->unitStore.reset();
        reader->unitVocabulary.reset();
        reader->unitPath = path;
        if (path.empty())
            return;
        try {
            reader->unitStore = cs::features::FeatureStore::open(path);
            reader->unitVocabulary = std::make_shared<const std::vector<std::string>>(reader->unitStore->vocabulary());
        } catch (const std::exception&) {
            // The worker opened the same file; a failure here leaves cards to say there is none.
        }
    });
}

void ExplorerController::requestCard()
{
    const quint64 generation = ++m_cardGeneration;
    const int64_t index = indexOf(m_state.selected);
    int64_t layer = -1, feature = -1;
    double activation = std::numeric_limits<double>::quiet_NaN();
    if (index >= 0 && m_graph->nodes[size_t(index)].kind == cs::graph::NodeKind::Feature) {
        const auto& node = m_graph->nodes[size_t(index)];
        layer = node.layer;
        feature = node.feature;
        activation = node.activation;
    } else if (index < 0 && m_loneFeature) {
        std::tie(layer, feature) = *m_loneFeature;
    }
    // A unit graph's node is one of the model's own units: its card comes from the unit store and
    // it has no transcoder partners or weights.
    const bool unit = index >= 0 && unitGraph();
    if (layer != m_cardLayer || feature != m_cardFeature) {
        m_cardLayer = layer;
        m_cardFeature = feature;
        m_weights->setFeature(unit ? -1 : layer, unit ? -1 : feature);
    }
    Q_EMIT cardFeatureChanged(); // the caption may have changed with a label
    if (layer < 0 || (unit ? !m_neurons->hasUnitStore() || m_graph->metadata.basis != "neurons" : !m_hasStore)) {
        m_card->clear();
        return;
    }
    auto reader = m_cardReader;
    QPointer<ExplorerController> guard(this);
    m_cards->post("card", [guard, reader, layer, feature, activation, generation, unit] {
        std::shared_ptr<const cs::features::FeatureRecord> record;
        std::shared_ptr<const std::vector<std::string>> vocabulary = unit ? reader->unitVocabulary : nullptr;
        QString error;
        try {
            const auto& store = unit ? reader->unitStore : reader->store;
            if (store && store->has(layer, feature))
                record = std::make_shared<const cs::features::FeatureRecord>(store->card(layer, feature));
        } catch (const std::exception& e) {
            error = QString::fromStdString(e.what());
        }
        QMetaObject::invokeMethod(
            guard.data(),
            [guard, record, vocabulary, error, layer, feature, activation, generation, unit] {
                if (!guard || generation != guard->m_cardGeneration)
                    return; // another node was selected since
                if (!error.isEmpty()) {
                    guard->m_card->clear();
                    guard->setMessage(error, true);
                    return;
                }
                static const std::vector<std::string> none;
                // A unit card reads its own store's token texts.
                const auto& tokens = vocabulary ? vocabulary : guard->m_vocabulary;
                guard->m_card->setNoun(unit ? qs(unitNoun(guard->graphBasis())) : QString());
                guard->m_card->setRecord(record, activation, tokens ? *tokens : none);
                const std::string key = labelKey(unit ? guard->graphBasis() : std::string(), layer, feature);
                if (auto it = guard->m_state.labels.find(key); it != guard->m_state.labels.end())
                    guard->m_card->setLabel(qs(it->second));
                Q_EMIT guard->cardFeatureChanged(); // its title carries the label
            },
            Qt::QueuedConnection);
    });
}

QString ExplorerController::nodeTitle(int64_t index) const
{
    if (!m_graph || index < 0)
        return {};
    const auto& node = m_graph->nodes[size_t(index)];
    switch (node.kind) {
    case cs::graph::NodeKind::Feature:
        if (unitGraph())
            return QStringLiteral("%1 L%2 #%3 at %4")
                .arg(qs(unitNoun(m_graph->metadata.basis)))
                .arg(node.layer)
                .arg(node.feature)
                .arg(node.position);
        return QStringLiteral("L%1 #%2 at %3").arg(node.layer).arg(node.feature).arg(node.position);
    case cs::graph::NodeKind::Error:
        if (unitGraph())
            return QStringLiteral("Other units L%1 at %2").arg(node.layer).arg(node.position);
        return QStringLiteral("Error L%1 at %2").arg(node.layer).arg(node.position);
    case cs::graph::NodeKind::Embedding:
        return QStringLiteral("Embedding \"%1\" at %2").arg(qs(node.token)).arg(node.position);
    case cs::graph::NodeKind::Logit:
        return QStringLiteral("Logit \"%1\" (p = %2)").arg(qs(node.token)).arg(node.tokenProb, 0, 'f', 3);
    }
    return {};
}

QString ExplorerController::graphPrompt() const
{
    return m_graph ? qs(m_graph->metadata.prompt) : QString();
}

QString ExplorerController::selectedKind() const
{
    const int64_t i = indexOf(m_state.selected);
    if (i < 0)
        return {};
    // A unit graph's feature nodes are the model's units: "neuron" (or "unit" for other kinds).
    if (unitGraph() && m_graph->nodes[size_t(i)].kind == cs::graph::NodeKind::Feature)
        return m_graph->metadata.basis == "neurons" ? QStringLiteral("neuron") : QStringLiteral("unit");
    if (unitGraph() && m_graph->nodes[size_t(i)].kind == cs::graph::NodeKind::Error)
        return QStringLiteral("other units"); // the layer's units that are not nodes
    return QString::fromLatin1(cs::graph::nodeKindName(m_graph->nodes[size_t(i)].kind));
}

QString ExplorerController::selectedTitle() const
{
    return nodeTitle(indexOf(m_state.selected));
}
QString ExplorerController::selectedLabel() const
{
    return qs(labelOf(indexOf(m_state.selected)));
}

int ExplorerController::selectedLayer() const
{
    const int64_t i = indexOf(m_state.selected);
    return i < 0 ? 0 : int(m_graph->nodes[size_t(i)].layer);
}

int ExplorerController::selectedPosition() const
{
    const int64_t i = indexOf(m_state.selected);
    return i < 0 ? 0 : int(m_graph->nodes[size_t(i)].position);
}

double ExplorerController::selectedActivation() const
{
    const int64_t i = indexOf(m_state.selected);
    return i < 0 ? 0 : m_graph->nodes[size_t(i)].activation;
}

double ExplorerController::selectedInfluence() const
{
    const int64_t i = indexOf(m_state.selected);
    return i < 0 || !m_pruner ? 0 : double(m_pruner->influenceOf(i));
}

double ExplorerController::selectedCumulativeShare() const
{
    const int64_t i = indexOf(m_state.selected);
    if (i < 0 || !m_pruner || size_t(i) >= m_pruner->cumulativeInfluence().size())
        return std::numeric_limits<double>::quiet_NaN();
    return double(m_pruner->cumulativeInfluence()[size_t(i)]);
}

// ---------------------------------------------------------------------------------------------
// Edits

void ExplorerController::select(const QString& id)
{
    ExplorerState next = m_state;
    next.selected = indexOf(id.toStdString()) >= 0 ? id.toStdString() : std::string();
    if (next.selected == m_state.selected)
        return;
    // Selecting is not an edit worth an undo step of its own, but it is part of the state a
    // session restores: apply without pushing.
    applyState(next);
    m_files->markDirty();
}

bool ExplorerController::showFeature(int layer, int feature)
{
    if (layer < 0 || feature < 0 || (m_featuresPerLayer > 0 && feature >= m_featuresPerLayer))
        return false;
    // Its most active node, when the graph holds the feature.
    int64_t best = -1;
    if (m_graph && !unitGraph()) // a unit graph's nodes are not the transcoder's features
        for (int64_t i = m_graph->ranges().features.begin; i < m_graph->ranges().features.end; ++i) {
            const auto& node = m_graph->nodes[size_t(i)];
            if (node.layer == layer && node.feature == feature
                && (best < 0 || std::abs(node.activation) > std::abs(m_graph->nodes[size_t(best)].activation)))
                best = i;
        }
    if (best >= 0) {
        m_loneFeature.reset();
        selectIndex(int(best));
        return true;
    }
    select(QString());
    m_loneFeature = std::make_pair(int64_t(layer), int64_t(feature));
    updateSelection();
    return true;
}

QString ExplorerController::cardTitle() const
{
    if (m_cardLayer < 0)
        return {};
    const bool unit = unitGraph() && !m_loneFeature;
    const QString title = unit
        ? QStringLiteral("%1 L%2 #%3").arg(qs(unitNoun(m_graph->metadata.basis))).arg(m_cardLayer).arg(m_cardFeature)
        : QStringLiteral("L%1 #%2").arg(m_cardLayer).arg(m_cardFeature);
    const std::string key = labelKey(unit ? graphBasis() : std::string(), m_cardLayer, m_cardFeature);
    if (auto it = m_state.labels.find(key); it != m_state.labels.end())
        return title + QStringLiteral(" · ") + qs(it->second);
    const QString label = m_card->hasRecord() && m_card->layer() == m_cardLayer && m_card->feature() == m_cardFeature
        ? m_card->label()
        : QString();
    return label.isEmpty() ? title : title + QStringLiteral(" · ") + label;
}

void ExplorerController::selectIndex(int index)
{
    if (m_graph && index >= 0 && index < m_graph->size())
        select(qs(cs::graph::nodeId(*m_graph, index)));
}

void ExplorerController::clickNode(const QString& id, int modifiers)
{
    if (modifiers & Qt::ControlModifier)
        togglePin(id);
    else if ((modifiers & Qt::ShiftModifier) && isPinned(id.toStdString()))
        setChecked(id, !contains(m_checked, id.toStdString())); // marks it for grouping
    else
        select(id);
}

void ExplorerController::togglePin(const QString& qid)
{
    const std::string id = qid.toStdString();
    if (indexOf(id) < 0)
        return;
    ExplorerState next = m_state;
    auto it = std::find(next.pinned.begin(), next.pinned.end(), id);
    if (it != next.pinned.end()) {
        next.pinned.erase(it);
        for (Supernode& s : next.supernodes)
            s.members.erase(std::remove(s.members.begin(), s.members.end(), id), s.members.end());
        next.supernodes.erase(std::remove_if(next.supernodes.begin(), next.supernodes.end(),
                                  [](const Supernode& s) { return s.members.empty(); }),
            next.supernodes.end());
        commit(next, QStringLiteral("Unpin %1").arg(nodeTitle(indexOf(id))));
    } else {
        next.pinned.push_back(id);
        commit(next, QStringLiteral("Pin %1").arg(nodeTitle(indexOf(id))));
    }
}

void ExplorerController::pinNodes(const QStringList& ids)
{
    ExplorerState next = m_state;
    for (const QString& q : ids) {
        const std::string id = q.toStdString();
        if (indexOf(id) >= 0 && !contains(next.pinned, id))
            next.pinned.push_back(id);
    }
    commit(next, QStringLiteral("Pin %1 nodes").arg(int(next.pinned.size() - m_state.pinned.size())));
}

void ExplorerController::unpinAll()
{
    ExplorerState next = m_state;
    next.pinned.clear();
    next.supernodes.clear();
    next.interventions.erase(std::remove_if(next.interventions.begin(), next.interventions.end(),
                                 [](const Intervention& i) { return supernodeOfTarget(i.target).has_value(); }),
        next.interventions.end());
    m_checked.clear();
    commit(next, QStringLiteral("Unpin all"));
    Q_EMIT checkedChanged();
}

void ExplorerController::hideNode(const QString& qid)
{
    const std::string id = qid.toStdString();
    if (indexOf(id) < 0 || contains(m_state.hidden, id))
        return;
    ExplorerState next = m_state;
    next.hidden.push_back(id);
    if (next.selected == id)
        next.selected.clear();
    commit(next, QStringLiteral("Hide %1").arg(nodeTitle(indexOf(id))));
}

void ExplorerController::showAllNodes()
{
    ExplorerState next = m_state;
    next.hidden.clear();
    commit(next, QStringLiteral("Show hidden nodes"));
}

void ExplorerController::setLabel(const QString& qid, const QString& label)
{
    const int64_t index = indexOf(qid.toStdString());
    if (index < 0 || m_graph->nodes[size_t(index)].kind != cs::graph::NodeKind::Feature)
        return;
    const auto& node = m_graph->nodes[size_t(index)];
    labelFeature(node.layer, node.feature, label, graphBasis());
    m_card->setLabel(qs(labelOf(index)));
}

void ExplorerController::labelFeature(int64_t layer, int64_t feature, const QString& label, const std::string& basis)
{
    ExplorerState next = m_state;
    const std::string key = labelKey(basis, layer, feature);
    const std::string text = label.trimmed().toStdString();
    if (text.empty())
        next.labels.erase(key);
    else
        next.labels[key] = text;
    commit(next, QStringLiteral("Label L%1 #%2").arg(layer).arg(feature));
    m_inputs->refreshLabels();
    m_outputs->refreshLabels();
}

void ExplorerController::setNodeThreshold(double threshold)
{
    ExplorerState next = m_state;
    next.nodeThreshold = std::clamp(threshold, 0.0, 1.0);
    next.asFile = false; // from now on the sliders prune what the file held
    commit(next, QStringLiteral("Node threshold %1").arg(next.nodeThreshold, 0, 'f', 2), kMergeNodeThreshold);
}

void ExplorerController::setEdgeThreshold(double threshold)
{
    ExplorerState next = m_state;
    next.edgeThreshold = std::clamp(threshold, 0.0, 1.0);
    next.asFile = false;
    commit(next, QStringLiteral("Edge threshold %1").arg(next.edgeThreshold, 0, 'f', 2), kMergeEdgeThreshold);
}

void ExplorerController::setView(double zoom, double centerX, double centerY)
{
    // The view is saved with the session, but panning is not an undo step.
    if (!(zoom > 0) || !std::isfinite(centerX) || !std::isfinite(centerY))
        return;
    m_state.view = { zoom, centerX, centerY };
    m_files->markDirty();
}

void ExplorerController::setSearchText(const QString& text)
{
    if (text == m_searchText)
        return;
    m_searchText = text;
    updateSearch();
    if (m_graph)
        rebuildMainScene();
}

void ExplorerController::updateSearch()
{
    m_searchHitCount = 0;
    m_searchHits.assign(m_graph ? size_t(m_graph->size()) : 0, false);
    const QString needle = m_searchText.trimmed();
    if (m_graph && !needle.isEmpty()) {
        // Only nodes on the canvas count (kept by the prune, not hidden): the count, the
        // highlights and Enter's walk agree with what the user sees.
        const std::unordered_set<std::string> hidden(m_state.hidden.begin(), m_state.hidden.end());
        const auto& promptTokens = m_graph->metadata.promptTokens;
        for (int64_t i = 0; i < m_graph->size(); ++i) {
            const auto& node = m_graph->nodes[size_t(i)];
            const std::string id = cs::graph::nodeId(*m_graph, i);
            if ((m_pruned && !m_pruned->nodeMask[size_t(i)]) || hidden.count(id))
                continue;
            QString hay = qs(captionOf(i)) + QLatin1Char(' ') + qs(node.token) + QLatin1Char(' ') + nodeTitle(i)
                + QLatin1Char(' ') + qs(id);
            // An embedding is its prompt token, as the token axis shows it.
            if (node.kind == cs::graph::NodeKind::Embedding && node.position >= 0
                && node.position < int64_t(promptTokens.size()))
                hay += QLatin1Char(' ') + qs(promptTokens[size_t(node.position)]);
            if (hay.contains(needle, Qt::CaseInsensitive)) {
                m_searchHits[size_t(i)] = true;
                ++m_searchHitCount;
            }
        }
    }
    Q_EMIT searchChanged();
}

QString ExplorerController::nextSearchHit(const QString& afterId) const
{
    if (!m_graph || m_searchHitCount == 0)
        return {};
    const int64_t n = m_graph->size();
    const int64_t start = indexOf(afterId.toStdString());
    for (int64_t step = 1; step <= n; ++step) {
        const int64_t i = ((start < 0 ? -1 : start) + step + n) % n;
        if (m_searchHits[size_t(i)] && (!m_pruned || m_pruned->nodeMask[size_t(i)]))
            return qs(cs::graph::nodeId(*m_graph, i));
    }
    return {};
}

// ---------------------------------------------------------------------------------------------
// Supernodes

void ExplorerController::setChecked(const QString& qid, bool checked)
{
    const std::string id = qid.toStdString();
    const bool has = contains(m_checked, id);
    if (checked && !has && isPinned(id))
        m_checked.push_back(id);
    else if (!checked && has)
        m_checked.erase(std::find(m_checked.begin(), m_checked.end(), id));
    else
        return;
    refreshLists();
    Q_EMIT checkedChanged();
}

void ExplorerController::clearChecked()
{
    m_checked.clear();
    refreshLists();
    Q_EMIT checkedChanged();
}

QString ExplorerController::uniqueSupernodeName(const QString& wanted) const
{
    const QString base = wanted.trimmed().isEmpty() ? QStringLiteral("Supernode") : wanted.trimmed();
    const auto taken = [this](const QString& name) {
        for (const Supernode& s : m_state.supernodes)
            if (qs(s.name) == name)
                return true;
        return false;
    };
    if (!taken(base) && !wanted.trimmed().isEmpty())
        return base;
    for (int i = 1;; ++i) {
        const QString name = QStringLiteral("%1 %2").arg(base).arg(i);
        if (!taken(name))
            return name;
    }
}

QString ExplorerController::groupChecked(const QString& name)
{
    QStringList ids;
    for (const std::string& id : m_checked)
        ids << qs(id);
    const QString made = group(ids, name);
    if (!made.isEmpty())
        clearChecked();
    return made;
}

QString ExplorerController::group(const QStringList& ids, const QString& wanted)
{
    std::vector<std::string> members;
    for (const QString& q : ids) {
        const std::string id = q.toStdString();
        if (indexOf(id) >= 0 && !contains(members, id))
            members.push_back(id);
    }
    if (members.size() < 2) {
        setMessage(QStringLiteral("Check two or more pinned nodes to group them"), true);
        return {};
    }
    ExplorerState next = m_state;
    for (const std::string& id : members)
        if (!contains(next.pinned, id))
            next.pinned.push_back(id);
    // A node belongs to one supernode: leave the old group; drop groups left with no member.
    for (Supernode& s : next.supernodes)
        s.members.erase(std::remove_if(s.members.begin(), s.members.end(),
                            [&](const std::string& m) { return contains(members, m); }),
            s.members.end());
    next.supernodes.erase(std::remove_if(next.supernodes.begin(), next.supernodes.end(),
                              [](const Supernode& s) { return s.members.empty(); }),
        next.supernodes.end());
    m_state.supernodes.swap(next.supernodes); // uniqueSupernodeName looks at what remains
    const QString name = uniqueSupernodeName(wanted);
    m_state.supernodes.swap(next.supernodes);
    next.supernodes.push_back({ name.toStdString(), members });
    commit(next, QStringLiteral("Group %1 nodes as \"%2\"").arg(members.size()).arg(name));
    return name;
}

void ExplorerController::renameSupernode(const QString& name, const QString& newName)
{
    const QString wanted = newName.trimmed();
    if (wanted.isEmpty() || wanted == name)
        return;
    ExplorerState next = m_state;
    for (const Supernode& s : next.supernodes)
        if (qs(s.name) == wanted) {
            setMessage(QStringLiteral("A supernode is already called \"%1\"").arg(wanted), true);
            return;
        }
    bool found = false;
    for (Supernode& s : next.supernodes)
        if (qs(s.name) == name) {
            s.name = wanted.toStdString();
            found = true;
        }
    if (!found)
        return;
    const std::string oldTarget = supernodeTarget(name.toStdString());
    for (Intervention& i : next.interventions)
        if (i.target == oldTarget)
            i.target = supernodeTarget(wanted.toStdString());
    commit(next, QStringLiteral("Rename \"%1\" to \"%2\"").arg(name, wanted));
}

void ExplorerController::ungroup(const QString& name)
{
    ExplorerState next = m_state;
    const auto before = next.supernodes.size();
    next.supernodes.erase(std::remove_if(next.supernodes.begin(), next.supernodes.end(),
                              [&](const Supernode& s) { return qs(s.name) == name; }),
        next.supernodes.end());
    if (next.supernodes.size() == before)
        return;
    const std::string target = supernodeTarget(name.toStdString());
    next.interventions.erase(std::remove_if(next.interventions.begin(), next.interventions.end(),
                                 [&](const Intervention& i) { return i.target == target; }),
        next.interventions.end());
    commit(next, QStringLiteral("Ungroup \"%1\"").arg(name));
}

QStringList ExplorerController::supernodeNames() const
{
    QStringList names;
    for (const Supernode& s : m_state.supernodes)
        names << qs(s.name);
    return names;
}

// ---------------------------------------------------------------------------------------------
// Lists

void ExplorerController::refreshLists()
{
    std::vector<SubgraphRow> rows;
    std::map<std::string, std::string> groupOf;
    for (const Supernode& s : m_state.supernodes)
        for (const std::string& m : s.members)
            groupOf[m] = s.name;
    // Grouped nodes first, by supernode, then the others in pin order.
    std::vector<std::string> order;
    for (const Supernode& s : m_state.supernodes)
        for (const std::string& m : s.members)
            order.push_back(m);
    for (const std::string& id : m_state.pinned)
        if (!groupOf.count(id))
            order.push_back(id);
    for (const std::string& id : order) {
        const int64_t i = indexOf(id);
        if (i < 0)
            continue;
        const auto& node = m_graph->nodes[size_t(i)];
        SubgraphRow row;
        row.id = qs(id);
        const std::string caption = captionOf(i);
        row.label = caption.empty() ? nodeTitle(i) : QStringLiteral("%1 · %2").arg(nodeTitle(i), qs(caption));
        row.kind = QString::fromLatin1(cs::graph::nodeKindName(node.kind));
        row.supernode = groupOf.count(id) ? qs(groupOf[id]) : QString();
        row.layer = int(node.layer);
        row.position = int(node.position);
        row.checked = contains(m_checked, id);
        row.selected = id == m_state.selected;
        rows.push_back(row);
    }
    m_subgraphList.setRows(std::move(rows));
    m_interventions->refreshList();
}

// ---------------------------------------------------------------------------------------------
// Messages and figures

void ExplorerController::setMessage(const QString& text, bool error)
{
    m_message = text;
    Q_EMIT messageChanged();
    if (error)
        Q_EMIT errorOccurred(text);
    else
        Q_EMIT statusOccurred(text);
}

FigureSpec ExplorerController::figureSpec(bool subgraph) const
{
    if (!m_graph)
        throw cs::Error("no graph");
    return buildFigure(
        *m_graph, *m_pruned, m_state, subgraph ? FigureScope::Subgraph : FigureScope::PrunedGraph, figureOptions());
}

} // namespace cs::app
