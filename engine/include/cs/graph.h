#pragma once
// Attribution graphs (docs/ARCHITECTURE.md §7, §11.3, §11.4): the nodes and the direct-effect
// matrix of one traced prompt, pruning by influence on the logits, the replacement and
// completeness scores, the circuit-tracer / Neuronpedia graph JSON and the .csgraph file.
//
// Node order, as circuit-tracer's Graph: features, then error nodes (layer-major, then
// position), then token embeddings (by position), then logits (the first is the target logit).
// adjacency[t, s] is the direct effect of source s on target t (row = target, column = source);
// it is stored sparse (Adjacency below): only the nonzero entries.
//
// Influence (circuit-tracer's compute_influence): with A_hat = |A| row-normalized (rows summing
// to 1, zero rows staying zero) and w the logit probabilities on the logit nodes (0 elsewhere),
//   influence = w^T (A_hat + A_hat^2 + ...) = w^T ((I - A_hat)^-1 - I)             [n]
// summed term by term; the graph is a DAG, so A_hat is nilpotent and the series ends.

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

// Only Adjacency::fromDense and dense() speak tensors; their callers include ATen themselves, so
// code that reads graphs (the app's canvas, inspector, figures and sessions) never compiles ATen.
namespace at {
class Tensor;
}

namespace cs::graph {

enum class NodeKind { Feature, Error, Embedding, Logit };

const char* nodeKindName(NodeKind kind); // "feature", "error", "embedding", "logit"

// The bases a graph's feature nodes may be in (Metadata::basis): "" (transcoder features),
// "neurons", "mlp_out", "attn_out", "resid".
bool isBasis(const std::string& basis);
// The graph JSON's feature_type of a node of that kind in that basis: "cross layer transcoder"
// and "mlp reconstruction error" for transcoder graphs; "mlp neuron", "mlp output", "attention
// output", "residual stream" and "other units" for the model's units.
const char* featureTypeOf(NodeKind kind, const std::string& basis);

struct Node {
    NodeKind kind = NodeKind::Feature;
    int64_t layer = 0; // -1 for embeddings, n_layers for logits
    int64_t position = 0; // ctx_idx; logits sit at the last position
    int64_t feature = -1; // the transcoder feature index; -1 for the other kinds
    double activation = 0; // features: the activation; others: what the tracer stores (not exported)
    int64_t tokenId = -1; // embeddings: the prompt token; logits: the output token
    std::string token; // the token's text (embeddings and logits)
    double tokenProb = 0; // logits: the probability of tokenId
    std::string label; // the user's label, written as "clerp"
    // Logits of a difference target "A − B" (tokenId and token are A): B's id and text, and
    // its probability; -1 for a plain logit.
    int64_t contrastTokenId = -1;
    std::string contrastToken;
    double contrastTokenProb = 0;
};

struct Metadata {
    std::string slug;
    std::string prompt;
    std::vector<std::string> promptTokens; // the prompt, one string per token
    std::string scan; // the model / transcoder-set name Neuronpedia knows the graph by
    std::vector<std::string> transcoderList;
    // What the feature nodes are: "" for transcoder features; "neurons", "mlp_out", "attn_out" or
    // "resid" for the model's own units (cs/neurons.h), where the error node of a layer and
    // position stands for that layer's units there that are not nodes. The graph JSON tells them
    // apart by feature_type (featureTypeOf) and writes it as metadata.basis.
    std::string basis;
    double nodeThreshold = 0.8; // the thresholds the exported graph was pruned with
    double edgeThreshold = 0.98;
    // Neuronpedia's saved subgraph state (pinnedIds, supernodes, linkType, clickedId, sg_pos,
    // ...); written over the defaults, read back from files.
    nlohmann::json qParams = nlohmann::json::object();
    // Anything else for the JSON's metadata (scores, exactness, generation_settings, info):
    // merged into it on export (objects merge key by key); unknown metadata keys on import.
    nlohmann::json extra = nlohmann::json::object();
};

// A half-open range [begin, end) of node indices.
struct IndexRange {
    int64_t begin = 0;
    int64_t end = 0;
    int64_t size() const { return end - begin; }
    bool contains(int64_t i) const { return i >= begin && i < end; }
};

struct KindRanges {
    IndexRange features;
    IndexRange errors;
    IndexRange embeddings;
    IndexRange logits;
};

// The direct-effect matrix of a graph: a sparse [n, n] float32 matrix in compressed sparse rows.
// Row t holds the sources of target t: its entries are the offsets rowStarts()[t] ..
// rowStarts()[t + 1] of columns() (source indices, strictly increasing within a row) and
// values() (A[t, s], never 0: zeros are not stored). Entries are numbered 0 .. nnz - 1 in that
// order; PruneResult::edgeMask is indexed by them. Memory: 8 bytes per entry plus 8 per row, so
// a 512-token tinyworld graph (18,713 nodes, 56.6M entries) holds 0.45 GB where the dense
// matrix took 1.4 GB, and a 2,048-token one does not need n^2 of anything.
//
// Immutable once built: copies share the arrays (as at::Tensor copies shared the dense matrix),
// so a Graph is as cheap to copy as before and may be read from any thread. The transposed
// index (each source's targets, for a node's outgoing edges) is built on first use, once, and
// shared by the copies.
class Adjacency {
public:
    // One row's entries: columns[k], values[k] for k in [0, size); entry() numbers them.
    struct Row {
        const int32_t* columns = nullptr;
        const float* values = nullptr;
        int64_t begin = 0; // the entry number of the row's first entry
        int64_t size = 0;
        int64_t entry(int64_t k) const { return begin + k; }
    };
    // One column's entries (a source's outgoing edges): the targets, increasing. The entry of
    // A[targets[k], s] is find(targets[k], s) (a binary search in that row), so the index costs
    // 4 bytes per entry.
    struct Column {
        const int32_t* targets = nullptr;
        int64_t size = 0;
    };

