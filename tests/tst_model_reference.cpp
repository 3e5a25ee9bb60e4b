// The model families against an independent reference.
//
// The reference forward pass (fixtures/reference.cpp) is written from the semantics of
// Hugging Face transformers' LlamaForCausalLM, Qwen3ForCausalLM, Gemma2ForCausalLM and
// GPT2LMHeadModel, independently of the engine: it reads the checkpoint by Hugging Face
// tensor names and shares no code with engine/src/model or plugins/. The tiny models are
// real Hugging Face folders written by fixtures/hf_fixtures.cpp. Every check here compares
// the engine with that reference or with another path through the engine that must agree
// (cache vs recomputation, batch vs rows, frozen replay vs the recorded run).

#include "hf_fixtures.h"
#include "reference.h"

#include "cs/error.h"
#include "cs/model.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <nlohmann/json.hpp>

#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <limits>
#include <map>
#include <memory>
#include <random>

using cs::model::ForwardOptions;
using cs::model::ForwardResult;
using cs::model::Hook;
using cs::model::Model;
using cs::test::TinySpec;
using cs::test::WeightMap;

namespace {

// Engine (float32) against the float64 reference: max|a - b| / max|b|.
constexpr double kRelTol = 1e-5;

// max|a - b| / max|b| over tensors of the same shape; +inf when the shapes differ.
double relDiff(const at::Tensor& actual, const at::Tensor& expected)
{
    const at::Tensor a = actual.detach().to(at::kCPU).to(at::kDouble);
    const at::Tensor e = expected.detach().to(at::kCPU).to(at::kDouble);
    if (a.sizes() != e.sizes())
        return std::numeric_limits<double>::infinity();
    const double scale = std::max(e.abs().max().item<double>(), 1e-30);
    return (a - e).abs().max().item<double>() / scale;
}

double absDiff(const at::Tensor& actual, const at::Tensor& expected)
{
    const at::Tensor a = actual.detach().to(at::kCPU).to(at::kDouble);
    const at::Tensor e = expected.detach().to(at::kCPU).to(at::kDouble);
    if (a.sizes() != e.sizes())
        return std::numeric_limits<double>::infinity();
    return (a - e).abs().max().item<double>();
}

QString shapeOf(const at::Tensor& t)
{
    QStringList dims;
    for (int64_t d : t.sizes())
        dims << QString::number(d);
    return "[" + dims.join(", ") + "]";
}

} // namespace

