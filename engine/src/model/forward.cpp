// The transformer forward pass, wired from the ModelConfig the family plugin made, with the
// hook points, recording and frozen replay of docs/ARCHITECTURE.md §4.3.
#include "cs/error.h"
#include "cs/model.h"
#include "model/weights.h"

#include <ATen/ATen.h>

#include <cmath>
#include <limits>

namespace cs::model {

namespace {

constexpr const char* kHookNames[kHookCount] = { "resid_pre", "attn_out", "resid_mid", "mlp_in", "mlp_hidden",
    "mlp_out", "resid_post", "attn_pattern", "mlp_normalized" };

// Where the current run reads and writes frozen denominators.
struct NormIo {
    const at::Tensor* frozen = nullptr; // replay this denominator
    at::Tensor* record = nullptr; // store the computed one here
};

// x [..., n] -> normalized x before the weight. The denominator (sqrt(mean(x^2) + eps), or
// sqrt(var + eps) for LayerNorm) is computed, or taken frozen from a recorded run; LayerNorm's
// mean subtraction stays live because it is linear.
at::Tensor normalize(const at::Tensor& x, NormKind kind, double eps, const NormIo& io)
{
    at::Tensor centered = kind == NormKind::Layer ? x - x.mean(-1, true) : x;
    at::Tensor denom;
    if (io.frozen && io.frozen->defined())
        denom = *io.frozen;
    else
        denom = at::sqrt(centered.pow(2).mean(-1, true) + eps);
    if (io.record)
        *io.record = denom.detach();
    return centered / denom;
}

// The norm's weight (and bias) on a normalized y.
at::Tensor weighNorm(const at::Tensor& y, NormKind kind, const at::Tensor& w, const at::Tensor& b)
{
    switch (kind) {
    case NormKind::Rms:
        return y * w;
    case NormKind::RmsOnePlus:
        return y * (1 + w);
    case NormKind::Layer:
        return y * w + b;
    }
    return y;
}

at::Tensor applyNorm(
    const at::Tensor& x, NormKind kind, const at::Tensor& w, const at::Tensor& b, double eps, const NormIo& io)
{
    return weighNorm(normalize(x, kind, eps, io), kind, w, b);
}

at::Tensor activate(const at::Tensor& x, Activation act)
{
    switch (act) {
    case Activation::Silu:
        return at::silu(x);
    case Activation::GeluTanh:
        return at::gelu(x, "tanh");
    case Activation::GeluExact:
        return at::gelu(x);
    }
    return x;
}

at::Tensor linear(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b)
{
    return b.defined() ? at::linear(x, w, b) : at::linear(x, w);
}

// Rotate-half RoPE on x [batch, n_pos, heads, d_head] at absolute positions [n_pos].
at::Tensor applyRope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin)
{
    const int64_t half = x.size(-1) / 2;
    at::Tensor x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
    at::Tensor rotated = at::cat({ -x2, x1 }, -1);
    return x * cos + rotated * sin;
}

} // namespace

const char* hookName(Hook hook)
{
    return kHookNames[static_cast<int>(hook)];
}

const at::Tensor& MlpInputs::at(Hook hook) const
{
    switch (hook) {
    case Hook::ResidMid:
        return residMid;
    case Hook::MlpNormalized:
        return normalized;
    case Hook::MlpIn:
        return mlpIn;
    default:
        throw Error(std::string("an MLP reads resid_mid, mlp_normalized or mlp_in, not ") + hookName(hook));
    }
}

std::optional<Hook> hookFromName(const std::string& name)
{
    for (int i = 0; i < kHookCount; ++i)
        if (name == kHookNames[i])
            return static_cast<Hook>(i);
    return std::nullopt;
}

