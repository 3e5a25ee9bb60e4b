// circuitscope-cli: the headless side of Circuitscope. Every subcommand reaches the engine
// through engine/include/cs only.
#include "args.h"
#include "command_line.h"
#include "commands.h"

#include "cs/engine.h"
#include "cs/error.h"
#include "cs/files.h"
#include "cs/json_reader.h"
#include "cs/model.h"
#include "cs/neurons.h"
#include "cs/organism_build.h"
#include "cs/tokenizer.h"
#include "cs/utf8.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>

namespace {

using cs::cli::Args;
using cs::cli::dump;
using Json = nlohmann::json;

constexpr const char* kUsage = R"(usage: circuitscope-cli [--device cpu|cuda|auto] COMMAND [ARGS]
       circuitscope-cli COMMAND [SUBCOMMAND] --help     a command's arguments and options

MODEL is a Hugging Face folder (config.json, model.safetensors, tokenizer.json) or the name
of a model shipped in resources/models/ (default: tinyworld).

commands:
  info MODEL [--json]                         family, layers, d_model, heads, vocab, dtype, device
  tokenize MODEL --text T [--json]            {"ids": [...], "tokens": [...]}
  tokenize MODEL --batch FILE [--json]        many texts with the tokenizer alone (MODEL may hold only
                                              tokenizer.json [+ tokenizer_config.json]): FILE (- for
                                              stdin) has one JSON value a line, a string to encode or a
                                              list of ids to decode; prints one line each,
                                              {"ids", "text": decode(ids), "valid_utf8"} (text with
                                              U+FFFD for bytes that are not UTF-8 when valid_utf8 is false)
  logits MODEL (--text T | --ids 1,2,3) [--top-k K] [--all-positions] [--hidden-states] [--json]
                                              {"ids", "top": [{"id","token","logit","prob"}], "logits"}
                                              --hidden-states adds "hidden_states": the residual stream
                                              [n_layers + 1][n_pos][d_model] (the embedding, then each
                                              layer's output, before the final norm)
  generate MODEL --text T --max-new N [--temperature X --seed S] [--json]
  bench [MODEL] [--json]                      matrix-product speed, the BLAS in use, forward, trace,
                                              prune and transcoder-training timings (MODEL: tinyworld)
        [--large | --no-large | --large-only]   also a Gemma-2-2B-shaped model with a 26 x 16,384 PLT:
        [--large-features N --large-l0 K          64 tokens / 8,192 feature nodes and a long prompt
         --long-tokens T --long-feature-nodes M  (default on CUDA only; K 64, T 4096, M 1024,
         --long-l0 K2 --short-feature-nodes N]    K2 16, N 8192; 0 skips a case)
  trace MODEL --text P --out G.json [--transcoder T] [--node-threshold 0.8 --edge-threshold 0.98
        --max-feature-nodes N --max-n-logits 10 --desired-logit-prob 0.95 --method explicit|autograd
        --batch-size B --memory-limit SIZE --logit-ids ID,ID | --logit-tokens " A| B"
        [--logit-weights 0.5,0.5] | --logit-diff " A| B" --slug S --full G.csgraph] [--json]
                                              attribution graph JSON (Neuronpedia / circuit-tracer),
                                              prints node and edge counts, scores and exactness;
                                              named logits weigh equally unless --logit-weights;
                                              --full also saves the unpruned graph for re-pruning;
                                              a trace whose estimated peak memory would not fit
                                              is refused with the feature cap that would
  organism build --out DIR [--seed S] [--world-version 3] [--steps N --batch-size B --seq-len T --lr X
                 --layers L --d-model D --heads H --kv-heads K --d-mlp M --vocab V --dtype F16]
                                              corpus, tokenizer and model of tinyworld, resumable
  organism eval MODEL [--max-per-split N] [--json]
                                              {"tasks": {"<task>": {"<split>": accuracy}}}
  organism corpus MODEL --split train|heldout --lines N --out FILE
                                              text of the world MODEL was built from, one line each
  organism tasks MODEL --out DIR [--items 100] [--json]
                                              paired tasks (neurons curve --task): DIR/{agreement,
                                               two_hop,sports,addition}.jsonl
  transcoder train MODEL --corpus FILE --kind clt|plt --features N --out DIR
                 [--activation jump_relu|relu|topk --k K --skip --steps N --batch-tokens B
                  --buffer-tokens N --lr X --lambda-sparsity X --sparsity-c X --lambda-preact X
                  --bandwidth X --threshold-init X --seq-len T --cache DIR --seed S
                  --checkpoint-every N --dtype F16 --input-hook mlp.hook_in --output-hook mlp.hook_out
                  --shards S] [--distributed [--rank R --world-size W --local-rank R --master-addr HOST
                  --master-port PORT --dist-backend gloo|nccl --dist-timeout S --feature-sharded]]
                                              trains a transcoder set (circuit-tracer format), resumable;
                                              --distributed: one rank of a data-parallel job (torchrun);
                                              --feature-sharded: the ranks split the features instead
  transcoder eval MODEL TRANSCODER --corpus FILE [--max-tokens N] [--json]
                                              {"layers": [{"layer","nmse","l0","dead_fraction"}],
                                               "replacement": {"top1_agreement","kl"}}
  transcoder info (TRANSCODER | MODEL NAME) [--json]
  intervene MODEL --text P --set LAYER:POS:FEATURE=VALUE [--scale LAYER:POS:FEATURE=FACTOR]
                 [--add LAYER:POS:FEATURE=VALUE] [--transcoder clt] [--mode constrained|free|patch]
                 [--freeze-attention | --no-freeze-attention] [--constrained-layers FIRST:END]
                 [--direct-effects] [--generate N] [--top-k K] [--json]
                                              {"before": {"top"}, "after": {"top"}, "logit_delta",
                                               "demeaned_logit_delta", "changed", "direct_effects",
                                               "generation_mode", "generation": {"before", "after"}}
  weights MODEL --feature L:F [--transcoder T] [--kind virtual|era|twera] [--store DB]
          [--direction up|down] [--top N] [--tokens "A|B|..."] [--json]
                                              {"feature", "kind", "partners": [{"layer","feature",
                                               "weight","virtual","era","twera","coactivations"}],
                                               "tokens": [{"token","input","output"}]}
  sweep MODEL --template "calc: {a}+{b}=" [--a 0..99] [--b 0..99] [--position -1] [--feature L:F ...]
        [--rank] [--top N] [--transcoder T] [--out DIR] [--json]
                                              {"template","a","b","prompts","seconds","features":
                                               [{"layer","feature","grid",...}],"ranked":[{"layer",
                                               "feature","structure","group","explained",...}]}
  neurons curve MODEL --task FILE.jsonl [--method relp|ig] [--node-kind neurons|mlp_out|attn_out|resid]
                [--ks 10,20,50,100,200,500] [--steps 32] [--json]
                                              {"method","node_kind","points": [{"k","faithfulness",
                                               "completeness"}],"items","full","empty","seconds"}
  validate MODEL --text P [--transcoder T] [--top N] [--op ablate|scale:-1] [--json]
                                              {"targets", "points": [{"node", "predicted",
                                               "actual_constrained", "actual_free"}],
                                               "correlation": {"constrained", "free"}}
                                              each edit may repeat (POS * = every position, generated
                                              tokens too); they apply sets, then scales, then adds.
                                              patch: circuit-tracer's feature_intervention (the last
                                              four options imply it); constrained (the default) and
                                              --direct-effects are what the graph's edges predict
  graph import IN.json --out OUT [--json]     reads a graph JSON (circuit-tracer's or ours), checks it, writes
                                              it back with every node and link (OUT.json, or OUT.csgraph)
  graph export IN --out OUT.json [--node-threshold 0.8 --edge-threshold 0.98 | --all] [--json]
                                              prunes a graph and writes the Neuronpedia / circuit-tracer JSON
  graph prune IN [--node-threshold 0.8 --edge-threshold 0.98 | --all] [--out OUT.json] [--json]
                                              {"nodes","edges","nodes_total","edges_total","nodes_by_kind",
                                               "scores","pruned_scores",
                                               "neuronpedia_subgraph_scores","prune_ms",...}
  graph info IN [--json]                      prompt, nodes by kind, edges, scores, metadata
  features build MODEL --corpus FILE --out DB [--transcoder clt] [--tokens N] [--context 64] [--window W]
                 [--top-k K] [--batch-size B] [--checkpoint-every N]
                 [--no-coactivations | --coactivation-partners K] [--json]
                 [--distributed [--rank R --world-size W --master-addr HOST --master-port PORT
                  --dist-timeout S] [--parts-only]]
                                              streams the corpus through model and transcoders; progress
                                              bar; Ctrl-C saves the state and the same command resumes
                                              --distributed: one rank; each builds every W-th batch into
                                              DB.part-R-of-W, rank 0 merges them into DB
                                              (--parts-only: they stay, for features merge)
                                              {"out","tokens","contexts","seconds","tokens_per_second",
                                               "resumed_from_tokens","bytes","coactivation_pairs","ranks",...}
  features merge PARTS... --out DB [--model MODEL] [--transcoder T] [--json]
                                              the parts of a --distributed build (DB.part-R-of-W, one of
                                              each rank, all finished) into one store, equal to a
                                              one-process build; {"out","parts","tokens","contexts",
                                               "seconds","bytes","coactivation_pairs"}
  features show DB LAYER:FEATURE [--json]     a feature's card: label, frequency, max, quantiles, histogram,
                                              top and quantile examples (the firing token «marked»),
                                              top/bottom logits, top inputs; --json: circuit-tracer's fields
  features search DB TEXT [--limit N] [--json]
                                              features whose label contains TEXT (case-insensitive)
  features label DB LAYER:FEATURE --label TEXT [--notes TEXT]
                                              sets a feature's label (kept across rebuilds; "" removes it)
  features info DB [--json]                   model, transcoders, shape, tokens, build state, counts
                                              (a part of a --distributed build: "part" {"rank","ranks",
                                               "finished","model_folder","transcoder_folder"})
  features export DB --out DIR [--format circuit-tracer] [--layout layers|cantor]
                                              one circuit-tracer JSON per feature, DIR/LAYER/FEATURE.json
                                              (cantor: DIR/INDEX.json, INDEX the node "feature" of graphs)
DB is a feature store (SQLite), built by `features build`.
TRANSCODER is a folder, or the name of a set shipped with MODEL (MODEL/transcoders/NAME).
IN is a graph file (.csgraph: the full graph a trace saved, pruned afresh at any thresholds)
or a graph JSON (pruned again within the links it holds).
)";

std::string modelArg(const Args& args)
{
    return args.positional().size() > 1 ? args.positional()[1] : std::string(cs::kDefaultModel);
}

// Shows whitespace in a token for a terminal.
std::string visible(const std::string& token)
{
    std::string out;
    for (char ch : token) {
        if (ch == '\n')
            out += "\\n";
        else if (ch == '\t')
            out += "\\t";
        else
            out += ch;
    }
    return "\"" + out + "\"";
}

// The "torch" object of info and bench: which LibTorch runs, and on what.
Json torchJson(const std::string& device)
{
    const cs::TorchInfo t = cs::torchInfo(device);
    Json j = { { "version", t.version }, { "cuda_compiled", t.cudaCompiled }, { "cuda_available", t.cudaAvailable },
        { "device", t.device } };
    if (t.cudaCompiled)
        j["cuda_version"] = t.cudaVersion;
    j["cuda_devices"] = t.cudaDevices;
    if (!t.gpuName.empty()) {
        j["gpu"] = t.gpuName;
        j["gpu_memory_gb"] = static_cast<double>(t.gpuMemoryBytes) / (1 << 30);
    }
    return j;
}

std::string torchLine(const Json& t)
{
    std::string line = "LibTorch " + t["version"].get<std::string>() + ", CUDA "
        + (t["cuda_compiled"].get<bool>() ? "compiled (" + t["cuda_version"].get<std::string>() + ")" : "not compiled")
        + ", " + (t["cuda_available"].get<bool>() ? "available" : "not available") + ", device "
        + t["device"].get<std::string>();
    if (t.contains("gpu"))
        line += " (" + t["gpu"].get<std::string>() + ")";
    return line;
}

int cmdInfo(const Args& args, const std::string& device)
{
    auto handle = cs::ModelHandle::open(modelArg(args), device);
    const cs::ModelInfo i = handle->info();
    Json j = { { "name", i.name }, { "folder", i.folder }, { "family", i.family }, { "layers", i.nLayers },
        { "d_model", i.dModel }, { "heads", i.nHeads }, { "kv_heads", i.nKvHeads }, { "d_head", i.dHead },
        { "d_mlp", i.dMlp }, { "vocab", i.vocabSize }, { "dtype", i.dtype }, { "device", i.device },
        { "torch", torchJson(device) } };
    if (args.flag("json")) {
        std::cout << dump(j) << "\n";
    } else {
        for (const char* key : { "name", "folder", "family", "layers", "d_model", "heads", "kv_heads", "d_head",
                 "d_mlp", "vocab", "dtype", "device" })
            std::cout << key << ": " << (j[key].is_string() ? j[key].get<std::string>() : j[key].dump()) << "\n";
        std::cout << "torch: " << torchLine(j["torch"]) << "\n";
    }
    return 0;
}

std::vector<int64_t> promptIds(const Args& args, const cs::ModelHandle& handle)
{
    if (auto ids = args.value("ids"))
        return cs::cli::parseIdList(*ids);
    auto text = args.value("text");
    if (!text)
        throw cs::Error("give the prompt with --text or --ids");
    if (text->empty())
        throw cs::Error("the prompt is empty: it has no tokens to run");
    auto ids = handle.encode(*text);
    return ids;
}

// tokenize MODEL --batch FILE: the tokenizer alone, one JSON line in and one out, so that a
// caller (the peer tests) can check thousands of strings in one process.
int cmdTokenizeBatch(const Args& args, const std::string& file)
{
    const auto tokenizer = cs::model::Tokenizer::fromFolder(cs::resolveModelFolder(modelArg(args)));
    std::ifstream in;
    if (file != "-") {
        cs::requireRegularFile(file); // a FIFO or a device would never end; "-" reads standard input
        in.open(file, std::ios::binary);
        if (!in)
            throw cs::Error("cannot read " + file);
    }
    std::istream& lines = file == "-" ? std::cin : in;
    std::string line;
    size_t lineNo = 0;
    while (std::getline(lines, line)) {
        ++lineNo;
        if (line.empty())
            continue;
        Json value;
        try {
            value = cs::parseJson(line, file + ":" + std::to_string(lineNo));
        } catch (const Json::exception& e) {
            throw cs::Error(file + ":" + std::to_string(lineNo) + ": not JSON: " + e.what());
        }
        std::vector<int64_t> ids;
        if (value.is_string()) {
            ids = tokenizer.encode(value.get<std::string>());
        } else if (value.is_array()
            && std::all_of(value.begin(), value.end(), [](const Json& v) { return v.is_number_integer(); })) {
            ids = value.get<std::vector<int64_t>>();
        } else {
            throw cs::Error(file + ":" + std::to_string(lineNo) + ": expected a string or a list of ids");
        }
        const std::string text = tokenizer.decode(ids);
        std::cout << dump(Json { { "ids", ids }, { "text", text }, { "valid_utf8", cs::utf8::isValid(text) } }) << "\n";
    }
    return 0;
}

int cmdTokenize(const Args& args, const std::string& device)
{
    if (auto batch = args.value("batch"))
        return cmdTokenizeBatch(args, *batch);
    auto handle = cs::ModelHandle::open(modelArg(args), device);
    auto text = args.value("text");
    if (!text)
        throw cs::Error("tokenize needs --text");
    const auto ids = handle->encode(*text);
    const auto tokens = handle->tokenTexts(ids);
    if (args.flag("json")) {
        std::cout << dump(Json { { "ids", ids }, { "tokens", tokens } }) << "\n";
    } else {
        for (size_t i = 0; i < ids.size(); ++i)
            std::cout << ids[i] << "\t" << visible(tokens[i]) << "\n";
    }
    return 0;
}

// The residual stream at every position: resid_pre of layer 0, then resid_post of each layer
// (what transformers' output_hidden_states holds, but for the last, which it takes after the
// final norm). [n_layers + 1][n_pos][d_model]
Json hiddenStates(const std::string& modelName, const std::string& device, const std::vector<int64_t>& ids)
{
    at::NoGradGuard noGrad;
    const auto model = cs::model::Model::load(cs::resolveModelFolder(modelName), { device });
    std::vector<at::Tensor> states;
    cs::model::ForwardOptions options;
    options.hook = [&](int64_t layer, cs::model::Hook hook, at::Tensor& value) {
        if ((hook == cs::model::Hook::ResidPre && layer == 0) || hook == cs::model::Hook::ResidPost)
            states.push_back(value[0].to(at::kCPU, at::kFloat).contiguous()); // [n_pos, d_model]
    };
    model->forward(at::tensor(ids, at::kLong), options);
    Json out = Json::array();
    for (const at::Tensor& s : states) {
        Json rows = Json::array();
        for (int64_t p = 0; p < s.size(0); ++p)
            rows.push_back(std::vector<float>(s[p].data_ptr<float>(), s[p].data_ptr<float>() + s.size(1)));
        out.push_back(std::move(rows));
    }
    return out;
}

int cmdLogits(const Args& args, const std::string& device)
{
    auto handle = cs::ModelHandle::open(modelArg(args), device);
    const auto ids = promptIds(args, *handle);
    const int64_t k = args.intOr("top-k", 10);
    if (k < 0)
        throw cs::Error("--top-k must not be negative");
    if (k == 0 && !args.flag("all-positions")) // with --all-positions the logits themselves are the output
        throw cs::Error("--top-k 0 lists no token; give at least 1 (or --all-positions for the logits alone)");
    if (k > handle->info().vocabSize)
        throw cs::Error("--top-k " + std::to_string(k) + " is more than the vocabulary's "
            + std::to_string(handle->info().vocabSize) + " tokens");
    const auto r = handle->logits(ids, static_cast<int>(k), args.flag("all-positions"));
    if (args.flag("json")) {
        Json top = Json::array();
        for (const auto& t : r.top)
            top.push_back({ { "id", t.id }, { "token", t.token }, { "logit", t.logit }, { "prob", t.prob } });
        Json out { { "ids", r.ids }, { "top", top }, { "logits", r.logits } };
        if (args.flag("hidden-states"))
            out["hidden_states"] = hiddenStates(modelArg(args), device, ids);
        std::cout << dump(out) << "\n";
    } else {
        for (const auto& t : r.top)
            std::printf("%8lld  %-20s  logit %9.4f  prob %.4f\n", static_cast<long long>(t.id),
                visible(t.token).c_str(), t.logit, t.prob);
    }
    return 0;
}

int cmdGenerate(const Args& args, const std::string& device)
{
    auto handle = cs::ModelHandle::open(modelArg(args), device);
    const auto ids = promptIds(args, *handle);
    cs::GenerateRequest req;
    req.maxNew = args.intOr("max-new", 16);
    req.temperature = args.doubleOr("temperature", 0.0);
    req.seed = static_cast<uint64_t>(args.intOr("seed", 0));
    if (req.maxNew < 0)
        throw cs::Error("--max-new must not be negative");
    if (req.temperature < 0)
        throw cs::Error("--temperature must not be negative");
    // Refused up front: generation would otherwise stop, unannounced, where positions run out.
    const int64_t context = handle->model()->config().maxPositions;
    if (static_cast<int64_t>(ids.size()) + req.maxNew > context)
        throw cs::Error("--max-new " + std::to_string(req.maxNew) + " after the prompt's " + std::to_string(ids.size())
            + " token" + (ids.size() == 1 ? "" : "s") + " needs more positions than the model's context of "
            + std::to_string(context) + " (at most --max-new "
            + std::to_string(std::max<int64_t>(0, context - static_cast<int64_t>(ids.size()))) + ")");
    const auto r = handle->generate(ids, req);
    if (args.flag("json")) {
        std::cout << dump(Json { { "prompt_ids", r.promptIds }, { "ids", r.newIds }, { "text", r.text },
            { "tokens", handle->tokenTexts(r.newIds) } })
                  << "\n";
    } else {
        std::cout << r.text << "\n";
    }
    return 0;
}

template<typename F> double millis(F&& f, int repeats)
{
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < repeats; ++i)
        f();
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / repeats;
}

