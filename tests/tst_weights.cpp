// Global weights (cs/weights.h) against brute force: every virtual weight of random CLTs and
// PLTs (both input hooks, llama and gpt2 norms) as explicit sums of dot products over the
// layers between source and target; the partner lists as the sorted brute-force rows and
// columns; the feature -> logit and embedding -> feature forms token by token; bad requests.
// Operand sweeps (cs/sweep.h): a grid equal to the prompts run one by one through the
// replacement context; the finder recovers planted structures; bad templates refused.
#include "hf_fixtures.h"

#include "cs/attribution.h"
#include "cs/error.h"
#include "cs/features.h"
#include "cs/model.h"
#include "cs/sweep.h"
#include "cs/transcoder.h"
#include "cs/weights.h"

#include <ATen/ATen.h>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <cmath>

using cs::transcoder::Activation;
using cs::transcoder::Architecture;

class TestWeights : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir { cs::test::testTempRoot() + "/weights-XXXXXX" };

    struct Setup {
        std::shared_ptr<const cs::model::Model> model;
        std::shared_ptr<const cs::transcoder::TranscoderSet> set;
    };

    Setup setupFromRow()
    {
        QFETCH(QString, family);
        QFETCH(QString, kind);
        QFETCH(QString, input);
        cs::test::TinySpec spec;
        spec.family = family.toStdString();
        spec.nLayers = 4;
        const QString folder = cs::test::writeTinyModel(m_dir.filePath(family), spec);
        Setup s;
        s.model = cs::model::Model::load(folder.toStdString(), { "cpu", true });
        const auto& mc = s.model->config();
        s.set = cs::test::randomTranscoderSet(kind == "clt" ? Architecture::CrossLayer : Architecture::PerLayer,
            Activation::JumpReLU, input == "resid_mid" ? cs::model::Hook::ResidMid : cs::model::Hook::MlpIn, mc.nLayers,
            mc.dModel, 24, 11);
        return s;
    }

    // V[s, t] by brute force: sum over l_s <= l < l_t of <W_dec^{s -> l}, W_enc^t (.) g>.
    static double bruteForce(const Setup& s, int64_t ls, int64_t fs, int64_t lt, int64_t ft)
    {
        const at::Tensor g = cs::weights::inputFactor(*s.model, *s.set, lt);
        at::Tensor read = s.set->encoder(lt)[ft].to(at::kDouble);
        if (g.defined())
            read = read * g.to(at::kDouble);
        double v = 0;
        for (int64_t l = ls; l < lt && l < ls + s.set->nTargets(ls); ++l)
            v += at::dot(s.set->decoderTo(ls, l)[fs].to(at::kDouble), read).item<double>();
        return v;
    }

