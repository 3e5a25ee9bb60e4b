// circuitscope-cli's JSON contract (info, tokenize, logits, generate), run as a process on a
// tiny model the test writes, checked against the engine's API and against softmax computed
// here; and its errors: a clear message and a non-zero exit, never a crash.
#include "hf_fixtures.h"

#include "cs/model.h"

#include <ATen/ATen.h>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <nlohmann/json.hpp>

#include <cmath>

using Json = nlohmann::json;

namespace {

struct Run {
    int exitCode = -1;
    QString out, err;
    Json json() const { return Json::parse(out.toStdString()); }
};

Run cli(const QStringList& args)
{
    QProcess p;
    p.start(QStringLiteral(CS_CLI_PATH), args);
    p.waitForFinished(120000);
    Run r;
    r.exitCode = p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1;
    r.out = QString::fromUtf8(p.readAllStandardOutput());
    r.err = QString::fromUtf8(p.readAllStandardError());
    return r;
}

} // namespace

class TestCli : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir { cs::test::testTempRoot() + "/cli-XXXXXX" };
    QString m_model;
    std::shared_ptr<const cs::model::Model> m_engine;

private Q_SLOTS:
    void initTestCase()
    {
        cs::test::TinySpec spec;
        spec.family = "llama";
        spec.nLayers = 2;
        m_model = cs::test::writeTinyModel(m_dir.filePath("llama"), spec);
        m_engine = cs::model::Model::load(m_model.toStdString(), { "cpu" });
    }

    void info()
    {
        Run r = cli({ "--device", "cpu", "info", m_model, "--json" });
        QCOMPARE(r.exitCode, 0);
        Json j = r.json();
        QCOMPARE(j["family"].get<std::string>(), std::string("llama"));
        QCOMPARE(j["layers"].get<int64_t>(), int64_t(2));
        QCOMPARE(j["d_model"].get<int64_t>(), int64_t(32));
        QCOMPARE(j["heads"].get<int64_t>(), int64_t(4));
        QCOMPARE(j["vocab"].get<int64_t>(), int64_t(300));
        QCOMPARE(j["dtype"].get<std::string>(), std::string("F32"));
        QCOMPARE(j["device"].get<std::string>(), std::string("cpu"));
    }

    void tokenize()
    {
        const std::string text = "Fact: Michael Jordan plays the sport of";
        Run r = cli({ "tokenize", m_model, "--text", QString::fromStdString(text), "--json", "--device", "cpu" });
        QCOMPARE(r.exitCode, 0);
        Json j = r.json();
        const auto ids = j["ids"].get<std::vector<int64_t>>();
        QCOMPARE(ids, m_engine->tokenizer().encode(text));
        QCOMPARE(j["tokens"].size(), ids.size());
        std::string joined;
        for (const auto& t : j["tokens"])
            joined += t.get<std::string>();
        // Every token's text, concatenated, is the prompt (after the BOS token's own text).
        QVERIFY(QString::fromStdString(joined).endsWith(QString::fromStdString(text)));
    }

    void logitsMatchTheEngine_data()
    {
        QTest::addColumn<bool>("allPositions");
        QTest::addColumn<bool>("byIds");
        QTest::newRow("last, text") << false << false;
        QTest::newRow("all, text") << true << false;
        QTest::newRow("last, ids") << false << true;
    }
    void logitsMatchTheEngine()
    {
        QFETCH(bool, allPositions);
        QFETCH(bool, byIds);
        const std::string text = "calc: 36+59=";
        const auto ids = m_engine->tokenizer().encode(text);
        QStringList args = { "logits", m_model, "--top-k", "5", "--json", "--device", "cpu" };
        if (byIds) {
            QStringList parts;
            for (auto id : ids)
                parts << QString::number(id);
            args << "--ids" << parts.join(',');
        } else {
            args << "--text" << QString::fromStdString(text);
        }
        if (allPositions)
            args << "--all-positions";
        Run r = cli(args);
        QCOMPARE(r.exitCode, 0);
        Json j = r.json();
        QCOMPARE(j["ids"].get<std::vector<int64_t>>(), ids);
        at::Tensor expected = m_engine->forward(at::tensor(ids, at::kLong)).logits[0]; // [n_pos, vocab]
        const auto rows = j["logits"].get<std::vector<std::vector<float>>>();
        QCOMPARE(int64_t(rows.size()), allPositions ? int64_t(ids.size()) : int64_t(1));
        for (size_t i = 0; i < rows.size(); ++i) {
            const int64_t pos = allPositions ? int64_t(i) : int64_t(ids.size()) - 1;
            at::Tensor got = at::tensor(rows[i], at::kFloat);
            QVERIFY(at::allclose(got, expected[pos], 1e-6, 1e-6));
        }
        // top: the five largest, by probability, with probabilities from softmax done here.
        at::Tensor last = expected[int64_t(ids.size()) - 1].to(at::kDouble);
        at::Tensor probs = at::softmax(last, -1);
        auto sorted = std::get<1>(at::sort(probs, -1, /*descending=*/true));
        QCOMPARE(j["top"].size(), size_t(5));
        for (int i = 0; i < 5; ++i) {
            const auto& t = j["top"][size_t(i)];
            QCOMPARE(t["id"].get<int64_t>(), sorted[i].item<int64_t>());
            QVERIFY(std::abs(t["prob"].get<double>() - probs[sorted[i]].item<double>()) < 1e-6);
            QVERIFY(std::abs(t["logit"].get<double>() - last[sorted[i]].item<double>()) < 1e-5);
            // JSON holds valid UTF-8: a token that is part of a character shows U+FFFD instead.
            const Json expectedToken = Json::parse(Json(m_engine->tokenizer().tokenText(sorted[i].item<int64_t>()))
                                                       .dump(-1, ' ', false, Json::error_handler_t::replace));
            QCOMPARE(t["token"], expectedToken);
        }
    }

    void generateMatchesTheEngine()
    {
        Run r = cli({ "generate", m_model, "--text", "The keys to the cabinet", "--max-new", "6", "--json", "--device",
            "cpu" });
        QCOMPARE(r.exitCode, 0);
        Json j = r.json();
        cs::model::GenerateOptions options;
        options.maxNew = 6;
        const auto expected = m_engine->generate(m_engine->tokenizer().encode("The keys to the cabinet"), options);
        QCOMPARE(j["ids"].get<std::vector<int64_t>>(), expected);
        QCOMPARE(j["text"].get<std::string>(), m_engine->tokenizer().decode(expected));

        // Sampling: the same seed gives the same tokens.
        QStringList sampled
            = { "generate", m_model, "--text", "a", "--max-new", "8", "--temperature", "1.5", "--seed", "7", "--json" };
        QCOMPARE(cli(sampled).json()["ids"], cli(sampled).json()["ids"]);
    }

    void errorsAreClear_data()
    {
        QTest::addColumn<QStringList>("args");
        QTest::addColumn<QString>("phrase");
        QTest::newRow("no such model") << QStringList { "info", "/no/such/folder" } << "does not exist";
        QTest::newRow("unknown name") << QStringList { "info", "no-such-model-name" } << "searched";
        QTest::newRow("unknown option") << QStringList { "info", "x", "--colour" } << "unknown option --colour";
        QTest::newRow("unknown command") << QStringList { "fly" } << "unknown command";
        QTest::newRow("missing value") << QStringList { "logits", "x", "--top-k" } << "needs a value";
        QTest::newRow("bad ids") << QStringList { "logits", "MODEL", "--ids", "1,x" } << "not a token id";
        QTest::newRow("id out of vocab") << QStringList { "logits", "MODEL", "--ids", "1,99999" }
                                         << "outside the vocabulary";
        QTest::newRow("empty prompt") << QStringList { "logits", "MODEL", "--text", "" } << "no tokens";
        QTest::newRow("huge prompt") << QStringList { "logits", "MODEL", "--text", QString(5000, QChar('x')) }
                                     << "more than the model's maximum";
        QTest::newRow("bad device") << QStringList { "--device", "tpu", "info", "MODEL" } << "invalid device";
        QTest::newRow("bad top-k") << QStringList { "logits", "MODEL", "--text", "a", "--top-k", "-1" }
                                   << "must not be negative";
    }
    void errorsAreClear()
    {
        QFETCH(QStringList, args);
        QFETCH(QString, phrase);
        args.replaceInStrings("MODEL", m_model);
        Run r = cli(args);
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains(phrase), qPrintable(r.err));
        QVERIFY(r.err.startsWith("circuitscope-cli: error:"));
    }

    // transcoder train writes a set that transcoder info and eval read; eval's JSON has the
    // keys the issue names, with values in their ranges; a set for another shape is refused.
    void transcoderTrainEvalInfo()
    {
        const QString corpus = m_dir.filePath("corpus.txt");
        {
            QFile f(corpus);
            QVERIFY(f.open(QIODevice::WriteOnly));
            for (int i = 0; i < 300; ++i)
                f.write(QStringLiteral("the %1 cat sat on mat %2\n").arg(i).arg(i % 7).toUtf8());
        }
        const QString out = m_dir.filePath("clt");
        Run train = cli({ "--device", "cpu", "transcoder", "train", m_model, "--corpus", corpus, "--kind", "clt",
            "--features", "16", "--steps", "30", "--batch-tokens", "64", "--buffer-tokens", "256", "--seq-len", "16",
            "--out", out, "--json" });
        QVERIFY2(train.exitCode == 0, qPrintable(train.err));
        QCOMPARE(train.json()["steps"].get<int64_t>(), int64_t(30));
        QVERIFY(QFile::exists(out + "/config.yaml"));
        QVERIFY(QFile::exists(out + "/W_dec_1.safetensors"));

        Run info = cli({ "--device", "cpu", "transcoder", "info", out, "--json" });
        QVERIFY2(info.exitCode == 0, qPrintable(info.err));
        QCOMPARE(info.json()["kind"].get<std::string>(), std::string("clt"));
        QCOMPARE(info.json()["features_per_layer"].get<int64_t>(), int64_t(16));

        Run eval = cli({ "--device", "cpu", "transcoder", "eval", m_model, out, "--corpus", corpus, "--max-tokens",
            "300", "--seq-len", "16", "--json" });
        QVERIFY2(eval.exitCode == 0, qPrintable(eval.err));
        const Json j = eval.json();
        QCOMPARE(j["layers"].size(), size_t(2));
        for (const auto& layer : j["layers"]) {
            QVERIFY(layer.contains("layer"));
            QVERIFY(layer["nmse"].get<double>() >= 0);
            QVERIFY(layer["l0"].get<double>() >= 0 && layer["l0"].get<double>() <= 16);
            QVERIFY(layer["dead_fraction"].get<double>() >= 0 && layer["dead_fraction"].get<double>() <= 1);
        }
        const double top1 = j["replacement"]["top1_agreement"].get<double>();
        QVERIFY(top1 >= 0 && top1 <= 1);
        QVERIFY(j["replacement"]["kl"].get<double>() >= -1e-6);

        // The same set against a model of another width.
        cs::test::TinySpec wide;
        wide.dModel = 48;
        wide.dHead = 12;
        const QString other = cs::test::writeTinyModel(m_dir.filePath("wide"), wide);
        Run refused = cli({ "--device", "cpu", "transcoder", "eval", other, out, "--corpus", corpus, "--json" });
        QCOMPARE(refused.exitCode, 1);
        QVERIFY2(refused.err.contains("d_model"), qPrintable(refused.err));
        Run missing = cli({ "--device", "cpu", "transcoder", "eval", m_model, "no-such-set", "--corpus", corpus });
        QCOMPARE(missing.exitCode, 1);
        QVERIFY2(missing.err.contains("no transcoder set"), qPrintable(missing.err));
    }

    void cudaWithoutCudaIsAnError()
    {
        if (at::hasCUDA())
            QSKIP("this machine has CUDA");
        Run r = cli({ "--device", "cuda", "info", m_model });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("no CUDA"), qPrintable(r.err));
    }
};

QTEST_GUILESS_MAIN(TestCli)
#include "tst_cli.moc"
