// Token-by-token generation, with a KV cache (each step runs only the new token) or by
// recomputing the whole prefix (the reference the cache is checked against).
#include "cs/error.h"
#include "cs/model.h"

#include <ATen/ATen.h>

#include <random>

namespace cs::model {

namespace {

// Greedy (temperature 0) or sampled from softmax(logits / temperature), on the CPU with a
// seeded generator so a seed gives the same text on every device.
int64_t pickToken(const at::Tensor& lastLogits, double temperature, std::mt19937_64& rng)
{
    at::Tensor logits = lastLogits.to(at::kCPU, at::kDouble);
    if (temperature <= 0)
        return logits.argmax().item<int64_t>();
    at::Tensor probs = at::softmax(logits / temperature, -1).contiguous();
    const double* p = probs.data_ptr<double>();
    const int64_t n = probs.numel();
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    double u = uniform(rng), acc = 0;
    for (int64_t i = 0; i < n; ++i) {
        acc += p[i];
        if (u < acc)
            return i;
    }
    return n - 1;
}

} // namespace

std::vector<int64_t> Model::generate(const std::vector<int64_t>& prompt, const GenerateOptions& options) const
{
    if (prompt.empty())
        throw Error("generate: the prompt has no tokens");
    if (options.maxNew < 0)
        throw Error("generate: the number of new tokens must not be negative");
    std::optional<int64_t> eos = m_config.eosTokenId;
    if (!eos && m_tokenizer)
        eos = m_tokenizer->eosId();
    std::mt19937_64 rng(options.seed);
    ForwardOptions fo;
    fo.hook = options.hook;
    KvCache cache;
    if (options.useCache)
        fo.cache = &cache;

    std::vector<int64_t> all = prompt, out;
    at::Tensor input = at::tensor(prompt, at::kLong);
    for (int64_t step = 0; step < options.maxNew; ++step) {
        if (step > 0 && static_cast<int64_t>(all.size()) > m_config.maxPositions)
            break; // the next token would have no position
        at::Tensor logits = forward(input, fo).logits; // [1, n, vocab]
        const at::Tensor last = logits[0][logits.size(1) - 1]; // [vocab]
        // A model that loads finite can still overflow: a NaN logit would pick a token at random.
        if (!at::isfinite(last).all().item<bool>())
            throw Error("generate: the model's logits for new token " + std::to_string(step + 1) + " (position "
                + std::to_string(all.size() - 1)
                + ") are not finite (NaN or infinite): the forward pass overflows (in float16, or with weights too "
                  "large)");
        const int64_t next = pickToken(last, options.temperature, rng);
        out.push_back(next);
        all.push_back(next);
        if (options.stopAtEos && eos && next == *eos)
            break;
        input = options.useCache ? at::tensor(std::vector<int64_t> { next }, at::kLong) : at::tensor(all, at::kLong);
    }
    return out;
}

} // namespace cs::model