int cmdBench(const Args& args, const std::string& device)
{
    cs::model::initThreads();
    at::NoGradGuard noGrad;
    Json out;
    out["blas"] = cs::blasDescription();
    out["threads"] = at::get_num_threads();
    // A 1024 x 1024 float matrix product: 2 n^3 flops.
    const int64_t n = 1024;
    const c10::Device dev = cs::model::resolveDevice(device);
    at::Tensor a = at::randn({ n, n }, at::TensorOptions().device(dev)), b = at::randn({ n, n }, a.options());
    at::matmul(a, b); // warm-up (also loads the BLAS)
    out["blas"] = cs::blasDescription();
    const double ms = millis([&] { at::matmul(a, b).sum().item<float>(); }, 5);
    out["gemm_gflops"] = 2.0 * n * n * n / (ms * 1e6);
    out["device"] = dev.str();
    out["torch"] = torchJson(device);
    if (!args.flag("large-only")) {
        auto model = cs::model::Model::load(cs::resolveModelFolder(modelArg(args)), { device });
        Json rows = Json::array();
        for (int64_t tokens : { 16, 64, 256 }) {
            if (model->config().positionKind == cs::model::PositionKind::Learned
                && tokens > model->config().maxPositions)
                continue;
            at::Tensor ids = at::randint(model->config().vocabSize, { 1, tokens }, at::kLong);
            model->forward(ids); // warm-up: thread pool, allocator
            model->forward(ids);
            const double fms = millis([&] { model->forward(ids).logits.sum().item<float>(); }, 3);
            rows.push_back({ { "n_tokens", tokens }, { "forward_ms", fms } });
        }
        out["forward"] = rows;
        std::cerr << "bench: attribution" << std::endl;
        const Json attribution = cs::cli::benchAttribution(model->folder(), device);
        out["trace"] = attribution["trace"];
        if (!attribution["prune"].is_null()) {
            out["prune_ms"] = attribution["prune"]["prune_ms"];
            out["pruner_build_ms"] = attribution["prune"]["pruner_build_ms"];
        }
        if (attribution["intervene"].contains("constrained")) {
            out["intervene_ms"] = attribution["intervene"]["constrained"];
            out["intervene_free_ms"] = attribution["intervene"]["free"];
        }
        std::cerr << "bench: feature store build" << std::endl;
        out["feature_store_build"] = cs::cli::benchFeatureBuild(model->folder(), device);
        std::cerr << "bench: transcoder training" << std::endl;
        out["transcoder_training"] = cs::cli::benchTranscoderTraining(model->folder(), device);
    }
    // The Gemma-2-2B-shaped case: by default on a GPU only (on 2 CPU cores it runs for hours).
    if (args.flag("large") || args.flag("large-only") || (dev.is_cuda() && !args.flag("no-large"))) {
        cs::cli::LargeBenchOptions lo;
        lo.nFeatures = args.intOr("large-features", lo.nFeatures);
        lo.l0 = args.intOr("large-l0", lo.l0);
        lo.batchSize = args.intOr("batch-size", lo.batchSize);
        lo.longTokens = args.intOr("long-tokens", lo.longTokens);
        lo.longFeatureNodes = args.intOr("long-feature-nodes", lo.longFeatureNodes);
        lo.longL0 = args.intOr("long-l0", lo.longL0);
        lo.shortFeatureNodes = args.intOr("short-feature-nodes", lo.shortFeatureNodes);
        if (lo.nFeatures < 1 || lo.l0 < 1 || lo.longL0 < 1 || lo.batchSize < 1 || lo.longTokens < 0
            || lo.longFeatureNodes < 0 || lo.shortFeatureNodes < 0)
            throw cs::Error("--large-features, --large-l0 and --batch-size must be positive, --long-tokens and "
                            "--long-feature-nodes not negative");
        std::cerr << "bench: the Gemma-2-2B-shaped model" << std::endl;
        out["large"] = cs::cli::benchLargeModel(device, lo);
    }
    if (args.flag("json")) {
        std::cout << dump(out) << "\n";
    } else {
        std::cout << "torch: " << torchLine(out["torch"]) << "\n";
        std::cout << "blas: " << out["blas"].get<std::string>() << "\nthreads: " << out["threads"]
                  << "\ngemm 1024^2 float: " << out["gemm_gflops"].get<double>() << " GFLOP/s on " << dev.str() << "\n";
        if (out.contains("forward"))
            for (const auto& r : out["forward"])
                std::cout << "forward " << r["n_tokens"] << " tokens: " << r["forward_ms"].get<double>() << " ms\n";
        for (const auto& r : out["trace"]) {
            std::cout << "trace " << r["n_tokens"] << " tokens (" << r["method"].get<std::string>();
            if (r.contains("max_feature_nodes") && !r["max_feature_nodes"].is_null())
                std::cout << ", max " << r["max_feature_nodes"] << " feature nodes";
            std::cout << "): " << r["ms"].get<double>() << " ms, " << r["nodes"] << " nodes, " << r["edges"]
                      << " edges, peak RSS " << r["peak_rss_mb"].get<double>() << " MB";
            if (!r["gflops"].is_null())
                std::cout << ", " << r["gflops"].get<double>() << " GFLOP/s";
            std::cout << ", max relative residual " << r["max_rel_residual"].get<double>() << "\n";
        }
        if (out.contains("prune_ms"))
            std::cout << "prune (16-token graph, re-prune from the kept matrix): " << out["prune_ms"].get<double>()
                      << " ms (pruner built in " << out["pruner_build_ms"].get<double>() << " ms)\n";
        if (out.contains("intervene_ms"))
            std::cout << "intervention (16 tokens, ablate one feature): " << out["intervene_ms"].get<double>()
                      << " ms constrained, " << out["intervene_free_ms"].get<double>() << " ms free\n";
        if (out.contains("feature_store_build") && !out["feature_store_build"].is_null())
            std::cout << "feature store build (clt, " << out["feature_store_build"]["tokens"]
                      << " held-out tokens): " << out["feature_store_build"]["tokens_per_second"].get<double>()
                      << " tokens/s, " << out["feature_store_build"]["mb"].get<double>() << " MB\n";
        if (out.contains("transcoder_training"))
            for (const auto& r : out["transcoder_training"])
                std::cout << "transcoder training (" << r["kind"].get<std::string>() << ", " << r["features_per_layer"]
                          << " features per layer, batch " << r["batch_tokens"]
                          << "): " << r["tokens_per_second"].get<double>() << " tokens/s\n";
        if (out.contains("large")) {
            const Json& l = out["large"];
            std::cout << "large: " << l["model"].get<std::string>() << ", " << l["parameters"]
                      << " parameters, made in " << l["model_ms"].get<double>() << " ms; PLT "
                      << l["transcoder"]["layers"] << " x " << l["transcoder"]["features_per_layer"]
                      << " features; forward 64 tokens " << l["forward_64_ms"].get<double>() << " ms\n";
            for (const auto& r : l["trace"]) {
                std::cout << "large trace " << r["n_tokens"] << " tokens, max " << r["max_feature_nodes"]
                          << " feature nodes: ";
                if (r.contains("error"))
                    std::cout << "error: " << r["error"].get<std::string>();
                else
                    std::cout << r["total_ms"].get<double>() << " ms (context " << r["context_ms"].get<double>()
                              << " ms, trace " << r["trace_ms"].get<double>() << " ms), " << r["active_features"]
                              << " active features, " << r["nodes"] << " nodes, " << r["edges"] << " edges, "
                              << r["pruned_nodes"] << " kept at 0.8, max relative residual "
                              << r["max_rel_residual"].get<double>();
                std::cout << ", peak GPU memory " << r["peak_gpu_mb"].get<double>() << " MB\n";
            }
        }
    }
    return 0;
}

