// Transcoder sets on disk, in circuit-tracer's formats (circuit_tracer/transcoder/*.py and
// utils/hf_utils.py describe them; this is our own reading of those formats):
//
//   config.yaml       model_kind (transcoder_set | cross_layer_transcoder), feature_input_hook,
//                     feature_output_hook, optional activation (jump_relu | relu | topk), k,
//                     model_name, scan, transcoders (PLT: per-layer files, relative paths)
//   PLT layer_{i}.safetensors   W_enc [F, d], W_dec [F, d], b_enc [F], b_dec [d],
//                               activation_function.threshold [F], W_skip [d, d] (x @ W_skip^T),
//                               k (a scalar, TopK)
//   CLT W_enc_{i}.safetensors   W_enc_{i} [F, d], b_enc_{i} [F], b_dec_{i} [d], threshold_{i} [F],
//                               and ours only: W_skip_{i} [d, d] applied as x @ W_skip_{i}
//       W_dec_{i}.safetensors   W_dec_{i} [F, L - i, d]
//
// Every shape is checked from the file headers before any data is read, and every message
// names the file, the tensor, the shape it has and the shape it should have.

#include "cs/error.h"
#include "cs/safetensors.h"
#include "cs/transcoder.h"
#include "io/atomic_file.h"
#include "transcoder/yaml.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <tuple>

namespace cs::transcoder {

namespace fs = std::filesystem;

// The decoders of a set loaded with lazyDecoders: still in their mapped files until used.
struct TranscoderSet::Lazy {
    struct Source {
        std::shared_ptr<const io::SafetensorsFile> file;
        std::string tensor; // "W_dec" (PLT, [F, d]) or "W_dec_{i}" (CLT, [F, L - i, d])
    };
    std::vector<Source> sources; // per source layer
    std::vector<at::Tensor> cache; // decoders materialized by decoder(); under m_decoderMutex

    // The stored decoder, zero-copy over the mapping: [F, n_targets, d] in the file's dtype.
    at::Tensor mapped(int64_t layer) const
    {
        const Source& s = sources.at(static_cast<size_t>(layer));
        at::Tensor t = s.file->tensor(s.tensor);
        return t.dim() == 2 ? t.unsqueeze(1) : t;
    }
};

namespace {

constexpr const char* kConfigFile = "config.yaml";
// The most layers a set may have (as a model's config.json may, plugins' validate()).
constexpr int64_t kMaxLayers = 4096;
constexpr const char* kPerLayerKind = "transcoder_set";
constexpr const char* kCrossLayerKind = "cross_layer_transcoder";

std::string shapeText(const std::vector<int64_t>& shape)
{
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i)
        s += (i ? ", " : "") + std::to_string(shape[i]);
    return s + "]";
}

bool isFloatType(io::DType dtype)
{
    return dtype == io::DType::F32 || dtype == io::DType::F16 || dtype == io::DType::BF16 || dtype == io::DType::F64;
}

// One safetensors file of a set, with the checks every read makes.
class SetFile {
public:
    explicit SetFile(const fs::path& path)
        : m_file(io::SafetensorsFile::open(path.string()))
    {
    }

    const std::shared_ptr<const io::SafetensorsFile>& file() const { return m_file; }
    const std::string& path() const { return m_file->path(); }
    bool has(const std::string& name) const { return m_file->contains(name); }

    const io::TensorInfo& info(const std::string& name) const
    {
        const io::TensorInfo* info = m_file->find(name);
        if (!info)
            throw Error(path() + " has no tensor \"" + name + "\"");
        return *info;
    }

    // Checks a tensor's header: a float dtype and the shape (dims names the dimensions).
    const io::TensorInfo& expect(
        const std::string& name, const std::vector<int64_t>& shape, const std::string& dims) const
    {
        const io::TensorInfo& i = info(name);
        if (!isFloatType(i.dtype))
            throw Error(path() + ": tensor \"" + name + "\" is stored as " + io::dtypeName(i.dtype)
                + ", expected a floating-point type (F32, F16, BF16 or F64)");
        if (i.shape != shape)
            throw Error(path() + ": tensor \"" + name + "\" has shape " + shapeText(i.shape) + ", expected "
                + shapeText(shape) + " " + dims);
        return i;
    }

