// Interventions (docs/ARCHITECTURE.md §8) against computations written again here: a replacement
// model built from plain Model::forward with hooks (frozen or free, errors recorded here),
// circuit-tracer's patched run of the real model (frozen attention, constrained layers) likewise,
// generation by recomputing the whole prefix every step, the exact linearity of the constrained
// regime, the model's own logits and greedy generation; demeaned logit changes against the
// attribution graph's edges on tinyworld's shipped CLT; and bad edits and options refused.
// Perturbation validation (validation.h): in the constrained regime the graph's prediction is
// the replacement model's to 1e-4 (and the same numbers intervene() gives), the free
// regime's path sums against a dense linear solve (I - D J) x = c, and bad requests refused.
#include "hf_fixtures.h"

#include "cs/attribution.h"
#include "cs/engine.h"
#include "cs/error.h"
#include "cs/intervention.h"
#include "cs/replacement.h"
#include "cs/validation.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <cmath>

using namespace cs::intervention;
using cs::transcoder::Activation;
using cs::transcoder::Architecture;
using cs::transcoder::TranscoderSet;

namespace {

using ModelPtr = std::shared_ptr<const cs::model::Model>;
using SetPtr = std::shared_ptr<const TranscoderSet>;

SetPtr randomSet(
    Architecture arch, Activation act, cs::model::Hook input, int64_t L, int64_t d, int64_t F, uint64_t seed)
{
    return cs::test::randomTranscoderSet(arch, act, input, L, d, F, seed);
}

// The edit applied to acts [n, n_features] whose row r is absolute position offset + r;
// position -1 reaches positions from `from` on.
void applyHere(at::Tensor& acts, const FeatureEdit& e, int64_t offset, int64_t from)
{
    for (int64_t r = 0; r < acts.size(0); ++r) {
        const int64_t p = offset + r;
        if (e.position >= 0 ? p != e.position : p < from)
            continue;
        const double a = acts[r][e.feature].item<double>();
        const double v = e.op == Op::Set ? e.value : e.op == Op::Scale ? a * e.value : a + e.value;
        acts[r][e.feature].fill_(v);
    }
}

// One plain run of the model, recorded here (not by buildContext): transcoder inputs, MLP
// outputs, activations (zero at a held BOS), errors, patterns and denominators.
struct Recording {
    std::vector<at::Tensor> inputs, acts, errors, mlpOut; // per layer [n_pos, ...]
    cs::model::FrozenState frozen;
    at::Tensor logits; // [n_pos, vocab]
    int64_t held = 0;
};

Recording record(const cs::model::Model& model, const TranscoderSet& set, const std::vector<int64_t>& ids)
{
    at::NoGradGuard noGrad;
    const int64_t L = model.config().nLayers;
    Recording r;
    r.inputs.resize(L);
    std::vector<at::Tensor>& mlpOut = r.mlpOut;
    mlpOut.resize(L);
    cs::model::ForwardOptions fo;
    fo.record = true;
    fo.hook = [&](int64_t l, cs::model::Hook h, at::Tensor& v) {
        if (h == set.config().inputHook)
            r.inputs[l] = v[0].clone();
        if (h == cs::model::Hook::MlpOut)
            mlpOut[l] = v[0].clone();
    };
    auto run = model.forward(at::tensor(ids, at::kLong), fo);
    r.frozen = std::move(run.frozen);
    r.logits = run.logits[0];
    r.held = ids[0] == model.config().bosTokenId.value_or(-1) ? 1 : 0;
    for (int64_t l = 0; l < L; ++l) {
        r.acts.push_back(set.encode(l, r.inputs[l]));
        if (r.held)
            r.acts[l][0].zero_();
    }
    for (int64_t l = 0; l < L; ++l)
        r.errors.push_back(mlpOut[l] - set.decode(l, r.acts, r.inputs[l]));
    return r;
}

// The replacement model with edits, from plain forward + hooks: constrained replays the
// recorded patterns and denominators and holds the recorded activations; free recomputes
// both. Returns the last position's logits [vocab]; inputs and acts receive the run's.
at::Tensor referenceRun(const cs::model::Model& model, const TranscoderSet& set, const Recording& rec,
    const std::vector<int64_t>& ids, const std::vector<FeatureEdit>& edits, bool constrained,
    std::vector<at::Tensor>* inputsOut = nullptr, std::vector<at::Tensor>* actsOut = nullptr)
{
    at::NoGradGuard noGrad;
    const int64_t L = model.config().nLayers;
    std::vector<at::Tensor> acts(L), inputs(L);
    cs::model::ForwardOptions fo;
    if (constrained)
        fo.frozen = &rec.frozen;
    fo.hook = [&](int64_t l, cs::model::Hook h, at::Tensor& v) {
        if (h == set.config().inputHook) {
            inputs[l] = v[0].clone();
            at::Tensor a = constrained ? rec.acts[l].clone() : set.encode(l, inputs[l]);
            if (rec.held)
                a[0].zero_();
            for (const auto& e : edits)
                if (e.layer == l)
                    applyHere(a, e, 0, rec.held);
            acts[l] = a;
        }
        if (h == cs::model::Hook::MlpOut) {
            at::Tensor out = set.decode(l, acts, inputs[l]) + rec.errors[l];
            if (rec.held)
                out[0].copy_(v[0][0]); // the BOS row keeps the model's own MLP output
            v = out.unsqueeze(0);
        }
    };
    at::Tensor logits = model.forward(at::tensor(ids, at::kLong), fo).logits[0];
    if (inputsOut)
        *inputsOut = inputs;
    if (actsOut)
        *actsOut = acts;
    return logits[logits.size(0) - 1];
}

// circuit-tracer's feature_intervention, written again with plain forward and hooks on ids
// [n] whose first nFrozen rows are the recorded prompt: the real model; with attention frozen
// the prompt rows' patterns are replaced by the recorded ones at the attn_pattern hook (later
// rows attend live); at each layer with edits, (edited - current) activations, current = the
// transcoder's reading of the run's input (the recording's with constrained layers), go
// through decoderTo into every target layer in `range`, added to mlp_out; layers in the range
// have the recorded mlp_out (the sets here have no skip). With every layer constrained the
// recorded denominators are replayed as well (nFrozen = n only). Returns the logits [n, vocab];
// inputs receives the run's transcoder inputs.
at::Tensor referencePatch(const cs::model::Model& model, const TranscoderSet& set, const Recording& rec,
    const std::vector<int64_t>& ids, int64_t nFrozen, const std::vector<FeatureEdit>& edits, bool freezeAttention,
    std::optional<LayerRange> range, std::vector<at::Tensor>* inputsOut = nullptr)
{
    at::NoGradGuard noGrad;
    const int64_t L = model.config().nLayers;
    const bool allLayers = range && range->first == 0 && range->end == L;
    std::vector<at::Tensor> inputs(L), added(L);
    cs::model::ForwardOptions fo;
    if (allLayers)
        fo.frozen = &rec.frozen;
    fo.hook = [&](int64_t l, cs::model::Hook h, at::Tensor& v) {
        if (h == cs::model::Hook::AttnPattern && (freezeAttention || range) && !allLayers) {
            at::Tensor p = v.clone(); // [1, heads, n, n]
            p.narrow(2, 0, nFrozen).narrow(3, 0, nFrozen).copy_(rec.frozen.layers[l].pattern);
            v = p;
        }
        if (h == set.config().inputHook) {
            inputs[l] = v[0].clone();
            at::Tensor current = range ? rec.acts[l].clone() : set.encode(l, inputs[l]);
            if (rec.held)
                current[0].zero_();
            at::Tensor edited = current.clone();
            for (const auto& e : edits)
                if (e.layer == l)
                    applyHere(edited, e, 0, rec.held);
            for (int64_t t = l; t < l + set.nTargets(l); ++t)
                if (!range || range->contains(t)) {
                    at::Tensor part = at::matmul(edited - current, set.decoderTo(l, t));
                    added[t] = added[t].defined() ? added[t] + part : part;
                }
        }
        if (h == cs::model::Hook::MlpOut) {
            at::Tensor out = v[0].clone();
            if (range && range->contains(l))
                out.narrow(0, 0, nFrozen).copy_(rec.mlpOut[l]);
            if (added[l].defined())
                out = out + added[l];
            v = out.unsqueeze(0);
        }
    };
    at::Tensor logits = model.forward(at::tensor(ids, at::kLong), fo).logits[0];
    if (inputsOut)
        *inputsOut = inputs;
    return logits;
}

// Greedy generation after the edits, recomputing the whole sequence every step: prompt rows
// run the free replacement model (errors recorded), generated rows the real MLP plus the
// decoder image of (edited - encoded) for the position -1 edits.
std::vector<int64_t> referenceGenerate(const cs::model::Model& model, const TranscoderSet& set, const Recording& rec,
    const std::vector<int64_t>& prompt, const std::vector<FeatureEdit>& edits, int64_t maxNew)
{
    at::NoGradGuard noGrad;
    const int64_t L = model.config().nLayers, nPrompt = static_cast<int64_t>(prompt.size());
    std::optional<int64_t> eos = model.config().eosTokenId;
    if (!eos)
        eos = model.tokenizer().eosId();
    std::vector<int64_t> seq = prompt, out;
    for (int64_t step = 0; step < maxNew; ++step) {
        if (static_cast<int64_t>(seq.size()) > model.config().maxPositions)
            break;
        const int64_t n = static_cast<int64_t>(seq.size()), nGen = n - nPrompt;
        std::vector<at::Tensor> acts(L), deltas(L), inputs(L);
        cs::model::ForwardOptions fo;
        fo.hook = [&](int64_t l, cs::model::Hook h, at::Tensor& v) {
            if (h == set.config().inputHook) {
                inputs[l] = v[0].clone();
                at::Tensor encoded = set.encode(l, inputs[l]);
                at::Tensor a = encoded.clone();
                if (rec.held)
                    a[0].zero_();
                for (const auto& e : edits)
                    if (e.layer == l)
                        applyHere(a, e, 0, rec.held);
                acts[l] = a.narrow(0, 0, nPrompt);
                deltas[l] = (a - encoded).narrow(0, nPrompt, nGen);
            }
            if (h == cs::model::Hook::MlpOut) {
                at::Tensor promptOut = set.decode(l, acts, inputs[l].narrow(0, 0, nPrompt)) + rec.errors[l];
                if (rec.held)
                    promptOut[0].copy_(v[0][0]);
                at::Tensor genOut = v[0].narrow(0, nPrompt, nGen).clone();
                for (int64_t s = 0; s <= l; ++s)
                    if (l - s < set.nTargets(s))
                        genOut = genOut + at::matmul(deltas[s], set.decoderTo(s, l));
                v = at::cat({ promptOut, genOut }).unsqueeze(0);
            }
        };
        at::Tensor logits = model.forward(at::tensor(seq, at::kLong), fo).logits[0];
        const int64_t next = logits[n - 1].argmax().item<int64_t>();
        out.push_back(next);
        seq.push_back(next);
        if (eos && next == *eos)
            break;
    }
    return out;
}

// The result's after-logits by token (topK = vocab lists every token).
std::map<int64_t, double> logitsOf(const std::vector<TokenScore>& top)
{
    std::map<int64_t, double> m;
    for (const auto& t : top)
        m[t.id] = t.logit;
    return m;
}

double maxAbsDiff(const std::map<int64_t, double>& got, const at::Tensor& expected)
{
    double worst = 0;
    for (const auto& [id, v] : got)
        worst = std::max(worst, std::abs(v - expected[id].item<double>()));
    return worst;
}

// The patch regime's option sets tested: attention frozen or live, a partial range of
// constrained layers (0:2 of 3, the last layer's MLP real), every layer (direct effects).
struct PatchMode {
    const char* name;
    bool freezeAttention;
    std::optional<LayerRange> range;
};
std::vector<PatchMode> patchModes(int64_t nLayers)
{
    return { { "patch, attention frozen", true, std::nullopt }, { "patch, attention live", false, std::nullopt },
        { "patch, layers 0:2 constrained", true, LayerRange { 0, 2 } },
        { "patch, direct effects", true, LayerRange { 0, nLayers } } };
}
InterventionOptions patchOptions(const PatchMode& m)
{
    InterventionOptions o;
    o.regime = Regime::Patch;
    o.freezeAttention = m.freezeAttention;
    o.constrainedLayers = m.range;
    return o;
}

// Every token's after - before (topK = vocab lists them all) and its mean over the vocabulary.
std::pair<at::Tensor, double> allDeltas(const InterventionResult& r, int64_t vocab)
{
    at::Tensor d = at::full({ vocab }, std::nan(""), at::kDouble);
    for (const auto& [id, v] : r.logitDelta)
        d[id] = v;
    return { d, d.mean().item<double>() };
}

} // namespace

