#pragma once
// The feature store (docs/ARCHITECTURE.md §9): what each transcoder feature means, from its
// top-activating examples, in one SQLite database per (model, transcoder set).
//
// Per feature: how often it fires and how strongly (frequency, max, min, quantiles, a
// histogram), its top-activating contexts and contexts drawn from several activation quantiles
// (each with its tokens, per-token activations and the position that fired), the tokens its
// decoders promote and suppress through the unembedding, the tokens whose embeddings excite its
// encoder most, and the user's label (clerp) and notes. The database is in WAL mode, so the
// explorer reads while a build writes. Labels live in their own table: rebuilding the
// statistics keeps them.
//
// Built by streaming a text corpus through model and transcoders (build()), resumable: the
// builder's state is saved in the database every so many contexts, and a resumed build gives
// the same store as one uninterrupted run.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

// Declared only: build() takes them by pointer, so readers of a store (the explorer's feature
// card) do not compile the model's and transcoders' headers, and with them ATen.
namespace cs::model {
class Model;
}
namespace cs::transcoder {
class TranscoderSet;
}
namespace cs::distributed {
class Group;
}

namespace cs::features {

// The format name and version in the database's meta table.
constexpr const char* kStoreFormat = "circuitscope.features";
// Version 2 added the co-activation statistics (a store of version 1 opens, without them, and
// is upgraded in place when opened to write).
constexpr int kStoreVersion = 2;

// One context (a window of corpus tokens) and one feature's activation on each of its tokens.
struct Example {
    int64_t context = 0; // the context's index in the build's stream (a stable id)
    std::vector<int64_t> tokens; // token ids of the window
    std::vector<float> activations; // [tokens.size()]: the feature's activation per token
    int64_t position = 0; // index in `tokens` of the largest activation (the token that fired)
    float activation = 0; // that largest activation
};

struct QuantileExamples {
    std::string name; // e.g. "Top activations", "Subsample Interval 0" (circuit-tracer's names)
    std::vector<Example> examples;
};

struct TokenValue {
    int64_t id = 0;
    std::string token; // the token's text
    float value = 0;
};

// Everything the store keeps of one feature (a card in the explorer).
struct FeatureRecord {
    int64_t layer = 0;
    int64_t feature = 0;
    int64_t tokens = 0; // tokens seen (the BOS position excluded)
    int64_t activeTokens = 0; // tokens where the activation was > 0
    double activationFrequency() const { return tokens > 0 ? double(activeTokens) / double(tokens) : 0.0; }
    float actMax = 0; // largest activation
    float actMin = 0; // smallest positive activation (0 when it never fired)
    double actSum = 0; // sum of the positive activations
    // Quantiles of the sampled positive activations at quantileLevels (e.g. 0.5, 0.9, 0.99),
    // linear interpolation between order statistics (numpy's default).
    std::vector<double> quantileLevels;
    std::vector<float> quantileValues;
    // Histogram of the sampled positive activations (BuildOptions::valueSample): counts[i] of
    // values in [edges[i], edges[i + 1]), the last bin closed; edges from 0 to actMax.
    std::vector<float> histogramEdges;
    std::vector<int64_t> histogramCounts;
    std::vector<Example> top; // top-activating contexts, by their largest activation, descending
    std::vector<QuantileExamples> quantiles; // contexts from activation bands, strongest band first
    std::vector<TokenValue> topLogits, bottomLogits; // decoder through the unembedding
    std::vector<TokenValue> topInputs; // embeddings through the encoder
    std::string label; // the user's (clerp); kept across rebuilds
    std::string notes;
};

struct StoreInfo {
    std::string model; // the model's folder name or name
    std::string scan; // the transcoder set's scan (or folder)
    int64_t nLayers = 0;
    int64_t nFeatures = 0; // per layer
    int64_t contextLength = 0; // tokens per context
    int64_t tokens = 0; // tokens processed by the build
    bool complete = false; // the build finished
    nlohmann::json buildOptions = nlohmann::json::object();
};

// What the build saw of a pair of features at the same token position, source at an earlier
// layer than target (the residual-direct path runs within a position, cs/weights.h), summed
// over every position where both fired: the numbers behind ERA and TWERA. Accumulated exactly
// (every pair that ever fired together, in float64) and stored as float64.
struct CoActivation {
    int64_t layer = 0, feature = 0; // the partner (the source, or the target, per the list)
    int64_t count = 0; // positions where both fired
    double sourceSum = 0; // sum of the source's activation over them: tokens * E[a_s 1(a_t > 0)]
    double productSum = 0; // sum of a_s * a_t: tokens * E[a_s a_t]
};

// One feature's partners on one side. The build ranks every pair it saw; a store keeps per
// feature and side the strongest (BuildOptions::coactivationPartners by |ERA| and as many by
// |TWERA|, their union), or all of them.
struct CoActivationList {
    int64_t layer = 0, feature = 0;
    bool upstream = true; // its sources (earlier layers), else its targets (later layers)
    int64_t partners = 0; // the features it fired with on this side, kept or not
    std::vector<CoActivation> kept; // by layer and feature
};

// A feature's totals over the build (the features table's first columns), without its examples.
struct FeatureTotals {
    int64_t tokens = 0, activeTokens = 0;
    double actSum = 0; // tokens * E[a]
};

struct SearchHit {
    int64_t layer = 0;
    int64_t feature = 0;
    std::string label;
};

class FeatureStore {
public:
    // Opens an existing store; throws cs::Error for a missing file, a file that is not SQLite, a
    // database that is not a feature store (no meta table or another format name) or one of a
    // newer version. Read-only unless writable.
    static std::unique_ptr<FeatureStore> open(const std::string& path, bool writable = false);
    // Creates a store (or opens one for the same model and set to rebuild or resume it); throws
    // cs::Error when an existing file is a store of another model or transcoder set.
    static std::unique_ptr<FeatureStore> create(const std::string& path, const StoreInfo& info);
    ~FeatureStore();

