#pragma once
// The attribution-graph side of the explorer (docs/ARCHITECTURE.md §12), its core: the traced
// graph, what the user did to it (ExplorerState, with undo and redo), pruning and scores, the
// canvas scenes, the inspector and the subgraph pane with supernodes. Two objects of its own
// hold the rest, each reached from QML through a CONSTANT property: `interventions`
// (ExplorerInterventions: the edits, running them, their results) and `files`
// (ExplorerFiles: sessions, graph JSON and figure export, recent files, the modified flag,
// autosave and crash recovery). Owned by AppController (QML reaches it as
// AppController.explorer); it posts its engine work to AppController's one engine worker and
// its Graphviz work to a Graphviz thread of its own (§13).
//
// Every edit goes through commit(): the state before and after go on the undo stack, and
// applyState() derives everything shown from the new state (re-prune when the thresholds
// changed, scenes, scores, the subgraph layout, the interventions' list and results).

#include "canvas/canvasscenesource.h"
#include "engineworker.h"
#include "explorerfiles.h"
#include "explorerinterventions.h"
#include "explorerlists.h"
#include "explorerneurons.h"
#include "explorerstate.h"
#include "explorervalidation.h"
#include "explorerweights.h"
#include "inspector/connectionsmodel.h"
#include "inspector/featurecard.h"
#include "session/settings.h"

#include <cs/graph.h>

#include <QObject>
#include <QPointer>
#include <QString>
#include <QStringList>
#include <QTimer>
#include <QUndoStack>
#include <QUrl>
#include <QVariantList>
#include <QtQml/qqmlregistration.h>

#include <atomic>
#include <map>
#include <memory>
#include <optional>

namespace cs::features {
struct FeatureRecord;
}

namespace cs::app {

class JobQueue;
struct ExplorerResources;
struct SceneStyle;
struct FigureOptions;
struct FigureSpec;
struct FigureLayout;

class ExplorerController : public QObject {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("owned by AppController")

    // Transcoders and feature store of the open model.
    Q_PROPERTY(bool ready READ isReady NOTIFY resourcesChanged)
    Q_PROPERTY(QString resourcesText READ resourcesText NOTIFY resourcesChanged)
    Q_PROPERTY(bool hasFeatureStore READ hasFeatureStore NOTIFY resourcesChanged)

    // Tracing.
    Q_PROPERTY(bool tracing READ isTracing NOTIFY tracingChanged)
    Q_PROPERTY(double traceProgress READ traceProgress NOTIFY traceProgressChanged)
    // What the running trace does now: "computing the attribution rows", then the steps after
    // the last row ("assembling the graph ...", "pruning", "reading feature descriptions").
    Q_PROPERTY(QString traceStage READ traceStage NOTIFY traceProgressChanged)
    Q_PROPERTY(QString traceText READ traceText NOTIFY graphChanged) // "traced 13 tokens in 60 ms · ..."

