// Every backend checked against the CPU: the same tiny models run on CUDA must give the
// CPU's logits, hook values and generations. Skips itself on machines without CUDA.
#include "hf_fixtures.h"

#include "cs/model.h"

#include <ATen/ATen.h>
#include <QTemporaryDir>
#include <QtTest>

class TestGpuParity : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir { cs::test::testTempRoot() + "/gpu-XXXXXX" };

private Q_SLOTS:
    void initTestCase()
    {
        if (!at::hasCUDA())
            QSKIP("no CUDA in this build or on this machine");
    }

    void logitsMatchCpu_data()
    {
        QTest::addColumn<QString>("family");
        for (const char* f : { "llama", "qwen3", "gemma2", "gpt2" })
            QTest::newRow(f) << QString(f);
    }
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
        const double rel = (a.logits - b.logits.cpu()).abs().max().item<double>() / a.logits.abs().max().item<double>();
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
};

QTEST_GUILESS_MAIN(TestGpuParity)
#include "tst_gpu_parity.moc"
