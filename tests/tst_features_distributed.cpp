// A feature store built over several processes (issue 22): two ranks of circuitscope-cli on the
// loopback interface (Gloo) against one process over the same corpus, on every figure of every
// feature; `features merge` of the parts; a rank that dies mid-build and the job resumed; ranks
// started apart; a file at the output that is not the build's; merges of parts that do not add up.
#include "cli_job.h"
#include "hf_fixtures.h"

#include "cs/error.h"
#include "cs/features.h"
#include "cs/transcoder.h"

#include <ATen/ATen.h>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <nlohmann/json.hpp>

#include <cmath>

using namespace cs;
using namespace cs::testing;
using Json = nlohmann::json;

namespace {

bool close(double a, double b)
{
    return a == b || std::abs(a - b) <= 1e-12 * std::max(std::abs(a), std::abs(b));
}

QString exampleDifference(const features::Example& a, const features::Example& b)
{
    if (a.context != b.context)
        return QString("context %1 against %2").arg(a.context).arg(b.context);
    if (a.tokens != b.tokens || a.activations != b.activations || a.position != b.position
        || a.activation != b.activation)
        return QString("context %1 differs in its tokens or activations").arg(a.context);
    return {};
}

QString listDifference(const std::vector<features::Example>& a, const std::vector<features::Example>& b)
{
    if (a.size() != b.size())
        return QString("%1 examples against %2").arg(a.size()).arg(b.size());
    for (size_t i = 0; i < a.size(); ++i)
        if (const QString d = exampleDifference(a[i], b[i]); !d.isEmpty())
            return QString("example %1: %2").arg(i).arg(d);
    return {};
}

bool sameTokens(const std::vector<features::TokenValue>& a, const std::vector<features::TokenValue>& b)
{
    if (a.size() != b.size())
        return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (a[i].id != b[i].id || a[i].token != b[i].token || a[i].value != b[i].value)
            return false;
    return true;
}

// Every figure of every feature, its co-activation lists both ways, and the store's own
// description: exact, but for the float64 sums, which add up in another order (1e-12 relative).
// Empty when the stores agree, else the first difference.
QString storeDifference(const std::string& pathA, const std::string& pathB)
{
    const auto a = features::FeatureStore::open(pathA), b = features::FeatureStore::open(pathB);
    const features::StoreInfo ia = a->info(), ib = b->info();
    if (ia.model != ib.model || ia.scan != ib.scan || ia.nLayers != ib.nLayers || ia.nFeatures != ib.nFeatures
        || ia.contextLength != ib.contextLength || ia.tokens != ib.tokens || ia.complete != ib.complete
        || ia.buildOptions != ib.buildOptions)
        return QString("info: %1 tokens, %2 against %3 tokens, %4")
            .arg(ia.tokens)
            .arg(QString::fromStdString(ia.buildOptions.dump()))
            .arg(ib.tokens)
            .arg(QString::fromStdString(ib.buildOptions.dump()));
    if (!ia.complete)
        return "the stores are not complete";
    if (a->vocabulary() != b->vocabulary())
        return "vocabulary";
    if (a->listFeatures() != b->listFeatures())
        return "the features with statistics";
    if (a->hasCoactivations() != b->hasCoactivations())
        return "co-activation statistics in one store only";
    for (const auto& [l, f] : a->listFeatures()) {
        const QString where = QString("%1:%2 ").arg(l).arg(f);
        const features::FeatureRecord x = a->card(l, f), y = b->card(l, f);
        if (x.tokens != y.tokens || x.activeTokens != y.activeTokens || x.actMax != y.actMax || x.actMin != y.actMin)
            return where + "counts, max or min";
        if (!close(x.actSum, y.actSum))
            return where + QString("sum %1 against %2").arg(x.actSum, 0, 'g', 17).arg(y.actSum, 0, 'g', 17);
        if (x.quantileLevels != y.quantileLevels || x.quantileValues != y.quantileValues)
            return where + "quantiles";
        if (x.histogramEdges != y.histogramEdges || x.histogramCounts != y.histogramCounts)
            return where + "histogram";
        if (const QString d = listDifference(x.top, y.top); !d.isEmpty())
            return where + "top examples: " + d;
        if (x.quantiles.size() != y.quantiles.size())
            return where + "quantile bands";
        for (size_t i = 0; i < x.quantiles.size(); ++i) {
            if (x.quantiles[i].name != y.quantiles[i].name)
                return where + "band names";
            if (const QString d = listDifference(x.quantiles[i].examples, y.quantiles[i].examples); !d.isEmpty())
                return where + QString("band %1: ").arg(i) + d;
        }
        if (!sameTokens(x.topLogits, y.topLogits) || !sameTokens(x.bottomLogits, y.bottomLogits)
            || !sameTokens(x.topInputs, y.topInputs))
            return where + "token lists";
        if (!a->hasCoactivations())
            continue;
        for (const bool up : { true, false }) {
            const auto p = a->coactivations(l, f, up), q = b->coactivations(l, f, up);
            if (p.partners != q.partners || p.kept.size() != q.kept.size())
                return where + "co-activation partners";
            for (size_t i = 0; i < p.kept.size(); ++i)
                if (p.kept[i].layer != q.kept[i].layer || p.kept[i].feature != q.kept[i].feature
                    || p.kept[i].count != q.kept[i].count || !close(p.kept[i].sourceSum, q.kept[i].sourceSum)
                    || !close(p.kept[i].productSum, q.kept[i].productSum))
                    return where + QString("co-activation partner %1").arg(i);
        }
    }
    return {};
}

} // namespace

