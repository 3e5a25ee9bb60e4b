// Interventions on transcoder features: the edited replacement run or circuit-tracer's
// patched run of the real model, the before/after distributions in raw and demeaned logits,
// the downstream features it moved, and generation with the edits held (intervention.h).
#include "cs/intervention.h"

#include "attribution/frozen_norm.h"
#include "cs/error.h"
#include "demeaned.h"

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

std::string rangeText(const LayerRange& r)
{
    return str(r.first) + ":" + str(r.end);
}

// Per layer [1, n_pos, ...] -> [n_pos, ...].
at::Tensor unbatch(const at::Tensor& t)
{
    return t.select(0, 0).contiguous();
}

// Whether a run is a direct-effects one: patterns, norm denominators and every MLP output
// other than the edits' decoder image frozen (the affine model the graph describes).
bool isDirectEffects(const InterventionOptions& o, int64_t nLayers)
{
    if (o.regime == Regime::Constrained)
        return true;
    return o.regime == Regime::Patch && o.constrainedLayers && o.constrainedLayers->first <= 0
        && o.constrainedLayers->end >= nLayers;
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
    for (int64_t id : o.watchTokens)
        if (id < 0 || id >= ctx.model->config().vocabSize)
            throw Error("watched token " + str(id) + " is outside the vocabulary (0.."
                + str(ctx.model->config().vocabSize - 1) + ")");
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
    if (o.constrainedLayers) {
        const LayerRange& r = *o.constrainedLayers;
        if (o.regime != Regime::Patch)
            throw Error(std::string("constrained layers are an option of the patch regime (circuit-tracer's "
                                    "feature_intervention), not of the ")
                + regimeName(o.regime) + " one");
        if (r.first < 0 || r.end > nLayers || r.first >= r.end)
            throw Error("the constrained layers " + rangeText(r) + " are not a nonempty range of the model's layers 0:"
                + str(nLayers) + " (first:end, end excluded, as Python's range)");
        if (!o.freezeAttention)
            throw Error("constrained layers freeze attention (as circuit-tracer's do): they cannot go with "
                        "attention unfrozen");
        const transcoder::TranscoderSet& tc = *ctx.transcoders;
        for (const FeatureEdit& e : edits) {
            const int64_t lastTarget = e.layer + tc.nTargets(e.layer) - 1;
            if (lastTarget < r.first || e.layer >= r.end)
                throw Error(std::string(opName(e.op)) + " " + str(e.layer) + ":"
                    + (e.position < 0 ? std::string("*") : str(e.position)) + ":" + str(e.feature)
                    + ": the feature writes to layers " + str(e.layer) + ".." + str(lastTarget)
                    + ", none of them in the constrained layers " + rangeText(r)
                    + ", where alone edits are applied: it would change nothing");
        }
    }
}

