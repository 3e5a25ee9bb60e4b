#pragma once
// Subcommands of circuitscope-cli that live in their own files.

#include "args.h"

#include "cs/distributed.h"
#include "cs/graph.h"
#include "cs/intervention.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace cs::cli {

// JSON text for the terminal; token strings holding partial UTF-8 sequences are replaced, not
// thrown on.
inline std::string dump(const nlohmann::json& j, bool pretty = false)
{
    return j.dump(pretty ? 2 : -1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Splits "a|b|c" (tokens may hold commas and spaces, so the separator is '|').
inline std::vector<std::string> splitBars(const std::string& text)
{
    std::vector<std::string> out;
    std::string item;
    std::istringstream in(text);
    while (std::getline(in, item, '|'))
        out.push_back(item);
    return out;
}

// Milliseconds since `start` on the steady clock (the benches' timer).
inline double msSince(std::chrono::steady_clock::time_point start)
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// The job a process is a rank of, from --distributed and its flags or torchrun's environment
// (distributed_args.cpp); no group without --distributed. device: the device to compute on
// (with CUDA, the GPU of the machine's local rank).
struct Job {
    std::shared_ptr<distributed::Group> group;
    std::string device;
};
Job joinJob(const Args& args, const std::string& device);
// A file's size and a hash of its first and last MiB: ranks compare their corpus and model files
// with it (distributed::Group::checkSame).
std::string fileFingerprint(const std::string& path);

// transcoder train | eval | info
int cmdTranscoder(const Args& args, const std::string& device);
// intervene MODEL --text P --set|--scale|--add LAYER:POS:FEATURE=VALUE ... (interventions)
int cmdIntervene(const Args& args, const std::string& device);
// weights MODEL --feature L:F [--kind virtual] [--direction up|down] [--top N] [--tokens A|B]
int cmdWeights(const Args& args, const std::string& device);
// sweep MODEL --template "calc: {a}+{b}=" --a 0..99 --b 0..99 [--feature L:F ...] [--rank]
int cmdSweep(const Args& args, const std::string& device);
// "0..99" (inclusive) or "1,5,9" -> the values (weights_cmd.cpp); errors name --option.
std::vector<int64_t> parseValues(const std::string& text, const char* option);
// "LAYER:POS:FEATURE=VALUE" (POS * for every position) -> one edit (intervene_cmd.cpp).
intervention::FeatureEdit parseEdit(const std::string& spec, intervention::Op op);
// --set, --scale and --add LAYER:POS:FEATURE=VALUE, in that order.
std::vector<intervention::FeatureEdit> parseEdits(const Args& args);
// [{"id", "token", "logit", "prob"}...]
nlohmann::json topTokensJson(const std::vector<TokenScore>& top);
// neurons trace | curve | intervene (neurons_cmd.cpp).
int cmdNeurons(const Args& args, const std::string& device);
// validate MODEL --text P [--top N] [--op ablate|scale:F] (the graph against the model)
int cmdValidate(const Args& args, const std::string& device);
// graph import | export | prune | info
int cmdGraph(const Args& args, const std::string& device);
// What `bench MODEL` measures of transcoders: training steps per second on activations held
// in memory, and how fast the model streams activations for training.
nlohmann::json benchTranscoderTraining(const std::string& modelFolder, const std::string& device);

// features show | search | label | info | export, and build (cmdFeaturesBuild)
int cmdFeatures(const Args& args, const std::string& device);
// features build MODEL --corpus FILE --out DB ... (features_build_cmd.cpp)
int cmdFeaturesBuild(const Args& args, const std::string& device);
// features merge PARTS... --out DB: the parts of a --distributed build into one store
int cmdFeaturesMerge(const Args& args, const std::string& device);

// trace MODEL --text P --out G.json ...
int cmdTrace(const Args& args, const std::string& device);
// What a traced graph's files came to: prune at the graph's metadata thresholds, write --out's
// graph JSON (and --full's .csgraph, unpruned), the scores of both (trace, neurons trace).
struct GraphOutputs {
    graph::Scores scores, prunedScores;
    int64_t nodes = 0, edges = 0; // kept by the pruning
    double pruneMs = 0;
};
GraphOutputs writeGraphOutputs(const Args& args, graph::Graph& graph);
std::string scoresText(const GraphOutputs& written); // two lines: the graph's and the pruned graph's scores
// What `bench` measures of attribution: trace time of both methods over prompt lengths, nodes,
// edges, peak memory and achieved GFLOP/s; re-prune time.
nlohmann::json benchAttribution(const std::string& modelFolder, const std::string& device);

// What `bench` measures of the feature store: a build from 131k held-out tokens of an organism
// (tokens/s, database size); null for other models.
nlohmann::json benchFeatureBuild(const std::string& modelFolder, const std::string& device);

// What `bench --large` (and `bench` on CUDA) measures: attribution on a model with random
// weights of Gemma-2-2B's shape and a per-layer transcoder (bench_large.cpp).
struct LargeBenchOptions {
    int64_t nFeatures = 16384; // transcoder features per layer
    int64_t l0 = 64; // features active per token and layer, about
    int64_t batchSize = 256; // target rows per batch
    int64_t shortFeatureNodes = 8192; // the 64-token graph's feature-node cap (0: skip it)
    int64_t longTokens = 4096; // the long prompt (0: none)
    int64_t longFeatureNodes = 1024; // its feature-node cap
    // Features active per token and layer on the long prompt: every active feature's decoder
    // vector is held on the device (about 16 KB each at d_model 2304), so at 4,096 tokens an L0
    // of 64 would hold 63 GB of them; 16 holds 16 GB.
    int64_t longL0 = 16;
};
nlohmann::json benchLargeModel(const std::string& device, const LargeBenchOptions& options);

} // namespace cs::cli