    StoreInfo info() const;
    const std::string& path() const;
    bool has(int64_t layer, int64_t feature) const;
    // Throws cs::Error when the feature is out of range or not in the store.
    FeatureRecord card(int64_t layer, int64_t feature) const;
    // Features whose label contains `text` (case-insensitive for ASCII letters; % and _ are
    // literal), by layer and feature, at most `limit` (negative: all).
    std::vector<SearchHit> search(const std::string& text, int64_t limit = 50) const;
    // Sets (or, with both empty, removes) the label and notes of a feature in range, whether or
    // not the store has its statistics yet.
    void setLabel(int64_t layer, int64_t feature, const std::string& label, const std::string& notes = {});
    // (layer, feature) of every feature with statistics, in order; and how many there are.
    std::vector<std::pair<int64_t, int64_t>> listFeatures() const;
    int64_t count() const;
    // The totals of a feature with statistics; nullopt for one without (it never fired).
    std::optional<FeatureTotals> totals(int64_t layer, int64_t feature) const;
    // Whether the build gathered co-activation statistics (a complete build of this version
    // with them switched on).
    bool hasCoactivations() const;
    // The features that fired together with (layer, feature) at one position, with the counts
    // and sums: its sources (earlier layers) when upstream, else its targets (later layers).
    // Throws cs::Error when the store has no co-activation statistics.
    CoActivationList coactivations(int64_t layer, int64_t feature, bool upstream) const;
    // The text of each token id (index = id), as the builder wrote it; empty when none was.
    std::vector<std::string> vocabulary() const;

    // The builder's side. Statistics and examples of many features in one transaction (labels
    // are not touched); info (tokens, complete) updated in the same transaction.
    void writeRecords(const std::vector<FeatureRecord>& records, const StoreInfo& info);
    // Removes every feature's statistics and examples (not the labels), for a build that starts
    // afresh over a store it does not resume.
    void clearRecords();
    // The text of each token id (index = id), replacing the one saved before: examples keep token
    // ids, and the circuit-tracer export and the CLI show them as text through this table.
    void writeVocabulary(const std::vector<std::string>& texts);
    // Every feature's lists, replacing those saved before, in one transaction; marks the store
    // as having them.
    void writeCoactivations(const std::vector<CoActivationList>& lists);
    // An opaque resume state (the builder's heaps and counters), saved and read atomically.
    void saveBuildState(const std::vector<uint8_t>& state, const StoreInfo& info);
    std::optional<std::vector<uint8_t>> buildState() const;
    void clearBuildState();