    // A checked tensor, float32 on device.
    at::Tensor read(
        const std::string& name, const std::vector<int64_t>& shape, const std::string& dims, c10::Device device) const
    {
        expect(name, shape, dims);
        at::Tensor t = m_file->tensor(name);
        io::requireFinite(t, path(), name); // a corrupt file's NaN would show only in a trace's graph
        try {
            return t.to(device, at::kFloat).contiguous();
        } catch (const c10::Error& e) {
            throw Error(path() + ": tensor \"" + name + "\" " + shapeText(shape)
                + " does not fit in memory as float32 (" + std::to_string(t.numel() * 4)
                + " bytes): " + e.what_without_backtrace());
        }
    }

    // A threshold [F]; circuit-tracer's JumpReLU also keeps it as [1, F].
    void expectThreshold(const std::string& name, int64_t nFeatures) const
    {
        if (info(name).shape == std::vector<int64_t> { 1, nFeatures })
            expect(name, { 1, nFeatures }, "[1, n_features]");
        else
            expect(name, { nFeatures }, "[n_features]");
    }
    at::Tensor readThreshold(const std::string& name, int64_t nFeatures, c10::Device device) const
    {
        if (info(name).shape == std::vector<int64_t> { 1, nFeatures })
            return read(name, { 1, nFeatures }, "[1, n_features]", device).reshape({ nFeatures });
        return read(name, { nFeatures }, "[n_features]", device);
    }

    // The dimensions [F, d] of an encoder, which fix those of everything else.
    std::pair<int64_t, int64_t> encoderDims(const std::string& name) const
    {
        const io::TensorInfo& i = info(name);
        if (i.shape.size() != 2 || i.shape[0] <= 0 || i.shape[1] <= 0)
            throw Error(path() + ": tensor \"" + name + "\" has shape " + shapeText(i.shape)
                + ", expected [n_features, d_model]");
        return { i.shape[0], i.shape[1] };
    }

private:
    std::shared_ptr<const io::SafetensorsFile> m_file;
};

// The i of every file PREFIX{i}.safetensors in dir, checked to be 0..n-1; returns n.
int64_t countNumberedFiles(const fs::path& dir, const std::string& prefix, const std::string& kind)
{
    const std::string suffix = ".safetensors";
    std::set<int64_t> found;
    for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0
            || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
            continue;
        const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
        if (digits.size() > 9 || digits.find_first_not_of("0123456789") != std::string::npos
            || (digits.size() > 1 && digits[0] == '0'))
            continue;
        found.insert(std::stoll(digits));
    }
    if (found.empty())
        throw Error(dir.string() + " has no " + prefix + "0.safetensors (model_kind " + kind + " keeps layer i in "
            + prefix + "{i}.safetensors)");
    const int64_t last = *found.rbegin();
    for (int64_t i = 0; i <= last; ++i)
        if (!found.count(i))
            throw Error(dir.string() + ": " + prefix + std::to_string(i) + ".safetensors is missing but " + prefix
                + std::to_string(last) + ".safetensors exists; layers must be numbered 0.." + std::to_string(last)
                + " without gaps");
    return last + 1;
}

// Removes PREFIX{i}.safetensors for i >= n: layers of an earlier, larger set saved here, which
// a loader counting the files would take for layers of this one.
void removeStaleFiles(const fs::path& dir, const std::string& prefix, int64_t n)
{
    const std::string suffix = ".safetensors";
    std::vector<fs::path> stale;
    for (const auto& entry : fs::directory_iterator(dir)) {
        const std::string name = entry.path().filename().string();
        if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0
            || name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
            continue;
        const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
        if (digits.size() <= 9 && digits.find_first_not_of("0123456789") == std::string::npos
            && std::stoll(digits) >= n)
            stale.push_back(entry.path());
    }
    for (const auto& p : stale) {
        std::error_code ec;
        fs::remove(p, ec);
        if (ec)
            throw Error("cannot remove " + p.string() + " (a layer of an earlier set): " + ec.message());
    }
}

