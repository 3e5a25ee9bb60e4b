// Qwen3 (Qwen3ForCausalLM): the llama layout plus per-head RMSNorm on queries and keys,
// applied before RoPE.
#include "common.h"

#include "cs/error.h"

namespace cs::plugins {
namespace {

class Qwen3Plugin final : public FamilyPlugin {
public:
    std::string name() const override { return "qwen3"; }
    std::vector<std::string> modelTypes() const override { return { "qwen3" }; }

    model::ModelConfig parseConfig(const nlohmann::json& config) const override
    {
        model::ModelConfig c = detail::parseLlamaLike(config, name(), /*tiedByDefault=*/false);
        if (detail::boolOr(config, "use_sliding_window", false))
            throw Error("config.json (qwen3): use_sliding_window is not supported");
        c.qkNorm = true;
        detail::validate(c);
        return c;
    }

    nlohmann::json configJson(const model::ModelConfig& c) const override
    {
        nlohmann::json j = detail::llamaLikeConfigJson(c, "Qwen3ForCausalLM");
        j["use_sliding_window"] = false;
        return j;
    }

    std::vector<WeightSource> weightSources(const model::ModelConfig& c) const override
    {
        std::vector<WeightSource> out;
        detail::addLlamaStyleGlobals(out, c);
        for (int64_t i = 0; i < c.nLayers; ++i) {
            const std::string hf = "model.layers." + std::to_string(i) + ".";
            out.push_back(
                { detail::layerName(i, "attn_norm.weight"), hf + "input_layernorm.weight", {}, { c.dModel } });
            out.push_back(
                { detail::layerName(i, "mlp_norm.weight"), hf + "post_attention_layernorm.weight", {}, { c.dModel } });
            out.push_back(
                { detail::layerName(i, "attn.q_norm.weight"), hf + "self_attn.q_norm.weight", {}, { c.dHead } });
            out.push_back(
                { detail::layerName(i, "attn.k_norm.weight"), hf + "self_attn.k_norm.weight", {}, { c.dHead } });
            detail::addLlamaStyleLayer(out, c, i);
        }
        return out;
    }
};

} // namespace

std::shared_ptr<const FamilyPlugin> makeQwen3Plugin()
{
    return std::make_shared<Qwen3Plugin>();
}

} // namespace cs::plugins