    // The graph.
    Q_PROPERTY(bool hasGraph READ hasGraph NOTIFY graphChanged)
    Q_PROPERTY(QString graphPrompt READ graphPrompt NOTIFY graphChanged)
    Q_PROPERTY(int nodeCount READ nodeCount NOTIFY graphChanged)
    Q_PROPERTY(int edgeCount READ edgeCount NOTIFY graphChanged)
    Q_PROPERTY(int keptNodeCount READ keptNodeCount NOTIFY pruneChanged)
    Q_PROPERTY(int keptEdgeCount READ keptEdgeCount NOTIFY pruneChanged)
    Q_PROPERTY(double nodeThreshold READ nodeThreshold WRITE setNodeThreshold NOTIFY pruneChanged)
    Q_PROPERTY(double edgeThreshold READ edgeThreshold WRITE setEdgeThreshold NOTIFY pruneChanged)
    Q_PROPERTY(double replacementScore READ replacementScore NOTIFY pruneChanged)
    Q_PROPERTY(double completenessScore READ completenessScore NOTIFY pruneChanged)
    Q_PROPERTY(double subgraphReplacementScore READ subgraphReplacementScore NOTIFY subgraphChanged)
    Q_PROPERTY(double subgraphCompletenessScore READ subgraphCompletenessScore NOTIFY subgraphChanged)
    // The whole graph's corrected completeness (graph.h Scores), and what the pruned graph and
    // the pinned subgraph explain of the whole (Pruner::scoresOf); Neuronpedia's subgraph score.
    Q_PROPERTY(double correctedCompletenessScore READ correctedCompletenessScore NOTIFY pruneChanged)
    Q_PROPERTY(double prunedReplacementScore READ prunedReplacementScore NOTIFY pruneChanged)
    // The graph's path-length metric (cs/graph_paths.h), computed beside the UI after a new
    // graph: the strength-weighted mean length and the share arriving over paths of <= l edges.
    Q_PROPERTY(double meanPathLength READ meanPathLength NOTIFY pathLengthsChanged)
    Q_PROPERTY(QString pathLengthText READ pathLengthText NOTIFY pathLengthsChanged)
    Q_PROPERTY(double prunedCompletenessScore READ prunedCompletenessScore NOTIFY pruneChanged)
    Q_PROPERTY(double subgraphCorrectedCompletenessScore READ subgraphCorrectedCompletenessScore NOTIFY subgraphChanged)
    Q_PROPERTY(
        double neuronpediaSubgraphReplacementScore READ neuronpediaSubgraphReplacementScore NOTIFY subgraphChanged)
    Q_PROPERTY(
        double neuronpediaSubgraphCompletenessScore READ neuronpediaSubgraphCompletenessScore NOTIFY subgraphChanged)
    Q_PROPERTY(bool interventionsAvailable READ interventionsAvailable NOTIFY graphChanged)

    Q_PROPERTY(cs::app::CanvasSceneSource* mainScene READ mainScene CONSTANT)
    Q_PROPERTY(cs::app::CanvasSceneSource* subgraphScene READ subgraphScene CONSTANT)
    Q_PROPERTY(QString searchText READ searchText WRITE setSearchText NOTIFY searchChanged)
    Q_PROPERTY(int searchHits READ searchHits NOTIFY searchChanged)
    Q_PROPERTY(int hiddenCount READ hiddenCount NOTIFY stateChanged)

    // The selected node.
    Q_PROPERTY(QString selectedId READ selectedId NOTIFY selectionChanged)
    Q_PROPERTY(int selectedIndex READ selectedIndex NOTIFY selectionChanged)
    Q_PROPERTY(QString selectedKind READ selectedKind NOTIFY selectionChanged)
    Q_PROPERTY(QString selectedTitle READ selectedTitle NOTIFY selectionChanged)
    Q_PROPERTY(QString selectedLabel READ selectedLabel NOTIFY selectionChanged)
    Q_PROPERTY(int selectedLayer READ selectedLayer NOTIFY selectionChanged)
    Q_PROPERTY(int selectedPosition READ selectedPosition NOTIFY selectionChanged)
    Q_PROPERTY(double selectedActivation READ selectedActivation NOTIFY selectionChanged)
    Q_PROPERTY(double selectedInfluence READ selectedInfluence NOTIFY selectionChanged)
    // The cumulative influence share up to the selected node (what the node threshold compares).
    Q_PROPERTY(double selectedCumulativeShare READ selectedCumulativeShare NOTIFY selectionChanged)
    Q_PROPERTY(bool selectedPinned READ selectedPinned NOTIFY selectionChanged)
    Q_PROPERTY(cs::app::ConnectionsModel* inputs READ inputs CONSTANT)
    Q_PROPERTY(cs::app::ConnectionsModel* outputs READ outputs CONSTANT)
    Q_PROPERTY(cs::app::FeatureCard* featureCard READ featureCard CONSTANT)
    // The feature whose card the inspector shows: the selected feature node's, or one shown on
    // its own (showFeature: a partner or a sweep's finding the graph does not hold, cardOnly);
    // -1 when none.
    Q_PROPERTY(int cardLayer READ cardLayer NOTIFY cardFeatureChanged)
    Q_PROPERTY(int cardFeature READ cardFeature NOTIFY cardFeatureChanged)
    Q_PROPERTY(bool cardOnly READ cardOnly NOTIFY cardFeatureChanged)
    Q_PROPERTY(QString cardTitle READ cardTitle NOTIFY cardFeatureChanged) // "L2 #991", with its caption