// Fails the test when `diff` (a relDiff or absDiff) exceeds `tol`, saying what and by how much.
#define CS_COMPARE_TENSORS(diffFn, actual, expected, tol, what)                                                        \
    do {                                                                                                               \
        const double diff_ = diffFn((actual), (expected));                                                             \
        QVERIFY2(diff_ <= (tol),                                                                                       \
            qPrintable(QString("%1: %2 %3 vs %4, difference %5 > %6")                                                  \
                           .arg(QString(what))                                                                         \
                           .arg(#diffFn)                                                                               \
                           .arg(shapeOf(actual))                                                                       \
                           .arg(shapeOf(expected))                                                                     \
                           .arg(diff_)                                                                                 \
                           .arg(tol)));                                                                                \
    } while (0)

// Fails the test unless `tensor` has exactly the shape `dims` (a parenthesized brace list).
#define CS_VERIFY_SHAPE(tensor, dims)                                                                                  \
    do {                                                                                                               \
        const std::vector<int64_t> want_ = std::vector<int64_t> dims;                                                  \
        QVERIFY2((tensor).sizes() == at::IntArrayRef(want_),                                                           \
            qPrintable(QString("%1 has shape %2").arg(#tensor).arg(shapeOf(tensor))));                                 \
    } while (0)

class TestModelReference : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();

    void config_data() { addRows(); }
    void config();
    void logits_data() { addRows(); }
    void logits();
    void hooks_data() { addRows(); }
    void hooks();
    void hookInterventions_data() { addRows(); }
    void hookInterventions();
    void kvCache_data() { addRows(); }
    void kvCache();
    void generateCachedEqualsRecomputed_data() { addRows(); }
    void generateCachedEqualsRecomputed();
    void batchEqualsRows_data() { addRows(); }
    void batchEqualsRows();
    void frozenReplay_data() { addRows(); }
    void frozenReplay();
    void mlpReplace_data() { addRows(); }
    void mlpReplace();
    void configDefaults_data();
    void configDefaults();
    void tokenizerFromFolder();
    void cudaMatchesCpu_data() { addRows(); }
    void cudaMatchesCpu();

private:
    struct Fixture {
        TinySpec spec;
        QString folder;
        std::shared_ptr<const Model> model;
        WeightMap weights; // as stored in the checkpoint
    };

    static std::vector<std::pair<QString, TinySpec>> rows();
    static void addRows();
    const Fixture& fixture();

    std::unique_ptr<QTemporaryDir> m_dir;
    std::map<QString, Fixture> m_fixtures;
};

std::vector<std::pair<QString, TinySpec>> TestModelReference::rows()
{
    // Large norm epsilons, so that a plugin that ignores the configured one shows.
    TinySpec llama;
    llama.family = "llama";
    llama.normEps = 1e-2;

    TinySpec llamaUntied = llama;
    llamaUntied.tied = false;
    llamaUntied.seed = 2;

    TinySpec llamaMha = llama;
    llamaMha.nKvHeads = 4;
    llamaMha.seed = 3;

    TinySpec llamaLinear = llama;
    llamaLinear.ropeScaling = "linear";
    llamaLinear.ropeFactor = 2.0;
    llamaLinear.ropeTheta = 100.0; // fast rotations, so position errors show at short prompts
    llamaLinear.seed = 4;

    TinySpec llama3 = llama;
    llama3.ropeScaling = "llama3";
    llama3.ropeFactor = 8.0;
    llama3.seed = 5;

    TinySpec llamaF16 = llama;
    llamaF16.storeDtype = "F16";
    llamaF16.seed = 6;

    TinySpec llamaBf16 = llama;
    llamaBf16.storeDtype = "BF16";
    llamaBf16.tied = false;
    llamaBf16.seed = 7;

    TinySpec llamaSharded = llama;
    llamaSharded.sharded = true;
    llamaSharded.tied = false;
    llamaSharded.seed = 8;

    TinySpec qwen3;
    qwen3.family = "qwen3";
    qwen3.dHead = 12; // head_dim != hidden_size / num_attention_heads, as in Qwen3 models
    qwen3.normEps = 2e-2;
    qwen3.ropeTheta = 1000.0;
    qwen3.seed = 9;

    TinySpec qwen3Bf16 = qwen3;
    qwen3Bf16.storeDtype = "BF16";
    qwen3Bf16.tied = false;
    qwen3Bf16.seed = 10;

    TinySpec gemma2;
    gemma2.family = "gemma2";
    gemma2.nLayers = 3; // layers 0 and 2 slide
    gemma2.dHead = 16;
    gemma2.normEps = 3e-2;
    gemma2.seed = 11;

    TinySpec gemma2F16 = gemma2;
    gemma2F16.storeDtype = "F16";
    gemma2F16.sharded = true;
    gemma2F16.seed = 12;

    TinySpec gpt2;
    gpt2.family = "gpt2";
    gpt2.dMlp = 128; // n_inner: null
    gpt2.normEps = 1e-2;
    gpt2.seed = 13;

    TinySpec gpt2Inner = gpt2;
    gpt2Inner.dMlp = 48; // n_inner given
    gpt2Inner.storeDtype = "BF16";
    gpt2Inner.seed = 14;

    TinySpec gpt2Bare = gpt2;
    gpt2Bare.gpt2Prefix = false; // "h.0.attn.c_attn.weight", as openai-community/gpt2 stores them
    gpt2Bare.seed = 15;

    return {
        { "llama", llama },
        { "llama_untied", llamaUntied },
        { "llama_mha", llamaMha },
        { "llama_rope_linear", llamaLinear },
        { "llama_rope_llama3", llama3 },
        { "llama_f16", llamaF16 },
        { "llama_bf16_untied", llamaBf16 },
        { "llama_sharded", llamaSharded },
        { "qwen3", qwen3 },
        { "qwen3_bf16_untied", qwen3Bf16 },
        { "gemma2", gemma2 },
        { "gemma2_f16_sharded", gemma2F16 },
        { "gpt2", gpt2 },
        { "gpt2_n_inner_bf16", gpt2Inner },
        { "gpt2_hub_names", gpt2Bare },
    };
}

void TestModelReference::addRows()
{
    QTest::addColumn<QString>("row");
    for (const auto& [name, spec] : rows())
        QTest::newRow(qPrintable(name)) << name;
}

// The current row's model, written and loaded once.
const TestModelReference::Fixture& TestModelReference::fixture()
{
    QFETCH(QString, row);
    const auto found = m_fixtures.find(row);
    if (found != m_fixtures.end())
        return found->second;
    Fixture f;
    for (const auto& [name, spec] : rows())
        if (name == row)
            f.spec = cs::test::normalized(spec);
    f.folder = cs::test::writeTinyModel(m_dir->filePath(row), f.spec);
    f.weights = cs::test::readAllTensors(f.folder);
    f.model = Model::load(f.folder.toStdString(), { "cpu" });
    return m_fixtures.emplace(row, std::move(f)).first->second;
}

namespace {

std::vector<int64_t> randomIds(int64_t n, int64_t vocab, uint64_t seed)
{
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<int64_t> pick(0, vocab - 1);
    std::vector<int64_t> ids;
    for (int64_t i = 0; i < n; ++i)
        ids.push_back(pick(rng));
    return ids;
}

at::Tensor idsTensor(const std::vector<int64_t>& ids)
{
    return at::tensor(ids, at::kLong).unsqueeze(0);
}

// The prompt most checks use: longer than gemma2's sliding window (4).
constexpr int64_t kPromptLen = 12;

// Every hook value one forward passed, by (layer, hook), and how often each came.
struct HookRecorder {
    std::map<std::pair<int64_t, Hook>, at::Tensor> values;
    std::map<std::pair<int64_t, Hook>, int> counts;
    cs::model::HookFn fn()
    {
        return [this](int64_t layer, Hook hook, at::Tensor& value) {
            values[{ layer, hook }] = value.detach().clone();
            ++counts[{ layer, hook }];
        };
    }
    const at::Tensor& at(int64_t layer, Hook hook) const { return values.at({ layer, hook }); }
};

constexpr Hook kAllHooks[] = { Hook::ResidPre, Hook::AttnOut, Hook::ResidMid, Hook::MlpNormalized, Hook::MlpIn,
    Hook::MlpHidden, Hook::MlpOut, Hook::ResidPost, Hook::AttnPattern };

} // namespace

void TestModelReference::initTestCase()
{
    m_dir = std::make_unique<QTemporaryDir>(cs::test::testTempRoot() + "/tst_model_reference-XXXXXX");
    QVERIFY(m_dir->isValid());
}

// The plugin read the config.json keys as transformers does.
void TestModelReference::config()
{
    const Fixture& f = fixture();
    const cs::model::ModelConfig& c = f.model->config();
    const TinySpec& s = f.spec;
    QCOMPARE(QString::fromStdString(c.family), QString::fromStdString(s.family));
    QCOMPARE(c.nLayers, s.nLayers);
    QCOMPARE(c.dModel, s.dModel);
    QCOMPARE(c.nHeads, s.nHeads);
    QCOMPARE(c.nKvHeads, s.nKvHeads);
    QCOMPARE(c.dHead, s.dHead);
    QCOMPARE(c.dMlp, s.dMlp);
    QCOMPARE(c.vocabSize, s.vocab);
    QCOMPARE(c.normEps, s.normEps);
    QCOMPARE(c.tiedEmbeddings, s.tied);
    QCOMPARE(QString::fromStdString(f.model->storedDType()), QString::fromStdString(s.storeDtype));
    QVERIFY(c.bosTokenId.has_value());
    QCOMPARE(*c.bosTokenId, cs::test::kTinyBosId);
    QVERIFY(f.model->hasTokenizer());
    if (s.family == "gemma2") {
        QCOMPARE(c.slidingWindow, s.slidingWindow);
        QCOMPARE(int64_t(c.slidingLayers.size()), s.nLayers);
        for (int64_t l = 0; l < s.nLayers; ++l)
            QCOMPARE(bool(c.slidingLayers[size_t(l)]), l % 2 == 0);
        QCOMPARE(c.attnSoftcap, s.attnSoftcap);
        QCOMPARE(c.finalSoftcap, s.finalSoftcap);
        QVERIFY(std::abs(c.queryScale - 1.0 / std::sqrt(s.queryPreAttnScalar)) < 1e-12);
    }
    if (!s.ropeScaling.empty()) {
        QCOMPARE(QString::fromStdString(c.ropeScaling.type), QString::fromStdString(s.ropeScaling));
        QCOMPARE(c.ropeScaling.factor, s.ropeFactor);
    }
}

// Our logits against the reference forward pass.
void TestModelReference::logits()
{
    const Fixture& f = fixture();
    const std::vector<int64_t> ids = randomIds(kPromptLen, f.spec.vocab, 100);
    const at::Tensor expected = cs::test::referenceLogits(f.spec, f.weights, ids); // [n_pos, vocab]
    QVERIFY2(expected.std().item<double>() > 0.1, "the reference logits are degenerate: the test would prove nothing");

    const ForwardResult result = f.model->forward(idsTensor(ids));
    QCOMPARE(result.logits.dim(), int64_t(3));
    QCOMPARE(result.logits.scalar_type(), at::kFloat);
    CS_COMPARE_TENSORS(relDiff, result.logits[0], expected, kRelTol, "logits");

    // A 1-d ids tensor is one sequence.
    const ForwardResult flat = f.model->forward(at::tensor(ids, at::kLong));
    CS_COMPARE_TENSORS(relDiff, flat.logits.reshape({ kPromptLen, -1 }), expected, kRelTol, "logits from 1-d ids");
}

// Every hook point: passed once per layer, recomposing the stream exactly, and equal to the
// reference's intermediate values; attention patterns normalized, causal and windowed.
void TestModelReference::hooks()
{
    const Fixture& f = fixture();
    const TinySpec& s = f.spec;
    const std::vector<int64_t> ids = randomIds(kPromptLen, s.vocab, 200);
    cs::test::ReferenceTrace trace;
    cs::test::ReferenceOptions refOptions;
    refOptions.trace = &trace;
    cs::test::referenceLogits(s, f.weights, ids, refOptions);

    HookRecorder rec;
    ForwardOptions options;
    options.hook = rec.fn();
    f.model->forward(idsTensor(ids), options);

    for (int64_t l = 0; l < s.nLayers; ++l) {
        const QString where = QString("layer %1 ").arg(l);
        for (Hook hook : kAllHooks) {
            const int count = rec.counts[{ l, hook }];
            QVERIFY2(count == 1, qPrintable(where + cs::model::hookName(hook) + " called " + QString::number(count)));
        }
        const at::Tensor residPre = rec.at(l, Hook::ResidPre);
        const at::Tensor attnOut = rec.at(l, Hook::AttnOut);
        const at::Tensor residMid = rec.at(l, Hook::ResidMid);
        const at::Tensor mlpOut = rec.at(l, Hook::MlpOut);
        const at::Tensor residPost = rec.at(l, Hook::ResidPost);
        const at::Tensor pattern = rec.at(l, Hook::AttnPattern);
        CS_VERIFY_SHAPE(residPre, ({ 1, kPromptLen, s.dModel }));
        CS_VERIFY_SHAPE(rec.at(l, Hook::MlpIn), ({ 1, kPromptLen, s.dModel }));
        CS_VERIFY_SHAPE(rec.at(l, Hook::MlpHidden), ({ 1, kPromptLen, s.dMlp }));
        CS_VERIFY_SHAPE(pattern, ({ 1, s.nHeads, kPromptLen, kPromptLen }));

        // The stream recomposes: float32 sums of the same operands, so equal to rounding.
        const double streamTol = 1e-6 * std::max(1.0, residPost.abs().max().item<double>());
        CS_COMPARE_TENSORS(
            absDiff, residMid, residPre + attnOut, streamTol, where + "resid_mid = resid_pre + attn_out");
        CS_COMPARE_TENSORS(
            absDiff, residPost, residMid + mlpOut, streamTol, where + "resid_post = resid_mid + mlp_out");
        if (l + 1 < s.nLayers)
            CS_COMPARE_TENSORS(
                absDiff, rec.at(l + 1, Hook::ResidPre), residPost, 0.0, where + "resid_post = next resid_pre");

        // Against the reference's values at the same points.
        const cs::test::ReferenceTrace::Layer& ref = trace.layers[size_t(l)];
        CS_COMPARE_TENSORS(relDiff, residPre[0], ref.residPre, kRelTol, where + "resid_pre");
        CS_COMPARE_TENSORS(relDiff, attnOut[0], ref.attnOut, kRelTol, where + "attn_out");
        CS_COMPARE_TENSORS(relDiff, residMid[0], ref.residMid, kRelTol, where + "resid_mid");
        CS_COMPARE_TENSORS(relDiff, rec.at(l, Hook::MlpIn)[0], ref.mlpIn, kRelTol, where + "mlp_in");
        // mlp_normalized is the MLP-input norm before its weight (TransformerLens's
        // ln2.hook_normalized): the centered (LayerNorm) residual over the reference's denominator.
        const at::Tensor centered = s.family == "gpt2" ? ref.residMid - ref.residMid.mean({ -1 }, true) : ref.residMid;
        CS_COMPARE_TENSORS(relDiff, rec.at(l, Hook::MlpNormalized)[0], centered / ref.denominators.at("mlp_in"),
            kRelTol, where + "mlp_normalized");
        CS_COMPARE_TENSORS(relDiff, rec.at(l, Hook::MlpHidden)[0], ref.mlpHidden, kRelTol, where + "mlp_hidden");
        CS_COMPARE_TENSORS(relDiff, mlpOut[0], ref.mlpOut, kRelTol, where + "mlp_out");
        CS_COMPARE_TENSORS(relDiff, residPost[0], ref.residPost, kRelTol, where + "resid_post");
        CS_COMPARE_TENSORS(absDiff, pattern[0], ref.pattern, kRelTol, where + "attn_pattern");

        // Rows sum to one; no weight on later keys, nor (gemma2's even layers) on keys at or
        // beyond the window: k is visible to q iff q - window < k <= q.
        const at::Tensor p = pattern[0].to(at::kDouble); // [n_heads, n_pos, n_keys]
        CS_COMPARE_TENSORS(
            absDiff, p.sum(-1), at::ones({ s.nHeads, kPromptLen }, at::kDouble), 1e-5, where + "pattern row sums");
        const bool sliding = s.family == "gemma2" && l % 2 == 0;
        const at::Tensor ones = at::ones({ kPromptLen, kPromptLen }, at::kBool);
        at::Tensor hidden = at::triu(ones, 1);
        if (sliding)
            hidden = hidden.logical_or(at::tril(ones, -s.slidingWindow));
        const double leaked = p.masked_select(hidden.expand_as(p)).abs().max().item<double>();
        QVERIFY2(leaked == 0.0, qPrintable(where + QString("pattern puts %1 on masked keys").arg(leaked)));
        if (sliding) {
            // And the window really is in force: the visible keys carry all the weight.
            const at::Tensor visible = hidden.logical_not().expand_as(p);
            CS_COMPARE_TENSORS(absDiff, p.masked_fill(visible.logical_not(), 0.0).sum(-1),
                at::ones({ s.nHeads, kPromptLen }, at::kDouble), 1e-5, where + "windowed row sums");
        }
    }
}

// Hooks that replace values steer the rest of the forward pass as they do in the reference.
void TestModelReference::hookInterventions()
{
    const Fixture& f = fixture();
    const TinySpec& s = f.spec;
    const std::vector<int64_t> ids = randomIds(kPromptLen, s.vocab, 300);
    const int64_t last = s.nLayers - 1;
    at::Tensor shift = at::linspace(-0.5, 0.5, s.dModel, at::kDouble); // [d_model], added to resid_pre

    cs::test::ReferenceOptions refOptions;
    refOptions.hook = [&](int64_t layer, const std::string& hook, at::Tensor& value) {
        if (layer == 0 && hook == "resid_pre")
            value = value + shift;
        if (layer == 0 && hook == "attn_out")
            value = value * 0.5;
        if (layer == last && hook == "mlp_hidden") {
            value = value.clone();
            value.select(-1, 3).zero_();
        }
    };
    const at::Tensor expected = cs::test::referenceLogits(s, f.weights, ids, refOptions);

    ForwardOptions options;
    options.hook = [&](int64_t layer, Hook hook, at::Tensor& value) {
        if (layer == 0 && hook == Hook::ResidPre)
            value = value + shift.to(value.options());
        if (layer == 0 && hook == Hook::AttnOut)
            value = value * 0.5;
        if (layer == last && hook == Hook::MlpHidden) {
            value = value.clone();
            value.select(-1, 3).zero_();
        }
    };
    const ForwardResult steered = f.model->forward(idsTensor(ids), options);
    CS_COMPARE_TENSORS(relDiff, steered.logits[0], expected, kRelTol, "logits under hook interventions");
    const at::Tensor plain = cs::test::referenceLogits(s, f.weights, ids);
    QVERIFY2(relDiff(expected, plain) > 1e-3, "the interventions changed nothing: the test would prove nothing");
}

// A KV-cached forward (prefix, a chunk, then one token at a time) gives the full forward's
// logits at every position.
void TestModelReference::kvCache()
{
    const Fixture& f = fixture();
    const std::vector<int64_t> ids = randomIds(kPromptLen, f.spec.vocab, 400);
    const at::Tensor full = f.model->forward(idsTensor(ids)).logits[0]; // [n_pos, vocab]

    cs::model::KvCache cache;
    ForwardOptions options;
    options.cache = &cache;
    // Steps: a prefix of 5, a chunk of 3 (crossing gemma2's window), then single tokens.
    std::vector<std::pair<int64_t, int64_t>> steps = { { 0, 5 }, { 5, 8 } };
    for (int64_t p = 8; p < kPromptLen; ++p)
        steps.emplace_back(p, p + 1);
    for (const auto& [begin, end] : steps) {
        const std::vector<int64_t> part(ids.begin() + begin, ids.begin() + end);
        const at::Tensor logits = f.model->forward(idsTensor(part), options).logits[0];
        QCOMPARE(cache.length(), end);
        const double diff
            = (logits.to(at::kDouble) - full.slice(0, begin, end).to(at::kDouble)).abs().max().item<double>()
            / full.abs().max().item<double>();
        QVERIFY2(diff <= kRelTol,
            qPrintable(
                QString("cached positions %1..%2 differ from the full forward by %3").arg(begin).arg(end).arg(diff)));
    }
    QCOMPARE(int64_t(cache.keys.size()), f.spec.nLayers);
    CS_VERIFY_SHAPE(cache.keys[0], ({ 1, f.spec.nKvHeads, kPromptLen, f.spec.dHead }));
    CS_VERIFY_SHAPE(cache.values[0], ({ 1, f.spec.nKvHeads, kPromptLen, f.spec.dHead }));
}

// Greedy generation with the cache equals generation that recomputes the prefix, and each
// chosen token is the reference's argmax (up to float32 ties).
void TestModelReference::generateCachedEqualsRecomputed()
{
    const Fixture& f = fixture();
    const std::vector<int64_t> prompt = randomIds(5, f.spec.vocab, 500);
    cs::model::GenerateOptions options;
    options.maxNew = 10;
    options.stopAtEos = false;
    options.useCache = true;
    const std::vector<int64_t> cached = f.model->generate(prompt, options);
    options.useCache = false;
    const std::vector<int64_t> recomputed = f.model->generate(prompt, options);
    QCOMPARE(int64_t(cached.size()), options.maxNew);
    QCOMPARE(cached, recomputed);

    std::vector<int64_t> seq = prompt;
    for (int64_t token : cached) {
        const at::Tensor next = cs::test::referenceLogits(f.spec, f.weights, seq)[int64_t(seq.size()) - 1];
        const double best = next.max().item<double>();
        const double chosen = next[token].item<double>();
        QVERIFY2(chosen >= best - 1e-4 * std::max(1.0, std::abs(best)),
            qPrintable(QString("generated %1 (reference logit %2) where the reference's best is %3")
                           .arg(token)
                           .arg(chosen)
                           .arg(best)));
        seq.push_back(token);
    }
}

// A batch of three sequences gives each row's logits as a run of that row alone.
void TestModelReference::batchEqualsRows()
{
    const Fixture& f = fixture();
    constexpr int64_t kBatch = 3;
    constexpr int64_t kLen = 9;
    std::vector<at::Tensor> rowsIds;
    for (int64_t b = 0; b < kBatch; ++b)
        rowsIds.push_back(at::tensor(randomIds(kLen, f.spec.vocab, 600 + uint64_t(b)), at::kLong));
    const at::Tensor batch = at::stack(rowsIds); // [batch, n_pos]
    HookRecorder rec;
    ForwardOptions options;
    options.hook = rec.fn();
    const ForwardResult batched = f.model->forward(batch, options);
    CS_VERIFY_SHAPE(batched.logits, ({ kBatch, kLen, f.spec.vocab }));
    CS_VERIFY_SHAPE(rec.at(0, Hook::AttnPattern), ({ kBatch, f.spec.nHeads, kLen, kLen }));
    for (int64_t b = 0; b < kBatch; ++b) {
        const at::Tensor alone = f.model->forward(rowsIds[size_t(b)].unsqueeze(0)).logits[0];
        CS_COMPARE_TENSORS(relDiff, batched.logits[b], alone, kRelTol, QString("batch row %1").arg(b));
    }
}

// Replaying a recorded run's patterns and denominators reproduces it; under a perturbation
// the replay stays frozen (its patterns are the recorded ones, its logits differ from a live
// run) and equals the reference replaying its own recorded patterns and denominators.
void TestModelReference::frozenReplay()
{
    const Fixture& f = fixture();
    const TinySpec& s = f.spec;
    const std::vector<int64_t> ids = randomIds(kPromptLen, s.vocab, 700);
    const at::Tensor in = idsTensor(ids);

    ForwardOptions recordOptions;
    recordOptions.record = true;
    const ForwardResult recorded = f.model->forward(in, recordOptions);
    QCOMPARE(int64_t(recorded.frozen.layers.size()), s.nLayers);
    QVERIFY(recorded.frozen.finalDenominator.defined());

    ForwardOptions replayOptions;
    replayOptions.frozen = &recorded.frozen;
    const ForwardResult replayed = f.model->forward(in, replayOptions);
    CS_COMPARE_TENSORS(relDiff, replayed.logits, recorded.logits, 1e-6, "frozen replay of the same input");

    // A fixed perturbation of the embeddings (resid_pre of layer 0).
    at::Generator gen = at::detail::createCPUGenerator(77);
    const at::Tensor noise = at::randn({ kPromptLen, s.dModel }, gen, at::TensorOptions().dtype(at::kDouble)) * 0.5;
    auto perturb = [&](int64_t layer, Hook hook, at::Tensor& value) {
        if (layer == 0 && hook == Hook::ResidPre)
            value = value + noise.to(value.options()).unsqueeze(0);
    };

    ForwardOptions liveOptions;
    liveOptions.hook = perturb;
    const ForwardResult live = f.model->forward(in, liveOptions);

    std::vector<at::Tensor> seenPatterns(size_t(s.nLayers));
    ForwardOptions frozenOptions;
    frozenOptions.frozen = &recorded.frozen;
    frozenOptions.hook = [&](int64_t layer, Hook hook, at::Tensor& value) {
        perturb(layer, hook, value);
        if (hook == Hook::AttnPattern)
            seenPatterns[size_t(layer)] = value.detach().clone();
    };
    const ForwardResult frozen = f.model->forward(in, frozenOptions);

    QVERIFY2(relDiff(live.logits, recorded.logits) > 1e-3, "the perturbation has no effect: the test proves nothing");
    QVERIFY2(relDiff(frozen.logits, live.logits) > 1e-4, "the frozen run under a perturbation equals the live one");
    for (int64_t l = 0; l < s.nLayers; ++l) {
        QVERIFY(seenPatterns[size_t(l)].defined());
        CS_COMPARE_TENSORS(absDiff, seenPatterns[size_t(l)], recorded.frozen.layers[size_t(l)].pattern, 1e-6,
            QString("layer %1 pattern under replay").arg(l));
    }

    // The same experiment in the reference.
    cs::test::ReferenceTrace trace;
    cs::test::ReferenceOptions recordRef;
    recordRef.trace = &trace;
    cs::test::referenceLogits(s, f.weights, ids, recordRef);
    cs::test::ReferenceOptions perturbRef;
    perturbRef.hook = [&](int64_t layer, const std::string& hook, at::Tensor& value) {
        if (layer == 0 && hook == "resid_pre")
            value = value + noise;
    };
    CS_COMPARE_TENSORS(relDiff, live.logits[0], cs::test::referenceLogits(s, f.weights, ids, perturbRef), kRelTol,
        "live perturbed logits vs reference");
    perturbRef.frozen = &trace;
    CS_COMPARE_TENSORS(relDiff, frozen.logits[0], cs::test::referenceLogits(s, f.weights, ids, perturbRef), kRelTol,
        "frozen perturbed logits vs reference (patterns and norm denominators frozen)");
}

// mlpReplace with the layer's true MLP output (from the reference MLP) changes nothing;
// replacing by zeros equals a hook that zeroes mlp_out.
void TestModelReference::mlpReplace()
{
    const Fixture& f = fixture();
    const TinySpec& s = f.spec;
    const std::vector<int64_t> ids = randomIds(kPromptLen, s.vocab, 800);
    const at::Tensor in = idsTensor(ids);
    const at::Tensor base = f.model->forward(in).logits;

    std::vector<int> calls(size_t(s.nLayers), 0);
    ForwardOptions trueOptions;
    trueOptions.mlpReplace = [&](int64_t layer, const cs::model::MlpInputs& inputs) {
        ++calls[size_t(layer)];
        return cs::test::referenceMlpOut(s, f.weights, layer, inputs.mlpIn).to(inputs.mlpIn.options());
    };
    const ForwardResult replaced = f.model->forward(in, trueOptions);
    for (int64_t l = 0; l < s.nLayers; ++l)
        QCOMPARE(calls[size_t(l)], 1);
    CS_COMPARE_TENSORS(relDiff, replaced.logits, base, kRelTol, "logits with the true MLP output as replacement");

    ForwardOptions zeroReplace;
    zeroReplace.mlpReplace
        = [](int64_t, const cs::model::MlpInputs& inputs) { return at::zeros_like(inputs.residMid); };
    ForwardOptions zeroHook;
    zeroHook.hook = [](int64_t, Hook hook, at::Tensor& value) {
        if (hook == Hook::MlpOut)
            value = at::zeros_like(value);
    };
    const at::Tensor byReplace = f.model->forward(in, zeroReplace).logits;
    const at::Tensor byHook = f.model->forward(in, zeroHook).logits;
    CS_COMPARE_TENSORS(relDiff, byReplace, byHook, 1e-6, "zero replacement vs zeroing hook");
    QVERIFY2(relDiff(byReplace, base) > 1e-3, "zeroing the MLPs changed nothing: the test proves nothing");

    cs::test::ReferenceOptions noMlp;
    noMlp.hook = [](int64_t, const std::string& hook, at::Tensor& value) {
        if (hook == "mlp_out")
            value = at::zeros_like(value);
    };
    CS_COMPARE_TENSORS(relDiff, byReplace[0], cs::test::referenceLogits(s, f.weights, ids, noMlp), kRelTol,
        "zero MLP outputs vs reference");
}

// config.json keys left out take transformers' defaults (LlamaConfig, Gemma2Config,
// GPT2Config): the model then matches the reference run with those default values.
void TestModelReference::configDefaults_data()
{
    QTest::addColumn<QString>("family");
    QTest::addColumn<QStringList>("omitted");
    QTest::newRow("llama") << "llama"
                           << QStringList { "head_dim", "num_key_value_heads", "rms_norm_eps", "rope_theta",
                                  "rope_scaling", "tie_word_embeddings", "attention_bias", "mlp_bias", "hidden_act" };
    QTest::newRow("gemma2") << "gemma2"
                            << QStringList { "query_pre_attn_scalar", "attn_logit_softcapping",
                                   "final_logit_softcapping", "rms_norm_eps", "rope_theta", "hidden_act",
                                   "hidden_activation" };
    QTest::newRow("gpt2") << "gpt2" << QStringList { "layer_norm_epsilon", "activation_function", "n_inner" };
}

void TestModelReference::configDefaults()
{
    QFETCH(QString, family);
    QFETCH(QStringList, omitted);
    TinySpec spec;
    spec.family = family.toStdString();
    spec.seed = 21;
    if (family == "llama") {
        spec.nKvHeads = spec.nHeads; // num_key_value_heads: None -> num_attention_heads
        spec.dHead = spec.dModel / spec.nHeads; // head_dim: None -> hidden_size / num_attention_heads
        spec.normEps = 1e-6; // rms_norm_eps
        spec.ropeTheta = 10000.0;
        spec.tied = false; // tie_word_embeddings
    } else if (family == "gemma2") {
        spec.queryPreAttnScalar = 256.0;
        spec.attnSoftcap = 50.0;
        spec.finalSoftcap = 30.0;
        spec.normEps = 1e-6;
        spec.ropeTheta = 10000.0;
    } else {
        spec.normEps = 1e-5; // layer_norm_epsilon
        spec.dMlp = 4 * spec.dModel; // n_inner: None -> 4 * n_embd
    }
    spec = cs::test::normalized(spec);
    const QString folder = cs::test::writeTinyModel(m_dir->filePath("defaults_" + family), spec);
    nlohmann::json config = nlohmann::json::parse(cs::test::tinyConfigJson(spec));
    for (const QString& key : omitted)
        config.erase(key.toStdString());
    cs::test::writeTextFile(folder + "/config.json", config.dump(2));

    const auto model = Model::load(folder.toStdString(), { "cpu" });
    const WeightMap weights = cs::test::readAllTensors(folder);
    const std::vector<int64_t> ids = randomIds(kPromptLen, spec.vocab, 1000);
    CS_COMPARE_TENSORS(relDiff, model->forward(idsTensor(ids)).logits[0], cs::test::referenceLogits(spec, weights, ids),
        kRelTol, "logits with config defaults");
}

// The folder's tokenizer.json is loaded with the model; its BPE merges by hand:
// "the" -> t + he (merge 1), " the" -> Ġt (0), he (1), Ġthe (2).
void TestModelReference::tokenizerFromFolder()
{
    TinySpec spec;
    const QString folder = cs::test::writeTinyModel(m_dir->filePath("tokenizer"), spec);
    const auto model = Model::load(folder.toStdString(), { "cpu", true });
    QVERIFY(model->hasTokenizer());
    const cs::model::Tokenizer& tok = model->tokenizer();
    QCOMPARE(tok.vocabSize(), cs::test::kTinyTokenizerVocab);
    QVERIFY(tok.bosId() == std::optional<int64_t>(cs::test::kTinyBosId));
    const std::vector<int64_t> expected = { cs::test::kTinyBosId, 't', 257, 258 };
    QCOMPARE(tok.encode("the the"), expected);
    QCOMPARE(QString::fromStdString(tok.decode(expected, true)), QString("the the"));
}

// Where CUDA exists, the same model on the GPU gives the CPU's logits.
void TestModelReference::cudaMatchesCpu()
{
    if (!at::hasCUDA())
        QSKIP("no CUDA device");
    const Fixture& f = fixture();
    const auto gpu = Model::load(f.folder.toStdString(), { "cuda" });
    const std::vector<int64_t> ids = randomIds(kPromptLen, f.spec.vocab, 900);
    const at::Tensor cpuLogits = f.model->forward(idsTensor(ids)).logits;
    const at::Tensor gpuLogits = gpu->forward(idsTensor(ids).to(gpu->device())).logits;
    QVERIFY(gpuLogits.is_cuda());
    CS_COMPARE_TENSORS(relDiff, gpuLogits, cpuLogits, 1e-4, "CUDA vs CPU logits");
}

QTEST_GUILESS_MAIN(TestModelReference)
#include "tst_model_reference.moc"
