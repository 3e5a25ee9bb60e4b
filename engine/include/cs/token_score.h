#pragma once
// One output token with its logit and probability: the next-token distribution (cs/engine.h)
// and the top tokens before and after an intervention (cs/intervention.h) both list these.

#include <cstdint>
#include <string>

namespace cs {

struct TokenScore {
    int64_t id = 0;
    std::string token; // the token's text ("" without a tokenizer)
    double logit = 0;
    double prob = 0;
};

} // namespace cs
