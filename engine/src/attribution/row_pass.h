#pragma once
// The two ways of computing rows of the attribution matrix (attribution.h), behind one small
// interface the tracer drives.

#include "cs/attribution.h"

#include <ATen/ATen.h>

#include <cstdint>
#include <memory>
#include <vector>

namespace cs::attribution {

// Source columns: the context's active features, then error nodes (layer-major, then
// position), then token embeddings.
struct SourceLayout {
    int64_t nFeatures = 0; // active features
    int64_t nLayers = 0;
    int64_t nPos = 0;
    int64_t errorColumn(int64_t layer, int64_t position) const { return nFeatures + layer * nPos + position; }
    int64_t embeddingColumn(int64_t position) const { return nFeatures + nLayers * nPos + position; }
    int64_t columns() const { return nFeatures + nLayers * nPos + nPos; }
};

// One target row: an active feature (its index in the context's ActiveFeatures) or a logit.
struct RowTarget {
    int64_t layer = 0; // n_layers for a logit
    int64_t position = 0;
    int64_t active = -1; // index into ActiveFeatures, or -1
    int64_t logit = -1; // index into the logit targets, or -1
};

struct PassSetup {
    const ReplacementContext* context = nullptr;
    SourceLayout layout;
    std::vector<LogitTarget> logits;
    at::Tensor logitReads; // [n_logits, d_model]: each target's read vector at the final residual
    int64_t memoryBudgetBytes = 0;
};

class RowPass {
public:
    virtual ~RowPass() = default;
    // The most rows one batch may hold when its cone spans `prefix` positions.
    virtual int64_t maxRows(int64_t prefix) const = 0;
    // Rows of A for the targets, [targets, layout.columns()] float32 on the context's device.
    virtual at::Tensor rows(const std::vector<RowTarget>& targets) = 0;
    double flops = 0; // accumulated floating-point operations, where the pass counts them
};

// One row's working set in bytes over a cone of `prefix` positions: each pass's maxRows divides
// its budget by it, and the memory estimate (memory.h) counts it. `slots`: the most sources at
// one position of one layer.
int64_t explicitRowBytes(const model::ModelConfig& config, int64_t slots, int64_t prefix, int64_t columns);
int64_t autogradRowBytes(const ReplacementContext& context, int64_t prefix, int64_t columns);

std::unique_ptr<RowPass> makeExplicitPass(const PassSetup& setup);
std::unique_ptr<RowPass> makeAutogradPass(const PassSetup& setup);

} // namespace cs::attribution
