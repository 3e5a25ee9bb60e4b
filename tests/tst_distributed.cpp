// Jobs over several processes (issue 22): c10d collectives between two ranks on the loopback
// interface (Gloo), data-parallel transcoder training against one process reading the same
// shards, a rank that dies mid-job, and ranks started apart.
#include "cli_job.h"
#include "cs/distributed.h"
#include "cs/engine.h"
#include "cs/error.h"
#include "cs/transcoder.h"

#include <ATen/ATen.h>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <nlohmann/json.hpp>

#include <future>
#include <thread>

using namespace cs;
using namespace cs::testing;
using Json = nlohmann::json;

namespace {

double maxRelativeDifference(const transcoder::TranscoderSet& a, const transcoder::TranscoderSet& b)
{
    double worst = 0;
    auto compare = [&](const at::Tensor& x, const at::Tensor& y) {
        if (!x.defined())
            return;
        const double scale = std::max(x.abs().max().item<double>(), 1e-30);
        worst = std::max(worst, (x - y).abs().max().item<double>() / scale);
    };
    for (int64_t l = 0; l < a.nLayers(); ++l) {
        compare(a.encoder(l), b.encoder(l));
        compare(a.encoderBias(l), b.encoderBias(l));
        compare(a.threshold(l), b.threshold(l));
        compare(a.decoderRows(l, at::arange(a.nFeatures())), b.decoderRows(l, at::arange(b.nFeatures())));
    }
    return worst;
}

} // namespace

class TestDistributed : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir;
    QString m_model, m_corpus;

    QStringList trainArgs(const QString& out, int steps, int checkpointEvery) const
    {
        return { "--device", "cpu", "transcoder", "train", m_model, "--corpus", m_corpus, "--kind", "clt", "--features",
            "32", "--steps", QString::number(steps), "--batch-tokens", "128", "--buffer-tokens", "1024", "--seq-len",
            "16", "--checkpoint-every", QString::number(checkpointEvery), "--dtype", "F32", "--out", out, "--json" };
    }

    static QStringList rankArgs(QStringList args, int rank, int port)
    {
        args << "--distributed"
             << "--dist-timeout"
             << "60"
             << "--rank" << QString::number(rank) << "--world-size"
             << "2"
             << "--master-port" << QString::number(port);
        return args;
    }

