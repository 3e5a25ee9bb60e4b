// Gemma 2 (Gemma2ForCausalLM): (1 + w) RMSNorm, norms before and after both attention and
// MLP, GELU-tanh gated MLP, embeddings scaled by sqrt(d_model), attention scores scaled by
// query_pre_attn_scalar^-1/2 and soft-capped, final logits soft-capped, and a sliding
// window on alternate layers (even layers in transformers' Gemma2, or as `layer_types` says).
#include "common.h"

#include "cs/error.h"

#include <cmath>

namespace cs::plugins {
namespace {

class Gemma2Plugin final : public FamilyPlugin {
public:
    std::string name() const override { return "gemma2"; }
    std::vector<std::string> modelTypes() const override { return { "gemma2" }; }

    model::ModelConfig parseConfig(const nlohmann::json& config) const override
    {
        nlohmann::json withDefaults = config;
        // Gemma2Config's defaults where the file leaves a field out.
        if (!withDefaults.contains("hidden_act") || withDefaults["hidden_act"].is_null())
            withDefaults["hidden_act"] = detail::stringOr(config, "hidden_activation", "gelu_pytorch_tanh");
        if (!withDefaults.contains("head_dim"))
            withDefaults["head_dim"] = 256;
        model::ModelConfig c = detail::parseLlamaLike(withDefaults, name(), /*tiedByDefault=*/true);
        c.normKind = model::NormKind::RmsOnePlus;
        c.postNorms = true;
        c.embedScale = std::sqrt(static_cast<double>(c.dModel));
        c.queryScale = 1.0 / std::sqrt(detail::positiveNumberOr(config, "query_pre_attn_scalar", 256.0, name()));
        c.attnSoftcap = detail::numberOr(config, "attn_logit_softcapping", 50.0);
        c.finalSoftcap = detail::numberOr(config, "final_logit_softcapping", 30.0);
        c.slidingWindow = detail::intOr(config, "sliding_window", 4096);
        if (config.contains("layer_types") && config["layer_types"].is_array()) {
            const auto& types = config["layer_types"];
            if (static_cast<int64_t>(types.size()) != c.nLayers)
                throw Error("config.json (gemma2): layer_types has " + std::to_string(types.size()) + " entries for "
                    + std::to_string(c.nLayers) + " layers");
            for (int64_t i = 0; i < c.nLayers; ++i)
                c.slidingLayers[static_cast<size_t>(i)] = types[static_cast<size_t>(i)] == "sliding_attention";
        } else {
            for (int64_t i = 0; i < c.nLayers; ++i)
                c.slidingLayers[static_cast<size_t>(i)] = i % 2 == 0;
        }
        if (!c.tiedEmbeddings)
            throw Error("config.json (gemma2): untied embeddings are not a Gemma 2 layout");
        detail::validate(c);
        return c;
    }

    nlohmann::json configJson(const model::ModelConfig& c) const override
    {
        nlohmann::json j = detail::llamaLikeConfigJson(c, "Gemma2ForCausalLM");
        j.erase("hidden_act");
        j["hidden_activation"] = "gelu_pytorch_tanh";
        j["query_pre_attn_scalar"] = 1.0 / (c.queryScale * c.queryScale);
        j["attn_logit_softcapping"] = c.attnSoftcap > 0 ? nlohmann::json(c.attnSoftcap) : nlohmann::json(nullptr);
        j["final_logit_softcapping"] = c.finalSoftcap > 0 ? nlohmann::json(c.finalSoftcap) : nlohmann::json(nullptr);
        j["sliding_window"] = c.slidingWindow;
        nlohmann::json types = nlohmann::json::array();
        for (bool sliding : c.slidingLayers)
            types.push_back(sliding ? "sliding_attention" : "full_attention");
        j["layer_types"] = types;
        return j;
    }

    std::vector<WeightSource> weightSources(const model::ModelConfig& c) const override
    {
        std::vector<WeightSource> out;
        detail::addLlamaStyleGlobals(out, c);
        for (int64_t i = 0; i < c.nLayers; ++i) {
            const std::string hf = "model.layers." + std::to_string(i) + ".";
            auto norm = [&](const char* canonical, const char* source) {
                out.push_back({ detail::layerName(i, canonical), hf + source, {}, { c.dModel } });
            };
            norm("attn_norm.weight", "input_layernorm.weight");
            norm("attn_post_norm.weight", "post_attention_layernorm.weight");
            norm("mlp_norm.weight", "pre_feedforward_layernorm.weight");
            norm("mlp_post_norm.weight", "post_feedforward_layernorm.weight");
            detail::addLlamaStyleLayer(out, c, i);
        }
        return out;
    }
};

} // namespace

std::shared_ptr<const FamilyPlugin> makeGemma2Plugin()
{
    return std::make_shared<Gemma2Plugin>();
}

} // namespace cs::plugins
