#pragma once
// The explorer's engine side: what the engine worker thread holds for attribution graphs (the
// transcoder set, the feature store, the last trace's replacement context) and the jobs it
// runs on them. Qt-free; only the worker thread calls these (EngineWorker jobs), and what they
// return crosses to the UI thread as immutable values.

#include "explorerstate.h"

#include <cs/features.h>
#include <cs/graph.h>
#include <cs/intervention.h>
#include <cs/neurons.h>
#include <cs/sweep.h>
#include <cs/validation.h>
#include <cs/weights.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace cs {
namespace model {
class Model;
}
namespace transcoder {
class TranscoderSet;
}
namespace attribution {
struct ReplacementContext;
}
} // namespace cs

namespace cs::app {

// Worker thread only.
struct ExplorerResources {
    std::shared_ptr<const cs::model::Model> model; // the model the rest belongs to
    std::shared_ptr<const cs::transcoder::TranscoderSet> transcoders;
    std::string transcoderFolder;
    std::unique_ptr<cs::features::FeatureStore> store; // null when the set has none
    std::shared_ptr<const std::vector<std::string>> vocabulary; // the store's token texts
    // The replacement context interventions run on: the last trace's prompt.
    std::shared_ptr<const cs::attribution::ReplacementContext> context;
    std::vector<int64_t> contextIds; // its prompt ids