// A `transcoders:` entry as a path inside dir: relative, not escaping it, a local file.
fs::path listedLayerFile(const fs::path& dir, const yaml::Scalar& item, int64_t layer, const yaml::Document& doc)
{
    const std::string where = doc.where(item.line) + "transcoders[" + std::to_string(layer) + "] \"" + item.text + "\"";
    if (yaml::isNull(item))
        throw Error(doc.where(item.line) + "transcoders[" + std::to_string(layer) + "] is empty");
    if (item.text.rfind("hf://", 0) == 0)
        throw Error(where
            + " is a Hugging Face URI; Circuitscope does not download. Download the files first (e.g. with "
              "huggingface-cli download) and list them as paths relative to the folder");
    const fs::path p(item.text);
    if (p.is_absolute())
        throw Error(where + " is an absolute path; list layer files relative to the folder, inside it");
    const fs::path normal = p.lexically_normal();
    if (normal.empty() || *normal.begin() == ".." || normal == ".")
        throw Error(where + " points outside the folder; layer files must be inside it");
    if (normal.extension() == ".npz")
        throw Error(where
            + " is an .npz file (GemmaScope's original format), which is not supported; convert it to "
              "circuit-tracer's safetensors layout");
    const fs::path full = dir / normal;
    if (!fs::is_regular_file(full))
        throw Error(where + ": " + full.string() + " does not exist");
    return full;
}

// What config.yaml says.
struct ConfigYaml {
    TranscoderConfig config;
    std::optional<Activation> activation; // when the file names one
    std::optional<int64_t> k;
    std::vector<fs::path> layerFiles; // PLT `transcoders:`, in layer order; empty: layer_{i}
    int kLine = 0;
};

model::Hook readHook(const yaml::Document& doc, const std::string& key, std::string& name)
{
    const yaml::Value* v = doc.find(key);
    if (!doc.has(key))
        throw Error(doc.where(v ? v->line : 0) + key
            + " is missing (where the features read and write, e.g. hook_resid_mid or mlp.hook_in, and "
              "hook_mlp_out)");
    name = doc.string(key);
    try {
        return hookFromConfigName(name);
    } catch (const Error& e) {
        throw Error(doc.where(v->line) + key + ": " + e.what());
    }
}

