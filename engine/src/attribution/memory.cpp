// Peak memory of recording a prompt and of tracing it, estimated from shapes before the work
// starts (replacement.h, attribution.h; docs/ARCHITECTURE.md §6.4), and the refusal when it
// would not fit. Every figure is an upper bound of what the code allocates at its peak, so that
// a refusal never stops work that fits, but the bound is tight where it matters: the
// attribution rows are counted by their causal cones, which the rows fill.
#include "attribution/memory.h"

#include "attribution/row_pass.h"
#include "cs/error.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <numeric>

namespace cs::attribution {

namespace {

constexpr int64_t kFloat = 4;

std::string gib(int64_t bytes)
{
    char text[32];
    if (bytes >= (int64_t(1) << 30))
        std::snprintf(text, sizeof text, "%.1f GiB", static_cast<double>(bytes) / double(int64_t(1) << 30));
    else if (bytes >= (1 << 20))
        std::snprintf(text, sizeof text, "%.0f MiB", static_cast<double>(bytes) / double(1 << 20));
    else
        std::snprintf(text, sizeof text, "%.0f KiB", static_cast<double>(bytes) / 1024.0);
    return text;
}

// The largest parts, for the message: "activations 8.5 GiB, attention patterns 2.1 GiB".
std::string largestParts(const MemoryEstimate& estimate)
{
    std::vector<MemoryEstimate::Part> parts = estimate.parts;
    std::sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) { return a.bytes > b.bytes; });
    std::string out;
    for (size_t i = 0; i < parts.size() && i < 3; ++i)
        out += (i ? ", " : "") + parts[i].name + " " + gib(parts[i].bytes);
    return out;
}

} // namespace

int64_t MemoryEstimate::deviceBytes() const
{
    int64_t total = 0;
    for (const auto& p : parts)
        total += p.host ? 0 : p.bytes;
    return total;
}

int64_t MemoryEstimate::hostBytes() const
{
    int64_t total = 0;
    for (const auto& p : parts)
        total += p.host ? p.bytes : 0;
    return total;
}

int64_t MemoryEstimate::bytes(const std::string& name) const
{
    for (const auto& p : parts)
        if (p.name == name)
            return p.bytes;
    return 0;
}

MemoryEstimate estimateContextMemory(const model::Model& model, const transcoder::TranscoderSet& set, int64_t nPos)
{
    const auto& mc = model.config();
    const int64_t nLayers = mc.nLayers, d = mc.dModel, p = nPos;
    const int64_t features = nLayers * set.nFeatures(); // over every layer
    MemoryEstimate e;
    // Kept: pre-activations and activations [n_pos, n_features] per layer; the transcoder
    // inputs, MLP outputs and errors [n_pos, d_model] per layer; the frozen patterns [n_heads,
    // n_pos, n_pos] and norm denominators (per head for Q and K) per layer; the logits.
    e.parts.push_back({ "activations", 2 * kFloat * p * features, false });
    e.parts.push_back({ "layer vectors", kFloat * (3 * nLayers * p * d + 3 * p * d), false });
    e.parts.push_back({ "attention patterns",
        kFloat * nLayers * (mc.nHeads * p * p + model::kNormSiteCount * p * std::max<int64_t>(mc.nHeads, 1)), false });
    e.parts.push_back({ "logits", kFloat * p * mc.vocabSize, false });
    // Temporaries at the peak: one layer's attention scores and their softmax, its MLP's
    // hidden activations, the logits' float copy, and the stacked activations that the active
    // features are read from (replacement.cpp's activeFeatures).
    e.parts.push_back({ "forward temporaries",
        kFloat * (2 * mc.nHeads * p * p + 3 * p * mc.dMlp + p * mc.vocabSize + p * features), false });
    return e;
}