// The distinct features the edits touch, [k] int64 on `device`.
at::Tensor editedFeatures(const std::vector<FeatureEdit>& edits, c10::Device device)
{
    std::vector<int64_t> ids;
    for (const auto& e : edits)
        ids.push_back(e.feature);
    std::sort(ids.begin(), ids.end());
    ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
    return at::tensor(ids, at::kLong).to(device);
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
        s.features = editedFeatures(s.edits, tc.device());
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

// The Patch regime's run (intervention.h): circuit-tracer's feature_intervention.
struct PatchRun {
    at::Tensor logits; // [n_pos, vocab]
    std::vector<at::Tensor> inputs; // per layer [n_pos, d_model]: the run's transcoder inputs
    at::Tensor finalResid; // [n_pos, d_model]: the residual stream before the final norm
};

PatchRun runPatch(const ReplacementContext& ctx, const std::vector<std::vector<FeatureEdit>>& byLayer,
    const InterventionOptions& o, model::KvCache* cache)
{
    const model::Model& model = *ctx.model;
    const transcoder::TranscoderSet& tc = *ctx.transcoders;
    const int64_t nLayers = ctx.nLayers(), held = ctx.heldPositions;
    const bool constrained = o.constrainedLayers.has_value();
    // Where the edits' decoder image is added: the constrained layers, or every layer.
    const LayerRange range = constrained ? *o.constrainedLayers : LayerRange { 0, nLayers };
    const model::Hook inputHook = tc.config().inputHook;

    // What the run replays from the context: with every layer constrained, the patterns and
    // every norm denominator (circuit-tracer then freezes hook_scale too: direct effects);
    // otherwise the patterns alone, when attention is frozen (undefined denominators stay live).
    model::FrozenState patterns;
    const model::FrozenState* frozen = nullptr;
    if (isDirectEffects(o, nLayers)) {
        frozen = &ctx.frozen;
    } else if (o.freezeAttention || constrained) {
        patterns.layers.resize(static_cast<size_t>(nLayers));
        for (int64_t l = 0; l < nLayers; ++l)
            patterns.layers[static_cast<size_t>(l)].pattern = ctx.frozen.layers[static_cast<size_t>(l)].pattern;
        frozen = &patterns;
    }

    PatchRun run;
    run.inputs.resize(static_cast<size_t>(nLayers));
    std::vector<at::Tensor> added(static_cast<size_t>(nLayers)); // per target layer [n_pos, d_model]
    model::ForwardOptions fo;
    fo.frozen = frozen;
    fo.cache = cache;
    fo.hook = [&](int64_t layer, model::Hook hook, at::Tensor& value) {
        const auto i = static_cast<size_t>(layer);
        if (hook == inputHook) {
            run.inputs[i] = unbatch(value);
            if (byLayer[i].empty())
                return;
            // The activations the edits change: the transcoder's reading of this run's input,
            // or with constrained layers the context's (earlier edits' effects do not reach
            // the features). [n_pos, n_features], zero at held positions.
            at::Tensor current = constrained ? ctx.activations[i] : tc.encode(layer, run.inputs[i]);
            if (!constrained && held > 0)
                current.narrow(0, 0, held).zero_();
            at::Tensor edited = current.clone();
            for (const auto& e : byLayer[i])
                applyEdit(edited, e, held, 0);
            const at::Tensor features = editedFeatures(byLayer[i], tc.device()); // [k]
            const at::Tensor change = (edited - current).index_select(1, features); // [n_pos, k]
            const at::Tensor rows = tc.decoderRows(layer, features); // [k, n_targets, d_model]
            for (int64_t t = 0; t < tc.nTargets(layer); ++t) {
                const int64_t target = layer + t;
                if (!range.contains(target))
                    continue;
                at::Tensor part = at::matmul(change, rows.select(1, t)); // [n_pos, d_model]
                at::Tensor& sum = added[static_cast<size_t>(target)];
                sum = sum.defined() ? sum + part : part;
            }
        } else if (hook == model::Hook::MlpOut) {
            if (added[i].defined())
                value = value + added[i].unsqueeze(0).to(value.scalar_type());
        } else if (hook == model::Hook::ResidPost && layer == nLayers - 1) {
            run.finalResid = unbatch(value);
        }
    };
    if (constrained)
        fo.mlpReplace = [&](int64_t layer, const model::MlpInputs&) -> at::Tensor {
            if (!range.contains(layer))
                return {}; // the real MLP
            // The context's MLP output; a skip connection still answers the changed input
            // (linearly, a direct effect). The edits' image is added at the mlp_out hook.
            const auto i = static_cast<size_t>(layer);
            at::Tensor out = ctx.mlpOut[i]; // [n_pos, d_model]
            const at::Tensor& skip = tc.skip(layer);
            if (skip.defined())
                out = out + at::matmul(run.inputs[i] - ctx.inputs[i], skip.t());
            return out.unsqueeze(0);
        };
    run.logits = unbatch(model.forward(ctx.ids.unsqueeze(0), fo).logits);
    return run;
}

std::string decodeText(const model::Model& model, const std::vector<int64_t>& ids)
{
    return model.hasTokenizer() ? model.tokenizer().decode(ids) : std::string();
}

} // namespace

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