    // The subgraph.
    Q_PROPERTY(cs::app::SubgraphListModel* subgraph READ subgraph CONSTANT)
    Q_PROPERTY(int pinnedCount READ pinnedCount NOTIFY stateChanged)
    Q_PROPERTY(int checkedCount READ checkedCount NOTIFY checkedChanged)
    Q_PROPERTY(QStringList supernodeNames READ supernodeNames NOTIFY stateChanged)

    // Interventions and files: objects of their own.
    Q_PROPERTY(cs::app::ExplorerInterventions* interventions READ interventions CONSTANT)
    // The graph checked against the model: perturbations, validation, the table of interventions.
    Q_PROPERTY(cs::app::ExplorerValidation* validation READ validation CONSTANT)
    // Global weights: the shown feature's partners and token plots, operand sweeps.
    Q_PROPERTY(cs::app::ExplorerWeights* weights READ weights CONSTANT)
    Q_PROPERTY(cs::app::ExplorerFiles* files READ files CONSTANT)
    // The neuron basis: the basis switch, the neuron trace's options, neuron cards, the curve.
    Q_PROPERTY(cs::app::ExplorerNeurons* neurons READ neurons CONSTANT)

    // Undo, settings.
    Q_PROPERTY(bool canUndo READ canUndo NOTIFY undoChanged)
    Q_PROPERTY(bool canRedo READ canRedo NOTIFY undoChanged)
    Q_PROPERTY(QString undoText READ undoText NOTIFY undoChanged)
    Q_PROPERTY(QString redoText READ redoText NOTIFY undoChanged)
    Q_PROPERTY(cs::app::ExplorerSettings* settings READ settings CONSTANT)
    // The last operation's result or error (files, grouping, interventions).
    Q_PROPERTY(QString message READ message NOTIFY messageChanged)

public:
    // AppController's worker runs the engine jobs; `autosaveFolder` overrides the default
    // (tests).
    ExplorerController(EngineWorker& worker, QObject* parent = nullptr, const QString& autosaveFolder = {});
    ~ExplorerController() override;

    // Called by AppController when a model opened (loads its transcoders and feature store,
    // then traces `prompt` when given).
    void onModelOpened(const QString& modelFolder, const QString& prompt);

