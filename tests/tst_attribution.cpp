// Attribution graphs (docs/ARCHITECTURE.md §6): the explicit transposed pass against the autograd
// reference; every target's incoming edges plus its constant part against its actual quantity;
// doubling a source under a constrained run against its adjacency column; logit targets;
// influence-ordered visiting; batching; bad input. On tiny random models of every family with
// random PLTs and CLTs, and on tinyworld with its shipped CLT.
#include "graph_reference.h"
#include "hf_fixtures.h"

#include "cs/attribution.h"
#include "cs/engine.h"
#include "cs/error.h"

#include <ATen/ATen.h>
#include <QTemporaryDir>
#include <QtTest>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>
#include <tuple>

using namespace cs;
using attribution::Method;

namespace {

struct Variant {
    std::string family = "llama";
    transcoder::Architecture architecture = transcoder::Architecture::CrossLayer;
    transcoder::Activation activation = transcoder::Activation::ReLU;
    bool skip = false;
    std::string inputHookName = "mlp.hook_in"; // feature_input_hook, as a config.yaml names it
    bool bos = true; // the prompt starts with the BOS token (held)
};

// A random transcoder set that fits `mc`; biases shift pre-activations so about a third fire.
std::shared_ptr<const transcoder::TranscoderSet> randomTranscoders(
    const model::ModelConfig& mc, const Variant& v, int64_t nFeatures, uint64_t seed)
{
    at::manual_seed(seed);
    transcoder::TranscoderConfig c;
    c.architecture = v.architecture;
    c.activation = v.activation;
    c.topK = v.activation == transcoder::Activation::TopK ? 4 : 0;
    c.nLayers = mc.nLayers;
    c.dModel = mc.dModel;
    c.nFeatures = nFeatures;
    c.skip = v.skip;
    c.inputHook = transcoder::hookFromConfigName(v.inputHookName);
    c.inputHookName = v.inputHookName;
    std::vector<transcoder::LayerWeights> layers;
    const double scale = 1.0 / std::sqrt(static_cast<double>(mc.dModel));
    for (int64_t l = 0; l < mc.nLayers; ++l) {
        transcoder::LayerWeights w;
        const int64_t nOut = v.architecture == transcoder::Architecture::CrossLayer ? mc.nLayers - l : 1;
        w.encoder = at::randn({ nFeatures, mc.dModel }) * scale;
        w.encoderBias = at::randn({ nFeatures }) * 0.3 - 0.2;
        if (v.activation == transcoder::Activation::JumpReLU)
            w.threshold = at::rand({ nFeatures }) * 0.2;
        w.decoder = at::randn({ nFeatures, nOut, mc.dModel }) * scale;
        w.decoderBias = at::randn({ mc.dModel }) * 0.1;
        if (v.skip)
            w.skip = at::randn({ mc.dModel, mc.dModel }) * scale * 0.5;
        layers.push_back(w);
    }
    return transcoder::TranscoderSet::fromWeights(c, layers, "cpu");
}

struct Setup {
    std::shared_ptr<const model::Model> model;
    std::shared_ptr<const transcoder::TranscoderSet> transcoders;
    attribution::ReplacementContext context;
};

Setup randomSetup(const QTemporaryDir& dir, const Variant& v, int64_t nPos = 9)
{
    test::TinySpec spec;
    spec.family = v.family;
    spec.nLayers = 3;
    const QString folder = test::writeTinyModel(dir.filePath(QString::fromStdString(v.family)), spec);
    Setup s;
    s.model = model::Model::load(folder.toStdString(), { "cpu", false });
    s.transcoders = randomTranscoders(s.model->config(), v, 24, 7);
    at::manual_seed(3);
    at::Tensor ids = at::randint(0, 256, { nPos }, at::kLong);
    if (v.bos)
        ids[0] = test::kTinyBosId;
    s.context = attribution::buildContext(s.model, s.transcoders, ids);
    return s;
}

Setup tinyworldSetup(const std::string& prompt)
{
    Setup s;
    const std::string folder = resolveModelFolder("tinyworld");
    s.model = model::Model::load(folder, { "cpu", true });
    s.transcoders = transcoder::TranscoderSet::load(transcoder::resolveTranscoderFolder(folder, "clt"));
    s.context = attribution::buildContext(s.model, s.transcoders, at::tensor(s.model->tokenizer().encode(prompt)));
    return s;
}

double relDiff(const at::Tensor& a, const at::Tensor& b)
{
    const double scale = std::max(a.abs().max().item<double>(), 1e-30);
    return (a - b).abs().max().item<double>() / scale;
}

// The target quantity of graph node `node` computed from a run's inputs and final residual:
// a feature's pre-activation without its bias, or a logit node's demeaned logit(s).
double targetQuantity(const attribution::ReplacementContext& ctx, const attribution::TraceResult& r, int64_t node,
    const std::vector<at::Tensor>& inputs, const at::Tensor& finalResid)
{
    const graph::Node& n = r.graph.nodes[static_cast<size_t>(node)];
    if (n.kind == graph::NodeKind::Logit) {
        const auto& lt = r.logitTargets[static_cast<size_t>(node - r.graph.ranges().logits.begin)];
        double sum = 0;
        at::Tensor d = attribution::demeanedLogits(ctx, finalResid, ctx.nPos() - 1, at::tensor(lt.tokens));
        for (size_t i = 0; i < lt.tokens.size(); ++i)
            sum += lt.coefficients[i] * d[static_cast<int64_t>(i)].item<double>();
        return sum;
    }
    return at::dot(ctx.transcoders->encoder(n.layer)[n.feature], inputs[static_cast<size_t>(n.layer)][n.position])
        .item<double>();
}

std::vector<int64_t> targetNodes(const graph::Graph& g)
{
    std::vector<int64_t> out;
    const auto ranges = g.ranges();
    for (int64_t i = ranges.features.begin; i < ranges.features.end; ++i)
        out.push_back(i);
    for (int64_t i = ranges.logits.begin; i < ranges.logits.end; ++i)
        out.push_back(i);
    return out;
}

void addVariants()
{
    QTest::addColumn<QString>("family");
    QTest::addColumn<int>("architecture");
    QTest::addColumn<int>("activation");
    QTest::addColumn<bool>("skip");
    QTest::addColumn<QString>("input"); // feature_input_hook
    QTest::addColumn<bool>("bos");
    using A = transcoder::Architecture;
    using F = transcoder::Activation;
    for (const char* family : { "llama", "qwen3", "gemma2", "gpt2" }) {
        QTest::addRow("%s clt relu", family)
            << family << int(A::CrossLayer) << int(F::ReLU) << false << "mlp.hook_in" << true;
        QTest::addRow("%s plt jumprelu skip", family)
            << family << int(A::PerLayer) << int(F::JumpReLU) << true << "mlp.hook_in" << true;
    }
    QTest::addRow("llama clt topk skip resid_mid")
        << "llama" << int(A::CrossLayer) << int(F::TopK) << true << "hook_resid_mid" << false;
    QTest::addRow("gpt2 clt jumprelu skip no-bos")
        << "gpt2" << int(A::CrossLayer) << int(F::JumpReLU) << true << "mlp.hook_in" << false;
    // GemmaScope-style sets: features read the norm's output before its weight (and bias).
    QTest::addRow("gemma2 plt jumprelu skip ln2.hook_normalized")
        << "gemma2" << int(A::PerLayer) << int(F::JumpReLU) << true << "ln2.hook_normalized" << true;
    QTest::addRow("gemma2 clt relu blocks.N.ln2.hook_normalized")
        << "gemma2" << int(A::CrossLayer) << int(F::ReLU) << false << "blocks.{layer}.ln2.hook_normalized" << true;
    QTest::addRow("gpt2 clt jumprelu skip ln2.hook_normalized")
        << "gpt2" << int(A::CrossLayer) << int(F::JumpReLU) << true << "ln2.hook_normalized" << true;
    QTest::addRow("qwen3 plt relu skip ln2.hook_normalized no-bos")
        << "qwen3" << int(A::PerLayer) << int(F::ReLU) << true << "ln2.hook_normalized" << false;
}

Variant fetchVariant()
{
    QFETCH(QString, family);
    QFETCH(int, architecture);
    QFETCH(int, activation);
    QFETCH(bool, skip);
    QFETCH(QString, input);
    QFETCH(bool, bos);
    Variant v;
    v.family = family.toStdString();
    v.architecture = static_cast<transcoder::Architecture>(architecture);
    v.activation = static_cast<transcoder::Activation>(activation);
    v.skip = skip;
    v.inputHookName = input.toStdString();
    v.bos = bos;
    return v;
}

} // namespace

