// circuitscope-cli's JSON contract (info, tokenize, logits, generate), run as a process on a
// tiny model the test writes, checked against the engine's API and against softmax computed
// here; and its errors: a clear message and a non-zero exit, never a crash.
#include "hf_fixtures.h"

#include "cs/engine.h"
#include "cs/intervention.h"
#include "cs/model.h"
#include "cs/replacement.h"

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

    // intervene on tinyworld with its shipped CLT: the JSON contract's keys; before is the
    // model's own distribution, after and the logit deltas are the engine's intervention;
    // repeated and mixed edits; generation before is the model's greedy continuation.
    void intervene()
    {
        const std::string folder = cs::resolveModelFolder(cs::kDefaultModel);
        auto model = cs::model::Model::load(folder, { "cpu", true });
        auto set = cs::transcoder::TranscoderSet::load(
            cs::transcoder::resolveTranscoderFolder(folder, "clt"), { "cpu", true });
        const std::string prompt = "Fact: the capital of the state containing Dallas is";
        const auto ids = model->tokenizer().encode(prompt);
        const auto ctx = cs::attribution::buildContext(model, set, at::tensor(ids, at::kLong));
        const int64_t last = ctx.nPos() - 1;
        // The strongest feature at the last position of layer 1, and one of layer 0.
        const int64_t f1 = ctx.activations[1][last].argmax().item<int64_t>();
        const int64_t f0 = ctx.activations[0][last].argmax().item<int64_t>();
        const std::vector<cs::intervention::FeatureEdit> edits
            = { { 0, 3, 17, cs::intervention::Op::Set, 2.5 }, { 1, last, f1, cs::intervention::Op::Scale, 0.0 },
                  { 0, -1, f0, cs::intervention::Op::Scale, -1.0 }, { 2, -1, 5, cs::intervention::Op::Add, 1.0 } };
        cs::intervention::InterventionOptions o;
        o.topK = 5;
        o.generate = 3;
        const auto expected = cs::intervention::intervene(ctx, edits, o);

        const QString l = QString::number(last);
        Run r = cli({ "--device", "cpu", "intervene", "tinyworld", "--text", QString::fromStdString(prompt), "--set",
            "0:3:17=2.5", "--scale", QStringLiteral("1:%1:%2=0").arg(l).arg(f1), "--scale",
            QStringLiteral("0:*:%1=-1").arg(f0), "--add", "2:*:5=1", "--top-k", "5", "--generate", "3", "--json" });
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const Json j = r.json();
        for (const char* key : { "before", "after", "logit_delta", "generation" })
            QVERIFY2(j.contains(key), key);
        QCOMPARE(j["mode"].get<std::string>(), std::string("constrained"));
        QCOMPARE(j["edits"].size(), size_t(4));
        QCOMPARE(j["before"]["top"].size(), size_t(5));
        QCOMPARE(j["after"]["top"].size(), size_t(5));
        at::Tensor own = model->forward(at::tensor(ids, at::kLong)).logits[0][last].to(at::kDouble);
        at::Tensor probs = at::softmax(own, -1);
        const auto order = std::get<1>(at::sort(probs, -1, /*descending=*/true));
        for (size_t i = 0; i < 5; ++i) {
            const Json& b = j["before"]["top"][i];
            for (const char* key : { "id", "token", "logit", "prob" })
                QVERIFY2(b.contains(key), key);
            QCOMPARE(b["id"].get<int64_t>(), order[int64_t(i)].item<int64_t>());
            QVERIFY(std::abs(b["prob"].get<double>() - probs[order[int64_t(i)]].item<double>()) < 1e-5);
            const Json& a = j["after"]["top"][i];
            QCOMPARE(a["id"].get<int64_t>(), expected.after[i].id);
            QVERIFY(std::abs(a["logit"].get<double>() - expected.after[i].logit) < 1e-5);
        }
        QCOMPARE(j["logit_delta"].size(), expected.logitDelta.size());
        for (const auto& [id, d] : expected.logitDelta)
            QVERIFY(std::abs(j["logit_delta"][std::to_string(id)].get<double>() - d) < 1e-5);
        QVERIFY(j["changed"].is_array() && !j["changed"].empty());
        for (const char* key : { "layer", "position", "feature", "before", "after" })
            QVERIFY2(j["changed"][0].contains(key), key);
        cs::model::GenerateOptions go;
        go.maxNew = 3;
        QCOMPARE(j["generation"]["before"].get<std::string>(), model->tokenizer().decode(model->generate(ids, go)));
        QCOMPARE(j["generation"]["after"].get<std::string>(), expected.generationAfter);

        // Free mode and the readable table.
        Run free = cli({ "--device", "cpu", "intervene", "tinyworld", "--text", QString::fromStdString(prompt),
            "--scale", QStringLiteral("1:%1:%2=0").arg(l).arg(f1), "--mode", "free", "--json" });
        QVERIFY2(free.exitCode == 0, qPrintable(free.err));
        QCOMPARE(free.json()["mode"].get<std::string>(), std::string("free"));
        Run table = cli({ "--device", "cpu", "intervene", "tinyworld", "--text", QString::fromStdString(prompt),
            "--scale", QStringLiteral("1:%1:%2=0").arg(l).arg(f1) });
        QVERIFY2(table.exitCode == 0, qPrintable(table.err));
        QVERIFY(table.out.contains("before") && table.out.contains("after"));

        // Bad edits: a clear message and exit code 1.
        const QString text = QString::fromStdString(prompt);
        const std::vector<std::pair<QStringList, QString>> bad = {
            { { "--set", "0:1:99999=1" }, "features per layer" },
            { { "--set", "9:1:0=1" }, "layers" },
            { { "--set", "0:500:0=1" }, "out of range" },
            { { "--set", "0:1=1" }, "not of the form" },
            { { "--scale", "0:x:1=1" }, "not an integer" },
            { { "--add", "0:1:1=abc" }, "not a finite number" },
            { {}, "at least one edit" },
            { { "--set", "0:1:1=1", "--mode", "loose" }, "--mode" },
        };
        for (const auto& [extra, phrase] : bad) {
            Run e = cli(QStringList { "--device", "cpu", "intervene", "tinyworld", "--text", text } + extra);
            QCOMPARE(e.exitCode, 1);
            QVERIFY2(e.err.contains(phrase), qPrintable(e.err));
        }
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
