// The Torch-free front door (cs/engine.h): model lookup by name, tokenization, next-token
// distributions and generation for the explorer and the CLI.
#include "cs/engine.h"

#include "cs/error.h"
#include "cs/model.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <c10/core/DeviceGuard.h>
#include <torch/version.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

namespace cs {

namespace fs = std::filesystem;

namespace {

// PREFIX/share/circuitscope/models for the program running from PREFIX/bin, so an install
// unpacked into any folder (dpkg-deb -x, a moved prefix) reads its own models; empty when the
// program's path cannot be read. In the build tree it names a folder that does not exist.
std::string modelsBesideProgram()
{
    std::error_code ec;
    const fs::path program = fs::read_symlink("/proc/self/exe", ec);
    if (ec || program.empty())
        return {};
    return (program.parent_path().parent_path() / "share" / "circuitscope" / "models").string();
}

} // namespace

std::vector<std::string> modelSearchPaths()
{
    std::vector<std::string> paths;
    if (const char* env = std::getenv("CIRCUITSCOPE_MODELS"))
        paths.emplace_back(env);
    const std::string installed = std::string(CS_INSTALL_DATA_DIR) + "/models";
    const std::string beside = modelsBesideProgram();
    if (!beside.empty() && beside != installed)
        paths.push_back(beside);
    paths.emplace_back(std::string(CS_RESOURCES_DIR) + "/models");
    paths.push_back(installed);
    return paths;
}

std::string resolveModelFolder(const std::string& nameOrFolder)
{
    std::error_code ec;
    if (nameOrFolder.empty())
        throw Error("no model given");
    if (fs::is_directory(nameOrFolder, ec))
        return nameOrFolder;
    const bool looksLikePath = nameOrFolder.find('/') != std::string::npos || nameOrFolder[0] == '.';
    std::string searched;
    if (!looksLikePath) {
        for (const auto& dir : modelSearchPaths()) {
            const fs::path candidate = fs::path(dir) / nameOrFolder;
            if (fs::is_directory(candidate, ec) && fs::exists(candidate / "config.json", ec))
                return candidate.string();
            searched += "\n  " + candidate.string();
        }
        throw Error("no model folder \"" + nameOrFolder + "\" and no shipped model of that name; searched:" + searched);
    }
    throw Error("model folder " + nameOrFolder + " does not exist");
}

std::shared_ptr<ModelHandle> ModelHandle::open(const std::string& nameOrFolder, const std::string& device)
{
    model::LoadOptions options;
    options.device = device;
    auto handle = std::shared_ptr<ModelHandle>(new ModelHandle());
    handle->m_model = model::Model::load(resolveModelFolder(nameOrFolder), options);
    return handle;
}

ModelInfo ModelHandle::info() const
{
    const auto& c = m_model->config();
    ModelInfo info;
    info.folder = m_model->folder();
    info.name = fs::path(info.folder).filename().string();
    if (info.name.empty())
        info.name = fs::path(info.folder).parent_path().filename().string();
    info.family = c.family;
    info.nLayers = c.nLayers;
    info.dModel = c.dModel;
    info.nHeads = c.nHeads;
    info.nKvHeads = c.nKvHeads;
    info.dHead = c.dHead;
    info.dMlp = c.dMlp;
    info.vocabSize = c.vocabSize;
    info.dtype = m_model->storedDType();
    info.device = m_model->device().str();
    return info;
}

bool ModelHandle::hasTokenizer() const
{
    return m_model->hasTokenizer();
}

std::vector<int64_t> ModelHandle::encode(const std::string& text) const
{
    return m_model->tokenizer().encode(text);
}

std::vector<std::string> ModelHandle::tokenTexts(const std::vector<int64_t>& ids) const
{
    std::vector<std::string> out;
    out.reserve(ids.size());
    for (int64_t id : ids)
        out.push_back(m_model->hasTokenizer() ? m_model->tokenizer().tokenText(id) : std::to_string(id));
    return out;
}

std::string ModelHandle::decode(const std::vector<int64_t>& ids) const
{
    return m_model->tokenizer().decode(ids);
}

LogitsResult ModelHandle::logits(const std::vector<int64_t>& ids, int topK, bool allPositions) const
{
    if (ids.empty())
        throw Error("the prompt has no tokens");
    at::NoGradGuard noGrad;
    at::Tensor logits = m_model->forward(at::tensor(ids, at::kLong)).logits[0].to(at::kCPU); // [n_pos, vocab]
    // A model that loads finite can still overflow (in float16, or with huge weights): NaN or
    // infinity is never shown as a result.
    const at::Tensor finite = at::isfinite(logits).all(1); // [n_pos]
    if (!finite.all().item<bool>())
        throw Error("the model's logits at position " + std::to_string(at::argmin(finite.to(at::kInt)).item<int64_t>())
            + " of " + std::to_string(logits.size(0))
            + " are not finite (NaN or infinite): the forward pass overflows (in float16, or with weights too large)");
    LogitsResult result;
    result.ids = ids;
    at::Tensor last = logits[logits.size(0) - 1];
    at::Tensor probs = at::softmax(last.to(at::kDouble), -1).to(at::kFloat);
    const int64_t k = std::min<int64_t>(std::max(topK, 0), last.size(0));
    if (k > 0) {
        auto [values, indices] = at::topk(probs, k);
        for (int64_t i = 0; i < k; ++i) {
            TokenScore s;
            s.id = indices[i].item<int64_t>();
            s.prob = values[i].item<float>();
            s.logit = last[s.id].item<float>();
            s.token = m_model->hasTokenizer() ? m_model->tokenizer().tokenText(s.id) : std::to_string(s.id);
            result.top.push_back(std::move(s));
        }
    }
    auto toVector = [](const at::Tensor& row) {
        at::Tensor r = row.contiguous();
        return std::vector<float>(r.data_ptr<float>(), r.data_ptr<float>() + r.numel());
    };
    if (allPositions)
        for (int64_t p = 0; p < logits.size(0); ++p)
            result.logits.push_back(toVector(logits[p]));
    else
        result.logits.push_back(toVector(last));
    return result;
}

GenerateResult ModelHandle::generate(const std::vector<int64_t>& promptIds, const GenerateRequest& request) const
{
    at::NoGradGuard noGrad;
    model::GenerateOptions options;
    options.maxNew = request.maxNew;
    options.temperature = request.temperature;
    options.seed = request.seed;
    GenerateResult result;
    result.promptIds = promptIds;
    result.newIds = m_model->generate(promptIds, options);
    if (m_model->hasTokenizer())
        result.text = m_model->tokenizer().decode(result.newIds);
    return result;
}

TorchInfo torchInfo(const std::string& device)
{
    TorchInfo info;
    info.version = TORCH_VERSION;
    const at::CUDAHooksInterface& cuda = at::detail::getCUDAHooks();
    info.cudaCompiled = cuda.isBuilt();
    if (info.cudaCompiled) {
        // CUDA_VERSION as major * 1000 + minor * 10 (13000 is 13.0).
        const long v = cuda.versionCUDART();
        if (v > 0)
            info.cudaVersion = std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
    }
    info.cudaAvailable = at::hasCUDA();
    info.cudaDevices = info.cudaAvailable ? cuda.deviceCount() : 0;
    try {
        const c10::Device dev = model::resolveDevice(device);
        info.device = dev.str();
        if (dev.is_cuda()) {
            const auto [name, bytes] = model::cudaDeviceProperties(dev);
            info.gpuName = name;
            info.gpuMemoryBytes = bytes;
        }
    } catch (const std::exception& e) {
        info.device = std::string("error: ") + e.what();
    }
    return info;
}

std::string blasDescription()
{
    // The BLAS libraries this process has mapped, by their resolved file names.
    std::ifstream maps("/proc/self/maps");
    std::set<std::string> libs;
    std::string line;
    while (std::getline(maps, line)) {
        auto slash = line.find('/');
        if (slash == std::string::npos)
            continue;
        std::string path = line.substr(slash);
        // (cuBLAS is the GPU's; the CPU's products never go through it.)
        if ((path.find("blas") != std::string::npos || path.find("mkl") != std::string::npos
                || path.find("lapack") != std::string::npos)
            && path.find("cublas") == std::string::npos)
            libs.insert(path);
    }
    std::string out;
    for (const auto& lib : libs)
        out += (out.empty() ? "" : ", ") + lib;
    // A BLAS linked statically into LibTorch (the wheel's MKL) maps no file of its own; LibTorch's
    // build configuration names it.
    const std::string config = at::show_config();
    const auto at = config.find("BLAS_INFO=");
    const std::string built
        = at == std::string::npos ? std::string() : config.substr(at + 10, config.find_first_of(", \n", at) - at - 10);
    if (out.empty() && !built.empty())
        return (built == "mkl" ? std::string("MKL") : built) + " [inside LibTorch: BLAS_INFO=" + built + "]";
    if (out.empty())
        out = "none mapped";
    std::string kind = "unknown";
    if (out.find("openblas") != std::string::npos)
        kind = "OpenBLAS";
    else if (out.find("mkl") != std::string::npos)
        kind = "MKL";
    else if (out.find("blis") != std::string::npos)
        kind = "BLIS";
    else if (out.find("atlas") != std::string::npos)
        kind = "ATLAS";
    else if (out.find("/blas/") != std::string::npos)
        kind = "reference BLAS (slow: install libopenblas0-pthread)";
    return kind + " [" + out + "]";
}

} // namespace cs
