// Transcoder training (docs/ARCHITECTURE.md §5.2): the loss, the shuffled activation buffer and
// the loop.
#include "cs/transcoder_train.h"
#include "transcoder/trainable.h"

#include "cs/distributed.h"
#include "cs/error.h"
#include "cs/files.h"
#include "cs/safetensors.h"
#include "train/training.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>

namespace cs::transcoder {

namespace fs = std::filesystem;

// ---------------------------------------------------------------- parameters

TrainableTranscoder TrainableTranscoder::init(const TranscoderConfig& config, double thresholdInit, uint64_t seed)
{
    TrainableTranscoder t;
    t.config = config;
    const int64_t L = config.nLayers, F = config.nFeatures, d = config.dModel;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    // Encoder rows are random unit vectors: on inputs of unit mean square per coordinate the
    // pre-activations start with unit spread, so thresholdInit is in those units.
    t.encoder = at::normal(0.0, 1.0, { L, F, d }, gen);
    t.encoder.div_(t.encoder.norm(2, { 2 }, true));
    t.encoderBias = at::zeros({ L, F });
    if (config.activation == Activation::JumpReLU)
        t.logThreshold = at::full({ L, F }, std::log(thresholdInit));
    // Decoders start small (rows of norm 0.05 per target) so the first reconstructions are
    // near b_dec and no feature is pushed off by a large early error.
    for (int64_t target = 0; target < L; ++target) {
        const int64_t sources = target - t.firstSource(target) + 1;
        at::Tensor dec = at::normal(0.0, 1.0, { sources * F, d }, gen);
        dec.mul_(0.05 / dec.norm(2, { 1 }, true));
        t.decoders.push_back(dec);
    }
    t.decoderBias = at::zeros({ L, d });
    if (config.skip)
        t.skip = at::zeros({ L, d, d });
    t.inputScale.assign(static_cast<size_t>(L), 1.0);
    t.outputScale.assign(static_cast<size_t>(L), 1.0);
    return t;
}

int64_t TrainableTranscoder::firstSource(int64_t target) const
{
    return config.architecture == Architecture::CrossLayer ? 0 : target;
}

std::map<std::string, at::Tensor> TrainableTranscoder::parameters() const
{
    std::map<std::string, at::Tensor> p { { "encoder", encoder }, { "encoder_bias", encoderBias },
        { "decoder_bias", decoderBias } };
    if (logThreshold.defined())
        p["log_threshold"] = logThreshold;
    if (skip.defined())
        p["skip"] = skip;
    for (size_t t = 0; t < decoders.size(); ++t)
        p["decoder." + std::to_string(t)] = decoders[t];
    return p;
}

void TrainableTranscoder::setParameters(const std::map<std::string, at::Tensor>& byName)
{
    auto get = [&](const std::string& name) {
        auto it = byName.find(name);
        if (it == byName.end())
            throw Error("internal error: no transcoder parameter \"" + name + "\"");
        return it->second;
    };
    encoder = get("encoder");
    encoderBias = get("encoder_bias");
    decoderBias = get("decoder_bias");
    if (logThreshold.defined())
        logThreshold = get("log_threshold");
    if (skip.defined())
        skip = get("skip");
    for (size_t t = 0; t < decoders.size(); ++t)
        decoders[t] = get("decoder." + std::to_string(t));
}

namespace {

// The name without a checkpoint's prefix.
std::string baseName(const std::string& name)
{
    for (const char* prefix : { "param.", "adam.m.", "adam.v." })
        if (name.rfind(prefix, 0) == 0)
            return name.substr(std::strlen(prefix));
    return name;
}

// The tensor with its features on dimension 1: decoders [(sources) F, d] as [sources, F, d];
// the encoder [L, F, d], its bias, the thresholds and last_fired [L, F] have them there already.
at::Tensor byFeature(const std::string& name, const at::Tensor& t, int64_t nFeatures)
{
    return baseName(name).rfind("decoder.", 0) == 0 ? t.view({ -1, nFeatures, t.size(-1) }) : t;
}

} // namespace

bool runsOverFeatures(const std::string& name)
{
    const std::string base = baseName(name);
    return base != "decoder_bias" && base != "skip";
}

at::Tensor takeFeatures(
    const std::string& name, const at::Tensor& whole, int64_t nFeatures, int64_t first, int64_t count)
{
    if (!runsOverFeatures(name))
        return whole.clone();
    at::Tensor slice = byFeature(name, whole, nFeatures).narrow(1, first, count);
    return (whole.dim() == 2 && slice.dim() == 3 ? slice.reshape({ -1, whole.size(-1) }) : slice).contiguous();
}

at::Tensor joinFeatures(const std::string& name, const std::vector<at::Tensor>& slices, int64_t sliceFeatures)
{
    if (!runsOverFeatures(name))
        return slices.at(0);
    std::vector<at::Tensor> parts;
    for (const auto& s : slices)
        parts.push_back(byFeature(name, s, sliceFeatures));
    at::Tensor whole = at::cat(parts, 1);
    return slices[0].dim() == 2 && whole.dim() == 3 ? whole.reshape({ -1, whole.size(-1) }) : whole;
}

at::Tensor TrainableTranscoder::decoderNorms() const
{
    const int64_t L = config.nLayers, F = config.nFeatures;
    std::vector<at::Tensor> squares(static_cast<size_t>(L)); // per source layer, [n_features]
    for (int64_t target = 0; target < L; ++target) {
        const int64_t s0 = firstSource(target);
        at::Tensor blocks = decoders[static_cast<size_t>(target)].pow(2).sum(-1).reshape({ target - s0 + 1, F });
        for (int64_t s = s0; s <= target; ++s) {
            auto& acc = squares[static_cast<size_t>(s)];
            acc = acc.defined() ? acc + blocks[s - s0] : blocks[s - s0];
        }
    }
    return (at::stack(squares) + 1e-12).sqrt();
}

std::shared_ptr<const TranscoderSet> TrainableTranscoder::toSet(const std::string& device) const
{
    at::NoGradGuard noGrad;
    const int64_t L = config.nLayers, F = config.nFeatures;
    std::vector<LayerWeights> layers(static_cast<size_t>(L));
    for (int64_t s = 0; s < L; ++s) {
        auto& w = layers[static_cast<size_t>(s)];
        const double in = inputScale[static_cast<size_t>(s)];
        // z = W (x / in) + b: the raw-unit encoder is W / in; thresholds stay in z's units.
        w.encoder = (encoder[s] / in).contiguous();
        w.encoderBias = encoderBias[s].clone();
        if (logThreshold.defined())
            w.threshold = logThreshold[s].exp();
        std::vector<at::Tensor> perTarget;
        const int64_t lastTarget = config.architecture == Architecture::CrossLayer ? L - 1 : s;
        for (int64_t target = s; target <= lastTarget; ++target) {
            const int64_t s0 = firstSource(target);
            perTarget.push_back(decoders[static_cast<size_t>(target)].narrow(0, (s - s0) * F, F)
                * outputScale[static_cast<size_t>(target)]);
        }
        w.decoder = at::stack(perTarget, 1).contiguous(); // [F, n_targets, d]
        w.decoderBias = decoderBias[s] * outputScale[static_cast<size_t>(s)];
        if (skip.defined())
            w.skip = skip[s] * (outputScale[static_cast<size_t>(s)] / in);
    }
    return TranscoderSet::fromWeights(config, std::move(layers), device);
}

// ---------------------------------------------------------------- loss

LossTerms transcoderLoss(const TrainableTranscoder& t, const at::Tensor& x, const at::Tensor& y, const LossWeights& w,
    const FeatureExchange* exchange)
{
    const int64_t L = t.config.nLayers, F = t.config.nFeatures;
    const int64_t batch = x.size(1);
    LossTerms out;
    at::Tensor pre = at::baddbmm(t.encoderBias.unsqueeze(1), x, t.encoder.transpose(1, 2)); // [L, batch, F]
    at::Tensor acts;
    at::Tensor floor; // what the pre-activation loss pushes pre-activations above
    switch (t.config.activation) {
    case Activation::JumpReLU: {
        at::Tensor theta = t.logThreshold.exp().unsqueeze(1); // [L, 1, F]
        at::Tensor thetaD = theta.detach();
        at::Tensor preD = pre.detach();
        at::Tensor on = preD.gt(thetaD).to(pre.scalar_type());
        // Straight-through estimator: d a / d theta = -(theta / eps) K((z - theta) / eps), K the
        // unit rectangle; the added term is zero in value and carries exactly that gradient.
        at::Tensor window = (preD - thetaD).abs().lt(w.bandwidth / 2).to(pre.scalar_type());
        at::Tensor pseudo = -(thetaD / w.bandwidth) * window;
        acts = pre * on + (theta - thetaD) * pseudo;
        floor = theta;
        break;
    }
    case Activation::ReLU:
        acts = at::relu(pre);
        floor = at::zeros({ 1 }, pre.options());
        break;
    case Activation::TopK: {
        at::Tensor keep;
        if (exchange) {
            // The k largest of every rank's features: the k-th largest of the ranks' own top k
            // is the bar (a tie at it keeps both, where one process would keep one of them).
            const int64_t k = std::min(t.config.topK, F);
            at::Tensor own = std::get<0>(at::topk(pre.detach(), k, -1)); // [L, batch, k]
            at::Tensor all = exchange->concatenate(own);
            at::Tensor bar = std::get<0>(at::topk(all, t.config.topK, -1)).narrow(-1, t.config.topK - 1, 1);
            keep = pre.detach().ge(bar).to(pre.scalar_type());
        } else {
            at::Tensor idx = std::get<1>(at::topk(pre.detach(), t.config.topK, -1));
            keep = at::zeros_like(pre).scatter_(-1, idx, 1.0);
        }
        acts = at::relu(pre) * keep;
        floor = at::zeros({ 1 }, pre.options());
        break;
    }
    }
    out.acts = acts;

    // Activations of every source layer side by side, [batch, L * F], so that target t's
    // reconstruction is one product with the columns of its sources.
    at::Tensor flat = acts.permute({ 1, 0, 2 }).reshape({ batch, L * F });
    std::vector<at::Tensor> fromFeatures; // per target, what these features write, [batch, d]
    for (int64_t target = 0; target < L; ++target) {
        const int64_t s0 = t.firstSource(target);
        at::Tensor cols = flat.narrow(1, s0 * F, (target - s0 + 1) * F);
        fromFeatures.push_back(at::mm(cols, t.decoders[static_cast<size_t>(target)]));
    }
    at::Tensor written = at::stack(fromFeatures); // [L, batch, d]
    if (exchange) {
        // The sum over the ranks, with this rank's share carrying the gradient: d sum / d share is
        // the identity, so every rank's features get the gradient of the whole reconstruction.
        // (An all-reduce moves what a reduce-scatter forward and an all-gather backward would,
        // and leaves every rank the whole error to take the mean of.)
        written = written + (exchange->sum(written.detach()) - written.detach());
    }
    at::Tensor mse;
    out.nmse.resize(static_cast<size_t>(L));
    for (int64_t target = 0; target < L; ++target) {
        at::Tensor yHat = written[target] + t.decoderBias[target];
        if (t.skip.defined())
            yHat = yHat + at::matmul(x[target], t.skip[target].t());
        at::Tensor err = (yHat - y[target]).pow(2).sum(-1).mean();
        mse = mse.defined() ? mse + err : err;
        const double variance = (y[target] - y[target].mean(0)).pow(2).sum(-1).mean().item<double>();
        out.nmse[static_cast<size_t>(target)] = err.item<double>() / std::max(variance, 1e-12);
    }
    at::Tensor norms = t.decoderNorms().unsqueeze(1); // [L, 1, F]
    out.mse = mse;
    out.sparsity = at::tanh(w.sparsityC * norms * acts).sum(at::IntArrayRef { 0, 2 }).mean();
    out.preact = (at::relu(floor - pre) * norms).sum(at::IntArrayRef { 0, 2 }).mean();
    out.total = out.mse + w.lambdaSparsity * out.sparsity + w.lambdaPreact * out.preact;
    return out;
}

// ---------------------------------------------------------------- buffer

namespace {

// Raw activations of `capacity` tokens, handed out in random batches; when half of them have
// been used, those are replaced by fresh ones from the source and the order is redrawn.
class ShuffleBuffer {
public:
    ShuffleBuffer(ActivationSource& source, int64_t nLayers, int64_t dModel, int64_t capacity, uint64_t seed)
        : m_source(source)
        , m_nLayers(nLayers)
        , m_dModel(dModel)
        , m_capacity(capacity)
        , m_gen(at::make_generator<at::CPUGeneratorImpl>(seed))
    {
        auto [x, y] = take(capacity);
        m_x = x;
        m_y = y;
        m_order = at::randperm(m_capacity, m_gen, at::kLong);
    }

