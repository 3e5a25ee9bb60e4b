#pragma once
// Checking a graph against the model (docs/ARCHITECTURE.md §8.5): the paper's perturbation
// experiments. Edit a node or a set of nodes (a := factor * a; factor 0 ablates, a negative
// one suppresses) and compare what the graph predicts with what the replacement model does,
// for the nodes downstream and for the logits, in both regimes of intervention.h:
//
//   Constrained (attention, norms and every other feature frozen: direct effects only). The
//     graph predicts exactly: a target's input moves by (factor - 1) * sum_{s edited} A[t, s].
//   Free (attention and norms recomputed, every feature re-encoded, errors held). The graph
//     predicts by path sums: with J[t, s] = A[t, s] / a_s (the direct effect per unit of the
//     source's activation), the change of every feature's input is propagated down the graph,
//     (I - J)^-1 restricted to feature nodes, with each intermediate feature taken as linear
//     in its input (an active JumpReLU or ReLU feature is: slope 1). Attention and norms that
//     move, features that switch on or off and thresholds crossed on the way are what the
//     prediction leaves out; the difference is what the free regime measures.
//
// Values: a feature's activity is its activation; a predicted activation is the node's own
// activation function applied to its predicted pre-activation (the context's pre-activation
// plus the predicted change), so a threshold the prediction crosses is honoured at the node
// itself. A logit node's activity is its demeaned logit (the graph's unit: u_t - mean_v u_v
// behind the final norm; a difference target "A - B" is the difference), with the final
// norm's denominator frozen in the constrained regime and the run's own in the free one.
// Effects are changes: after - initial.
//
// The graph must be the context's: traced from the same prompt with the same transcoder set
// (checked against the context's activations). A graph traced with a feature cap folds the
// features it left out into error nodes, which are held: their paths are then missing from
// the free prediction (not from the constrained one).

#include "cs/graph.h"
#include "cs/replacement.h"

#include <cstdint>
#include <string>
#include <vector>

namespace cs::validation {

struct NodeActivity {
    int64_t node = 0; // the graph's node index (a feature or a logit)
    double initial = 0; // the context's activation or demeaned logit
    double predictedConstrained = 0; // the value after the edit, per the graph
    double actualConstrained = 0; // per the replacement model
    double predictedFree = 0;
    double actualFree = 0;
};

struct PerturbationResult {
    std::vector<int64_t> sources;
    double factor = 0;
    std::vector<NodeActivity> nodes; // the watched nodes, in the order asked
};

// Scales the activations of the feature nodes `sources` of `graph` by `factor` and reports the
// watched feature and logit nodes (empty: connectedNodes(graph, sources)). Throws cs::Error for
// no sources, a source or watched node of another kind or out of range, a non-finite factor,
// or a graph that is not the context's.
PerturbationResult perturb(const attribution::ReplacementContext& context, const graph::Graph& graph,
    const std::vector<int64_t>& sources, double factor, std::vector<int64_t> watch = {});

// The nodes a perturbation chart shows: the features the sources have an edge into (the
// sources left out), largest |edge| first, at most maxFeatures, then every logit node.
std::vector<int64_t> connectedNodes(
    const graph::Graph& graph, const std::vector<int64_t>& sources, int64_t maxFeatures = 24);

// One edited node's effect (a change, after - initial) on the target logit.
struct ValidationPoint {
    int64_t node = 0;
    double influence = 0; // the node's influence on the logits (Pruner::influence)
    double predicted = 0; // constrained: the direct edge times the activation's change
    double predictedFree = 0; // the path sum
    double actualConstrained = 0;
    double actualFree = 0;
};

// The effect of one edited node on another of the top nodes downstream of it.
struct DownstreamPoint {
    int64_t source = 0;
    int64_t node = 0;
    double predicted = 0, predictedFree = 0, actualConstrained = 0, actualFree = 0;
};

struct Correlation {
    double constrained = 0; // Pearson's r of predicted and actual; NaN when either is constant
    double free = 0;
};

struct Validation {
    int64_t target = 0; // the logit node the points measure (the graph's first: its target)
    double factor = 0;
    std::vector<ValidationPoint> points; // by influence, descending
    std::vector<DownstreamPoint> downstream;
    Correlation correlation; // of the points
    Correlation downstreamCorrelation;
};

// The paper's check: each of the topN feature nodes by influence, edited alone (a := factor * a),
// its predicted and actual effect on the target logit and on the other top nodes it has an
// edge into. Two runs of the replacement model per node. Throws as perturb().
Validation validateGraph(
    const attribution::ReplacementContext& context, const graph::Graph& graph, int64_t topN = 30, double factor = 0);

// Pearson's correlation coefficient; NaN when the lists are shorter than 2 or either is constant.
double pearson(const std::vector<double>& x, const std::vector<double>& y);

// "ablate" -> 0, "scale:F" -> F (finite); throws cs::Error otherwise. The --op of `validate`.
double parseEditFactor(const std::string& op);

// {"targets": [...], "points": [...], "downstream": [...], "correlation": {...},
// "downstream_correlation": {...}} as `circuitscope-cli validate --json` prints it.
nlohmann::json validationJson(const graph::Graph& graph, const Validation& validation);
// The same keys for one perturbation: {"sources", "factor", "nodes": [{"node", "initial",
// "predicted_constrained", "actual_constrained", "predicted_free", "actual_free"}]}.
nlohmann::json perturbationJson(const graph::Graph& graph, const PerturbationResult& result);

} // namespace cs::validation