class TestFeaturesDistributed : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir;
    QString m_model, m_transcoders, m_corpus;
    std::string m_single; // the store one process builds, every test's reference

    QString path(const QString& name) const { return m_dir.filePath(name); }

    // Small samples and a small top-k, so that the hash samples hold a part of what the features
    // saw and the top lists are contested; checkpoints every few rounds.
    QStringList buildArgs(const QString& out, const QString& corpus = {}) const
    {
        return { "--device", "cpu", "features", "build", m_model, "--transcoder", m_transcoders, "--corpus",
            corpus.isEmpty() ? m_corpus : corpus, "--out", out, "--context", "12", "--batch-size", "4", "--top-k", "3",
            "--checkpoint-every", "16", "--json" };
    }

    static QStringList rankArgs(QStringList args, int rank, int port, const QStringList& extra = {})
    {
        args << "--distributed"
             << "--dist-timeout"
             << "5"
             << "--rank" << QString::number(rank) << "--world-size"
             << "2"
             << "--master-port" << QString::number(port) << extra;
        return args;
    }

    std::vector<QStringList> jobArgs(const QString& out, const QStringList& extra = {}) const
    {
        const int port = freePort();
        return { rankArgs(buildArgs(out), 0, port, extra), rankArgs(buildArgs(out), 1, port, extra) };
    }

    static QString errors(const std::vector<Finished>& job)
    {
        QString text;
        for (size_t r = 0; r < job.size(); ++r)
            text += QString("rank %1 (exit %2): %3\n").arg(r).arg(job[r].exitCode).arg(job[r].err);
        return text;
    }

