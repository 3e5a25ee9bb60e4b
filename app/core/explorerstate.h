#pragma once
// What the user did to one traced graph: everything undo/redo covers and a session file keeps
// (docs/ARCHITECTURE.md §12.1, §11.5). A plain value: the controller replaces it whole on every
// edit, the undo stack holds the states before and after, and the canvas, the figure export and
// the session file read it. Nodes are named by their graph node id (cs::graph::nodeId:
// "{layer}_{feature}_{pos}", "{layer}_-1_{pos}" for errors, "E_{token}_{pos}",
// "{n_layers + 1}_{token}_{pos}" for logits), so the state stays valid across a re-trace of the
// same prompt and across a graph JSON round trip.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace cs::app {

// A group of pinned nodes the user named; shown as one node in the subgraph, its edges the
// sums of its members' edges.
struct Supernode {
    std::string name;
    std::vector<std::string> members; // node ids, in the order grouped

    bool operator==(const Supernode& o) const { return name == o.name && members == o.members; }
    bool operator!=(const Supernode& o) const { return !(*this == o); }
};

enum class InterventionOp {
    Ablate, // set the feature(s) to 0
    Scale, // multiply by value (negative values suppress, flipping the sign)
    Inject, // set to value (the activation a feature gets where it did not fire, or a new level)
    Add, // add value (steering: a push along the unit, whatever it was)
};

// An intervention on a node or a supernode (then on each feature member).
struct Intervention {
    std::string target; // a node id, or a supernode's name prefixed "supernode:"
    InterventionOp op = InterventionOp::Ablate;
    double value = 0; // Scale: the factor; Inject: the activation; Ablate: unused
    // Where: empty = the node's own position; otherwise these positions; {-1} = every position,
    // generated tokens included.
    std::vector<int64_t> positions;
    bool free = false; // free regime (attention and features recomputed), else constrained
    bool enabled = true; // listed but not applied when false

    bool operator==(const Intervention& o) const
    {
        return target == o.target && op == o.op && value == o.value && positions == o.positions && free == o.free
            && enabled == o.enabled;
    }
    bool operator!=(const Intervention& o) const { return !(*this == o); }
};

// The graph canvas's view: scene coordinates at the item's centre, and the zoom.
struct CanvasView {
    double zoom = 1;
    double centerX = 0;
    double centerY = 0;

    bool operator==(const CanvasView& o) const
    {
        return zoom == o.zoom && centerX == o.centerX && centerY == o.centerY;
    }
    bool operator!=(const CanvasView& o) const { return !(*this == o); }
};

struct ExplorerState {
    double nodeThreshold = 0.8; // pruning: cumulative influence share kept (circuit-tracer's defaults)
    double edgeThreshold = 0.98;
    // The graph is shown as the opened file holds it (a graph JSON is pruned by whoever wrote
    // it): every node and edge, and the file's own scores, until a threshold moves.
    bool asFile = false;
    std::string selected; // node id; empty when none
    std::vector<std::string> pinned; // node ids, in pin order: the subgraph
    std::vector<std::string> hidden; // node ids the user hid from the canvas
    std::vector<Supernode> supernodes; // members are pinned nodes; a node is in at most one
    // The user's labels (clerps) by feature, key "{layer}:{feature}"; they override the feature
    // store's label and are written to graph JSON as each node's clerp.
    std::map<std::string, std::string> labels;
    std::vector<Intervention> interventions;
    CanvasView view;

    bool operator==(const ExplorerState& o) const
    {
        return nodeThreshold == o.nodeThreshold && edgeThreshold == o.edgeThreshold && asFile == o.asFile
            && selected == o.selected && pinned == o.pinned && hidden == o.hidden && supernodes == o.supernodes
            && labels == o.labels && interventions == o.interventions && view == o.view;
    }
    bool operator!=(const ExplorerState& o) const { return !(*this == o); }
};

// An intervention's target names a node id, or a supernode as "supernode:NAME".
constexpr const char* kSupernodePrefix = "supernode:";

inline std::string supernodeTarget(const std::string& name)
{
    return kSupernodePrefix + name;
}

// The supernode's name when target names one.
inline std::optional<std::string> supernodeOfTarget(const std::string& target)
{
    const std::string prefix = kSupernodePrefix;
    if (target.compare(0, prefix.size(), prefix) != 0)
        return std::nullopt;
    return target.substr(prefix.size());
}

// The node ids an intervention acts on: its node, or its supernode's members (none when no
// supernode has that name).
inline std::vector<std::string> interventionNodes(const ExplorerState& state, const Intervention& intervention)
{
    const auto name = supernodeOfTarget(intervention.target);
    if (!name)
        return { intervention.target };
    for (const Supernode& s : state.supernodes)
        if (s.name == *name)
            return s.members;
    return {};
}

// "ablate", "scale", "inject": the names sessions and the UI use.
inline const char* interventionOpName(InterventionOp op)
{
    switch (op) {
    case InterventionOp::Ablate:
        return "ablate";
    case InterventionOp::Scale:
        return "scale";
    case InterventionOp::Inject:
        return "inject";
    case InterventionOp::Add:
        return "add";
    }
    return "ablate";
}

inline std::optional<InterventionOp> interventionOpFromName(const std::string& name)
{
    for (InterventionOp op :
        { InterventionOp::Ablate, InterventionOp::Scale, InterventionOp::Inject, InterventionOp::Add })
        if (name == interventionOpName(op))
            return op;
    return std::nullopt;
}

// What a graph's feature nodes are called, by graph::Metadata::basis: "feature" for a
// transcoder's (basis ""), "neuron" for MLP neurons, else the unit of the model's own output.
inline std::string unitNoun(const std::string& basis)
{
    if (basis.empty())
        return "feature";
    if (basis == "neurons")
        return "neuron";
    if (basis == "mlp_out")
        return "MLP output unit";
    if (basis == "attn_out")
        return "attention output unit";
    return "residual dimension";
}
// What a graph's error nodes stand for: the transcoder's error, or the layer's other units.
inline std::string errorNoun(const std::string& basis)
{
    return basis.empty() ? "error" : "other units";
}

// The labels key of a feature: "{layer}:{feature}".
inline std::string featureKey(int64_t layer, int64_t feature)
{
    return std::to_string(layer) + ":" + std::to_string(feature);
}

// The labels key of a node's feature in a graph of `basis` (graph::Metadata::basis): featureKey
// for a transcoder's, "{basis}/{layer}:{unit}" for the model's own units ("neurons/3:230"), so
// a neuron's label is never a transcoder feature's of the same numbers, and both keep.
inline std::string labelKey(const std::string& basis, int64_t layer, int64_t feature)
{
    return basis.empty() ? featureKey(layer, feature) : basis + "/" + featureKey(layer, feature);
}

} // namespace cs::app