    Adjacency(); // [0, 0]
    explicit Adjacency(int64_t n); // [n, n] without entries
    // From its arrays: rowStarts [n + 1] (0 first, nnz last, non-decreasing), columns and values
    // [nnz] with columns in [0, n) strictly increasing within each row. Zero values are dropped.
    // Throws cs::Error saying what is inconsistent (a corrupt file's arrays come through here).
    Adjacency(int64_t n, std::vector<int64_t> rowStarts, std::vector<int32_t> columns, std::vector<float> values);
    // The nonzero entries of a [n, n] floating-point tensor (any device and dtype; stored as
    // float32). Throws cs::Error for another shape.
    static Adjacency fromDense(const at::Tensor& dense);
    // [n, n] float32 on the CPU: for small graphs and tests (n^2 memory).
    at::Tensor dense() const;

    int64_t size() const { return m_n; } // n
    int64_t nnz() const;
    Row row(int64_t t) const;
    Column column(int64_t s) const; // builds the transposed index on first use
    // The entry number of A[t, s], or -1 when it is not stored (binary search in row t).
    int64_t find(int64_t t, int64_t s) const;
    float value(int64_t t, int64_t s) const; // A[t, s]; 0 when not stored

    const int64_t* rowStarts() const; // [n + 1]
    const int32_t* columns() const; // [nnz]
    const float* values() const; // [nnz]
    // The target of each entry: row() of entry e. O(log n).
    int64_t rowOf(int64_t entry) const;

