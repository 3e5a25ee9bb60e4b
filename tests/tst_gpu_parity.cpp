// Every backend checked against the CPU: the same tiny models, transcoders and prompts run on
// CUDA must give the CPU's logits, hook values, generations, attribution rows (both methods),
// interventions, transcoder training and feature-store builds, to float32 rounding. Skips
// itself on machines without CUDA; scripts/device-check runs it on a lent GPU machine.
#include "hf_fixtures.h"

#include "cs/attribution.h"
#include "cs/error.h"
#include "cs/features.h"
#include "cs/intervention.h"
#include "cs/model.h"
#include "cs/replacement.h"
#include "cs/transcoder.h"
#include "cs/transcoder_train.h"
#include "transcoder/trainable.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <fstream>
#include <random>

using namespace cs;

namespace {

// max |a - b| / max |a|, both brought to the CPU.
double relDiff(const at::Tensor& a, const at::Tensor& b)
{
    const at::Tensor x = a.detach().cpu().to(at::kDouble), y = b.detach().cpu().to(at::kDouble);
    return (x - y).abs().max().item<double>() / std::max(x.abs().max().item<double>(), 1e-30);
}

// A random transcoder set fitting `mc`, made on the CPU (one set of numbers for both devices).
std::vector<transcoder::LayerWeights> randomLayers(
    const model::ModelConfig& mc, transcoder::Architecture arch, int64_t nFeatures, uint64_t seed)
{
    at::manual_seed(seed);
    std::vector<transcoder::LayerWeights> layers;
    const double scale = 1.0 / std::sqrt(static_cast<double>(mc.dModel));
    for (int64_t l = 0; l < mc.nLayers; ++l) {
        transcoder::LayerWeights w;
        const int64_t nOut = arch == transcoder::Architecture::CrossLayer ? mc.nLayers - l : 1;
        w.encoder = at::randn({ nFeatures, mc.dModel }) * scale;
        w.encoderBias = at::randn({ nFeatures }) * 0.3 - 0.2;
        w.threshold = at::rand({ nFeatures }) * 0.2;
        w.decoder = at::randn({ nFeatures, nOut, mc.dModel }) * scale;
        w.decoderBias = at::randn({ mc.dModel }) * 0.1;
        layers.push_back(w);
    }
    return layers;
}

transcoder::TranscoderConfig transcoderConfig(const model::ModelConfig& mc, transcoder::Architecture arch, int64_t n)
{
    transcoder::TranscoderConfig c;
    c.architecture = arch;
    c.activation = transcoder::Activation::JumpReLU;
    c.nLayers = mc.nLayers;
    c.dModel = mc.dModel;
    c.nFeatures = n;
    c.scan = "test/gpu";
    return c;
}

// The same model and transcoders on the CPU and on CUDA.
struct Pair {
    std::shared_ptr<const model::Model> cpu, gpu;
    std::shared_ptr<const transcoder::TranscoderSet> tcCpu, tcGpu;
};

Pair makePair(
    const QTemporaryDir& dir, const std::string& name, const std::string& family, transcoder::Architecture arch)
{
    test::TinySpec spec;
    spec.family = family;
    spec.nLayers = 3;
    const std::string folder = test::writeTinyModel(dir.filePath(QString::fromStdString(name)), spec).toStdString();
    Pair p;
    p.cpu = model::Model::load(folder, { "cpu" });
    p.gpu = model::Model::load(folder, { "cuda" });
    const auto layers = randomLayers(p.cpu->config(), arch, 24, 7);
    const auto config = transcoderConfig(p.cpu->config(), arch, 24);
    p.tcCpu = transcoder::TranscoderSet::fromWeights(config, layers, "cpu");
    p.tcGpu = transcoder::TranscoderSet::fromWeights(config, layers, "cuda");
    return p;
}

at::Tensor prompt(int64_t n)
{
    at::manual_seed(3);
    at::Tensor ids = at::randint(0, 256, { n }, at::kLong);
    ids[0] = test::kTinyBosId;
    return ids;
}

std::string writeCorpus(const QTemporaryDir& dir, int lines)
{
    return test::writeWordCorpus(dir.filePath("corpus.txt").toStdString(), lines);
}

void addFamilies()
{
    QTest::addColumn<QString>("family");
    for (const char* f : { "llama", "qwen3", "gemma2", "gpt2" })
        QTest::newRow(f) << QString(f);
}

} // namespace

