#pragma once
// The interface a model family implements. A plugin parses its family's Hugging Face
// config.json into a ModelConfig and names, for each weight the engine's blocks need, the
// tensor in the checkpoint it comes from. Adding an architecture means adding a plugin
// under plugins/ and listing it in plugins/builtin.cpp.

#include "cs/config.h"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace cs::plugins {

// Bumped whenever FamilyPlugin or WeightSource change incompatibly.
constexpr int kPluginApiVersion = 1;

// Where one of the engine's canonical weights comes from in the checkpoint.
struct WeightSource {
    std::string canonical; // e.g. "layers.3.attn.q.weight" (plugins/common.h lists them)
    std::string source; // the checkpoint's tensor name
    std::vector<std::string> fallbacks; // other names tried in order when `source` is absent
    std::vector<int64_t> shape; // the canonical shape the engine expects after the transforms
    bool transpose = false; // the stored matrix is [in, out] (gpt2's Conv1D): transpose it
    int64_t sliceDim = -1; // after transposing, take [sliceStart, sliceStart + sliceLen) on this dim
    int64_t sliceStart = 0;
    int64_t sliceLen = 0;
    bool optional = false; // missing is fine (e.g. an untied lm_head)
};

class FamilyPlugin {
public:
    virtual ~FamilyPlugin() = default;
    virtual int apiVersion() const { return kPluginApiVersion; }
    // The family name used across the program ("llama").
    virtual std::string name() const = 0;
    // The config.json `model_type` values this plugin reads.
    virtual std::vector<std::string> modelTypes() const = 0;
    // Throws cs::Error naming the missing or invalid field.
    virtual model::ModelConfig parseConfig(const nlohmann::json& config) const = 0;
    // Every weight the blocks need for this config.
    virtual std::vector<WeightSource> weightSources(const model::ModelConfig& config) const = 0;
    // The config.json that parseConfig reads back to this config (for models Circuitscope
    // trains or converts).
    virtual nlohmann::json configJson(const model::ModelConfig& config) const = 0;
};

// All plugins compiled into the program (plugins/builtin.cpp).
const std::vector<std::shared_ptr<const FamilyPlugin>>& builtinPlugins();
// The plugin that reads this model_type; throws cs::Error listing the known ones otherwise.
std::shared_ptr<const FamilyPlugin> pluginForModelType(const std::string& modelType);

} // namespace cs::plugins
