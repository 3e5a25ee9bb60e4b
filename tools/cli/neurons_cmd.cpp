// circuitscope-cli neurons: circuit tracing in the neuron basis (cs/neurons.h). `neurons curve`
// evaluates the top-k circuits of a paired task: faithfulness and completeness against k.
#include "commands.h"

#include "cs/engine.h"
#include "cs/error.h"
#include "cs/model.h"
#include "cs/neurons.h"

#include <cstdio>
#include <iostream>

namespace cs::cli {

namespace {

using Json = nlohmann::json;

neurons::AttributionOptions attributionOptions(const Args& args)
{
    neurons::AttributionOptions o;
    o.method = neurons::methodFromName(args.valueOr("method", "relp"));
    const std::string kind = args.valueOr("node-kind", "neurons");
    if (kind == "features")
        throw Error("--node-kind features: the transcoder basis is traced by `trace` (its graphs); neuron-basis "
                    "circuits take neurons, mlp_out, attn_out or resid");
    o.kind = neurons::nodeKindFromName(kind);
    o.steps = args.intOr("steps", o.steps);
    o.batchSize = args.intOr("batch-size", o.batchSize);
    return o;
}

int curve(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    const std::string folder = resolveModelFolder(pos.size() > 2 ? pos[2] : std::string(kDefaultModel));
    const auto taskPath = args.value("task");
    if (!taskPath)
        throw Error("neurons curve needs --task FILE.jsonl (one {\"prompt\", \"answer\", \"counterfactual\", "
                    "\"counterfactual_answer\"} a line)");
    neurons::CurveOptions o;
    o.attribution = attributionOptions(args);
    o.ks = parseValues(args.valueOr("ks", "10,20,50,100,200,500"), "ks");
    const auto task = neurons::readTask(*taskPath);
    auto model = model::Model::load(folder, { device, true });
    const bool json = args.flag("json");
    if (!json)
        o.progress = [](double f) {
            std::fprintf(stderr, "\rneurons curve %3.0f%%", 100 * f);
            return true;
        };
    const neurons::Curve c = neurons::evaluateCircuits(*model, task, o);
    if (!json)
        std::fprintf(stderr, "\n");
    Json points = Json::array();
    for (const auto& p : c.points)
        points.push_back({ { "k", p.k }, { "faithfulness", p.faithfulness }, { "completeness", p.completeness } });
    const Json j = { { "method", neurons::methodName(o.attribution.method) },
        { "node_kind", neurons::nodeKindName(o.attribution.kind) }, { "points", points }, { "items", c.items },
        { "full", c.full }, { "empty", c.empty }, { "seconds", c.seconds } };
    if (json) {
        std::cout << dump(j) << "\n";
        return 0;
    }
    std::printf("%lld items, %s, %s nodes: m(M) %.3f, m(empty) %.3f (summed), %.2f s\n",
        static_cast<long long>(c.items), neurons::methodName(o.attribution.method),
        neurons::nodeKindName(o.attribution.kind), c.full, c.empty, c.seconds);
    std::printf("  %8s %13s %13s\n", "k", "faithfulness", "completeness");
    for (const auto& p : c.points)
        std::printf("  %8lld %13.4f %13.4f\n", static_cast<long long>(p.k), p.faithfulness, p.completeness);
    return 0;
}

} // namespace

int cmdNeurons(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    const std::string sub = pos.size() > 1 ? pos[1] : "";
    if (sub == "curve")
        return curve(args, device);
    throw Error("neurons needs a subcommand: curve (try --help)");
}

} // namespace cs::cli
