#pragma once
// The command line of circuitscope-cli, declared command by command (command_line.cpp) and
// parsed with CLI11.

#include "args.h"

#include <optional>

namespace cs::cli {

// The command's words and its options as Args: positional() is the command's path ("graph",
// "prune") then its positional arguments. std::nullopt when --help was asked for and printed.
// Throws cs::Error for an unknown command or option, an option of another command, a missing
// value or an argument too many.
std::optional<Args> parseCommandLine(int argc, const char* const* argv);

} // namespace cs::cli
