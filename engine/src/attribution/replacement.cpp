// The local replacement model of one prompt: recording the context and running the replacement
// (replacement.h).
#include "cs/replacement.h"

#include "attribution/frozen_norm.h"
#include "attribution/memory.h"
#include "cs/error.h"

#include <ATen/ATen.h>

#include <algorithm>

namespace cs::attribution {

namespace {

// Per layer [1, n_pos, ...] -> [n_pos, ...].
at::Tensor unbatch(const at::Tensor& t)
{
    return t.select(0, 0).contiguous();
}

ActiveFeatures activeFeatures(const std::vector<at::Tensor>& activations)
{
    // [n_layers, n_pos, n_features]: nonzero() lists indices in row-major order, which is the
    // (layer, position, feature) order the graph uses.
    at::Tensor all = at::stack(activations);
    at::Tensor nz = all.nonzero(); // [k, 3]
    ActiveFeatures active;
    active.layer = nz.select(1, 0).contiguous();
    active.position = nz.select(1, 1).contiguous();
    active.feature = nz.select(1, 2).contiguous();
    active.activation = all.index({ active.layer, active.position, active.feature }).contiguous();
    return active;
}

} // namespace

bool isHeldToken(const model::Model& model, int64_t id)
{
    const auto& mc = model.config();
    if ((mc.bosTokenId && id == *mc.bosTokenId) || (mc.eosTokenId && id == *mc.eosTokenId))
        return true;
    if (!model.hasTokenizer())
        return false;
    const std::vector<int64_t> special = model.tokenizer().specialIds(); // sorted
    return std::binary_search(special.begin(), special.end(), id);
}

ActiveFeatures::Entry ActiveFeatures::entry(int64_t i) const
{
    if (i < 0 || i >= size())
        throw Error("active feature " + std::to_string(i) + " out of range (" + std::to_string(size()) + " active)");
    return { layer[i].item<int64_t>(), position[i].item<int64_t>(), feature[i].item<int64_t>(),
        activation[i].item<float>() };
}

ReplacementContext buildContext(std::shared_ptr<const model::Model> model,
    std::shared_ptr<const transcoder::TranscoderSet> transcoders, const std::vector<int64_t>& ids,
    const ContextOptions& options)
{
    return buildContext(std::move(model), std::move(transcoders), at::tensor(ids, at::kLong), options);
}

ReplacementContext buildContext(std::shared_ptr<const model::Model> model,
    std::shared_ptr<const transcoder::TranscoderSet> transcoders, const at::Tensor& idsIn,
    const ContextOptions& options)
{
    if (!model || !transcoders)
        throw Error("buildContext: no model or no transcoder set");
    const auto& mc = model->config();
    transcoders->checkFits(mc);
    if (transcoders->device() != model->device())
        throw Error("the transcoder set is on " + transcoders->device().str() + " but the model is on "
            + model->device().str() + ": load both on one device");
    at::Tensor ids = idsIn.to(model->device(), at::kLong).flatten();
    if (ids.numel() == 0)
        throw Error("the prompt is empty: there is nothing to trace");
    if (ids.numel() > mc.maxPositions)
        throw Error("the prompt has " + std::to_string(ids.numel()) + " tokens, more than the model's maximum of "
            + std::to_string(mc.maxPositions) + " positions");
    checkContextMemory(*model, *transcoders, ids.numel(), options.memoryLimitBytes);

    ReplacementContext ctx;
    ctx.model = model;
    ctx.transcoders = transcoders;
    ctx.ids = ids;
    const int64_t nLayers = mc.nLayers;
    const model::Hook inputHook = transcoders->config().inputHook;
    ctx.inputs.resize(static_cast<size_t>(nLayers));
    ctx.mlpOut.resize(static_cast<size_t>(nLayers));
    at::Tensor firstResid;

    model::ForwardOptions fo;
    fo.record = true;
    fo.hook = [&](int64_t layer, model::Hook hook, at::Tensor& value) {
        if (hook == inputHook)
            ctx.inputs[static_cast<size_t>(layer)] = unbatch(value.detach());
        else if (hook == model::Hook::MlpOut)
            ctx.mlpOut[static_cast<size_t>(layer)] = unbatch(value.detach());
        else if (hook == model::Hook::ResidPost && layer == nLayers - 1)
            ctx.finalResid = unbatch(value.detach());
    };
    model::ForwardResult run = model->forward(ids.unsqueeze(0), fo);
    ctx.frozen = std::move(run.frozen);
    ctx.logits = unbatch(run.logits.detach());

    ctx.heldPositions = options.holdBos && isHeldToken(*model, ids[0].item<int64_t>()) ? 1 : 0;
    if (ctx.heldPositions >= ids.numel())
        throw Error("the prompt is empty (only a special token, held as BOS): there is nothing to trace");

    ctx.preActivations.resize(static_cast<size_t>(nLayers));
    ctx.activations.resize(static_cast<size_t>(nLayers));
    ctx.errors.resize(static_cast<size_t>(nLayers));
    for (int64_t l = 0; l < nLayers; ++l) {
        const auto i = static_cast<size_t>(l);
        ctx.preActivations[i] = transcoders->preActivations(l, ctx.inputs[i]);
        ctx.activations[i] = transcoders->activate(l, ctx.preActivations[i]);
        if (ctx.heldPositions > 0)
            ctx.activations[i].narrow(0, 0, ctx.heldPositions).zero_();
    }
    for (int64_t l = 0; l < nLayers; ++l) {
        const auto i = static_cast<size_t>(l);
        ctx.errors[i] = ctx.mlpOut[i] - transcoders->decode(l, ctx.activations, ctx.inputs[i]);
        if (ctx.heldPositions > 0)
            ctx.errors[i].narrow(0, 0, ctx.heldPositions).zero_();
    }
    ctx.active = activeFeatures(ctx.activations);
    const at::Tensor& embed = model->weight("embed.weight");
    ctx.tokenEmbeddings = embed.index_select(0, ids);
    if (mc.embedScale != 1.0)
        ctx.tokenEmbeddings = ctx.tokenEmbeddings * static_cast<float>(mc.embedScale);
    return ctx;
}

RunResult runReplacement(const ReplacementContext& ctx, const RunOptions& options)
{
    const model::Model& model = *ctx.model;
    const transcoder::TranscoderSet& tc = *ctx.transcoders;
    const int64_t nLayers = ctx.nLayers();
    const int64_t held = ctx.heldPositions;
    const model::Hook inputHook = tc.config().inputHook;

    RunResult result;
    result.inputs.resize(static_cast<size_t>(nLayers));
    result.activations.resize(static_cast<size_t>(nLayers));
    model::ForwardOptions fo;
    if (options.frozen)
        fo.frozen = &ctx.frozen;
    fo.cache = options.cache;
    fo.hook = [&](int64_t layer, model::Hook hook, at::Tensor& value) {
        if (hook == model::Hook::ResidPre && layer == 0 && !options.embeddings)
            value = value - ctx.tokenEmbeddings.unsqueeze(0);
        else if (hook == model::Hook::ResidPost && layer == nLayers - 1)
            result.finalResid = unbatch(value);
    };
    fo.mlpReplace = [&](int64_t layer, const model::MlpInputs& inputs) {
        const auto i = static_cast<size_t>(layer);
        at::Tensor input = unbatch(inputs.at(inputHook)); // [n_pos, d_model]
        result.inputs[i] = input;
        at::Tensor acts = options.recompute ? tc.encode(layer, input) : ctx.activations[i].clone();
        if (held > 0)
            acts.narrow(0, 0, held).zero_();
        if (options.edit)
            options.edit(layer, acts);
        result.activations[i] = acts;
        at::Tensor out = tc.decode(layer, result.activations, input); // [n_pos, d_model]
        if (options.errors)
            out = out + ctx.errors[i];
        if (held > 0) {
            // The held positions' MLP outputs are the recorded ones, whatever the run changed.
            at::Tensor keep = at::ones({ out.size(0), 1 }, out.options());
            keep.narrow(0, 0, held).zero_();
            out = out * keep + ctx.mlpOut[i] * (1 - keep);
        }
        return out.unsqueeze(0);
    };
    model::ForwardResult run = model.forward(ctx.ids.unsqueeze(0), fo);
    result.logits = unbatch(run.logits);
    return result;
}

at::Tensor demeanedLogits(
    const ReplacementContext& ctx, const at::Tensor& resid, int64_t position, const at::Tensor& tokens)
{
    const model::Model& model = *ctx.model;
    const FrozenNorm norm = FrozenNorm::final(model, ctx.frozen);
    at::Tensor y = norm.forward(resid.narrow(0, position, 1), position).squeeze(0); // [d_model]
    const at::Tensor& unembed = model.weight("unembed.weight"); // [vocab, d_model]
    at::Tensor rows = unembed.index_select(0, tokens.to(unembed.device(), at::kLong)) - unembed.mean(0, true);
    return at::mv(rows, y);
}

at::Tensor logitReadVectors(const ReplacementContext& ctx, int64_t position, const at::Tensor& tokens)
{
    const model::Model& model = *ctx.model;
    const FrozenNorm norm = FrozenNorm::final(model, ctx.frozen);
    const at::Tensor& unembed = model.weight("unembed.weight");
    at::Tensor rows = unembed.index_select(0, tokens.to(unembed.device(), at::kLong)) - unembed.mean(0, true);
    // [k, d_model] at one position: the norm's transpose applied to each row.
    return norm.backward(rows.unsqueeze(1), position).squeeze(1);
}

} // namespace cs::attribution