class TestIntervention : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir { cs::test::testTempRoot() + "/intervention-XXXXXX" };

    struct Setup {
        ModelPtr model;
        SetPtr set;
        std::vector<int64_t> ids;
        cs::attribution::ReplacementContext ctx;
        Recording rec;
    };

    Setup setup(const QString& family, Architecture arch, Activation act, cs::model::Hook input, bool bos)
    {
        cs::test::TinySpec spec;
        spec.family = family.toStdString();
        spec.nLayers = 3;
        const QString folder = cs::test::writeTinyModel(m_dir.filePath(family), spec);
        Setup s;
        s.model = cs::model::Model::load(folder.toStdString(), { "cpu", true });
        const auto& mc = s.model->config();
        s.set = randomSet(arch, act, input, mc.nLayers, mc.dModel, 48, 7);
        s.ids = s.model->tokenizer().encode("the cat sat on a mat", bos);
        s.ctx = cs::attribution::buildContext(s.model, s.set, at::tensor(s.ids, at::kLong));
        s.rec = record(*s.model, *s.set, s.ids);
        if (s.rec.held != s.ctx.heldPositions)
            throw std::runtime_error("the test's held positions differ from the context's");
        return s;
    }

    // Random tiny models of several families with random transcoder sets: family, kind,
    // activation, input hook, whether the prompt starts with BOS (held).
    void addRandomRows()
    {
        QTest::addColumn<QString>("family");
        QTest::addColumn<QString>("kind");
        QTest::addColumn<QString>("activation");
        QTest::addColumn<QString>("input");
        QTest::addColumn<bool>("bos");
        QTest::newRow("llama clt jumprelu") << "llama"
                                            << "clt"
                                            << "jump_relu"
                                            << "mlp_in" << true;
        QTest::newRow("llama plt relu resid_mid") << "llama"
                                                  << "plt"
                                                  << "relu"
                                                  << "resid_mid" << false;
        QTest::newRow("gpt2 clt jumprelu") << "gpt2"
                                           << "clt"
                                           << "jump_relu"
                                           << "mlp_in" << false;
        QTest::newRow("gpt2 plt jumprelu") << "gpt2"
                                           << "plt"
                                           << "jump_relu"
                                           << "mlp_in" << true;
        QTest::newRow("qwen3 clt topk") << "qwen3"
                                        << "clt"
                                        << "topk"
                                        << "mlp_in" << true;
    }

    Setup setupFromRow()
    {
        QFETCH(QString, family);
        QFETCH(QString, kind);
        QFETCH(QString, activation);
        QFETCH(QString, input);
        QFETCH(bool, bos);
        const Activation act = activation == "relu" ? Activation::ReLU
            : activation == "topk"                  ? Activation::TopK
                                                    : Activation::JumpReLU;
        return setup(family, kind == "clt" ? Architecture::CrossLayer : Architecture::PerLayer, act,
            input == "resid_mid" ? cs::model::Hook::ResidMid : cs::model::Hook::MlpIn, bos);
    }