ConfigYaml readConfigYaml(const fs::path& dir, const yaml::Document& doc, int64_t modelLayers)
{
    ConfigYaml out;
    TranscoderConfig& c = out.config;

    const yaml::Value* kind = doc.find("model_kind");
    const std::string kindName = doc.string("model_kind");
    if (kindName == kPerLayerKind)
        c.architecture = Architecture::PerLayer;
    else if (kindName == kCrossLayerKind)
        c.architecture = Architecture::CrossLayer;
    else if (kindName.empty() && doc.has("transcoders"))
        c.architecture = Architecture::PerLayer; // circuit-tracer's own configs list per-layer files, no kind
    else if (kindName.empty())
        throw Error(doc.where(kind ? kind->line : 0) + "model_kind is missing (" + kPerLayerKind + " or "
            + kCrossLayerKind + ")");
    else
        throw Error(doc.where(kind->line) + "unknown model_kind \"" + kindName + "\" (expected " + kPerLayerKind
            + " or " + kCrossLayerKind + ")");

    c.inputHook = readHook(doc, "feature_input_hook", c.inputHookName);
    c.outputHook = readHook(doc, "feature_output_hook", c.outputHookName);
    if (!readsMlpInput(c.inputHook))
        throw Error(doc.where(doc.find("feature_input_hook")->line) + "feature_input_hook \"" + c.inputHookName
            + "\" is not supported: features read resid_mid or the normalized MLP input (ln2.hook_normalized "
              "before the norm's weight, mlp.hook_in after it)");
    if (c.outputHook != model::Hook::MlpOut)
        throw Error(doc.where(doc.find("feature_output_hook")->line) + "feature_output_hook \"" + c.outputHookName
            + "\" is not supported: features write mlp_out");

    if (doc.has("activation")) {
        const std::string a = doc.string("activation");
        if (a == "jump_relu" || a == "jumprelu")
            out.activation = Activation::JumpReLU;
        else if (a == "relu")
            out.activation = Activation::ReLU;
        else if (a == "topk")
            out.activation = Activation::TopK;
        else
            throw Error(doc.where(doc.find("activation")->line) + "unknown activation \"" + a
                + "\" (expected jump_relu, relu or topk)");
    }
    if (doc.has("k")) {
        out.kLine = doc.find("k")->line;
        out.k = doc.integer("k", 0);
        if (*out.k <= 0)
            throw Error(doc.where(out.kLine) + "k must be positive, got " + std::to_string(*out.k));
    }

    c.modelName = doc.string("model_name");
    // circuit-tracer's own cache writes scan_name (a string, or a list we do not use).
    c.scan = doc.string("scan");
    if (c.scan.empty() && doc.has("scan_name") && !doc.find("scan_name")->isList)
        c.scan = doc.string("scan_name");
    if (c.scan.empty()) {
        fs::path abs = fs::absolute(dir).lexically_normal();
        if (abs.filename().empty())
            abs = abs.parent_path();
        c.scan = abs.filename().string();
    }

    if (doc.has("transcoders")) {
        if (c.architecture == Architecture::CrossLayer)
            throw Error(doc.where(doc.find("transcoders")->line)
                + "a transcoders: list with model_kind cross_layer_transcoder (GemmaScope 2's layout) is not "
                  "supported; a CLT folder holds W_enc_{i} and W_dec_{i}.safetensors");
        // Paths in layer order, or circuit-tracer's {id, layer, filepath} items in any order.
        const std::vector<yaml::Item> items = doc.items("transcoders");
        // Refused before any file is read: each entry is a layer's file to open and check.
        const int64_t maxLayers = modelLayers > 0 ? modelLayers : kMaxLayers;
        if (static_cast<int64_t>(items.size()) > maxLayers)
            throw Error(doc.where(doc.find("transcoders")->line) + "the transcoders: list has "
                + std::to_string(items.size()) + " entries, more than the "
                + (modelLayers > 0 ? "model's " + std::to_string(modelLayers) + " layers"
                                   : std::to_string(kMaxLayers) + " layers a model may have"));
        std::vector<const yaml::Scalar*> byLayer(items.size(), nullptr);
        for (size_t i = 0; i < items.size(); ++i) {
            const yaml::Item& item = items[i];
            if (!item.isMap) {
                byLayer[i] = &item.scalar;
                continue;
            }
            const std::string at = doc.where(item.line) + "transcoders[" + std::to_string(i) + "]";
            const yaml::Scalar* path = item.field("filepath");
            const yaml::Scalar* layer = item.field("layer");
            if (!path || !layer)
                throw Error(at + " needs layer and filepath (as circuit-tracer's configs give them)");
            int64_t l = -1;
            if (!layer->quoted && !layer->text.empty()
                && layer->text.find_first_not_of("0123456789") == std::string::npos && layer->text.size() < 10)
                l = std::stoll(layer->text);
            if (l < 0 || l >= static_cast<int64_t>(items.size()))
                throw Error(at + " layer \"" + layer->text + "\" is not a layer of the " + std::to_string(items.size())
                    + " listed (0 to " + std::to_string(items.size() - 1) + ")");
            if (byLayer[static_cast<size_t>(l)])
                throw Error(at + " layer " + layer->text + " is listed twice");
            byLayer[static_cast<size_t>(l)] = path;
        }
        if (modelLayers > 0 && static_cast<int64_t>(items.size()) < modelLayers)
            throw Error(doc.where(doc.find("transcoders")->line) + "the transcoders: list has "
                + std::to_string(items.size()) + " entr" + (items.size() == 1 ? "y" : "ies")
                + ", fewer than the model's " + std::to_string(modelLayers)
                + " layers (a per-layer set has one file for each)");
        std::map<fs::path, size_t> layerOf; // each file (links resolved) -> the layer listing it first
        for (size_t i = 0; i < byLayer.size(); ++i) {
            if (!byLayer[i])
                throw Error(doc.where(doc.find("transcoders")->line) + "transcoders has no entry for layer "
                    + std::to_string(i));
            out.layerFiles.push_back(listedLayerFile(dir, *byLayer[i], static_cast<int64_t>(i), doc));
            // One layer's weights read for another would run silently: each layer has a file of its own.
            const auto [it, first] = layerOf.emplace(fs::canonical(out.layerFiles.back()), i);
            if (!first)
                throw Error(doc.where(byLayer[i]->line) + "transcoders[" + std::to_string(i) + "] \"" + byLayer[i]->text
                    + "\" is the file of layer " + std::to_string(it->second) + " too (\"" + byLayer[it->second]->text
                    + "\"); each layer needs a file of its own");
        }
    }
    return out;
}

// The activation: config.yaml's, else JumpReLU when layer 0 has thresholds (as circuit-tracer
// decides), else ReLU.
void settleActivation(ConfigYaml& cy, bool hasThreshold)
{
    cy.config.activation = cy.activation ? *cy.activation : (hasThreshold ? Activation::JumpReLU : Activation::ReLU);
}

void checkSameSkip(const SetFile& f, const std::string& name, bool skip, const std::string& firstFile)
{
    if (f.has(name) != skip)
        throw Error(f.path() + (skip ? " has no tensor \"" + name + "\" but " : " has a tensor \"" + name + "\" but ")
            + firstFile + (skip ? " has one" : " has none") + ": the skip connection must be in every layer or none");
}

