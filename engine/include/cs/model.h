#pragma once
// A loaded transformer and its forward pass with hook points (docs/ARCHITECTURE.md §4).
//
// forward() runs ids [batch, n_pos] to logits [batch, n_pos, vocab] and, per layer, passes
// every hook point through ForwardOptions::hook, which may read or replace it:
//   resid_pre   [batch, n_pos, d_model]  the residual stream entering the layer
//   attn_out    [batch, n_pos, d_model]  what attention adds to the stream
//   resid_mid   [batch, n_pos, d_model]  = resid_pre + attn_out
//   mlp_normalized [batch, n_pos, d_model] the pre-MLP norm's output before its weight (and
//               bias): x / sqrt(mean(x^2) + eps), or (x - mean) / sqrt(var + eps) for LayerNorm;
//               TransformerLens's blocks.L.ln2.hook_normalized
//   mlp_in      [batch, n_pos, d_model]  the normalized MLP input, weighted: mlp_normalized * w (+ b)
//   mlp_hidden  [batch, n_pos, d_mlp]    neuron activations (act(gate) * up, or act(up))
//   mlp_out     [batch, n_pos, d_model]  what the MLP adds to the stream
//   resid_post  [batch, n_pos, d_model]  = resid_mid + mlp_out
//   attn_pattern [batch, n_heads, n_pos, n_keys] softmax probabilities
// A run can record its attention patterns and every norm's denominator (FrozenState) and a
// later run can replay them frozen, which makes the model linear in its residual stream
// apart from the MLPs; MLP outputs can be replaced (ForwardOptions::mlpReplace: a transcoder's
// replacement model, TranscoderSet::replacement).

