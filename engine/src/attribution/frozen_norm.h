#pragma once
// A norm of the model with its denominators frozen from a recorded run: a linear map of the
// residual stream per position (LayerNorm's centering is linear too), and its transpose.
//   forward:  y = center(x) / denom_p * w' (+ b)      w' = w, or 1 + w for gemma2's norms
//   backward: g_x = center(g_y * w' / denom_p)         (center is symmetric)
// The bias is a constant of the linear model: backward ignores it. An unweighted norm stops
// before w' and b: the mlp_normalized hook (TransformerLens's ln2.hook_normalized) that
// GemmaScope-style transcoders read.

#include "cs/model.h"

#include <ATen/ATen.h>

#include <optional>
#include <string>

namespace cs::attribution {

class FrozenNorm {
public:
    static FrozenNorm final(const model::Model& model, const model::FrozenState& frozen)
    {
        return FrozenNorm(model, "final_norm", model.config().normKind, frozen.finalDenominator);
    }
    // The norm before the layer's transcoder input `hook`: the MLP-input norm, weighted for
    // MlpIn, unweighted for MlpNormalized; nothing (std::nullopt) for ResidMid.
    static std::optional<FrozenNorm> transcoderInput(
        const model::Model& model, const model::FrozenState& frozen, int64_t layer, model::Hook hook)
    {
        if (hook == model::Hook::ResidMid)
            return std::nullopt;
        FrozenNorm norm = FrozenNorm::layer(model, frozen, layer, model::NormSite::MlpIn);
        if (hook == model::Hook::MlpNormalized) {
            norm.m_weight = at::Tensor();
            norm.m_bias = at::Tensor();
        }
        return norm;
    }
    static FrozenNorm layer(
        const model::Model& model, const model::FrozenState& frozen, int64_t layer, model::NormSite site)
    {
        const std::string prefix = "layers." + std::to_string(layer) + ".";
        const char* name = site == model::NormSite::AttnIn ? "attn_norm"
            : site == model::NormSite::MlpIn               ? "mlp_norm"
            : site == model::NormSite::AttnPost            ? "attn_post_norm"
                                                           : "mlp_post_norm";
        return FrozenNorm(model, prefix + name, model.config().normKind,
            frozen.layers[static_cast<size_t>(layer)].denominators[static_cast<int>(site)]);
    }

    // x [..., len, d_model] at positions [begin, begin + len).
    at::Tensor forward(const at::Tensor& x, int64_t begin) const
    {
        at::Tensor y = weigh(center(x) * inverse(begin, x.size(-2)));
        return m_bias.defined() ? y + m_bias : y;
    }
    // The transpose: g [..., len, d_model] at positions [begin, begin + len).
    at::Tensor backward(const at::Tensor& g, int64_t begin) const
    {
        return center(weigh(g) * inverse(begin, g.size(-2)));
    }

    // The transpose at scattered positions: g [k, d_model], positions [k] int64.
    at::Tensor backwardAt(const at::Tensor& g, const at::Tensor& positions) const
    {
        return center(weigh(g) * m_inverse.index_select(0, positions));
    }

private:
    FrozenNorm(const model::Model& model, const std::string& name, model::NormKind kind, const at::Tensor& denom)
        : m_kind(kind)
    {
        m_weight = model.weight(name + ".weight");
        if (kind == model::NormKind::RmsOnePlus)
            m_weight = m_weight + 1;
        if (model.hasWeight(name + ".bias"))
            m_bias = model.weight(name + ".bias");
        m_inverse = denom.reciprocal().reshape({ -1, 1 }); // [n_pos, 1]
    }
    at::Tensor center(const at::Tensor& x) const { return m_kind == model::NormKind::Layer ? x - x.mean(-1, true) : x; }
    at::Tensor inverse(int64_t begin, int64_t len) const { return m_inverse.narrow(0, begin, len); }
    at::Tensor weigh(const at::Tensor& x) const { return m_weight.defined() ? x * m_weight : x; }

    model::NormKind m_kind;
    at::Tensor m_weight; // w' [d_model], or undefined for an unweighted norm
    at::Tensor m_bias; // [d_model] or undefined
    at::Tensor m_inverse; // 1 / denom [n_pos, 1]
};

} // namespace cs::attribution