ForwardResult Model::forward(const at::Tensor& idsIn, const ForwardOptions& options) const
{
    const ModelConfig& c = m_config;
    const Weights& W = *m_weights;
    at::Tensor ids = idsIn.dim() == 1 ? idsIn.unsqueeze(0) : idsIn;
    if (ids.dim() != 2)
        throw Error("forward: ids must be [n_pos] or [batch, n_pos]");
    ids = ids.to(m_device, at::kLong);
    const int64_t batch = ids.size(0), nPos = ids.size(1);
    if (nPos == 0)
        throw Error("forward: the input has no tokens");
    if (ids.numel() > 0) {
        const int64_t lo = ids.min().item<int64_t>(), hi = ids.max().item<int64_t>();
        if (lo < 0 || hi >= c.vocabSize)
            throw Error("forward: token id " + std::to_string(lo < 0 ? lo : hi) + " is outside the vocabulary (size "
                + std::to_string(c.vocabSize) + ")");
    }
    KvCache* cache = options.cache;
    const int64_t offset = cache ? cache->length() : 0;
    // Learned positions end at the table; RoPE models are refused past the length they were
    // configured for too, so a huge prompt gets a message instead of exhausting memory.
    if (offset + nPos > c.maxPositions)
        throw Error("the input has " + std::to_string(offset + nPos) + " tokens, more than the model's maximum of "
            + std::to_string(c.maxPositions) + " positions");
    const FrozenState* frozen = options.frozen;
    if (frozen) {
        // A frozen replay may fill an empty cache (a prompt pass that generation continues
        // from, live); the recorded patterns cover the recorded positions only.
        if (cache && cache->length() > 0)
            throw Error("forward: a frozen replay cannot continue a KV cache");
        if (static_cast<int64_t>(frozen->layers.size()) != c.nLayers)
            throw Error("forward: the frozen state has the wrong number of layers");
    }
    if (cache && cache->keys.empty()) {
        cache->keys.resize(static_cast<size_t>(c.nLayers));
        cache->values.resize(static_cast<size_t>(c.nLayers));
    }

    ForwardResult result;
    if (options.record)
        result.frozen.layers.resize(static_cast<size_t>(c.nLayers));
    auto hook = [&](int64_t layer, Hook h, at::Tensor& value) {
        if (options.hook)
            options.hook(layer, h, value);
    };
    auto normIo = [&](int64_t layer, NormSite site) {
        NormIo io;
        const int s = static_cast<int>(site);
        if (frozen)
            io.frozen = &frozen->layers[static_cast<size_t>(layer)].denominators[s];
        if (options.record)
            io.record = &result.frozen.layers[static_cast<size_t>(layer)].denominators[s];
        return io;
    };

    // Absolute positions of this run's tokens.
    at::Tensor positions = at::arange(offset, offset + nPos, at::TensorOptions().dtype(at::kLong).device(m_device));

    at::Tensor x = at::embedding(W.embed, ids); // [batch, n_pos, d_model]
    if (c.embedScale != 1.0)
        x = x * static_cast<float>(c.embedScale);
    if (c.positionKind == PositionKind::Learned)
        x = x + at::embedding(W.posEmbed, positions).unsqueeze(0);

    at::Tensor cos, sin; // [n_pos, 1, d_head]
    if (c.positionKind == PositionKind::Rope) {
        at::Tensor freqs = positions.to(at::kFloat).unsqueeze(1) * W.ropeInvFreq.unsqueeze(0); // [n_pos, d_head/2]
        at::Tensor emb = at::cat({ freqs, freqs }, -1);
        cos = emb.cos().unsqueeze(1);
        sin = emb.sin().unsqueeze(1);
    }
    const double scale = c.queryScale > 0 ? c.queryScale : 1.0 / std::sqrt(static_cast<double>(c.dHead));
    const int64_t groups = c.nHeads / c.nKvHeads;

    for (int64_t l = 0; l < c.nLayers; ++l) {
        const auto& L = W.layers[static_cast<size_t>(l)];
        hook(l, Hook::ResidPre, x);

        // Attention.
        at::Tensor h = applyNorm(x, c.normKind, L.attnNormW, L.attnNormB, c.normEps, normIo(l, NormSite::AttnIn));
        at::Tensor q = linear(h, L.q, L.qBias).view({ batch, nPos, c.nHeads, c.dHead });
        at::Tensor k = linear(h, L.k, L.kBias).view({ batch, nPos, c.nKvHeads, c.dHead });
        at::Tensor v = linear(h, L.v, L.vBias).view({ batch, nPos, c.nKvHeads, c.dHead });
        if (c.qkNorm) {
            q = applyNorm(q, NormKind::Rms, L.qNorm, {}, c.normEps, normIo(l, NormSite::Q));
            k = applyNorm(k, NormKind::Rms, L.kNorm, {}, c.normEps, normIo(l, NormSite::K));
        }
        if (c.positionKind == PositionKind::Rope) {
            q = applyRope(q, cos, sin);
            k = applyRope(k, cos, sin);
        }
        q = q.transpose(1, 2); // [batch, heads, n_pos, d_head]
        k = k.transpose(1, 2); // [batch, kv_heads, n_pos, d_head]
        v = v.transpose(1, 2);
        if (cache) {
            auto& ck = cache->keys[static_cast<size_t>(l)];
            auto& cv = cache->values[static_cast<size_t>(l)];
            ck = ck.defined() ? at::cat({ ck, k }, 2) : k.contiguous();
            cv = cv.defined() ? at::cat({ cv, v }, 2) : v.contiguous();
            k = ck;
            v = cv;
        }
        const int64_t nKeys = k.size(2);
        if (groups > 1) {
            k = k.repeat_interleave(groups, 1);
            v = v.repeat_interleave(groups, 1);
        }
        at::Tensor pattern; // [batch, heads, n_pos, n_keys]
        if (frozen) {
            pattern = frozen->layers[static_cast<size_t>(l)].pattern;
            if (!pattern.defined() || pattern.size(-2) != nPos || pattern.size(-1) != nKeys)
                throw Error("forward: the frozen attention pattern does not match this input");
        } else {
            at::Tensor scores = at::matmul(q, k.transpose(-1, -2)) * scale;
            if (c.attnSoftcap > 0)
                scores = at::tanh(scores / c.attnSoftcap) * c.attnSoftcap;
            // Query i (absolute offset+i) sees key j when j <= offset+i, and on sliding layers
            // only when offset+i - j < window.
            at::Tensor qPos = positions.unsqueeze(1); // [n_pos, 1]
            at::Tensor kPos = at::arange(nKeys, positions.options()).unsqueeze(0); // [1, n_keys]
            at::Tensor visible = kPos <= qPos;
            if (c.slidingWindow > 0 && c.slidingLayers[static_cast<size_t>(l)])
                visible = visible & (qPos - kPos < c.slidingWindow);
            scores = scores.masked_fill(visible.logical_not(), -std::numeric_limits<float>::infinity());
            pattern = at::softmax(scores, -1);
        }
        hook(l, Hook::AttnPattern, pattern);
        if (options.record)
            result.frozen.layers[static_cast<size_t>(l)].pattern = pattern.detach();
        at::Tensor z = at::matmul(pattern, v); // [batch, heads, n_pos, d_head]
        z = z.transpose(1, 2).reshape({ batch, nPos, c.nHeads * c.dHead });
        at::Tensor attnOut = linear(z, L.o, L.oBias);
        if (c.postNorms)
            attnOut = applyNorm(attnOut, c.normKind, L.attnPostNorm, {}, c.normEps, normIo(l, NormSite::AttnPost));
        hook(l, Hook::AttnOut, attnOut);
        x = x + attnOut;
        hook(l, Hook::ResidMid, x);

        // MLP.
        // The norm in two steps, each with its hook: a change to mlp_normalized reaches mlp_in.
        at::Tensor normalized = normalize(x, c.normKind, c.normEps, normIo(l, NormSite::MlpIn));
        hook(l, Hook::MlpNormalized, normalized);
        at::Tensor mlpIn = weighNorm(normalized, c.normKind, L.mlpNormW, L.mlpNormB);
        hook(l, Hook::MlpIn, mlpIn);
        at::Tensor mlpOut;
        if (options.mlpReplace)
            mlpOut = options.mlpReplace(l, MlpInputs { x, normalized, mlpIn });
        if (!mlpOut.defined()) {
            at::Tensor hidden; // [batch, n_pos, d_mlp]
            if (c.mlpKind == MlpKind::Gated && options.relp)
                hidden = relpProduct(relpActivation(at::linear(mlpIn, L.gate), c.activation), at::linear(mlpIn, L.up));
            else if (c.mlpKind == MlpKind::Gated)
                hidden = activate(at::linear(mlpIn, L.gate), c.activation) * at::linear(mlpIn, L.up);
            else if (options.relp)
                hidden = relpActivation(linear(mlpIn, L.up, L.upBias), c.activation);
            else
                hidden = activate(linear(mlpIn, L.up, L.upBias), c.activation);
            hook(l, Hook::MlpHidden, hidden);
            mlpOut = linear(hidden, L.down, L.downBias);
            if (c.postNorms)
                mlpOut = applyNorm(mlpOut, c.normKind, L.mlpPostNorm, {}, c.normEps, normIo(l, NormSite::MlpPost));
        }
        hook(l, Hook::MlpOut, mlpOut);
        x = x + mlpOut;
        hook(l, Hook::ResidPost, x);
    }

    NormIo finalIo;
    if (frozen)
        finalIo.frozen = &frozen->finalDenominator;
    if (options.record)
        finalIo.record = &result.frozen.finalDenominator;
    x = applyNorm(x, c.normKind, W.finalNormW, W.finalNormB, c.normEps, finalIo);
    at::Tensor logits = at::matmul(x, W.unembed.t()); // [batch, n_pos, vocab]
    if (c.finalSoftcap > 0 && options.relp) // linearized as the activations are
        logits = logits
            * at::where(
                logits.abs() < 1e-6, at::ones_like(logits), at::tanh(logits / c.finalSoftcap) * c.finalSoftcap / logits)
                  .detach();
    else if (c.finalSoftcap > 0)
        logits = at::tanh(logits / c.finalSoftcap) * c.finalSoftcap;
    result.logits = logits;
    return result;
}

// f(z) = z * s(z) with s held constant, s = f(z) / z (sigmoid(z) for SiLU; 1/2 at z = 0 for
// both GELUs, their limit there), so the gradient passes f(z) / z and z * df/dz = f(z).
at::Tensor relpActivation(const at::Tensor& z, Activation activation)
{
    const at::Tensor s = activation == Activation::Silu
        ? at::sigmoid(z)
        : at::where(z.abs() < 1e-6, at::full_like(z, 0.5), activate(z, activation) / z);
    return z * s.detach();
}

at::Tensor relpProduct(const at::Tensor& a, const at::Tensor& b)
{
    return 0.5 * (a * b.detach() + a.detach() * b);
}

} // namespace cs::model
