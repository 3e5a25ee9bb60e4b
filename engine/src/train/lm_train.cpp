#include "cs/lm_train.h"

#include "cs/error.h"
#include "cs/plugin.h"
#include "cs/safetensors.h"
#include "train/training.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

namespace cs::train {

namespace {

bool isOutputProjection(const std::string& name)
{
    return name.find("attn.o.weight") != std::string::npos || name.find("mlp.down.weight") != std::string::npos;
}

} // namespace

std::map<std::string, at::Tensor> initWeights(const model::ModelConfig& config, uint64_t seed)
{
    auto plugin = plugins::pluginForModelType(config.modelType);
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    std::map<std::string, at::Tensor> weights;
    const double outScale = 1.0 / std::sqrt(2.0 * static_cast<double>(config.nLayers));
    for (const auto& ws : plugin->weightSources(config)) {
        if (ws.optional || weights.count(ws.canonical))
            continue;
        if (ws.canonical == "unembed.weight" && config.tiedEmbeddings) {
            continue; // tied below
        }
        at::Tensor t;
        const std::string& name = ws.canonical;
        if (ws.shape.size() == 1) {
            const bool isNormWeight
                = name.find("norm") != std::string::npos && name.find(".weight") != std::string::npos;
            const bool onePlus = config.normKind == model::NormKind::RmsOnePlus;
            t = (isNormWeight && !onePlus) ? at::ones(ws.shape) : at::zeros(ws.shape);
        } else {
            t = at::normal(0.0, 0.02, ws.shape, gen);
            if (isOutputProjection(name))
                t.mul_(outScale);
        }
        weights[name] = t;
    }
    if (config.tiedEmbeddings)
        weights["unembed.weight"] = weights.at("embed.weight");
    return weights;
}

LmTrainResult trainLanguageModel(
    const LmTrainOptions& o, const BatchSource& batches, std::shared_ptr<const model::Tokenizer> tokenizer)
{
    model::initThreads();
    const c10::Device device = model::resolveDevice(o.device);
    std::map<std::string, at::Tensor> weights = initWeights(o.config, o.seed);
    // The trainable parameters: one entry per distinct tensor (a tied unembedding is the embedding).
    std::map<std::string, at::Tensor> params;
    std::set<std::string> noDecay;
    {
        std::map<const void*, at::Tensor> onDevice;
        for (auto& [name, t] : weights) {
            auto& d = onDevice[t.unsafeGetTensorImpl()];
            if (!d.defined()) {
                d = t.to(device).detach().requires_grad_(true);
                params[name] = d;
                if (d.dim() < 2)
                    noDecay.insert(name);
            }
            t = d;
        }
    }
    AdamW::Options adamOptions;
    adamOptions.weightDecay = o.weightDecay;
    AdamW optimizer(params, adamOptions, noDecay);

    LmTrainResult result;
    std::error_code ec;
    if (!o.checkpointPath.empty() && std::filesystem::exists(o.checkpointPath, ec)) {
        auto file = io::SafetensorsFile::open(o.checkpointPath);
        at::NoGradGuard noGrad;
        for (auto& [name, p] : params) {
            if (!file->contains("param." + name))
                throw Error(o.checkpointPath + " is a checkpoint of another model (no \"" + name + "\")");
            at::Tensor saved = file->tensor("param." + name);
            if (saved.sizes() != p.sizes())
                throw Error(o.checkpointPath + " is a checkpoint of another model (\"" + name + "\" differs in shape)");
            p.copy_(saved);
        }
        optimizer.loadState(*file);
        result.resumedFrom = optimizer.steps();
        if (o.progress)
            std::fprintf(stderr, "resuming from %s at step %lld\n", o.checkpointPath.c_str(),
                static_cast<long long>(result.resumedFrom));
    }
    auto saveCheckpoint = [&]() {
        if (o.checkpointPath.empty())
            return;
        io::SafetensorsWriter writer;
        for (const auto& [name, p] : params)
            writer.add("param." + name, p.detach());
        optimizer.saveState(writer);
        writer.write(o.checkpointPath);
    };

    auto model = model::Model::fromWeights(o.config, weights, tokenizer, device.str());
    ProgressBar bar("train", o.steps, result.resumedFrom);
    const auto start = std::chrono::steady_clock::now();
    double smoothed = NAN;
    int64_t step = result.resumedFrom;
    for (; step < o.steps; ++step) {
        at::Tensor rows = batches(step).to(device, at::kLong); // [batch, seq_len + 1]
        if (rows.dim() != 2 || rows.size(1) < 2)
            throw Error("a training batch must be [rows, tokens + 1]");
        at::Tensor input = rows.narrow(1, 0, rows.size(1) - 1);
        at::Tensor target = rows.narrow(1, 1, rows.size(1) - 1);
        at::Tensor logits = model->forward(input).logits; // [batch, seq_len, vocab]
        at::Tensor loss
            = at::nll_loss(at::log_softmax(logits.reshape({ -1, logits.size(-1) }), -1), target.reshape(-1));
        optimizer.zeroGrad();
        loss.backward();
        clipGradNorm(params, o.clipNorm);
        optimizer.step(warmupCosine(step, o.warmupSteps, o.steps, o.lr, o.minLrFraction));

        const double value = loss.item<double>();
        if (!std::isfinite(value))
            throw Error("training diverged at step " + std::to_string(step) + " (loss " + std::to_string(value) + ")");
        result.losses.push_back(value);
        smoothed = std::isnan(smoothed) ? value : 0.98 * smoothed + 0.02 * value;
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double tokens = static_cast<double>((step + 1 - result.resumedFrom) * input.numel());
        char stats[96];
        std::snprintf(stats, sizeof stats, "loss %.4f | %.1fk tok/s", smoothed, tokens / std::max(secs, 1e-9) / 1000);
        if (o.progress)
            bar.update(step + 1, stats);
        if (o.checkpointEvery > 0 && (step + 1) % o.checkpointEvery == 0)
            saveCheckpoint();
        if (o.onStep && !o.onStep(step, value)) {
            ++step;
            result.stopped = true;
            saveCheckpoint();
            break;
        }
    }
    result.stepsDone = step;
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.tokensPerSecond
        = static_cast<double>((step - result.resumedFrom) * o.batchSize * o.seqLen) / std::max(result.seconds, 1e-9);
    if (o.progress && !result.stopped) {
        char stats[96];
        std::snprintf(stats, sizeof stats, "loss %.4f | %.1fk tok/s", smoothed, result.tokensPerSecond / 1000);
        bar.finish(stats);
    }
    if (!result.stopped)
        saveCheckpoint();
    // The trained model, detached from autograd.
    std::map<std::string, at::Tensor> trained;
    for (auto& [name, t] : weights)
        trained[name] = t.detach();
    result.model = model::Model::fromWeights(o.config, trained, tokenizer, device.str());
    return result;
}

} // namespace cs::train