    // The same entries with the same values (bit for bit).
    bool operator==(const Adjacency& other) const;
    bool operator!=(const Adjacency& other) const { return !(*this == other); }

private:
    struct Data;
    int64_t m_n = 0;
    std::shared_ptr<const Data> m_data;
};

// Builds an Adjacency from rows given in any order (a tracer's batches, a reader's links).
// Each row is given once; its entries in any column order; zeros dropped.
class AdjacencyBuilder {
public:
    explicit AdjacencyBuilder(int64_t n);
    // Row t: count entries (columns[k], values[k]). Throws cs::Error for a row given twice, a
    // column outside [0, n) or a column named twice in the row.
    void setRow(int64_t t, const int32_t* columns, const float* values, int64_t count);
    void setRow(int64_t t, const std::vector<int32_t>& columns, const std::vector<float>& values);
    int64_t nnz() const { return static_cast<int64_t>(m_columns.size()); }
    // The matrix; the builder is left empty. Rows never given have no entries.
    Adjacency build();

private:
    int64_t m_n = 0;
    std::vector<int64_t> m_offset; // [n]: where row t starts in m_columns, -1 when not given
    std::vector<int64_t> m_length; // [n]
    std::vector<int32_t> m_columns; // rows in the order given, each sorted by column
    std::vector<float> m_values;
};

// The largest feature index or token id a graph holds (int32, as the adjacency's columns).
constexpr int64_t kMaxUnitId = (int64_t(1) << 31) - 1;

struct Graph {
    std::vector<Node> nodes;
    Adjacency adjacency; // [n, n], sparse: A[t, s] is the direct effect of source s on target t
    std::vector<float> logitProbabilities; // [n_logits], the weights of the logit nodes in the influence
    Metadata metadata;