private Q_SLOTS:
    void initTestCase()
    {
        QVERIFY(m_dir.isValid());
        test::TinySpec spec;
        spec.nLayers = 3;
        m_model = test::writeTinyModel(path("model"), spec);
        const auto model = model::Model::load(m_model.toStdString(), { "cpu", true });
        // A CLT with ReLU features, biased so that a feature fires on some tokens, not all.
        const auto clt = test::randomClt(model->config(), 16, -0.4);
        m_transcoders = path("clt");
        clt->save(m_transcoders.toStdString());
        m_corpus = QString::fromStdString(test::writeWordCorpus(path("corpus.txt").toStdString(), 1500));

        m_single = path("single.db").toStdString();
        const auto single = runJob({ buildArgs(path("single.db")) });
        QVERIFY2(single[0].exitCode == 0, qPrintable(single[0].err));
        const Json j = Json::parse(single[0].out.toStdString());
        qInfo("one process: %lld tokens, %.0f tokens/s", static_cast<long long>(j["tokens"].get<int64_t>()),
            j["tokens_per_second"].get<double>());
        // The samples hold a part of what the busiest features saw (1,024 values, 64 contexts).
        const auto store = features::FeatureStore::open(m_single);
        int64_t busiest = 0;
        for (const auto& [l, f] : store->listFeatures())
            busiest = std::max(busiest, store->totals(l, f)->activeTokens);
        QVERIFY2(busiest > 4 * 1024, qPrintable(QString::number(busiest)));
        QVERIFY(store->hasCoactivations());
    }

    // Two ranks, launched with the flags, merge into a store equal to the one-process build; the
    // parts are gone after.
    void twoRanksEqualOneProcess()
    {
        const QString out = path("two.db");
        const auto job = runJob(jobArgs(out));
        for (const auto& f : job)
            QVERIFY2(f.exitCode == 0, qPrintable(errors(job)));
        const Json summary = Json::parse(job[0].out.toStdString());
        QCOMPARE(summary["ranks"].get<int64_t>(), int64_t(2));
        qInfo("two ranks: %lld tokens, %.0f tokens/s", static_cast<long long>(summary["tokens"].get<int64_t>()),
            summary["tokens_per_second"].get<double>());
        QVERIFY(job[1].out.trimmed().isEmpty()); // rank 0 speaks for the job
        const QString difference = storeDifference(m_single, out.toStdString());
        QVERIFY2(difference.isEmpty(), qPrintable(difference));
        for (int r = 0; r < 2; ++r)
            QVERIFY(!QFile::exists(QString::fromStdString(features::partPath(out.toStdString(), r, 2))));
    }

    // The model's own neurons as the features (--basis neurons) the same way.
    void neuronBasis()
    {
        const QStringList neurons { "--basis", "neurons" };
        auto withoutTranscoder = [&](QStringList args) {
            const auto at = args.indexOf("--transcoder");
            args.remove(at, 2);
            return args + neurons;
        };
        const QString one = path("neurons-one.db"), two = path("neurons-two.db");
        const auto single = runJob({ withoutTranscoder(buildArgs(one)) });
        QVERIFY2(single[0].exitCode == 0, qPrintable(single[0].err));
        const int port = freePort();
        const auto job = runJob({ rankArgs(withoutTranscoder(buildArgs(two)), 0, port),
            rankArgs(withoutTranscoder(buildArgs(two)), 1, port) });
        for (const auto& f : job)
            QVERIFY2(f.exitCode == 0, qPrintable(errors(job)));
        QCOMPARE(features::FeatureStore::open(two.toStdString())->info().scan, std::string("neurons"));
        const QString difference = storeDifference(one.toStdString(), two.toStdString());
        QVERIFY2(difference.isEmpty(), qPrintable(difference));
    }

    // --parts-only leaves the parts; `features merge` makes the same store of them (folders from
    // the parts), and refuses a missing, a duplicate or another build's part.
    void mergeCommand()
    {
        const QString out = path("parts.db");
        const auto job = runJob(jobArgs(out, { "--parts-only" }));
        for (const auto& f : job)
            QVERIFY2(f.exitCode == 0, qPrintable(errors(job)));
        QVERIFY(!QFile::exists(out));
        const Json summary = Json::parse(job[0].out.toStdString());
        QCOMPARE(summary["parts"].size(), size_t(2));
        const QString p0 = QString::fromStdString(summary["parts"][0].get<std::string>());
        const QString p1 = QString::fromStdString(summary["parts"][1].get<std::string>());
        for (const QString& p : { p0, p1 })
            QVERIFY(features::readPart(p.toStdString()).finished);
        const auto info = runJob({ { "features", "info", p1, "--json" } });
        QVERIFY2(info[0].exitCode == 0, qPrintable(info[0].err));
        const Json part = Json::parse(info[0].out.toStdString())["part"];
        QCOMPARE(part["rank"].get<int64_t>(), int64_t(1));
        QCOMPARE(part["ranks"].get<int64_t>(), int64_t(2));
        QVERIFY(part["finished"].get<bool>());
        QCOMPARE(QString::fromStdString(part["transcoder_folder"].get<std::string>()), m_transcoders);

        const QString merged = path("merged.db");
        const auto merge = runJob({ { "--device", "cpu", "features", "merge", p1, p0, "--out", merged, "--json" } });
        QVERIFY2(merge[0].exitCode == 0, qPrintable(merge[0].err));
        QCOMPARE(Json::parse(merge[0].out.toStdString())["parts"].get<int64_t>(), int64_t(2));
        const QString difference = storeDifference(m_single, merged.toStdString());
        QVERIFY2(difference.isEmpty(), qPrintable(difference));
        QVERIFY(QFile::exists(p0) && QFile::exists(p1)); // the user's files: left in place

        // Parts of a build with other options.
        const QString other = path("other.db");
        const auto otherJob = runJob(jobArgs(other, { "--parts-only", "--top-k", "4" }));
        for (const auto& f : otherJob)
            QVERIFY2(f.exitCode == 0, qPrintable(errors(otherJob)));
        const QString otherPart = QString::fromStdString(features::partPath(other.toStdString(), 1, 2));
        const QString target = path("refused.db");
        const struct {
            QStringList parts;
            QString message;
        } refusals[] = {
            { { p0 }, "the part of rank 1 of 2 is missing" },
            { { p0, p0, p1 }, "are both the part of rank 0" },
            { { p0, otherPart }, "is a part of another build than" },
            { { m_transcoders + "/missing" }, "no such feature store" },
            { { QString::fromStdString(m_single) }, "is not a part of a distributed build" },
        };
        for (const auto& r : refusals) {
            const auto refused = runJob(
                { QStringList { "--device", "cpu", "features", "merge" } + r.parts + QStringList { "--out", target } });
            QCOMPARE(refused[0].exitCode, 1);
            QVERIFY2(refused[0].err.contains(r.message), qPrintable(refused[0].err));
            QVERIFY(!QFile::exists(target));
        }
    }

    // Rank 1 killed mid-build: rank 0 stops within the timeout naming it, neither part is
    // finished (a merge refuses them), and the same commands resume to the same store.
    void lostRankStopsTheJobAndItResumes()
    {
        const QString out = path("resumed.db");
        const auto args = jobArgs(out);
        const std::string part1 = features::partPath(out.toStdString(), 1, 2);
        qint64 killedAt = 0;
        QElapsedTimer clock;
        clock.start();
        const auto killed = runJob(args, {}, [&](std::vector<std::unique_ptr<QProcess>>& procs) {
            // Once rank 1 saved its first checkpoint.
            const auto hasState = [&] {
                try {
                    return QFile::exists(QString::fromStdString(part1))
                        && features::FeatureStore::open(part1)->buildState().has_value();
                } catch (const Error&) {
                    return false; // being created
                }
            };
            QTRY_VERIFY_WITH_TIMEOUT(hasState(), 60000);
            procs[1]->kill(); // SIGKILL: no chance to say goodbye
            killedAt = clock.elapsed();
        });
        const qint64 stoppedAfter = clock.elapsed() - killedAt;
        QVERIFY2(killed[0].exitCode == 1, qPrintable(errors(killed)));
        QVERIFY2(killed[0].err.contains("rank 1 of 2 is lost"), qPrintable(killed[0].err));
        qInfo("rank 0 stopped %lld ms after rank 1 was killed", static_cast<long long>(stoppedAfter));
        QVERIFY(stoppedAfter < 30000);
        QVERIFY(!features::FeatureStore::open(out.toStdString())->info().complete); // claimed at the start
        const features::PartInfo stopped = features::readPart(part1);
        QVERIFY(!stopped.finished && stopped.tokens > 0); // killed mid-build, after a checkpoint
        // Rank 0 saved what it had when the job broke, so the parts may stand at different rounds
        // (the resume starts both at the earlier one).
        qInfo("parts at %lld and %lld tokens",
            static_cast<long long>(features::readPart(features::partPath(out.toStdString(), 0, 2)).tokens),
            static_cast<long long>(stopped.tokens));

        const QString p0 = QString::fromStdString(features::partPath(out.toStdString(), 0, 2));
        const auto early = runJob({ { "--device", "cpu", "features", "merge", p0, QString::fromStdString(part1),
            "--out", path("early.db") } });
        QCOMPARE(early[0].exitCode, 1);
        QVERIFY2(early[0].err.contains("is unfinished"), qPrintable(early[0].err));

        const auto resumed = runJob(args);
        for (const auto& f : resumed)
            QVERIFY2(f.exitCode == 0, qPrintable(errors(resumed)));
        QVERIFY(Json::parse(resumed[0].out.toStdString())["resumed_from_tokens"].get<int64_t>() > 0);
        const QString difference = storeDifference(m_single, out.toStdString());
        QVERIFY2(difference.isEmpty(), qPrintable(difference));
        QVERIFY(!QFile::exists(p0) && !QFile::exists(QString::fromStdString(part1)));
    }

    // A part whose record of which part it is makes no sense is refused as damaged, before a
    // merge would make a slot for each of its ranks.
    void damagedPartIsRefused_data()
    {
        QTest::addColumn<QString>("part");
        QTest::newRow("a trillion ranks")
            << R"({"rank": 0, "ranks": 1000000000000, "model_folder": "m", "transcoder_folder": "t"})";
        QTest::newRow("rank past the end")
            << R"({"rank": 2, "ranks": 2, "model_folder": "m", "transcoder_folder": "t"})";
        QTest::newRow("rank as text") << R"({"rank": "0", "ranks": 2, "model_folder": "m", "transcoder_folder": "t"})";
        QTest::newRow("no folders") << R"({"rank": 0, "ranks": 2})";
    }
    void damagedPartIsRefused()
    {
        QFETCH(QString, part);
        const QString file
            = path("damaged-" + QString::fromLatin1(QTest::currentDataTag()).replace(' ', '-') + ".db.part");
        features::StoreInfo info;
        info.model = "m";
        info.scan = "s";
        info.nLayers = 1;
        info.nFeatures = 1;
        info.contextLength = 8;
        info.buildOptions = { { "top_k", 3 }, { "part", Json::parse(part.toStdString()) } };
        features::FeatureStore::create(file.toStdString(), info).reset();
        try {
            features::readPart(file.toStdString());
            QFAIL("a damaged part was read");
        } catch (const Error& e) {
            QVERIFY2(QString(e.what()).contains("is damaged"), e.what());
        }
        const auto merge = runJob({ { "--device", "cpu", "features", "merge", file, "--out", path("never.db") } });
        QCOMPARE(merge[0].exitCode, 1);
        QVERIFY2(merge[0].err.contains("is damaged"), qPrintable(merge[0].err));
        QVERIFY(!QFile::exists(path("never.db")));
    }

    // A file at DB that is not this model's store is refused by rank 0 before any work, and the
    // other rank stops with it, naming rank 0; the file is left as it was.
    void someoneElsesFileIsNotOverwritten()
    {
        const QString out = path("someone.db");
        {
            QFile f(out);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write("someone's notes\n");
        }
        const auto job = runJob(jobArgs(out));
        QCOMPARE(job[0].exitCode, 1);
        QVERIFY2(job[0].err.contains("not overwriting it"), qPrintable(job[0].err));
        QCOMPARE(job[1].exitCode, 1);
        QVERIFY2(job[1].err.contains("rank 0 of 2 could not start its share of the build"), qPrintable(job[1].err));
        QFile f(out);
        QVERIFY(f.open(QIODevice::ReadOnly));
        QCOMPARE(f.readAll(), QByteArray("someone's notes\n"));
        for (int r = 0; r < 2; ++r)
            QVERIFY(!QFile::exists(QString::fromStdString(features::partPath(out.toStdString(), r, 2))));
    }

    // Ranks started apart are refused at the start, every rank saying which one differs, and
    // nothing is written.
    void mismatchedRanksAreRefused_data()
    {
        QTest::addColumn<QStringList>("rank1Extra");
        QTest::addColumn<QString>("message");
        QTest::newRow("options") << QStringList { "--top-k", "4" }
                                 << "rank 1 was started with other feature store build options than rank 0: \"top_k "
                                    "4\" where rank 0 has \"top_k 3\"";
        QTest::newRow("corpus") << QStringList { "--corpus", "OTHER" }
                                << "rank 1 was started with other model, transcoders or corpus than rank 0: \"corpus ";
    }
    void mismatchedRanksAreRefused()
    {
        QFETCH(QStringList, rank1Extra);
        QFETCH(QString, message);
        const QString other = path("other.txt");
        if (!QFile::exists(other)) {
            QVERIFY(QFile::copy(m_corpus, other));
            QFile f(other);
            QVERIFY(f.open(QIODevice::Append));
            f.write("one more line\n");
        }
        rank1Extra.replaceInStrings("OTHER", other);
        const QString out = path("apart.db");
        const int port = freePort();
        const auto job = runJob({ rankArgs(buildArgs(out), 0, port), rankArgs(buildArgs(out) + rank1Extra, 1, port) });
        for (const auto& f : job) {
            QCOMPARE(f.exitCode, 1);
            QVERIFY2(f.err.contains(message), qPrintable(f.err));
        }
        QVERIFY(!QFile::exists(out));
        for (int r = 0; r < 2; ++r)
            QVERIFY(!QFile::exists(QString::fromStdString(features::partPath(out.toStdString(), r, 2))));
    }
};

QTEST_GUILESS_MAIN(TestFeaturesDistributed)
#include "tst_features_distributed.moc"
