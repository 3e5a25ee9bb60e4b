// The autograd reference (attribution.h): rows of A as gradients of the model's own forward
// pass. Every source gets a coefficient c_s (1 in the prompt's run): a feature's activation
// becomes c_s a_s, an error vector c_s e, a token embedding c_s x. The frozen replacement model
// is linear in c, so d(target quantity)/dc_s = A[t, s]. One batch row per target: row b's
// forward pass sees its own coefficients, and the gradient of sum_b q_b with respect to c[b]
// is row b of A. Patterns and norm denominators are the recorded (detached) ones and the MLPs
// are replaced, so autograd differentiates exactly the linear model the explicit pass
// transposes by hand, through code it shares nothing with but the model's forward.
#include "attribution/frozen_norm.h"
#include "attribution/row_pass.h"

#include "cs/error.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>

namespace cs::attribution {

namespace {

// The recorded state restricted to the first `prefix` positions (causal: enough for them).
model::FrozenState slicePrefix(const model::FrozenState& frozen, int64_t prefix)
{
    model::FrozenState out;
    for (const auto& layer : frozen.layers) {
        model::FrozenState::Layer l;
        l.pattern = layer.pattern.narrow(2, 0, prefix).narrow(3, 0, prefix);
        for (size_t s = 0; s < layer.denominators.size(); ++s)
            if (layer.denominators[s].defined())
                l.denominators[s] = layer.denominators[s].narrow(1, 0, prefix);
        out.layers.push_back(std::move(l));
    }
    out.finalDenominator = frozen.finalDenominator.narrow(1, 0, prefix);
    return out;
}

class AutogradPass final : public RowPass {
public:
    explicit AutogradPass(const PassSetup& setup)
        : m_setup(setup)
        , m_ctx(*setup.context)
    {
    }

    int64_t maxRows(int64_t prefix) const override
    {
        const int64_t perRow = autogradRowBytes(m_ctx, prefix, m_setup.layout.columns());
        return std::max<int64_t>(1, m_setup.memoryBudgetBytes / std::max<int64_t>(perRow, 1));
    }