    int64_t size() const { return static_cast<int64_t>(nodes.size()); }
    // The index range of each kind. Throws cs::Error when the nodes are not in the order above.
    KindRanges ranges() const;
    // The logit nodes' layer when there are logits; otherwise one more than the deepest layer.
    int64_t nLayers() const;
    // The prompt length: the larger of promptTokens.size() and the last position + 1.
    int64_t nPositions() const;
    // Checks the node order, the adjacency's size and the logit probabilities' count, that every
    // value is finite, and what a file could get wrong: at least one node and one logit, every
    // node within the prompt (promptTokens) and below the logits' layer (n_layers), feature and
    // token ids in [0, kMaxUnitId], logit probabilities in [0, 1], node ids unique, no link into
    // an embedding or from a node to itself, each node's inputs summing to a float32, and no
    // cycle (O(n + nnz)); throws cs::Error naming the node or link. Every reader and writer of
    // graph files calls it.
    void validate() const;
};

// The Cantor pairing circuit-tracer writes as a feature node's "feature": (x + y)(x + y + 1)/2 + y.
int64_t cantorPairing(int64_t layer, int64_t feature);
// Its inverse: z -> (layer, feature).
std::pair<int64_t, int64_t> cantorUnpair(int64_t z);

// Node ids. nodeId is unique within a graph and names nodes in sessions, the explorer and
// the CLI: features "{layer}_{feature}_{pos}", errors "{layer}_-1_{pos}", embeddings
// "E_{token_id}_{pos}", logits "{n_layers + 1}_{token_id}_{pos}", and a difference target
// "{n_layers + 1}_{A}vs{B}_{pos}". It is circuit-tracer's node_id except for error nodes.
std::string nodeId(const Graph& graph, int64_t index);
// The node_id circuit-tracer (0.5) and Neuronpedia write, which the graph JSON holds: as
// nodeId, but error nodes are "0_{layer}_{pos}", which is also the id of the layer-0 feature
// whose index is that layer at that position. Files tell the two apart by feature_type
// (fromJson); an id in qParams that names both is the feature.
std::string fileNodeId(const Graph& graph, int64_t index);

struct PruneResult {
    std::vector<bool> nodeMask; // [n]: the nodes kept
    // [nnz]: per entry of the graph's adjacency (its entry numbers), the edge kept (both ends
    // kept). Only stored entries can be edges: A[t, s] = 0 is never one.
    std::vector<bool> edgeMask;
    // The number of edges kept.
    int64_t edgeCount() const;
    // Whether the masks have the sizes of this graph (its node count and adjacency entries).
    bool fits(const Graph& graph) const;
    // Whether the edge A[t, s] is kept (false when it is not an entry). O(log of the row's size).
    bool edgeKept(const Graph& graph, int64_t t, int64_t s) const;
    // [n]: each node's share of the total influence, cumulated over the nodes sorted by
    // influence (descending), as circuit-tracer's cumulative_scores; exported as "influence".
    // Empty when there is none.
    std::vector<float> cumulativeInfluence;
};

// The paper's two measures of how much of a graph the features explain (formulas at
// Pruner::scores and Pruner::scoresOf).
struct Scores {
    double replacement = 0; // token influence / (token influence + error influence)
    // circuit-tracer's completeness: the influence-weighted share of each node's inputs that
    // do not come from error nodes, where nodes without inputs (errors, embeddings) count as
    // complete; so a graph made only of error nodes scores 0.5.
    double completeness = 0;
    // The same over the nodes that have inputs only: 0 for a graph whose logits read only
    // error nodes, 1 for a graph with no error input anywhere.
    double correctedCompleteness = 0;
};

// Pruning as circuit-tracer's prune_graph, built once per graph so that re-pruning with new
// thresholds only masks, sums and selects (the UI's sliders call prune() on every move):
//  1. Nodes: every node's influence (above) is sorted, descending; the nodes whose influence is
//     at least the one at which the cumulative share first reaches nodeThreshold are kept. All
//     kinds compete (error nodes are pruned by influence like features, as circuit-tracer does);
//     embeddings and logits are then always kept.
//  2. Edges: A restricted to the kept nodes is re-normalized (A_hat_p) and its influence x_p
//     recomputed; edge scores are A_hat_p[t, s] (x_p[t] + w[t]), and the edges with a positive
//     score at least the one at which the cumulative share of the score first reaches
//     edgeThreshold are kept. (circuit-tracer also keeps zero-score entries when the threshold
//     falls on 0, which only happens at edgeThreshold = 1; here an edge needs a positive score.)
//  3. Dangling nodes, iterated to a fixed point: features and error nodes need a kept outgoing
//     edge, features a kept incoming edge; edges of dropped nodes are dropped. Embeddings and
//     logits stay.
// Step 2 sweeps the nodes ordered by their longest path to a logit (targets before their
// sources), so it costs one pass over the nonzero entries of the kept rows of A_hat instead of
// one matrix product per path length. Construction is sparse too: the influence series is
// summed by one sweep over the entries in a topological order of the nodes that reach a logit
// (on a DAG the same sum as circuit-tracer's one product per path length, without n^2 memory),
// which also gives each node's longest path. The Pruner shares the graph's Adjacency and keeps
// A_hat's values beside it (4 bytes per entry). On two cores: a 512-token tinyworld graph
// (18,713 nodes, 56.6M entries) builds in 0.34 s and re-prunes in 2.5 ms at 0.8 / 0.98 (the
// kept rows' entries only); tst_graph times a 2,000-node graph.
// Immutable after construction: prune() may run on any thread.
class Pruner {
public:
    // Throws cs::Error for a graph that fails Graph::validate() or has a cycle through a logit.
    explicit Pruner(const Graph& graph);

    // Thresholds in [0, 1]; throws cs::Error otherwise.
    PruneResult prune(double nodeThreshold, double edgeThreshold) const;

    int64_t size() const { return m_n; }
    const std::vector<float>& influence() const { return m_influence; } // [n]
    float influenceOf(int64_t node) const; // influence()[node]; throws cs::Error out of range
    const std::vector<float>& cumulativeInfluence() const { return m_cumulative; } // [n]
    const std::vector<float>& logitWeights() const { return m_logitWeights; } // [n], w
    // The whole graph's scores, as circuit-tracer's compute_graph_scores:
    //   replacement  = sum_{embeddings} infl / (sum_{embeddings} infl + sum_{errors} infl)
    //   completeness = sum_i (1 - sum_{e in errors} A_hat[i, e]) (infl_i + w_i) / sum_i (infl_i + w_i)
    // and correctedCompleteness, the same sums over the nodes i with inputs (a nonzero row)
    // only (0 where a denominator is 0).
    Scores scores() const { return m_scores; }

