// The model families compiled into Circuitscope. Adding an architecture: a folder beside
// this file with a FamilyPlugin, listed here and in plugins/CMakeLists.txt.
#include "common.h"

#include "cs/error.h"

namespace cs::plugins {

const std::vector<std::shared_ptr<const FamilyPlugin>>& builtinPlugins()
{
    static const std::vector<std::shared_ptr<const FamilyPlugin>> plugins = {
        makeLlamaPlugin(),
        makeQwen3Plugin(),
        makeGemma2Plugin(),
        makeGpt2Plugin(),
    };
    return plugins;
}

std::shared_ptr<const FamilyPlugin> pluginForModelType(const std::string& modelType)
{
    std::string known;
    for (const auto& plugin : builtinPlugins()) {
        if (plugin->apiVersion() != kPluginApiVersion)
            continue;
        for (const auto& type : plugin->modelTypes()) {
            if (type == modelType)
                return plugin;
            known += (known.empty() ? "" : ", ") + type;
        }
    }
    throw Error("config.json: model_type \"" + modelType + "\" is not a supported family (supported: " + known + ")");
}

} // namespace cs::plugins