    const at::Tensor& x() const { return m_x; }
    const at::Tensor& y() const { return m_y; }

    std::pair<at::Tensor, at::Tensor> batch(int64_t n)
    {
        if (m_cursor + n > m_capacity / 2) {
            at::Tensor used = m_order.narrow(0, 0, m_cursor);
            auto [x, y] = take(m_cursor);
            m_x.index_copy_(1, used, x);
            m_y.index_copy_(1, used, y);
            m_order = at::randperm(m_capacity, m_gen, at::kLong);
            m_cursor = 0;
        }
        at::Tensor idx = m_order.narrow(0, m_cursor, n);
        m_cursor += n;
        return { m_x.index_select(1, idx), m_y.index_select(1, idx) };
    }

private:
    // n tokens from the source, [L, n, d] each; the rest of a chunk waits for the next call.
    std::pair<at::Tensor, at::Tensor> take(int64_t n)
    {
        std::vector<at::Tensor> xs, ys;
        int64_t have = 0;
        while (have < n) {
            if (!m_pendingX.defined() || m_pendingX.size(1) == 0) {
                auto chunk = m_source.next();
                if (chunk.first.dim() != 3 || chunk.first.sizes() != chunk.second.sizes() || chunk.first.size(1) == 0
                    || chunk.first.size(0) != m_nLayers || chunk.first.size(2) != m_dModel)
                    throw Error("activation chunks must be pairs of [n_layers = " + std::to_string(m_nLayers)
                        + ", n_tokens, d_model = " + std::to_string(m_dModel) + "]");
                m_pendingX = chunk.first;
                m_pendingY = chunk.second;
            }
            const int64_t k = std::min(n - have, m_pendingX.size(1));
            xs.push_back(m_pendingX.narrow(1, 0, k));
            ys.push_back(m_pendingY.narrow(1, 0, k));
            m_pendingX = m_pendingX.narrow(1, k, m_pendingX.size(1) - k);
            m_pendingY = m_pendingY.narrow(1, k, m_pendingY.size(1) - k);
            have += k;
        }
        return { at::cat(xs, 1), at::cat(ys, 1) };
    }

