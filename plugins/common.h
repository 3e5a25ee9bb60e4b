#pragma once
// Pieces the family plugins share: reading config.json fields with clear errors, and the
// engine's canonical weight names.
//
// Canonical weights (float32 after loading; shapes use d = d_model, H = n_heads,
// K = n_kv_heads, dh = d_head, m = d_mlp, V = vocab, P = max positions):
//   embed.weight [V, d]            pos_embed.weight [P, d] (learned positions only)
//   final_norm.weight [d]          final_norm.bias [d] (LayerNorm)
//   unembed.weight [V, d]          (the embedding itself when tied)
//   layers.{i}.attn_norm.weight/.bias [d]
//   layers.{i}.attn.q.weight [H*dh, d]   .q.bias [H*dh]
//   layers.{i}.attn.k.weight [K*dh, d]   .k.bias     layers.{i}.attn.v.weight [K*dh, d]  .v.bias
//   layers.{i}.attn.o.weight [d, H*dh]   .o.bias [d]
//   layers.{i}.attn.q_norm.weight [dh]   layers.{i}.attn.k_norm.weight [dh] (qwen3)
//   layers.{i}.attn_post_norm.weight [d] layers.{i}.mlp_post_norm.weight [d] (gemma2)
//   layers.{i}.mlp_norm.weight/.bias [d]
//   layers.{i}.mlp.gate.weight [m, d]    layers.{i}.mlp.up.weight [m, d]  .up.bias [m]
//   layers.{i}.mlp.down.weight [d, m]    .down.bias [d]

#include "cs/config.h"
#include "cs/plugin.h"

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

namespace cs::plugins {

std::shared_ptr<const FamilyPlugin> makeLlamaPlugin();
std::shared_ptr<const FamilyPlugin> makeQwen3Plugin();
std::shared_ptr<const FamilyPlugin> makeGemma2Plugin();
std::shared_ptr<const FamilyPlugin> makeGpt2Plugin();

namespace detail {

// An integer field that must be present and positive; throws cs::Error naming it.
int64_t requirePositive(const nlohmann::json& config, const char* key, const std::string& family);
int64_t intOr(const nlohmann::json& config, const char* key, int64_t fallback);
double numberOr(const nlohmann::json& config, const char* key, double fallback);
// intOr for a field that must be positive when given (head_dim, max_position_embeddings): a
// value of 0 or less is refused with the field named, never replaced by a default.
int64_t positiveIntOr(const nlohmann::json& config, const char* key, int64_t fallback, const std::string& family);
// numberOr for a field that must be positive (a norm's epsilon, RoPE's base and factors: 0 or
// less makes every logit NaN); throws cs::Error naming config.json and `where` + key
// ("rope_scaling.factor").
double positiveNumberOr(const nlohmann::json& config, const char* key, double fallback, const std::string& family,
    const std::string& where = "");
bool boolOr(const nlohmann::json& config, const char* key, bool fallback);
std::string stringOr(const nlohmann::json& config, const char* key, const std::string& fallback);
// A token id that may be an int, a list of ints (first taken) or null.
std::optional<int64_t> tokenId(const nlohmann::json& config, const char* key);
model::Activation activationFromName(const std::string& name, const std::string& family);
// The dimensions, RoPE and token fields llama, qwen3 and gemma2 share.
model::ModelConfig parseLlamaLike(const nlohmann::json& config, const std::string& family, bool tiedByDefault);
// Checks the derived dimensions agree; throws cs::Error otherwise.
void validate(const model::ModelConfig& config);

// The config.json fields parseLlamaLike reads, for this config.
nlohmann::json llamaLikeConfigJson(const model::ModelConfig& config, const std::string& architecture);

std::string layerName(int64_t layer, const std::string& rest); // "layers.{i}.{rest}"

// The attention and gated-MLP weights of llama-style checkpoints ("model.layers.{i}.self_attn...").
void addLlamaStyleLayer(std::vector<WeightSource>& out, const model::ModelConfig& config, int64_t layer);
// embed, final norm and unembed of llama-style checkpoints.
void addLlamaStyleGlobals(std::vector<WeightSource>& out, const model::ModelConfig& config);

} // namespace detail
} // namespace cs::plugins