struct Loaded {
    std::vector<LayerWeights> layers;
    std::shared_ptr<TranscoderSet::Lazy> lazy;
};

Loaded loadPerLayer(const fs::path& dir, ConfigYaml& cy, c10::Device device, bool lazyDecoders)
{
    TranscoderConfig& c = cy.config;
    std::vector<fs::path> files = cy.layerFiles;
    if (files.empty()) {
        const int64_t n = countNumberedFiles(dir, "layer_", kPerLayerKind);
        for (int64_t i = 0; i < n; ++i)
            files.push_back(dir / ("layer_" + std::to_string(i) + ".safetensors"));
    }
    c.nLayers = static_cast<int64_t>(files.size());

    // Every layer's header first: a shape that disagrees with layer 0's (a huge n_features
    // among them) is refused before any tensor is read or converted.
    std::vector<SetFile> opened;
    for (const fs::path& file : files)
        opened.emplace_back(file);
    std::tie(c.nFeatures, c.dModel) = opened[0].encoderDims("W_enc");
    c.skip = opened[0].has("W_skip");
    settleActivation(cy, opened[0].has("activation_function.threshold"));
    const std::string firstFile = opened[0].path();
    for (const SetFile& f : opened) {
        const int64_t nf = c.nFeatures, d = c.dModel;
        f.expect("W_enc", { nf, d }, "[n_features, d_model]");
        f.expect("b_enc", { nf }, "[n_features]");
        f.expect("b_dec", { d }, "[d_model]");
        if (c.activation == Activation::JumpReLU)
            f.expectThreshold("activation_function.threshold", nf);
        checkSameSkip(f, "W_skip", c.skip, firstFile);
        if (c.skip)
            f.expect("W_skip", { d, d }, "[d_model, d_model]");
        f.expect("W_dec", { nf, d }, "[n_features, d_model]");
    }

    Loaded out;
    if (lazyDecoders)
        out.lazy = std::make_shared<TranscoderSet::Lazy>();
    for (int64_t l = 0; l < c.nLayers; ++l) {
        const SetFile& f = opened[static_cast<size_t>(l)];
        const int64_t nf = c.nFeatures, d = c.dModel;
        LayerWeights w;
        w.encoder = f.read("W_enc", { nf, d }, "[n_features, d_model]", device);
        w.encoderBias = f.read("b_enc", { nf }, "[n_features]", device);
        w.decoderBias = f.read("b_dec", { d }, "[d_model]", device);
        if (c.activation == Activation::JumpReLU)
            w.threshold = f.readThreshold("activation_function.threshold", nf, device);
        if (c.skip)
            w.skip = f.read("W_skip", { d, d }, "[d_model, d_model]", device);
        if (f.has("k")) {
            // circuit-tracer's TopK transcoders store k beside the weights.
            const at::Tensor k = f.file()->tensor("k");
            if (k.numel() != 1)
                throw Error(
                    f.path() + ": tensor \"k\" has shape " + shapeText(k.sizes().vec()) + ", expected a scalar");
            const int64_t kv = k.to(at::kLong).item<int64_t>();
            if (cy.k && *cy.k != kv)
                throw Error(f.path() + " says k = " + std::to_string(kv)
                    + " but config.yaml says k = " + std::to_string(*cy.k));
            cy.k = kv;
        }
        if (lazyDecoders) {
            io::requireFinite(f.file()->tensor("W_dec"), f.path(), "W_dec"); // one pass over the mapping
            out.lazy->sources.push_back({ f.file(), "W_dec" });
        } else
            w.decoder = f.read("W_dec", { nf, d }, "[n_features, d_model]", device).unsqueeze(1);
        out.layers.push_back(std::move(w));
    }
    return out;
}