private Q_SLOTS:
    // Edits that change nothing (scale by 1, add 0) give back the model's own logits in both
    // regimes, and nothing downstream changes.
    void identityEditsGiveTheModel_data() { addRandomRows(); }
    void identityEditsGiveTheModel()
    {
        Setup s = setupFromRow();
        const at::Tensor own = s.model->forward(at::tensor(s.ids, at::kLong)).logits[0][-1].to(at::kDouble);
        const std::vector<FeatureEdit> edits
            = { { 0, -1, 3, Op::Scale, 1.0 }, { 1, static_cast<int64_t>(s.ids.size()) - 1, 5, Op::Add, 0.0 } };
        for (Regime regime : { Regime::Constrained, Regime::Free }) {
            InterventionOptions o;
            o.regime = regime;
            o.topK = s.model->config().vocabSize;
            const auto r = intervene(s.ctx, edits, o);
            QCOMPARE(int64_t(r.before.size()), o.topK);
            QVERIFY(maxAbsDiff(logitsOf(r.before), own) < 1e-5);
            QVERIFY2(maxAbsDiff(logitsOf(r.after), own) < 1e-4, regimeName(regime));
            QCOMPARE(r.before[0].id, own.argmax().item<int64_t>());
            QCOMPARE(r.after[0].id, r.before[0].id);
            double probSum = 0;
            for (const auto& t : r.after)
                probSum += t.prob;
            QVERIFY(std::abs(probSum - 1) < 1e-6);
            for (const auto& [id, d] : r.logitDelta)
                QVERIFY(std::abs(d) < 1e-4);
            QVERIFY2(r.changed.empty(), regimeName(regime));
        }
        for (const PatchMode& m : patchModes(s.model->config().nLayers)) {
            InterventionOptions o = patchOptions(m);
            o.topK = s.model->config().vocabSize;
            const auto r = intervene(s.ctx, edits, o);
            QVERIFY2(maxAbsDiff(logitsOf(r.after), own) < 1e-4, m.name);
            for (const auto& [id, d] : r.demeanedLogitDelta)
                QVERIFY2(std::abs(d) < 1e-4, m.name);
            QVERIFY2(r.changed.empty(), m.name);
        }
    }

    // The patch regime (circuit-tracer's feature_intervention) in each of its option sets
    // against the run written here with plain forward and hooks; the demeaned deltas against
    // the raw ones less their vocabulary mean (no soft-cap in these rows); the changed
    // features against that run's transcoder inputs.
    void patchMatchesAHandWrittenRun_data() { addRandomRows(); }
    void patchMatchesAHandWrittenRun()
    {
        Setup s = setupFromRow();
        const int64_t last = static_cast<int64_t>(s.ids.size()) - 1, vocab = s.model->config().vocabSize;
        const int64_t nPos = static_cast<int64_t>(s.ids.size());
        // Layers 0 and 1 only: every edit writes into the 0:2 range, for PLTs too.
        const std::vector<FeatureEdit> edits = { { 0, -1, 2, Op::Add, 3.0 }, { 0, 2, 7, Op::Set, 4.0 },
            { 1, last, 11, Op::Scale, -2.0 }, { 1, -1, 2, Op::Scale, 0.0 } };
        for (const PatchMode& m : patchModes(s.model->config().nLayers)) {
            InterventionOptions o = patchOptions(m);
            o.topK = vocab;
            o.maxChanged = 1000000;
            const auto r = intervene(s.ctx, edits, o);
            std::vector<at::Tensor> inputs;
            const at::Tensor expected
                = referencePatch(*s.model, *s.set, s.rec, s.ids, nPos, edits, m.freezeAttention, m.range, &inputs)[last]
                      .to(at::kDouble);
            const double err = maxAbsDiff(logitsOf(r.after), expected);
            const double moved = (expected - s.rec.logits[last].to(at::kDouble)).abs().max().item<double>();
            qInfo("%s: largest logit change %.4f, difference from the reference %.2e", m.name, moved, err);
            QVERIFY(moved > 1e-2);
            QVERIFY2(err < 1e-4 * std::max(1.0, moved), m.name);
            QCOMPARE(r.directEffects, m.range && m.range->first == 0 && m.range->end == s.model->config().nLayers);
            QCOMPARE(r.generationMode, Regime::Patch);
            const auto [raw, mean] = allDeltas(r, vocab);
            for (const auto& [id, d] : r.demeanedLogitDelta)
                QVERIFY2(std::abs(d - (raw[id].item<double>() - mean)) < 1e-4 * std::max(1.0, moved), m.name);
            QVERIFY(!r.changed.empty());
            for (const auto& c : r.changed) {
                QVERIFY(c.layer >= 1 && c.position >= s.rec.held);
                QVERIFY(std::abs(c.before - s.rec.acts[c.layer][c.position][c.feature].item<double>()) < 1e-4);
                const double after = s.set->encode(c.layer, inputs[c.layer])[c.position][c.feature].item<double>();
                QVERIFY(std::abs(c.after - after) < 1e-3);
            }
        }
    }

    // circuit-tracer's direct effects (every layer constrained) are our constrained regime: the
    // same logits and demeaned changes, both marked as direct effects.
    void directEffectsAreTheConstrainedRegime_data() { addRandomRows(); }
    void directEffectsAreTheConstrainedRegime()
    {
        Setup s = setupFromRow();
        const int64_t last = static_cast<int64_t>(s.ids.size()) - 1, vocab = s.model->config().vocabSize;
        const std::vector<FeatureEdit> edits
            = { { 0, -1, 2, Op::Add, 3.0 }, { 1, last, 11, Op::Scale, -2.0 }, { 2, -1, 4, Op::Set, 2.0 } };
        InterventionOptions constrained;
        constrained.topK = vocab;
        InterventionOptions direct = patchOptions({ "direct", true, LayerRange { 0, s.model->config().nLayers } });
        direct.topK = vocab;
        const auto a = intervene(s.ctx, edits, constrained);
        const auto b = intervene(s.ctx, edits, direct);
        QVERIFY(a.directEffects && b.directEffects);
        QCOMPARE(a.generationMode, Regime::Free);
        double moved = 0;
        for (const auto& [id, d] : a.logitDelta)
            moved = std::max(moved, std::abs(d));
        QVERIFY(moved > 1e-2);
        QCOMPARE(b.logitDelta.size(), a.logitDelta.size());
        for (const auto& [id, d] : a.logitDelta) {
            QVERIFY(std::abs(b.logitDelta.at(id) - d) < 1e-4 * std::max(1.0, moved));
            QVERIFY(std::abs(b.demeanedLogitDelta.at(id) - a.demeanedLogitDelta.at(id)) < 1e-4 * std::max(1.0, moved));
        }
    }

    // Patch options that do not fit are refused with a message that says why.
    void patchOptionsAreChecked()
    {
        Setup s = setup("llama", Architecture::PerLayer, Activation::JumpReLU, cs::model::Hook::MlpIn, true);
        const std::vector<FeatureEdit> edit = { { 0, 1, 3, Op::Set, 1.0 } };
        auto refused = [&](const InterventionOptions& o, const QString& phrase) {
            try {
                intervene(s.ctx, edit, o);
                return QStringLiteral("no error");
            } catch (const cs::Error& e) {
                return QString(e.what()).contains(phrase) ? QString() : QString(e.what());
            }
        };
        InterventionOptions o;
        o.constrainedLayers = LayerRange { 0, 2 };
        QCOMPARE(refused(o, "patch regime"), QString()); // the constrained regime has no range
        o.regime = Regime::Patch;
        o.constrainedLayers = LayerRange { 2, 2 };
        QCOMPARE(refused(o, "nonempty range"), QString());
        o.constrainedLayers = LayerRange { 0, 4 };
        QCOMPARE(refused(o, "nonempty range"), QString());
        o.constrainedLayers = LayerRange { 0, 2 };
        o.freezeAttention = false;
        QCOMPARE(refused(o, "freeze attention"), QString());
        o.freezeAttention = true;
        o.constrainedLayers = LayerRange { 1, 3 }; // a PLT feature of layer 0 writes to layer 0 alone
        QCOMPARE(refused(o, "change nothing"), QString());
        o.constrainedLayers = LayerRange { 0, 1 };
        QVERIFY(!intervene(s.ctx, edit, o).after.empty());
    }

    // The graph's units: on tinyworld's Dallas prompt, scaling one feature by 2 in the
    // constrained regime (and in circuit-tracer's direct effects) moves every traced logit's
    // demeaned value by exactly the graph edge from that feature (A[logit, feature] x (2 - 1)),
    // while the raw logit moves by that plus the vocabulary-mean shift.
    void demeanedDeltaIsTheGraphEdge()
    {
        const std::string folder = cs::resolveModelFolder(cs::kDefaultModel);
        auto model = cs::model::Model::load(folder, { "cpu", true });
        auto set = TranscoderSet::load(cs::transcoder::resolveTranscoderFolder(folder, "clt"), { "cpu", true });
        const auto ids = model->tokenizer().encode("Fact: the capital of the state containing Dallas is");
        auto ctx = cs::attribution::buildContext(model, set, at::tensor(ids, at::kLong));
        const int64_t last = ctx.nPos() - 1, vocab = model->config().vocabSize;
        // The Texas feature at the last position (the README's example edits it): the strongest
        // layer-3 feature there.
        const int64_t layer = 3, feature = ctx.activations[layer][last].argmax().item<int64_t>();
        QVERIFY(ctx.activations[layer][last][feature].item<float>() > 0);

        const auto traced = cs::attribution::trace(ctx);
        const cs::graph::Graph& g = traced.graph;
        int64_t source = -1;
        std::vector<int64_t> logitNodes;
        for (int64_t i = 0; i < g.size(); ++i) {
            const auto& n = g.nodes[static_cast<size_t>(i)];
            if (n.kind == cs::graph::NodeKind::Feature && n.layer == layer && n.position == last
                && n.feature == feature)
                source = i;
            if (n.kind == cs::graph::NodeKind::Logit)
                logitNodes.push_back(i);
        }
        QVERIFY(source >= 0 && !logitNodes.empty());
        const int64_t austin = model->tokenizer().encode(" Austin", false).at(0);

        InterventionOptions constrained;
        constrained.topK = vocab;
        InterventionOptions direct = patchOptions({ "direct", true, LayerRange { 0, model->config().nLayers } });
        direct.topK = vocab;
        for (const InterventionOptions& o : { constrained, direct }) {
            const auto r = intervene(ctx, { { layer, last, feature, Op::Scale, 2.0 } }, o);
            const auto [raw, mean] = allDeltas(r, vocab);
            QVERIFY(std::abs(mean) > 1e-2); // the mean shift this is about
            bool sawAustin = false;
            for (const int64_t node : logitNodes) {
                const int64_t token = g.nodes[static_cast<size_t>(node)].tokenId;
                const double edge = g.adjacency.value(node, source) * (2.0 - 1.0);
                const double demeaned = r.demeanedLogitDelta.at(token), rawDelta = r.logitDelta.at(token);
                if (token == austin) {
                    sawAustin = true;
                    qInfo("%s: scale 3:%lld:%lld x2: \"%s\" raw delta %.3f, demeaned %.3f, graph edge %.3f, "
                          "vocabulary-mean shift %.3f",
                        regimeName(o.regime), static_cast<long long>(last), static_cast<long long>(feature),
                        model->tokenizer().tokenText(token).c_str(), rawDelta, demeaned, edge, mean);
                    QVERIFY(std::abs(rawDelta - edge) > 1e-2); // the raw delta is not the edge
                }
                QVERIFY2(std::abs(demeaned - edge) < 1e-4 * std::max(1.0, std::abs(edge)),
                    qPrintable(QStringLiteral("token %1: demeaned %2, edge %3").arg(token).arg(demeaned).arg(edge)));
                QVERIFY(std::abs(rawDelta - demeaned - mean) < 1e-4);
            }
            QVERIFY(sawAustin);
        }
    }

    // A soft-capped model (gemma2's final cap): the demeaned change is read before the cap,
    // so in the constrained regime it stays linear in the edit while the capped logits do not.
    void demeanedDeltaIsBeforeTheSoftCap()
    {
        Setup s = setup("gemma2", Architecture::CrossLayer, Activation::JumpReLU, cs::model::Hook::MlpIn, true);
        QVERIFY(s.model->config().finalSoftcap > 0);
        int64_t p = -1, f = -1;
        for (int64_t q = s.ctx.heldPositions; q < s.ctx.nPos() && p < 0; ++q)
            for (int64_t g = 0; g < s.set->nFeatures() && p < 0; ++g)
                if (s.ctx.activations[0][q][g].item<float>() == 0) {
                    p = q;
                    f = g;
                }
        QVERIFY(p >= 0);
        InterventionOptions o;
        o.topK = s.model->config().vocabSize;
        const auto one = intervene(s.ctx, { { 0, p, f, Op::Set, 12.0 } }, o);
        const auto two = intervene(s.ctx, { { 0, p, f, Op::Set, 24.0 } }, o);
        double scale = 0, worstDemeaned = 0, worstRaw = 0;
        for (const auto& [id, d] : one.demeanedLogitDelta) {
            scale = std::max(scale, std::abs(two.demeanedLogitDelta.at(id)));
            worstDemeaned = std::max(worstDemeaned, std::abs(two.demeanedLogitDelta.at(id) - 2 * d));
            worstRaw = std::max(worstRaw, std::abs(two.logitDelta.at(id) - 2 * one.logitDelta.at(id)));
        }
        qInfo("largest demeaned change %.4f; off linear: demeaned %.2e, capped logits %.2e", scale, worstDemeaned,
            worstRaw);
        QVERIFY(scale > 1e-2);
        QVERIFY(worstDemeaned < 1e-4 * scale);
        QVERIFY(worstRaw > 1e-3 * scale); // the cap bends the raw logits
    }

    // Both regimes against the replacement model written here with plain forward and hooks;
    // the changed features against the activations (free) or the activation function of the
    // new pre-activations (constrained) of that run.
    void regimesMatchAHandWrittenReplacement_data() { addRandomRows(); }
    void regimesMatchAHandWrittenReplacement()
    {
        Setup s = setupFromRow();
        const int64_t last = static_cast<int64_t>(s.ids.size()) - 1;
        const std::vector<FeatureEdit> edits = { { 0, -1, 2, Op::Add, 3.0 }, { 0, 2, 7, Op::Set, 4.0 },
            { 1, last, 11, Op::Scale, -2.0 }, { 1, -1, 2, Op::Scale, 0.0 } };
        for (bool constrained : { true, false }) {
            InterventionOptions o;
            o.regime = constrained ? Regime::Constrained : Regime::Free;
            o.topK = s.model->config().vocabSize;
            o.maxChanged = 1000000;
            const auto r = intervene(s.ctx, edits, o);
            std::vector<at::Tensor> inputs, acts;
            const at::Tensor expected
                = referenceRun(*s.model, *s.set, s.rec, s.ids, edits, constrained, &inputs, &acts).to(at::kDouble);
            const double err = maxAbsDiff(logitsOf(r.after), expected);
            const double moved = (expected - s.rec.logits[last].to(at::kDouble)).abs().max().item<double>();
            qInfo("%s: largest logit change %.4f, difference from the reference %.2e",
                constrained ? "constrained" : "free", moved, err);
            QVERIFY(moved > 1e-2); // the edits do something
            QVERIFY(err < 1e-4 * std::max(1.0, moved));
            for (const auto& [id, d] : r.logitDelta)
                QVERIFY(std::abs(d - (expected[id].item<double>() - s.rec.logits[last][id].item<double>())) < 1e-4);

            // Every downstream feature that moved, as the reference run says.
            QVERIFY(!r.changed.empty());
            int64_t expectedCount = 0;
            for (int64_t l = 1; l < s.model->config().nLayers; ++l) {
                at::Tensor after = constrained ? s.set->activate(l, s.set->preActivations(l, inputs[l])) : acts[l];
                after = after.narrow(0, s.rec.held, after.size(0) - s.rec.held);
                at::Tensor before = s.rec.acts[l].narrow(0, s.rec.held, after.size(0));
                at::Tensor movedMask = (after - before).abs().gt(1e-3).to(at::kDouble);
                for (const auto& e : edits)
                    if (e.layer == l)
                        applyHere(movedMask, { e.layer, e.position, e.feature, Op::Set, 0.0 }, s.rec.held, s.rec.held);
                expectedCount += static_cast<int64_t>(movedMask.sum().item<double>());
                for (const auto& c : r.changed) {
                    if (c.layer != l)
                        continue;
                    QVERIFY(std::abs(c.before - s.rec.acts[l][c.position][c.feature].item<double>()) < 1e-4);
                    QVERIFY(std::abs(c.after - after[c.position - s.rec.held][c.feature].item<double>()) < 1e-3);
                }
            }
            int64_t listedAbove = 0;
            for (size_t i = 0; i < r.changed.size(); ++i) {
                const auto& c = r.changed[i];
                QVERIFY(c.layer >= 1);
                QVERIFY(c.position >= s.rec.held);
                if (i > 0)
                    QVERIFY(std::abs(c.after - c.before) <= std::abs(r.changed[i - 1].after - r.changed[i - 1].before));
                listedAbove += std::abs(c.after - c.before) > 1e-3 ? 1 : 0;
            }
            QCOMPARE(listedAbove, expectedCount);
        }
    }

    // The constrained regime is affine in the edit: a feature set at a position where it was
    // inactive to v and to 2v moves every logit by exactly twice as much, and two edits'
    // effects add.
    void constrainedIsLinear_data() { addRandomRows(); }
    void constrainedIsLinear()
    {
        Setup s = setupFromRow(); // (no gemma2 row: soft-capped logits are not affine)
        // Inactive features at layer 0.
        std::vector<std::pair<int64_t, int64_t>> inactive; // (position, feature)
        for (int64_t p = s.ctx.heldPositions; p < s.ctx.nPos() && inactive.size() < 2; ++p)
            for (int64_t f = 0; f < s.set->nFeatures() && inactive.size() < 2; ++f)
                if (s.ctx.activations[0][p][f].item<float>() == 0 && (inactive.empty() || inactive[0].first != p))
                    inactive.emplace_back(p, f);
        QCOMPARE(inactive.size(), size_t(2));
        InterventionOptions o;
        o.topK = s.model->config().vocabSize;
        // Every token's logit change (topK = vocab lists them all); NaN where one is missing.
        auto deltas = [&](const std::vector<FeatureEdit>& edits) {
            const auto r = intervene(s.ctx, edits, o);
            at::Tensor d = at::full({ o.topK }, std::nan(""), at::kDouble);
            for (const auto& [id, v] : r.logitDelta)
                d[id] = v;
            return d;
        };
        const auto [p1, f1] = inactive[0];
        const auto [p2, f2] = inactive[1];
        const at::Tensor one = deltas({ { 0, p1, f1, Op::Set, 1.5 } });
        const at::Tensor two = deltas({ { 0, p1, f1, Op::Set, 3.0 } });
        const at::Tensor other = deltas({ { 0, p2, f2, Op::Add, -2.0 } });
        const at::Tensor both = deltas({ { 0, p1, f1, Op::Set, 1.5 }, { 0, p2, f2, Op::Add, -2.0 } });
        QVERIFY(!at::isnan(both).any().item<bool>() && !at::isnan(one).any().item<bool>());
        const double scale = two.abs().max().item<double>();
        QVERIFY(scale > 1e-3);
        QVERIFY((two - 2 * one).abs().max().item<double>() <= 1e-4 * scale);
        QVERIFY((both - one - other).abs().max().item<double>() <= 1e-4 * both.abs().max().item<double>());
    }

    // Perturbations: sources are two features with outgoing edges; every other feature and
    // logit node is watched. Constrained: predicted == actual (1e-4), and the logits' actual
    // values are intervene()'s demeaned deltas. Free: the sweep's path sums equal a dense
    // solve. (TopK: a feature's activation depends on its whole row, including inactive
    // features the graph does not hold, so only the logits are exact there.)
    void perturbationPredictions_data() { addRandomRows(); }
    void perturbationPredictions()
    {
        Setup s = setupFromRow();
        QFETCH(QString, activation);
        const auto traced = cs::attribution::trace(s.ctx);
        const cs::graph::Graph& g = traced.graph;
        const cs::graph::KindRanges r = g.ranges();
        const int64_t n = g.size();
        // The two features with the most outgoing edges into features.
        std::vector<std::pair<int64_t, int64_t>> outDegree;
        for (int64_t f = r.features.begin; f < r.features.end; ++f) {
            const auto col = g.adjacency.column(f);
            int64_t k = 0;
            for (int64_t j = 0; j < col.size; ++j)
                k += r.features.contains(col.targets[j]);
            outDegree.emplace_back(-k, f);
        }
        std::sort(outDegree.begin(), outDegree.end());
        QVERIFY(outDegree.size() >= 2 && outDegree[1].first < 0);
        const std::vector<int64_t> sources = { outDegree[0].second, outDegree[1].second };
        std::vector<int64_t> watch;
        for (int64_t i = 0; i < n; ++i)
            if ((r.features.contains(i) || r.logits.contains(i)) && i != sources[0] && i != sources[1])
                watch.push_back(i);
        const bool topk = activation == "topk";

        // The dense form: J[t, s] = A[t, s] / a_s over feature sources, D = factor on the
        // sources' rows, c = (factor - 1) a on the sources.
        const at::Tensor A = g.adjacency.dense().to(at::kDouble);
        at::Tensor a = at::zeros({ n }, at::kDouble);
        for (int64_t f = r.features.begin; f < r.features.end; ++f)
            a[f] = g.nodes[static_cast<size_t>(f)].activation;
        at::Tensor J = at::zeros({ n, n }, at::kDouble);
        J.narrow(1, r.features.begin, r.features.size())
            .copy_(A.narrow(1, r.features.begin, r.features.size())
                / a.narrow(0, r.features.begin, r.features.size()).unsqueeze(0));

        for (double factor : { 0.0, -1.0, 0.5 }) {
            const auto p = cs::validation::perturb(s.ctx, g, sources, factor, watch);
            QCOMPARE(p.nodes.size(), watch.size());
            at::Tensor D = at::ones({ n }, at::kDouble), c = at::zeros({ n }, at::kDouble);
            for (int64_t src : sources) {
                D[src] = factor;
                c[src] = (factor - 1) * a[src].item<double>();
            }
            const at::Tensor x = at::linalg_solve(at::eye(n, at::kDouble) - D.unsqueeze(1) * J, c.unsqueeze(1));
            const at::Tensor pathSum = at::matmul(J, x).squeeze(1); // each node's input change

            InterventionOptions o;
            o.topK = s.model->config().vocabSize;
            std::vector<FeatureEdit> edits;
            for (int64_t src : sources) {
                const auto& nd = g.nodes[static_cast<size_t>(src)];
                edits.push_back({ nd.layer, nd.position, nd.feature, Op::Scale, factor });
            }
            const auto viaIntervene = intervene(s.ctx, edits, o);

            int64_t featuresChecked = 0, moved = 0;
            for (const auto& v : p.nodes) {
                const auto& nd = g.nodes[static_cast<size_t>(v.node)];
                const bool logit = r.logits.contains(v.node);
                if (logit || !topk) {
                    QVERIFY2(std::abs(v.predictedConstrained - v.actualConstrained)
                            <= 1e-4 * std::max(1.0, std::abs(v.actualConstrained)),
                        qPrintable(QStringLiteral("%1: predicted %2, actual %3 (factor %4)")
                                       .arg(QString::fromStdString(cs::graph::nodeId(g, v.node)))
                                       .arg(v.predictedConstrained)
                                       .arg(v.actualConstrained)
                                       .arg(factor)));
                    featuresChecked += !logit;
                    moved += std::abs(v.actualConstrained - v.initial) > 1e-3;
                }
                const double path = pathSum[v.node].item<double>();
                if (logit) {
                    QVERIFY(std::abs(v.predictedFree - (v.initial + path)) <= 1e-6 * std::max(1.0, std::abs(path)));
                    QVERIFY(std::abs((v.actualConstrained - v.initial) - viaIntervene.demeanedLogitDelta.at(nd.tokenId))
                        <= 1e-4 * std::max(1.0, std::abs(v.actualConstrained)));
                } else if (!topk) {
                    // The node's own activation of its predicted pre-activation: for JumpReLU and
                    // ReLU, pre + path when that stays active.
                    const double pre = s.ctx.preActivations[nd.layer][nd.position][nd.feature].item<double>() + path;
                    const double expected = pre > 0
                            && (activation != "jump_relu"
                                || pre > s.set->threshold(nd.layer)[nd.feature].item<double>())
                        ? pre
                        : 0.0;
                    QVERIFY2(std::abs(v.predictedFree - expected) <= 1e-4 * std::max(1.0, std::abs(expected)),
                        qPrintable(QStringLiteral("%1: path sum %2, dense %3")
                                       .arg(QString::fromStdString(cs::graph::nodeId(g, v.node)))
                                       .arg(v.predictedFree)
                                       .arg(expected)));
                }
            }
            QVERIFY(topk || featuresChecked > 0);
            QVERIFY(moved > 0); // the edit did something the check could see
        }
    }

    // validateGraph: the constrained points are exact, the correlation is 1; the free one is
    // reported (not asserted); points follow influence; bad requests are refused.
    void validation()
    {
        Setup s = setup("llama", Architecture::CrossLayer, Activation::JumpReLU, cs::model::Hook::MlpIn, true);
        const auto traced = cs::attribution::trace(s.ctx);
        const auto v = cs::validation::validateGraph(s.ctx, traced.graph, 10, 0.0);
        QVERIFY(!v.points.empty() && v.points.size() <= 10);
        for (size_t i = 0; i < v.points.size(); ++i) {
            const auto& pt = v.points[i];
            QVERIFY(std::abs(pt.predicted - pt.actualConstrained) <= 1e-4 * std::max(1.0, std::abs(pt.predicted)));
            // The constrained effect is the direct edge times the activation's change (-a).
            const double edge = traced.graph.adjacency.value(v.target, pt.node);
            QVERIFY(std::abs(pt.predicted + edge) <= 1e-6 * std::max(1.0, std::abs(edge)));
            if (i > 0)
                QVERIFY(pt.influence <= v.points[i - 1].influence);
        }
        QVERIFY(std::abs(v.correlation.constrained - 1) < 1e-6);
        qInfo("random llama CLT, %zu nodes ablated: correlation constrained %.4f, free %.4f; downstream %zu pairs: "
              "%.4f, %.4f",
            v.points.size(), v.correlation.constrained, v.correlation.free, v.downstream.size(),
            v.downstreamCorrelation.constrained, v.downstreamCorrelation.free);
        const auto j = cs::validation::validationJson(traced.graph, v);
        for (const char* key : { "targets", "points", "correlation" })
            QVERIFY2(j.contains(key), key);
        for (const char* key : { "node", "predicted", "actual_constrained", "actual_free" })
            QVERIFY2(j["points"][0].contains(key), key);

        // Pearson against numpy.corrcoef on a small case; undefined for a constant list.
        QVERIFY(std::abs(cs::validation::pearson({ 1, 2, 3, 4 }, { 2, 4, 5, 9 }) - 0.9647638212377321) < 1e-12);
        QVERIFY(std::isnan(cs::validation::pearson({ 1, 1, 1 }, { 1, 2, 3 })));

        QCOMPARE(cs::validation::parseEditFactor("ablate"), 0.0);
        QCOMPARE(cs::validation::parseEditFactor("scale:-1"), -1.0);
        for (const char* bad : { "", "scale:", "scale:x", "scale:nan", "scale:inf", "flip" })
            QVERIFY_THROWS_EXCEPTION(cs::Error, cs::validation::parseEditFactor(bad));
        const cs::graph::KindRanges r = traced.graph.ranges();
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::validation::perturb(s.ctx, traced.graph, {}, 0.0));
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::validation::perturb(s.ctx, traced.graph, { r.errors.begin }, 0.0));
        QVERIFY_THROWS_EXCEPTION(
            cs::Error, cs::validation::perturb(s.ctx, traced.graph, { r.features.begin }, std::nan("")));
        QVERIFY_THROWS_EXCEPTION(
            cs::Error, cs::validation::perturb(s.ctx, traced.graph, { r.features.begin }, 0.0, { r.embeddings.begin }));
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::validation::validateGraph(s.ctx, traced.graph, 0, 0.0));
        // Another prompt's graph.
        const auto otherIds = s.model->tokenizer().encode("a mat on the sat cat", true);
        const auto other = cs::attribution::buildContext(s.model, s.set, at::tensor(otherIds, at::kLong));
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::validation::validateGraph(other, traced.graph, 5, 0.0));
    }

    // Greedy generation: before is the model's own; with identity edits after is too; with
    // real edits after is what recomputing the whole prefix every step gives.
    void generation_data() { addRandomRows(); }
    void generation()
    {
        Setup s = setupFromRow();
        cs::model::GenerateOptions go;
        go.maxNew = 10;
        const auto own = s.model->generate(s.ids, go);
        for (Regime regime : { Regime::Constrained, Regime::Free }) {
            InterventionOptions o;
            o.regime = regime;
            o.generate = 10;
            const auto same = intervene(s.ctx, { { 1, -1, 4, Op::Scale, 1.0 } }, o);
            QCOMPARE(same.generatedBefore, own);
            QCOMPARE(same.generatedAfter, own);
            QCOMPARE(same.generationBefore, s.model->tokenizer().decode(own));
            QCOMPARE(same.generationAfter, same.generationBefore);

            const std::vector<FeatureEdit> edits
                = { { 0, -1, 5, Op::Add, 6.0 }, { 1, -1, 9, Op::Set, 5.0 }, { 0, 2, 1, Op::Set, 8.0 } };
            const auto r = intervene(s.ctx, edits, o);
            QCOMPARE(r.generatedBefore, own);
            const auto expected = referenceGenerate(*s.model, *s.set, s.rec, s.ids, edits, 10);
            QCOMPARE(r.generatedAfter, expected);
            QVERIFY(r.generatedAfter != own); // the edits are strong enough to change the text
            QCOMPARE(r.generationAfter, s.model->tokenizer().decode(expected));
            if (regime == Regime::Free) // the continuation starts from the free run's top token
                QCOMPARE(r.generatedAfter.front(), r.after.front().id);
            QCOMPARE(r.generationMode, Regime::Free);
        }

        // The patch regime continues from its own run of the prompt (circuit-tracer's
        // feature_intervention_generate): the first token is "after"'s top one; later tokens
        // attend live, with the * edits' decoder image added, as recomputing the whole
        // sequence with the prompt rows' patterns frozen gives.
        const std::vector<FeatureEdit> edits
            = { { 0, -1, 5, Op::Add, 6.0 }, { 1, -1, 9, Op::Set, 5.0 }, { 0, 2, 1, Op::Set, 8.0 } };
        const int64_t nPrompt = static_cast<int64_t>(s.ids.size());
        std::optional<int64_t> eos = s.model->config().eosTokenId;
        if (!eos)
            eos = s.model->tokenizer().eosId();
        for (const PatchMode& m : patchModes(s.model->config().nLayers)) {
            InterventionOptions o = patchOptions(m);
            o.generate = 10;
            const auto r = intervene(s.ctx, edits, o);
            QCOMPARE(r.generationMode, Regime::Patch);
            QCOMPARE(r.generatedBefore, own);
            QVERIFY(!r.generatedAfter.empty());
            QCOMPARE(r.generatedAfter.front(), r.after.front().id);
            if (m.range)
                continue; // (constrained prompt rows and live generated rows: not rewritten here)
            std::vector<int64_t> seq = s.ids, expected;
            for (int64_t step = 0; step < 10 && static_cast<int64_t>(seq.size()) <= s.model->config().maxPositions;
                 ++step) {
                const at::Tensor logits
                    = referencePatch(*s.model, *s.set, s.rec, seq, nPrompt, edits, m.freezeAttention, std::nullopt);
                const int64_t next = logits[logits.size(0) - 1].argmax().item<int64_t>();
                expected.push_back(next);
                seq.push_back(next);
                if (eos && next == *eos)
                    break;
            }
            QVERIFY2(r.generatedAfter == expected, m.name);
        }
    }

    // The shipped CLT: ablating the strongest feature at the last position changes the
    // answer's logit; timing of one intervention.
    void tinyworld()
    {
        const std::string folder = cs::resolveModelFolder(cs::kDefaultModel);
        auto model = cs::model::Model::load(folder, { "cpu", true });
        auto set = TranscoderSet::load(cs::transcoder::resolveTranscoderFolder(folder, "clt"), { "cpu", true });
        const std::string prompt = "Fact: the capital of the state containing Dallas is";
        const auto ids = model->tokenizer().encode(prompt);
        auto ctx = cs::attribution::buildContext(model, set, at::tensor(ids, at::kLong));
        const int64_t last = ctx.nPos() - 1;
        int64_t bestLayer = 0, bestFeature = 0;
        float best = 0;
        for (int64_t l = 0; l < ctx.nLayers(); ++l) {
            const auto top = at::max(ctx.activations[l][last], 0);
            if (std::get<0>(top).item<float>() > best) {
                best = std::get<0>(top).item<float>();
                bestLayer = l;
                bestFeature = std::get<1>(top).item<int64_t>();
            }
        }
        QVERIFY(best > 0);
        const std::vector<FeatureEdit> ablate = { { bestLayer, last, bestFeature, Op::Scale, 0.0 } };
        InterventionOptions o;
        o.generate = 4;
        for (Regime regime : { Regime::Constrained, Regime::Free }) {
            o.regime = regime;
            const auto r = intervene(ctx, ablate, o);
            qInfo("%s: ablating %lld:%lld:%lld (%.3f): %s (%.3f) -> %s (%.3f), delta %.4f; \"%s\" -> \"%s\"",
                regimeName(regime), static_cast<long long>(bestLayer), static_cast<long long>(last),
                static_cast<long long>(bestFeature), best, r.before[0].token.c_str(), r.before[0].prob,
                r.after[0].token.c_str(), r.after[0].prob, r.logitDelta.at(r.before[0].id), r.generationBefore.c_str(),
                r.generationAfter.c_str());
            QVERIFY(std::abs(r.logitDelta.at(r.before[0].id)) > 1e-3);
            cs::model::GenerateOptions go;
            go.maxNew = 4;
            QCOMPARE(r.generatedBefore, model->generate(ids, go));
        }
        // (Its speed is measured by `circuitscope-cli bench`, not asserted here.)
    }

    void badEditsAreRefused_data()
    {
        QTest::addColumn<int64_t>("layer");
        QTest::addColumn<int64_t>("position");
        QTest::addColumn<int64_t>("feature");
        QTest::addColumn<double>("value");
        QTest::addColumn<int64_t>("topK");
        QTest::addColumn<QString>("phrase");
        const double nan = std::nan("");
        QTest::newRow("feature") << int64_t(0) << int64_t(1) << int64_t(48) << 1.0 << int64_t(5)
                                 << "48 features per layer";
        QTest::newRow("negative feature")
            << int64_t(0) << int64_t(1) << int64_t(-1) << 1.0 << int64_t(5) << "out of range";
        QTest::newRow("layer") << int64_t(3) << int64_t(1) << int64_t(0) << 1.0 << int64_t(5) << "3 layers";
        QTest::newRow("position") << int64_t(0) << int64_t(99) << int64_t(0) << 1.0 << int64_t(5) << "positions 0..";
        QTest::newRow("position -2") << int64_t(0) << int64_t(-2) << int64_t(0) << 1.0 << int64_t(5) << "out of range";
        QTest::newRow("held bos") << int64_t(0) << int64_t(0) << int64_t(0) << 1.0 << int64_t(5) << "BOS";
        QTest::newRow("nan") << int64_t(0) << int64_t(1) << int64_t(0) << nan << int64_t(5) << "finite";
        QTest::newRow("infinity") << int64_t(0) << int64_t(1) << int64_t(0) << HUGE_VAL << int64_t(5) << "finite";
        QTest::newRow("top-k") << int64_t(0) << int64_t(1) << int64_t(0) << 1.0 << int64_t(0) << "top-k";
    }
    void badEditsAreRefused()
    {
        QFETCH(int64_t, layer);
        QFETCH(int64_t, position);
        QFETCH(int64_t, feature);
        QFETCH(double, value);
        QFETCH(int64_t, topK);
        QFETCH(QString, phrase);
        Setup s = setup("llama", Architecture::CrossLayer, Activation::JumpReLU, cs::model::Hook::MlpIn, true);
        InterventionOptions o;
        o.topK = topK;
        try {
            intervene(s.ctx, { { layer, position, feature, Op::Set, value } }, o);
            QFAIL("no error");
        } catch (const cs::Error& e) {
            QVERIFY2(QString(e.what()).contains(phrase), e.what());
        }
        QVERIFY_THROWS_EXCEPTION(cs::Error, intervene(s.ctx, {}, {})); // no edits
    }
};

QTEST_GUILESS_MAIN(TestIntervention)
#include "tst_intervention.moc"
