// Transcoder evaluation (docs/ARCHITECTURE.md §5.2): per-layer reconstruction and sparsity on
// the original model's activations, and the replacement model (every MLP replaced) against the
// original.
#include "cs/transcoder_train.h"

#include "cs/error.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

namespace cs::transcoder {

EvalReport evaluateTranscoder(const model::Model& model, const TranscoderSet& set, const EvalOptions& o)
{
    set.checkFits(model.config());
    if (!model.hasTokenizer())
        throw Error("the model folder has no tokenizer.json; evaluation reads a text corpus");
    const int64_t L = set.nLayers(), F = set.nFeatures();
    const auto& cfg = set.config();
    TokenRows rows(o.corpus,
        std::shared_ptr<const model::Tokenizer>(std::shared_ptr<const model::Tokenizer>(), &model.tokenizer()),
        o.seqLen);
    // The first position holds BOS in every row: its activations are the same in every context,
    // the transcoders never train on it, and attribution graphs leave its MLP outputs exact
    // (error nodes), so it is kept exact here too and left out of every figure.
    std::vector<double> errSum(static_cast<size_t>(L)), sqSum(static_cast<size_t>(L)), l0Sum(static_cast<size_t>(L));
    std::vector<at::Tensor> ySum(static_cast<size_t>(L));
    at::Tensor everFired = at::zeros({ L, F }, at::kBool);
    double agree = 0, klSum = 0;
    int64_t tokens = 0;
    at::NoGradGuard noGrad;
    while (tokens < o.maxTokens) {
        const int64_t want = std::max<int64_t>(1, (o.maxTokens - tokens + o.seqLen - 2) / (o.seqLen - 1));
        at::Tensor ids = rows.next(std::min(o.batchRows, want));
        if (ids.size(0) == 0)
            break;
        ids = ids.to(model.device());
        const int64_t n = ids.size(0) * (o.seqLen - 1);

        // The original model: inputs and outputs at the set's hooks, and its logits.
        std::vector<at::Tensor> in(static_cast<size_t>(L)), out(static_cast<size_t>(L));
        model::ForwardOptions fo;
        fo.hook = [&](int64_t layer, model::Hook hook, at::Tensor& value) {
            if (hook == cfg.inputHook)
                in[static_cast<size_t>(layer)] = value;
            if (hook == cfg.outputHook)
                out[static_cast<size_t>(layer)] = value;
        };
        at::Tensor logits = model.forward(ids, fo).logits;

        std::vector<at::Tensor> acts(static_cast<size_t>(L));
        for (int64_t l = 0; l < L; ++l)
            acts[static_cast<size_t>(l)] = set.encode(l, in[static_cast<size_t>(l)]);
        for (int64_t l = 0; l < L; ++l) {
            const auto i = static_cast<size_t>(l);
            at::Tensor y = out[i].narrow(1, 1, o.seqLen - 1).to(at::kFloat);
            at::Tensor yHat = set.decode(l, acts, in[i]).narrow(1, 1, o.seqLen - 1);
            errSum[i] += (yHat - y).pow(2).sum().item<double>();
            sqSum[i] += y.pow(2).sum().item<double>();
            at::Tensor ys = y.sum(at::IntArrayRef { 0, 1 }).to(at::kDouble).cpu();
            ySum[i] = ySum[i].defined() ? ySum[i] + ys : ys;
            at::Tensor fired = acts[i].narrow(1, 1, o.seqLen - 1).gt(0);
            l0Sum[i] += fired.sum().item<double>();
            everFired[l].logical_or_(fired.flatten(0, 1).any(0).cpu());
        }

        // The replacement model, its first position kept exact as above.
        model::ForwardOptions ro;
        auto replace = set.replacement();
        ro.mlpReplace = [&](int64_t layer, const model::MlpInputs& inputs) {
            at::Tensor r = replace(layer, inputs);
            r.narrow(1, 0, 1).copy_(out[static_cast<size_t>(layer)].narrow(1, 0, 1));
            return r;
        };
        at::Tensor replaced = model.forward(ids, ro).logits;
        at::Tensor p = at::log_softmax(logits.narrow(1, 1, o.seqLen - 1).to(at::kFloat), -1);
        at::Tensor q = at::log_softmax(replaced.narrow(1, 1, o.seqLen - 1).to(at::kFloat), -1);
        agree += p.argmax(-1).eq(q.argmax(-1)).sum().item<double>();
        klSum += (p.exp() * (p - q)).sum().item<double>();
        tokens += n;
    }
    if (tokens == 0)
        throw Error("corpus " + o.corpus + " has no full row of " + std::to_string(o.seqLen) + " tokens to evaluate");

    EvalReport report;
    report.tokens = tokens;
    for (int64_t l = 0; l < L; ++l) {
        const auto i = static_cast<size_t>(l);
        // sum ||y - mean||^2 = sum ||y||^2 - n ||mean||^2
        const double meanSq = ySum[i].pow(2).sum().item<double>() / static_cast<double>(tokens);
        const double variance = std::max(sqSum[i] - meanSq, 1e-30);
        LayerMetrics m;
        m.layer = l;
        m.nmse = errSum[i] / variance;
        m.l0 = l0Sum[i] / static_cast<double>(tokens);
        m.deadFraction = 1.0 - everFired[l].to(at::kDouble).mean().item<double>();
        report.layers.push_back(m);
    }
    report.top1Agreement = agree / static_cast<double>(tokens);
    report.kl = klSum / static_cast<double>(tokens);
    return report;
}

} // namespace cs::transcoder