private Q_SLOTS:
    void initTestCase()
    {
        model::initThreads();
        QVERIFY(m_dir.isValid());
        m_model = QString::fromStdString(resolveModelFolder("tinyworld"));
        m_corpus = m_dir.filePath("corpus.txt");
        QFile f(m_corpus);
        QVERIFY(f.open(QIODevice::WriteOnly));
        // Enough rows for several chunks of 256 sequences, so the two shards read different text.
        for (int i = 0; i < 3000; ++i)
            f.write(QStringLiteral("the %1 cat sat on mat %2\n").arg(i).arg(i % 7).toUtf8());
    }

    // Two ranks in one process (two threads, two Gloo groups over the loopback): sums, maxima,
    // broadcasts, and the check that all ranks were started alike.
    void collectives()
    {
        const int port = freePort();
        auto rankBody = [port](int64_t rank, const std::string& options) {
            distributed::Options o;
            o.rank = rank;
            o.worldSize = 2;
            o.masterPort = port;
            o.timeout = std::chrono::seconds(30);
            auto g = distributed::Group::join(o, c10::Device(c10::kCPU));
            std::vector<at::Tensor> t { at::full({ 3 }, static_cast<float>(rank + 1)),
                at::full({ 2, 2 }, 10.0f * rank) };
            g->allReduce(t);
            std::vector<at::Tensor> m { at::tensor({ rank, -rank }, at::kLong) };
            g->allReduce(m, distributed::ReduceOp::Max);
            std::vector<at::Tensor> b { at::full({ 4 }, static_cast<double>(rank == 1 ? 7 : 0), at::kDouble) };
            g->broadcast(b, 1);
            // Rank r's [r, r + 1] and a 2 x 1 of 10 r: gathered in rank order, in their shapes.
            const std::vector<at::Tensor> mine { at::tensor({ static_cast<float>(rank), static_cast<float>(rank + 1) }),
                at::full({ 2, 1 }, 10.0f * rank) };
            const auto everyone = g->allGather(mine);
            const auto atRoot = g->gather(mine, 1);
            double gathered = 0;
            for (size_t r = 0; r < everyone.size(); ++r)
                gathered += everyone[r][0][1].item<double>() * (r + 1) + everyone[r][1].sum().item<double>()
                    + static_cast<double>(everyone[r][1].size(0) * 100);
            const double rooted
                = atRoot.empty() ? -1.0 : atRoot[1][1].sum().item<double>() + atRoot[0][0][1].item<double>();
            g->barrier();
            std::string refusal;
            try {
                g->checkSame("options", options);
            } catch (const Error& e) {
                refusal = e.what();
            }
            return std::make_tuple(t[0].sum().item<double>(), t[1].sum().item<double>(), m[0][0].item<int64_t>(),
                m[0][1].item<int64_t>(), b[0].sum().item<double>(), refusal, gathered, rooted);
        };
        auto first = std::async(std::launch::async, rankBody, 0, "steps 10\nlr 0.1\n");
        const auto r1 = rankBody(1, "steps 10\nlr 0.2\n");
        const auto r0 = first.get();
        for (const auto& r : { r0, r1 }) {
            QCOMPARE(std::get<0>(r), 9.0); // (1 + 2) x 3
            QCOMPARE(std::get<1>(r), 40.0); // (0 + 10) x 4
            QCOMPARE(std::get<2>(r), int64_t(1));
            QCOMPARE(std::get<3>(r), int64_t(0));
            QCOMPARE(std::get<4>(r), 28.0); // rank 1's 7 x 4
            // Every rank says the same: who differs, and how.
            QCOMPARE(QString::fromStdString(std::get<5>(r)),
                QStringLiteral("rank 1 was started with other options than rank 0: \"lr 0.2\" where rank 0 has "
                               "\"lr 0.1\"; start every rank with the same command"));
            // (1 x 1 + 0 + 200) + (2 x 2 + 20 + 200)
            QCOMPARE(std::get<6>(r), 425.0);
        }
        QCOMPARE(std::get<7>(r0), -1.0); // gathered at rank 1 alone
        QCOMPARE(std::get<7>(r1), 21.0); // rank 1's 2 x 10, rank 0's 1
    }

    // Data-parallel training over two ranks (launched with torchrun's environment variables)
    // equals one process reading the same two shards of the corpus: the same global batches,
    // the gradients' mean over the ranks against the gradient of the whole batch.
    void dataParallelEqualsOneProcess()
    {
        const QString one = m_dir.filePath("one"), two = m_dir.filePath("two");
        const auto single = runJob({ trainArgs(one, 40, 0) << "--shards"
                                                           << "2" },
            { quietEnvironment() });
        QVERIFY2(single[0].exitCode == 0, qPrintable(single[0].err));
        const int port = freePort();
        std::vector<QProcessEnvironment> envs;
        for (int r = 0; r < 2; ++r) {
            QProcessEnvironment env = quietEnvironment();
            env.insert("RANK", QString::number(r));
            env.insert("WORLD_SIZE", "2");
            env.insert("MASTER_ADDR", "127.0.0.1");
            env.insert("MASTER_PORT", QString::number(port));
            envs.push_back(env);
        }
        const auto job = runJob({ trainArgs(two, 40, 0) << "--distributed"
                                                        << "--dist-timeout"
                                                        << "60",
                                    trainArgs(two, 40, 0) << "--distributed"
                                                          << "--dist-timeout"
                                                          << "60" },
            envs);
        for (const auto& f : job)
            QVERIFY2(f.exitCode == 0, qPrintable(f.err));
        const Json summary = Json::parse(job[0].out.toStdString());
        QCOMPARE(summary["ranks"].get<int64_t>(), int64_t(2));
        QCOMPARE(summary["shards"].get<int64_t>(), int64_t(2));
        QVERIFY(job[1].out.trimmed().isEmpty()); // rank 0 speaks for the job
        const auto a = transcoder::TranscoderSet::load(one.toStdString());
        const auto b = transcoder::TranscoderSet::load(two.toStdString());
        const double difference = maxRelativeDifference(*a, *b);
        qInfo("2 ranks against 1 process with 2 shards: max relative difference %.3g", difference);
        QVERIFY(difference <= 1e-5);
        // And the shards matter: one process with one shard trains on other batches.
        const QString plain = m_dir.filePath("plain");
        const auto unsharded = runJob({ trainArgs(plain, 40, 0) }, { quietEnvironment() });
        QVERIFY2(unsharded[0].exitCode == 0, qPrintable(unsharded[0].err));
        QVERIFY(maxRelativeDifference(*a, *transcoder::TranscoderSet::load(plain.toStdString())) > 1e-3);
    }

    // Feature-sharded training over two ranks (each holds 16 of every layer's 32 features, both
    // train on rank 0's batches) equals one process holding all 32: the reconstruction summed
    // over the ranks, the gradient's norm over both halves, TopK's k largest over both.
    void featureShardedEqualsUnsharded_data()
    {
        QTest::addColumn<QStringList>("activation");
        QTest::newRow("jump_relu") << QStringList { "--activation", "jump_relu" };
        QTest::newRow("topk") << QStringList { "--activation", "topk", "--k", "6" };
        QTest::newRow("relu, skip") << QStringList { "--activation", "relu", "--skip" };
    }
    void featureShardedEqualsUnsharded()
    {
        QFETCH(QStringList, activation);
        const QString tag = QString::fromLatin1(QTest::currentDataTag()).replace(", ", "-");
        const QString one = m_dir.filePath("whole-" + tag), two = m_dir.filePath("sharded-" + tag);
        const auto single = runJob({ trainArgs(one, 40, 0) + activation }, { quietEnvironment() });
        QVERIFY2(single[0].exitCode == 0, qPrintable(single[0].err));
        const int port = freePort();
        QStringList sharded = trainArgs(two, 40, 0) + activation;
        sharded << "--feature-sharded";
        const auto job = runJob(
            { rankArgs(sharded, 0, port), rankArgs(sharded, 1, port) }, { quietEnvironment(), quietEnvironment() });
        for (const auto& f : job)
            QVERIFY2(f.exitCode == 0, qPrintable(f.err));
        const Json summary = Json::parse(job[0].out.toStdString());
        QCOMPARE(summary["feature_sharded"].get<bool>(), true);
        QCOMPARE(summary["features_per_rank"].get<int64_t>(), int64_t(16));
        QCOMPARE(summary["shards"].get<int64_t>(), int64_t(1));
        const auto a = transcoder::TranscoderSet::load(one.toStdString());
        const auto b = transcoder::TranscoderSet::load(two.toStdString());
        QCOMPARE(b->nFeatures(), int64_t(32));
        // The reconstruction is summed in another order than one product makes it, and Adam's
        // first steps divide each gradient by its own size, so near-zero gradients carry float
        // noise into the weights: 1e-6 to 6e-5 here, where data-parallel training stays under
        // 1e-6. The tolerance still catches a loss 0.1% off (the control below).
        const double tolerance = 2e-4;
        const double difference = maxRelativeDifference(*a, *b);
        qInfo("feature-sharded over 2 ranks against 1 process: max relative difference %.3g", difference);
        QVERIFY(difference <= tolerance);
        for (int64_t l = 0; a->config().skip && l < a->nLayers(); ++l) {
            // The skip starts at zero, where Adam's first step is +-lr for any gradient however
            // small: its float noise is the largest.
            const at::Tensor sa = a->skip(l), sb = b->skip(l);
            const double skipDifference
                = (sa - sb).abs().max().item<double>() / std::max(sa.abs().max().item<double>(), 1e-30);
            qInfo("layer %lld skip: max relative difference %.3g", static_cast<long long>(l), skipDifference);
            QVERIFY(skipDifference <= 10 * tolerance);
        }
        if (tag == "jump_relu") { // the control: lambda_S 1% higher moves the weights past 10x the tolerance
            const QString nudged = m_dir.filePath("nudged");
            const auto control
                = runJob({ trainArgs(nudged, 40, 0) + activation + QStringList { "--lambda-sparsity", "0.00303" } },
                    { quietEnvironment() });
            QVERIFY2(control[0].exitCode == 0, qPrintable(control[0].err));
            const double moved = maxRelativeDifference(*a, *transcoder::TranscoderSet::load(nudged.toStdString()));
            qInfo("lambda_S 1%% higher: max relative difference %.3g", moved);
            QVERIFY(moved > 10 * tolerance);
        }
    }

    // A feature-sharded job that loses a rank stops naming it; its checkpoint holds the whole
    // set, as an unsharded run writes it, so one process resumes it.
    void featureShardedCheckpointResumesInOneProcess()
    {
        const QString out = m_dir.filePath("sharded-resumed");
        const QString checkpoint = out + "/.train/checkpoint.safetensors";
        const int port = freePort();
        QStringList args = trainArgs(out, 300, 20);
        args << "--feature-sharded";
        QElapsedTimer clock;
        clock.start();
        qint64 killedAt = 0;
        const auto killed = runJob({ rankArgs(args, 0, port), rankArgs(args, 1, port) },
            { quietEnvironment(), quietEnvironment() }, [&](std::vector<std::unique_ptr<QProcess>>& procs) {
                QTRY_VERIFY_WITH_TIMEOUT(QFile::exists(checkpoint), 200000);
                procs[1]->kill();
                killedAt = clock.elapsed();
            });
        QVERIFY2(killed[0].exitCode == 1, qPrintable(killed[0].err));
        QVERIFY2(killed[0].err.contains("rank 1 of 2 is lost"), qPrintable(killed[0].err));
        qInfo("feature-sharded: rank 0 stopped %lld ms after rank 1 was killed",
            static_cast<long long>(clock.elapsed() - killedAt));
        const auto resumed = runJob({ trainArgs(out, 300, 20) }, { quietEnvironment() });
        QVERIFY2(resumed[0].exitCode == 0, qPrintable(resumed[0].err));
        const Json summary = Json::parse(resumed[0].out.toStdString());
        QVERIFY(summary["resumed_from"].get<int64_t>() >= 20);
        QCOMPARE(summary["steps"].get<int64_t>(), int64_t(300));
        QCOMPARE(transcoder::TranscoderSet::load(out.toStdString())->nFeatures(), int64_t(32));
    }

    // A rank killed mid-job: the other stops within seconds naming it (no hang), and the same
    // command resumes both from the last checkpoint.
    void lostRankStopsTheJobAndItResumes()
    {
        const QString out = m_dir.filePath("resumed");
        const QString checkpoint = out + "/.train/checkpoint.safetensors";
        const int port = freePort();
        const std::vector<QStringList> args { rankArgs(trainArgs(out, 300, 20), 0, port),
            rankArgs(trainArgs(out, 300, 20), 1, port) };
        const std::vector<QProcessEnvironment> envs { quietEnvironment(), quietEnvironment() };
        qint64 killedAt = 0;
        QElapsedTimer clock;
        clock.start();
        const auto killed = runJob(args, envs, [&](std::vector<std::unique_ptr<QProcess>>& procs) {
            QTRY_VERIFY_WITH_TIMEOUT(QFile::exists(checkpoint), 200000);
            procs[1]->kill(); // SIGKILL: no chance to say goodbye
            killedAt = clock.elapsed();
        });
        const qint64 stoppedAfter = clock.elapsed() - killedAt;
        QVERIFY2(killed[0].exitCode == 1, qPrintable(killed[0].err));
        QVERIFY2(killed[0].err.contains("rank 1 of 2 is lost"), qPrintable(killed[0].err));
        qInfo("rank 0 stopped %lld ms after rank 1 was killed", static_cast<long long>(stoppedAfter));
        QVERIFY(stoppedAfter < 30000);
        QVERIFY(QFile::exists(checkpoint));

        const auto resumed = runJob(args, envs);
        for (const auto& f : resumed)
            QVERIFY2(f.exitCode == 0, qPrintable(f.err));
        const Json summary = Json::parse(resumed[0].out.toStdString());
        QVERIFY(summary["resumed_from"].get<int64_t>() >= 20);
        QCOMPARE(summary["steps"].get<int64_t>(), int64_t(300));
        QVERIFY(resumed[0].err.contains("resuming from"));
        QVERIFY(!QFile::exists(checkpoint)); // spent
        QCOMPARE(transcoder::TranscoderSet::load(out.toStdString())->nFeatures(), int64_t(32));
    }

    // Ranks started apart are refused at the start, every rank saying which one differs.
    void mismatchedRanksAreRefused_data()
    {
        QTest::addColumn<QStringList>("rank1Extra");
        QTest::addColumn<QString>("message");
        QTest::newRow("options") << QStringList {
            "--lr", "0.01"
        } << "rank 1 was started with other training options than rank 0: \"lr 0.01\" where rank 0 has \"lr 0.001\"";
        QTest::newRow("corpus") << QStringList { "--corpus", "OTHER" }
                                << "rank 1 was started with other model or corpus than rank 0: \"corpus ";
    }
    void mismatchedRanksAreRefused()
    {
        QFETCH(QStringList, rank1Extra);
        QFETCH(QString, message);
        const QString other = m_dir.filePath("other.txt");
        QVERIFY(QFile::copy(m_corpus, other) || QFile::exists(other));
        {
            QFile f(other);
            QVERIFY(f.open(QIODevice::Append));
            f.write("one more line\n");
        }
        rank1Extra.replaceInStrings("OTHER", other);
        const QString out = m_dir.filePath("apart");
        const int port = freePort();
        const auto job = runJob(
            { rankArgs(trainArgs(out, 20, 0), 0, port), rankArgs(trainArgs(out, 20, 0) + rank1Extra, 1, port) },
            { quietEnvironment(), quietEnvironment() });
        for (const auto& f : job) {
            QCOMPARE(f.exitCode, 1);
            QVERIFY2(f.err.contains(message), qPrintable(f.err));
        }
        QVERIFY(!QFile::exists(out + "/config.yaml"));
    }
};

QTEST_GUILESS_MAIN(TestDistributed)
#include "tst_distributed.moc"