    struct Impl;

private:
    explicit FeatureStore(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> m_impl;
};

// circuit-tracer's per-feature JSON: index, examples_quantiles [{quantile_name, examples:
// [{tokens, tokens_acts_list, ...}]}], top_logits, bottom_logits, act_min, act_max,
// quantile_values, histogram, activation_frequency; plus layer and label. Example tokens are
// ids: `vocabulary` (FeatureStore::vocabulary()) gives their text, and an id it lacks shows as
// "[id]". Every string is valid UTF-8 (invalid bytes, e.g. a partial byte-level BPE token,
// become U+FFFD), so any dump() of it succeeds.
nlohmann::json circuitTracerJson(const FeatureRecord& record, const std::vector<std::string>& vocabulary = {});
// A one-line description of what a feature reads and writes, made from its card for features
// nobody labelled: the token it fires on most among its top examples, in «», the text before
// that token in the strongest such example, and the tokens its decoder promotes most, e.g.
//   «is» after "…state containing Dallas" → Austin, Richmond
// Parts the card lacks are left out; "" when it has none. Tokens are trimmed of spaces (a token
// that is only whitespace shows as ␣ or ⏎); the context is at most kDescriptionContextTokens
// tokens and about 32 characters. Pure: no store access.
constexpr int kDescriptionContextTokens = 4;
std::string describe(const FeatureRecord& record, const std::vector<std::string>& vocabulary);

// The feature store that belongs to a transcoder folder: MODEL/features/NAME.db for a set
// shipped as MODEL/transcoders/NAME, else TRANSCODER_FOLDER/features.db. Empty when neither exists.
std::string findStore(const std::string& modelFolder, const std::string& transcoderFolder);
// The feature store of a model's own units (built with BuildOptions::basis): MODEL/features/
// {basis}.db, basis "neurons" (the MLP's hidden units); its StoreInfo::scan is the basis. Empty
// when there is none.
std::string findUnitStore(const std::string& modelFolder, const std::string& basis);

// Where exportCircuitTracer puts each feature's file.
enum class ExportLayout {
    LayerFolders, // DIR/{layer}/{feature}.json
    // DIR/{cantorPairing(layer, feature)}.json, "index" the same number: the name circuit-tracer's
    // local frontend asks for (features/{scan}/{node "feature"}.json).
    Cantor,
};
// One file per feature (written atomically); returns the count.
int64_t exportCircuitTracer(
    const FeatureStore& store, const std::string& dir, ExportLayout layout = ExportLayout::LayerFolders);

struct BuildOptions {
    int64_t maxTokens = 1000000; // corpus tokens to stream (0: the whole corpus)
    int64_t contextLength = 64; // tokens per context (a BOS, then text)
    int64_t batchContexts = 32; // contexts per forward pass
    int64_t topK = 10; // top-activating contexts kept per feature
    int64_t quantileBands = 5; // activation bands for the quantile examples
    int64_t perBand = 5; // contexts per band
    // Contexts sampled per feature (where it fired) for the quantile bands, and activation values
    // sampled per feature for the quantiles and the histogram. Samples are the items with the
    // smallest hash of (feature, item): deterministic, independent of batching and resume, and
    // exact (every item) while a feature has no more items than the sample holds.
    int64_t contextSample = 64;
    int64_t valueSample = 1024;
    int64_t window = 0; // tokens stored per example around the firing token (0: the whole context)
    int64_t histogramBins = 32;
    int64_t logitCount = 10; // top / bottom logits and top inputs per feature
    int64_t checkpointEvery = 4000; // contexts between saved build states (a state is tens of MB)
    // Gather co-activation statistics (every pair of features at different layers firing at the
    // same position) for ERA and TWERA (cs/weights.h), and keep per feature and side the
    // coactivationPartners strongest by |ERA| and as many by |TWERA| (0: every partner; on
    // tinyworld's 2M tokens that is 2.5M pairs, 113 MB).
    bool coactivations = true;
    int64_t coactivationPartners = 32;
    // "" for the transcoder set's features; "neurons" for the model's own MLP neurons (the
    // post-nonlinearity hidden units; the set may then be null; a neuron is active where its
    // value is > 0; its token lists are weights::neuronToLogits and embeddingToNeurons), with
    // coactivations off. The store's scan is then "neurons" (findUnitStore).
    std::string basis;
    // One rank of a build over several processes (cs/distributed.h), or null. Batches of
    // batchContexts contexts are dealt round-robin (rank r builds batch b when b % ranks == r,
    // with the contexts' indices in the whole corpus); each rank keeps its part in
    // partPath(dbPath, rank, ranks), resumable like a store; at the end rank 0 merges the parts
    // into dbPath, which then equals the store one process builds (float64 sums to rounding).
    // maxTokens counts the whole job's tokens. Not part of the options a store records.
    std::shared_ptr<distributed::Group> group;
    // With group: rank 0 merges the parts into dbPath at the end (false: each rank finishes its
    // part and the parts stay, for merge() elsewhere or later).
    bool mergeParts = true;
};

struct BuildProgress {
    int64_t tokens = 0;
    int64_t totalTokens = 0;
    double tokensPerSecond = 0;
    double secondsLeft = 0;
};

struct BuildResult {
    int64_t tokens = 0;
    int64_t contexts = 0;
    double seconds = 0;
    double tokensPerSecond = 0;
    int64_t resumedFromTokens = 0; // > 0 when a saved state was picked up
    int64_t bytes = 0; // the database's size
    int64_t coactivationPairs = 0; // pairs of features that fired together (0 when not gathered)
    int64_t ranks = 1; // processes that built it (parts merged)
};

// Streams the corpus (one text per line) through model and transcoders and writes the store at
// dbPath. Resumes from a saved state when the store holds one for the same model, set and
// options. progress returns false to stop (the state is saved first; throws cs::Cancelled).
// With options.group, this process is one rank of the job: progress reports the job's tokens,
// any rank's stop stops them all at the same batch, a lost rank makes the others throw
// cs::Error naming it within the group's timeout, and the same command on every rank resumes.
// Ranks started with other build options are refused (distributed::Group::checkSame).
BuildResult build(std::shared_ptr<const model::Model> model,
    std::shared_ptr<const transcoder::TranscoderSet> transcoders, const std::string& corpusPath,
    const std::string& dbPath, const BuildOptions& options = {},
    const std::function<bool(const BuildProgress&)>& progress = {});

// Where rank `rank` of a job of `ranks` processes keeps its part of the store at dbPath:
// "DB.part-R-of-W", a store that holds only the rank's build state.
std::string partPath(const std::string& dbPath, int64_t rank, int64_t ranks);

// What a part says of itself.
struct PartInfo {
    int64_t rank = 0, ranks = 0;
    std::string modelFolder; // absolute, as the rank loaded it
    std::string transcoderFolder; // absolute; empty for the neuron basis
    bool finished = false; // the rank built all its batches (the part can be merged)
    int64_t tokens = 0; // tokens in the part
    StoreInfo store; // its buildOptions are the build's, without the part's own keys
};
// Throws cs::Error for a file that is not a part of a distributed build.
PartInfo readPart(const std::string& path);

// Combines the parts of one distributed build (every rank's, each once, all finished) into the
// store at dbPath, as rank 0 does at the end of the build: the result equals a one-process
// build. model and transcoders (null for the neuron basis) are the ones the parts were built
// with (their names and shapes are checked). Parts of other builds (options, model, set, number
// of ranks), a missing, duplicate or unfinished part are refused; so is a dbPath that is another
// model's store or holds an interrupted build of its own. The parts are left in place.
BuildResult merge(std::shared_ptr<const model::Model> model,
    std::shared_ptr<const transcoder::TranscoderSet> transcoders, const std::vector<std::string>& parts,
    const std::string& dbPath);

} // namespace cs::features