    bool isReady() const { return m_ready; }
    QString resourcesText() const { return m_resourcesText; }
    bool hasFeatureStore() const { return m_hasStore; }
    bool isTracing() const { return m_tracing; }
    double traceProgress() const { return m_traceProgress; }
    QString traceText() const { return m_traceText; }
    bool hasGraph() const { return m_graph != nullptr; }
    QString graphPrompt() const;
    int nodeCount() const { return m_graph ? int(m_graph->size()) : 0; }
    int edgeCount() const { return m_edgeCount; }
    int keptNodeCount() const { return m_keptNodes; }
    int keptEdgeCount() const { return m_keptEdges; }
    double nodeThreshold() const { return m_state.nodeThreshold; }
    double edgeThreshold() const { return m_state.edgeThreshold; }
    // The whole graph's scores: computed, or the opened file's while it is shown as the file
    // holds it (ExplorerState::asFile).
    double replacementScore() const { return graphScores().replacement; }
    double completenessScore() const { return graphScores().completeness; }
    double subgraphReplacementScore() const { return m_subgraphScores.replacement; }
    double subgraphCompletenessScore() const { return m_subgraphScores.completeness; }
    double correctedCompletenessScore() const { return graphScores().correctedCompleteness; }
    double prunedReplacementScore() const { return m_prunedScores.replacement; }
    double prunedCompletenessScore() const { return m_prunedScores.completeness; }
    double subgraphCorrectedCompletenessScore() const { return m_subgraphScores.correctedCompleteness; }
    double neuronpediaSubgraphReplacementScore() const { return m_neuronpediaSubgraphScores.replacement; }
    double neuronpediaSubgraphCompletenessScore() const { return m_neuronpediaSubgraphScores.completeness; }
    bool interventionsAvailable() const { return m_contextReady; }
    CanvasSceneSource* mainScene() const { return m_mainScene; }
    CanvasSceneSource* subgraphScene() const { return m_subgraphScene; }
    QString searchText() const { return m_searchText; }
    int searchHits() const { return m_searchHitCount; }
    int hiddenCount() const { return int(m_state.hidden.size()); }

    QString selectedId() const { return QString::fromStdString(m_state.selected); }
    int selectedIndex() const { return int(indexOf(m_state.selected)); }
    QString selectedKind() const;
    QString selectedTitle() const;
    QString selectedLabel() const;
    int selectedLayer() const;
    int selectedPosition() const;
    double selectedActivation() const;
    double selectedInfluence() const;
    double selectedCumulativeShare() const;
    bool selectedPinned() const { return isPinned(m_state.selected); }
    ConnectionsModel* inputs() const { return m_inputs; }
    ConnectionsModel* outputs() const { return m_outputs; }
    FeatureCard* featureCard() const { return m_card; }
    int cardLayer() const { return int(m_cardLayer); }
    int cardFeature() const { return int(m_cardFeature); }
    bool cardOnly() const { return m_loneFeature.has_value(); }
    QString cardTitle() const;

    SubgraphListModel* subgraph() { return &m_subgraphList; }
    int pinnedCount() const { return int(m_state.pinned.size()); }
    int checkedCount() const { return int(m_checked.size()); }
    QStringList supernodeNames() const;

    ExplorerInterventions* interventions() const { return m_interventions; }
    ExplorerValidation* validation() const { return m_validation; }
    ExplorerWeights* weights() const { return m_weights; }
    ExplorerFiles* files() const { return m_files; }
    ExplorerNeurons* neurons() const { return m_neurons; }

    bool canUndo() const { return m_undo.canUndo(); }
    bool canRedo() const { return m_undo.canRedo(); }
    QString undoText() const { return m_undo.undoText(); }
    QString redoText() const { return m_undo.redoText(); }
    ExplorerSettings* settings() const { return m_settings; }
    QString message() const { return m_message; }

    const ExplorerState& state() const { return m_state; }
    std::shared_ptr<const cs::graph::Graph> graph() const { return m_graph; }
    const cs::graph::PruneResult* pruned() const { return m_pruned.get(); }
    QUndoStack& undoStack() { return m_undo; }
    // The figure of the subgraph (subgraph true) or of the pruned graph, as exportFigure draws it.
    FigureSpec figureSpec(bool subgraph) const;
    // Blocks until the engine worker and the Graphviz thread are idle (tests, --screenshot).
    void waitForIdle();
    // The graph node index of an id; -1 when the graph has no such node.
    int64_t indexOf(const std::string& id) const;

    // The transcoder set (a folder in circuit-tracer's format, or a name shipped with the
    // model such as "clt") and the feature store (a .db; empty: the one found beside the set)
    // of the open model. Reloads both; the graph stays, and its interventions come back when
    // its prompt fits the new set.
    Q_INVOKABLE void openTranscoders(const QString& folderOrName);
    Q_INVOKABLE void openFeatureStore(const QString& path);
    Q_PROPERTY(QString transcoderName READ transcoderName NOTIFY resourcesChanged)
    QString transcoderName() const { return m_transcoderName; }

