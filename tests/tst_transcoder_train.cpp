// Transcoder training: the straight-through threshold gradient against finite differences of
// the smoothed loss, recovery of a planted dictionary, the folding of normalization into the
// saved weights, resume, and the activation stream (rows, cache) over a real tiny model.
#include "hf_fixtures.h"

#include "cs/engine.h"
#include "cs/error.h"
#include "cs/organism_build.h"
#include "cs/transcoder_train.h"
#include "transcoder/trainable.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>

using namespace cs::transcoder;

namespace {

TranscoderConfig smallConfig(Architecture architecture, Activation activation, int64_t L, int64_t d, int64_t F)
{
    TranscoderConfig c;
    c.architecture = architecture;
    c.activation = activation;
    c.nLayers = L;
    c.dModel = d;
    c.nFeatures = F;
    c.topK = activation == Activation::TopK ? 3 : 0;
    return c;
}

// The loss of docs/ARCHITECTURE.md §5.2 written out again, with the JumpReLU step replaced by a
// ramp of width eps around the threshold (the function whose derivative the straight-through
// estimator stands for). eps = 0 gives the true step. Float64 throughout.
double referenceLoss(const TrainableTranscoder& t, const at::Tensor& logThreshold, const at::Tensor& x,
    const at::Tensor& y, const LossWeights& w, double eps)
{
    const int64_t L = t.config.nLayers, F = t.config.nFeatures;
    at::Tensor theta = logThreshold.exp(); // [L, F]
    std::vector<at::Tensor> acts;
    at::Tensor preact = at::zeros({}, at::kDouble), sparsity = at::zeros({}, at::kDouble);
    // Decoder norms over every target a feature writes to.
    at::Tensor norms2 = at::zeros({ L, F }, at::kDouble);
    for (int64_t target = 0; target < L; ++target) {
        const int64_t s0 = t.firstSource(target);
        for (int64_t s = s0; s <= target; ++s)
            norms2[s] += t.decoders[target].narrow(0, (s - s0) * F, F).pow(2).sum(1);
    }
    at::Tensor norms = (norms2 + 1e-12).sqrt();
    for (int64_t l = 0; l < L; ++l) {
        at::Tensor z = at::matmul(x[l], t.encoder[l].t()) + t.encoderBias[l]; // [B, F]
        at::Tensor step = eps > 0 ? ((z - theta[l]) / eps + 0.5).clamp(0, 1) : z.gt(theta[l]).to(at::kDouble);
        at::Tensor a = z * step;
        acts.push_back(a);
        sparsity = sparsity + at::tanh(w.sparsityC * norms[l] * a).sum(1).mean();
        preact = preact + (at::relu(theta[l] - z) * norms[l]).sum(1).mean();
    }
    at::Tensor mse = at::zeros({}, at::kDouble);
    for (int64_t target = 0; target < L; ++target) {
        const int64_t s0 = t.firstSource(target);
        at::Tensor yHat = t.decoderBias[target].unsqueeze(0).expand({ x.size(1), -1 }).clone();
        for (int64_t s = s0; s <= target; ++s)
            yHat = yHat + at::matmul(acts[s], t.decoders[target].narrow(0, (s - s0) * F, F));
        mse = mse + (yHat - y[target]).pow(2).sum(1).mean();
    }
    return (mse + w.lambdaSparsity * sparsity + w.lambdaPreact * preact).item<double>();
}

TrainableTranscoder toDouble(TrainableTranscoder t)
{
    t.encoder = t.encoder.to(at::kDouble);
    t.encoderBias = t.encoderBias.to(at::kDouble);
    t.logThreshold = t.logThreshold.to(at::kDouble);
    t.decoderBias = t.decoderBias.to(at::kDouble);
    for (auto& d : t.decoders)
        d = d.to(at::kDouble);
    return t;
}

// Activations from a planted sparse code: x = s E, y = s D with s sparse and non-negative.
class PlantedSource : public ActivationSource {
public:
    PlantedSource(at::Tensor inDirs, at::Tensor outDirs, double density, uint64_t seed)
        : m_in(std::move(inDirs))
        , m_out(std::move(outDirs))
        , m_density(density)
        , m_gen(at::make_generator<at::CPUGeneratorImpl>(seed))
    {
    }
    std::pair<at::Tensor, at::Tensor> next() override
    {
        ++m_position;
        const int64_t n = 4096, K = m_in.size(0);
        at::Tensor on = at::rand({ n, K }, m_gen).lt(m_density).to(at::kFloat);
        at::Tensor mag = at::rand({ n, K }, m_gen) + 0.5; // in [0.5, 1.5)
        at::Tensor s = on * mag;
        return { at::matmul(s, m_in).unsqueeze(0), at::matmul(s, m_out).unsqueeze(0) };
    }
    int64_t position() const override { return m_position; }
    void seek(int64_t chunks) override { m_position = chunks; }

private:
    at::Tensor m_in, m_out;
    double m_density;
    at::Generator m_gen;
    int64_t m_position = 0;
};

at::Tensor unitRows(int64_t n, int64_t d, uint64_t seed)
{
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    at::Tensor m = at::normal(0.0, 1.0, { n, d }, gen);
    return m / m.norm(2, { 1 }, true);
}

cs::model::ModelConfig shapeOf(int64_t L, int64_t d)
{
    cs::model::ModelConfig c;
    c.nLayers = L;
    c.dModel = d;
    return c;
}

} // namespace

