// Interventions on transcoder features: the edited replacement run, the before/after
// distributions, the downstream features it moved, and generation with the edits held
// (intervention.h).
#include "cs/intervention.h"

#include "cs/error.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <cmath>

namespace cs::intervention {

namespace {

using attribution::ReplacementContext;

// A feature counts as changed when its activation moved by more than this (absolute, plus
// the same relative to its size): float32 rounding of a replayed run stays far below it.
constexpr double kChangeTolerance = 1e-5;

std::string str(int64_t n)
{
    return std::to_string(n);
}

void validate(const ReplacementContext& ctx, const std::vector<FeatureEdit>& edits, const InterventionOptions& o)
{
    if (edits.empty())
        throw Error("an intervention needs at least one edit (set, scale or add a feature)");
    if (o.topK < 1)
        throw Error("top-k must be at least 1, not " + str(o.topK));
    if (o.generate < 0)
        throw Error("the number of generated tokens must not be negative");
    if (o.maxChanged < 0)
        throw Error("the length of the changed-feature list must not be negative");
    const int64_t nLayers = ctx.nLayers(), nPos = ctx.nPos(), nFeatures = ctx.transcoders->nFeatures();
    for (const FeatureEdit& e : edits) {
        const std::string what = std::string(opName(e.op)) + " " + str(e.layer) + ":"
            + (e.position < 0 ? std::string("*") : str(e.position)) + ":" + str(e.feature) + ": ";
        if (e.layer < 0 || e.layer >= nLayers)
            throw Error(what + "layer " + str(e.layer) + " is out of range (the model has " + str(nLayers)
                + " layers, 0.." + str(nLayers - 1) + ")");
        if (e.feature < 0 || e.feature >= nFeatures)
            throw Error(what + "feature " + str(e.feature) + " is out of range (the transcoder set has "
                + str(nFeatures) + " features per layer, 0.." + str(nFeatures - 1) + ")");
        if (e.position < -1 || e.position >= nPos)
            throw Error(what + "position " + str(e.position) + " is out of range (the prompt has " + str(nPos)
                + " tokens, positions 0.." + str(nPos - 1) + ", or * for every position)");
        if (e.position >= 0 && e.position < ctx.heldPositions)
            throw Error(what + "position " + str(e.position)
                + " is the BOS token, whose MLP outputs are held (it has no features); edit a later position");
        if (!std::isfinite(e.value))
            throw Error(what + "the value must be a finite number");
    }
}

// Applies one edit to acts [n, n_features] whose rows [from, n) are the positions that a
// position -1 edit reaches; `offset` is the absolute position of row 0.
void applyEdit(at::Tensor& acts, const FeatureEdit& e, int64_t from, int64_t offset)
{
    at::Tensor target; // a view into acts
    if (e.position < 0) {
        if (from >= acts.size(0))
            return;
        target = acts.narrow(0, from, acts.size(0) - from).select(1, e.feature);
    } else {
        const int64_t row = e.position - offset;
        if (row < 0 || row >= acts.size(0))
            return;
        target = acts.select(0, row).select(0, e.feature);
    }
    switch (e.op) {
    case Op::Set:
        target.fill_(e.value);
        break;
    case Op::Scale:
        target.mul_(e.value);
        break;
    case Op::Add:
        target.add_(e.value);
        break;
    }
}

// logits [vocab] (any device) -> the k most probable tokens.
std::vector<TokenScore> topTokens(const model::Model& model, const at::Tensor& logits, int64_t k)
{
    const at::Tensor probs = at::softmax(logits, -1);
    const auto top = at::topk(probs, std::min<int64_t>(k, logits.size(0)));
    const at::Tensor ids = std::get<1>(top).contiguous();
    std::vector<TokenScore> out;
    for (int64_t i = 0; i < ids.size(0); ++i) {
        TokenScore t;
        t.id = ids[i].item<int64_t>();
        t.token = model.hasTokenizer() ? model.tokenizer().tokenText(t.id) : std::string();
        t.logit = logits[t.id].item<double>();
        t.prob = probs[t.id].item<double>();
        out.push_back(std::move(t));
    }
    return out;
}

// Greedy continuation of `prompt` after a free replacement run that left `cache` holding the
// prompt's keys and values and gave `lastLogits` [vocab]. Generated tokens run through the
// real model; the position -1 edits are held on them by adding the decoder image of
// (edited - encoded activations) to mlp_out. The KV cache is kept (each step runs one token),
// so the prompt's keys and values stay those of the edited replacement run.
std::vector<int64_t> generateEdited(const ReplacementContext& ctx, const std::vector<FeatureEdit>& edits,
    model::KvCache& cache, const at::Tensor& lastLogits, int64_t maxNew)
{
    const model::Model& model = *ctx.model;
    const transcoder::TranscoderSet& tc = *ctx.transcoders;
    const auto& mc = model.config();
    const int64_t nLayers = ctx.nLayers();
    std::optional<int64_t> eos = mc.eosTokenId;
    if (!eos && model.hasTokenizer())
        eos = model.tokenizer().eosId();

    // Per source layer with position -1 edits: the features edited and their decoder rows.
    struct Source {
        std::vector<FeatureEdit> edits;
        at::Tensor features; // [k] int64
        at::Tensor rows; // [k, n_targets, d_model]
        at::Tensor delta; // [n_new, k]: edited - encoded, this step
    };
    std::vector<Source> sources(static_cast<size_t>(nLayers));
    bool any = false;
    for (const FeatureEdit& e : edits)
        if (e.position < 0) {
            sources[static_cast<size_t>(e.layer)].edits.push_back(e);
            any = true;
        }
    for (int64_t l = 0; l < nLayers; ++l) {
        Source& s = sources[static_cast<size_t>(l)];
        if (s.edits.empty())
            continue;
        std::vector<int64_t> ids;
        for (const auto& e : s.edits)
            ids.push_back(e.feature);
        std::sort(ids.begin(), ids.end());
        ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
        s.features = at::tensor(ids, at::kLong).to(tc.device());
        s.rows = tc.decoderRows(l, s.features);
    }

    model::ForwardOptions fo;
    fo.cache = &cache;
    const model::Hook inputHook = tc.config().inputHook;
    if (any)
        fo.hook = [&](int64_t layer, model::Hook hook, at::Tensor& value) {
            if (hook == inputHook) {
                Source& s = sources[static_cast<size_t>(layer)];
                if (s.edits.empty())
                    return;
                at::Tensor encoded = tc.encode(layer, value.reshape({ -1, value.size(-1) })); // [n_new, n_features]
                at::Tensor edited = encoded.clone();
                for (const auto& e : s.edits)
                    applyEdit(edited, e, 0, 0);
                s.delta = (edited - encoded).index_select(1, s.features);
            } else if (hook == model::Hook::MlpOut) {
                at::Tensor add; // [n_new, d_model]
                for (int64_t src = 0; src <= layer; ++src) {
                    const Source& s = sources[static_cast<size_t>(src)];
                    if (s.edits.empty() || layer - src >= tc.nTargets(src))
                        continue;
                    at::Tensor part = at::matmul(s.delta, s.rows.select(1, layer - src));
                    add = add.defined() ? add + part : part;
                }
                if (add.defined())
                    value = value + add.view(value.sizes()).to(value.scalar_type());
            }
        };

    std::vector<int64_t> out;
    int64_t length = ctx.nPos();
    at::Tensor logits = lastLogits;
    for (int64_t step = 0; step < maxNew; ++step) {
        if (step > 0) {
            if (length > mc.maxPositions)
                break; // the next token would have no position
            at::Tensor input = at::tensor(std::vector<int64_t> { out.back() }, at::kLong);
            at::Tensor all = model.forward(input, fo).logits; // [1, 1, vocab]
            logits = all[0][all.size(1) - 1];
        }
        const int64_t next = logits.argmax().item<int64_t>();
        out.push_back(next);
        ++length;
        if (eos && next == *eos)
            break;
    }
    return out;
}

std::string decodeText(const model::Model& model, const std::vector<int64_t>& ids)
{
    return model.hasTokenizer() ? model.tokenizer().decode(ids) : std::string();
}

} // namespace

const char* opName(Op op)
{
    switch (op) {
    case Op::Set:
        return "set";
    case Op::Scale:
        return "scale";
    case Op::Add:
        return "add";
    }
    return "?";
}

const char* regimeName(Regime regime)
{
    return regime == Regime::Constrained ? "constrained" : "free";
}

InterventionResult intervene(
    const ReplacementContext& ctx, const std::vector<FeatureEdit>& edits, const InterventionOptions& options)
{
    if (!ctx.model || !ctx.transcoders)
        throw Error("intervene: the replacement context is empty");
    validate(ctx, edits, options);
    at::NoGradGuard noGrad;
    const model::Model& model = *ctx.model;
    const transcoder::TranscoderSet& tc = *ctx.transcoders;
    const int64_t nLayers = ctx.nLayers(), nPos = ctx.nPos(), held = ctx.heldPositions;
    const bool constrained = options.regime == Regime::Constrained;

    std::vector<std::vector<FeatureEdit>> byLayer(static_cast<size_t>(nLayers));
    for (const auto& e : edits)
        byLayer[static_cast<size_t>(e.layer)].push_back(e);
    auto edit = [&](int64_t layer, at::Tensor& acts) {
        for (const auto& e : byLayer[static_cast<size_t>(layer)])
            applyEdit(acts, e, held, 0);
    };

    // The edited run; a free run also keeps the prompt's keys and values for generation.
    model::KvCache cache;
    attribution::RunOptions ro;
    ro.frozen = constrained;
    ro.recompute = !constrained;
    ro.edit = edit;
    if (!constrained && options.generate > 0)
        ro.cache = &cache;
    const attribution::RunResult run = attribution::runReplacement(ctx, ro);

    InterventionResult result;
    const at::Tensor beforeLogits = ctx.logits[nPos - 1].to(at::kCPU, at::kDouble); // [vocab]
    const at::Tensor afterLogits = run.logits[nPos - 1].to(at::kCPU, at::kDouble);
    result.before = topTokens(model, beforeLogits, options.topK);
    result.after = topTokens(model, afterLogits, options.topK);
    const at::Tensor deltaLogits = (afterLogits - beforeLogits).contiguous();
    const double* delta = deltaLogits.data_ptr<double>();
    for (const auto* list : { &result.before, &result.after })
        for (const auto& t : *list)
            result.logitDelta[t.id] = delta[t.id];

    // Downstream features: only layers after the first edited one, at positions from the
    // first edited one on, can change (the transcoder input of a layer precedes its MLP, and
    // attention is causal).
    int64_t minLayer = nLayers, minPos = nPos;
    for (const auto& e : edits) {
        minLayer = std::min(minLayer, e.layer);
        minPos = std::min(minPos, e.position < 0 ? held : e.position);
    }
    std::vector<at::Tensor> cLayer, cPos, cFeature, cBefore, cAfter;
    for (int64_t l = minLayer + 1; l < nLayers && minPos < nPos; ++l) {
        const auto i = static_cast<size_t>(l);
        const int64_t n = nPos - minPos;
        at::Tensor before = ctx.activations[i].narrow(0, minPos, n); // [n, n_features]
        at::Tensor after = constrained ? tc.activate(l, tc.preActivations(l, run.inputs[i].narrow(0, minPos, n)))
                                       : run.activations[i].narrow(0, minPos, n);
        at::Tensor diff = (after - before).abs();
        for (const auto& e : byLayer[i]) // the edited features are not "downstream"
            applyEdit(diff, { e.layer, e.position, e.feature, Op::Set, 0.0 }, 0, minPos);
        at::Tensor nz = diff.gt(kChangeTolerance * (1 + before.abs())).nonzero(); // [k, 2]
        if (nz.size(0) == 0)
            continue;
        at::Tensor rows = nz.select(1, 0), cols = nz.select(1, 1);
        cLayer.push_back(at::full({ nz.size(0) }, l, nz.options()));
        cPos.push_back(rows + minPos);
        cFeature.push_back(cols);
        cBefore.push_back(before.index({ rows, cols }));
        cAfter.push_back(after.index({ rows, cols }));
    }
    if (!cLayer.empty() && options.maxChanged > 0) {
        at::Tensor layer = at::cat(cLayer).cpu(), pos = at::cat(cPos).cpu(), feature = at::cat(cFeature).cpu();
        at::Tensor before = at::cat(cBefore).to(at::kCPU, at::kDouble),
                   after = at::cat(cAfter).to(at::kCPU, at::kDouble);
        const auto top = at::topk((after - before).abs(), std::min<int64_t>(options.maxChanged, layer.size(0)));
        const at::Tensor order = std::get<1>(top).contiguous();
        const int64_t* o = order.data_ptr<int64_t>();
        for (int64_t j = 0; j < order.size(0); ++j) {
            const int64_t k = o[j];
            result.changed.push_back({ layer[k].item<int64_t>(), pos[k].item<int64_t>(), feature[k].item<int64_t>(),
                before[k].item<double>() + 0.0, after[k].item<double>() + 0.0 }); // + 0.0: no -0
        }
    }

    if (options.generate > 0) {
        const at::Tensor idsCpu = ctx.ids.to(at::kCPU).contiguous();
        const std::vector<int64_t> prompt(idsCpu.data_ptr<int64_t>(), idsCpu.data_ptr<int64_t>() + nPos);
        model::GenerateOptions go;
        go.maxNew = options.generate;
        go.temperature = 0;
        result.generatedBefore = model.generate(prompt, go);
        result.generationBefore = decodeText(model, result.generatedBefore);

        // Frozen patterns do not extend to new tokens: the constrained regime's continuation
        // starts from a free run of the prompt with the same edits.
        at::Tensor lastLogits = run.logits[nPos - 1];
        if (constrained) {
            attribution::RunOptions fo;
            fo.frozen = false;
            fo.recompute = true;
            fo.edit = edit;
            fo.cache = &cache;
            lastLogits = attribution::runReplacement(ctx, fo).logits[nPos - 1];
        }
        result.generatedAfter = generateEdited(ctx, edits, cache, lastLogits, options.generate);
        result.generationAfter = decodeText(model, result.generatedAfter);
    }
    return result;
}

} // namespace cs::intervention
