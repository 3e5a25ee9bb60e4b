// Llama (LlamaForCausalLM): RMSNorm, RoPE with the config's scaling, grouped-query
// attention, SwiGLU MLP. Also reads Mistral-style checkpoints, which share the layout.
#include "common.h"

#include "cs/error.h"

namespace cs::plugins {
namespace {

class LlamaPlugin final : public FamilyPlugin {
public:
    std::string name() const override { return "llama"; }
    std::vector<std::string> modelTypes() const override { return { "llama", "mistral" }; }

    model::ModelConfig parseConfig(const nlohmann::json& config) const override
    {
        model::ModelConfig c = detail::parseLlamaLike(config, name(), /*tiedByDefault=*/false);
        if (detail::intOr(config, "sliding_window", 0) > 0 && c.modelType == "mistral")
            throw Error("config.json (mistral): sliding_window attention is not supported for this family");
        detail::validate(c);
        return c;
    }

    nlohmann::json configJson(const model::ModelConfig& c) const override
    {
        nlohmann::json j = detail::llamaLikeConfigJson(c, "LlamaForCausalLM");
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
            detail::addLlamaStyleLayer(out, c, i);
        }
        return out;
    }
};

} // namespace

std::shared_ptr<const FamilyPlugin> makeLlamaPlugin()
{
    return std::make_shared<LlamaPlugin>();
}

} // namespace cs::plugins