    // The neuron basis (cs/neurons.h): what interventions on the current unit graph run on (the
    // model it was traced on, its prompt ids and node kind); empty basis when the current graph
    // is not a unit graph. The model's unit store (features::findUnitStore) gives its captions.
    std::shared_ptr<const cs::model::Model> unitModel;
    std::vector<int64_t> unitIds;
    std::string unitBasis;
    std::unique_ptr<cs::features::FeatureStore> unitStore;
    std::string unitStorePath; // where unitStore was opened from
    std::shared_ptr<const std::vector<std::string>> unitVocabulary;
};

// What loadResources found, for the UI.
struct ResourcesInfo {
    std::string transcoderName; // folder name ("clt")
    std::string transcoderFolder;
    std::string architecture; // "clt" or "plt"
    int64_t featuresPerLayer = 0;
    std::string storePath; // empty when no feature store was found
    std::string storeProblem; // why a store that exists could not be opened (empty otherwise)
    int64_t storeFeatures = 0;
};

// Loads the transcoder set (a shipped name such as "clt" or a folder) for `model` and its
// feature store (storePath, or found by findFeatureStore when empty), replacing what
// `resources` held. Throws cs::Error when the set cannot load or does not fit the model; a
// store that fails to open is reported in storeProblem, not thrown (graphs work without one).
ResourcesInfo loadResources(ExplorerResources& resources, std::shared_ptr<const cs::model::Model> model,
    const std::string& transcoder, const std::string& storePath = {});

// A trace in the neuron basis (cs::neurons::trace) instead of the transcoder's.
struct NeuronTraceSpec {
    bool on = false;
    std::string kind = "neurons"; // cs::neurons::nodeKindName
    std::string method = "relp"; // "relp" or "ig"
    std::string counterfactual; // a prompt of as many tokens, or empty
    // The metric's tokens as text (the first token counts). An empty answer: the model's top
    // prediction; an empty counterfactual answer: the counterfactual prompt's top prediction
    // (none without a counterfactual prompt: the answer's logit alone).
    std::string answer, counterfactualAnswer;
    int64_t maxNodes = 1024;
    int64_t steps = 32;
};

struct TraceRequest {
    std::string prompt;
    NeuronTraceSpec neurons;
    int64_t maxFeatureNodes = -1; // < 0: every active feature
    int64_t maxNLogits = 10;
    double desiredLogitProb = 0.95;
    // Fraction of rows done; false cancels (the job then throws cs::Cancelled).
    std::function<bool(double)> progress;
    // What the job does once the rows are done ("assembling the graph", "pruning", ...).
    std::function<void(const char*)> stage;
};

// A traced graph and what the UI shows with it.
struct TraceOutput {
    std::shared_ptr<const cs::graph::Graph> graph; // full, unpruned
    std::shared_ptr<const cs::graph::Pruner> pruner;
    // Per feature node (featureKey): the store's label, and the description made from its card
    // (cs::features::describe: the caption of features nobody labelled); readCaptions' budget.
    std::map<std::string, std::string> storeLabels;
    std::map<std::string, std::string> autoCaptions;
    double traceMs = 0; // tokenize, trace, prune set-up, as the CLI's "traced in"
    double captionMs = 0; // reading the feature store for the captions
    double maxRelResidual = 0;
    // A unit graph: the model's unit store for its cards (empty: none), or why it cannot open.
    std::string unitStorePath, unitStoreProblem;
};

// About 20 µs a feature on two cores (tinyworld's store): 0.4 s at most.
constexpr int64_t kMaxCaptionedFeatures = 20000;

// Tokenizes and traces request.prompt (the context is kept for interventions). Throws
// cs::Error for an empty or too long prompt, cs::Cancelled when progress says so.
TraceOutput traceGraph(ExplorerResources& resources, const TraceRequest& request);

// The same in the neuron basis on `model` (the unit store's captions). Keeps the model and ids
// for unit interventions and clears the transcoder context. Throws cs::Error for an empty
// prompt, a counterfactual of another token count or an answer that is not text of the model's.
TraceOutput traceNeuronGraph(
    ExplorerResources& resources, std::shared_ptr<const cs::model::Model> model, const TraceRequest& request);

// Opens the unit store of `model` for `basis` ("neurons") when there is one and it is not open
// yet; returns its path (empty when the model has none) and sets `problem` when it exists but
// cannot be opened.
std::string openUnitStore(ExplorerResources& resources, const cs::model::Model& model, const std::string& basis,
    std::string* problem = nullptr);

// The unit graph's metric as texts for a task item (cs::neurons::TaskItem): the graph's prompt,
// its counterfactual prompt (metadata.extra.neuron_trace) and its logit node's tokens.
struct UnitTask {
    std::string prompt, counterfactual, answer, counterfactualAnswer;
    std::string kind = "neurons", method = "relp";
    int64_t steps = 32;
};
// Throws cs::Error for a graph that is not a unit graph.
UnitTask unitTaskOf(const cs::graph::Graph& graph, const cs::model::Model& model);

// The faithfulness / completeness curve (cs::neurons::evaluateCircuits) of the unit graph's
// prompt and metric, its circuits of `ks` units chosen by the graph's method and node kind.
// Throws cs::Error as evaluateCircuits does, cs::Cancelled when progress says so.
cs::neurons::Curve unitCurve(const cs::model::Model& model, const cs::graph::Graph& graph,
    const std::vector<int64_t>& ks, std::function<bool(double)> progress);

// The k of a curve for a graph of `units` unit nodes: 1, 2, 5, 10, 20, 50, ... below `units`,
// `units` itself and `mark` (the pruned graph's unit count) when it is in 1..units.
std::vector<int64_t> curveKs(int64_t units, int64_t mark);

// Store labels and card descriptions for the feature nodes of a graph (the captions): all of
// them up to kMaxCaptionedFeatures, past that the most influential (by `influence`, [n]).
void readCaptions(const ExplorerResources& resources, const cs::graph::Graph& graph,
    std::map<std::string, std::string>& storeLabels, std::map<std::string, std::string>& autoCaptions,
    const std::vector<float>* influence = nullptr);

// Rebuilds the replacement context for a graph opened from a file, so interventions work on
// it: when its prompt tokenizes to its prompt tokens on this model. Returns false (context
// cleared) when it cannot: no prompt, other tokens, or another model's feature ids.
// A unit graph (metadata.basis set) needs no transcoders: its context is `model` (the open one)
// and the prompt's ids (prepareUnitContext).
// Whether the graph is of the prompt `ids`: as many positions, and each embedding node's token
// the prompt's there (prepareContext, prepareUnitContext).
bool graphIsOfPrompt(const cs::graph::Graph& graph, const std::vector<int64_t>& ids);
bool prepareContext(ExplorerResources& resources, const cs::graph::Graph& graph,
    std::shared_ptr<const cs::model::Model> model = nullptr);
bool prepareUnitContext(
    ExplorerResources& resources, const cs::graph::Graph& graph, std::shared_ptr<const cs::model::Model> model);

// The engine edits of the enabled interventions of `state` on `graph`: a node intervention
// edits that feature, a supernode one each of its feature members; error, embedding and logit
// nodes cannot be edited and are listed in `skipped`. Positions: the node's own, the listed
// ones, or -1 (every position, generated ones too). Ablate = set 0, Scale = scale by value,
// Inject = set value.
std::vector<cs::intervention::FeatureEdit> interventionEdits(
    const cs::graph::Graph& graph, const ExplorerState& state, std::vector<std::string>* skipped = nullptr);
// Free when any enabled intervention asks for the free regime.
bool interventionsFree(const ExplorerState& state);

// Runs unit edits (feature = the unit) on the current unit graph's prompt with
// cs::neurons::intervene: the real model, nothing frozen. With generate > 0 also the greedy
// continuations before and after, the edits held on every step as intervene holds them (a
// position's edit at that prompt position, position -1 at every position, generated ones too;
// no KV cache, so a position is the sequence's). Throws cs::Error without a unit graph.
cs::intervention::InterventionResult runUnitIntervention(const ExplorerResources& resources,
    const std::vector<cs::intervention::FeatureEdit>& edits, int64_t topK, int64_t generate = 0);

// Runs the edits on the current context. Throws cs::Error without one.
cs::intervention::InterventionResult runIntervention(const ExplorerResources& resources,
    const std::vector<cs::intervention::FeatureEdit>& edits, const cs::intervention::InterventionOptions& options);

// The paper's perturbation experiments on the current context (cs/validation.h). Throw
// cs::Error without a context or for a graph that is not the context's.
cs::validation::PerturbationResult runPerturbation(const ExplorerResources& resources, const cs::graph::Graph& graph,
    const std::vector<int64_t>& sources, double factor);
cs::validation::Validation runValidation(
    const ExplorerResources& resources, const cs::graph::Graph& graph, int64_t topN, double factor);

// One row of the table of interventions: the raw logits of the chosen tokens at the last
// position after the edits, and the top token then.
struct InterventionTableRow {
    std::string name;
    std::vector<double> logits; // one per token
    std::string top;
    double topProb = 0;
};
// Each named list of edits run alone (an empty list: the model's own output) in `regime`.
// Throws cs::Error without a context.
std::vector<InterventionTableRow> interventionTable(const ExplorerResources& resources,
    const std::vector<std::pair<std::string, std::vector<cs::intervention::FeatureEdit>>>& rows,
    const std::vector<int64_t>& tokens, cs::intervention::Regime regime);

// The unedited top-k and greedy generation (what the panel shows with no intervention).
cs::intervention::InterventionResult baseline(const ExplorerResources& resources, int64_t topK, int64_t generate);

// --- Global weights (§7.5): the inspector's partners and token plots, the window's sweeps.

// What the store says of a feature: its label, else the description made from its card;
// empty without a store or a record.
std::string featureCaption(const ExplorerResources& resources, int64_t layer, int64_t feature);

struct PartnerLists {
    cs::weights::Partners up, down; // by |weight(kind)|, largest first
    std::vector<std::string> upCaptions, downCaptions; // featureCaption of each partner
    bool statistics = false; // the store has co-activation statistics
    cs::weights::Kind kind = cs::weights::Kind::Virtual; // what they are ranked by
    double ms = 0; // the two queries (weights::partners), without the captions
};
// The top partners up and down of a feature by `kind`; by virtual weight when `kind` needs
// co-activation statistics the store does not have (statistics false says so). Throws
// cs::Error without transcoders or for a feature out of range.
PartnerLists featurePartners(
    const ExplorerResources& resources, int64_t layer, int64_t feature, cs::weights::Kind kind, int64_t top);

struct TokenWeight {
    std::string token; // as given (a leading space is part of it)
    int64_t pieces = 0; // the tokens it encodes to; the plot has values only when 1
    int64_t id = -1;
    double input = 0; // the token's embedding through the feature's encoder (embeddingToFeatures)
    double output = 0; // the feature's decoders to the token's logit (featureToLogits)
};
// "a|b|c" -> {"a", "b", "c"}; empty pieces are left out, spaces kept.
std::vector<std::string> splitTokens(const std::string& text);
// The digits " 0| 1| ...| 9" when each is a single token of the model, else "0|1|...|9" when
// those are, else empty.
std::string defaultWeightTokens(const ExplorerResources& resources);
// Each token's two weights for one feature. Throws cs::Error without transcoders or a tokenizer.
std::vector<TokenWeight> tokenWeights(
    const ExplorerResources& resources, int64_t layer, int64_t feature, const std::vector<std::string>& tokens);

struct SweepOutput {
    std::shared_ptr<const cs::sweep::SweepResult> result;
    std::vector<cs::sweep::Finding> findings; // sweep::rank, best first
    std::vector<std::string> captions; // featureCaption of each finding
};
// Runs the sweep on the open model and set and ranks what it found (at most `top`). Throws
// cs::Error as sweep::sweep does, cs::Cancelled when options.progress says so.
SweepOutput runSweep(const ExplorerResources& resources, const cs::sweep::SweepOptions& options, int64_t top);
// One feature's grid of a sweep, row-major [a.size(), b.size()]; empty for a feature the sweep
// does not have. Reads the values without a tensor op (the UI thread calls it).
std::vector<float> operandGrid(const cs::sweep::SweepResult& result, int64_t layer, int64_t feature);
// sweep::explain of that grid (tensor ops: on the worker).
cs::sweep::Finding explainGrid(const cs::sweep::SweepResult& result, const std::vector<float>& grid);

} // namespace cs::app