    ActivationSource& m_source;
    int64_t m_nLayers, m_dModel;
    int64_t m_capacity;
    at::Generator m_gen;
    at::Tensor m_x, m_y, m_order, m_pendingX, m_pendingY;
    int64_t m_cursor = 0;
};

std::string checkpointPath(const TrainOptions& o)
{
    return (fs::path(o.outDir) / ".train" / "checkpoint.safetensors").string();
}

// Where global shard g's source stood, in a checkpoint's metadata (shard 0 under the key a
// one-shard run always used).
std::string positionKey(int64_t g)
{
    return g == 0 ? "source_position" : "source_position." + std::to_string(g);
}

} // namespace

// ---------------------------------------------------------------- loop

TrainResult trainTranscoder(ActivationSource& source, const model::ModelConfig& shape, const TrainOptions& o,
    const std::function<bool()>& cancel)
{
    return trainTranscoder(std::vector<ActivationSource*> { &source }, shape, o, cancel);
}

TrainResult trainTranscoder(const std::vector<ActivationSource*>& sources, const model::ModelConfig& shape,
    const TrainOptions& o, const std::function<bool()>& cancel)
{
    model::initThreads();
    at::AutoGradMode gradients(true); // a caller may hold a NoGradGuard (bench does)
    if (o.outDir.empty())
        throw Error("transcoder training needs an output folder");
    if (o.nFeatures <= 0 || o.steps <= 0 || o.batchTokens <= 0)
        throw Error("transcoder training needs positive --features, --steps and --batch-tokens");
    if (o.bufferTokens < 2 * o.batchTokens)
        throw Error("the shuffle buffer must hold at least two batches");
    if (o.activation == Activation::TopK && (o.topK <= 0 || o.topK > o.nFeatures))
        throw Error("topk training needs 0 < --k <= --features");
    const c10::Device device = model::resolveDevice(o.device);
    distributed::Group* group = o.group.get();
    const int64_t nRanks = group ? group->size() : 1, rank = group ? group->rank() : 0;
    // Feature-sharded: every rank holds F / W features of every layer and all ranks train on
    // the one batch rank 0 reads; else data-parallel, each rank reading its own shards.
    const bool shardFeatures = o.shardFeatures && group && nRanks > 1;
    const int64_t featureRanks = shardFeatures ? nRanks : 1, featureRank = shardFeatures ? rank : 0;
    if (o.nFeatures % featureRanks != 0)
        throw Error("feature-sharded training needs --features (" + std::to_string(o.nFeatures)
            + ") to divide evenly over the job's " + std::to_string(featureRanks) + " ranks");
    const int64_t ownFeatures = o.nFeatures / featureRanks, firstFeature = featureRank * ownFeatures;
    const bool readsData = !shardFeatures || rank == 0;
    int64_t localShards = readsData ? static_cast<int64_t>(sources.size()) : 0;
    if (readsData && localShards == 0)
        throw Error("transcoder training needs at least one activation source");
    if (shardFeatures) { // the other ranks learn how many shards rank 0 reads
        std::vector<at::Tensor> count { at::full({ 1 }, localShards, at::kLong) };
        group->broadcast(count, 0);
        localShards = count[0].item<int64_t>();
    }
    const int64_t dataRanks = shardFeatures ? 1 : nRanks;
    const int64_t shards = dataRanks * localShards, firstShard = shardFeatures ? 0 : rank * localShards;
    if (o.batchTokens % shards != 0 || o.bufferTokens % shards != 0)
        throw Error("--batch-tokens and --buffer-tokens must divide evenly over the job's " + std::to_string(shards)
            + " shards of the data");
    const int64_t shardBatch = o.batchTokens / shards;
    const bool talk = o.progress && rank == 0;

    TranscoderConfig config;
    config.architecture = o.architecture;
    config.activation = o.activation;
    config.topK = o.topK;
    config.nLayers = shape.nLayers;
    config.dModel = shape.dModel;
    config.nFeatures = o.nFeatures;
    config.skip = o.skip;
    config.inputHook = hookFromConfigName(o.inputHookName);
    config.outputHook = hookFromConfigName(o.outputHookName);
    config.inputHookName = o.inputHookName;
    config.outputHookName = o.outputHookName;
    config.modelName = o.modelName;
    config.scan = o.scan;
    if (config.scan.empty()) {
        fs::path out = fs::path(o.outDir).lexically_normal();
        config.scan = (out.filename().empty() ? out.parent_path() : out).filename().string();
    }

    // The whole set's initial parameters (one seed, so any number of ranks starts alike), then
    // this rank's features of them.
    TrainableTranscoder t = TrainableTranscoder::init(config, o.thresholdInit, o.seed);
    if (shardFeatures) {
        std::map<std::string, at::Tensor> own;
        for (const auto& [name, p] : t.parameters())
            own[name] = takeFeatures(name, p, o.nFeatures, firstFeature, ownFeatures);
        t.setParameters(own);
        t.config.nFeatures = ownFeatures;
    }
    const int64_t L = config.nLayers;
    if (group) {
        // Ranks started with other options would train apart and average nonsense.
        char text[1024];
        std::snprintf(text, sizeof text,
            "kind %s\nactivation %s\nfeatures %lld\nk %lld\nskip %d\nhooks %s %s\nlayers %lld\nd_model %lld\n"
            "steps %lld\nbatch tokens %lld\nbuffer tokens %lld\nlr %.17g\nwarmup %.17g\nlambda sparsity %.17g\n"
            "sparsity ramp %.17g\nsparsity c %.17g\nlambda preact %.17g\nbandwidth %.17g\nthreshold init %.17g\n"
            "seed %llu\ncheckpoint every %lld\ndtype %s\nfeature sharded %d\nshards of the data %lld\nout %s\n",
            architectureName(config.architecture), activationName(config.activation),
            static_cast<long long>(o.nFeatures), static_cast<long long>(o.topK), o.skip ? 1 : 0,
            o.inputHookName.c_str(), o.outputHookName.c_str(), static_cast<long long>(L),
            static_cast<long long>(config.dModel), static_cast<long long>(o.steps),
            static_cast<long long>(o.batchTokens), static_cast<long long>(o.bufferTokens), o.lr, o.warmupFraction,
            o.lambdaSparsity, o.sparsityRamp, o.sparsityC, o.lambdaPreact, o.bandwidth, o.thresholdInit,
            static_cast<unsigned long long>(o.seed), static_cast<long long>(o.checkpointEvery), o.storeDtype.c_str(),
            o.shardFeatures ? 1 : 0, static_cast<long long>(shards),
            fs::absolute(o.outDir).lexically_normal().string().c_str());
        group->checkSame("training options", text);
    }

    // Resume: parameters, optimizer, scales, the source position and when features last fired.
    TrainResult result;
    const std::string ckpt = checkpointPath(o);
    // What a checkpoint must match to be resumed by this run.
    const std::string runShape = std::string(architectureName(config.architecture)) + "/"
        + activationName(config.activation) + "/" + std::to_string(config.nFeatures);
    std::shared_ptr<const io::SafetensorsFile> saved;
    std::error_code ec;
    if (fs::exists(ckpt, ec))
        saved = io::SafetensorsFile::open(ckpt);
    auto meta = [&](const std::string& key) -> std::string {
        auto it = saved->metadata().find(key);
        if (it == saved->metadata().end())
            throw Error(ckpt + " has no \"" + key + "\"; delete it to start over");
        return it->second;
    };
    const int64_t savedStep = saved ? std::stoll(meta("step")) : -1;
    if (group) {
        // Every rank resumes from the one checkpoint rank 0 writes: it must see the same file.
        std::vector<at::Tensor> steps { at::tensor({ savedStep, -savedStep }, at::kLong) };
        group->allReduce(steps, distributed::ReduceOp::Max);
        if (steps[0][0].item<int64_t>() != -steps[0][1].item<int64_t>())
            throw Error("the ranks do not see the same checkpoint in " + ckpt + " (rank " + std::to_string(rank)
                + (saved ? " sees step " + std::to_string(savedStep) : " sees none")
                + "): the output folder must be one folder every rank shares");
    }
    if (saved) {
        if (meta("shape") != runShape)
            throw Error(ckpt + " is a checkpoint of a " + meta("shape") + " run, not " + runShape
                + "; use another --out or delete it");
        const int64_t savedShards = saved->metadata().count("shards") ? std::stoll(meta("shards")) : 1;
        if (savedShards != shards)
            throw Error(ckpt + " is a checkpoint of a run over " + std::to_string(savedShards)
                + " shards of the data, not " + std::to_string(shards)
                + "; resume with as many ranks and --shards as it had, or delete it");
        for (int64_t l = 0; l < L; ++l) {
            t.inputScale[static_cast<size_t>(l)] = std::stod(meta("input_scale." + std::to_string(l)));
            t.outputScale[static_cast<size_t>(l)] = std::stod(meta("output_scale." + std::to_string(l)));
        }
        for (int64_t i = 0; readsData && i < localShards; ++i)
            sources[static_cast<size_t>(i)]->seek(std::stoll(meta(positionKey(firstShard + i))));
    }

    // One buffer per shard, each seeded apart (shard 0 as a one-shard run always was).
    std::vector<std::unique_ptr<ShuffleBuffer>> buffers;
    for (int64_t i = 0; readsData && i < localShards; ++i)
        buffers.push_back(
            std::make_unique<ShuffleBuffer>(*sources[static_cast<size_t>(i)], L, config.dModel, o.bufferTokens / shards,
                o.seed + static_cast<uint64_t>(std::max<int64_t>(savedStep, 0))
                    + 7919 * static_cast<uint64_t>(firstShard + i)));
    if (!saved) {
        // Scale inputs and outputs to unit mean square (per coordinate for inputs, per vector
        // for outputs) over the first buffers of every shard; start b_dec at the outputs' mean.
        at::Tensor sums = at::zeros({ L, 3 }, at::kDouble); // sum |x|^2, sum |y|^2, tokens
        at::Tensor ySum = at::zeros({ L, config.dModel }, at::kDouble);
        for (const auto& b : buffers) {
            const at::Tensor x = b->x().to(at::kDouble), y = b->y().to(at::kDouble); // [L, n, d]
            sums.select(1, 0).add_(x.pow(2).sum({ 1, 2 }));
            sums.select(1, 1).add_(y.pow(2).sum({ 1, 2 }));
            sums.select(1, 2).add_(static_cast<double>(x.size(1)));
            ySum.add_(y.sum(1));
        }
        if (group) { // the ranks' sums (feature-sharded: rank 0's alone, the others have none)
            std::vector<at::Tensor> stats { sums, ySum };
            group->allReduce(stats);
        }
        for (int64_t l = 0; l < L; ++l) {
            const double tokens = sums[l][2].item<double>();
            const double xs = std::sqrt(sums[l][0].item<double>() / tokens / static_cast<double>(config.dModel));
            const double ys = std::sqrt(sums[l][1].item<double>() / tokens);
            t.inputScale[static_cast<size_t>(l)] = std::max(xs, 1e-8);
            t.outputScale[static_cast<size_t>(l)] = std::max(ys, 1e-8);
            t.decoderBias[l].copy_((ySum[l] / tokens / t.outputScale[static_cast<size_t>(l)]).to(at::kFloat));
        }
    }
    auto toDevice = [&](at::Tensor& p) { p = p.to(device).detach().requires_grad_(true); };
    toDevice(t.encoder);
    toDevice(t.encoderBias);
    toDevice(t.decoderBias);
    if (t.logThreshold.defined())
        toDevice(t.logThreshold);
    if (t.skip.defined())
        toDevice(t.skip);
    for (auto& d : t.decoders)
        toDevice(d);

    auto params = t.parameters();
    train::AdamW optimizer(params, train::AdamW::Options { 0.9, 0.999, 1e-8, 0.0 });
    at::Tensor lastFired = at::zeros({ L, ownFeatures }, at::kLong); // step + 1 of the last firing
    // Everything a checkpoint holds of this rank, by name: the whole tensors, or with features
    // sharded, this rank's slices of them (a checkpoint is the same either way, so a run resumes
    // with any number of feature ranks).
    auto checkpointed = [&] {
        std::map<std::string, at::Tensor> all = optimizer.moments();
        for (const auto& [name, p] : params)
            all["param." + name] = p;
        all["last_fired"] = lastFired;
        return all;
    };
    if (saved) {
        at::NoGradGuard noGrad;
        for (auto& [name, local] : checkpointed()) {
            if (!saved->contains(name))
                throw Error(ckpt + " does not match this run (no \"" + name + "\"); use another --out or delete it");
            at::Tensor whole = saved->tensor(name);
            if (shardFeatures)
                whole = takeFeatures(name, whole, o.nFeatures, firstFeature, ownFeatures);
            if (whole.sizes() != local.sizes())
                throw Error(ckpt + " does not match this run (\"" + name + "\"); use another --out or delete it");
            local.copy_(whole);
        }
        optimizer.setSteps(std::stoll(meta("adam.steps")));
        result.resumedFrom = std::stoll(meta("step"));
        if (talk)
            std::fprintf(
                stderr, "resuming from %s at step %lld\n", ckpt.c_str(), static_cast<long long>(result.resumedFrom));
    }
    at::Tensor inScale = at::tensor(t.inputScale, at::kDouble).to(at::kFloat).view({ L, 1, 1 }).to(device);
    at::Tensor outScale = at::tensor(t.outputScale, at::kDouble).to(at::kFloat).view({ L, 1, 1 }).to(device);

    std::optional<FeatureExchange> exchange;
    if (shardFeatures) {
        exchange.emplace();
        exchange->sum = [group](const at::Tensor& share) {
            std::vector<at::Tensor> total { share.clone() };
            group->allReduce(total);
            return total[0];
        };
        exchange->concatenate = [group](const at::Tensor& own) {
            std::vector<at::Tensor> parts;
            for (auto& received : group->allGather({ own }))
                parts.push_back(received[0]);
            return at::cat(parts, -1);
        };
    }

    // Dead: no activation in the last deadWindow tokens (or since the start, if shorter).
    const int64_t deadWindowSteps = std::max<int64_t>(1, std::min<int64_t>(o.steps / 4, 1000000 / o.batchTokens));
    // Every rank's firings (data-parallel: each saw other tokens), and where every shard's source
    // stands: collectives, so every rank calls this; rank 0 keeps the result.
    auto reduceFired = [&] {
        if (!group || shardFeatures)
            return;
        std::vector<at::Tensor> fired { lastFired };
        group->allReduce(fired, distributed::ReduceOp::Max);
    };
    // This rank's tensors whole on rank 0 (feature-sharded: the ranks' slices joined), by name;
    // only rank 0's map is filled. A collective.
    auto wholeOnRankZero = [&](const std::map<std::string, at::Tensor>& mine) {
        std::map<std::string, at::Tensor> whole;
        if (!shardFeatures) {
            for (const auto& [name, tensor] : mine)
                if (rank == 0)
                    whole[name] = tensor.detach().cpu();
            return whole;
        }
        // One gather per dtype (the slices are alike in shape on every rank).
        for (const at::ScalarType type : { at::kFloat, at::kLong }) {
            std::vector<std::string> names;
            std::vector<at::Tensor> tensors;
            for (const auto& [name, tensor] : mine)
                if (tensor.scalar_type() == type && runsOverFeatures(name)) {
                    names.push_back(name);
                    tensors.push_back(tensor.detach());
                } else if (tensor.scalar_type() == type && rank == 0) {
                    whole[name] = tensor.detach().cpu(); // every rank holds it whole
                }
            const auto received = group->gather(tensors, 0);
            for (size_t i = 0; rank == 0 && i < names.size(); ++i) {
                std::vector<at::Tensor> slices;
                for (const auto& fromRank : received)
                    slices.push_back(fromRank[i].cpu());
                whole[names[i]] = joinFeatures(names[i], slices, ownFeatures);
            }
        }
        return whole;
    };
    auto saveCheckpoint = [&](int64_t step) {
        reduceFired();
        at::Tensor positions = at::zeros({ shards }, at::kLong);
        for (int64_t i = 0; readsData && i < localShards; ++i)
            positions[firstShard + i] = sources[static_cast<size_t>(i)]->position();
        if (group && !shardFeatures) {
            std::vector<at::Tensor> all { positions };
            group->allReduce(all);
        }
        const auto tensors = wholeOnRankZero(checkpointed());
        if (rank != 0)
            return;
        fs::create_directories(fs::path(ckpt).parent_path());
        io::SafetensorsWriter writer;
        for (const auto& [name, tensor] : tensors)
            writer.add(name, tensor);
        writer.setMetadata("adam.steps", std::to_string(optimizer.steps()));
        writer.setMetadata("step", std::to_string(step));
        writer.setMetadata("shards", std::to_string(shards));
        for (int64_t g = 0; g < shards; ++g)
            writer.setMetadata(positionKey(g), std::to_string(positions[g].item<int64_t>()));
        writer.setMetadata("shape", runShape);
        for (int64_t l = 0; l < L; ++l) {
            char buf[64];
            std::snprintf(buf, sizeof buf, "%.17g", t.inputScale[static_cast<size_t>(l)]);
            writer.setMetadata("input_scale." + std::to_string(l), buf);
            std::snprintf(buf, sizeof buf, "%.17g", t.outputScale[static_cast<size_t>(l)]);
            writer.setMetadata("output_scale." + std::to_string(l), buf);
        }
        writer.write(ckpt);
    };

    std::optional<train::ProgressBar> bar;
    if (talk)
        bar.emplace("train " + std::string(architectureName(config.architecture)), o.steps, result.resumedFrom);
    const auto start = std::chrono::steady_clock::now();
    std::vector<double> nmse(static_cast<size_t>(L), NAN), l0(static_cast<size_t>(L), NAN);
    auto smooth = [](double& acc, double v) { acc = std::isnan(acc) ? v : 0.98 * acc + 0.02 * v; };
    const int64_t warmup = static_cast<int64_t>(o.warmupFraction * static_cast<double>(o.steps));
    const double rampSteps = std::max(1.0, o.sparsityRamp * static_cast<double>(o.steps));
    double lossSmoothed = NAN;
    int64_t step = result.resumedFrom;
    for (; step < o.steps; ++step) {
        // A stop asked of any rank stops every rank at the same step.
        bool stop = cancel && cancel();
        if (group) {
            std::vector<at::Tensor> flag { at::full({ 1 }, stop ? 1 : 0, at::kLong) };
            group->allReduce(flag, distributed::ReduceOp::Max);
            stop = flag[0].item<int64_t>() > 0;
        }
        if (stop) {
            saveCheckpoint(step);
            throw Cancelled();
        }
        at::Tensor x, y;
        if (readsData) {
            std::vector<at::Tensor> xs, ys;
            for (auto& b : buffers) {
                auto [xPart, yPart] = b->batch(shardBatch);
                xs.push_back(xPart);
                ys.push_back(yPart);
            }
            x = at::cat(xs, 1).to(device);
            y = at::cat(ys, 1).to(device);
        }
        if (shardFeatures) { // every rank trains its features on rank 0's batch
            if (!readsData) {
                x = at::empty({ L, o.batchTokens, config.dModel }, at::TensorOptions(device).dtype(at::kFloat));
                y = at::empty_like(x);
            }
            std::vector<at::Tensor> batch { x, y };
            group->broadcast(batch, 0);
        }
        x = x / inScale;
        y = y / outScale;
        LossWeights w;
        w.lambdaSparsity = o.lambdaSparsity * std::min(1.0, static_cast<double>(step + 1) / rampSteps);
        w.sparsityC = o.sparsityC;
        w.lambdaPreact = o.lambdaPreact;
        w.bandwidth = o.bandwidth;
        LossTerms terms = transcoderLoss(t, x, y, w, exchange ? &*exchange : nullptr);
        optimizer.zeroGrad();
        terms.total.backward();
        at::Tensor fired = terms.acts.detach().gt(0); // [L, batch, F of this rank]
        at::Tensor perLayerL0 = fired.sum(2).to(at::kDouble).mean(1).cpu(); // [L]
        double value = terms.total.item<double>();
        if (shardFeatures) {
            // The ranks' shares of the sums over features: the gradient's squares (the parameters
            // every rank holds whole have one gradient, counted once), the sparsity and
            // pre-activation terms and L0.
            double whole = 0, own = 0;
            for (const auto& [name, p] : params)
                (runsOverFeatures(name) ? own : whole) += train::gradSquares(p);
            at::Tensor sums = at::zeros({ 3 + L }, at::kDouble);
            sums[0].fill_(own);
            sums[1].fill_(terms.sparsity.item<double>());
            sums[2].fill_(terms.preact.item<double>());
            sums.narrow(0, 3, L).copy_(perLayerL0);
            std::vector<at::Tensor> shared { sums };
            group->allReduce(shared);
            train::clipGradsTo(params, std::sqrt(sums[0].item<double>() + whole), 1.0);
            value = terms.mse.item<double>() + w.lambdaSparsity * sums[1].item<double>()
                + w.lambdaPreact * sums[2].item<double>();
            perLayerL0 = sums.narrow(0, 3, L).clone();
        } else {
            if (group) {
                // The mean of the ranks' gradients is the gradient of the global batch's loss (each
                // rank's loss is the mean over its equal share); a rank that diverged stops them all.
                std::vector<at::Tensor> grads;
                for (auto& [name, p] : params) {
                    if (!p.grad().defined()) // a parameter this batch did not reach
                        p.mutable_grad() = at::zeros_like(p);
                    grads.push_back(p.mutable_grad());
                }
                grads.push_back(at::full({ 1 }, std::isfinite(value) ? 0.0f : 1.0f, grads[0].options()));
                group->allReduce(grads);
                for (size_t i = 0; i + 1 < grads.size(); ++i)
                    grads[i].div_(static_cast<double>(nRanks));
                if (grads.back().item<float>() > 0)
                    value = NAN;
            }
            train::clipGradNorm(params, 1.0);
        }
        optimizer.step(train::warmupCosine(step, warmup, o.steps, o.lr, 0.1));

        if (!std::isfinite(value))
            throw Error("transcoder training diverged at step " + std::to_string(step));
        lastFired.masked_fill_(fired.any(1).cpu(), step + 1);
        for (int64_t l = 0; l < L; ++l) {
            smooth(nmse[static_cast<size_t>(l)], terms.nmse[static_cast<size_t>(l)]);
            smooth(l0[static_cast<size_t>(l)], perLayerL0[l].item<double>());
        }
        smooth(lossSmoothed, value);
        if (bar) {
            const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            const double tokens = static_cast<double>((step + 1 - result.resumedFrom) * o.batchTokens);
            double meanNmse = 0, meanL0 = 0;
            for (int64_t l = 0; l < L; ++l) {
                meanNmse += nmse[static_cast<size_t>(l)] / static_cast<double>(L);
                meanL0 += l0[static_cast<size_t>(l)] / static_cast<double>(L);
            }
            // Feature-sharded, rank 0's features stand for the dead fraction on the bar.
            const double dead = lastFired.lt(step + 1 - deadWindowSteps).to(at::kFloat).mean().item<double>()
                * (step >= deadWindowSteps);
            char stats[160];
            std::snprintf(stats, sizeof stats, "loss %.4f nmse %.3f L0 %.1f dead %.1f%% | %.1fk tok/s", lossSmoothed,
                meanNmse, meanL0, 100.0 * dead, tokens / std::max(secs, 1e-9) / 1000);
            bar->update(step + 1, stats);
        }
        if (o.checkpointEvery > 0 && (step + 1) % o.checkpointEvery == 0 && step + 1 < o.steps)
            saveCheckpoint(step + 1);
    }
    result.steps = step;
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    result.tokensPerSecond
        = static_cast<double>((step - result.resumedFrom) * o.batchTokens) / std::max(result.seconds, 1e-9);
    if (bar) {
        char stats[64];
        std::snprintf(stats, sizeof stats, "%.1fk tok/s", result.tokensPerSecond / 1000);
        bar->finish(stats);
    }
    if (group && !shardFeatures) { // the ranks' smoothed figures, averaged (feature-sharded: alike)
        std::vector<at::Tensor> figures { at::tensor(nmse, at::kDouble), at::tensor(l0, at::kDouble) };
        group->allReduce(figures);
        for (int64_t l = 0; l < L; ++l) {
            nmse[static_cast<size_t>(l)] = figures[0][l].item<double>() / static_cast<double>(nRanks);
            l0[static_cast<size_t>(l)] = figures[1][l].item<double>() / static_cast<double>(nRanks);
        }
    }
    reduceFired();
    result.nmse = nmse;
    result.l0 = l0;
    at::Tensor dead = lastFired.lt(step + 1 - std::min(deadWindowSteps, step)).to(at::kDouble).sum(1);
    if (shardFeatures) { // every rank's dead features
        std::vector<at::Tensor> counts { dead };
        group->allReduce(counts);
    }
    for (int64_t l = 0; l < L; ++l)
        result.deadFraction.push_back(dead[l].item<double>() / static_cast<double>(o.nFeatures));

    if (shardFeatures) { // the whole set, on rank 0
        const auto whole = wholeOnRankZero(params);
        if (rank == 0) {
            TrainableTranscoder all = t;
            all.config.nFeatures = o.nFeatures;
            all.setParameters(whole);
            result.set = all.toSet(o.device);
        }
    } else {
        result.set = t.toSet(o.device);
    }
    if (rank == 0) {
        result.set->save(o.outDir, o.storeDtype);
        removeTree(fs::path(ckpt).parent_path().string()); // the run is complete: its checkpoint is spent
    }
    if (group)
        group->barrier(); // the set is written when any rank returns
    return result;
}

} // namespace cs::transcoder