int cmdOrganism(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    const std::string sub = pos.size() > 1 ? pos[1] : "";
    if (sub == "build") {
        cs::organism::BuildOptions o;
        o.outDir = args.valueOr("out", "");
        o.seed = static_cast<uint64_t>(args.intOr("seed", 1));
        o.worldVersion = static_cast<int>(args.intOr("world-version", o.worldVersion));
        o.steps = args.intOr("steps", o.steps);
        o.batchSize = args.intOr("batch-size", o.batchSize);
        o.seqLen = args.intOr("seq-len", o.seqLen);
        o.lr = args.doubleOr("lr", o.lr);
        o.warmupSteps
            = args.intOr("warmup-steps", std::min<int64_t>(o.warmupSteps, std::max<int64_t>(1, o.steps / 10)));
        o.nLayers = args.intOr("layers", o.nLayers);
        o.dModel = args.intOr("d-model", o.dModel);
        o.nHeads = args.intOr("heads", o.nHeads);
        o.nKvHeads = args.intOr("kv-heads", o.nKvHeads);
        o.dMlp = args.intOr("d-mlp", o.dMlp);
        o.vocabSize = args.intOr("vocab", o.vocabSize);
        o.tokenizerLines = args.intOr("tokenizer-lines", o.tokenizerLines);
        o.storeDtype = args.valueOr("dtype", o.storeDtype);
        o.device = device == "auto" ? cs::model::resolveDevice("auto").str() : device;
        if (o.outDir.empty())
            throw cs::Error("organism build needs --out DIR");
        if (o.steps <= 0 || o.batchSize <= 0 || o.seqLen <= 0)
            throw cs::Error("--steps, --batch-size and --seq-len must be positive");
        for (const auto& [name, value] : { std::pair { "layers", o.nLayers }, std::pair { "d-model", o.dModel },
                 std::pair { "heads", o.nHeads }, std::pair { "kv-heads", o.nKvHeads }, std::pair { "d-mlp", o.dMlp },
                 std::pair { "vocab", o.vocabSize }, std::pair { "tokenizer-lines", o.tokenizerLines } })
            if (value <= 0)
                throw cs::Error(std::string("--") + name + " must be positive, not " + std::to_string(value));
        const auto r = cs::organism::buildOrganism(o);
        Json j = { { "folder", r.folder }, { "seconds", r.seconds }, { "train_seconds", r.trainSeconds },
            { "tokens_per_second", r.tokensPerSecond }, { "first_loss", r.firstLoss }, { "final_loss", r.finalLoss },
            { "parameters", r.parameters }, { "resumed_from", r.resumedFrom } };
        std::cout << (args.flag("json") ? dump(j) : dump(j, true)) << "\n";
        return 0;
    }
    if (sub == "eval") {
        if (pos.size() < 3)
            throw cs::Error("organism eval needs MODEL");
        const std::string folder = cs::resolveModelFolder(pos[2]);
        auto model = cs::model::Model::load(folder, { device, true });
        const cs::organism::World world(cs::organism::organismWorld(folder));
        cs::organism::EvalOptions options;
        options.maxPerSplit = static_cast<size_t>(std::max<int64_t>(0, args.intOr("max-per-split", 0)));
        const auto r = cs::organism::evaluateOrganism(*model, world, options);
        Json tasks = Json::object(), counts = Json::object(), canonical = Json::array();
        for (const auto& [task, splits] : r.accuracy)
            for (const auto& [split, acc] : splits) {
                tasks[task][split] = acc;
                counts[task][split] = r.counts.at(task).at(split);
            }
        for (const auto& a : r.canonical)
            canonical.push_back({ { "prompt", a.item.prompt }, { "expected", a.item.answer }, { "got", a.got },
                { "correct", a.got == a.item.answer } });
        if (args.flag("json")) {
            std::cout << dump(Json { { "tasks", tasks }, { "counts", counts }, { "canonical", canonical } }) << "\n";
        } else {
            std::printf("%-10s %-17s %8s %6s\n", "task", "split", "accuracy", "n");
            for (const auto& [task, splits] : r.accuracy)
                for (const auto& [split, acc] : splits)
                    std::printf("%-10s %-17s %7.1f%% %6zu\n", task.c_str(), split.c_str(), 100 * acc,
                        r.counts.at(task).at(split));
            for (const auto& a : r.canonical)
                std::printf("%s -> %s (expected %s)\n", visible(a.item.prompt).c_str(), visible(a.got).c_str(),
                    visible(a.item.answer).c_str());
        }
        return 0;
    }
    if (sub == "corpus") {
        if (pos.size() < 3)
            throw cs::Error("organism corpus needs MODEL (the organism whose world writes the text)");
        const std::string out = args.valueOr("out", "");
        const std::string split = args.valueOr("split", "heldout");
        const int64_t lines = args.intOr("lines", 20000);
        if (out.empty() || lines <= 0)
            throw cs::Error("organism corpus needs --out FILE and a positive --lines");
        const cs::organism::World world(cs::organism::organismWorld(cs::resolveModelFolder(pos[2])));
        if (split == "train") {
            cs::organism::writeTrainText(world, static_cast<uint64_t>(lines), out);
        } else if (split == "heldout") {
            cs::organism::writeHeldoutText(world, static_cast<uint64_t>(lines), out);
        } else {
            throw cs::Error("--split must be train or heldout, not \"" + split + "\"");
        }
        std::cout << out << "\n";
        return 0;
    }
    if (sub == "tasks") {
        // Paired tasks for neuron-basis circuits (cs/neurons.h), from the organism's evaluation
        // items: DIR/{agreement,two_hop,sports,addition}.jsonl.
        if (pos.size() < 3)
            throw cs::Error("organism tasks needs MODEL (the organism whose world writes the items)");
        const std::string out = args.valueOr("out", "");
        const int64_t items = args.intOr("items", 100);
        if (out.empty() || items <= 0)
            throw cs::Error("organism tasks needs --out DIR and a positive --items");
        const std::string folder = cs::resolveModelFolder(pos[2]);
        const cs::organism::World world(cs::organism::organismWorld(folder));
        const auto tokenizer = cs::model::Tokenizer::fromFolder(folder);
        std::error_code ec;
        std::filesystem::create_directories(out, ec);
        if (ec)
            throw cs::Error("cannot make the folder " + out + ": " + ec.message());
        const auto all = world.evalItems();
        Json written = Json::object();
        for (const std::string task : { "agreement", "two_hop", "sports", "addition" }) {
            std::vector<std::pair<std::string, std::string>> promptsAndAnswers;
            std::vector<std::string> contrasts;
            for (const auto& item : all)
                if (item.task == task && item.split == "train") {
                    promptsAndAnswers.emplace_back(item.prompt, item.answer);
                    contrasts.push_back(item.contrast);
                }
            const auto paired
                = cs::neurons::pairItems(promptsAndAnswers, contrasts, tokenizer, static_cast<size_t>(items));
            const std::string path = (std::filesystem::path(out) / (task + ".jsonl")).string();
            cs::neurons::writeTask(path, paired);
            written[task] = { { "path", path }, { "items", paired.size() } };
        }
        if (args.flag("json"))
            std::cout << dump(written) << "\n";
        else
            for (const auto& [task, w] : written.items())
                std::cout << w["path"].get<std::string>() << ": " << w["items"].get<size_t>() << " paired items\n";
        return 0;
    }
    throw cs::Error("organism needs a subcommand: build, eval, corpus or tasks");
}

} // namespace

