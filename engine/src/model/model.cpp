// Loading a Hugging Face folder into a Model: config.json through the family plugin, every
// weight the plugin names checked for presence and shape, converted to float32 on the device.
#include "cs/model.h"
#include "cs/json_reader.h"

#include "cs/error.h"
#include "cs/plugin.h"
#include "cs/safetensors.h"
#include "io/atomic_file.h"
#include "model/weights.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <nlohmann/json.hpp>
#include <torch/version.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <optional>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <cstdlib>
#include <filesystem>
#include <set>
#include <sstream>
#include <thread>

namespace cs::model {

namespace fs = std::filesystem;

namespace {

std::string shapeText(at::IntArrayRef shape)
{
    std::ostringstream ss;
    ss << "[";
    for (size_t i = 0; i < shape.size(); ++i)
        ss << (i ? ", " : "") << shape[i];
    ss << "]";
    return ss.str();
}

// One canonical weight from the checkpoint: located, transformed as the plugin says, checked.
at::Tensor loadWeight(const io::Checkpoint& ckpt, const plugins::WeightSource& ws, const std::string& folder)
{
    std::string name = ws.source;
    if (!ckpt.contains(name))
        for (const auto& alt : ws.fallbacks)
            if (ckpt.contains(alt)) {
                name = alt;
                break;
            }
    if (!ckpt.contains(name))
        return {};
    const std::string where = "tensor \"" + name + "\" in " + folder;
    const io::DType stored = ckpt.info(name).dtype;
    if (!at::isFloatingType(io::toScalarType(stored)))
        throw Error(where + " is stored as " + io::dtypeName(stored)
            + ", but a weight must be a floating-point type (F32, F16, BF16 or F64)");
    at::Tensor t = ckpt.tensor(name);
    if (ws.transpose) {
        if (t.dim() != 2)
            throw Error(where + " has shape " + shapeText(t.sizes()) + ", expected a matrix");
        t = t.t();
    }
    if (ws.sliceDim >= 0) {
        if (ws.sliceDim >= t.dim() || t.size(ws.sliceDim) < ws.sliceStart + ws.sliceLen)
            throw Error(where + " has shape " + shapeText(t.sizes()) + ", too small to hold " + ws.canonical);
        t = t.narrow(ws.sliceDim, ws.sliceStart, ws.sliceLen);
    }
    if (t.sizes() != at::IntArrayRef(ws.shape))
        throw Error(where + " has shape " + shapeText(t.sizes()) + " but the config implies " + shapeText(ws.shape)
            + " (" + ws.canonical + ")");
    t = t.to(at::kFloat).contiguous();
    io::requireFinite(t, folder, name);
    return t;
}

// The first layer index a checkpoint tensor's name gives ("model.layers.7.mlp..." or gpt2's
// "h.7.attn..." gives 7); none for a tensor outside the layers.
std::optional<int64_t> layerOfTensor(const std::string& name)
{
    for (const char* stem : { "layers.", "h." }) {
        for (size_t at = name.find(stem); at != std::string::npos; at = name.find(stem, at + 1)) {
            if (at > 0 && name[at - 1] != '.')
                continue;
            size_t p = at + std::strlen(stem), digits = 0;
            int64_t layer = 0;
            while (p < name.size() && std::isdigit(static_cast<unsigned char>(name[p])) && digits < 9) {
                layer = layer * 10 + (name[p++] - '0');
                ++digits;
            }
            if (digits > 0 && p < name.size() && name[p] == '.')
                return layer;
        }
    }
    return std::nullopt;
}

// A config that claims fewer layers than the checkpoint holds would run a truncated model.
void requireAllLayersUsed(const io::Checkpoint& ckpt, const ModelConfig& c, const std::string& folder)
{
    int64_t stored = 0;
    for (const auto& name : ckpt.names())
        if (const auto layer = layerOfTensor(name))
            stored = std::max(stored, *layer + 1);
    if (stored > c.nLayers)
        throw Error(folder + "/config.json: the config gives " + std::to_string(c.nLayers) + " layer"
            + (c.nLayers == 1 ? "" : "s") + " (num_hidden_layers or n_layer) but the checkpoint holds "
            + std::to_string(stored) + "; a model cut short is refused");
}

} // namespace

at::Tensor ropeInverseFrequencies(const ModelConfig& c)
{
    const int64_t half = c.dHead / 2;
    std::vector<float> inv(static_cast<size_t>(half));
    for (int64_t i = 0; i < half; ++i) {
        // transformers: 1 / base^(arange(0, dim, 2) / dim), computed in float32.
        const float exponent = static_cast<float>(2 * i) / static_cast<float>(c.dHead);
        double f = 1.0 / std::pow(static_cast<double>(static_cast<float>(c.ropeTheta)), static_cast<double>(exponent));
        const auto& rs = c.ropeScaling;
        if (rs.type == "linear") {
            f /= rs.factor;
        } else if (rs.type == "llama3") {
            const double lowFreqWavelen = rs.originalMaxPositions / rs.lowFreqFactor;
            const double highFreqWavelen = rs.originalMaxPositions / rs.highFreqFactor;
            const double wavelen = 2.0 * M_PI / f;
            if (wavelen > lowFreqWavelen) {
                f /= rs.factor;
            } else if (wavelen >= highFreqWavelen) {
                // Between the two wavelengths the frequency moves smoothly from scaled to unscaled.
                const double smooth
                    = (rs.originalMaxPositions / wavelen - rs.lowFreqFactor) / (rs.highFreqFactor - rs.lowFreqFactor);
                f = (1.0 - smooth) * f / rs.factor + smooth * f;
            }
        }
        inv[static_cast<size_t>(i)] = static_cast<float>(f);
    }
    return at::tensor(inv, at::kFloat);
}

c10::Device resolveDevice(const std::string& name)
{
    if (name == "cpu")
        return c10::Device(c10::DeviceType::CPU);
    if (name == "auto" || name.empty())
        return at::hasCUDA() ? c10::Device(c10::DeviceType::CUDA, 0) : c10::Device(c10::DeviceType::CPU);
    if (name.rfind("cuda", 0) == 0) {
        std::optional<c10::Device> device;
        try {
            device = c10::Device(name);
        } catch (const std::exception&) {
            throw Error("invalid device \"" + name + "\" (use cpu, cuda, cuda:N or auto)");
        }
        if (!at::detail::getCUDAHooks().isBuilt())
            throw Error("device \"" + name
                + "\" was asked for, but this LibTorch (" TORCH_VERSION
                  ") is built without CUDA; use --device cpu or auto, or build against a CUDA LibTorch");
        if (!at::hasCUDA())
            throw Error("device \"" + name
                + "\" was asked for, but no CUDA GPU is available here (LibTorch " TORCH_VERSION
                  " is built with CUDA, but finds no GPU or no working NVIDIA driver); "
                  "use --device cpu or auto");
        const int64_t count = at::detail::getCUDAHooks().deviceCount();
        if (device->has_index() && device->index() >= count)
            throw Error("device \"" + name + "\" does not exist: this machine has " + std::to_string(count)
                + " CUDA device" + (count == 1 ? "" : "s") + " (cuda:0"
                + (count > 1 ? " to cuda:" + std::to_string(count - 1) : "") + ")");
        return device->has_index() ? *device : c10::Device(c10::DeviceType::CUDA, 0);
    }
    throw Error("invalid device \"" + name + "\" (use cpu, cuda, cuda:N or auto)");
}

namespace {

// Keeps freed host memory in the heap instead of returning it to the kernel at once. LibTorch's
// CPU allocator hands every tensor back to malloc when it dies, and glibc trims the heap's top
// (and maps blocks above its threshold afresh) as soon as they are freed, so each batch of rows
// of a trace page-faults and zero-fills the same few megabytes again: 27% of a 64-token trace
// went to the kernel that way. Measured on that trace (scripts/peer-bench's model, every feature,
// 2 cores): 2,470 ms and 900 MB peak before, 2,000 ms and 833 MB peak after. A user's own
// MALLOC_* or GLIBC_TUNABLES settings win: nothing is changed when one is set.
void keepFreedHostMemory()
{
#if defined(__GLIBC__)
    for (const char* name : { "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES" })
        if (std::getenv(name))
            return;
    mallopt(M_MMAP_THRESHOLD, 32 << 20); // glibc's largest: blocks below 32 MiB come from the heap
    mallopt(M_TRIM_THRESHOLD, 256 << 20); // give the top back only once 256 MiB sit free there
    mallopt(M_TOP_PAD, 16 << 20);
#endif
}

} // namespace

void initThreads()
{
    static bool done = false;
    if (done)
        return;
    done = true;
    keepFreedHostMemory();
    int n = static_cast<int>(std::thread::hardware_concurrency());
    if (const char* env = std::getenv("CS_THREADS"))
        n = std::atoi(env);
    if (n > 0)
        at::set_num_threads(n);
}

namespace {

// A folder's config.json and the family plugin that reads it.
std::pair<std::shared_ptr<const plugins::FamilyPlugin>, nlohmann::json> readConfig(const std::string& folder)
{
    std::error_code ec;
    if (!fs::is_directory(folder, ec))
        throw Error("model folder " + folder + " does not exist");
    const fs::path configPath = fs::path(folder) / "config.json";
    if (!fs::exists(configPath, ec))
        throw Error("no config.json in " + folder
            + " (a Hugging Face model folder has config.json, "
              "model.safetensors and tokenizer.json)");
    nlohmann::json configJson;
    try {
        configJson = parseJson(io::readFile(configPath.string(), kMaxConfigFileBytes), configPath.string());
    } catch (const nlohmann::json::exception& e) {
        throw Error(configPath.string() + " is not valid JSON: " + e.what());
    }
    if (!configJson.is_object())
        throw Error(configPath.string() + " is not a JSON object");
    if (!configJson.contains("model_type") || !configJson["model_type"].is_string())
        throw Error(configPath.string() + " has no \"model_type\", so the model family is unknown");
    return { plugins::pluginForModelType(configJson["model_type"].get<std::string>()), std::move(configJson) };
}

} // namespace

ModelConfig Model::loadConfig(const std::string& folder)
{
    auto [plugin, configJson] = readConfig(folder);
    return plugin->parseConfig(configJson);
}

std::shared_ptr<const Model> Model::load(const std::string& folder, const LoadOptions& options)
{
    initThreads();
    auto [plugin, configJson] = readConfig(folder);
    std::error_code ec;

    auto model = std::shared_ptr<Model>(new Model());
    model->m_folder = folder;
    model->m_config = plugin->parseConfig(configJson);
    model->m_device = resolveDevice(options.device);
    const ModelConfig& c = model->m_config;

    const io::Checkpoint ckpt = io::Checkpoint::open(folder);
    model->m_storedDType = ckpt.dominantDType();
    requireAllLayersUsed(ckpt, c, folder);

    std::map<std::string, at::Tensor> byName;
    std::map<std::string, at::Tensor> loadedBySource; // tied weights are loaded once
    for (const auto& ws : plugin->weightSources(c)) {
        const std::string key = ws.source + (ws.transpose ? "^T" : "") + "#" + std::to_string(ws.sliceDim) + ":"
            + std::to_string(ws.sliceStart);
        at::Tensor t;
        if (auto it = loadedBySource.find(key); it != loadedBySource.end())
            t = it->second;
        else
            t = loadWeight(ckpt, ws, folder);
        if (!t.defined()) {
            if (ws.optional)
                continue;
            throw Error("the checkpoint in " + folder + " is missing tensor \"" + ws.source + "\" (needed for "
                + ws.canonical + ")");
        }
        loadedBySource[key] = t;
        byName[ws.canonical] = t;
    }
    model->m_weights = assembleWeights(c, std::move(byName), model->m_device);

    if (fs::exists(fs::path(folder) / "tokenizer.json", ec)) {
        model->m_tokenizer = std::make_shared<const Tokenizer>(Tokenizer::fromFolder(folder));
        // An id past the embedding matrix would fail only in the first forward, blamed on it.
        if (model->m_tokenizer->vocabSize() > c.vocabSize)
            throw Error((fs::path(folder) / "tokenizer.json").string() + ": its largest token id is "
                + std::to_string(model->m_tokenizer->vocabSize() - 1) + ", but the model's vocabulary (vocab_size in "
                + "config.json) has " + std::to_string(c.vocabSize) + " ids (0 to " + std::to_string(c.vocabSize - 1)
                + ")");
    } else if (options.requireTokenizer)
        throw Error("no tokenizer.json in " + folder);
    return model;
}

std::shared_ptr<const Model::Weights> Model::assembleWeights(
    const ModelConfig& c, std::map<std::string, at::Tensor> byName, c10::Device device)
{
    auto weights = std::make_shared<Weights>();
    weights->byName = std::move(byName);
    std::map<const void*, at::Tensor> moved; // tied weights stay one tensor on the device
    if (device.is_cuda()) {
        std::map<const void*, int64_t> bytes;
        for (const auto& [name, t] : weights->byName)
            bytes[t.unsafeGetTensorImpl()] = static_cast<int64_t>(t.nbytes());
        int64_t total = 0;
        for (const auto& [impl, b] : bytes)
            total += b;
        checkFitsOnDevice(device, total, "the model's weights (float32)");
    }
    try {
        for (auto& [name, t] : weights->byName) {
            auto& m = moved[t.unsafeGetTensorImpl()];
            if (!m.defined())
                m = t.to(device);
            t = m;
        }
    } catch (const c10::OutOfMemoryError& e) {
        throw Error("the model's weights do not fit on " + device.str() + ": " + errorText(e));
    }

    auto get = [&](const std::string& name) {
        auto it = weights->byName.find(name);
        return it == weights->byName.end() ? at::Tensor() : it->second;
    };
    weights->embed = get("embed.weight");
    weights->posEmbed = get("pos_embed.weight");
    weights->finalNormW = get("final_norm.weight");
    weights->finalNormB = get("final_norm.bias");
    weights->unembed = get("unembed.weight");
    if (c.positionKind == PositionKind::Rope)
        weights->ropeInvFreq = ropeInverseFrequencies(c).to(device);
    for (int64_t i = 0; i < c.nLayers; ++i) {
        auto L = [&](const std::string& rest) { return get("layers." + std::to_string(i) + "." + rest); };
        Weights::Layer layer;
        layer.attnNormW = L("attn_norm.weight");
        layer.attnNormB = L("attn_norm.bias");
        layer.q = L("attn.q.weight");
        layer.qBias = L("attn.q.bias");
        layer.k = L("attn.k.weight");
        layer.kBias = L("attn.k.bias");
        layer.v = L("attn.v.weight");
        layer.vBias = L("attn.v.bias");
        layer.o = L("attn.o.weight");
        layer.oBias = L("attn.o.bias");
        layer.qNorm = L("attn.q_norm.weight");
        layer.kNorm = L("attn.k_norm.weight");
        layer.attnPostNorm = L("attn_post_norm.weight");
        layer.mlpNormW = L("mlp_norm.weight");
        layer.mlpNormB = L("mlp_norm.bias");
        layer.gate = L("mlp.gate.weight");
        layer.up = L("mlp.up.weight");
        layer.upBias = L("mlp.up.bias");
        layer.down = L("mlp.down.weight");
        layer.downBias = L("mlp.down.bias");
        layer.mlpPostNorm = L("mlp_post_norm.weight");
        weights->layers.push_back(std::move(layer));
    }
    return weights;
}

std::shared_ptr<const Model> Model::fromWeights(const ModelConfig& config, std::map<std::string, at::Tensor> weights,
    std::shared_ptr<const Tokenizer> tokenizer, const std::string& device)
{
    auto model = std::shared_ptr<Model>(new Model());
    model->m_config = config;
    model->m_device = resolveDevice(device);
    model->m_storedDType = "F32";
    model->m_tokenizer = std::move(tokenizer);
    auto plugin = plugins::pluginForModelType(config.modelType);
    for (const auto& ws : plugin->weightSources(config)) {
        auto it = weights.find(ws.canonical);
        if (it == weights.end()) {
            if (ws.optional)
                continue;
            throw Error("fromWeights: missing weight \"" + ws.canonical + "\"");
        }
        if (it->second.sizes() != at::IntArrayRef(ws.shape))
            throw Error("fromWeights: \"" + ws.canonical + "\" has shape " + shapeText(it->second.sizes())
                + ", expected " + shapeText(ws.shape));
    }
    model->m_weights = assembleWeights(config, std::move(weights), model->m_device);
    return model;
}

const Tokenizer& Model::tokenizer() const
{
    if (!m_tokenizer)
        throw Error("the model in " + m_folder + " has no tokenizer.json; give token ids instead of text");
    return *m_tokenizer;
}

const at::Tensor& Model::weight(const std::string& canonical) const
{
    auto it = m_weights->byName.find(canonical);
    if (it == m_weights->byName.end())
        throw Error("the model has no weight \"" + canonical + "\"");
    return it->second;
}

bool Model::hasWeight(const std::string& canonical) const
{
    return m_weights->byName.count(canonical) > 0;
}

const std::map<std::string, at::Tensor>& Model::weights() const
{
    return m_weights->byName;
}

void saveModelFolder(
    const Model& model, const std::string& folder, const std::string& storeDtype, const std::string& tokenizerJson)
{
    const ModelConfig& c = model.config();
    auto plugin = plugins::pluginForModelType(c.modelType);
    const c10::ScalarType type = io::toScalarType(io::dtypeFromName(storeDtype));
    if (type != at::kFloat && type != at::kHalf && type != at::kBFloat16)
        throw Error("models are stored as F32, F16 or BF16, not " + storeDtype);
    std::error_code ec;
    fs::create_directories(folder, ec);
    if (ec)
        throw Error("cannot create " + folder + ": " + ec.message());

    io::SafetensorsWriter writer;
    std::set<std::string> written;
    for (const auto& ws : plugin->weightSources(c)) {
        if (ws.transpose || ws.sliceDim >= 0)
            throw Error("saving " + c.family + " checkpoints is not supported (its weights are stored fused)");
        if (!model.hasWeight(ws.canonical) || !written.insert(ws.source).second)
            continue;
        writer.add(ws.source, model.weight(ws.canonical).detach().to(at::kCPU).to(type));
    }
    writer.setMetadata("format", "pt");
    nlohmann::json config = plugin->configJson(c);
    config["torch_dtype"] = type == at::kFloat ? "float32" : type == at::kHalf ? "float16" : "bfloat16";
    writer.write((fs::path(folder) / "model.safetensors").string());
    io::writeFileAtomically((fs::path(folder) / "config.json").string(), config.dump(2) + "\n");
    if (!tokenizerJson.empty())
        io::writeFileAtomically((fs::path(folder) / "tokenizer.json").string(), tokenizerJson);
}

} // namespace cs::model