    // Tracing.
    Q_INVOKABLE void trace(const QString& prompt);
    Q_INVOKABLE void cancelTrace();

    // Selection and the canvas. modifiers: Qt::KeyboardModifiers of the click: none selects,
    // Ctrl pins or unpins, Shift on a pinned node checks it for grouping.
    Q_INVOKABLE void select(const QString& id);
    Q_INVOKABLE void selectIndex(int index);
    // Goes to a feature: selects its node (the most active one) when the graph holds it, else
    // shows its card on its own. False for a feature the transcoders do not have.
    Q_INVOKABLE bool showFeature(int layer, int feature);
    Q_INVOKABLE void clickNode(const QString& id, int modifiers);
    Q_INVOKABLE void togglePin(const QString& id);
    Q_INVOKABLE void pinNodes(const QStringList& ids);
    Q_INVOKABLE void unpinAll(); // one undo step; supernodes and their interventions go too
    Q_INVOKABLE void hideNode(const QString& id);
    Q_INVOKABLE void showAllNodes();
    Q_INVOKABLE void setLabel(const QString& id, const QString& label);
    Q_INVOKABLE void setNodeThreshold(double threshold);
    Q_INVOKABLE void setEdgeThreshold(double threshold);
    Q_INVOKABLE void setSearchText(const QString& text);
    // The id of the next node matching the search after `afterId` (cycling); empty when none.
    Q_INVOKABLE QString nextSearchHit(const QString& afterId) const;
    // The graph canvas's view (saved with the session; not an undo step).
    Q_INVOKABLE void setView(double zoom, double centerX, double centerY);

    // The subgraph: check nodes (pinned rows) to group them.
    Q_INVOKABLE void setChecked(const QString& id, bool checked);
    Q_INVOKABLE void clearChecked();
    // Groups the checked nodes (or `ids` when given) into a supernode; returns its name.
    Q_INVOKABLE QString groupChecked(const QString& name = {});
    Q_INVOKABLE QString group(const QStringList& ids, const QString& name = {});
    Q_INVOKABLE void renameSupernode(const QString& name, const QString& newName);
    Q_INVOKABLE void ungroup(const QString& name);

