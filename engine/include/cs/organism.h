#pragma once
// Tinyworld, the model organism (docs/ARCHITECTURE.md §10): a synthetic world of real names,
// the corpus generated from it, its evaluation sets, and the byte-level BPE tokenizer trained
// on it.
// Everything here is deterministic from a seed and free of LibTorch.
//
// Tasks and their eval splits:
//   sports     "Fact: Michael Jordan plays the sport of" -> " basketball"   train, heldout_phrasing
//   facts      "The capital of Texas is" -> " Austin" (and city -> state)  train, heldout_phrasing
//   two_hop    "Fact: the capital of the state containing Dallas is" -> " Austin"   train, heldout
//   addition   "calc: 36+59=" -> "95"                                      train, heldout
//   agreement  "The keys to the cabinet" -> " are"                         train, heldout
//   opposites  "The opposite of \"small\" is \"" -> "big"                  train, heldout_phrasing
// A "heldout_phrasing" split asks trained facts in phrasings no training line uses; a
// "heldout" split asks items no training line contains (two-hop questions whose one-hop facts
// are trained, addition pairs, subject/distractor noun combinations).

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cs::organism {

struct WorldOptions {
    // Chooses the held-out items and the order of the training stream.
    uint64_t seed = 1;
    // The phrasings of sports, facts and opposites. 1: fixed sentence templates, two wholly
    // new ones held out (what the first shipped tinyworld was trained on). 2: every relation
    // template under several frames ("", "Fact: ", "Trivia: ", ...), with one frame of each
    // relation held out, so a held-out phrasing is a new combination of trained parts.
    // 3: version 2 with 419 cities (v2: 193), the first hop in the two-hop questions' words
    // ("The state containing Dallas is Texas."), the states' postal codes, and two-hop
    // questions over both relations of the state (capital, postal code), each holding out a
    // different fifth of the cities; two-hop is 20% of the lines (v2: 10%).
    int version = 3;
};

// One evaluation question: prompt ends exactly where the answer begins. The answer carries its
// leading space when it is a new word (" basketball", " are"); digits follow "=" directly
// ("95"); opposites end the prompt with the opening quote, so the answer is the bare word.
struct EvalItem {
    std::string task;
    std::string split;
    std::string prompt;
    std::string answer;
    // When set, the item is a forced choice (Marks et al.'s agreement metric): the answer's
    // first token must outscore this one's. Agreement needs it: a prompt may end inside a
    // plural noun (" chair" + "s"), so greedy decoding would be scored on the noun, not the verb.
    std::string contrast;
    // One of the paper's canonical prompts (Michael Jordan's sport, Dallas's capital, 36+59).
    bool canonical = false;
};

// Sizes of the world, for reports and tests.
struct WorldStats {
    size_t people = 0, sports = 0;
    size_t states = 0, cities = 0; // cities exclude the capitals
    size_t heldoutTwoHopCities = 0; // cities in a held-out two-hop question
    size_t heldoutTwoHopQuestions = 0; // (city, relation) pairs held out
    size_t additionPairs = 0, heldoutAdditionPairs = 0;
    size_t nounPairs = 0, agreementCombos = 0, heldoutAgreementCombos = 0;
    size_t antonymPairs = 0;
};

class World {
public:
    explicit World(const WorldOptions& options = {});
    ~World();
    World(const World&);
    World& operator=(const World&);

    // Training line `index` (no newline), a function of (seed, index) alone; never contains a
    // held-out item or phrasing. Task mix: addition 35%, sports 20%, facts 15%, two-hop 10%,
    // agreement 10%, opposites 10%.
    std::string trainLine(uint64_t index) const;
    // The task name of trainLine(index).
    std::string trainTask(uint64_t index) const;

    // Every eval item: for each task up to 200 "train" items (the canonical prompts first) and
    // all held-out items (agreement: up to 1,000 of them). Same seed, same list.
    std::vector<EvalItem> evalItems() const;

    // n held-out lines as full text, in the same task mix as training (for evaluating
    // transcoders on text the model never saw).
    std::vector<std::string> heldoutLines(size_t n) const;

    std::vector<std::string> tasks() const;
    WorldStats stats() const;
    uint64_t seed() const;
    int version() const;

    struct Impl;

private:
    std::shared_ptr<const Impl> d;
};

// Writes trainLine(0 .. nLines-1), one per line, to path (atomically); throws cs::Error.
void writeTrainText(const World& world, uint64_t nLines, const std::string& path);
// Writes heldoutLines(nLines), one per line, to path (atomically); throws cs::Error.
void writeHeldoutText(const World& world, uint64_t nLines, const std::string& path);
// Writes evalItems() as JSON lines {"task","split","prompt","answer"}; throws cs::Error.
void writeEvalJsonl(const World& world, const std::string& path);

// ---------------------------------------------------------------- BPE tokenizer trainer

struct BpeOptions {
    // The whole vocabulary: special tokens, the 256 byte tokens and the merged tokens (fewer
    // when the lines run out of pairs seen minPairCount times).
    int64_t vocabSize = 1024;
    // Ids 0, 1, 2, ...; the first is the BOS the post-processor prepends, the second is EOS.
    std::vector<std::string> specialTokens = { "<|bos|>", "<|eos|>", "<|pad|>" };
    // A pair seen fewer times than this is never merged (so small inputs stop early).
    int64_t minPairCount = 2;
};

// Trains byte-level BPE on lines and returns the tokenizer.json text. The pre-tokenizer splits
// digits one per token, then applies GPT-2's byte-level regex; merges go to the most frequent
// pair, ties to the lexicographically smallest (left, right). Throws cs::Error when vocabSize
// cannot hold the specials and the 256 bytes.
std::string trainBpeTokenizerJson(const std::vector<std::string>& lines, const BpeOptions& options = {});
// The tokenizer_config.json that goes beside it: names BOS, EOS and PAD (the first three
// specials; the tokenizer finds EOS nowhere else), keeps tokenizer.json's post-processor
// (PreTrainedTokenizerFast) and turns off transformers' space clean-up, so decode is exact.
std::string bpeTokenizerConfigJson(const BpeOptions& options = {});

} // namespace cs::organism
