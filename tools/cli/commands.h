#pragma once
// Subcommands of circuitscope-cli that live in their own files.

#include "args.h"

#include <nlohmann/json.hpp>

#include <string>

namespace cs::cli {

// JSON text for the terminal; token strings holding partial UTF-8 sequences are replaced, not
// thrown on.
inline std::string dump(const nlohmann::json& j, bool pretty = false)
{
    return j.dump(pretty ? 2 : -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// transcoder train | eval | info
int cmdTranscoder(const Args& args, const std::string& device);
// intervene MODEL --text P --set|--scale|--add LAYER:POS:FEATURE=VALUE ... (interventions)
int cmdIntervene(const Args& args, const std::string& device);
// graph import | export | prune | info
int cmdGraph(const Args& args, const std::string& device);
// What `bench MODEL` measures of transcoders: training steps per second on activations held
// in memory, and how fast the model streams activations for training.
nlohmann::json benchTranscoderTraining(const std::string& modelFolder, const std::string& device);

// features show | search | label | info | export, and build (cmdFeaturesBuild)
int cmdFeatures(const Args& args, const std::string& device);
// features build MODEL --corpus FILE --out DB ... (features_build_cmd.cpp)
int cmdFeaturesBuild(const Args& args, const std::string& device);

// trace MODEL --text P --out G.json ...
int cmdTrace(const Args& args, const std::string& device);
// What `bench` measures of attribution: trace time of both methods over prompt lengths, nodes,
// edges, peak memory and achieved GFLOP/s; re-prune time.
nlohmann::json benchAttribution(const std::string& modelFolder, const std::string& device);

// What `bench` measures of the feature store: a build from 131k held-out tokens of an organism
// (tokens/s, database size); null for other models.
nlohmann::json benchFeatureBuild(const std::string& modelFolder, const std::string& device);

} // namespace cs::cli