private Q_SLOTS:
    void rows_data()
    {
        QTest::addColumn<QString>("family");
        QTest::addColumn<QString>("kind");
        QTest::addColumn<QString>("input");
        QTest::newRow("llama clt mlp_in") << "llama"
                                          << "clt"
                                          << "mlp_in";
        QTest::newRow("llama plt resid_mid") << "llama"
                                             << "plt"
                                             << "resid_mid";
        QTest::newRow("gpt2 clt mlp_in") << "gpt2"
                                         << "clt"
                                         << "mlp_in";
    }

    void virtualWeightsAreSumsOfDotProducts_data() { rows_data(); }
    void virtualWeightsAreSumsOfDotProducts()
    {
        const Setup s = setupFromRow();
        QFETCH(QString, input);
        QCOMPARE(cs::weights::inputFactor(*s.model, *s.set, 1).defined(), input == "mlp_in");
        const int64_t L = s.set->nLayers(), F = s.set->nFeatures();
        for (int64_t ls = 0; ls < L; ++ls)
            for (int64_t lt = 0; lt < L; ++lt) {
                const at::Tensor V = cs::weights::virtualWeights(*s.model, *s.set, ls, lt).to(at::kDouble);
                QCOMPARE(V.size(0), F);
                QCOMPARE(V.size(1), F);
                if (lt <= ls) {
                    QCOMPARE(V.abs().max().item<double>(), 0.0); // no residual-direct path
                    continue;
                }
                for (int64_t fs = 0; fs < F; fs += 5)
                    for (int64_t ft = 0; ft < F; ft += 7) {
                        const double expected = bruteForce(s, ls, fs, lt, ft);
                        QVERIFY2(std::abs(V[fs][ft].item<double>() - expected) <= 1e-5 * (1 + std::abs(expected)),
                            qPrintable(QStringLiteral("V[%1:%2, %3:%4] = %5, brute force %6")
                                           .arg(ls)
                                           .arg(fs)
                                           .arg(lt)
                                           .arg(ft)
                                           .arg(V[fs][ft].item<double>())
                                           .arg(expected)));
                    }
            }
    }

    // Partners: the brute-force row (down) or column (up) over every other layer, by |V|.
    void partnersAreTheLargestWeights_data() { rows_data(); }
    void partnersAreTheLargestWeights()
    {
        const Setup s = setupFromRow();
        const int64_t L = s.set->nLayers(), F = s.set->nFeatures();
        for (const auto& [layer, feature] : { std::pair<int64_t, int64_t> { 0, 3 }, { 1, 10 }, { 3, 5 } }) {
            for (auto direction : { cs::weights::Direction::Down, cs::weights::Direction::Up }) {
                std::vector<cs::weights::Partner> expected;
                for (int64_t other = 0; other < L; ++other)
                    for (int64_t f = 0; f < F; ++f) {
                        const bool down = direction == cs::weights::Direction::Down;
                        if (down ? other <= layer : other >= layer)
                            continue;
                        const double v
                            = down ? bruteForce(s, layer, feature, other, f) : bruteForce(s, other, f, layer, feature);
                        if (v != 0)
                            expected.push_back({ other, f, v });
                    }
                std::sort(expected.begin(), expected.end(),
                    [](const auto& a, const auto& b) { return std::abs(a.virtualWeight) > std::abs(b.virtualWeight); });
                const auto got = cs::weights::virtualPartners(*s.model, *s.set, layer, feature, direction, 15);
                QCOMPARE(got.size(), std::min<size_t>(15, expected.size()));
                for (size_t i = 0; i < got.size(); ++i) {
                    QVERIFY(std::abs(got[i].virtualWeight - expected[i].virtualWeight)
                        <= 1e-5 * (1 + std::abs(expected[i].virtualWeight)));
                    if (i > 0)
                        QVERIFY(std::abs(got[i].virtualWeight) <= std::abs(got[i - 1].virtualWeight));
                }
            }
        }
        // The top layer has nothing downstream, layer 0 nothing upstream.
        QVERIFY(cs::weights::virtualPartners(*s.model, *s.set, L - 1, 0, cs::weights::Direction::Down, 5).empty());
        QVERIFY(cs::weights::virtualPartners(*s.model, *s.set, 0, 0, cs::weights::Direction::Up, 5).empty());
    }

    // The token forms, one token and one feature at a time.
    void tokenForms_data() { rows_data(); }
    void tokenForms()
    {
        const Setup s = setupFromRow();
        QFETCH(QString, input);
        const auto& mc = s.model->config();
        const int64_t layer = 1, feature = 4;
        const at::Tensor logits = cs::weights::featureToLogits(*s.model, *s.set, layer);
        const at::Tensor inputs = cs::weights::embeddingToFeatures(*s.model, *s.set, layer);
        QCOMPARE(logits.size(1), mc.vocabSize);
        QCOMPARE(inputs.size(1), mc.vocabSize);
        at::Tensor written = at::zeros({ mc.dModel }, at::kDouble);
        for (int64_t l = layer; l < layer + s.set->nTargets(layer); ++l)
            written += s.set->decoderTo(layer, l)[feature].to(at::kDouble);
        const at::Tensor finalW = s.model->weight("final_norm.weight").to(at::kDouble);
        for (int64_t token : { int64_t(0), int64_t(7), mc.vocabSize - 1 }) {
            const at::Tensor u = s.model->weight("unembed.weight")[token].to(at::kDouble);
            const double out = at::dot(written * finalW, u).item<double>();
            QVERIFY(std::abs(logits[feature][token].item<double>() - out) <= 1e-4 * (1 + std::abs(out)));
            at::Tensor x = s.model->weight("embed.weight")[token].to(at::kDouble) * mc.embedScale;
            if (input == "mlp_in") {
                const std::string prefix = "layers." + std::to_string(layer) + ".mlp_norm.";
                at::Tensor c = mc.normKind == cs::model::NormKind::Layer ? x - x.mean() : x;
                x = c / std::sqrt(c.pow(2).mean().item<double>() + mc.normEps)
                    * s.model->weight(prefix + "weight").to(at::kDouble);
                if (s.model->hasWeight(prefix + "bias"))
                    x = x + s.model->weight(prefix + "bias").to(at::kDouble);
            }
            const double in = at::dot(s.set->encoder(layer)[feature].to(at::kDouble), x).item<double>();
            QVERIFY(std::abs(inputs[feature][token].item<double>() - in) <= 1e-4 * (1 + std::abs(in)));
        }
    }

    // A small grid in batches of 4 (prompts of several token lengths), against each prompt's own
    // replacement context (buildContext records the activations by another path).
    void sweepGridEqualsPromptsOneByOne()
    {
        cs::test::TinySpec spec;
        const QString folder = cs::test::writeTinyModel(m_dir.filePath("sweep"), spec);
        const auto model = cs::model::Model::load(folder.toStdString(), { "cpu", true });
        const auto& mc = model->config();
        const auto set = cs::test::randomTranscoderSet(
            Architecture::CrossLayer, Activation::ReLU, cs::model::Hook::MlpIn, mc.nLayers, mc.dModel, 16, 5);
        cs::sweep::SweepOptions o;
        o.templateText = "calc: {a}+{b}=";
        o.a = { 0, 7, 12, 99 };
        o.b = { 3, 45 };
        o.batchSize = 4;
        int calls = 0;
        o.progress = [&](double) {
            ++calls;
            return true;
        };
        const auto r = cs::sweep::sweep(*model, *set, o);
        QCOMPARE(r.prompts, int64_t(8));
        QVERIFY(calls >= 2);
        for (size_t i = 0; i < o.a.size(); ++i)
            for (size_t j = 0; j < o.b.size(); ++j) {
                const std::string prompt = cs::sweep::fillTemplate(o.templateText, o.a[i], o.b[j]);
                QCOMPARE(prompt, "calc: " + std::to_string(o.a[i]) + "+" + std::to_string(o.b[j]) + "=");
                const auto ids = model->tokenizer().encode(prompt);
                const auto ctx = cs::attribution::buildContext(model, set, ids);
                for (int64_t l = 0; l < set->nLayers(); ++l) {
                    const at::Tensor expected = ctx.activations[size_t(l)][ctx.nPos() - 1];
                    const at::Tensor got = r.activations[size_t(l)][int64_t(i)][int64_t(j)];
                    QVERIFY2(
                        (got - expected).abs().max().item<double>() < 1e-4, qPrintable(QString::fromStdString(prompt)));
                }
            }
        // {sum}, read before the sum's last digit (prompts of 1, 2 and 3 answer digits).
        cs::sweep::SweepOptions withSum = o;
        withSum.templateText = "calc: {a}+{b}={sum}";
        withSum.position = -2;
        const auto s = cs::sweep::sweep(*model, *set, withSum);
        for (size_t i = 0; i < o.a.size(); ++i)
            for (size_t j = 0; j < o.b.size(); ++j) {
                const std::string prompt = cs::sweep::fillTemplate(withSum.templateText, o.a[i], o.b[j]);
                QCOMPARE(prompt,
                    "calc: " + std::to_string(o.a[i]) + "+" + std::to_string(o.b[j]) + "="
                        + std::to_string(o.a[i] + o.b[j]));
                const auto ctx = cs::attribution::buildContext(model, set, model->tokenizer().encode(prompt));
                for (int64_t l = 0; l < set->nLayers(); ++l) {
                    const at::Tensor expected = ctx.activations[size_t(l)][ctx.nPos() - 2];
                    const at::Tensor got = s.activations[size_t(l)][int64_t(i)][int64_t(j)];
                    QVERIFY((got - expected).abs().max().item<double>() < 1e-4);
                }
            }
        // Cancelling stops it.
        o.progress = [](double) { return false; };
        QVERIFY_THROWS_EXCEPTION(cs::Cancelled, cs::sweep::sweep(*model, *set, o));
        // Bad requests.
        o.progress = nullptr;
        for (const std::string bad : { "calc: {a}+=", "calc: +{b}=" }) {
            cs::sweep::SweepOptions b = o;
            b.templateText = bad;
            QVERIFY_THROWS_EXCEPTION(cs::Error, cs::sweep::sweep(*model, *set, b));
        }
        cs::sweep::SweepOptions far = o;
        far.position = 1000;
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::sweep::sweep(*model, *set, far));
        cs::sweep::SweepOptions empty = o;
        empty.b.clear();
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::sweep::sweep(*model, *set, empty));
    }

    // Planted maps over a, b in 0..99: "sum ends in 5", "a in the 30s", b's ones digit; the
    // finder names each, and ranks a planted feature above noise.
    void finderRecoversPlantedStructures()
    {
        std::vector<int64_t> values(100);
        for (int64_t v = 0; v < 100; ++v)
            values[size_t(v)] = v;
        at::manual_seed(1);
        const at::Tensor noise = at::rand({ 100, 100 }) * 0.05;
        at::Tensor sumEnds5 = at::zeros({ 100, 100 }), aThirties = at::zeros({ 100, 100 }),
                   bOnes = at::zeros({ 100, 100 });
        for (int64_t a = 0; a < 100; ++a)
            for (int64_t b = 0; b < 100; ++b) {
                sumEnds5[a][b] = (a + b) % 10 == 5 ? 1.0 : 0.0;
                aThirties[a][b] = a / 10 == 3 ? 2.0 : 0.0;
                bOnes[a][b] = double(b % 10) / 9.0;
            }
        const auto check = [&](const at::Tensor& grid, cs::sweep::Structure structure, int64_t group) {
            const auto f = cs::sweep::explain(grid + noise, values, values);
            QCOMPARE(cs::sweep::structureName(f.structure), cs::sweep::structureName(structure));
            QCOMPARE(f.group, group);
            QVERIFY(f.explained > 0.9);
        };
        check(sumEnds5, cs::sweep::Structure::SumOnes, 5);
        check(aThirties, cs::sweep::Structure::ATens, 3);
        check(bOnes, cs::sweep::Structure::BOnes, 9);
        QCOMPARE(cs::sweep::explain(at::zeros({ 100, 100 }), values, values).explained, 0.0);

        cs::sweep::SweepResult r;
        r.a = r.b = values;
        at::Tensor layer = at::rand({ 100, 100, 3 }) * 0.1; // features 0 and 2: noise
        layer.select(2, 1).copy_(sumEnds5);
        r.activations = { layer };
        const auto ranked = cs::sweep::rank(r, 2);
        QCOMPARE(ranked.size(), size_t(2));
        QCOMPARE(ranked[0].feature, int64_t(1));
        QCOMPARE(ranked[0].group, int64_t(5));
    }

    void badRequestsAreRefused()
    {
        cs::test::TinySpec spec;
        const QString folder = cs::test::writeTinyModel(m_dir.filePath("bad"), spec);
        const auto model = cs::model::Model::load(folder.toStdString(), { "cpu", true });
        const auto set = cs::test::randomTranscoderSet(Architecture::CrossLayer, Activation::ReLU,
            cs::model::Hook::MlpIn, model->config().nLayers, model->config().dModel, 8, 3);
        const auto down = cs::weights::Direction::Down;
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::weights::virtualWeights(*model, *set, -1, 1));
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::weights::virtualWeights(*model, *set, 0, set->nLayers()));
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::weights::virtualPartners(*model, *set, 0, 8, down, 5));
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::weights::virtualPartners(*model, *set, 0, 0, down, 0));
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::weights::directionFromName("sideways"));
        QVERIFY(cs::weights::directionFromName("up") == cs::weights::Direction::Up);

        // A feature store of another shape than the set's (issue 23): its statistics would be
        // another set's features'. Refused, naming the store and both shapes.
        for (const auto& [layers, features] : { std::pair { set->nLayers() + 1, set->nFeatures() },
                 std::pair { set->nLayers(), set->nFeatures() * 2 } }) {
            const std::string db = m_dir.filePath("other-shape.db").toStdString();
            QFile::remove(QString::fromStdString(db));
            cs::features::StoreInfo info;
            info.model = "tiny";
            info.scan = "clt";
            info.nLayers = layers;
            info.nFeatures = features;
            info.contextLength = 8;
            cs::features::FeatureStore::create(db, info);
            const auto store = cs::features::FeatureStore::open(db);
            try {
                cs::weights::partners(*model, *set, store.get(), 0, 0, down, cs::weights::Kind::Virtual, 5);
                QFAIL("a store of another shape was used");
            } catch (const cs::Error& e) {
                const std::string expected = "the feature store " + db + " is of " + std::to_string(layers)
                    + " layers x " + std::to_string(features) + " features, not of this transcoder set's "
                    + std::to_string(set->nLayers()) + " x " + std::to_string(set->nFeatures());
                QVERIFY2(std::string(e.what()) == expected, e.what());
            }
        }
    }
};

QTEST_MAIN(TestWeights)
#include "tst_weights.moc"