class TestAttribution : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { model::initThreads(); }

    // (a) The explicit pass equals the autograd reference, on every row and column.
    void explicitMatchesAutograd_data() { addVariants(); }
    void explicitMatchesAutograd()
    {
        QTemporaryDir dir;
        Setup s = randomSetup(dir, fetchVariant());
        QVERIFY(s.context.active.size() > 10);
        attribution::TraceOptions o;
        o.batchSize = 32;
        auto ex = attribution::trace(s.context, o);
        o.method = Method::Autograd;
        auto ag = attribution::trace(s.context, o);
        QCOMPARE(ex.graph.size(), ag.graph.size());
        const double d = relDiff(ag.graph.adjacency.dense(), ex.graph.adjacency.dense());
        QVERIFY2(d <= 1e-5, qPrintable(QString("relative difference %1").arg(d)));
        QVERIFY(ex.graph.adjacency.dense().abs().max().item<double>() > 0);
    }

    // (b) For every feature and logit node: incoming edges + constant part = its quantity. The
    // constant is the replacement model run with every source removed; the quantity is read from
    // the model's own recorded run.
    void edgesSumToTargets_data() { addVariants(); }
    void edgesSumToTargets()
    {
        QTemporaryDir dir;
        Setup s = randomSetup(dir, fetchVariant());
        const auto& ctx = s.context;
        auto r = attribution::trace(ctx, {});
        attribution::RunOptions none;
        none.errors = false;
        none.embeddings = false;
        none.edit = [](int64_t, at::Tensor& acts) { acts.zero_(); };
        const auto zero = attribution::runReplacement(ctx, none);
        at::Tensor A = r.graph.adjacency.dense().to(at::kDouble);
        double worst = 0;
        for (int64_t node : targetNodes(r.graph)) {
            const double actual = targetQuantity(ctx, r, node, ctx.inputs, ctx.finalResid);
            const double constant = targetQuantity(ctx, r, node, zero.inputs, zero.finalResid);
            const double sum = A[node].sum().item<double>();
            // Rounding scales with |w| |x| (the read vector and what it reads), which can be
            // larger than the terms summed.
            double scale = A[node].abs().sum().item<double>() + std::abs(constant);
            const auto& tn = r.graph.nodes[static_cast<size_t>(node)];
            if (tn.kind == graph::NodeKind::Feature)
                scale = std::max(scale,
                    (s.transcoders->encoder(tn.layer)[tn.feature].norm()
                        * ctx.inputs[static_cast<size_t>(tn.layer)][tn.position].norm())
                        .item<double>());
            worst = std::max(worst, std::abs(actual - sum - constant) / scale);
        }
        QVERIFY2(worst <= 1e-5, qPrintable(QString("worst relative residual %1").arg(worst)));
        QVERIFY(r.exactness.maxRelResidual <= 1e-5);
        // The feature quantity is also the recorded pre-activation minus the encoder bias.
        const auto ranges = r.graph.ranges();
        for (int64_t i = ranges.features.begin; i < std::min<int64_t>(ranges.features.end, 5); ++i) {
            const auto& n = r.graph.nodes[static_cast<size_t>(i)];
            const double pre = ctx.preActivations[static_cast<size_t>(n.layer)][n.position][n.feature].item<double>()
                - s.transcoders->encoderBias(n.layer)[n.feature].item<double>();
            QVERIFY(
                std::abs(pre - targetQuantity(ctx, r, i, ctx.inputs, ctx.finalResid)) <= 1e-4 * (1 + std::abs(pre)));
        }
    }

    // (c) Doubling a feature's activation in a constrained run changes every target by exactly
    // that feature's adjacency column.
    void doublingSourceAddsColumn_data() { addVariants(); }
    void doublingSourceAddsColumn()
    {
        QTemporaryDir dir;
        Setup s = randomSetup(dir, fetchVariant());
        const auto& ctx = s.context;
        auto r = attribution::trace(ctx, {});
        const auto ranges = r.graph.ranges();
        at::Tensor A = r.graph.adjacency.dense().to(at::kDouble);
        // The three features with the largest outgoing columns, and the first one.
        at::Tensor colNorm = A.abs().sum(0).narrow(0, 0, ranges.features.end);
        auto top = std::get<1>(at::topk(colNorm, std::min<int64_t>(3, ranges.features.end)));
        std::vector<int64_t> sources { 0 };
        for (int64_t k = 0; k < top.numel(); ++k)
            sources.push_back(top[k].item<int64_t>());
        for (int64_t src : sources) {
            const auto& sn = r.graph.nodes[static_cast<size_t>(src)];
            attribution::RunOptions doubled;
            doubled.edit = [&](int64_t layer, at::Tensor& acts) {
                if (layer == sn.layer)
                    acts[sn.position][sn.feature] *= 2;
            };
            const auto run = attribution::runReplacement(ctx, doubled);
            for (int64_t node : targetNodes(r.graph)) {
                const double change = targetQuantity(ctx, r, node, run.inputs, run.finalResid)
                    - targetQuantity(ctx, r, node, ctx.inputs, ctx.finalResid);
                const double edge = A[node][src].item<double>();
                const double tol = 1e-4 * (A[node].abs().max().item<double>() + 1e-3);
                QVERIFY2(std::abs(change - edge) <= tol,
                    qPrintable(
                        QString("source %1 target %2: change %3, edge %4").arg(src).arg(node).arg(change).arg(edge)));
            }
        }
    }

    // A held BOS has no features or errors; the embedding node stays.
    void heldBos()
    {
        QTemporaryDir dir;
        Variant v;
        Setup s = randomSetup(dir, v);
        QCOMPARE(s.context.heldPositions, int64_t(1));
        QVERIFY(s.context.active.position.min().item<int64_t>() >= 1);
        for (const auto& e : s.context.errors)
            QCOMPARE(e[0].abs().max().item<double>(), 0.0);
        attribution::ContextOptions keep;
        keep.holdBos = false;
        auto ctx = attribution::buildContext(s.model, s.transcoders, s.context.ids, keep);
        QCOMPARE(ctx.heldPositions, int64_t(0));
        QVERIFY(ctx.active.position.min().item<int64_t>() == 0);
        QVERIFY(attribution::trace(ctx, {}).exactness.maxRelResidual <= 1e-5);
    }

    // A set whose feature_input_hook is TransformerLens's ln2.hook_normalized (GemmaScope) reads
    // the pre-MLP norm's output before its weight: pre-activations are W_enc (x / rms(x)) + b_enc
    // (LayerNorm: centered x over its standard deviation) from the model's resid_mid, computed
    // here in float64 from the checkpoint's own tensors, and they differ from the reading after
    // the weight (mlp.hook_in), which the same weights give under that name.
    void normalizedInputIsBeforeNormWeight_data()
    {
        QTest::addColumn<QString>("family");
        for (const char* family : { "gemma2", "llama", "gpt2" })
            QTest::newRow(family) << family;
    }
    void normalizedInputIsBeforeNormWeight()
    {
        QFETCH(QString, family);
        QTemporaryDir dir;
        Variant v;
        v.family = family.toStdString();
        v.architecture = transcoder::Architecture::PerLayer;
        v.inputHookName = "ln2.hook_normalized";
        Setup s = randomSetup(dir, v);
        Variant weighted = v;
        weighted.inputHookName = "mlp.hook_in";
        const auto weightedSet = randomTranscoders(s.model->config(), weighted, 24, 7); // the same weights
        const auto weightedCtx = attribution::buildContext(s.model, weightedSet, s.context.ids);

        const auto tensors = test::readAllTensors(dir.filePath(family));
        const int64_t nLayers = s.model->config().nLayers;
        std::vector<at::Tensor> residMid(static_cast<size_t>(nLayers)); // [n_pos, d_model] float64
        model::ForwardOptions fo;
        fo.hook = [&](int64_t layer, model::Hook hook, at::Tensor& value) {
            if (hook == model::Hook::ResidMid)
                residMid[static_cast<size_t>(layer)] = value[0].to(at::kDouble);
        };
        s.model->forward(s.context.ids.unsqueeze(0), fo);
        const double eps = test::TinySpec().normEps;
        for (int64_t l = 0; l < nLayers; ++l) {
            const std::string L = std::to_string(l);
            at::Tensor x = residMid[static_cast<size_t>(l)];
            if (v.family == "gpt2")
                x = x - x.mean(-1, true);
            const at::Tensor normalized = x / at::sqrt(x.pow(2).mean(-1, true) + eps); // [n_pos, d_model]
            // The norm's weight (gemma2: 1 + w) and bias as transformers applies them.
            at::Tensor w, b;
            if (v.family == "gpt2") {
                w = tensors.at("transformer.h." + L + ".ln_2.weight").to(at::kDouble);
                b = tensors.at("transformer.h." + L + ".ln_2.bias").to(at::kDouble);
            } else if (v.family == "gemma2") {
                w = tensors.at("model.layers." + L + ".pre_feedforward_layernorm.weight").to(at::kDouble) + 1;
            } else {
                w = tensors.at("model.layers." + L + ".post_attention_layernorm.weight").to(at::kDouble);
            }
            QVERIFY((w - 1).abs().max().item<double>() > 0.05); // a weight of 1 would prove nothing
            at::Tensor mlpIn = normalized * w;
            if (b.defined())
                mlpIn = mlpIn + b;
            const at::Tensor enc = s.transcoders->encoder(l).to(at::kDouble);
            const at::Tensor bias = s.transcoders->encoderBias(l).to(at::kDouble);
            const at::Tensor expected = at::matmul(normalized, enc.t()) + bias; // [n_pos, n_features]
            const at::Tensor expectedWeighted = at::matmul(mlpIn, enc.t()) + bias;
            const at::Tensor got = s.context.preActivations[static_cast<size_t>(l)].to(at::kDouble);
            const double d = relDiff(got, expected);
            QVERIFY2(d <= 1e-5, qPrintable(QString("layer %1: relative difference %2").arg(l).arg(d)));
            QVERIFY(relDiff(s.context.inputs[static_cast<size_t>(l)].to(at::kDouble), normalized) <= 1e-5);
            const double dw
                = relDiff(weightedCtx.preActivations[static_cast<size_t>(l)].to(at::kDouble), expectedWeighted);
            QVERIFY2(dw <= 1e-5, qPrintable(QString("layer %1 weighted: relative difference %2").arg(l).arg(dw)));
            const double apart = relDiff(got, expectedWeighted);
            QVERIFY2(
                apart > 1e-2, qPrintable(QString("layer %1: the two readings differ by only %2").arg(l).arg(apart)));
        }
        QCOMPARE(s.transcoders->config().inputHook, model::Hook::MlpNormalized);
        // And the graph of such a set: both passes agree, and it is exact.
        attribution::TraceOptions o;
        auto ex = attribution::trace(s.context, o);
        o.method = Method::Autograd;
        auto ag = attribution::trace(s.context, o);
        const double d = relDiff(ag.graph.adjacency.dense(), ex.graph.adjacency.dense());
        QVERIFY2(d <= 1e-5, qPrintable(QString("explicit vs autograd: relative difference %1").arg(d)));
        QVERIFY2(ex.exactness.maxRelResidual <= 1e-5,
            qPrintable(QString("max relative residual %1").arg(ex.exactness.maxRelResidual)));
        qInfo("%s ln2.hook_normalized: explicit vs autograd %.2e, max relative residual %.2e", qPrintable(family), d,
            ex.exactness.maxRelResidual);
    }

    // Position 0 is held when its token is any special token of the tokenizer, not only the
    // configured BOS: here the EOS, a PAD that only tokenizer_config.json names, and a special
    // added token that neither config names; not for a plain token or a non-special added token.
    void heldSpecialFirstToken_data()
    {
        QTest::addColumn<qlonglong>("first");
        QTest::addColumn<bool>("held");
        QTest::newRow("bos") << qlonglong(test::kTinyBosId) << true;
        QTest::newRow("eos") << qlonglong(test::kTinyEosId) << true;
        QTest::newRow("pad (tokenizer_config.json)") << qlonglong(test::kTinyEosId + 1) << true;
        QTest::newRow("special added token") << qlonglong(test::kTinyEosId + 2) << true;
        QTest::newRow("non-special added token") << qlonglong(test::kTinyEosId + 3) << false;
        QTest::newRow("byte token") << qlonglong('T') << false;
    }
    void heldSpecialFirstToken()
    {
        QFETCH(qlonglong, first);
        QFETCH(bool, held);
        QTemporaryDir dir;
        test::TinySpec spec;
        spec.nLayers = 3;
        const QString folder = test::writeTinyModel(dir.filePath("llama"), spec);
        // Three more added tokens; the config names the first as PAD.
        nlohmann::json tok = nlohmann::json::parse(test::tinyTokenizerJson());
        auto added = [](int64_t id, const char* content, bool special) {
            return nlohmann::json { { "id", id }, { "content", content }, { "single_word", false }, { "lstrip", false },
                { "rstrip", false }, { "normalized", false }, { "special", special } };
        };
        tok["added_tokens"].push_back(added(test::kTinyEosId + 1, "<|pad|>", true));
        tok["added_tokens"].push_back(added(test::kTinyEosId + 2, "<|im_start|>", true));
        tok["added_tokens"].push_back(added(test::kTinyEosId + 3, "<|note|>", false));
        test::writeTextFile(folder + "/tokenizer.json", tok.dump(2));
        test::writeTextFile(folder + "/tokenizer_config.json",
            nlohmann::json { { "bos_token", "<|bos|>" }, { "eos_token", "<|eos|>" }, { "pad_token", "<|pad|>" } }
                .dump());
        Setup s;
        s.model = model::Model::load(folder.toStdString(), { "cpu", true });
        s.transcoders = randomTranscoders(s.model->config(), Variant(), 24, 7);
        QVERIFY(s.model->tokenizer().padId() == std::optional<int64_t>(test::kTinyEosId + 1));
        at::manual_seed(3);
        at::Tensor ids = at::randint(0, 256, { 9 }, at::kLong);
        ids[0] = static_cast<int64_t>(first);

        const auto ctx = attribution::buildContext(s.model, s.transcoders, ids);
        QCOMPARE(ctx.heldPositions, int64_t(held ? 1 : 0));
        QCOMPARE(attribution::isHeldToken(*s.model, first), held);
        QCOMPARE(ctx.active.position.min().item<int64_t>(), int64_t(held ? 1 : 0));
        for (const auto& e : ctx.errors)
            QCOMPARE(e[0].abs().max().item<double>() == 0.0, held);
        const auto r = attribution::trace(ctx, {});
        QVERIFY(r.exactness.maxRelResidual <= 1e-5);
        QCOMPARE(r.graph.metadata.extra["info"]["held_positions"].get<int64_t>(), int64_t(held ? 1 : 0));

        // The option that turns holding off still does.
        attribution::ContextOptions keep;
        keep.holdBos = false;
        QCOMPARE(attribution::buildContext(s.model, s.transcoders, ids, keep).heldPositions, int64_t(0));
    }

    // Batch size and memory budget change how rows are grouped, not what they are.
    void batchingDoesNotChangeRows()
    {
        QTemporaryDir dir;
        Setup s = randomSetup(dir, Variant(), 14);
        auto ref = attribution::trace(s.context, {});
        for (int64_t batch : { 1, 5 }) {
            attribution::TraceOptions o;
            o.batchSize = batch;
            QVERIFY(
                relDiff(ref.graph.adjacency.dense(), attribution::trace(s.context, o).graph.adjacency.dense()) <= 1e-6);
        }
        attribution::TraceOptions tiny;
        tiny.memoryBudgetBytes = 64 << 10;
        auto small = attribution::trace(s.context, tiny);
        QVERIFY(small.stats.batches > ref.stats.batches);
        QVERIFY(relDiff(ref.graph.adjacency.dense(), small.graph.adjacency.dense()) <= 1e-6);
    }

    // Logit targets: the probability cut, named tokens, and a difference equal to the
    // difference of the two named rows.
    void logitTargets()
    {
        QTemporaryDir dir;
        Setup s = randomSetup(dir, Variant());
        const auto& ctx = s.context;
        at::Tensor probs = at::softmax(ctx.logits[ctx.nPos() - 1].to(at::kDouble), 0);
        auto sorted = at::sort(probs, 0, true);
        for (double want : { 0.05, 0.5, 0.9 }) {
            attribution::TraceOptions o;
            o.logits.desiredLogitProb = want;
            o.logits.maxNLogits = 50;
            auto r = attribution::trace(ctx, o);
            // The shortest prefix of the sorted probabilities whose sum reaches `want`.
            at::Tensor cum = std::get<0>(sorted).cumsum(0);
            const int64_t expect = (cum < want).sum().item<int64_t>() + 1;
            QCOMPARE(r.graph.ranges().logits.size(), expect);
            QCOMPARE(r.graph.nodes[static_cast<size_t>(r.graph.ranges().logits.begin)].tokenId,
                std::get<1>(sorted)[0].item<int64_t>());
        }
        attribution::TraceOptions two;
        two.logits.tokens = { 5, 77 };
        auto named = attribution::trace(ctx, two);
        QCOMPARE(named.graph.ranges().logits.size(), int64_t(2));
        // Named targets weigh equally, whatever their probabilities; the nodes keep those.
        QVERIFY((named.graph.logitProbabilities == std::vector<float> { 0.5f, 0.5f }));
        QCOMPARE(named.graph.nodes[static_cast<size_t>(named.graph.ranges().logits.begin)].tokenProb,
            probs[5].item<double>());
        attribution::TraceOptions weighted = two;
        weighted.logits.weights = { 0.25, 2.0 };
        QVERIFY((attribution::trace(ctx, weighted).graph.logitProbabilities == std::vector<float> { 0.25f, 2.0f }));
        weighted.logits.weights = { 1.0 };
        QVERIFY_THROWS_EXCEPTION(cs::Error, attribution::trace(ctx, weighted));
        weighted.logits.weights = { 0.0, 0.0 };
        QVERIFY_THROWS_EXCEPTION(cs::Error, attribution::trace(ctx, weighted));
        attribution::TraceOptions diff;
        diff.logits.difference = std::make_pair(int64_t(5), int64_t(77));
        auto d = attribution::trace(ctx, diff);
        const auto nr = named.graph.ranges(), dr = d.graph.ranges();
        QCOMPARE(dr.logits.size(), int64_t(1));
        // The difference node: A's id with B as its contrast, both probabilities, weight 1.
        const graph::Node& dn = d.graph.nodes[static_cast<size_t>(dr.logits.begin)];
        QCOMPARE(dn.tokenId, int64_t(5));
        QCOMPARE(dn.contrastTokenId, int64_t(77));
        QCOMPARE(dn.tokenProb, probs[5].item<double>());
        QCOMPARE(dn.contrastTokenProb, probs[77].item<double>());
        QCOMPARE(d.graph.logitProbabilities[static_cast<size_t>(0)], 1.0f);
        QCOMPARE(graph::nodeId(d.graph, dr.logits.begin),
            std::to_string(d.graph.nLayers() + 1) + "_5vs77_" + std::to_string(ctx.nPos() - 1));
        QCOMPARE(d.graph.metadata.extra["logit_difference"]["contrast_prob"].get<double>(), probs[77].item<double>());
        at::Tensor rowDiff
            = named.graph.adjacency.dense()[nr.logits.begin] - named.graph.adjacency.dense()[nr.logits.begin + 1];
        QVERIFY(relDiff(rowDiff.narrow(0, 0, nr.logits.begin),
                    d.graph.adjacency.dense()[dr.logits.begin].narrow(0, 0, dr.logits.begin))
            <= 1e-5);
        QVERIFY(d.exactness.maxRelResidual <= 1e-5);

        attribution::TraceOptions bad;
        bad.logits.tokens = { ctx.logits.size(1) };
        QVERIFY_THROWS_EXCEPTION(cs::Error, attribution::trace(ctx, bad));
        bad.logits.tokens.clear();
        bad.logits.difference = std::make_pair(int64_t(3), int64_t(3));
        QVERIFY_THROWS_EXCEPTION(cs::Error, attribution::trace(ctx, bad));
    }

    // max_feature_nodes: with one batch, the features visited are those with the largest direct
    // influence on the logits (|A| row-normalized, weighted by probability), and their rows are
    // the full trace's rows.
    void maxFeatureNodes()
    {
        QTemporaryDir dir;
        Setup s = randomSetup(dir, Variant(), 12);
        const auto& ctx = s.context;
        auto full = attribution::trace(ctx, {});
        const auto fr = full.graph.ranges();
        const int64_t k = fr.features.size() / 3;
        attribution::TraceOptions o;
        o.maxFeatureNodes = k;
        o.batchSize = k;
        auto part = attribution::trace(ctx, o);
        const auto pr = part.graph.ranges();
        QCOMPARE(pr.features.size(), k);
        QVERIFY(part.exactness.maxRelResidual <= 1e-5);

        // Direct influence of each feature over the logit rows of the full graph.
        at::Tensor A = full.graph.adjacency.dense().abs().to(at::kDouble);
        at::Tensor influence = at::zeros({ fr.features.size() }, at::kDouble);
        for (int64_t l = fr.logits.begin; l < fr.logits.end; ++l) {
            const double w
                = static_cast<double>(full.graph.logitProbabilities[static_cast<size_t>(l - fr.logits.begin)]);
            influence += w * A[l].narrow(0, 0, fr.features.size()) / A[l].sum();
        }
        auto expect = std::get<1>(at::topk(influence, k));
        std::vector<std::tuple<int64_t, int64_t, int64_t>> want, got;
        for (int64_t i = 0; i < k; ++i) {
            const auto& n = full.graph.nodes[static_cast<size_t>(expect[i].item<int64_t>())];
            want.emplace_back(n.layer, n.position, n.feature);
            const auto& m = part.graph.nodes[static_cast<size_t>(i)];
            got.emplace_back(m.layer, m.position, m.feature);
        }
        std::sort(want.begin(), want.end());
        QVERIFY(want == got); // the graph lists its features in (layer, position, feature) order
        // Each kept feature's and logit's row: over embeddings the full trace's; over error
        // nodes the full trace's plus the features that were not visited, folded into the
        // error node at their layer and position; so the exported rows keep their sums and
        // the graph stays exact (sum_s A[t, s] + constant = actual, on the exported rows).
        const at::Tensor fullDense = full.graph.adjacency.dense().to(at::kDouble);
        const at::Tensor partDense = part.graph.adjacency.dense().to(at::kDouble);
        const int64_t nPos = ctx.nPos();
        std::vector<int64_t> fullRowOf, partRows;
        for (int64_t i = 0; i < k; ++i) {
            const auto& m = part.graph.nodes[static_cast<size_t>(i)];
            int64_t j = 0;
            while (full.graph.nodes[static_cast<size_t>(j)].layer != m.layer
                || full.graph.nodes[static_cast<size_t>(j)].position != m.position
                || full.graph.nodes[static_cast<size_t>(j)].feature != m.feature)
                ++j;
            fullRowOf.push_back(j);
            partRows.push_back(i);
        }
        for (int64_t l = 0; l < fr.logits.size(); ++l) {
            fullRowOf.push_back(fr.logits.begin + l);
            partRows.push_back(pr.logits.begin + l);
        }
        std::set<std::tuple<int64_t, int64_t, int64_t>> visited(got.begin(), got.end());
        for (size_t r = 0; r < partRows.size(); ++r) {
            const at::Tensor fullRow = fullDense[fullRowOf[r]];
            at::Tensor expected = fullRow.narrow(0, fr.errors.begin, fr.logits.begin - fr.errors.begin).clone();
            for (int64_t f = 0; f < fr.features.size(); ++f) {
                const auto& n = full.graph.nodes[static_cast<size_t>(f)];
                if (!visited.count({ n.layer, n.position, n.feature }))
                    expected[n.layer * nPos + n.position] += fullRow[f];
            }
            const at::Tensor partRow
                = partDense[partRows[r]].narrow(0, pr.errors.begin, pr.logits.begin - pr.errors.begin);
            QVERIFY2(at::allclose(partRow, expected, 1e-5, 1e-6 * fullRow.abs().max().item<double>()),
                qPrintable(
                    QString("row %1: errors and embeddings differ by %2").arg(r).arg(relDiff(partRow, expected))));
            QVERIFY(std::fabs(partDense[partRows[r]].sum().item<double>() - fullRow.sum().item<double>())
                <= 1e-5 * fullRow.abs().sum().item<double>());
        }
        // Exactness on the graph as exported: the rows' sums and constants give the actuals.
        const at::Tensor sums = partDense.sum(1);
        int64_t row = 0;
        for (int64_t t = 0; t < part.graph.size(); ++t) {
            if (!pr.features.contains(t) && !pr.logits.contains(t))
                continue;
            const double actual = part.actuals[row].item<double>(), constant = part.constants[row].item<double>();
            QVERIFY2(std::fabs(sums[t].item<double>() + constant - actual) <= 1e-4 * std::max(1.0, std::fabs(actual)),
                qPrintable(
                    QString("row %1: %2 + %3 != %4").arg(t).arg(sums[t].item<double>()).arg(constant).arg(actual)));
            ++row;
        }
        QCOMPARE(row, part.actuals.size(0));
    }

    void badInput()
    {
        QTemporaryDir dir;
        Setup s = randomSetup(dir, Variant());
        const auto& mc = s.model->config();
        QVERIFY_THROWS_EXCEPTION(
            cs::Error, attribution::buildContext(s.model, s.transcoders, at::zeros({ 0 }, at::kLong)));
        QVERIFY_THROWS_EXCEPTION(cs::Error,
            attribution::buildContext(s.model, s.transcoders, at::zeros({ mc.maxPositions + 1 }, at::kLong)));
        // A transcoder set made for another model (d_model 48 instead of 32).
        model::ModelConfig other = mc;
        other.dModel = 48;
        auto foreign = randomTranscoders(other, Variant(), 8, 1);
        QVERIFY_THROWS_EXCEPTION(cs::Error, attribution::buildContext(s.model, foreign, s.context.ids));
        attribution::TraceOptions o;
        o.batchSize = 0;
        QVERIFY_THROWS_EXCEPTION(cs::Error, attribution::trace(s.context, o));
        // A cancelled trace.
        attribution::TraceOptions cancel;
        cancel.batchSize = 4;
        cancel.progress = [](double fraction) { return fraction < 0.3; };
        QVERIFY_THROWS_EXCEPTION(cs::Cancelled, attribution::trace(s.context, cancel));
    }

    // A checkpoint whose logits are NaN (issue 24: such a trace ran for minutes or died in
    // LibTorch): the trace stops before its first row, with a message.
    void nonFiniteLogitsAreRefused()
    {
        QTemporaryDir dir;
        test::TinySpec spec;
        spec.nLayers = 3;
        spec = test::normalized(spec);
        const QString folder = test::writeTinyModel(dir.filePath("nan"), spec);
        const auto clean = model::Model::load(folder.toStdString(), { "cpu", false });
        auto weights = test::tinyWeights(spec);
        bool poisoned = false;
        for (auto& [name, t] : weights)
            if (name == "model.norm.weight") { // the final norm: the residual stream stays finite
                t = at::full_like(t, std::numeric_limits<float>::quiet_NaN());
                poisoned = true;
            }
        QVERIFY(poisoned);
        // Such a checkpoint is refused at load, naming the tensor (issue 23) ...
        test::writeSafetensors(folder + "/model.safetensors", weights, spec.storeDtype);
        try {
            model::Model::load(folder.toStdString(), { "cpu", false });
            QFAIL("loaded a checkpoint holding NaN");
        } catch (const cs::Error& e) {
            QVERIFY2(std::string(e.what()).find("model.norm.weight") != std::string::npos, e.what());
        }
        // ... and a model made in memory with the same weight is refused by the trace.
        auto canonical = clean->weights();
        canonical["final_norm.weight"] = at::full_like(canonical["final_norm.weight"], NAN);
        const auto model = model::Model::fromWeights(clean->config(), canonical, nullptr);
        const auto transcoders = randomTranscoders(model->config(), Variant(), 8, 1);
        const auto ctx = attribution::buildContext(
            model, transcoders, at::tensor(std::vector<int64_t> { test::kTinyBosId, 5, 6, 7 }, at::kLong));
        try {
            attribution::trace(ctx, {});
            QFAIL("traced a model whose logits are NaN");
        } catch (const cs::Error& e) {
            QVERIFY2(std::string(e.what()).find("logits are not finite (NaN or infinite) at position 0")
                    != std::string::npos,
                e.what());
        }
    }

    // The memory estimate (issue 21) against what the context really holds: the bytes of every
    // tensor it keeps, counted from the tensors themselves, are under the estimate, and the
    // estimate is not so loose that it would refuse work that fits (at most 3x).
    void memoryEstimateBoundsTheContext_data()
    {
        QTest::addColumn<bool>("tinyworld");
        QTest::newRow("random CLT") << false;
        QTest::newRow("tinyworld") << true;
    }
    void memoryEstimateBoundsTheContext()
    {
        QFETCH(bool, tinyworld);
        QTemporaryDir dir;
        const Setup s = tinyworld ? tinyworldSetup("Fact: the capital of the state containing Dallas is")
                                  : randomSetup(dir, Variant(), 12);
        const auto& ctx = s.context;
        int64_t held = 0;
        auto add = [&](const at::Tensor& t) { held += t.defined() ? t.numel() * t.element_size() : 0; };
        for (const auto* list : { &ctx.inputs, &ctx.mlpOut, &ctx.preActivations, &ctx.activations, &ctx.errors })
            for (const auto& t : *list)
                add(t);
        add(ctx.tokenEmbeddings);
        add(ctx.finalResid);
        add(ctx.logits);
        for (const auto& layer : ctx.frozen.layers) {
            add(layer.pattern);
            for (const auto& d : layer.denominators)
                add(d);
        }
        const auto estimate = attribution::estimateContextMemory(*s.model, *s.transcoders, ctx.nPos());
        qInfo("context: %lld bytes held, %lld estimated", static_cast<long long>(held),
            static_cast<long long>(estimate.deviceBytes()));
        QCOMPARE(estimate.hostBytes(), int64_t(0));
        QVERIFY(estimate.deviceBytes() >= held);
        QVERIFY(estimate.deviceBytes() <= 3 * held);
    }

    // The attribution rows' bound is their causal cones: a full trace's rows hold at most that
    // many entries (counted in the graph), and the rows fill their cones (at least half).
    void memoryEstimateBoundsTheRows_data()
    {
        QTest::addColumn<bool>("tinyworld");
        QTest::newRow("random CLT") << false;
        QTest::newRow("tinyworld") << true;
    }
    void memoryEstimateBoundsTheRows()
    {
        QFETCH(bool, tinyworld);
        QTemporaryDir dir;
        const Setup s = tinyworld ? tinyworldSetup("Fact: the capital of the state containing Dallas is")
                                  : randomSetup(dir, Variant(), 12);
        const auto r = attribution::trace(s.context, {});
        const auto ranges = r.graph.ranges();
        const int64_t rows = ranges.features.size() + ranges.logits.size();
        const auto estimate = attribution::estimateTraceMemory(s.context, {}, ranges.logits.size());
        const int64_t bound = (estimate.bytes("attribution rows") - 40 * rows) / 8;
        const int64_t nnz = r.graph.adjacency.nnz(); // only feature and logit rows have entries
        qInfo("rows: %lld entries of at most %lld", static_cast<long long>(nnz), static_cast<long long>(bound));
        QVERIFY(nnz <= bound);
        QVERIFY(2 * nnz >= bound);
        QCOMPARE(r.stats.memoryDeviceBytes + r.stats.memoryHostBytes, estimate.deviceBytes() + estimate.hostBytes());
    }

    // A trace that would not fit is refused before its first row with the largest feature cap
    // that fits, and that cap then traces under the same limit; a prompt too long to record is
    // refused with the longest that fits.
    void memoryRefusalNamesWhatFits()
    {
        const Setup s = tinyworldSetup("Fact: the capital of the state containing Dallas is");
        const int64_t nActive = s.context.active.size();
        attribution::TraceOptions third;
        third.maxFeatureNodes = nActive / 3;
        const auto e = attribution::estimateTraceMemory(s.context, third);
        attribution::TraceOptions o;
        o.memoryLimitBytes = e.deviceBytes() + e.hostBytes();
        int64_t fits = -1;
        try {
            attribution::trace(s.context, o);
            QFAIL("a trace over its memory limit ran");
        } catch (const cs::Error& error) {
            const std::string text = error.what();
            qInfo("%s", error.what());
            const size_t at = text.find("--max-feature-nodes ");
            QVERIFY2(at != std::string::npos, error.what());
            fits = std::stoll(text.substr(at + 20));
        }
        QVERIFY(fits >= nActive / 3 && fits < nActive);
        o.maxFeatureNodes = fits;
        const auto capped = attribution::trace(s.context, o);
        QCOMPARE(capped.graph.ranges().features.size(), fits);
        o.maxFeatureNodes = fits + 1; // the largest: one more does not fit
        QVERIFY_THROWS_EXCEPTION(cs::Error, attribution::trace(s.context, o));
        o.memoryLimitBytes = -1; // no check
        o.maxFeatureNodes = -1;
        QCOMPARE(attribution::trace(s.context, o).graph.ranges().features.size(), nActive);

        const int64_t nPos = s.context.nPos();
        attribution::ContextOptions co;
        co.memoryLimitBytes = attribution::estimateContextMemory(*s.model, *s.transcoders, nPos / 2).deviceBytes();
        try {
            attribution::buildContext(s.model, s.transcoders, s.context.ids, co);
            QFAIL("a context over its memory limit was recorded");
        } catch (const cs::Error& error) {
            const std::string text = error.what();
            qInfo("%s", error.what());
            const size_t at = text.find("at most ");
            QVERIFY2(at != std::string::npos && text.find(" tokens would fit") != std::string::npos, error.what());
            const int64_t longest = std::stoll(text.substr(at + 8));
            QCOMPARE(longest, nPos / 2);
            QCOMPARE(attribution::buildContext(s.model, s.transcoders, s.context.ids.narrow(0, 0, longest), co).nPos(),
                longest);
        }
        // What the machine has: positive and at most its memory.
        const int64_t available = model::availableMemory(c10::Device(c10::kCPU));
        QVERIFY(available > 0);
        QVERIFY(available < (int64_t(1) << 50));
    }

    // Tinyworld's canonical prompt with its shipped CLT: both methods, exactness, the answer.
    void tinyworldDallas()
    {
        Setup s = tinyworldSetup("Fact: the capital of the state containing Dallas is");
        auto ex = attribution::trace(s.context, {});
        const auto ranges = ex.graph.ranges();
        QCOMPARE(ex.graph.nodes[static_cast<size_t>(ranges.logits.begin)].token, std::string(" Austin"));
        QVERIFY(ex.exactness.maxRelResidual <= 1e-5);
        QCOMPARE(ex.graph.metadata.extra["exactness"]["max_rel_residual"].get<double>(), ex.exactness.maxRelResidual);
        attribution::TraceOptions o;
        o.method = Method::Autograd;
        auto ag = attribution::trace(s.context, o);
        const double d = relDiff(ag.graph.adjacency.dense(), ex.graph.adjacency.dense());
        QVERIFY2(d <= 1e-5, qPrintable(QString("relative difference %1").arg(d)));
        ex.graph.validate();
    }

    // The sparse Pruner on traced tinyworld graphs (every feature, and max_feature_nodes)
    // against the dense float64 reference of circuit-tracer's prune_graph and
    // compute_graph_scores on adjacency.dense() (graph_reference.h): the same nodes and edges at
    // several thresholds, the influence and the scores, and a pinned subgraph's scores.
    void tinyworldPruneMatchesDenseReference_data()
    {
        QTest::addColumn<int64_t>("maxFeatureNodes");
        QTest::newRow("every feature") << int64_t(-1);
        QTest::newRow("120 feature nodes") << int64_t(120);
    }
    void tinyworldPruneMatchesDenseReference()
    {
        QFETCH(int64_t, maxFeatureNodes);
        Setup s = tinyworldSetup("Fact: the capital of the state containing Dallas is");
        attribution::TraceOptions o;
        o.maxFeatureNodes = maxFeatureNodes;
        const auto r = attribution::trace(s.context, o);
        const graph::Graph& g = r.graph;
        const int64_t n = g.size();
        QVERIFY(g.adjacency.nnz() > 10 * n);
        if (maxFeatureNodes > 0)
            QCOMPARE(g.ranges().features.size(), maxFeatureNodes);
        const graph::Pruner pruner(g);

        const cs::test::Reference whole = cs::test::referencePrune(g, 0.8, 0.98);
        const double scale = whole.influence.abs().max().item<double>();
        QVERIFY(at::allclose(at::tensor(pruner.influence()).to(at::kDouble), whole.influence, 1e-4, 1e-6 * scale));
        const graph::Scores mine = pruner.scores();
        const graph::Scores ref = cs::test::referenceScores(g, g.adjacency.dense());
        QVERIFY2(std::fabs(mine.replacement - ref.replacement) < 1e-5,
            qPrintable(QString("replacement %1, reference %2").arg(mine.replacement).arg(ref.replacement)));
        QVERIFY2(std::fabs(mine.completeness - ref.completeness) < 1e-5,
            qPrintable(QString("completeness %1, reference %2").arg(mine.completeness).arg(ref.completeness)));

        for (const auto& [nt, et] : { std::pair { 0.8, 0.98 }, std::pair { 0.5, 0.9 }, std::pair { 0.95, 0.995 } }) {
            const graph::PruneResult p = pruner.prune(nt, et);
            const cs::test::Reference expected = cs::test::referencePrune(g, nt, et);
            QCOMPARE(p.nodeMask, expected.nodes);
            const at::Tensor mask = cs::test::denseEdgeMask(g, p);
            auto m = mask.accessor<bool, 2>();
            int64_t differ = 0, kept = 0;
            for (int64_t t = 0; t < n; ++t)
                for (int64_t src = 0; src < n; ++src) {
                    differ += m[t][src] != expected.edges[t][src];
                    kept += m[t][src];
                }
            QCOMPARE(differ, int64_t(0));
            QCOMPARE(p.edgeCount(), kept);
            qInfo("%lld nodes, %lld edges: kept %lld nodes, %lld edges at %.2f / %.3f", static_cast<long long>(n),
                static_cast<long long>(g.adjacency.nnz()),
                static_cast<long long>(std::count(p.nodeMask.begin(), p.nodeMask.end(), true)),
                static_cast<long long>(kept), nt, et);
        }

        // A pinned subgraph (every other feature), on the whole graph and on the pruned one.
        const graph::PruneResult pruned = pruner.prune(0.8, 0.98);
        std::vector<bool> pinned(static_cast<size_t>(n), false);
        for (int64_t i = 0; i < n; i += 2)
            pinned[static_cast<size_t>(i)] = true;
        for (const graph::PruneResult* p : { static_cast<const graph::PruneResult*>(nullptr), &pruned }) {
            const graph::Scores sub = graph::neuronpediaSubgraphScores(g, pinned, p);
            const graph::Scores expected = cs::test::referenceScores(g, cs::test::mergedUnpinned(g, pinned, p));
            QVERIFY(std::fabs(sub.replacement - expected.replacement) < 1e-5);
            QVERIFY(std::fabs(sub.completeness - expected.completeness) < 1e-5);
        }
        // What the pruned graph and the pinned part of it explain of the whole.
        const graph::Scores prunedScores = pruner.scoresOf(pruned);
        const graph::Scores prunedExpected
            = cs::test::referenceKeptScores(g, pruned.nodeMask, cs::test::denseEdgeMask(g, pruned));
        QVERIFY(std::fabs(prunedScores.replacement - prunedExpected.replacement) < 1e-5);
        QVERIFY(std::fabs(prunedScores.completeness - prunedExpected.completeness) < 1e-5);
        QVERIFY(std::fabs(prunedScores.correctedCompleteness - prunedExpected.correctedCompleteness) < 1e-5);
        QVERIFY(prunedScores.replacement < mine.replacement);
        const graph::Scores sub = pruner.subgraphScores(pinned, &pruned);
        QVERIFY(sub.replacement <= prunedScores.replacement + 1e-7);
        QVERIFY(sub.completeness <= prunedScores.completeness + 1e-7);
    }
};

QTEST_GUILESS_MAIN(TestAttribution)
#include "tst_attribution.moc"