    // Undo.
    Q_INVOKABLE void undo()
    {
        endGesture();
        m_undo.undo();
    }
    Q_INVOKABLE void redo()
    {
        endGesture();
        m_undo.redo();
    }
    // A slider was released: its next moves are a new undo step, not merged with this drag's.
    Q_INVOKABLE void endGesture() { ++m_gesture; }
    // What the canvas, lists and tooltips show for a node: the user's label, the store's, or the
    // description made from the feature's card.
    Q_INVOKABLE QString captionFor(const QString& id) const;
    // The graph canvas's height / width: the layout fills it (rebuilt when it changes by more
    // than a few percent).
    Q_INVOKABLE void setCanvasAspect(double aspect);
    QString traceStage() const { return m_traceStage; }
    double meanPathLength() const { return m_meanPathLength; }
    QString pathLengthText() const { return m_pathLengthText; }
    // The last trace's engine time and the feature-store time for its captions (benchmarks).
    double lastTraceMs() const { return m_lastTraceMs; }
    double lastCaptionMs() const { return m_lastCaptionMs; }
    // Positions with nothing but their embedding shown take little width (View menu). Until the
    // user chooses, they collapse in prompts longer than kCollapseAfterPositions.
    Q_PROPERTY(bool collapseEmptyPositions READ collapseEmptyPositions WRITE setCollapseEmptyPositions NOTIFY
            collapseEmptyPositionsChanged)
    static constexpr int64_t kCollapseAfterPositions = 32;
    bool collapseEmptyPositions() const;
    void setCollapseEmptyPositions(bool on);
    // A line for the status bar from QML (a dialog cancelled).
    Q_INVOKABLE void showStatus(const QString& text) { setMessage(text); }

Q_SIGNALS:
    void resourcesChanged();
    void tracingChanged();
    void traceProgressChanged();
    void graphChanged();
    void pruneChanged();
    void subgraphChanged();
    void stateChanged();
    void selectionChanged();
    void cardFeatureChanged();
    void searchChanged();
    void checkedChanged();
    void undoChanged();
    void messageChanged();
    // A session or graph file opened: the window shows its prompt.
    void graphOpened(const QString& prompt);
    // A trace ended: ok false when it failed or was cancelled (AppController's errorText says why).
    void traceFinished(bool ok);
    void errorOccurred(const QString& message);
    void collapseEmptyPositionsChanged();
    void pathLengthsChanged();
    // What just happened ("Saved …", "Save cancelled"): the status bar shows it.
    void statusOccurred(const QString& message);
    // A session brought its canvas view back: the graph canvas should show it.
    void viewRequested(double zoom, double centerX, double centerY);

private:
    friend class StateCommand;
    // The two parts read the graph and the state, and edit through commit() (interventions)
    // or replace the graph (files): they are this class split along its seams.
    friend class ExplorerInterventions;
    friend class ExplorerValidation;
    friend class ExplorerWeights;
    friend class ExplorerFiles;
    friend class ExplorerNeurons;
    // Pushes an edit (before = the current state) on the undo stack; mergeId > 0 merges
    // consecutive edits of one kind (a slider being dragged).
    void commit(const ExplorerState& after, const QString& text, int mergeId = 0);
    // Makes `state` current and updates everything derived from it.
    void applyState(const ExplorerState& state);
    // A new graph (traced or opened): resets the state to `state`, clears undo.
    void setGraph(std::shared_ptr<const cs::graph::Graph> graph, std::shared_ptr<const cs::graph::Pruner> pruner,
        const ExplorerState& state, std::map<std::string, std::string> storeLabels,
        std::map<std::string, std::string> autoCaptions);
    void reprune();
    const cs::graph::Scores& graphScores() const;
    void rebuildMainScene();
    void rebuildSubgraph();
    // Shows a Graphviz layout of the subgraph figure in the subgraph scene.
    void showSubgraphLayout(const FigureSpec& spec, const FigureLayout& layout);
    SceneStyle sceneStyle() const; // the canvas colours of the current theme
    FigureOptions figureOptions() const; // labels and scores for figures
    void updateSelection();
    void updateSearch();
    void requestCard();
    void requestContext();
    void refreshLists();
    void setMessage(const QString& text, bool error = false);
    // Sets (or, empty, removes) the user's label of a feature: one undo step.
    // `basis`: the graph's (labelKey), "" for a transcoder feature.
    void labelFeature(int64_t layer, int64_t feature, const QString& label, const std::string& basis = {});
    void setTracing(bool tracing);
    bool isPinned(const std::string& id) const;
    // The label shown for a node: the user's, else the store's, else the top output token.
    std::string labelOf(int64_t index) const;
    std::string captionOf(int64_t index) const;
    // What the feature store says of a feature: its label, else the description made from its
    // card (cs::features::describe).
    std::string storeCaption(int64_t layer, int64_t feature) const;
    QString nodeTitle(int64_t index) const;
    QString uniqueSupernodeName(const QString& wanted) const;

