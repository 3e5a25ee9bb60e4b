#include "common.h"

#include "cs/error.h"
#include "cs/json_reader.h"

#include <cmath>
#include <cstdio>
#include <limits>

namespace cs::plugins {
namespace detail {

int64_t requirePositive(const nlohmann::json& config, const char* key, const std::string& family)
{
    if (!config.contains(key) || config[key].is_null())
        throw Error("config.json (" + family + ") is missing the field \"" + key + "\"");
    if (!config[key].is_number_integer() || config[key].get<int64_t>() <= 0)
        throw Error("config.json (" + family + "): \"" + key + "\" must be a positive integer");
    return config[key].get<int64_t>();
}

// config.json's optional fields through the one checked reader (cs/json_reader.h).
const JsonReader& configJson()
{
    static const JsonReader reader("config.json");
    return reader;
}

int64_t intOr(const nlohmann::json& config, const char* key, int64_t fallback)
{
    return configJson().integerOr(config, key, "", fallback);
}

double numberOr(const nlohmann::json& config, const char* key, double fallback)
{
    return configJson().numberOr(config, key, "", fallback);
}

double positiveNumberOr(
    const nlohmann::json& config, const char* key, double fallback, const std::string& family, const std::string& where)
{
    const double value = numberOr(config, key, fallback); // finite already
    if (!(value > 0))
        throw Error("config.json (" + family + "): \"" + where + key + "\" must be a positive number, got "
            + nlohmann::json(value).dump());
    return value;
}

int64_t positiveIntOr(const nlohmann::json& config, const char* key, int64_t fallback, const std::string& family)
{
    const int64_t value = intOr(config, key, fallback); // an integer within int64 already
    if (value <= 0)
        throw Error(
            "config.json (" + family + "): \"" + key + "\" must be a positive integer, got " + std::to_string(value));
    return value;
}

bool boolOr(const nlohmann::json& config, const char* key, bool fallback)
{
    return configJson().booleanOr(config, key, "", fallback);
}

std::string stringOr(const nlohmann::json& config, const char* key, const std::string& fallback)
{
    return configJson().stringOr(config, key, "", fallback);
}

std::optional<int64_t> tokenId(const nlohmann::json& config, const char* key)
{
    if (!config.contains(key))
        return std::nullopt;
    const auto& v = config[key];
    if (v.is_number_integer())
        return v.get<int64_t>();
    if (v.is_array() && !v.empty() && v[0].is_number_integer())
        return v[0].get<int64_t>();
    return std::nullopt;
}

model::Activation activationFromName(const std::string& name, const std::string& family)
{
    if (name == "silu" || name == "swish")
        return model::Activation::Silu;
    if (name == "gelu_pytorch_tanh" || name == "gelu_new" || name == "gelu_fast")
        return model::Activation::GeluTanh;
    if (name == "gelu")
        return model::Activation::GeluExact;
    throw Error("config.json (" + family + "): unsupported activation \"" + name
        + "\" (supported: silu, gelu, gelu_new, gelu_pytorch_tanh)");
}

model::ModelConfig parseLlamaLike(const nlohmann::json& config, const std::string& family, bool tiedByDefault)
{
    model::ModelConfig c;
    c.family = family;
    c.modelType = stringOr(config, "model_type", family);
    c.vocabSize = requirePositive(config, "vocab_size", family);
    c.dModel = requirePositive(config, "hidden_size", family);
    c.dMlp = requirePositive(config, "intermediate_size", family);
    c.nLayers = requirePositive(config, "num_hidden_layers", family);
    c.nHeads = requirePositive(config, "num_attention_heads", family);
    c.nKvHeads = intOr(config, "num_key_value_heads", c.nHeads);
    if (config.contains("head_dim") && !config["head_dim"].is_null()) {
        c.dHead = positiveIntOr(config, "head_dim", 0, family); // given: used as given, never replaced
    } else {
        if (c.dModel % c.nHeads != 0)
            throw Error("config.json (" + family + "): hidden_size is not a multiple of num_attention_heads");
        c.dHead = c.dModel / c.nHeads;
    }
    c.maxPositions = positiveIntOr(config, "max_position_embeddings", 2048, family);
    c.normEps = positiveNumberOr(config, "rms_norm_eps", 1e-6, family);
    c.normKind = model::NormKind::Rms;
    c.mlpKind = model::MlpKind::Gated;
    c.activation = activationFromName(stringOr(config, "hidden_act", "silu"), family);
    c.positionKind = model::PositionKind::Rope;
    // transformers 5 writes RoPE as one object, rope_parameters {rope_type, rope_theta, factor, ...};
    // 4.x as rope_theta beside rope_scaling {rope_type, factor, ...}. Either is read.
    const bool v5Rope = config.contains("rope_parameters") && config["rope_parameters"].is_object()
        && (config["rope_parameters"].contains("rope_type") || config["rope_parameters"].contains("rope_theta"));
    const double theta = positiveNumberOr(config, "rope_theta", 10000.0, family);
    c.ropeTheta
        = v5Rope ? positiveNumberOr(config["rope_parameters"], "rope_theta", theta, family, "rope_parameters.") : theta;
    const char* scalingKey = v5Rope ? "rope_parameters" : "rope_scaling";
    const std::string scalingWhere = std::string(scalingKey) + ".";
    if (config.contains(scalingKey) && !config[scalingKey].is_null()) {
        const auto& rs = config[scalingKey];
        if (!rs.is_object())
            throw Error("config.json (" + family + "): " + scalingKey + " must be an object or null");
        std::string type = stringOr(rs, "rope_type", stringOr(rs, "type", "default"));
        c.ropeScaling.type = type;
        c.ropeScaling.factor = positiveNumberOr(rs, "factor", 1.0, family, scalingWhere);
        if (type == "llama3") {
            c.ropeScaling.lowFreqFactor = positiveNumberOr(rs, "low_freq_factor", 1.0, family, scalingWhere);
            c.ropeScaling.highFreqFactor = positiveNumberOr(rs, "high_freq_factor", 4.0, family, scalingWhere);
            c.ropeScaling.originalMaxPositions
                = positiveNumberOr(rs, "original_max_position_embeddings", 8192.0, family, scalingWhere);
            // The smoothing between the two wavelengths divides by their difference.
            if (!(c.ropeScaling.highFreqFactor > c.ropeScaling.lowFreqFactor)) {
                char text[160];
                std::snprintf(text, sizeof text, "high_freq_factor (%.1f) must be larger than %slow_freq_factor (%.1f)",
                    c.ropeScaling.highFreqFactor, scalingWhere.c_str(), c.ropeScaling.lowFreqFactor);
                throw Error("config.json (" + family + "): " + scalingWhere + text);
            }
        } else if (type != "default" && type != "linear") {
            throw Error("config.json (" + family + "): " + scalingKey + " type \"" + type
                + "\" is not supported (supported: default, linear, llama3)");
        }
    }
    c.attnBias = boolOr(config, "attention_bias", false);
    c.mlpBias = boolOr(config, "mlp_bias", false);
    if (c.mlpBias)
        throw Error("config.json (" + family + "): mlp_bias is not supported");
    c.tiedEmbeddings = boolOr(config, "tie_word_embeddings", tiedByDefault);
    c.bosTokenId = tokenId(config, "bos_token_id");
    c.eosTokenId = tokenId(config, "eos_token_id");
    c.torchDtype = stringOr(config, "torch_dtype", stringOr(config, "dtype", ""));
    c.slidingLayers.assign(static_cast<size_t>(c.nLayers), false);
    return c;
}

void validate(const model::ModelConfig& c)
{
    // The norm adds its epsilon and the rotary frequencies are computed in float32 (as
    // transformers does): a value float32 cannot hold becomes 0 or infinity there, and every
    // activation 0 or every logit NaN.
    const auto inFloat32 = [&](double value, const char* key) {
        if (value < std::numeric_limits<float>::min() || value > std::numeric_limits<float>::max()) {
            char text[48];
            std::snprintf(text, sizeof text, "%g", value);
            throw Error("config.json (" + c.family + "): \"" + key + "\" is " + text
                + ", outside float32's range (1.2e-38 to 3.4e+38), in which it is used");
        }
    };
    inFloat32(c.normEps, c.normKind == model::NormKind::Rms ? "rms_norm_eps" : "layer_norm_epsilon");
    if (c.positionKind == model::PositionKind::Rope)
        inFloat32(c.ropeTheta, "rope_theta");
    if (c.nKvHeads <= 0 || c.nHeads % c.nKvHeads != 0)
        throw Error("config.json (" + c.family + "): num_attention_heads (" + std::to_string(c.nHeads)
            + ") is not a multiple of num_key_value_heads (" + std::to_string(c.nKvHeads) + ")");
    if (c.positionKind == model::PositionKind::Rope && c.dHead % 2 != 0)
        throw Error("config.json (" + c.family + "): head_dim must be even for rotary embeddings");
    if (c.nLayers > 4096 || c.dModel > (1 << 20) || c.vocabSize > (1 << 24) || c.dHead > (1 << 16)
        || c.nHeads > (1 << 16) || c.dMlp > (1 << 24))
        throw Error("config.json (" + c.family + "): implausible dimensions");
}

nlohmann::json llamaLikeConfigJson(const model::ModelConfig& c, const std::string& architecture)
{
    nlohmann::json j = { { "model_type", c.modelType }, { "architectures", { architecture } },
        { "vocab_size", c.vocabSize }, { "hidden_size", c.dModel }, { "intermediate_size", c.dMlp },
        { "num_hidden_layers", c.nLayers }, { "num_attention_heads", c.nHeads }, { "num_key_value_heads", c.nKvHeads },
        { "head_dim", c.dHead }, { "max_position_embeddings", c.maxPositions }, { "rms_norm_eps", c.normEps },
        { "rope_theta", c.ropeTheta }, { "tie_word_embeddings", c.tiedEmbeddings }, { "attention_bias", c.attnBias },
        { "mlp_bias", false }, { "torch_dtype", "float32" } };
    j["hidden_act"] = c.activation == model::Activation::Silu ? "silu"
        : c.activation == model::Activation::GeluTanh         ? "gelu_pytorch_tanh"
                                                              : "gelu";
    if (c.ropeScaling.type == "default") {
        j["rope_scaling"] = nullptr;
    } else {
        j["rope_scaling"] = { { "rope_type", c.ropeScaling.type }, { "factor", c.ropeScaling.factor } };
        if (c.ropeScaling.type == "llama3") {
            j["rope_scaling"]["low_freq_factor"] = c.ropeScaling.lowFreqFactor;
            j["rope_scaling"]["high_freq_factor"] = c.ropeScaling.highFreqFactor;
            j["rope_scaling"]["original_max_position_embeddings"] = c.ropeScaling.originalMaxPositions;
        }
    }
    j["bos_token_id"] = c.bosTokenId ? nlohmann::json(*c.bosTokenId) : nlohmann::json(nullptr);
    j["eos_token_id"] = c.eosTokenId ? nlohmann::json(*c.eosTokenId) : nlohmann::json(nullptr);
    return j;
}

std::string layerName(int64_t layer, const std::string& rest)
{
    return "layers." + std::to_string(layer) + "." + rest;
}

void addLlamaStyleLayer(std::vector<WeightSource>& out, const model::ModelConfig& c, int64_t i)
{
    const std::string hf = "model.layers." + std::to_string(i) + ".";
    const int64_t q = c.nHeads * c.dHead, kv = c.nKvHeads * c.dHead;
    out.push_back({ layerName(i, "attn.q.weight"), hf + "self_attn.q_proj.weight", {}, { q, c.dModel } });
    out.push_back({ layerName(i, "attn.k.weight"), hf + "self_attn.k_proj.weight", {}, { kv, c.dModel } });
    out.push_back({ layerName(i, "attn.v.weight"), hf + "self_attn.v_proj.weight", {}, { kv, c.dModel } });
    out.push_back({ layerName(i, "attn.o.weight"), hf + "self_attn.o_proj.weight", {}, { c.dModel, q } });
    if (c.attnBias) {
        out.push_back({ layerName(i, "attn.q.bias"), hf + "self_attn.q_proj.bias", {}, { q } });
        out.push_back({ layerName(i, "attn.k.bias"), hf + "self_attn.k_proj.bias", {}, { kv } });
        out.push_back({ layerName(i, "attn.v.bias"), hf + "self_attn.v_proj.bias", {}, { kv } });
        out.push_back({ layerName(i, "attn.o.bias"), hf + "self_attn.o_proj.bias", {}, { c.dModel }, false, -1, 0, 0,
            /*optional=*/true });
    }
    out.push_back({ layerName(i, "mlp.gate.weight"), hf + "mlp.gate_proj.weight", {}, { c.dMlp, c.dModel } });
    out.push_back({ layerName(i, "mlp.up.weight"), hf + "mlp.up_proj.weight", {}, { c.dMlp, c.dModel } });
    out.push_back({ layerName(i, "mlp.down.weight"), hf + "mlp.down_proj.weight", {}, { c.dModel, c.dMlp } });
}

void addLlamaStyleGlobals(std::vector<WeightSource>& out, const model::ModelConfig& c)
{
    out.push_back({ "embed.weight", "model.embed_tokens.weight",
        c.tiedEmbeddings ? std::vector<std::string> { "lm_head.weight" } : std::vector<std::string> {},
        { c.vocabSize, c.dModel } });
    out.push_back({ "final_norm.weight", "model.norm.weight", {}, { c.dModel } });
    // Tied: one matrix, which some exporters store only as lm_head.weight (transformers loads that).
    if (c.tiedEmbeddings)
        out.push_back(
            { "unembed.weight", "model.embed_tokens.weight", { "lm_head.weight" }, { c.vocabSize, c.dModel } });
    else
        out.push_back({ "unembed.weight", "lm_head.weight", {}, { c.vocabSize, c.dModel } });
}

} // namespace detail

} // namespace cs::plugins