class TestGpuParity : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir { cs::test::testTempRoot() + "/gpu-XXXXXX" };

private Q_SLOTS:
    void initTestCase()
    {
        if (!at::hasCUDA())
            QSKIP("no CUDA in this build or on this machine");
    }

    void logitsMatchCpu_data() { addFamilies(); }
    void logitsMatchCpu()
    {
        QFETCH(QString, family);
        cs::test::TinySpec spec;
        spec.family = family.toStdString();
        const QString dir = cs::test::writeTinyModel(m_dir.filePath(family), spec);
        auto cpu = cs::model::Model::load(dir.toStdString(), { "cpu" });
        auto gpu = cs::model::Model::load(dir.toStdString(), { "cuda" });
        QVERIFY(gpu->device().is_cuda());
        at::manual_seed(5);
        at::Tensor ids = at::randint(256, { 2, 12 }, at::kLong);
        cs::model::ForwardOptions record;
        record.record = true;
        auto a = cpu->forward(ids, record);
        auto b = gpu->forward(ids, record);
        const double rel = relDiff(a.logits, b.logits);
        QVERIFY2(rel < 1e-4, qPrintable(QString::number(rel)));
        cs::model::ForwardOptions replay;
        replay.frozen = &b.frozen;
        QVERIFY(at::allclose(gpu->forward(ids, replay).logits, b.logits, 0, 1e-5));
        cs::model::GenerateOptions g;
        g.maxNew = 8;
        g.stopAtEos = false;
        std::vector<int64_t> prompt = { 1, 2, 3, 4 };
        QCOMPARE(gpu->generate(prompt, g), cpu->generate(prompt, g));
    }

    // Every hook point of every layer, and the attention patterns.
    void hooksMatchCpu_data() { addFamilies(); }
    void hooksMatchCpu()
    {
        QFETCH(QString, family);
        cs::test::TinySpec spec;
        spec.family = family.toStdString();
        const QString dir = cs::test::writeTinyModel(m_dir.filePath("hooks-" + family), spec);
        auto cpu = model::Model::load(dir.toStdString(), { "cpu" });
        auto gpu = model::Model::load(dir.toStdString(), { "cuda" });
        at::manual_seed(6);
        at::Tensor ids = at::randint(256, { 1, 10 }, at::kLong);
        auto capture = [&](const model::Model& m) {
            std::map<std::pair<int64_t, int>, at::Tensor> seen;
            model::ForwardOptions o;
            o.hook = [&](int64_t layer, model::Hook hook, at::Tensor& value) {
                seen[{ layer, static_cast<int>(hook) }] = value.detach().cpu().clone();
            };
            m.forward(ids, o);
            return seen;
        };
        const auto a = capture(*cpu), b = capture(*gpu);
        QCOMPARE(a.size(), b.size());
        QVERIFY(a.size() >= static_cast<size_t>(spec.nLayers * 7));
        for (const auto& [key, value] : a) {
            const double rel = relDiff(value, b.at(key));
            QVERIFY2(rel < 1e-4,
                qPrintable(QString("layer %1 hook %2: %3")
                               .arg(key.first)
                               .arg(model::hookName(static_cast<model::Hook>(key.second)))
                               .arg(rel)));
        }
    }

    // Attribution on CUDA: the same graph nodes, the same rows from both methods, and exact.
    void attributionMatchesCpu_data()
    {
        QTest::addColumn<QString>("family");
        QTest::addColumn<bool>("clt");
        for (const char* f : { "llama", "gemma2", "gpt2" }) {
            QTest::newRow((std::string(f) + " clt").c_str()) << QString(f) << true;
            QTest::newRow((std::string(f) + " plt").c_str()) << QString(f) << false;
        }
    }
    void attributionMatchesCpu()
    {
        QFETCH(QString, family);
        QFETCH(bool, clt);
        const auto arch = clt ? transcoder::Architecture::CrossLayer : transcoder::Architecture::PerLayer;
        Pair p = makePair(m_dir, "attr-" + family.toStdString() + (clt ? "-clt" : "-plt"), family.toStdString(), arch);
        const at::Tensor ids = prompt(9);
        auto ctxCpu = attribution::buildContext(p.cpu, p.tcCpu, ids);
        auto ctxGpu = attribution::buildContext(p.gpu, p.tcGpu, ids);
        QVERIFY(ctxCpu.active.size() > 10);
        QCOMPARE(ctxGpu.active.size(), ctxCpu.active.size());
        QVERIFY(at::equal(ctxGpu.active.feature.cpu(), ctxCpu.active.feature.cpu()));
        attribution::TraceOptions o;
        o.batchSize = 16;
        const auto rCpu = attribution::trace(ctxCpu, o);
        const auto rGpu = attribution::trace(ctxGpu, o);
        QCOMPARE(rGpu.graph.size(), rCpu.graph.size());
        for (int64_t i = 0; i < rCpu.graph.size(); ++i) {
            QCOMPARE(rGpu.graph.nodes[size_t(i)].kind, rCpu.graph.nodes[size_t(i)].kind);
            QCOMPARE(rGpu.graph.nodes[size_t(i)].feature, rCpu.graph.nodes[size_t(i)].feature);
        }
        QVERIFY2(rGpu.exactness.maxRelResidual < 1e-5, qPrintable(QString::number(rGpu.exactness.maxRelResidual)));
        std::vector<int64_t> targets;
        const auto ranges = rCpu.graph.ranges();
        for (int64_t i = ranges.features.begin; i < ranges.features.end; ++i)
            targets.push_back(i);
        for (int64_t i = ranges.logits.begin; i < ranges.logits.end; ++i)
            targets.push_back(i);
        const at::Tensor reference = attribution::computeRows(ctxCpu, rCpu, targets, attribution::Method::Explicit);
        for (auto method : { attribution::Method::Explicit, attribution::Method::Autograd }) {
            const at::Tensor rows = attribution::computeRows(ctxGpu, rGpu, targets, method);
            QVERIFY(rows.device().is_cuda() || rows.device().is_cpu());
            const double rel = relDiff(reference, rows);
            QVERIFY2(rel < 1e-4, qPrintable(QString("%1: %2").arg(attribution::methodName(method)).arg(rel)));
        }
        // With a feature cap the visit order comes from influence estimates computed on the
        // device: the same features are chosen.
        o.maxFeatureNodes = 8;
        const auto capCpu = attribution::trace(ctxCpu, o);
        const auto capGpu = attribution::trace(ctxGpu, o);
        QCOMPARE(capGpu.graph.size(), capCpu.graph.size());
        for (int64_t i = 0; i < capCpu.graph.ranges().features.end; ++i)
            QCOMPARE(capGpu.graph.nodes[size_t(i)].feature, capCpu.graph.nodes[size_t(i)].feature);
        // The features left out are folded into the error nodes alike, and the exported graph
        // stays exact on the device.
        QVERIFY2(capGpu.exactness.maxRelResidual < 1e-5, qPrintable(QString::number(capGpu.exactness.maxRelResidual)));
        const double capRel = relDiff(capCpu.graph.adjacency.dense(), capGpu.graph.adjacency.dense());
        QVERIFY2(capRel < 1e-4, qPrintable(QString("capped graph: %1").arg(capRel)));
    }

    void interventionsMatchCpu_data()
    {
        QTest::addColumn<QString>("mode");
        for (const char* mode : { "constrained", "free", "patch", "patch-unfrozen", "patch-layers" })
            QTest::newRow(mode) << QString(mode);
    }
    void interventionsMatchCpu()
    {
        QFETCH(QString, mode);
        Pair p = makePair(m_dir, "iv-" + mode.toStdString(), "llama", transcoder::Architecture::CrossLayer);
        const at::Tensor ids = prompt(9);
        auto ctxCpu = attribution::buildContext(p.cpu, p.tcCpu, ids);
        auto ctxGpu = attribution::buildContext(p.gpu, p.tcGpu, ids);
        const auto& active = ctxCpu.active;
        const int64_t best = active.activation.argmax().item<int64_t>();
        const std::vector<intervention::FeatureEdit> edits {
            { active.layer[best].item<int64_t>(), active.position[best].item<int64_t>(),
                active.feature[best].item<int64_t>(), intervention::Op::Scale, -2.0 },
            { 1, 8, 3, intervention::Op::Add, 1.5 },
        };
        intervention::InterventionOptions o;
        o.regime = mode == "constrained" ? intervention::Regime::Constrained
            : mode == "free"             ? intervention::Regime::Free
                                         : intervention::Regime::Patch;
        o.freezeAttention = mode != "patch-unfrozen";
        if (mode == "patch-layers")
            o.constrainedLayers = intervention::LayerRange { 1, p.cpu->config().nLayers };
        o.generate = 4;
        const auto a = intervention::intervene(ctxCpu, edits, o);
        const auto b = intervention::intervene(ctxGpu, edits, o);
        QCOMPARE(b.after.size(), a.after.size());
        for (size_t i = 0; i < a.after.size(); ++i) {
            QCOMPARE(b.after[i].id, a.after[i].id);
            QVERIFY(std::abs(b.after[i].logit - a.after[i].logit) < 1e-3 * (1 + std::abs(a.after[i].logit)));
        }
        QCOMPARE(b.logitDelta.size(), a.logitDelta.size());
        for (const auto& [id, delta] : a.logitDelta)
            QVERIFY(std::abs(b.logitDelta.at(id) - delta) < 1e-3 * (1 + std::abs(delta)));
        QCOMPARE(b.changed.size(), a.changed.size());
    }

    // One training step's loss and gradients, then a short training run, on both devices.
    void transcoderTrainingMatchesCpu()
    {
        const model::ModelConfig shape = [&] {
            model::ModelConfig c;
            c.nLayers = 3;
            c.dModel = 32;
            return c;
        }();
        auto config = transcoderConfig(shape, transcoder::Architecture::CrossLayer, 40);
        const auto cpu = transcoder::TrainableTranscoder::init(config, 0.5, 9);
        auto gpu = cpu;
        for (auto* t : { &gpu.encoder, &gpu.encoderBias, &gpu.logThreshold, &gpu.decoderBias, &gpu.skip })
            if (t->defined())
                *t = t->to(at::kCUDA).detach().requires_grad_(true);
        for (auto& d : gpu.decoders)
            d = d.to(at::kCUDA).detach().requires_grad_(true);
        auto cpuParams = cpu.parameters();
        for (auto& [name, t] : cpuParams)
            t.requires_grad_(true);
        at::manual_seed(4);
        const at::Tensor x = at::randn({ 3, 64, 32 }), y = at::randn({ 3, 64, 32 });
        transcoder::LossWeights w;
        w.lambdaSparsity = 1e-2;
        w.lambdaPreact = 1e-4;
        at::AutoGradMode grad(true);
        const auto la = transcoder::transcoderLoss(cpu, x, y, w);
        const auto lb = transcoder::transcoderLoss(gpu, x.cuda(), y.cuda(), w);
        la.total.backward();
        lb.total.backward();
        QVERIFY(std::abs(la.total.item<double>() - lb.total.item<double>()) < 1e-4 * std::abs(la.total.item<double>()));
        const auto gpuParams = gpu.parameters();
        for (const auto& [name, t] : cpuParams) {
            if (!t.grad().defined())
                continue;
            const double rel = relDiff(t.grad(), gpuParams.at(name).grad());
            QVERIFY2(rel < 1e-3, qPrintable(QString::fromStdString(name) + ": " + QString::number(rel)));
        }

        // trainTranscoder end to end on a tiny model: the same data order and initialization
        // (both come from CPU generators), so the trained sets agree.
        test::TinySpec spec;
        spec.nLayers = 2;
        auto model = model::Model::load(test::writeTinyModel(m_dir.filePath("train"), spec).toStdString(), { "cpu" });
        const std::string corpus = writeCorpus(m_dir, 200);
        std::vector<std::shared_ptr<const transcoder::TranscoderSet>> sets;
        for (const char* device : { "cpu", "cuda" }) {
            transcoder::ModelActivationOptions mo;
            mo.corpus = corpus;
            mo.seqLen = 16;
            mo.rowsPerChunk = 32;
            mo.batchRows = 8;
            auto source = transcoder::modelActivations(model, mo);
            transcoder::TrainOptions to;
            to.outDir = m_dir.filePath(QString("trained-") + device).toStdString();
            to.nFeatures = 32;
            to.steps = 10;
            to.batchTokens = 64;
            to.bufferTokens = 256;
            to.checkpointEvery = 0;
            to.storeDtype = "F32";
            to.device = device;
            to.progress = false;
            sets.push_back(transcoder::trainTranscoder(*source, model->config(), to).set);
        }
        QVERIFY(sets[1]->device().is_cuda());
        for (int64_t l = 0; l < spec.nLayers; ++l) {
            const double rel = relDiff(sets[0]->encoder(l), sets[1]->encoder(l));
            QVERIFY2(rel < 1e-3, qPrintable(QString("layer %1 encoder: %2").arg(l).arg(rel)));
        }
    }

    // A feature store built on CUDA holds what the CPU's holds.
    void featureStoreBuildMatchesCpu()
    {
        test::TinySpec spec;
        spec.nLayers = 2;
        const std::string folder = test::writeTinyModel(m_dir.filePath("store"), spec).toStdString();
        const std::string corpus = writeCorpus(m_dir, 60);
        const model::ModelConfig shape = model::Model::load(folder, { "cpu" })->config();
        const auto config = transcoderConfig(shape, transcoder::Architecture::CrossLayer, 12);
        const auto layers = randomLayers(shape, transcoder::Architecture::CrossLayer, 12, 11);
        std::vector<std::string> dbs;
        for (const char* device : { "cpu", "cuda" }) {
            auto m = model::Model::load(folder, { device, true });
            auto tc = transcoder::TranscoderSet::fromWeights(config, layers, device);
            features::BuildOptions o;
            o.contextLength = 16;
            o.batchContexts = 3;
            o.topK = 4;
            o.contextSample = 100000;
            o.valueSample = 100000;
            o.maxTokens = 0;
            dbs.push_back(m_dir.filePath(QString("store-") + device + ".db").toStdString());
            features::build(m, tc, corpus, dbs.back(), o);
        }
        auto a = features::FeatureStore::open(dbs[0]);
        auto b = features::FeatureStore::open(dbs[1]);
        QCOMPARE(b->info().tokens, a->info().tokens);
        int compared = 0;
        for (int64_t l = 0; l < 2; ++l)
            for (int64_t f = 0; f < 12; ++f) {
                if (!a->has(l, f))
                    continue;
                const auto x = a->card(l, f), y = b->card(l, f);
                QCOMPARE(y.activeTokens, x.activeTokens);
                QVERIFY(std::abs(y.actMax - x.actMax) <= 1e-4f * (1 + x.actMax));
                QCOMPARE(y.top.size(), x.top.size());
                for (size_t i = 0; i < x.top.size(); ++i)
                    QCOMPARE(y.top[i].context, x.top[i].context);
                ++compared;
            }
        QVERIFY(compared > 0);
    }

    // Too large for the device: a clear error before anything is allocated, and LibTorch's
    // out-of-memory error said as such.
    void tooLargeIsAClearError()
    {
        const c10::Device device(c10::DeviceType::CUDA, 0);
        const auto [freeBytes, totalBytes] = model::cudaMemoryInfo(device);
        QVERIFY(freeBytes > 0 && totalBytes >= freeBytes);
        try {
            model::checkFitsOnDevice(device, totalBytes, "a test model");
            QFAIL("no error");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains("a test model needs"), e.what());
            QVERIFY2(QString(e.what()).contains("--device cpu"), e.what());
        }
        try {
            at::empty({ int64_t(1) << 44 }, at::TensorOptions().device(device)); // 16 TiB of bytes... as float: 64 TiB
            QFAIL("no error");
        } catch (const c10::OutOfMemoryError& e) {
            QVERIFY2(QString::fromStdString(model::errorText(e)).startsWith("out of memory"), e.what());
        }
        // The device is still usable afterwards.
        QCOMPARE(at::ones({ 4 }, at::TensorOptions().device(device)).sum().item<float>(), 4.0f);
        try {
            model::resolveDevice("cuda:" + std::to_string(at::detail::getCUDAHooks().deviceCount()));
            QFAIL("no error");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains("does not exist"), e.what());
        }
    }
};

QTEST_GUILESS_MAIN(TestGpuParity)
#include "tst_gpu_parity.moc"