namespace detail {

at::Tensor demeanedAtLast(
    const ReplacementContext& ctx, const at::Tensor& resid, bool frozenNorm, const at::Tensor& tokens)
{
    const int64_t last = ctx.nPos() - 1;
    if (frozenNorm)
        return attribution::demeanedLogits(ctx, resid, last, tokens);
    const model::Model& model = *ctx.model;
    const auto& mc = model.config();
    const at::Tensor x = resid.narrow(0, last, 1); // [1, d_model]
    const at::Tensor centered = mc.normKind == model::NormKind::Layer ? x - x.mean(-1, true) : x;
    model::FrozenState own;
    own.finalDenominator = at::sqrt(centered.pow(2).mean(-1, true) + mc.normEps); // [1, 1]
    const at::Tensor y = attribution::FrozenNorm::final(model, own).forward(x, 0).squeeze(0); // [d_model]
    const at::Tensor& unembed = model.weight("unembed.weight"); // [vocab, d_model]
    const at::Tensor rows = unembed.index_select(0, tokens.to(unembed.device(), at::kLong)) - unembed.mean(0, true);
    return at::mv(rows, y);
}

} // namespace detail

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
    switch (regime) {
    case Regime::Constrained:
        return "constrained";
    case Regime::Free:
        return "free";
    case Regime::Patch:
        return "patch";
    }
    return "?";
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
    const bool patch = options.regime == Regime::Patch;

    std::vector<std::vector<FeatureEdit>> byLayer(static_cast<size_t>(nLayers));
    for (const auto& e : edits)
        byLayer[static_cast<size_t>(e.layer)].push_back(e);
    auto edit = [&](int64_t layer, at::Tensor& acts) {
        for (const auto& e : byLayer[static_cast<size_t>(layer)])
            applyEdit(acts, e, held, 0);
    };

    // The edited run; a free or patched run also keeps the prompt's keys and values for
    // generation (a patched one's prompt pass is the continuation's, as in circuit-tracer).
    model::KvCache cache;
    at::Tensor runLogits, runFinalResid; // [n_pos, vocab], [n_pos, d_model]
    std::vector<at::Tensor> runInputs; // per layer [n_pos, d_model]
    std::vector<at::Tensor> runActivations; // per layer [n_pos, n_features], Free only: what was decoded
    if (patch) {
        PatchRun run = runPatch(ctx, byLayer, options, options.generate > 0 ? &cache : nullptr);
        runLogits = run.logits;
        runFinalResid = run.finalResid;
        runInputs = std::move(run.inputs);
    } else {
        attribution::RunOptions ro;
        ro.frozen = constrained;
        ro.recompute = !constrained;
        ro.edit = edit;
        if (!constrained && options.generate > 0)
            ro.cache = &cache;
        attribution::RunResult run = attribution::runReplacement(ctx, ro);
        runLogits = run.logits;
        runFinalResid = run.finalResid;
        runInputs = std::move(run.inputs);
        runActivations = std::move(run.activations);
    }

    InterventionResult result;
    result.directEffects = isDirectEffects(options, nLayers);
    result.generationMode = patch ? Regime::Patch : Regime::Free;
    const at::Tensor beforeLogits = ctx.logits[nPos - 1].to(at::kCPU, at::kDouble); // [vocab]
    const at::Tensor afterLogits = runLogits[nPos - 1].to(at::kCPU, at::kDouble);
    result.before = topTokens(model, beforeLogits, options.topK);
    result.after = topTokens(model, afterLogits, options.topK);
    const at::Tensor deltaLogits = (afterLogits - beforeLogits).contiguous();
    const double* delta = deltaLogits.data_ptr<double>();
    for (const auto* list : { &result.before, &result.after })
        for (const auto& t : *list)
            result.logitDelta[t.id] = delta[t.id];
    for (int64_t id : options.watchTokens)
        result.logitDelta[id] = delta[id];
    // The same tokens in the graph's units. The final norm's denominator is the context's in a
    // direct-effects run (replayed), the run's own otherwise.
    std::vector<int64_t> listed;
    for (const auto& [id, d] : result.logitDelta)
        listed.push_back(id);
    const at::Tensor tokens = at::tensor(listed, at::kLong);
    const at::Tensor demeanedDelta = (detail::demeanedAtLast(ctx, runFinalResid, result.directEffects, tokens)
        - detail::demeanedAtLast(ctx, ctx.finalResid, true, tokens))
                                         .to(at::kCPU, at::kDouble)
                                         .contiguous(); // [k]
    for (size_t k = 0; k < listed.size(); ++k)
        result.demeanedLogitDelta[listed[k]] = demeanedDelta[static_cast<int64_t>(k)].item<double>();

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
        // Free: what was decoded; otherwise what the transcoder reads from the run's input.
        at::Tensor after = options.regime == Regime::Free
            ? runActivations[i].narrow(0, minPos, n)
            : tc.activate(l, tc.preActivations(l, runInputs[i].narrow(0, minPos, n)));
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
        // starts from a free run of the prompt with the same edits (generationMode Free).
        at::Tensor lastLogits = runLogits[nPos - 1];
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