class TestTranscoderTrain : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void lossMatchesReference_data()
    {
        QTest::addColumn<int>("architecture");
        QTest::newRow("clt") << int(Architecture::CrossLayer);
        QTest::newRow("plt") << int(Architecture::PerLayer);
    }

    // The training loss equals the written-out loss with the true step.
    void lossMatchesReference()
    {
        QFETCH(int, architecture);
        at::manual_seed(3);
        auto t = toDouble(
            TrainableTranscoder::init(smallConfig(Architecture(architecture), Activation::JumpReLU, 3, 6, 8), 0.5, 3));
        t.encoderBias.normal_(0, 0.3);
        for (auto& d : t.decoders)
            d.normal_(0, 0.3);
        at::Tensor x = at::randn({ 3, 500, 6 }, at::kDouble), y = at::randn({ 3, 500, 6 }, at::kDouble);
        LossWeights w { 0.01, 4.0, 0.003, 0.05 };
        const auto terms = transcoderLoss(t, x, y, w);
        const double reference = referenceLoss(t, t.logThreshold, x, y, w, 0);
        QVERIFY(std::abs(terms.total.item<double>() - reference) <= 1e-9 * std::abs(reference));
    }

    void thresholdGradientMatchesSmoothedLoss_data()
    {
        QTest::addColumn<int>("architecture");
        QTest::newRow("clt") << int(Architecture::CrossLayer);
        QTest::newRow("plt") << int(Architecture::PerLayer);
    }

    // The straight-through estimator's threshold gradient agrees with a central finite
    // difference of the ramp-smoothed loss. They differ by z vs theta inside the window
    // (|z - theta| < eps / 2, O(eps)) and by the loss's curvature in an activation over its
    // jump from 0 to theta, which the estimator linearizes (O(||W_dec||^2)).
    void thresholdGradientMatchesSmoothedLoss()
    {
        QFETCH(int, architecture);
        const int64_t L = 2, d = 6, F = 8, B = 40000;
        auto t = toDouble(
            TrainableTranscoder::init(smallConfig(Architecture(architecture), Activation::JumpReLU, L, d, F), 0.5, 5));
        at::manual_seed(17);
        // Small decoders keep the loss close to linear in each activation over the jump from 0
        // to theta, which is what the estimator assumes (its error grows with ||W_dec||^2).
        for (auto& dec : t.decoders)
            dec.normal_(0, 0.02);
        t.logThreshold = (at::rand({ L, F }, at::kDouble) * 0.6 + 0.3).log(); // thresholds in [0.3, 0.9)
        // Targets of zero and a fixed decoder bias give every feature a residual of one sign,
        // so the window sums below add up instead of cancelling into noise.
        t.decoderBias.normal_(0, 1);
        at::Tensor x = at::randn({ L, B, d }, at::kDouble), y = at::zeros({ L, B, d }, at::kDouble);
        const double eps = 0.01;
        LossWeights w { 0.05, 4.0, 0.001, eps };

        t.logThreshold.requires_grad_(true);
        transcoderLoss(t, x, y, w).total.backward();
        at::Tensor grad = t.logThreshold.grad().clone();
        at::Tensor base = t.logThreshold.detach().clone();

        at::Tensor fd = at::zeros({ L, F }, at::kDouble);
        const double h = 1e-4; // in log-threshold: a shift of ~5e-5, far inside the window
        for (int64_t l = 0; l < L; ++l)
            for (int64_t f = 0; f < F; ++f) {
                at::Tensor plus = base.clone(), minus = base.clone();
                plus[l][f] += h;
                minus[l][f] -= h;
                fd[l][f] = (referenceLoss(t, plus, x, y, w, eps) - referenceLoss(t, minus, x, y, w, eps)) / (2 * h);
            }
        const double rel = (grad - fd).norm().item<double>() / fd.norm().item<double>();
        if (qEnvironmentVariableIsSet("CS_DEBUG_GRAD"))
            std::cerr << at::stack({ grad.flatten(), fd.flatten() }, 1) << "\n";
        qInfo("threshold gradient vs finite difference of the smoothed loss: relative difference %.4f", rel);
        QVERIFY2(fd.norm().item<double>() > 1e-3, "the thresholds must matter to the loss");
        QVERIFY2(rel < 0.01, qPrintable(QString::number(rel)));
        // And per feature, every sign agrees where the gradient is not negligible.
        at::Tensor big = fd.abs().gt(0.1 * fd.abs().max());
        QVERIFY(at::equal(grad.sign().masked_select(big), fd.sign().masked_select(big)));
    }

    // Normalization folded into the saved weights: the set on raw activations gives the
    // trainable transcoder's normalized reconstruction times the output scale.
    void foldedSetMatchesNormalizedTraining_data()
    {
        QTest::addColumn<int>("architecture");
        QTest::addColumn<int>("activation");
        QTest::addColumn<bool>("skip");
        QTest::newRow("clt jumprelu skip") << int(Architecture::CrossLayer) << int(Activation::JumpReLU) << true;
        QTest::newRow("plt relu") << int(Architecture::PerLayer) << int(Activation::ReLU) << false;
        QTest::newRow("clt topk") << int(Architecture::CrossLayer) << int(Activation::TopK) << false;
    }
    void foldedSetMatchesNormalizedTraining()
    {
        QFETCH(int, architecture);
        QFETCH(int, activation);
        QFETCH(bool, skip);
        auto c = smallConfig(Architecture(architecture), Activation(activation), 3, 6, 10);
        c.skip = skip;
        auto t = TrainableTranscoder::init(c, 0.3, 7);
        for (auto& dec : t.decoders)
            dec.normal_(0, 0.3);
        t.decoderBias.normal_();
        if (skip)
            t.skip.normal_(0, 0.2);
        t.inputScale = { 2.0, 0.5, 3.0 };
        t.outputScale = { 0.25, 4.0, 1.5 };
        auto set = t.toSet();
        at::Tensor xRaw = at::randn({ 3, 50, 6 }) * 2;
        std::vector<at::Tensor> acts;
        for (int64_t l = 0; l < 3; ++l)
            acts.push_back(set->encode(l, xRaw[l]));
        at::Tensor xNorm = xRaw / at::tensor(t.inputScale).to(at::kFloat).view({ 3, 1, 1 });
        const auto terms = transcoderLoss(t, xNorm, at::zeros_like(xNorm), LossWeights {});
        for (int64_t l = 0; l < 3; ++l)
            QVERIFY(at::allclose(acts[l], terms.acts[l].detach(), 1e-4, 1e-5));
        // y_hat from the trainable parameters, by the definition, in normalized units.
        for (int64_t target = 0; target < 3; ++target) {
            const int64_t s0 = t.firstSource(target);
            at::Tensor yHat = t.decoderBias[target].clone();
            for (int64_t s = s0; s <= target; ++s)
                yHat = yHat + at::matmul(terms.acts[s].detach(), t.decoders[target].narrow(0, (s - s0) * 10, 10));
            if (skip)
                yHat = yHat + at::matmul(xNorm[target], t.skip[target].t());
            at::Tensor raw = set->decode(target, acts, xRaw[target]);
            QVERIFY(at::allclose(raw, yHat * t.outputScale[target], 1e-4, 1e-4));
        }
    }

    // A synthetic layer whose output is a known sparse combination of known directions: the
    // trained decoders find them (>= 90% of the true directions with cosine >= 0.9).
    void recoversPlantedDictionary()
    {
        const int64_t K = 48, d = 32;
        at::Tensor inDirs = unitRows(K, d, 11), outDirs = unitRows(K, d, 12);
        PlantedSource source(inDirs, outDirs, 3.0 / K, 13);
        QTemporaryDir dir(cs::test::testTempRoot() + "/planted-XXXXXX");
        TrainOptions o;
        o.outDir = dir.filePath("set").toStdString();
        o.architecture = Architecture::PerLayer;
        o.nFeatures = 2 * K;
        o.steps = 2500;
        o.batchTokens = 512;
        o.bufferTokens = 16384;
        o.lr = 3e-3;
        o.lambdaSparsity = 3e-2;
        o.checkpointEvery = 0;
        o.progress = false;
        const auto r = trainTranscoder(source, shapeOf(1, d), o);
        at::Tensor learned = r.set->decoder(0).select(1, 0); // [F, d]
        learned = learned / (learned.norm(2, { 1 }, true) + 1e-12);
        at::Tensor best = std::get<0>(at::matmul(outDirs, learned.t()).max(1)); // [K]
        const double found = best.ge(0.9).to(at::kDouble).mean().item<double>();
        qInfo("planted directions found with cosine >= 0.9: %.1f%% (median best cosine %.3f), train nmse %.3f, L0 %.2f",
            100 * found, best.median().item<double>(), r.nmse[0], r.l0[0]);
        QVERIFY2(found >= 0.9, qPrintable(QString::number(found)));
    }

    // An interrupted run continues from its checkpoint instead of starting over.
    void resumesFromCheckpoint()
    {
        const int64_t K = 16, d = 8;
        QTemporaryDir dir(cs::test::testTempRoot() + "/resume-XXXXXX");
        TrainOptions o;
        o.outDir = dir.filePath("set").toStdString();
        o.nFeatures = 24;
        o.steps = 30;
        o.batchTokens = 128;
        o.bufferTokens = 1024;
        o.checkpointEvery = 10;
        o.progress = false;
        int calls = 0;
        {
            PlantedSource source(unitRows(K, d, 1), unitRows(K, d, 2), 0.2, 3);
            QVERIFY_THROWS_EXCEPTION(
                cs::Cancelled, trainTranscoder(source, shapeOf(1, d), o, [&] { return ++calls > 20; }));
        }
        PlantedSource source(unitRows(K, d, 1), unitRows(K, d, 2), 0.2, 3);
        const auto r = trainTranscoder(source, shapeOf(1, d), o);
        QCOMPARE(r.resumedFrom, int64_t(20));
        QCOMPARE(r.steps, int64_t(30));
        // A finished run leaves no checkpoint behind; an interrupted one of another shape is
        // refused rather than mixed in.
        QVERIFY(!std::filesystem::exists(o.outDir + "/.train/checkpoint.safetensors"));
        calls = 0;
        QVERIFY_THROWS_EXCEPTION(cs::Cancelled, trainTranscoder(source, shapeOf(1, d), o, [&] { return ++calls > 5; }));
        o.nFeatures = 12;
        QVERIFY_THROWS_EXCEPTION(cs::Error, trainTranscoder(source, shapeOf(1, d), o));
        // A source whose chunks do not have the model's shape is refused.
        PlantedSource wrong(unitRows(K, d, 1), unitRows(K, d, 2), 0.2, 3);
        o.outDir = dir.filePath("other").toStdString();
        QVERIFY_THROWS_EXCEPTION(cs::Error, trainTranscoder(wrong, shapeOf(2, d), o));
    }

    // Activations streamed from a real (tiny) model: rows of the corpus, the BOS position left
    // out, equal to the hook values of a plain forward; the disk cache gives them back exactly
    // (to F16) and refuses a cache made for another corpus.
    void streamsModelActivations()
    {
        QTemporaryDir dir(cs::test::testTempRoot() + "/acts-XXXXXX");
        cs::test::TinySpec spec;
        const auto folder = cs::test::writeTinyModel(dir.filePath("model"), spec).toStdString();
        auto model = cs::model::Model::load(folder, { "cpu", true });
        const std::string corpus = dir.filePath("corpus.txt").toStdString();
        {
            std::ofstream out(corpus);
            for (int i = 0; i < 200; ++i)
                out << "line " << i << " of the corpus, with some words\n";
        }
        ModelActivationOptions ao;
        ao.corpus = corpus;
        ao.seqLen = 16;
        ao.rowsPerChunk = 8;
        ao.batchRows = 3;
        ao.cacheDir = dir.filePath("cache").toStdString();
        auto source = modelActivations(model, ao);
        const auto first = source->next();
        QCOMPARE(first.first.sizes().vec(), (std::vector<int64_t> { spec.nLayers, 8 * 15, spec.dModel }));

        // The same rows through a plain forward.
        TokenRows rows(corpus,
            std::shared_ptr<const cs::model::Tokenizer>(
                std::shared_ptr<const cs::model::Tokenizer>(), &model->tokenizer()),
            16);
        at::Tensor ids = rows.next(8);
        QCOMPARE(ids.size(0), int64_t(8));
        QCOMPARE(ids[0][0].item<int64_t>(), *model->tokenizer().bosId());
        std::vector<at::Tensor> mlpIn(2), mlpOut(2);
        cs::model::ForwardOptions fo;
        fo.hook = [&](int64_t layer, cs::model::Hook hook, at::Tensor& v) {
            if (hook == cs::model::Hook::MlpIn)
                mlpIn[layer] = v.narrow(1, 1, 15).flatten(0, 1);
            if (hook == cs::model::Hook::MlpOut)
                mlpOut[layer] = v.narrow(1, 1, 15).flatten(0, 1);
        };
        model->forward(ids, fo);
        QVERIFY(at::allclose(first.first, at::stack(mlpIn), 1e-5, 1e-6));
        QVERIFY(at::allclose(first.second, at::stack(mlpOut), 1e-5, 1e-6));

        // From the cache: F16 of the same values.
        auto again = modelActivations(model, ao);
        const auto cached = again->next();
        QVERIFY(at::allclose(cached.first, first.first, 1e-2, 1e-2));
        QVERIFY(std::filesystem::exists(ao.cacheDir + "/chunk_0.safetensors"));
        // Past the end of the corpus the chunks wrap around.
        for (int i = 0; i < 40; ++i)
            again->next();

        ModelActivationOptions other = ao;
        other.seqLen = 32;
        QVERIFY_THROWS_EXCEPTION(cs::Error, modelActivations(model, other));
    }

    // The CLT shipped with tinyworld meets the bars on held-out text (a 16k-token
    // sample; the README reports the full evaluation), and on the three canonical prompts the
    // replacement model's next token is the original's.
    void shippedTinyworldClt()
    {
        const std::string folder = cs::resolveModelFolder(cs::kDefaultModel);
        auto model = cs::model::Model::load(folder, { "cpu", true });
        auto set = TranscoderSet::load(resolveTranscoderFolder(folder, "clt"));
        QCOMPARE(set->config().architecture, Architecture::CrossLayer);
        set->checkFits(model->config());

        QTemporaryDir dir(cs::test::testTempRoot() + "/shipped-XXXXXX");
        const cs::organism::World world(cs::organism::organismWorld(folder));
        const std::string heldout = dir.filePath("heldout.txt").toStdString();
        cs::organism::writeHeldoutText(world, 3000, heldout);
        EvalOptions eo;
        eo.corpus = heldout;
        eo.maxTokens = 16384;
        const auto r = evaluateTranscoder(*model, *set, eo);
        double meanNmse = 0;
        for (const auto& m : r.layers) {
            qInfo("layer %lld: nmse %.4f, L0 %.1f, dead %.1f%%", static_cast<long long>(m.layer), m.nmse, m.l0,
                100 * m.deadFraction);
            QVERIFY(m.nmse <= 0.15);
            QVERIFY(m.l0 <= 40);
            QVERIFY(m.deadFraction <= 0.10);
            meanNmse += m.nmse / static_cast<double>(r.layers.size());
        }
        qInfo("replacement model: top-1 agreement %.2f%%, KL %.4f", 100 * r.top1Agreement, r.kl);
        QVERIFY(meanNmse <= 0.10);
        QVERIFY(r.top1Agreement >= 0.85);

        for (const auto& item : world.evalItems()) {
            if (!item.canonical)
                continue;
            const auto ids = model->tokenizer().encode(item.prompt);
            at::Tensor input = at::tensor(ids, at::kLong).unsqueeze(0);
            at::NoGradGuard noGrad;
            const int64_t original = model->forward(input).logits[0][-1].argmax().item<int64_t>();
            cs::model::ForwardOptions ro;
            ro.mlpReplace = set->replacement();
            const int64_t replaced = model->forward(input, ro).logits[0][-1].argmax().item<int64_t>();
            qInfo("%s -> original %s, replacement %s", item.prompt.c_str(),
                model->tokenizer().tokenText(original).c_str(), model->tokenizer().tokenText(replaced).c_str());
            QCOMPARE(replaced, original);
        }
    }

    void refusesBadOptions()
    {
        PlantedSource source(unitRows(4, 4, 1), unitRows(4, 4, 2), 0.3, 3);
        TrainOptions o;
        o.progress = false;
        QVERIFY_THROWS_EXCEPTION(cs::Error, trainTranscoder(source, shapeOf(1, 4), o)); // no outDir
        o.outDir = "unused";
        o.activation = Activation::TopK;
        o.topK = 0;
        QVERIFY_THROWS_EXCEPTION(cs::Error, trainTranscoder(source, shapeOf(1, 4), o));
        o.activation = Activation::JumpReLU;
        o.bufferTokens = o.batchTokens;
        QVERIFY_THROWS_EXCEPTION(cs::Error, trainTranscoder(source, shapeOf(1, 4), o));
        o.bufferTokens = 4 * o.batchTokens;
        o.inputHookName = "hook_resid_post";
        QVERIFY_THROWS_EXCEPTION(cs::Error, trainTranscoder(source, shapeOf(1, 4), o));
    }
};

QTEST_GUILESS_MAIN(TestTranscoderTrain)
#include "tst_transcoder_train.moc"
