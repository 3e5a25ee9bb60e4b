#pragma once
// Subcommands of circuitscope-cli that live in their own files.

#include "args.h"

#include <nlohmann/json.hpp>

#include <string>

namespace cs::cli {

// transcoder train | eval | info
int cmdTranscoder(const Args& args, const std::string& device);
// graph import | export | prune | info
int cmdGraph(const Args& args, const std::string& device);
// What `bench MODEL` measures of transcoders: training steps per second on activations held
// in memory, and how fast the model streams activations for training.
nlohmann::json benchTranscoderTraining(const std::string& modelFolder, const std::string& device);

} // namespace cs::cli
