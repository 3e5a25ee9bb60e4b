// Transcoder features as circuit nodes (feature_basis.h): RelP, integrated gradients, means and
// mean ablation on each prompt's replacement model.
#include "feature_basis.h"

#include "internal.h"

#include "cs/error.h"
#include "cs/replacement.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <chrono>

namespace cs::neurons::detail {

namespace {

attribution::ReplacementContext contextOf(const Model& model, const Transcoders& set, const std::vector<int64_t>& ids)
{
    at::NoGradGuard noGrad;
    return attribution::buildContext(model, set, ids);
}

} // namespace

std::vector<at::Tensor> featureValues(const Model& model, const Transcoders& set, const std::vector<int64_t>& ids)
{
    std::vector<at::Tensor> out;
    for (const at::Tensor& a : contextOf(model, set, ids).activations)
        out.push_back(a.to(at::kCPU, at::kFloat));
    return out;
}

Attribution featureAttribution(const Model& model, const Transcoders& set, const std::vector<int64_t>& ids,
    const Metric& metric, const AttributionOptions& o)
{
    const auto start = std::chrono::steady_clock::now();
    const auto ctx = contextOf(model, set, ids);
    const int64_t L = ctx.nLayers();
    std::vector<at::Tensor> base; // on the model's device
    if (!o.baselineIds.empty()) {
        if (o.baselineIds.size() != ids.size())
            throw Error("attribution from the counterfactual prompt needs it to have as many tokens as the prompt");
        base = contextOf(model, set, o.baselineIds).activations;
    }
    Attribution out;
    {
        at::NoGradGuard noGrad;
        out.metric = metricOf(ctx.logits.unsqueeze(0), metric)[0].item<double>();
    }
    if (o.method == Method::RelP) {
        at::AutoGradMode gradients(true);
        std::vector<at::Tensor> values(static_cast<size_t>(L)), nudges(static_cast<size_t>(L));
        attribution::RunOptions ro; // frozen, features recomputed, errors held
        ro.recompute = true;
        ro.edit = [&](int64_t layer, at::Tensor& acts) {
            const auto i = static_cast<size_t>(layer);
            values[i] = acts.detach();
            nudges[i] = at::zeros_like(acts).requires_grad_(true);
            acts = acts + nudges[i];
        };
        metricOf(attribution::runReplacement(ctx, ro).logits.unsqueeze(0), metric)[0].backward();
        for (int64_t l = 0; l < L; ++l) {
            const auto i = static_cast<size_t>(l);
            const at::Tensor grad = nudges[i].grad().defined() ? nudges[i].grad() : at::zeros_like(values[i]);
            const at::Tensor delta = base.empty() ? values[i] : values[i] - base[i];
            out.scores.push_back((delta * grad).to(at::kCPU, at::kFloat));
            out.values.push_back(values[i].to(at::kCPU, at::kFloat));
        }
    } else {
        if (o.steps < 1)
            throw Error("integrated gradients need at least 1 step");
        const auto [nodes, weights] = gaussLegendre(o.steps);
        for (int64_t l = 0; l < L; ++l) {
            const auto i = static_cast<size_t>(l);
            const at::Tensor x = ctx.activations[i];
            const at::Tensor origin = base.empty() ? at::zeros_like(x) : base[i];
            const at::Tensor delta = x - origin;
            attribution::RunOptions ro;
            ro.frozen = false; // the free replacement model
            ro.recompute = true;
            {
                at::NoGradGuard noGrad;
                ro.edit = [&](int64_t layer, at::Tensor& acts) {
                    if (layer == l)
                        acts = origin.clone();
                };
                out.baselineMetric.push_back(
                    metricOf(attribution::runReplacement(ctx, ro).logits.unsqueeze(0), metric)[0].item<double>());
            }
            at::Tensor gradSum = at::zeros_like(x);
            for (size_t k = 0; k < nodes.size(); ++k) {
                at::AutoGradMode gradients(true);
                const at::Tensor point = (origin + nodes[k] * delta).detach().requires_grad_(true);
                ro.edit = [&](int64_t layer, at::Tensor& acts) {
                    if (layer == l)
                        acts = point;
                };
                metricOf(attribution::runReplacement(ctx, ro).logits.unsqueeze(0), metric)[0].backward();
                gradSum = gradSum + point.grad() * weights[k];
            }
            out.scores.push_back((delta * gradSum).to(at::kCPU, at::kFloat));
            out.values.push_back(x.to(at::kCPU, at::kFloat));
        }
    }
    out.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return out;
}

std::vector<at::Tensor> featureMeans(
    const Model& model, const Transcoders& set, const std::vector<std::vector<int64_t>>& prompts, bool byPosition)
{
    std::vector<at::Tensor> sums;
    int64_t count = 0;
    for (const auto& ids : prompts) {
        if (byPosition && ids.size() != prompts.front().size())
            throw Error("means by position need prompts of one token count");
        const auto ctx = contextOf(model, set, ids);
        const int64_t skip = byPosition ? 0 : ctx.heldPositions;
        if (ctx.nPos() <= skip)
            continue;
        for (int64_t l = 0; l < ctx.nLayers(); ++l) {
            const at::Tensor a = ctx.activations[static_cast<size_t>(l)].to(at::kCPU, at::kDouble);
            const at::Tensor s = byPosition ? a : a.narrow(0, skip, a.size(0) - skip).sum(0);
            if (sums.size() <= static_cast<size_t>(l))
                sums.push_back(s);
            else
                sums[static_cast<size_t>(l)] += s;
        }
        count += byPosition ? 1 : ctx.nPos() - skip;
    }
    if (count == 0)
        throw Error("no positions to take the means over (every prompt is empty or a lone BOS)");
    for (at::Tensor& s : sums)
        s = (s / static_cast<double>(count)).to(at::kFloat);
    return sums;
}

double featureAblatedMetric(const Model& model, const Transcoders& set, const std::vector<int64_t>& ids,
    const Metric& metric, const std::vector<at::Tensor>& means, const std::vector<at::Tensor>& keep)
{
    const auto ctx = contextOf(model, set, ids);
    at::NoGradGuard noGrad;
    attribution::RunOptions ro;
    ro.frozen = false;
    ro.recompute = true;
    ro.edit = [&](int64_t layer, at::Tensor& acts) {
        const auto i = static_cast<size_t>(layer);
        const at::Tensor k = keep[i].to(acts.device()).to(at::kBool);
        const at::Tensor mean = means[i].to(acts.device(), acts.scalar_type());
        acts = at::where(k, acts, mean.dim() == 1 ? mean.unsqueeze(0) : mean);
        if (ctx.heldPositions > 0) // a held BOS has no features
            acts.narrow(0, 0, ctx.heldPositions).zero_();
    };
    return metricOf(attribution::runReplacement(ctx, ro).logits.unsqueeze(0), metric)[0].item<double>();
}

} // namespace cs::neurons::detail