Loaded loadCrossLayer(const fs::path& dir, ConfigYaml& cy, c10::Device device, bool lazyDecoders)
{
    TranscoderConfig& c = cy.config;
    c.nLayers = countNumberedFiles(dir, "W_enc_", kCrossLayerKind);

    // Every layer's headers first: a shape that disagrees with layer 0's (a huge n_features
    // among them) is refused before any tensor is read or converted.
    std::vector<SetFile> encoders, decoders;
    for (int64_t l = 0; l < c.nLayers; ++l) {
        const std::string i = std::to_string(l);
        encoders.emplace_back(dir / ("W_enc_" + i + ".safetensors"));
        const fs::path decPath = dir / ("W_dec_" + i + ".safetensors");
        if (!fs::is_regular_file(decPath))
            throw Error(dir.string() + " has W_enc_" + i + ".safetensors but no W_dec_" + i + ".safetensors");
        decoders.emplace_back(decPath);
    }
    std::tie(c.nFeatures, c.dModel) = encoders[0].encoderDims("W_enc_0");
    c.skip = encoders[0].has("W_skip_0");
    settleActivation(cy, encoders[0].has("threshold_0"));
    const std::string firstFile = encoders[0].path();
    for (int64_t l = 0; l < c.nLayers; ++l) {
        const std::string i = std::to_string(l);
        const SetFile& enc = encoders[static_cast<size_t>(l)];
        const int64_t nf = c.nFeatures, d = c.dModel;
        enc.expect("W_enc_" + i, { nf, d }, "[n_features, d_model]");
        enc.expect("b_enc_" + i, { nf }, "[n_features]");
        enc.expect("b_dec_" + i, { d }, "[d_model]");
        if (c.activation == Activation::JumpReLU)
            enc.expectThreshold("threshold_" + i, nf);
        checkSameSkip(enc, "W_skip_" + i, c.skip, firstFile);
        if (c.skip)
            enc.expect("W_skip_" + i, { d, d }, "[d_model, d_model]");
        decoders[static_cast<size_t>(l)].expect(
            "W_dec_" + i, { nf, c.nLayers - l, d }, "[n_features, n_layers - " + i + ", d_model]");
    }

    Loaded out;
    if (lazyDecoders)
        out.lazy = std::make_shared<TranscoderSet::Lazy>();
    for (int64_t l = 0; l < c.nLayers; ++l) {
        const std::string i = std::to_string(l);
        const SetFile& enc = encoders[static_cast<size_t>(l)];
        const int64_t nf = c.nFeatures, d = c.dModel;
        LayerWeights w;
        w.encoder = enc.read("W_enc_" + i, { nf, d }, "[n_features, d_model]", device);
        w.encoderBias = enc.read("b_enc_" + i, { nf }, "[n_features]", device);
        w.decoderBias = enc.read("b_dec_" + i, { d }, "[d_model]", device);
        if (c.activation == Activation::JumpReLU)
            w.threshold = enc.readThreshold("threshold_" + i, nf, device);
        if (c.skip) // stored in the CLT convention, x @ W_skip_i; ours is applied as x @ skip^T
            w.skip = enc.read("W_skip_" + i, { d, d }, "[d_model, d_model]", device).t().contiguous();

        const SetFile& dec = decoders[static_cast<size_t>(l)];
        const std::vector<int64_t> shape { nf, c.nLayers - l, d };
        const std::string dims = "[n_features, n_layers - " + i + ", d_model]";
        dec.expect("W_dec_" + i, shape, dims);
        if (lazyDecoders) {
            io::requireFinite(dec.file()->tensor("W_dec_" + i), dec.path(), "W_dec_" + i);
            out.lazy->sources.push_back({ dec.file(), "W_dec_" + i });
        } else
            w.decoder = dec.read("W_dec_" + i, shape, dims, device);
        out.layers.push_back(std::move(w));
    }
    return out;
}

// The name config.yaml gets for a hook: the set's own spelling when it names that hook (a set
// built in memory may carry the default name for another one), else a canonical one.
std::string hookConfigName(model::Hook hook, const std::string& name)
{
    try {
        if (hookFromConfigName(name) == hook)
            return name;
    } catch (const Error&) {
    }
    switch (hook) {
    case model::Hook::ResidMid:
        return "hook_resid_mid";
    case model::Hook::MlpNormalized:
        return "ln2.hook_normalized";
    case model::Hook::MlpIn:
        return "mlp.hook_in";
    case model::Hook::MlpOut:
        return "hook_mlp_out";
    default:
        throw Error(std::string("transcoder set: cannot save hook ") + model::hookName(hook)
            + " (features read resid_mid, mlp_normalized or mlp_in and write mlp_out)");
    }
}

void checkLayer(int64_t layer, int64_t nLayers)
{
    if (layer < 0 || layer >= nLayers)
        throw Error("transcoder layer " + std::to_string(layer) + " does not exist (the set has "
            + std::to_string(nLayers) + " layers)");
}

} // namespace

// The bodies of load() and save(), which turn filesystem errors into cs::Error around them.
struct TranscoderIo {
    static std::shared_ptr<const TranscoderSet> load(
        const std::string& folder, const TranscoderSet::LoadOptions& options);
    static void save(const TranscoderSet& set, const std::string& folder, const std::string& dtype);
};