    // The scores of what a kept part of the graph explains: the nodes and edges of `kept`
    // (a prune() result, a pinned subgraph), measured against the whole graph, so that every
    // node and edge left out counts as unexplained, like error mass. With A_hat, infl and w the
    // whole graph's (never renormalized), E the kept edges (kept entries with both ends kept):
    //   replacement  = sum_{embeddings} infl_E / (sum_{embeddings} infl + sum_{errors} infl),
    //                  infl_E the influence summed over paths of kept edges only: the share of
    //                  the whole graph's end-to-end influence that reaches the tokens through
    //                  the kept graph (error, pruned and dropped paths are unexplained);
    //   completeness = sum_i c_i (infl_i + w_i) / sum_i (infl_i + w_i), with
    //                  c_i = 1 - sum_{s in errors} A_hat[i, s] - sum_{s not an error, (i, s) not in E} A_hat[i, s]
    //                  for nodes with inputs, 1 for nodes without (circuit-tracer's convention);
    //   correctedCompleteness: the same sum over the nodes with inputs only.
    // Every term is non-negative and fixed by the whole graph, so removing nodes or edges can
    // only lower the three scores, and keeping everything gives scores() (up to float64
    // rounding of the path sums). Throws cs::Error when `kept` does not fit the graph.
    Scores scoresOf(const PruneResult& kept) const;
    // scoresOf() the pinned subgraph: the pinned features (pinned: [n], indexed like the
    // nodes), every error node, embedding and logit, and the edges among them (within
    // `pruned`'s kept nodes and edges when given, as the explorer shows the subgraph).
    Scores subgraphScores(const std::vector<bool>& pinned, const PruneResult* pruned = nullptr) const;

private:
    int64_t m_n = 0;
    KindRanges m_ranges;
    Adjacency m_adjacency; // the graph's, shared
    std::vector<float> m_influence;
    std::vector<float> m_cumulative;
    std::vector<float> m_logitWeights;
    Scores m_scores;
    std::vector<uint8_t> m_hasInputs; // [n]: the row has a nonzero entry

    // Influence sorted descending and its cumulative share, for the node threshold.
    std::vector<float> m_sortedInfluence;
    std::vector<double> m_sortedShare;

