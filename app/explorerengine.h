#pragma once
// The explorer's engine side: what the engine worker thread holds for attribution graphs (the
// transcoder set, the feature store, the last trace's replacement context) and the jobs it
// runs on them. Qt-free; only the worker thread calls these (EngineWorker jobs), and what they
// return crosses to the UI thread as immutable values.

#include "explorerstate.h"

#include <cs/features.h>
#include <cs/graph.h>
#include <cs/intervention.h>
#include <cs/validation.h>

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

struct TraceRequest {
    std::string prompt;
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
};

// About 20 µs a feature on two cores (tinyworld's store): 0.4 s at most.
constexpr int64_t kMaxCaptionedFeatures = 20000;

// Tokenizes and traces request.prompt (the context is kept for interventions). Throws
// cs::Error for an empty or too long prompt, cs::Cancelled when progress says so.
TraceOutput traceGraph(ExplorerResources& resources, const TraceRequest& request);

// Store labels and card descriptions for the feature nodes of a graph (the captions): all of
// them up to kMaxCaptionedFeatures, past that the most influential (by `influence`, [n]).
void readCaptions(const ExplorerResources& resources, const cs::graph::Graph& graph,
    std::map<std::string, std::string>& storeLabels, std::map<std::string, std::string>& autoCaptions,
    const std::vector<float>* influence = nullptr);

// Rebuilds the replacement context for a graph opened from a file, so interventions work on
// it: when its prompt tokenizes to its prompt tokens on this model. Returns false (context
// cleared) when it cannot: no prompt, other tokens, or another model's feature ids.
bool prepareContext(ExplorerResources& resources, const cs::graph::Graph& graph);

// The engine edits of the enabled interventions of `state` on `graph`: a node intervention
// edits that feature, a supernode one each of its feature members; error, embedding and logit
// nodes cannot be edited and are listed in `skipped`. Positions: the node's own, the listed
// ones, or -1 (every position, generated ones too). Ablate = set 0, Scale = scale by value,
// Inject = set value.
std::vector<cs::intervention::FeatureEdit> interventionEdits(
    const cs::graph::Graph& graph, const ExplorerState& state, std::vector<std::string>* skipped = nullptr);
// Free when any enabled intervention asks for the free regime.
bool interventionsFree(const ExplorerState& state);

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

} // namespace cs::app
