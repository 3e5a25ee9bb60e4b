#pragma once
// Session files (".circuitscope.json", docs/ARCHITECTURE.md §11.5): the full traced graph plus
// everything the user did to it (ExplorerState), written atomically, read back with every field
// checked.
//
// Layout (one JSON object):
//   {"format": "circuitscope.session", "version": 1, "app": "Circuitscope 0.1", "saved_at": ISO 8601 UTC,
//    "model", "transcoder", "feature_store", "device", "prompt": strings,
//    "state": {"node_threshold", "edge_threshold", "selected", "pinned", "hidden",
//              "supernodes": [{"name", "members"}], "labels": {"L:F": text},
//              "interventions": [{"target", "op": "ablate"|"scale"|"inject", "value", "positions",
//                                 "mode": "constrained"|"free", "enabled"}],
//              "view": {"zoom", "center_x", "center_y"}},
//    "extra": anything the controller keeps (SessionData::extra),
//    then either
//    "graph": the circuit-tracer / Neuronpedia graph JSON of the WHOLE graph (toJson with keepAll:
//             every nonzero edge), its qParams carrying the state's subgraph (stateToQParams),
//    "graph_nodes": what that graph JSON cannot carry, so the graph comes back exactly:
//             {"metadata": {slug, prompt, prompt_tokens, scan, transcoder_list, node_threshold,
//                           edge_threshold, q_params, extra},
//              "logit_probabilities": [float],
//              "nodes": [[kind, layer, position, feature, activation, token_id, token, token_prob, label]]}
//             (graph JSON drops features and errors without edges, activations of non-features, tokens
//             that are not UTF-8, embedding tokens other than prompt_tokens[pos], and adds qParams
//             defaults; strings that are not UTF-8 are written as arrays of their bytes)
//    or, for graphs with more nonzero edges than SessionWriteOptions::sidecarEdgeThreshold,
//    "graph_file": "NAME.csgraph": the graph as cs::graph::writeGraphFile writes it, next to the
//             session (a name relative to the session's folder).
//   }

#include "explorerstate.h"

#include <cs/graph.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace cs::app {

constexpr const char* kSessionFormat = "circuitscope.session";
constexpr int kSessionVersion = 1;
constexpr const char* kSessionExtension = ".circuitscope.json";

struct SessionData {
    std::string model; // the model folder or shipped name the controller loaded
    std::string transcoder; // the transcoder path or name; empty when none
    std::string featureStore; // the feature store path; empty when none
    std::string device; // "cpu", "cuda:0", ...
    std::string prompt;
    cs::graph::Graph graph; // the FULL traced graph (unpruned), so it can be re-pruned
    ExplorerState state;
    nlohmann::json extra = nlohmann::json::object(); // anything else the controller keeps

    // readSession only: the state entries dropped because they name nodes the graph does not
    // have (or repeat one), one sentence each. writeSession ignores it.
    std::vector<std::string> warnings;
};

struct SessionWriteOptions {
    // More nonzero edges than this and the graph goes to a sidecar ".csgraph" file (graph JSON
    // costs about 60 bytes per edge; 2M edges is ~120 MB of text).
    int64_t sidecarEdgeThreshold = 2'000'000;
    // Pretty-printed JSON (indent 1) when true; compact otherwise. Either reads back the same.
    bool indent = false;
};

// Writes atomically (a temporary sibling, flushed, then renamed over `path`; QSaveFile). A graph
// sidecar is written first, also atomically, as "<basename>.csgraph" where <basename> is the
// file name without ".circuitscope.json" (or without its last suffix), or as
// "<basename>.alt.csgraph" when the session now at `path` names "<basename>.csgraph": the sidecar
// of the session on disk is never rewritten, so a writer killed at any point leaves the old
// session whole (with its own graph) or the new one. Once the new session is in place the
// sidecar the old one named is removed. Throws cs::Error naming
// the path for an unwritable folder, a path that is a folder, a full disk or a graph that fails
// Graph::validate(); an existing session file is then left as it was.
// Returns what it took (for the autosave's figures).
struct SessionWriteStats {
    double serializeMs = 0; // making the JSON text (and the sidecar, when there is one)
    double writeMs = 0; // writing, flushing and renaming the session file
    int64_t bytes = 0; // the session file's size
    bool sidecar = false; // the graph went to a ".csgraph" file
};
SessionWriteStats writeSession(
    const std::string& path, const SessionData& data, const SessionWriteOptions& options = {});

// The sidecar a session at `sessionPath` writes first for a large graph:
// "<folder>/<basename>.csgraph".
std::string sidecarPath(const std::string& sessionPath);
// Both names its sidecar may have (sidecarPath, then "<folder>/<basename>.alt.csgraph"): what
// removing a session's files removes.
std::vector<std::string> sidecarPaths(const std::string& sessionPath);

// The session's JSON text, as writeSession writes it with the graph inline (no sidecar). For
// callers that write elsewhere (the autosave measures this separately from the disk write).
std::string sessionJsonText(const SessionData& data, bool indent = false);

// Reads and checks everything; throws cs::Error with the path and the reason for a missing,
// empty, truncated (byte offset given) or invalid file, a top level that is not an object, a
// foreign format, a newer version, a missing key, a wrong type, a graph that fails
// cs::graph::fromJson / validate, and a missing or corrupt sidecar. State entries naming nodes
// the graph does not have are dropped and listed in SessionData::warnings; labels stay (they
// belong to features of the transcoder, not to this graph's nodes).
SessionData readSession(const std::string& path);

// The ExplorerState as JSON (the "state" object above) and back. stateFromJson throws cs::Error
// prefixed with `source` for wrong types and missing required keys; it does not check node ids.
nlohmann::json stateToJson(const ExplorerState& state);
ExplorerState stateFromJson(const nlohmann::json& json, const std::string& source);

// Drops state entries naming nodes `graph` does not have: the selection, pinned and hidden ids,
// repeats, supernode members (a supernode left empty goes), a node's second supernode, and
// interventions on unknown nodes or supernodes or at positions outside the prompt, and labels
// whose key is not "L:F" or "{basis}/L:F". Returns one sentence per dropped entry.
std::vector<std::string> pruneStateToGraph(ExplorerState& state, const cs::graph::Graph& graph);

// Neuronpedia's saved subgraph (a graph JSON's "qParams"), as its graph page reads it:
//   pinnedIds  node ids (array; a comma-separated string is also read)
//   supernodes [[name, member node id, ...], ...]
//   clerps     [[feature key, label], ...] where the key is the node's "feature" field, the Cantor
//              pairing of (layer, feature) as a string (the frontend matches `${node.feature}`)
//   clickedId  the selected node id ("" when none)
//   hiddenIds  node ids (array or comma-separated string)
//   pruningThreshold  the node threshold
// stateToQParams writes these keys over `qParams` (keeping others, e.g. linkType, sg_pos).
// Its clerps are the labels of `basis`'s units (labelKey; "" for transcoder features).
void stateToQParams(const ExplorerState& state, nlohmann::json& qParams, const std::string& basis = {});
// Reads the keys above (each optional; wrong types are skipped, never thrown) into a state with
// default thresholds and view, keeping only ids `graph` has. clerps keys may be the Cantor
// pairing, a node id "{layer}_{feature}_{pos}" or our "{layer}:{feature}" key; a plain feature
// index is taken when exactly one layer of the graph has that feature. clerps may also be the
// JSON text of the array (as the frontend's URL state holds it).
ExplorerState stateFromQParams(const nlohmann::json& qParams, const cs::graph::Graph& graph);

} // namespace cs::app