MemoryEstimate estimateTraceMemory(const ReplacementContext& ctx, const TraceOptions& options, int64_t nLogits)
{
    if (nLogits < 0) {
        const LogitTargets& want = options.logits;
        nLogits = want.difference  ? 1
            : !want.tokens.empty() ? static_cast<int64_t>(want.tokens.size())
                                   : std::min(want.maxNLogits, ctx.model->config().vocabSize);
    }
    const model::Model& model = *ctx.model;
    const auto& mc = model.config();
    const transcoder::TranscoderSet& tc = *ctx.transcoders;
    const int64_t nLayers = ctx.nLayers(), nPos = ctx.nPos(), nActive = ctx.active.size();
    const int64_t d = mc.dModel;
    SourceLayout layout;
    layout.nFeatures = nActive;
    layout.nLayers = nLayers;
    layout.nPos = nPos;
    const int64_t columns = layout.columns();
    const int64_t limit
        = options.maxFeatureNodes < 0 || options.maxFeatureNodes >= nActive ? nActive : options.maxFeatureNodes;

    // Active features per (layer, position), and below[l][p]: those at layers < l and
    // positions <= p: the features in the causal cone of a target reading at (l, p).
    std::vector<int64_t> count(static_cast<size_t>(nLayers * nPos), 0);
    at::Tensor layerCpu = ctx.active.layer.cpu().contiguous(), posCpu = ctx.active.position.cpu().contiguous();
    const int64_t* activeLayer = layerCpu.data_ptr<int64_t>();
    const int64_t* activePos = posCpu.data_ptr<int64_t>();
    for (int64_t i = 0; i < nActive; ++i)
        ++count[static_cast<size_t>(activeLayer[i] * nPos + activePos[i])];
    std::vector<int64_t> below(static_cast<size_t>((nLayers + 1) * nPos), 0);
    for (int64_t l = 1; l <= nLayers; ++l)
        for (int64_t q = 0, run = 0; q < nPos; ++q) {
            run += count[static_cast<size_t>((l - 1) * nPos + q)];
            below[static_cast<size_t>(l * nPos + q)] = below[static_cast<size_t>((l - 1) * nPos + q)] + run;
        }
    // A feature row's entries: at most the features, errors and embeddings of its cone. With a
    // feature cap the visited rows are chosen as the trace goes, so the bound takes the largest.
    std::vector<int64_t> cones(static_cast<size_t>(nActive));
    for (int64_t i = 0; i < nActive; ++i) {
        const int64_t l = activeLayer[i], q = activePos[i];
        cones[static_cast<size_t>(i)] = below[static_cast<size_t>(l * nPos + q)] + (l + 1) * (q + 1);
    }
    if (limit < nActive)
        std::nth_element(cones.begin(), cones.begin() + limit, cones.end(), std::greater<>());
    const int64_t entries = nLogits * columns + std::accumulate(cones.begin(), cones.begin() + limit, int64_t(0));
    const int64_t rows = nLogits + limit;
    const int64_t nNodes = limit + nLayers * nPos + nPos + nLogits;

    MemoryEstimate e;
    // The rows as sparse entries (an int32 column and a float32 value each) with per-row
    // offsets and float64 sums, on the CPU; while the graph is assembled its CSR arrays hold
    // the same entries again, and the nodes.
    e.parts.push_back({ "attribution rows", 8 * entries + 40 * rows, true });
    e.parts.push_back({ "graph assembly", 8 * entries + 8 * nNodes + 256 * nNodes, true });
    // On the model's device: the pass's own state, one batch's working set (its rows' up to the
    // budget, and at least one row's whatever the budget) and its dense block of rows with its absolute copy, the
    // replacement run of the constants (every layer's activations, twice), and with a feature cap on a GPU the dense
    // rows for the influence estimates when they fit in a third of its free memory.
    int64_t passBytes = 0, rowBytes = 0;
    if (options.method == Method::Explicit) {
        // The padded source vectors per target layer ([n_pos, slots, d_model], slots the most
        // sources at one position) and the transposed patterns.
        int64_t padded = 0, maxSlots = 1;
        for (int64_t l = 0; l < nLayers; ++l) {
            int64_t slots = 1;
            for (int64_t q = 0; q < nPos; ++q) {
                int64_t here = 0;
                for (int64_t ls = 0; ls <= l; ++ls)
                    if (ls + tc.nTargets(ls) > l)
                        here += count[static_cast<size_t>(ls * nPos + q)];
                slots = std::max(slots, here);
            }
            padded += nPos * slots;
            maxSlots = std::max(maxSlots, slots);
        }
        passBytes = kFloat * (2 * padded * d + nLayers * mc.nHeads * nPos * nPos) + 8 * padded;
        rowBytes = explicitRowBytes(mc, maxSlots, nPos, columns);
    } else {
        rowBytes = autogradRowBytes(ctx, nPos, columns);
    }
    e.parts.push_back({ "attribution pass", passBytes, false });
    const int64_t batch = std::min(options.batchSize, std::max<int64_t>(rows, 1));
    e.parts.push_back({ "batch working set",
        std::max(rowBytes, std::min(options.memoryBudgetBytes, batch * rowBytes)) + 2 * kFloat * batch * columns,
        false });
    e.parts.push_back({ "constant run", 2 * kFloat * nPos * nLayers * tc.nFeatures(), false });
    if (limit < nActive && model.device().is_cuda()) {
        const int64_t dense = kFloat * rows * columns;
        if (static_cast<double>(dense) <= static_cast<double>(model::cudaMemoryInfo(model.device()).first) / 3)
            e.parts.push_back({ "influence rows", dense, false });
    }
    return e;
}

