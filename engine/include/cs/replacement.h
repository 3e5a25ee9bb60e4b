#pragma once
// The local replacement model of one prompt (docs/ARCHITECTURE.md §6.1): the original model run
// once, with its attention patterns, norm denominators, transcoder inputs and MLP outputs
// recorded; every MLP then stands replaced by the transcoder's decoders plus an error term
//   mlp_out_l = sum_{l' <= l} W_dec_{l'->l} a_{l'} + b_dec_l (+ W_skip_l x_l) + e_l,
// where e_l = mlp_out_l - reconstruction_l makes the replacement exact on this prompt. With
// patterns and denominators frozen, the model is affine in its sources (feature activations,
// error vectors, token embeddings): attribution (attribution.h) and constrained interventions
// (intervention.h) both read it.
//
// A held BOS: when the prompt starts with a special token (BOS, or any other special token:
// EOS, PAD, UNK, added tokens marked special; circuit-tracer holds position 0 whenever its token
// is in the tokenizer's all_special_ids), transcoders (trained without that position) read
// nonsense there, and the position is the same in every prompt. Its MLP outputs are then held
// at the model's own values (constants of the prompt): it has no feature or error nodes, and
// nothing flows through its MLPs. Its token embedding stays a node.

#include "cs/model.h"
#include "cs/transcoder.h"

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace cs::attribution {

// The active features of one prompt (activation != 0), sorted by (layer, position, feature).
struct ActiveFeatures {
    at::Tensor layer; // [k] int64
    at::Tensor position; // [k] int64
    at::Tensor feature; // [k] int64
    at::Tensor activation; // [k] float32
    int64_t size() const { return layer.defined() ? layer.size(0) : 0; }

    // Active feature i as plain numbers, for code that does no tensor work. Throws cs::Error
    // when i is out of range.
    struct Entry {
        int64_t layer = 0, position = 0, feature = 0;
        float activation = 0;
    };
    Entry entry(int64_t i) const;
};

struct ContextOptions {
    // Hold position 0's MLP outputs (see above) when the first token is a special token
    // (isHeldToken); false: never hold.
    bool holdBos = true;
    // The memory the recording may take at its peak (estimateContextMemory), checked before the
    // model runs: 0, what the device has available (model::availableMemory); > 0, this many
    // bytes; < 0, no check.
    int64_t memoryLimitBytes = 0;
};

// The memory a piece of work takes at its peak, in bytes, estimated from shapes before it starts
// (docs/ARCHITECTURE.md §6.4), so that work that would not fit is refused with a message instead
// of the process being killed by the kernel or stopped by the GPU allocator. Each part is an
// upper bound of what the code allocates.
struct MemoryEstimate {
    struct Part {
        std::string name; // "activations", "attribution rows", ...
        int64_t bytes = 0;
        bool host = false; // in the CPU's memory even when the model is on a GPU
    };
    std::vector<Part> parts;
    int64_t deviceBytes() const; // the parts on the model's device
    int64_t hostBytes() const; // the parts in the CPU's memory besides
    int64_t bytes(const std::string& name) const; // one part's; 0 when there is none
};

// Recording a prompt of nPos tokens (buildContext): the dense per-layer tensors the context keeps
// (activations and pre-activations, transcoder inputs, MLP outputs, errors, attention patterns,
// logits) and the largest temporaries of the forward pass.
MemoryEstimate estimateContextMemory(const model::Model& model, const transcoder::TranscoderSet& set, int64_t nPos);

// Everything recorded from one run of the original model on one prompt. Tensors are float32
// on the model's device (the transcoder set must be on the same one).
struct ReplacementContext {
    std::shared_ptr<const model::Model> model;
    std::shared_ptr<const transcoder::TranscoderSet> transcoders;
    at::Tensor ids; // [n_pos] int64
    model::FrozenState frozen; // batch 1
    std::vector<at::Tensor> inputs; // per layer [n_pos, d_model]: the transcoder input x_l
    std::vector<at::Tensor> mlpOut; // per layer [n_pos, d_model]: the model's MLP output
    std::vector<at::Tensor> preActivations; // per layer [n_pos, n_features]: W_enc x_l + b_enc
    std::vector<at::Tensor> activations; // per layer [n_pos, n_features]; zero at held positions
    std::vector<at::Tensor> errors; // per layer [n_pos, d_model]; zero at held positions
    at::Tensor tokenEmbeddings; // [n_pos, d_model]: embed[ids] * embed_scale, the embedding nodes' vectors
    at::Tensor finalResid; // [n_pos, d_model]: the residual stream before the final norm
    at::Tensor logits; // [n_pos, vocab]: the model's logits
    ActiveFeatures active;
    int64_t heldPositions = 0; // positions [0, heldPositions) are held (1 when the first token is held, else 0)

    int64_t nPos() const { return ids.size(0); }
    int64_t nLayers() const { return static_cast<int64_t>(inputs.size()); }
};

// Whether a prompt starting with `id` has position 0 held: the model config's BOS or EOS id, or
// any of the tokenizer's specialIds() when the model has a tokenizer.
bool isHeldToken(const model::Model& model, int64_t id);

// Runs the model once on ids [n_pos] and records the context. Throws cs::Error when the set does
// not fit the model (TranscoderSet::checkFits), the devices differ, or the prompt is empty or
// longer than the model's context.
ReplacementContext buildContext(std::shared_ptr<const model::Model> model,
    std::shared_ptr<const transcoder::TranscoderSet> transcoders, const at::Tensor& ids,
    const ContextOptions& options = {});
// The same from token ids as plain integers (the app's side, which does no tensor work).
ReplacementContext buildContext(std::shared_ptr<const model::Model> model,
    std::shared_ptr<const transcoder::TranscoderSet> transcoders, const std::vector<int64_t>& ids,
    const ContextOptions& options = {});

// A run of the replacement model on the context's prompt.
struct RunOptions {
    // Replay the recorded attention patterns and norm denominators (constrained); false: the
    // run computes its own (free).
    bool frozen = true;
    // Recompute each layer's activations from the run's own transcoder input (free); false:
    // hold the context's activations (constrained: direct effects only).
    bool recompute = false;
    // Called with each layer's activations [n_pos, n_features] (a copy, held or recomputed)
    // before they are decoded; may change them in place: an intervention.
    std::function<void(int64_t layer, at::Tensor& activations)> edit;
    bool errors = true; // add the error terms (false: drop them, as for the constant part)
    bool embeddings = true; // false: token embeddings removed (position embeddings stay)
    // Free runs only (frozen = false): keep the prompt's keys and values here, for generation
    // to continue from.
    model::KvCache* cache = nullptr;
};

struct RunResult {
    at::Tensor logits; // [n_pos, vocab]
    std::vector<at::Tensor> inputs; // per layer [n_pos, d_model]: the run's transcoder inputs
    std::vector<at::Tensor> activations; // per layer [n_pos, n_features]: what was decoded (after edit)
    at::Tensor finalResid; // [n_pos, d_model]
};

// The replacement model on the context's prompt. With the defaults (frozen, held, errors and
// embeddings) it reproduces the model's run up to rounding. At held positions the MLP outputs
// are always the recorded ones.
RunResult runReplacement(const ReplacementContext& context, const RunOptions& options = {});

// The demeaned logits (u_tok - mean_v u_v) . final_norm(resid) with the final norm's denominator
// frozen from the context (a linear function of resid, without soft-capping) for resid
// [n_pos, d_model] (only the position's row is read) and token ids [k]: [k] float32.
at::Tensor demeanedLogits(
    const ReplacementContext& context, const at::Tensor& resid, int64_t position, const at::Tensor& tokens);

// The read vectors of demeaned logits at the final residual: gradients of demeanedLogits with
// respect to resid[position], [k, d_model].
at::Tensor logitReadVectors(const ReplacementContext& context, int64_t position, const at::Tensor& tokens);

} // namespace cs::attribution
