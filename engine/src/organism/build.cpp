#include "cs/json_reader.h"
#include "cs/organism_build.h"

#include "cs/error.h"
#include "cs/files.h"
#include "cs/lm_train.h"
#include "io/atomic_file.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>

namespace cs::organism {

namespace fs = std::filesystem;

namespace {

// Lines a training row may draw from: row r of step s uses lines (s * batch + r) * kLinesPerRow + j.
constexpr uint64_t kLinesPerRow = 32;

model::ModelConfig organismConfig(const BuildOptions& o, const model::Tokenizer& tokenizer)
{
    model::ModelConfig c;
    c.family = "llama";
    c.modelType = "llama";
    c.nLayers = o.nLayers;
    c.dModel = o.dModel;
    c.nHeads = o.nHeads;
    c.nKvHeads = o.nKvHeads;
    c.dHead = o.dModel / o.nHeads;
    c.dMlp = o.dMlp;
    c.vocabSize = tokenizer.vocabSize();
    c.maxPositions = o.maxPositions;
    c.normEps = 1e-5;
    c.ropeTheta = 10000.0;
    c.tiedEmbeddings = true;
    c.bosTokenId = tokenizer.bosId();
    c.eosTokenId = tokenizer.eosId();
    c.slidingLayers.assign(static_cast<size_t>(c.nLayers), false);
    return c;
}

} // namespace

at::Tensor trainingBatch(
    const World& world, const model::Tokenizer& tokenizer, int64_t step, int64_t batchSize, int64_t seqLen)
{
    const auto bos = tokenizer.bosId();
    const auto newline = tokenizer.encode("\n", false);
    at::Tensor rows = at::empty({ batchSize, seqLen + 1 }, at::kLong);
    auto acc = rows.accessor<int64_t, 2>();
    for (int64_t r = 0; r < batchSize; ++r) {
        std::vector<int64_t> ids;
        if (bos)
            ids.push_back(*bos);
        const uint64_t base
            = (static_cast<uint64_t>(step) * static_cast<uint64_t>(batchSize) + static_cast<uint64_t>(r))
            * kLinesPerRow;
        for (uint64_t j = 0; j < kLinesPerRow && static_cast<int64_t>(ids.size()) < seqLen + 1; ++j) {
            if (j > 0)
                ids.insert(ids.end(), newline.begin(), newline.end());
            const auto line = tokenizer.encode(world.trainLine(base + j), false);
            ids.insert(ids.end(), line.begin(), line.end());
        }
        if (static_cast<int64_t>(ids.size()) < seqLen + 1)
            throw Error("training rows are longer than " + std::to_string(kLinesPerRow) + " lines");
        for (int64_t t = 0; t <= seqLen; ++t)
            acc[r][t] = ids[static_cast<size_t>(t)];
    }
    return rows;
}

BuildResult buildOrganism(const BuildOptions& o)
{
    const auto start = std::chrono::steady_clock::now();
    if (o.outDir.empty())
        throw Error("organism build needs --out DIR");
    if (o.dModel % o.nHeads != 0 || o.nHeads % o.nKvHeads != 0)
        throw Error("organism build: d_model must divide into heads, and heads into kv heads");
    std::error_code ec;
    const fs::path out(o.outDir), work = fs::path(o.outDir) / ".build";
    fs::create_directories(work, ec);
    if (ec)
        throw Error("cannot create " + work.string() + ": " + ec.message());

    const World world(WorldOptions { o.seed, o.worldVersion });
    // 1. The tokenizer, trained on the first lines of the corpus.
    BpeOptions bpe;
    bpe.vocabSize = o.vocabSize;
    std::vector<std::string> lines;
    lines.reserve(static_cast<size_t>(o.tokenizerLines));
    for (int64_t i = 0; i < o.tokenizerLines; ++i)
        lines.push_back(world.trainLine(static_cast<uint64_t>(i)));
    const std::string tokenizerJson = trainBpeTokenizerJson(lines, bpe);
    const std::string tokenizerConfig = bpeTokenizerConfigJson(bpe);
    auto tokenizer
        = std::make_shared<const model::Tokenizer>(model::Tokenizer::fromJson(tokenizerJson, tokenizerConfig));
    if (o.progress)
        std::fprintf(stderr, "tokenizer: %lld tokens\n", static_cast<long long>(tokenizer->vocabSize()));

    // 2. The model, trained on the stream of training lines (resumable).
    train::LmTrainOptions t;
    t.config = organismConfig(o, *tokenizer);
    t.steps = o.steps;
    t.batchSize = o.batchSize;
    t.seqLen = o.seqLen;
    t.lr = o.lr;
    t.warmupSteps = o.warmupSteps;
    t.seed = o.seed;
    t.device = o.device;
    t.checkpointPath = (work / "checkpoint.safetensors").string();
    t.progress = o.progress;
    const auto trained = train::trainLanguageModel(
        t, [&](int64_t step) { return trainingBatch(world, *tokenizer, step, o.batchSize, o.seqLen); }, tokenizer);

    // 3. The Hugging Face folder, and what made it.
    model::saveModelFolder(*trained.model, o.outDir, o.storeDtype, tokenizerJson);
    io::writeFileAtomically((out / "tokenizer_config.json").string(), tokenizerConfig);
    BuildResult result;
    result.folder = o.outDir;
    result.trainSeconds = trained.seconds;
    result.tokensPerSecond = trained.tokensPerSecond;
    result.resumedFrom = trained.resumedFrom;
    const auto& losses = trained.losses;
    if (!losses.empty()) {
        const size_t tail = std::min<size_t>(50, losses.size());
        double sum = 0;
        for (size_t i = losses.size() - tail; i < losses.size(); ++i)
            sum += losses[i];
        result.finalLoss = sum / static_cast<double>(tail);
        result.firstLoss = losses.front();
    }
    std::set<const void*> seen;
    for (const auto& [name, w] : trained.model->weights())
        if (seen.insert(w.unsafeGetTensorImpl()).second)
            result.parameters += w.numel();
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    nlohmann::json record = { { "organism", "tinyworld" }, { "seed", o.seed }, { "world_version", o.worldVersion },
        { "command",
            "circuitscope-cli organism build --out DIR --seed " + std::to_string(o.seed) + " --steps "
                + std::to_string(o.steps) },
        { "model",
            { { "layers", o.nLayers }, { "d_model", o.dModel }, { "heads", o.nHeads }, { "kv_heads", o.nKvHeads },
                { "d_mlp", o.dMlp }, { "vocab", tokenizer->vocabSize() }, { "parameters", result.parameters } } },
        { "training",
            { { "steps", o.steps }, { "batch_size", o.batchSize }, { "seq_len", o.seqLen }, { "lr", o.lr },
                { "warmup_steps", o.warmupSteps }, { "final_loss", result.finalLoss },
                { "tokens_per_second", result.tokensPerSecond }, { "train_seconds", result.trainSeconds },
                { "device", o.device } } },
        { "store_dtype", o.storeDtype } };
    io::writeFileAtomically((out / "organism.json").string(), record.dump(2) + "\n");
    removeTree(fs::path(work).string());
    return result;
}

namespace {

// Greedy continuations of equal-length prompts, run as one batch with a KV cache.
// prompts: [n, n_pos]; fills generated [n, steps] and the first step's logits [n, vocab].
void greedyBatch(
    const model::Model& model, const at::Tensor& prompts, int64_t steps, at::Tensor& generated, at::Tensor& firstLogits)
{
    model::KvCache cache;
    model::ForwardOptions options;
    options.cache = &cache;
    at::Tensor input = prompts;
    std::vector<at::Tensor> out;
    for (int64_t s = 0; s < steps; ++s) {
        at::Tensor logits = model.forward(input, options).logits; // [n, n_pos, vocab]
        at::Tensor last = logits.select(1, logits.size(1) - 1);
        if (s == 0)
            firstLogits = last.to(at::kCPU);
        at::Tensor next = last.argmax(-1, true); // [n, 1]
        out.push_back(next);
        input = next;
    }
    generated = at::cat(out, 1).to(at::kCPU);
}

} // namespace

EvalResult evaluateOrganism(const model::Model& model, const World& world, const EvalOptions& options)
{
    at::NoGradGuard noGrad;
    const auto& tokenizer = model.tokenizer();
    EvalResult result;
    // The items to ask, grouped by prompt length so each group runs as one batch.
    struct Question {
        EvalItem item;
        size_t answerTokens;
    };
    std::map<size_t, std::vector<Question>> byLength;
    std::map<size_t, std::vector<std::vector<int64_t>>> promptsByLength;
    for (const auto& item : world.evalItems()) {
        size_t& n = result.counts[item.task][item.split];
        if (options.maxPerSplit > 0 && n >= options.maxPerSplit)
            continue;
        ++n;
        auto ids = tokenizer.encode(item.prompt);
        byLength[ids.size()].push_back({ item, tokenizer.encode(item.answer, false).size() });
        promptsByLength[ids.size()].push_back(std::move(ids));
    }
    constexpr size_t kBatch = 256;
    std::map<std::string, std::map<std::string, size_t>> correct;
    for (const auto& [length, questions] : byLength) {
        const auto& prompts = promptsByLength[length];
        for (size_t begin = 0; begin < questions.size(); begin += kBatch) {
            const size_t end = std::min(questions.size(), begin + kBatch);
            size_t steps = 0;
            std::vector<int64_t> flat;
            for (size_t i = begin; i < end; ++i) {
                steps = std::max(steps, questions[i].answerTokens);
                flat.insert(flat.end(), prompts[i].begin(), prompts[i].end());
            }
            at::Tensor batch = at::tensor(flat, at::kLong).view({ static_cast<int64_t>(end - begin), -1 });
            at::Tensor generated, firstLogits;
            greedyBatch(model, batch.to(model.device()), static_cast<int64_t>(steps), generated, firstLogits);
            for (size_t i = begin; i < end; ++i) {
                const auto& q = questions[i];
                const int64_t r = static_cast<int64_t>(i - begin);
                at::Tensor row = generated[r].narrow(0, 0, static_cast<int64_t>(q.answerTokens));
                std::string got = tokenizer.decode(
                    std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel()));
                bool right = got == q.item.answer;
                if (!q.item.contrast.empty()) {
                    // Forced choice between the answer's and the contrast's first tokens.
                    const int64_t a = tokenizer.encode(q.item.answer, false).front();
                    const int64_t b = tokenizer.encode(q.item.contrast, false).front();
                    right = firstLogits[r][a].item<float>() > firstLogits[r][b].item<float>();
                    got = right ? q.item.answer : q.item.contrast;
                }
                if (right)
                    ++correct[q.item.task][q.item.split];
                if (q.item.canonical)
                    result.canonical.push_back({ q.item, got });
            }
        }
    }
    for (const auto& [task, splits] : result.counts)
        for (const auto& [split, n] : splits)
            result.accuracy[task][split] = n ? static_cast<double>(correct[task][split]) / static_cast<double>(n) : 0.0;
    return result;
}

WorldOptions organismWorld(const std::string& folder)
{
    WorldOptions world;
    world.seed = 1;
    world.version = 1;
    const fs::path path = fs::path(folder) / "organism.json";
    std::error_code ec;
    if (!fs::exists(path, ec))
        return world;
    try {
        const auto j = parseJson(io::readFile(path.string(), kMaxConfigFileBytes), path.string());
        world.seed = j.value("seed", uint64_t(1));
        world.version = j.value("world_version", 1);
    } catch (const nlohmann::json::exception& e) {
        throw Error(path.string() + " is not valid JSON: " + e.what());
    }
    return world;
}

} // namespace cs::organism