std::optional<std::string> shortfall(const MemoryEstimate& estimate, c10::Device device, int64_t limit)
{
    if (limit < 0)
        return std::nullopt;
    const bool gpu = !device.is_cpu();
    const int64_t hostAvailable = limit > 0 ? limit : model::availableMemory(c10::Device(c10::kCPU));
    if (!gpu) {
        const int64_t need = estimate.deviceBytes() + estimate.hostBytes();
        if (need > hostAvailable)
            return "needs about " + gib(need) + " (" + largestParts(estimate) + "), and "
                + (limit > 0 ? "the memory limit is " + gib(limit)
                             : "the machine has " + gib(hostAvailable) + " available");
        return std::nullopt;
    }
    const int64_t deviceAvailable = limit > 0 ? limit : model::availableMemory(device);
    if (estimate.deviceBytes() > deviceAvailable)
        return "needs about " + gib(estimate.deviceBytes()) + " on " + device.str() + " (" + largestParts(estimate)
            + "), and "
            + (limit > 0 ? "the memory limit is " + gib(limit)
                         : device.str() + " has " + gib(deviceAvailable) + " free");
    if (estimate.hostBytes() > hostAvailable)
        return "needs about " + gib(estimate.hostBytes()) + " of the CPU's memory for its rows, and "
            + (limit > 0 ? "the memory limit is " + gib(limit)
                         : "the machine has " + gib(hostAvailable) + " available");
    return std::nullopt;
}

void checkContextMemory(const model::Model& model, const transcoder::TranscoderSet& set, int64_t nPos, int64_t limit)
{
    const auto missing = shortfall(estimateContextMemory(model, set, nPos), model.device(), limit);
    if (!missing)
        return;
    // The estimate grows with the prompt: the longest prompt that fits, by bisection.
    int64_t lo = 0, hi = nPos - 1;
    while (lo < hi) {
        const int64_t mid = (lo + hi + 1) / 2;
        if (shortfall(estimateContextMemory(model, set, mid), model.device(), limit))
            hi = mid - 1;
        else
            lo = mid;
    }
    throw Error("recording a prompt of " + std::to_string(nPos) + " tokens " + *missing
        + (lo > 0 ? ": a prompt of at most " + std::to_string(lo) + " tokens would fit"
                  : std::string(": not even one token fits; use a smaller model or transcoder set")
                    + (model.device().is_cpu() ? "" : ", or --device cpu")));
}

void checkTraceMemory(
    const ReplacementContext& ctx, const TraceOptions& options, int64_t nLogits, const MemoryEstimate& estimate)
{
    const c10::Device device = ctx.model->device();
    const auto missing = shortfall(estimate, device, options.memoryLimitBytes);
    if (!missing)
        return;
    // The estimate grows with the feature cap: the largest cap that fits, by bisection.
    const int64_t nActive = ctx.active.size();
    int64_t lo = -1, hi = options.maxFeatureNodes < 0 ? nActive : std::min(options.maxFeatureNodes, nActive);
    TraceOptions capped = options;
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo + 1) / 2;
        capped.maxFeatureNodes = mid;
        if (shortfall(estimateTraceMemory(ctx, capped, nLogits), device, options.memoryLimitBytes))
            hi = mid - 1;
        else
            lo = mid;
    }
    throw Error("tracing " + std::to_string(nActive) + " active features over " + std::to_string(ctx.nPos())
        + " tokens " + *missing
        + (lo > 0 ? ": a feature cap of " + std::to_string(lo) + " would fit (--max-feature-nodes " + std::to_string(lo)
                    + "; in the explorer, Settings: Max feature nodes)"
                  : ": not even with a feature cap; use a shorter prompt or a machine with more memory"));
}

} // namespace cs::attribution