    at::Tensor rows(const std::vector<RowTarget>& targets) override;

private:
    PassSetup m_setup;
    const ReplacementContext& m_ctx;
};

at::Tensor AutogradPass::rows(const std::vector<RowTarget>& targets)
{
    at::AutoGradMode gradients(true);
    const model::Model& model = *m_ctx.model;
    const auto& mc = model.config();
    const transcoder::TranscoderSet& tc = *m_ctx.transcoders;
    const SourceLayout& layout = m_setup.layout;
    const auto device = model.device();
    const int64_t n = static_cast<int64_t>(targets.size());
    const int64_t nLayers = m_ctx.nLayers(), held = m_ctx.heldPositions;
    int64_t prefix = 0;
    for (const auto& t : targets)
        prefix = std::max(prefix, t.position + 1);
    const model::FrozenState frozen = slicePrefix(m_ctx.frozen, prefix);
    const at::TensorOptions floats = m_ctx.errors[0].options();

    at::Tensor c = at::ones({ n, layout.columns() }, floats).requires_grad_(true);

    // Dense activations per layer, [rows, prefix, n_features], scaled by their coefficients.
    std::vector<at::Tensor> acts(static_cast<size_t>(nLayers));
    const ActiveFeatures& active = m_ctx.active;
    for (int64_t l = 0; l < nLayers; ++l) {
        at::Tensor cols = ((active.layer == l) & (active.position < prefix)).nonzero().flatten();
        at::Tensor dense = at::zeros({ n, prefix, tc.nFeatures() }, floats);
        if (cols.numel() > 0) {
            at::Tensor values = c.index_select(1, cols) * active.activation.index_select(0, cols); // [rows, k]
            dense.index_put_(
                { at::indexing::Slice(), active.position.index_select(0, cols), active.feature.index_select(0, cols) },
                values);
        }
        acts[static_cast<size_t>(l)] = dense;
    }
    auto columnsOf = [&](int64_t first) { return c.narrow(1, first, prefix).unsqueeze(-1); }; // [rows, prefix, 1]

    std::vector<at::Tensor> inputs(static_cast<size_t>(nLayers));
    at::Tensor finalResid;
    const model::Hook inputHook = tc.config().inputHook;
    model::ForwardOptions fo;
    fo.frozen = &frozen;
    fo.hook = [&](int64_t layer, model::Hook hook, at::Tensor& value) {
        if (hook == model::Hook::ResidPre && layer == 0)
            value = value + m_ctx.tokenEmbeddings.narrow(0, 0, prefix) * (columnsOf(layout.embeddingColumn(0)) - 1);
        if (hook == inputHook)
            inputs[static_cast<size_t>(layer)] = value;
        if (hook == model::Hook::ResidPost && layer == nLayers - 1)
            finalResid = value;
    };
    at::Tensor heldMask; // [prefix, 1]: 1 where the MLP output is the recorded constant
    if (held > 0) {
        heldMask = at::zeros({ prefix, 1 }, floats);
        heldMask.narrow(0, 0, std::min(held, prefix)).fill_(1);
    }
    fo.mlpReplace = [&](int64_t layer, const model::MlpInputs& mlpInputs) {
        const auto i = static_cast<size_t>(layer);
        const at::Tensor& input = mlpInputs.at(inputHook);
        at::Tensor out = tc.decode(layer, acts, input)
            + m_ctx.errors[i].narrow(0, 0, prefix) * columnsOf(layout.errorColumn(layer, 0));
        if (held > 0)
            out = out * (1 - heldMask) + m_ctx.mlpOut[i].narrow(0, 0, prefix) * heldMask;
        return out;
    };
    at::Tensor ids = m_ctx.ids.narrow(0, 0, prefix).unsqueeze(0).expand({ n, prefix }).contiguous();
    model::ForwardResult run = model.forward(ids, fo);

    // Sum of every row's target quantity, each read from its own batch row.
    at::Tensor total = at::zeros({}, floats);
    for (int64_t r = 0; r < n; ++r) {
        const RowTarget& t = targets[static_cast<size_t>(r)];
        if (t.logit >= 0) {
            const LogitTarget& lt = m_setup.logits[static_cast<size_t>(t.logit)];
            at::Tensor toks = at::tensor(lt.tokens, at::kLong).to(device);
            at::Tensor coef = at::tensor(lt.coefficients, at::kDouble).to(floats);
            at::Tensor demeaned;
            if (mc.finalSoftcap > 0) {
                // Soft-capped logits are not linear in the residual: take the demeaned logit
                // before the cap, from the frozen final norm.
                const FrozenNorm norm = FrozenNorm::final(model, m_ctx.frozen);
                at::Tensor y = norm.forward(finalResid[r].narrow(0, t.position, 1), t.position).squeeze(0);
                const at::Tensor& unembed = model.weight("unembed.weight");
                demeaned = at::mv(unembed.index_select(0, toks) - unembed.mean(0, true), y);
            } else {
                at::Tensor lg = run.logits[r][t.position];
                demeaned = lg.index_select(0, toks) - lg.mean();
            }
            total = total + (demeaned * coef).sum();
        } else {
            const int64_t feature = m_ctx.active.feature[t.active].item<int64_t>();
            at::Tensor x = inputs[static_cast<size_t>(t.layer)][r][t.position];
            total = total + at::dot(tc.encoder(t.layer)[feature], x);
        }
    }
    total.backward();
    return c.grad().detach();
}

} // namespace

int64_t autogradRowBytes(const ReplacementContext& ctx, int64_t prefix, int64_t columns)
{
    // The batch row's coefficients, every layer's activations and their gradients, the
    // residual-stream tensors autograd keeps, the logits; and the output row.
    const auto& mc = ctx.model->config();
    return 4 * prefix * (3 * ctx.nLayers() * ctx.transcoders->nFeatures() + 40 * mc.dModel + 2 * mc.vocabSize)
        + 8 * columns;
}

std::unique_ptr<RowPass> makeAutogradPass(const PassSetup& setup)
{
    return std::make_unique<AutogradPass>(setup);
}

} // namespace cs::attribution
