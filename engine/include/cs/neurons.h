#pragma once
// Neuron-basis attribution (docs/ARCHITECTURE.md §8.4; Arora & Wu, "Language Model Circuits Are
// Sparse in the Neuron Basis"): a scalar metric attributed to the model's own units, with no
// transcoder, so circuits can be traced in any supported model.
//
// Node kinds, each per position and per unit: MLP neurons (the post-nonlinearity hidden units,
// act(gate) * up for gated MLPs; hook mlp_hidden), MLP outputs, attention outputs and the
// residual stream after each layer (per dimension).
//
// Methods:
// - RelP, one backward pass through the linearized network: attention patterns and every norm
//   denominator held at the prompt's values, each activation f(z) passing f(z) / z (SiLU:
//   sigmoid(z) held constant), gate x up split by the half rule, identity elsewhere
//   (ForwardOptions::relp). The score of a unit is its value times the gradient there (paired:
//   its value minus the counterfactual prompt's, as attribution patching does). The linearized
//   network is linear in the residual stream, so at a layer's residual stream (a cut every path
//   crosses) the unpaired scores sum to the metric when the model has no biases.
// - Integrated gradients, per layer: that layer's units move along the straight line from a
//   baseline (zero, or the counterfactual prompt's values at the same positions) to the
//   prompt's, the rest of the model running as usual; the score is (x - x') times the mean
//   gradient along the path, by `steps`-point Gauss-Legendre quadrature, batched. They sum to m(x) - m(x with the layer
//   at the baseline) up to the quadrature's error (the completeness axiom). A leading BOS token is held at its values
//   (score 0): it is the same in every prompt, and moving the attention sink sends the path through states no prompt
//   reaches.

#include "cs/graph.h"
#include "cs/token_score.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cs::model {
class Model;
class Tokenizer;
enum class Hook;
} // namespace cs::model
namespace cs::intervention {
struct FeatureEdit;
}
namespace cs::transcoder {
class TranscoderSet;
}

