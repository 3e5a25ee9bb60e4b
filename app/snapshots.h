#pragma once
// Immutable results the engine worker hands to the UI thread, each behind a
// std::shared_ptr<const T>: built once on the worker, then only read.

#include <cs/engine.h>

#include <QString>

#include <cstdint>
#include <string>
#include <vector>

namespace cs::app {

// A model the worker has just opened.
struct ModelSnapshot {
    cs::ModelInfo info;
    double loadMs = 0; // wall time of ModelHandle::open
};

// A prompt as the model's tokenizer splits it.
struct PromptTokens {
    std::vector<int64_t> ids; // [n_pos]
    std::vector<std::string> texts; // [n_pos], each token's UTF-8 bytes (may be a partial character)
};

// The next-token distribution after the prompt's last position.
struct NextTokenDistribution {
    std::vector<cs::TokenScore> top; // the top-k, by probability, descending
};

// One run of the prompt: its tokens and the next-token distribution.
struct PromptAnalysis {
    QString prompt;
    int topK = 0;
    PromptTokens tokens;
    NextTokenDistribution next;
    double elapsedMs = 0; // encode + forward
};

// A greedy continuation of a prompt.
struct GenerationSnapshot {
    QString prompt;
    QString text; // the continuation only
    int64_t nNew = 0;
    double elapsedMs = 0;
};

} // namespace cs::app
