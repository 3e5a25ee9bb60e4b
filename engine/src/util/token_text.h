#pragma once
// A token's text for graph nodes, shared by the two tracers (attribution/, neurons/).

#include "cs/model.h"

#include <string>

namespace cs::model {

// The tokenizer's text of a token, or "<id>" when the model has no tokenizer.
inline std::string tokenText(const Model& model, int64_t id)
{
    return model.hasTokenizer() ? model.tokenizer().tokenText(id) : "<" + std::to_string(id) + ">";
}

} // namespace cs::model