std::shared_ptr<const TranscoderSet> TranscoderSet::load(const std::string& folder, const LoadOptions& options)
{
    try {
        return TranscoderIo::load(folder, options);
    } catch (const fs::filesystem_error& e) {
        throw Error("cannot read the transcoder set in " + folder + ": " + e.what());
    }
}

void TranscoderSet::save(const std::string& folder, const std::string& dtype) const
{
    try {
        TranscoderIo::save(*this, folder, dtype);
    } catch (const fs::filesystem_error& e) {
        throw Error("cannot save the transcoder set to " + folder + ": " + e.what());
    }
}

std::shared_ptr<const TranscoderSet> TranscoderIo::load(
    const std::string& folder, const TranscoderSet::LoadOptions& options)
{
    const fs::path dir(folder);
    if (!fs::is_directory(dir))
        throw Error("transcoder folder " + folder + " does not exist or is not a folder");
    const fs::path configPath = dir / kConfigFile;
    if (!fs::is_regular_file(configPath))
        throw Error(folder + " has no config.yaml, so it is not a transcoder set in circuit-tracer's format");
    const yaml::Document doc = yaml::parseFile(configPath.string());
    ConfigYaml cy = readConfigYaml(dir, doc, options.modelLayers);

    std::shared_ptr<TranscoderSet> set(new TranscoderSet());
    set->m_device = model::resolveDevice(options.device);
    set->m_folder = folder;
    Loaded loaded = cy.config.architecture == Architecture::PerLayer
        ? loadPerLayer(dir, cy, set->m_device, options.lazyDecoders)
        : loadCrossLayer(dir, cy, set->m_device, options.lazyDecoders);

    if (cy.config.activation == Activation::TopK) {
        if (!cy.k)
            throw Error(configPath.string() + ": activation topk needs k (features kept per token)");
        cy.config.topK = *cy.k;
        if (cy.config.topK > cy.config.nFeatures)
            throw Error(doc.where(cy.kLine) + "k = " + std::to_string(cy.config.topK) + " is more than the "
                + std::to_string(cy.config.nFeatures) + " features per layer");
    }
    set->m_config = std::move(cy.config);
    set->m_layers = std::move(loaded.layers);
    set->m_lazy = std::move(loaded.lazy);
    if (set->m_lazy)
        set->m_lazy->cache.resize(static_cast<size_t>(set->m_config.nLayers));
    set->validate();
    return set;
}

at::Tensor TranscoderSet::decoder(int64_t layer) const
{
    checkLayer(layer, m_config.nLayers);
    if (!m_lazy)
        return m_layers[static_cast<size_t>(layer)].decoder;
    std::lock_guard<std::mutex> lock(m_decoderMutex);
    at::Tensor& cached = m_lazy->cache[static_cast<size_t>(layer)];
    if (!cached.defined())
        cached = m_lazy->mapped(layer).to(m_device, at::kFloat).contiguous();
    return cached;
}

at::Tensor TranscoderSet::decoderRows(int64_t layer, const at::Tensor& featureIds) const
{
    checkLayer(layer, m_config.nLayers);
    if (!featureIds.defined() || featureIds.dim() != 1 || at::isFloatingType(featureIds.scalar_type())
        || at::isComplexType(featureIds.scalar_type()) || featureIds.scalar_type() == at::kBool)
        throw Error("decoderRows: feature ids must be a 1-D integer tensor");
    if (featureIds.numel() > 0) {
        const int64_t lo = featureIds.min().item<int64_t>(), hi = featureIds.max().item<int64_t>();
        if (lo < 0 || hi >= m_config.nFeatures)
            throw Error("decoderRows: feature id " + std::to_string(lo < 0 ? lo : hi) + " is out of range (layer "
                + std::to_string(layer) + " has " + std::to_string(m_config.nFeatures) + " features)");
    }
    at::Tensor whole;
    if (m_lazy) {
        std::lock_guard<std::mutex> lock(m_decoderMutex);
        whole = m_lazy->cache[static_cast<size_t>(layer)];
    } else {
        whole = m_layers[static_cast<size_t>(layer)].decoder;
    }
    if (whole.defined())
        return whole.index_select(0, featureIds.to(m_device, at::kLong));
    // Only the rows asked for leave the mapping: gathered in the stored dtype, then converted.
    return m_lazy->mapped(layer).index_select(0, featureIds.to(at::kCPU, at::kLong)).to(m_device, at::kFloat);
}

