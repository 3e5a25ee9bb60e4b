// config.json of every model family, as cs::model::Model::load reads it: checked JSON, the
// model_type picks the plugin, the plugin parses its config and lists the weights it needs. The
// config a plugin writes back (configJson) must read back: a refusal there is a finding too.
#include "fuzz_common.h"

#include <cs/json_reader.h>
#include <cs/plugin.h>

#include <cstdio>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string source = "config.json";
    nlohmann::json config;
    try {
        config = cs::parseJson(std::string_view(reinterpret_cast<const char*>(data), size), source);
    } catch (const nlohmann::json::exception&) {
        return 0; // Model::load turns the parser's error into a cs::Error naming the file
    } catch (const cs::Error& e) {
        cs::fuzz::refused(e);
        return 0;
    }
    // Model::load refuses these before any plugin sees the config.
    if (!config.is_object() || !config.contains("model_type") || !config["model_type"].is_string())
        return 0;
    std::shared_ptr<const cs::plugins::FamilyPlugin> plugin;
    cs::model::ModelConfig parsed;
    try {
        plugin = cs::plugins::pluginForModelType(config["model_type"].get<std::string>());
        parsed = plugin->parseConfig(config);
        (void)plugin->weightSources(parsed);
    } catch (const cs::Error& e) {
        cs::fuzz::refused(e);
        return 0;
    }
    const nlohmann::json written = plugin->configJson(parsed);
    try {
        (void)plugin->parseConfig(written);
    } catch (const cs::Error& e) {
        std::fprintf(stderr, "config.json accepted, but the config written for it is refused: %s\n%s\n", e.what(),
            written.dump().c_str());
        std::abort();
    }
    return 0;
}
