// Interventions on the model's own units (cs/neurons.h): edits applied at the node kind's hook
// as the real model runs.
#include "cs/error.h"
#include "cs/intervention.h"
#include "cs/model.h"
#include "cs/neurons.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

namespace cs::neurons {

std::function<void(int64_t, model::Hook, at::Tensor&)> editHook(
    NodeKind kind, const std::vector<intervention::FeatureEdit>& edits)
{
    return [hook = hookOf(kind), edits](int64_t layer, model::Hook h, at::Tensor& value) {
        if (h != hook)
            return;
        bool copied = false;
        for (const auto& e : edits) {
            if (e.layer != layer)
                continue;
            if (!copied)
                value = value.clone(); // never write into a tensor the forward pass still reads
            copied = true;
            at::Tensor unit
                = e.position < 0 ? value.select(2, e.feature) : value.select(1, e.position).select(1, e.feature);
            switch (e.op) {
            case intervention::Op::Set:
                unit.fill_(e.value);
                break;
            case intervention::Op::Scale:
                unit.mul_(e.value);
                break;
            case intervention::Op::Add:
                unit.add_(e.value);
                break;
            }
        }
    };
}

UnitInterventionResult intervene(const model::Model& model, const std::vector<int64_t>& ids, NodeKind kind,
    const std::vector<intervention::FeatureEdit>& edits, int64_t topK)
{
    const auto& c = model.config();
    if (ids.empty())
        throw Error("the prompt has no tokens");
    if (static_cast<int64_t>(ids.size()) > c.maxPositions)
        throw Error("the prompt has " + std::to_string(ids.size()) + " tokens, more than the model's "
            + std::to_string(c.maxPositions) + " positions");
    const int64_t nPos = static_cast<int64_t>(ids.size());
    const int64_t width = kind == NodeKind::Neurons ? c.dMlp : c.dModel;
    for (const auto& e : edits) {
        const std::string name = std::string(intervention::opName(e.op)) + " " + std::to_string(e.layer) + ":"
            + (e.position < 0 ? std::string("*") : std::to_string(e.position)) + ":" + std::to_string(e.feature);
        if (e.layer < 0 || e.layer >= c.nLayers)
            throw Error("the edit " + name + " names layer " + std::to_string(e.layer) + "; the model has "
                + std::to_string(c.nLayers));
        if (e.position < -1 || e.position >= nPos)
            throw Error("the edit " + name + " names position " + std::to_string(e.position) + "; the prompt has "
                + std::to_string(nPos) + " tokens");
        if (e.feature < 0 || e.feature >= width)
            throw Error("the edit " + name + " names unit " + std::to_string(e.feature) + "; a layer has "
                + std::to_string(width) + " " + nodeKindName(kind) + " units");
        if (!std::isfinite(e.value))
            throw Error("the edit " + name + " has a value that is not finite");
    }
    at::NoGradGuard noGrad;
    const at::Tensor input = at::tensor(ids, at::kLong).to(model.device()).unsqueeze(0);
    UnitInterventionResult r;
    r.logitsBefore = model.forward(input).logits[0][nPos - 1].to(at::kCPU, at::kFloat);
    model::ForwardOptions fo;
    fo.hook = editHook(kind, edits);
    r.logitsAfter = model.forward(input, fo).logits[0][nPos - 1].to(at::kCPU, at::kFloat);
    r.before = intervention::topTokens(model, r.logitsBefore, topK);
    r.after = intervention::topTokens(model, r.logitsAfter, topK);
    return r;
}

} // namespace cs::neurons
