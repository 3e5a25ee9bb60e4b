// GPT-2 (GPT2LMHeadModel): LayerNorm, learned position embeddings, Conv1D weights stored
// [in, out] (transposed on load), q/k/v fused in c_attn, gelu_new MLP, biases everywhere,
// unembedding tied to the token embedding.
#include "common.h"

#include "cs/error.h"

namespace cs::plugins {
namespace {

class Gpt2Plugin final : public FamilyPlugin {
public:
    std::string name() const override { return "gpt2"; }
    std::vector<std::string> modelTypes() const override { return { "gpt2" }; }

    model::ModelConfig parseConfig(const nlohmann::json& config) const override
    {
        const std::string family = name();
        model::ModelConfig c;
        c.family = family;
        c.modelType = "gpt2";
        c.vocabSize = detail::requirePositive(config, "vocab_size", family);
        c.dModel = detail::requirePositive(config, "n_embd", family);
        c.nLayers = detail::requirePositive(config, "n_layer", family);
        c.nHeads = detail::requirePositive(config, "n_head", family);
        c.nKvHeads = c.nHeads;
        if (c.dModel % c.nHeads != 0)
            throw Error("config.json (gpt2): n_embd is not a multiple of n_head");
        c.dHead = c.dModel / c.nHeads;
        c.dMlp = detail::intOr(config, "n_inner", 0);
        if (c.dMlp <= 0)
            c.dMlp = 4 * c.dModel;
        c.maxPositions = detail::requirePositive(config, "n_positions", family);
        c.normEps = detail::positiveNumberOr(config, "layer_norm_epsilon", 1e-5, family);
        c.normKind = model::NormKind::Layer;
        c.mlpKind = model::MlpKind::Plain;
        c.activation = detail::activationFromName(detail::stringOr(config, "activation_function", "gelu_new"), family);
        c.positionKind = model::PositionKind::Learned;
        c.attnBias = true;
        c.attnOutBias = true;
        c.mlpBias = true;
        c.tiedEmbeddings = true;
        if (!detail::boolOr(config, "scale_attn_weights", true))
            throw Error("config.json (gpt2): scale_attn_weights=false is not supported");
        if (detail::boolOr(config, "scale_attn_by_inverse_layer_idx", false))
            throw Error("config.json (gpt2): scale_attn_by_inverse_layer_idx is not supported");
        c.bosTokenId = detail::tokenId(config, "bos_token_id");
        c.eosTokenId = detail::tokenId(config, "eos_token_id");
        c.torchDtype = detail::stringOr(config, "torch_dtype", "");
        c.slidingLayers.assign(static_cast<size_t>(c.nLayers), false);
        detail::validate(c);
        return c;
    }

    nlohmann::json configJson(const model::ModelConfig& c) const override
    {
        return { { "model_type", "gpt2" }, { "architectures", { "GPT2LMHeadModel" } }, { "vocab_size", c.vocabSize },
            { "n_embd", c.dModel }, { "n_layer", c.nLayers }, { "n_head", c.nHeads }, { "n_positions", c.maxPositions },
            { "n_inner", c.dMlp }, { "layer_norm_epsilon", c.normEps },
            { "activation_function", c.activation == model::Activation::GeluExact ? "gelu" : "gelu_new" },
            { "bos_token_id", c.bosTokenId ? nlohmann::json(*c.bosTokenId) : nlohmann::json(nullptr) },
            { "eos_token_id", c.eosTokenId ? nlohmann::json(*c.eosTokenId) : nlohmann::json(nullptr) },
            { "torch_dtype", "float32" } };
    }

    std::vector<WeightSource> weightSources(const model::ModelConfig& c) const override
    {
        const int64_t d = c.dModel, m = c.dMlp;
        std::vector<WeightSource> out;
        // GPT2LMHeadModel prefixes "transformer."; a bare GPT2Model does not.
        auto src = [](const std::string& name) {
            WeightSource w;
            w.source = "transformer." + name;
            w.fallbacks = { name };
            return w;
        };
        auto add = [&](const std::string& canonical, const std::string& name, std::vector<int64_t> shape,
                       bool transpose = false, int64_t sliceDim = -1, int64_t sliceStart = 0, int64_t sliceLen = 0) {
            WeightSource w = src(name);
            w.canonical = canonical;
            w.shape = std::move(shape);
            w.transpose = transpose;
            w.sliceDim = sliceDim;
            w.sliceStart = sliceStart;
            w.sliceLen = sliceLen;
            out.push_back(std::move(w));
        };
        add("embed.weight", "wte.weight", { c.vocabSize, d });
        add("unembed.weight", "wte.weight", { c.vocabSize, d });
        add("pos_embed.weight", "wpe.weight", { c.maxPositions, d });
        add("final_norm.weight", "ln_f.weight", { d });
        add("final_norm.bias", "ln_f.bias", { d });
        for (int64_t i = 0; i < c.nLayers; ++i) {
            const std::string h = "h." + std::to_string(i) + ".";
            auto L = [&](const std::string& rest) { return detail::layerName(i, rest); };
            add(L("attn_norm.weight"), h + "ln_1.weight", { d });
            add(L("attn_norm.bias"), h + "ln_1.bias", { d });
            // c_attn.weight is [d, 3d]; transposed it is [3d, d] with q, k, v stacked on dim 0.
            const char* parts[] = { "q", "k", "v" };
            for (int64_t p = 0; p < 3; ++p) {
                add(L(std::string("attn.") + parts[p] + ".weight"), h + "attn.c_attn.weight", { d, d }, true, 0, p * d,
                    d);
                add(L(std::string("attn.") + parts[p] + ".bias"), h + "attn.c_attn.bias", { d }, false, 0, p * d, d);
            }
            add(L("attn.o.weight"), h + "attn.c_proj.weight", { d, d }, true);
            add(L("attn.o.bias"), h + "attn.c_proj.bias", { d });
            add(L("mlp_norm.weight"), h + "ln_2.weight", { d });
            add(L("mlp_norm.bias"), h + "ln_2.bias", { d });
            add(L("mlp.up.weight"), h + "mlp.c_fc.weight", { m, d }, true);
            add(L("mlp.up.bias"), h + "mlp.c_fc.bias", { m });
            add(L("mlp.down.weight"), h + "mlp.c_proj.weight", { d, m }, true);
            add(L("mlp.down.bias"), h + "mlp.c_proj.bias", { d });
        }
        return out;
    }
};

} // namespace

std::shared_ptr<const FamilyPlugin> makeGpt2Plugin()
{
    return std::make_shared<Gpt2Plugin>();
}

} // namespace cs::plugins