    // The r nodes with a path to a logit, ordered by the length of their longest such path
    // (logits first), so that every source comes after all of its targets; prune() walks their
    // rows of the adjacency in that order.
    std::vector<int64_t> m_order; // [r]: position in the level order -> node index
    std::vector<float> m_normalized; // [nnz]: A_hat per adjacency entry, |A[t, s]| / row scale
    std::vector<double> m_rowScale; // [n]: the clamped row sum of |A| that A_hat divided by
};

// Every node, and every edge with a nonzero weight: what an imported, already pruned graph
// shows as it is. cumulativeInfluence as the Pruner's.
PruneResult keepAll(const Graph& graph);

// circuit-tracer's compute_graph_scores for the whole graph (builds a Pruner).
Scores graphScores(const Graph& graph);

// {"replacement", "completeness", "corrected_completeness"}.
nlohmann::json scoresJson(const Scores& scores);
// A graph JSON's metadata.scores: the whole graph's scores at the top level (the keys of
// scoresJson), and both named: "full" (the whole graph) and "pruned" (what `pruned` keeps,
// scoresOf).
nlohmann::json scoresMetadata(const Pruner& pruner, const PruneResult& pruned);

// Pruner(graph).subgraphScores(pinned, pruned): the scores of the pinned subgraph, in which
// everything left out counts as unexplained (see Pruner::scoresOf).
Scores subgraphScores(const Graph& graph, const std::vector<bool>& pinned, const PruneResult* pruned = nullptr);

// Neuronpedia's subgraph score (its graph page's score worker), a different quantity kept
// under its own name: every feature that is not pinned is merged into the error node at its
// layer and position (its outgoing column is added, signed, to the error node's column; its
// row and column are cleared), and the whole-graph scores above are computed afresh on that
// matrix, renormalized. Pinning matters only for features: error nodes, embeddings and logits
// are never merged. With `pruned`, the graph is first restricted to its kept nodes and edges
// (what Neuronpedia scores, since its file holds the pruned graph); an unpinned feature whose
// error node was pruned is then dropped, and what it carried vanishes from the renormalized
// rows: pinning every kept feature of a harshly pruned graph scores 1.0 / 1.0. pinned: [n].
// correctedCompleteness as in Scores, on the merged matrix.
Scores neuronpediaSubgraphScores(
    const Graph& graph, const std::vector<bool>& pinned, const PruneResult* pruned = nullptr);

// The circuit-tracer / Neuronpedia graph JSON of the kept nodes and edges (docs/ARCHITECTURE.md
// §11.3; valid against Neuronpedia's graph schema). Node fields as circuit-tracer's frontend
// Node; the metadata carries metadata.extra merged in; links are ordered by target, then source.
nlohmann::json toJson(const Graph& graph, const PruneResult& pruned);

// Reads what toJson and circuit-tracer write: the file's nodes and links become a graph whose
// adjacency holds exactly the listed links. Nodes are told apart by feature_type, so the error
// ids of older circuit-tracer versions ("0_{layer}_{pos}", equal to a layer-0 feature's id) are
// read as errors; a link naming such an id goes to the node that can be its end (errors have no
// inputs; a source sits at a lower layer and no later position than its target), and, where both
// can, by circuit-tracer's link order (by target, then by source in node order). Throws cs::Error
// naming the place of a missing key, a wrong type, an unknown node id or a repeated link.
Graph fromJson(const nlohmann::json& json);

// toJson / fromJson through a file, written atomically; errors name the path.
void writeJsonFile(const std::string& path, const Graph& graph, const PruneResult& pruned);
Graph readJsonFile(const std::string& path);

// The saved full graph (".csgraph"): what a trace produced, unpruned, so that it can be pruned
// again at any thresholds (the graph JSON holds only the pruned links). One safetensors file:
//   "adjacency.row_starts" [n + 1] I64, Graph::adjacency's arrays (sparse rows, see Adjacency)
//   "adjacency.columns"    [nnz] I32
//   "adjacency.values"     [nnz] F32
//   "logit_probabilities"  [n_logits] F32
//   __metadata__ "circuitscope.graph": JSON text
//     {"format": "circuitscope.graph", "version": 2,
//      "metadata": {"slug", "prompt", "prompt_tokens", "scan", "transcoder_list", "node_threshold",
//                   "edge_threshold", "q_params", "extra"},
//      "nodes": [{"kind": "feature" | "error" | "embedding" | "logit", "layer", "position",
//                 "feature", "activation", "token_id", "token", "token_prob", "label"}, ...]}
// in node order. Text that is not valid UTF-8 (a token holding part of a character) is written
// as an array of its bytes, so every string comes back byte for byte; numbers come back exactly.
// Version 1 files (before the adjacency was sparse) hold one dense "adjacency" [n, n] F32 in
// place of the three arrays; they are still read.
constexpr const char* kGraphFileExtension = ".csgraph";
constexpr const char* kGraphFileMetadataKey = "circuitscope.graph";
constexpr int kGraphFileVersion = 2;

// Writes atomically (a temporary sibling, then rename). Throws cs::Error naming the path for a
// graph that fails Graph::validate(), a non-finite node value or a failed write.
void writeGraphFile(const std::string& path, const Graph& graph);
// Reads and checks everything: the format and version, every key's type, the tensors' dtypes
// and shapes against the node count, the node order and finite values (Graph::validate). A
// truncated, foreign or corrupt file, or a graph JSON, throws cs::Error naming the path and
// what is wrong.
Graph readGraphFile(const std::string& path);
// True when the file starts as a safetensors file does (an 8-byte little-endian header length
// that fits in the file, then '{'): a graph file rather than a graph JSON (which starts with
// '{'). Only the first bytes are read; throws cs::Error when the file cannot be read.
bool isGraphFile(const std::string& path);

} // namespace cs::graph
