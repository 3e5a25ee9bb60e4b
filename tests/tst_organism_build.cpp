// The tinyworld pipeline: a micro build (corpus -> tokenizer -> model -> Hugging Face folder)
// whose loss must fall, training that resumes to exactly the uninterrupted result, and the
// shipped model answering the world's questions (a quick subset of `organism eval`).
#include "hf_fixtures.h"

#include "cs/engine.h"
#include "cs/lm_train.h"
#include "cs/organism_build.h"
#include "cs/safetensors.h"

#include <ATen/ATen.h>
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <filesystem>

namespace {

cs::organism::BuildOptions microOptions(const QString& out)
{
    cs::organism::BuildOptions o;
    o.outDir = out.toStdString();
    o.nLayers = 2;
    o.dModel = 64;
    o.nHeads = 2;
    o.nKvHeads = 1;
    o.dMlp = 128;
    o.vocabSize = 400;
    o.steps = 200;
    o.batchSize = 16;
    o.seqLen = 32;
    o.warmupSteps = 20;
    o.tokenizerLines = 20000;
    o.progress = false;
    return o;
}

} // namespace

class TestOrganismBuild : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir { cs::test::testTempRoot() + "/organism-XXXXXX" };

private Q_SLOTS:
    void microBuildLearns()
    {
        const auto o = microOptions(m_dir.filePath("micro"));
        const auto r = cs::organism::buildOrganism(o);
        // Uniform guessing over 400 tokens costs ln(400) = 5.99 nats; the corpus is highly
        // regular, so 200 small steps must get well below half of that.
        QVERIFY2(r.firstLoss > 5.0, qPrintable(QString::number(r.firstLoss)));
        QVERIFY2(r.finalLoss < 2.6, qPrintable(QString::number(r.finalLoss)));
        QVERIFY(!std::filesystem::exists(o.outDir + "/.build")); // the work folder is cleaned up

        // The folder is an ordinary Hugging Face llama folder.
        auto model = cs::model::Model::load(o.outDir, { "cpu", true });
        QCOMPARE(model->config().family, std::string("llama"));
        QCOMPARE(model->config().nLayers, int64_t(2));
        QCOMPARE(model->config().nKvHeads, int64_t(1));
        QCOMPARE(model->config().vocabSize, int64_t(400));
        QCOMPARE(model->storedDType(), std::string("F16"));
        QCOMPARE(cs::organism::organismWorld(o.outDir).seed, uint64_t(1));
        QCOMPARE(cs::organism::organismWorld(o.outDir).version, cs::organism::WorldOptions().version);
        const std::string text = "Fact: Michael Jordan plays the sport of basketball";
        QCOMPARE(model->tokenizer().decode(model->tokenizer().encode(text), true), text);
        QVERIFY(model->tokenizer().addsBos());
    }

    void trainingBatchesAreDeterministic()
    {
        const cs::organism::World world;
        auto tok = cs::model::Tokenizer::fromFolder(m_dir.filePath("micro").toStdString());
        at::Tensor a = cs::organism::trainingBatch(world, tok, 7, 4, 32);
        at::Tensor b = cs::organism::trainingBatch(world, tok, 7, 4, 32);
        at::Tensor c = cs::organism::trainingBatch(world, tok, 8, 4, 32);
        QVERIFY(at::equal(a, b));
        QVERIFY(!at::equal(a, c));
        QCOMPARE(a.sizes().vec(), (std::vector<int64_t> { 4, 33 }));
        QVERIFY((a.select(1, 0) == *tok.bosId()).all().item<bool>()); // every row starts with BOS
    }

    void resumedTrainingEqualsUninterrupted()
    {
        cs::model::ModelConfig c;
        c.family = c.modelType = "llama";
        c.nLayers = 2;
        c.dModel = 32;
        c.nHeads = 2;
        c.nKvHeads = 2;
        c.dHead = 16;
        c.dMlp = 64;
        c.vocabSize = 50;
        c.maxPositions = 64;
        c.slidingLayers.assign(2, false);
        cs::train::LmTrainOptions o;
        o.config = c;
        o.steps = 24;
        o.batchSize = 4;
        o.seqLen = 16;
        o.warmupSteps = 4;
        o.progress = false;
        o.checkpointEvery = 0;
        auto batches = [](int64_t step) {
            auto gen = at::make_generator<at::CPUGeneratorImpl>(1000 + step);
            return at::randint(50, { 4, 17 }, gen, at::kLong);
        };
        const auto straight = cs::train::trainLanguageModel(o, batches, nullptr);

        o.checkpointPath = m_dir.filePath("resume.safetensors").toStdString();
        auto stopAt10 = o;
        stopAt10.onStep = [](int64_t step, double) { return step < 9; };
        const auto first = cs::train::trainLanguageModel(stopAt10, batches, nullptr);
        QVERIFY(first.stopped);
        QCOMPARE(first.stepsDone, int64_t(10));
        const auto second = cs::train::trainLanguageModel(o, batches, nullptr);
        QCOMPARE(second.resumedFrom, int64_t(10));
        QCOMPARE(second.stepsDone, int64_t(24));
        for (const auto& [name, w] : straight.model->weights())
            QVERIFY2(at::allclose(w, second.model->weight(name), 1e-6, 1e-7), name.c_str());
        // The loss of the resumed steps is the loss of the same steps run straight through.
        for (size_t i = 0; i < second.losses.size(); ++i)
            QVERIFY(std::abs(second.losses[i] - straight.losses[10 + i]) < 1e-5);
    }

    void shippedModelAnswers()
    {
        std::string folder;
        try {
            folder = cs::resolveModelFolder(cs::kDefaultModel);
        } catch (const std::exception& e) {
            QFAIL(e.what()); // tinyworld is shipped in resources/models/
        }
        auto model = cs::model::Model::load(folder, { "cpu", true });
        const cs::organism::World world(cs::organism::organismWorld(folder));
        cs::organism::EvalOptions options;
        options.maxPerSplit = 25;
        const auto r = cs::organism::evaluateOrganism(*model, world, options);
        QCOMPARE(r.canonical.size(), size_t(3));
        for (const auto& a : r.canonical)
            QVERIFY2(a.got == a.item.answer, qPrintable(QString::fromStdString(a.item.prompt + " -> " + a.got)));
        // The bars (two-hop trained 90%, addition and opposites 95%, the rest 98%) on a quick
        // subset; the full table is in the README.
        const std::pair<const char*, const char*> bars[] = { { "sports", "train" }, { "sports", "heldout_phrasing" },
            { "facts", "train" }, { "facts", "heldout_phrasing" }, { "two_hop", "train" }, { "addition", "heldout" },
            { "agreement", "heldout" }, { "opposites", "train" }, { "opposites", "heldout_phrasing" } };
        for (const auto& [task, split] : bars) {
            const double acc = r.accuracy.at(task).at(split);
            const std::string t = task;
            const double minimum = t == "two_hop" ? 0.90 : (t == "addition" || t == "opposites") ? 0.95 : 0.98;
            QVERIFY2(acc >= minimum, qPrintable(QString("%1/%2: %3").arg(task, split).arg(acc)));
        }
    }
};

QTEST_GUILESS_MAIN(TestOrganismBuild)
#include "tst_organism_build.moc"