#include "cs/config.h"
#include "cs/tokenizer.h"

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cs::model {

// MlpNormalized comes last so the others keep their numbers; in a layer it runs just before MlpIn.
enum class Hook { ResidPre, AttnOut, ResidMid, MlpIn, MlpHidden, MlpOut, ResidPost, AttnPattern, MlpNormalized };
constexpr int kHookCount = 9;
const char* hookName(Hook hook); // "resid_pre", ...
std::optional<Hook> hookFromName(const std::string& name);

// The norms whose denominators a frozen run replays. Per layer: the attention input norm,
// the MLP input norm, the post-norms (gemma2), the per-head q/k norms (qwen3).
enum class NormSite { AttnIn, AttnPost, MlpIn, MlpPost, Q, K };
constexpr int kNormSiteCount = 6;

// RelP's forms (ForwardOptions::relp, cs/neurons.h): the values of act(z) and of a * b, with
// the gradients of the linearized network: act(z) = z * sg(act(z) / z) (SiLU: z * sg(sigmoid(z));
// the GELUs pass 1/2 at z = 0, their limit), and a * b = (a * sg(b) + sg(a) * b) / 2 (the half
// rule). sg() is stop-gradient.
at::Tensor relpActivation(const at::Tensor& z, Activation activation);
at::Tensor relpProduct(const at::Tensor& a, const at::Tensor& b);

// Recorded from one run, replayed by another on the same ids.
struct FrozenState {
    struct Layer {
        at::Tensor pattern; // [batch, n_heads, n_pos, n_keys]
        std::array<at::Tensor, kNormSiteCount> denominators; // [batch, n_pos, 1] ([batch, n_pos, heads, 1] for Q, K)
    };
    std::vector<Layer> layers;
    at::Tensor finalDenominator; // [batch, n_pos, 1]
};

// Keys and values of earlier positions, for generation one token at a time.
struct KvCache {
    std::vector<at::Tensor> keys; // per layer [batch, n_kv_heads, n_cached, d_head], rotated
    std::vector<at::Tensor> values; // per layer [batch, n_kv_heads, n_cached, d_head]
    int64_t length() const { return keys.empty() || !keys[0].defined() ? 0 : keys[0].size(2); }
};

// Called at every hook point; may replace `value` (same shape) to intervene.
using HookFn = std::function<void(int64_t layer, Hook hook, at::Tensor& value)>;
// What one layer's MLP reads, each [batch, n_pos, d_model], as the hooks left them.
struct MlpInputs {
    at::Tensor residMid; // the residual stream before the pre-MLP norm
    at::Tensor normalized; // the norm's output before its weight (hook mlp_normalized)
    at::Tensor mlpIn; // normalized * w (+ b): what the MLP reads (hook mlp_in)
    // The one of the three a transcoder reading `hook` takes; throws cs::Error for any other hook.
    const at::Tensor& at(Hook hook) const;
};

// Called with the layer's MLP inputs; a defined result replaces mlp_out.
using MlpReplaceFn = std::function<at::Tensor(int64_t layer, const MlpInputs& inputs)>;

struct ForwardOptions {
    HookFn hook;
    MlpReplaceFn mlpReplace;
    bool record = false; // fill ForwardResult::frozen
    // Replay these patterns and denominators (undefined ones are computed); with a cache, only
    // into an empty one.
    const FrozenState* frozen = nullptr;
    KvCache* cache = nullptr; // read earlier keys/values from it and append this run's
    // RelP's linearized forms (cs/neurons.h: Arora & Wu's relevance patching): the MLP's
    // activation f(z) as z * sg(f(z) / z) (SiLU: z * sg(sigmoid(z))), gate x up and the final
    // soft-cap by the half rule / the same linearization; the values are unchanged, the
    // gradients are those of the linearized network. Use with `frozen` (patterns and norm
    // denominators held) for the whole rule set.
    bool relp = false;
};

struct ForwardResult {
    at::Tensor logits; // [batch, n_pos, vocab], float32
    FrozenState frozen; // when ForwardOptions::record
};

struct LoadOptions {
    std::string device = "auto"; // cpu, cuda, cuda:N or auto (cuda when available)
    bool requireTokenizer = false;
};

struct GenerateOptions {
    int64_t maxNew = 16;
    double temperature = 0.0; // 0: greedy
    uint64_t seed = 0;
    bool useCache = true; // false: recompute the whole prefix every step (for checking the cache)
    bool stopAtEos = true;
    HookFn hook; // held on every step (prompt and generated tokens)
};

class Model {
public:
    // Loads a Hugging Face folder (config.json, safetensors, tokenizer.json); throws cs::Error.
    static std::shared_ptr<const Model> load(const std::string& folder, const LoadOptions& options = {});
    // The configuration of a Hugging Face folder alone (config.json through its family), without
    // the weights: for a process that needs the model's shape, not the model. Throws cs::Error.
    static ModelConfig loadConfig(const std::string& folder);

    // A model from canonical weights (plugins/common.h names them), e.g. one being trained:
    // tensors already on `device` are used as they are (not copied), so a trainer that updates
    // them in place updates the model. Throws cs::Error for a missing or misshapen weight.
    static std::shared_ptr<const Model> fromWeights(const ModelConfig& config,
        std::map<std::string, at::Tensor> weights, std::shared_ptr<const Tokenizer> tokenizer,
        const std::string& device = "cpu");

    const ModelConfig& config() const { return m_config; }
    const std::string& folder() const { return m_folder; }
    c10::Device device() const { return m_device; }
    std::string storedDType() const { return m_storedDType; }
    bool hasTokenizer() const { return m_tokenizer != nullptr; }
    const Tokenizer& tokenizer() const; // throws cs::Error when the folder had none

    // ids: int64 [batch, n_pos] (or [n_pos]) on any device.
    ForwardResult forward(const at::Tensor& ids, const ForwardOptions& options = {}) const;
    // Tokens generated after `prompt` (not including it).
    std::vector<int64_t> generate(const std::vector<int64_t>& prompt, const GenerateOptions& options) const;

    // A canonical weight ("embed.weight", "layers.0.mlp.down.weight", ...), float32 on device.
    const at::Tensor& weight(const std::string& canonical) const;
    bool hasWeight(const std::string& canonical) const;
    // Every canonical weight by name.
    const std::map<std::string, at::Tensor>& weights() const;

    struct Weights;

private:
    Model() = default;
    static std::shared_ptr<const Weights> assembleWeights(
        const ModelConfig& config, std::map<std::string, at::Tensor> byName, c10::Device device);
    std::string m_folder;
    ModelConfig m_config;
    c10::Device m_device = c10::Device(c10::DeviceType::CPU);
    std::string m_storedDType;
    std::shared_ptr<const Tokenizer> m_tokenizer;
    std::shared_ptr<const Weights> m_weights;
};

// Writes `model` as a Hugging Face folder that Model::load (and transformers) read back:
// config.json, model.safetensors with the family's tensor names, stored as storeDtype (F32,
// F16 or BF16), and tokenizerJson as tokenizer.json when given. Files are written atomically.
void saveModelFolder(const Model& model, const std::string& folder, const std::string& storeDtype = "F32",
    const std::string& tokenizerJson = {});

// "cpu", "cuda", "auto" -> a device; throws cs::Error when CUDA is asked for and absent.
c10::Device resolveDevice(const std::string& name);
// Process setup for computing, done once: the thread count (all cores unless CS_THREADS says
// otherwise), and on glibc a heap that keeps freed memory for the next batch (model.cpp).
void initThreads();

// A CUDA device's name and total memory in bytes ({"", 0} for the CPU or without CUDA).
std::pair<std::string, int64_t> cudaDeviceProperties(c10::Device device);
// A CUDA device's free and total memory in bytes ({0, 0} for the CPU).
std::pair<int64_t, int64_t> cudaMemoryInfo(c10::Device device);
// The most memory LibTorch's CUDA allocator has held allocated on the device since the last
// reset, in bytes (0 for the CPU); and the reset.
int64_t cudaPeakAllocatedBytes(c10::Device device);
void cudaResetPeak(c10::Device device);
// The bytes that can still be allocated on `device`: for a GPU, what the driver reports free plus
// what LibTorch's caching allocator holds unused; for the CPU, the kernel's MemAvailable, lowered
// to the cgroup's limit minus its usage when the process runs in one with a limit (a container).
int64_t availableMemory(c10::Device device);
// Throws cs::Error naming `what`, the sizes and the way out when `bytes` more would not fit in
// the device's free memory (with headroom for the computation); nothing for the CPU.
void checkFitsOnDevice(c10::Device device, int64_t bytes, const std::string& what);
// An exception's message for a person: LibTorch's errors without their C++ backtrace, and an
// out-of-memory error said as such.
std::string errorText(const std::exception& e);

} // namespace cs::model
