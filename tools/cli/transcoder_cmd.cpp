// circuitscope-cli transcoder train | eval | info
#include "commands.h"

#include "cs/engine.h"
#include "cs/error.h"
#include "cs/files.h"
#include "cs/transcoder_train.h"

#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>

namespace cs::cli {

namespace {

using Json = nlohmann::json;

std::string dump(const Json& j, bool pretty = false)
{
    return j.dump(pretty ? 2 : -1, ' ', false, Json::error_handler_t::replace);
}

// "a/b/c/" -> "c"
std::string folderName(const std::string& path)
{
    std::filesystem::path p = std::filesystem::path(path).lexically_normal();
    if (p.filename().empty())
        p = p.parent_path();
    return p.filename().string();
}

transcoder::Activation activationFromName(const std::string& name)
{
    if (name == "jump_relu" || name == "jumprelu")
        return transcoder::Activation::JumpReLU;
    if (name == "relu")
        return transcoder::Activation::ReLU;
    if (name == "topk")
        return transcoder::Activation::TopK;
    throw Error("--activation must be jump_relu, relu or topk, not \"" + name + "\"");
}

int cmdTrain(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    if (pos.size() < 3)
        throw Error("transcoder train needs MODEL (and --corpus FILE --out DIR)");
    const std::string folder = resolveModelFolder(pos[2]);
    transcoder::TrainOptions o;
    o.outDir = args.valueOr("out", "");
    const std::string corpus = args.valueOr("corpus", "");
    if (o.outDir.empty() || corpus.empty())
        throw Error("transcoder train needs --corpus FILE and --out DIR");
    const std::string kind = args.valueOr("kind", "clt");
    if (kind != "clt" && kind != "plt")
        throw Error("--kind must be clt or plt, not \"" + kind + "\"");
    o.architecture = kind == "clt" ? transcoder::Architecture::CrossLayer : transcoder::Architecture::PerLayer;
    o.activation = activationFromName(args.valueOr("activation", "jump_relu"));
    o.topK = args.intOr("k", 0);
    o.nFeatures = args.intOr("features", o.nFeatures);
    o.skip = args.flag("skip");
    o.inputHookName = args.valueOr("input-hook", o.inputHookName);
    o.outputHookName = args.valueOr("output-hook", o.outputHookName);
    o.steps = args.intOr("steps", o.steps);
    o.batchTokens = args.intOr("batch-tokens", o.batchTokens);
    o.bufferTokens = args.intOr("buffer-tokens", o.bufferTokens);
    o.lr = args.doubleOr("lr", o.lr);
    o.lambdaSparsity = args.doubleOr("lambda-sparsity", o.lambdaSparsity);
    o.sparsityC = args.doubleOr("sparsity-c", o.sparsityC);
    o.lambdaPreact = args.doubleOr("lambda-preact", o.lambdaPreact);
    o.bandwidth = args.doubleOr("bandwidth", o.bandwidth);
    o.thresholdInit = args.doubleOr("threshold-init", o.thresholdInit);
    o.seed = static_cast<uint64_t>(args.intOr("seed", 1));
    o.checkpointEvery = args.intOr("checkpoint-every", o.checkpointEvery);
    o.storeDtype = args.valueOr("dtype", o.storeDtype);
    const int64_t localShards = args.intOr("shards", 1);
    if (localShards < 1 || localShards > 4096)
        throw Error("--shards must be in [1, 4096]");
    const Job job = joinJob(args, device);
    o.group = job.group;
    o.shardFeatures = args.flag("feature-sharded");
    if (o.shardFeatures && !job.group)
        throw Error("--feature-sharded splits the features over the ranks of a job: add --distributed");
    o.device = job.device == "auto" ? model::resolveDevice("auto").str() : job.device;
    const int64_t rank = job.group ? job.group->rank() : 0, ranks = job.group ? job.group->size() : 1;

    // Feature-sharded, rank 0 reads the data for every rank: the others need the model's shape
    // alone, and leave its weights off their devices.
    const int64_t dataRanks = o.shardFeatures ? 1 : ranks;
    std::shared_ptr<const model::Model> model;
    if (rank < dataRanks)
        model = model::Model::load(folder, { job.device, true });
    const model::ModelConfig shape = model ? model->config() : model::Model::loadConfig(folder);
    if (job.group) // every rank must read the same model and corpus
        job.group->checkSame("model or corpus",
            "config.json " + fileFingerprint(folder + "/config.json") + "\ncorpus " + fileFingerprint(corpus) + "\n");
    // The model's folder name stands for the model (Hugging Face folders are named after it).
    o.modelName = folderName(folder);
    o.scan = o.modelName + "/" + folderName(o.outDir);
    transcoder::ModelActivationOptions ao;
    ao.corpus = corpus;
    ao.inputHook = transcoder::hookFromConfigName(o.inputHookName);
    ao.outputHook = transcoder::hookFromConfigName(o.outputHookName);
    ao.seqLen = args.intOr("seq-len", ao.seqLen);
    ao.cacheDir = args.valueOr("cache", "");
    ao.shards = dataRanks * localShards;
    std::vector<std::unique_ptr<transcoder::ActivationSource>> sources;
    std::vector<transcoder::ActivationSource*> shards;
    for (int64_t i = 0; i < localShards && rank < dataRanks; ++i) {
        ao.shard = rank * localShards + i;
        sources.push_back(transcoder::modelActivations(model, ao));
        shards.push_back(sources.back().get());
    }
    const auto r = transcoder::trainTranscoder(shards, shape, o);
    if (rank != 0) // rank 0 speaks for the job
        return 0;

    Json layers = Json::array();
    for (size_t l = 0; l < r.nmse.size(); ++l)
        layers.push_back(
            { { "layer", l }, { "nmse", r.nmse[l] }, { "l0", r.l0[l] }, { "dead_fraction", r.deadFraction[l] } });
    Json j = { { "out", o.outDir }, { "steps", r.steps }, { "resumed_from", r.resumedFrom }, { "seconds", r.seconds },
        { "tokens_per_second", r.tokensPerSecond }, { "ranks", ranks }, { "shards", dataRanks * localShards },
        { "feature_sharded", o.shardFeatures }, { "features_per_rank", o.nFeatures / (o.shardFeatures ? ranks : 1) },
        { "train_layers", layers } };
    std::cout << (args.flag("json") ? dump(j) : dump(j, true)) << "\n";
    return 0;
}

int cmdEval(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    if (pos.size() < 4)
        throw Error("transcoder eval needs MODEL TRANSCODER --corpus FILE");
    const std::string folder = resolveModelFolder(pos[2]);
    auto model = model::Model::load(folder, { device, true });
    auto set = transcoder::TranscoderSet::load(transcoder::resolveTranscoderFolder(folder, pos[3]),
        { device == "auto" ? "auto" : device, true, model->config().nLayers });
    transcoder::EvalOptions o;
    o.corpus = args.valueOr("corpus", "");
    if (o.corpus.empty())
        throw Error("transcoder eval needs --corpus FILE (held-out text)");
    o.maxTokens = args.intOr("max-tokens", o.maxTokens);
    o.seqLen = args.intOr("seq-len", o.seqLen);
    const auto r = transcoder::evaluateTranscoder(*model, *set, o);
    Json layers = Json::array();
    for (const auto& m : r.layers)
        layers.push_back(
            { { "layer", m.layer }, { "nmse", m.nmse }, { "l0", m.l0 }, { "dead_fraction", m.deadFraction } });
    Json j = { { "layers", layers }, { "replacement", { { "top1_agreement", r.top1Agreement }, { "kl", r.kl } } },
        { "tokens", r.tokens },
        { "transcoder",
            { { "folder", set->folder() }, { "kind", transcoder::architectureName(set->config().architecture) },
                { "activation", transcoder::activationName(set->config().activation) },
                { "features_per_layer", set->nFeatures() } } } };
    if (args.flag("json")) {
        std::cout << dump(j) << "\n";
        return 0;
    }
    std::printf("%s (%s, %s, %lld features per layer) on %lld tokens\n", set->folder().c_str(),
        transcoder::architectureName(set->config().architecture), transcoder::activationName(set->config().activation),
        static_cast<long long>(set->nFeatures()), static_cast<long long>(r.tokens));
    std::printf("%-6s %8s %8s %8s\n", "layer", "nmse", "L0", "dead");
    double meanNmse = 0, meanL0 = 0;
    for (const auto& m : r.layers) {
        std::printf(
            "%-6lld %8.4f %8.1f %7.1f%%\n", static_cast<long long>(m.layer), m.nmse, m.l0, 100 * m.deadFraction);
        meanNmse += m.nmse / static_cast<double>(r.layers.size());
        meanL0 += m.l0 / static_cast<double>(r.layers.size());
    }
    std::printf("mean   %8.4f %8.1f\nreplacement model: top-1 agreement %.2f%%, KL %.4f nats\n", meanNmse, meanL0,
        100 * r.top1Agreement, r.kl);
    return 0;
}

int cmdInfo(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    if (pos.size() < 3)
        throw Error("transcoder info needs TRANSCODER (a folder, or MODEL and a shipped set name)");
    const std::string folder
        = pos.size() > 3 ? transcoder::resolveTranscoderFolder(resolveModelFolder(pos[2]), pos[3]) : pos[2];
    auto set = transcoder::TranscoderSet::load(folder, { device, true });
    const auto& c = set->config();
    Json j = { { "folder", set->folder() }, { "kind", transcoder::architectureName(c.architecture) },
        { "activation", transcoder::activationName(c.activation) }, { "layers", c.nLayers }, { "d_model", c.dModel },
        { "features_per_layer", c.nFeatures }, { "skip", c.skip }, { "feature_input_hook", c.inputHookName },
        { "feature_output_hook", c.outputHookName }, { "scan", c.scan } };
    if (c.activation == transcoder::Activation::TopK)
        j["k"] = c.topK;
    std::cout << (args.flag("json") ? dump(j) : dump(j, true)) << "\n";
    return 0;
}

// Random activations of a model's shape, for timing the training step alone.
class RandomActivations : public transcoder::ActivationSource {
public:
    RandomActivations(int64_t nLayers, int64_t dModel)
        : m_nLayers(nLayers)
        , m_dModel(dModel)
    {
    }
    std::pair<at::Tensor, at::Tensor> next() override
    {
        ++m_position;
        return { at::randn({ m_nLayers, 4096, m_dModel }), at::randn({ m_nLayers, 4096, m_dModel }) };
    }
    int64_t position() const override { return m_position; }
    void seek(int64_t chunks) override { m_position = chunks; }

private:
    int64_t m_nLayers, m_dModel, m_position = 0;
};

} // namespace

int cmdTranscoder(const Args& args, const std::string& device)
{
    const auto& pos = args.positional();
    const std::string sub = pos.size() > 1 ? pos[1] : "";
    if (sub == "train")
        return cmdTrain(args, device);
    if (sub == "eval")
        return cmdEval(args, device);
    if (sub == "info")
        return cmdInfo(args, device);
    throw Error("transcoder needs a subcommand: train, eval or info");
}

Json benchTranscoderTraining(const std::string& modelFolder, const std::string& device)
{
    auto model = model::Model::load(modelFolder, { device, false });
    const auto& mc = model->config();
    Json rows = Json::array();
    for (const char* kind : { "clt", "plt" }) {
        transcoder::TrainOptions o;
        o.outDir = (std::filesystem::temp_directory_path() / ("circuitscope-bench-" + std::string(kind))).string();
        cs::removeTree(o.outDir);
        o.architecture
            = std::string(kind) == "clt" ? transcoder::Architecture::CrossLayer : transcoder::Architecture::PerLayer;
        o.nFeatures = 1024;
        o.steps = 30;
        o.batchTokens = 1024;
        o.bufferTokens = 8192;
        o.checkpointEvery = 0;
        o.progress = false;
        o.device = device == "auto" ? model::resolveDevice("auto").str() : device;
        RandomActivations source(mc.nLayers, mc.dModel);
        const auto r = transcoder::trainTranscoder(source, mc, o);
        cs::removeTree(o.outDir);
        rows.push_back({ { "kind", kind }, { "features_per_layer", o.nFeatures }, { "batch_tokens", o.batchTokens },
            { "tokens_per_second", r.tokensPerSecond } });
    }
    return rows;
}

} // namespace cs::cli