int main(int argc, char** argv)
{
    const std::vector<std::string> argvList(argv + 1, argv + argc);
    if (argvList.empty() || argvList[0] == "--help" || argvList[0] == "-h" || argvList[0] == "help") {
        std::cout << kUsage;
        return argvList.empty() ? 2 : 0;
    }
    try {
        const std::optional<Args> parsed = cs::cli::parseCommandLine(argc, argv);
        if (!parsed)
            return 0; // a command's --help
        const Args& args = *parsed;
        if (args.positional().empty())
            throw cs::Error("no command given (try --help)");
        const std::string command = args.positional()[0];
        const std::string device = args.valueOr("device", "auto");
        if (device.empty()) // the engine reads "" as auto; typed, it is a mistake (issue 21)
            throw cs::Error("--device needs a value (cpu, cuda, cuda:N or auto), not an empty one");
        if (command == "info")
            return cmdInfo(args, device);
        if (command == "tokenize")
            return cmdTokenize(args, device);
        if (command == "logits")
            return cmdLogits(args, device);
        if (command == "generate")
            return cmdGenerate(args, device);
        if (command == "bench")
            return cmdBench(args, device);
        if (command == "organism")
            return cmdOrganism(args, device);
        if (command == "transcoder")
            return cs::cli::cmdTranscoder(args, device);
        if (command == "trace")
            return cs::cli::cmdTrace(args, device);
        if (command == "intervene")
            return cs::cli::cmdIntervene(args, device);
        if (command == "validate")
            return cs::cli::cmdValidate(args, device);
        if (command == "weights")
            return cs::cli::cmdWeights(args, device);
        if (command == "sweep")
            return cs::cli::cmdSweep(args, device);
        if (command == "neurons")
            return cs::cli::cmdNeurons(args, device);
        if (command == "graph")
            return cs::cli::cmdGraph(args, device);
        if (command == "features")
            return cs::cli::cmdFeatures(args, device);
        throw cs::Error("unknown command \"" + command + "\" (try --help)");
    } catch (const cs::Error& e) {
        std::cerr << "circuitscope-cli: error: " << e.what() << "\n";
        return 1;
    } catch (const c10::OutOfMemoryError& e) {
        // A graph or model too large for the device: the user's to resize, not a crash.
        std::cerr << "circuitscope-cli: error: " << cs::model::errorText(e)
                  << "\n(try --max-feature-nodes, a smaller --batch-size, a shorter prompt or --device cpu)\n";
        return 1;
    } catch (const std::exception& e) {
        std::cerr << "circuitscope-cli: internal error: " << cs::model::errorText(e) << "\n";
        return 3;
    }
}
