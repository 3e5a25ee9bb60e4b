// circuitscope-cli features build: a placeholder on this branch. The feature-store builder
// (features::build) lands with its own command in this file.
#include "commands.h"

#include "cs/error.h"

namespace cs::cli {

int cmdFeaturesBuild(const Args&, const std::string&)
{
    throw Error("features build: not in this build yet");
}

} // namespace cs::cli