namespace cs::neurons {

enum class NodeKind { Neurons, MlpOut, AttnOut, Resid };
const char* nodeKindName(NodeKind kind); // "neurons", "mlp_out", "attn_out", "resid"
NodeKind nodeKindFromName(const std::string& name); // throws cs::Error for another name
model::Hook hookOf(NodeKind kind); // mlp_hidden, mlp_out, attn_out, resid_post

enum class Method { RelP, IntegratedGradients };
const char* methodName(Method method); // "relp", "ig"
Method methodFromName(const std::string& name); // throws cs::Error for another name

// The metric at the prompt's last position: logit(answer) - logit(counterfactual), or
// logit(answer) alone when counterfactual < 0. Raw logits (after any final soft-cap).
struct Metric {
    int64_t answer = -1;
    int64_t counterfactual = -1;
};
// The token an answer text is scored by: its first. Throws cs::Error "{what} \"{text}\" has no
// tokens" for text that encodes to none.
int64_t answerToken(const model::Model& model, const std::string& text, const std::string& what);

struct AttributionOptions {
    Method method = Method::RelP;
    NodeKind kind = NodeKind::Neurons;
    int64_t steps = 32; // integrated gradients: points on the path (Gauss-Legendre)
    int64_t batchSize = 32; // integrated gradients: path points a forward pass
    // The counterfactual prompt (the same token count): integrated gradients' baseline, and
    // what RelP's scores are the difference from. Empty: from zero.
    std::vector<int64_t> baselineIds;
};

struct Attribution {
    std::vector<at::Tensor> scores; // per layer [n_pos, width] float32 on the CPU
    std::vector<at::Tensor> values; // per layer [n_pos, width]: the prompt's values there
    double metric = 0; // m(x)
    // Integrated gradients: per layer, m with that layer's units at the baseline (the scores of
    // layer l sum to metric - baselineMetric[l]). Empty for RelP.
    std::vector<double> baselineMetric;
    double seconds = 0;
};

// Throws cs::Error for an empty prompt or one longer than the model's context, tokens out of
// the vocabulary, steps or batch size < 1, or a baseline prompt of another length.
Attribution attribute(const model::Model& model, const std::vector<int64_t>& ids, const Metric& metric,
    const AttributionOptions& options = {});

// An attribution graph in the neuron basis (the graph JSON of cs/graph.h, Metadata::basis the
// node kind). Nodes: the `maxNodes` units with the largest |score| by the chosen method (never
// at a leading BOS, never with value 0), in (layer, position, unit) order; per layer and
// position an error node standing for that layer's other units there (the MLP's, the
// attention's or the residual stream's units that are not nodes); the token embeddings (with
// the position embedding, for models that add one); one logit node, the metric.
//
// Edges are direct effects in RelP's linearized network: the forward pass runs with the node
// kind's hook detached at every layer (a stop-gradient: no path may pass through another unit
// of that kind), and the edge from source s to target t is x_s * d(t)/d(x_s) there, one batch
// row per target. A target's quantity is its value at the hook (a neuron: act(gate) * up with
// RelP's rules; a logit: the metric). The linearized network is linear in every layer's units,
// so each row sums to its quantity up to the model's biases (exactness in the result: 0 to
// float rounding for bias-free models such as tinyworld). An error node's edge is the sum of
// x * grad over the layer's units at its position minus the nodes' among them.
//
// Edges use the prompt's values, not their difference from a counterfactual: the counterfactual
// (options.attribution.baselineIds) only changes which units become nodes.
struct TraceOptions {
    AttributionOptions attribution; // which units become nodes: method, node kind, steps
    int64_t maxNodes = 1024; // units kept as nodes; < 0: every unit with a nonzero value
    int64_t batchSize = 32; // target rows per backward pass
    std::function<bool(double)> progress; // the fraction of rows done; false cancels (cs::Cancelled)
};

struct TraceResult {
    graph::Graph graph; // unpruned; extra metadata: "exactness", "neuron_trace" (the options)
    Attribution attribution; // the node selection's scores over every unit
    double maxAbsResidual = 0; // max over rows of |quantity - sum of the row|
    double maxRelResidual = 0; // the same over the row's sum of |entries| (and |quantity|)
    int64_t rows = 0;
    double attributionMs = 0, edgesMs = 0, totalMs = 0;
};

// Throws cs::Error as attribute() does, and cs::Cancelled.
TraceResult trace(
    const model::Model& model, const std::vector<int64_t>& ids, const Metric& metric, const TraceOptions& options = {});

// Interventions on the model's own units: each edit (cs/intervention.h's FeatureEdit, its
// `feature` the unit) sets, scales (0 ablates) or adds to one unit of the node kind at a layer
// and position (-1: every position) as the real model runs; nothing is frozen. The top tokens
// and logits at the prompt's last position before and after.
struct UnitInterventionResult {
    std::vector<TokenScore> before, after;
    at::Tensor logitsBefore, logitsAfter; // [vocab] float32 on the CPU
};
// The units' values on a prompt, per layer [n_pos, width] float32 on the CPU (for patching one
// prompt's units into another's run: Set edits with these values).
std::vector<at::Tensor> unitValues(const model::Model& model, const std::vector<int64_t>& ids, NodeKind kind);
// The forward pass hook that applies `edits` (copied) to the node kind's units, as intervene()
// does: for generation with the edits held on every step (GenerateOptions::hook).
std::function<void(int64_t layer, model::Hook hook, at::Tensor& value)> editHook(
    NodeKind kind, const std::vector<intervention::FeatureEdit>& edits);
// Throws cs::Error naming the edit whose layer, position or unit is outside the model, or a
// non-finite value.
UnitInterventionResult intervene(const model::Model& model, const std::vector<int64_t>& ids, NodeKind kind,
    const std::vector<intervention::FeatureEdit>& edits, int64_t topK = 10);

// A task of paired prompts, one JSON object a line: {"prompt", "answer", "counterfactual",
// "counterfactual_answer"}; the counterfactual pair may be left out (the metric is then the
// answer's logit alone). Answers are text whose first token is scored (" Austin").
struct TaskItem {
    std::string prompt, answer, counterfactual, counterfactualAnswer;
};
// Throws cs::Error naming the file and line for a line that is not such an object.
std::vector<TaskItem> readTask(const std::string& path);
// Paired items from a task's prompts and answers (tinyworld's evaluation items): each prompt's
// counterfactual is another with as many tokens and an answer whose first token differs (or,
// when `contrasts` gives the answer it is scored against, agreement's " is" / " are", an answer
// equal to that contrast); of those, the one sharing the most tokens at the same positions (the
// same template with one name changed). Items with no such partner are left out; at most `max`.
std::vector<TaskItem> pairItems(const std::vector<std::pair<std::string, std::string>>& promptsAndAnswers,
    const std::vector<std::string>& contrasts, const model::Tokenizer& tokenizer, size_t max);
void writeTask(const std::string& path, const std::vector<TaskItem>& items); // atomically

// Circuits and their evaluation (Marks et al.): per item, the circuit C of k nodes is the k
// (layer, position, unit) with the largest |score|; the nodes outside a set are mean-ablated,
// each set to its mean at that position over the task's prompts (clean and counterfactual) of
// the item's token count, as Marks et al. do on templated data (over every position of every
// prompt when no other prompt has that count). A leading BOS is never a node and never
// ablated. Over the task's items:
//   faithfulness(C) = (m(C) - m(empty)) / (m(M) - m(empty))     (1 for C = M, 0 for C = empty)
//   completeness(C) = faithfulness(M \ C), C itself ablated: near 0 when C holds all the model
//                     uses, 1 when it holds nothing
// with m(.) the metric summed over the items.
struct CurveOptions {
    AttributionOptions attribution;
    // Transcoder features as the nodes instead of the model's units (attribution.kind is then
    // not read; its method and steps are): per layer, position and feature, on each prompt's
    // replacement model (cs/replacement.h) with the error terms held at the prompt's values, so
    // the full circuit is the model itself. RelP runs the frozen replacement model with every
    // layer's features recomputed from its own input; integrated gradients and the ablations run
    // the free one (attention live, later layers re-encoded). A held BOS has no features.
    std::shared_ptr<const transcoder::TranscoderSet> transcoders;
    std::vector<int64_t> ks = { 10, 20, 50, 100, 200, 500 };
    std::function<bool(double)> progress; // the fraction done; false cancels (throws cs::Cancelled)
};

struct CurvePoint {
    int64_t k = 0;
    double faithfulness = 0, completeness = 0;
};

struct Curve {
    std::vector<CurvePoint> points;
    int64_t items = 0;
    double full = 0, empty = 0; // m(M) and m(empty), summed over the items
    double seconds = 0;
};

Curve evaluateCircuits(const model::Model& model, const std::vector<TaskItem>& task, const CurveOptions& options);

// Edge circuits (the paper's RQ4): per item the node circuit C is the neuron trace's top
// `nodes` units (trace(), its RelP edges), and an edge set E keeps the `fraction` of C's
// candidate edges (unit -> unit and unit -> metric) with the largest |edge|. Nodes outside C are
// mean-ablated as in evaluateCircuits; an edge u -> d outside E is ablated to first order: d is
// moved by A[d, u] * (mean_u / x_u - 1), the change the graph's linearized network gives for u
// at its mean along that edge alone (the metric likewise for u -> metric), as the real model
// runs. faithfulness(E) = (m(C, E) - m(empty)) / (m(M) - m(empty)); completeness(E) = the
// faithfulness of C with E's edges removed and the others kept.
struct EdgeCurveOptions {
    AttributionOptions attribution; // how C's units are chosen (method, node kind)
    int64_t nodes = 200;
    std::vector<double> fractions = { 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0 };
    std::function<bool(double)> progress;
};
struct EdgeCurvePoint {
    double fraction = 0;
    int64_t edges = 0; // kept, summed over the items
    double faithfulness = 0, completeness = 0;
};
struct EdgeCurve {
    std::vector<EdgeCurvePoint> points;
    int64_t items = 0;
    int64_t candidates = 0; // C's candidate edges, summed over the items
    double full = 0, empty = 0, nodesOnly = 0; // m(M), m(empty), m(C with every edge), summed
    double seconds = 0;
};
EdgeCurve evaluateEdgeCircuits(
    const model::Model& model, const std::vector<TaskItem>& task, const EdgeCurveOptions& options);

// The means the ablations use, per layer: with byPosition (every prompt of one token count),
// [n_pos, width], the mean at each position; otherwise [width], over every position (a leading
// BOS left out) of every prompt.
std::vector<at::Tensor> meanValues(const model::Model& model, const std::vector<std::vector<int64_t>>& prompts,
    NodeKind kind, bool byPosition = false);
// The metric with every node where `keep` (per layer [n_pos, width] bool) is false set to its
// mean (means per layer [width] or [n_pos, width]); a leading BOS is kept whatever `keep` says.
double ablatedMetric(const model::Model& model, const std::vector<int64_t>& ids, const Metric& metric, NodeKind kind,
    const std::vector<at::Tensor>& means, const std::vector<at::Tensor>& keep);

} // namespace cs::neurons