    EngineWorker& m_worker;
    std::shared_ptr<ExplorerResources> m_resources; // worker thread only, through jobs
    std::unique_ptr<JobQueue> m_graphviz; // every Graphviz call runs here
    // Feature cards are read here, from a connection of their own, so a card shows while the
    // engine traces (the worker runs one job at a time). The store is used on that thread only.
    struct CardReader {
        std::unique_ptr<cs::features::FeatureStore> store;
        std::unique_ptr<cs::features::FeatureStore> unitStore; // the model's neuron store
        std::string unitPath;
        std::shared_ptr<const std::vector<std::string>> unitVocabulary; // its token texts
    };
    std::shared_ptr<CardReader> m_cardReader = std::make_shared<CardReader>();
    std::unique_ptr<JobQueue> m_cards;
    quint64 m_cardGeneration = 0;
    quint64 m_gesture = 0; // slider moves within one gesture merge into one undo step
    double m_viewAspect = 0;
    QString m_traceStage;
    double m_meanPathLength = 0;
    QString m_pathLengthText;
    quint64 m_pathGeneration = 0;
    void requestPathLengths(); // on the card thread: the graph is immutable and shared
    double m_lastTraceMs = 0, m_lastCaptionMs = 0;
    int m_collapseEmptyPositions = -1; // -1: automatic; 0, 1: the user's choice
    void openCardStore(const std::string& path);

    bool m_ready = false;
    bool m_hasStore = false;
    QString m_resourcesText;
    QString m_modelFolder;
    QString m_transcoderName = QStringLiteral("clt");
    QString m_storePath; // empty: found beside the transcoders
    QString m_loadedTranscoder, m_loadedStore, m_loadedModel; // what the worker holds now
    void loadResourcesJob();
    bool m_tracing = false;
    double m_traceProgress = 0;
    QString m_traceText;
    std::shared_ptr<std::atomic<bool>> m_cancel;
    QString m_pendingPrompt; // traced once the resources are loaded

    std::shared_ptr<const cs::graph::Graph> m_graph;
    std::shared_ptr<const cs::graph::Pruner> m_pruner;
    std::shared_ptr<const cs::graph::PruneResult> m_pruned;
    std::map<std::string, int64_t> m_index; // node id -> index
    std::map<std::string, std::string> m_storeLabels, m_autoCaptions; // by featureKey
    std::shared_ptr<const std::vector<std::string>> m_vocabulary; // the store's token texts
    bool m_contextReady = false;
    int m_edgeCount = 0, m_keptNodes = 0, m_keptEdges = 0;
    cs::graph::Scores m_scores, m_prunedScores, m_subgraphScores, m_neuronpediaSubgraphScores;
    // The scores an opened file records (metadata.extra.scores: "full" and "pruned"), if any.
    std::optional<cs::graph::Scores> m_fileScores, m_filePrunedScores;

    ExplorerState m_state;
    QUndoStack m_undo;
    std::vector<std::string> m_checked; // pinned rows checked for grouping (not undoable)
    QString m_searchText;
    std::vector<bool> m_searchHits;
    int m_searchHitCount = 0;

    CanvasSceneSource* m_mainScene = nullptr;
    CanvasSceneSource* m_subgraphScene = nullptr;
    ConnectionsModel* m_inputs = nullptr;
    ConnectionsModel* m_outputs = nullptr;
    FeatureCard* m_card = nullptr;
    int64_t m_cardLayer = -1, m_cardFeature = -1;
    std::optional<std::pair<int64_t, int64_t>> m_loneFeature; // shown without a node
    int64_t m_featuresPerLayer = 0; // of the loaded set
    SubgraphListModel m_subgraphList;
    quint64 m_subgraphGeneration = 0;

    QString m_message;
    ExplorerSettings* m_settings = nullptr;
    ExplorerInterventions* m_interventions = nullptr; // children of this object
    ExplorerValidation* m_validation = nullptr;
    ExplorerWeights* m_weights = nullptr;
    ExplorerFiles* m_files = nullptr;
    ExplorerNeurons* m_neurons = nullptr;
    // Opens the unit store at `path` for the cards (the card thread's connection) and tells
    // ExplorerNeurons what there is.
    void openUnitCardStore(const std::string& path, const std::string& problem);
    bool unitGraph() const { return m_graph && !m_graph->metadata.basis.empty(); }
    std::string graphBasis() const { return m_graph ? m_graph->metadata.basis : std::string(); }
};

} // namespace cs::app