void TranscoderIo::save(const TranscoderSet& set, const std::string& folder, const std::string& dtype)
{
    const io::DType stored = io::dtypeFromName(dtype);
    if (stored != io::DType::F32 && stored != io::DType::F16 && stored != io::DType::BF16)
        throw Error("transcoder sets are saved as F32, F16 or BF16, not " + dtype);
    const at::ScalarType type = io::toScalarType(stored);
    const fs::path dir(folder);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir))
        throw Error("cannot create the folder " + folder + (ec ? ": " + ec.message() : std::string()));
    // A folder without config.yaml is no set (circuit-tracer's cache reads it the same way), so a
    // save that stops half way never leaves one that mixes old and new layers.
    fs::remove(dir / kConfigFile, ec);
    if (ec)
        throw Error("cannot replace " + (dir / kConfigFile).string() + ": " + ec.message());

    auto store = [type](const at::Tensor& t) { return t.detach().to(at::kCPU).to(type).contiguous(); };
    // The decoder as stored or loaded, without caching a float32 copy of every one of them.
    auto storedDecoder = [&set](int64_t l) {
        return set.m_lazy ? set.m_lazy->mapped(l) : set.m_layers[static_cast<size_t>(l)].decoder;
    };
    const TranscoderConfig& c = set.m_config;
    const bool jump = c.activation == Activation::JumpReLU;
    for (int64_t l = 0; l < c.nLayers; ++l) {
        const LayerWeights& w = set.m_layers[static_cast<size_t>(l)];
        const std::string i = std::to_string(l);
        if (c.architecture == Architecture::PerLayer) {
            io::SafetensorsWriter out;
            out.add("W_enc", store(w.encoder));
            out.add("W_dec", store(storedDecoder(l).select(1, 0)));
            out.add("b_enc", store(w.encoderBias));
            out.add("b_dec", store(w.decoderBias));
            if (jump)
                out.add("activation_function.threshold", store(w.threshold));
            if (c.skip)
                out.add("W_skip", store(w.skip));
            // No "k" tensor: circuit-tracer's load_transcoder hands every tensor of the file to a
            // strict load_state_dict, which refuses it; k goes to config.yaml, where it reads it.
            out.write((dir / ("layer_" + i + ".safetensors")).string());
        } else {
            io::SafetensorsWriter enc;
            enc.add("W_enc_" + i, store(w.encoder));
            enc.add("b_enc_" + i, store(w.encoderBias));
            enc.add("b_dec_" + i, store(w.decoderBias));
            if (jump)
                enc.add("threshold_" + i, store(w.threshold));
            if (c.skip) // ours only (circuit-tracer's CLT files have no skip), applied as x @ W_skip_i
                enc.add("W_skip_" + i, store(w.skip.t()));
            enc.write((dir / ("W_enc_" + i + ".safetensors")).string());
            io::SafetensorsWriter dec;
            dec.add("W_dec_" + i, store(storedDecoder(l)));
            dec.write((dir / ("W_dec_" + i + ".safetensors")).string());
        }
    }
    if (c.architecture == Architecture::PerLayer) {
        removeStaleFiles(dir, "layer_", c.nLayers);
    } else {
        removeStaleFiles(dir, "W_enc_", c.nLayers);
        removeStaleFiles(dir, "W_dec_", c.nLayers);
    }

    yaml::Writer y;
    y.comment(std::string("A ") + (c.architecture == Architecture::PerLayer ? "per-layer" : "cross-layer")
        + " transcoder set in circuit-tracer's format, written by Circuitscope.");
    y.string("model_kind", c.architecture == Architecture::PerLayer ? kPerLayerKind : kCrossLayerKind);
    y.string("feature_input_hook", hookConfigName(c.inputHook, c.inputHookName));
    y.string("feature_output_hook", hookConfigName(c.outputHook, c.outputHookName));
    // circuit-tracer decides a CLT's activation from its thresholds alone (a TopK CLT reads as
    // ReLU there); a PLT's it takes from here.
    y.string("activation", activationName(c.activation));
    if (c.activation == Activation::TopK)
        y.integer("k", c.topK);
    if (!c.modelName.empty())
        y.string("model_name", c.modelName);
    if (!c.scan.empty())
        y.string("scan", c.scan);
    io::writeFileAtomically((dir / kConfigFile).string(), y.text());
}

} // namespace cs::transcoder
