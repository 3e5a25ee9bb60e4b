#pragma once
// Attribution graphs (docs/ARCHITECTURE.md §6): the direct effects between the sources and
// targets of a prompt's local replacement model (replacement.h).
//
// Sources: active features (a_s W_dec_{s->l} written to the MLP output of every layer l the
// feature reaches), error nodes (e_{l,p} at mlp_out of layer l, position p) and token
// embeddings (at the residual stream's start). Targets: active features (the read vector is
// the encoder row; the target quantity is the pre-activation without its bias) and logits (the
// read vector is the demeaned unembedding row behind the frozen final norm; the quantity is the
// demeaned logit). The edge
//   A[t, s] = sum_l < source vector of s at layer l, J_{(l, p_s) -> (l_t, p_t)} w_t >
// where J is the Jacobian of the frozen linear model. Because the model is affine in its
// sources, for every target: sum_s A[t, s] + constant_t = the target quantity, where the
// constant collects biases, position embeddings and held positions; the tracer measures this
// residual for every row it computes (Exactness).
//
// Two implementations compute rows of A and must agree to 1e-5 relative:
//  - Explicit: the hand-written transpose of the frozen linear model, batched over target rows:
//    inject each row's read vector at its layer and position, sweep down the layers through the
//    skip connection, the attention OV circuit with frozen patterns and the frozen norms, and
//    contract with the sources of each layer as they are passed. Only the causal cone is
//    touched: a batch runs over the positions up to its last target's and from its highest
//    target layer down.
//  - Autograd: the model's own forward pass (frozen state replayed, MLPs replaced by decoders
//    scaled by per-source coefficients) differentiated by LibTorch autograd, one batch row per
//    target.

#include "cs/graph.h"
#include "cs/replacement.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cs::attribution {

enum class Method { Explicit, Autograd };
const char* methodName(Method method); // "explicit", "autograd"
std::optional<Method> methodFromName(const std::string& name);

// Which logits are targets.
struct LogitTargets {
    // By probability: the most likely tokens, at most maxNLogits, stopping once their cumulative
    // probability reaches desiredLogitProb (as circuit-tracer's compute_salient_logits).
    int64_t maxNLogits = 10;
    double desiredLogitProb = 0.95;
    // Named tokens instead (in this order). Their weights in the influence (and so in pruning
    // and the scores) are `weights` when given (one per token, non-negative, not all 0), else
    // equal (1 / the number of tokens): weighting a named token by its probability would let
    // an unlikely one ("why not B?") lose its whole circuit to pruning. (By probability, the
    // weights are the probabilities, as circuit-tracer's.)
    std::vector<int64_t> tokens;
    std::vector<double> weights;
    // One target "A vs B" instead: the logit difference logit_A - logit_B, weight 1.
    std::optional<std::pair<int64_t, int64_t>> difference;
};

struct TraceOptions {
    LogitTargets logits;
    // Feature rows computed and feature nodes kept, visited by estimated influence on the
    // logits as circuit-tracer does; < 0 or >= the number of active features: all of them.
    int64_t maxFeatureNodes = -1;
    // Target rows per batch, at most; fewer when a batch's working set would pass the budget.
    int64_t batchSize = 256;
    // The working set of one batch (gradients over its cone, the autograd graph) stays under
    // this, so memory grows with the graph, not with batch x prompt length.
    int64_t memoryBudgetBytes = int64_t(256) << 20;
    Method method = Method::Explicit;
    // The memory the trace may take at its peak (estimateTraceMemory), checked before any row is
    // computed: 0, what the device (and the CPU, for the rows) has available; > 0, this many
    // bytes; < 0, no check. A trace that would not fit is refused with the feature cap that would.
    int64_t memoryLimitBytes = 0;
    // Called after each batch with the fraction of rows done; returning false cancels (throws
    // cs::Cancelled).
    std::function<bool(double fraction)> progress;
};

// sum_s A[t, s] + constant_t against the target's actual quantity, over every computed row,
// with A's rows as the graph holds them (after the feature cap's fold).
struct Exactness {
    double maxAbsResidual = 0;
    // |residual| / (|w_t| |x_t|): the residual against the largest value the target's read
    // vector w_t could give on the vector x_t it reads (the transcoder input, or the final
    // residual), the scale that float32 rounding of the forward pass works at.
    double maxRelResidual = 0;
    int64_t rows = 0;
};

struct TraceStats {
    int64_t activeFeatures = 0; // all active features of the prompt
    int64_t rows = 0; // target rows computed (logits + visited features)
    int64_t batches = 0;
    double rowsMs = 0; // computing rows (the sweep and contraction, or autograd)
    double influenceMs = 0; // ordering the visits (only when maxFeatureNodes limits them)
    double totalMs = 0;
    double flops = 0; // floating-point operations of the explicit sweep (0 for autograd)
    // The peak memory estimated before the rows (estimateTraceMemory): on the model's device,
    // and in the CPU's memory besides.
    int64_t memoryDeviceBytes = 0, memoryHostBytes = 0;
};

// A logit target: a weighted sum of demeaned logits at the last position (one token with
// coefficient 1, or "A vs B" as A: 1, B: -1).
struct LogitTarget {
    std::vector<int64_t> tokens;
    std::vector<double> coefficients;
    std::vector<double> probabilities; // the model's probability of each token
    double weight = 0; // the target's weight in the influence (LogitTargets)
};

struct TraceResult {
    // Nodes: the visited features, every error node, every token embedding, the logit targets;
    // adjacency as graph.h describes, full (unpruned). With a feature cap, the columns of the
    // features that were not visited are folded into the error node at their layer and
    // position (that node then carries the MLP error plus those features), so every row keeps
    // its sum and the exported graph stays exact. Metadata: prompt tokens, scan, and in extra:
    // "exactness" {max_abs_residual, max_rel_residual, rows}, "info" (method, options),
    // "generation_settings" (circuit-tracer's keys, and ours: method, logit_weights) and, for a
    // difference target, "logit_difference" {token_id, token, prob, contrast_token_id,
    // contrast_token, contrast_prob}.
    graph::Graph graph;
    Exactness exactness;
    TraceStats stats;
    std::vector<LogitTarget> logitTargets; // one per logit node, in node order
    // [rows] the constant part and actual quantity of each computed target row, in node order
    // of the rows that are graph nodes (features, then logits): for tests and the explorer.
    at::Tensor constants;
    at::Tensor actuals;
};

// Tracing the context with these options, at its peak: the attribution rows (kept sparse on the
// CPU; each row at most its causal cone, the sources at earlier layers and positions up to the
// target's), their assembly into the graph, the pass's own state, a batch's working set and the
// replacement run of the constants. nLogits: the logit targets; < 0, the most the options allow.
MemoryEstimate estimateTraceMemory(
    const ReplacementContext& context, const TraceOptions& options, int64_t nLogits = -1);

// Traces the context's prompt. Throws cs::Error for bad options (a named token outside the
// vocabulary, a non-positive batch size), for a trace that would not fit in memory
// (memoryLimitBytes) and cs::Cancelled when progress says so.
TraceResult trace(const ReplacementContext& context, const TraceOptions& options = {});

// The rows of A for the given target nodes of a traced graph, recomputed by one method over
// every source column of the context (active features, errors, embeddings): for comparing the
// two implementations on any rows. targets index result.graph.nodes (features or logits).
at::Tensor computeRows(const ReplacementContext& context, const TraceResult& result,
    const std::vector<int64_t>& targets, Method method, int64_t batchSize = 64);

} // namespace cs::attribution
