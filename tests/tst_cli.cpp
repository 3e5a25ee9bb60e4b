// circuitscope-cli's JSON contract (info, tokenize, logits, generate), run as a process on a
// tiny model the test writes, checked against the engine's API and against softmax computed
// here; and its errors: a clear message and a non-zero exit, never a crash.
#include "graph_nodes.h"
#include "hf_fixtures.h"

#include "cs/attribution.h"
#include "cs/engine.h"
#include "cs/features.h"
#include "cs/graph.h"
#include "cs/intervention.h"
#include "cs/model.h"
#include "cs/neurons.h"
#include "cs/replacement.h"
#include "cs/sweep.h"
#include "cs/validation.h"
#include "cs/weights.h"

#include <ATen/ATen.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <QFile>
#include <QProcess>
#include <QTemporaryDir>
#include <QtTest>
#include <fcntl.h>
#include <linux/fs.h>
#include <map>
#include <nlohmann/json.hpp>
#include <png.h>
#include <sqlite3.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <torch/version.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <fstream>
#include <random>

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

Json readJson(const QString& path)
{
    std::ifstream in(path.toStdString());
    return Json::parse(in);
}

// A small attribution graph in circuit-tracer's node order: features at (layer, position),
// every error node, an embedding per position, two logits; edges from lower layers at no
// later position, into features and logits, about half of them present.
cs::graph::Graph smallGraph()
{
    using cs::graph::Node;
    using cs::graph::NodeKind;
    const int64_t nLayers = 3, nPos = 4;
    std::mt19937_64 rng(11);
    std::normal_distribution<double> normal(0.0, 1.0);
    cs::graph::Graph g;
    for (int64_t i = 0; i < 24; ++i)
        g.nodes.push_back(
            cs::test::featureNode(i % nLayers, (i / nLayers) % nPos, i, 1.0 + 0.1 * static_cast<double>(i)));
    for (int64_t l = 0; l < nLayers; ++l)
        for (int64_t p = 0; p < nPos; ++p)
            g.nodes.push_back(cs::test::errorNode(l, p));
    for (int64_t p = 0; p < nPos; ++p) {
        g.nodes.push_back(cs::test::embeddingNode(p, 10 + p, "t" + std::to_string(p)));
        g.metadata.promptTokens.push_back(g.nodes.back().token);
        g.metadata.prompt += g.nodes.back().token;
    }
    for (int64_t k = 0; k < 2; ++k)
        g.nodes.push_back(
            cs::test::logitNode(nLayers, nPos - 1, 50 + k, " out" + std::to_string(k), k == 0 ? 0.6 : 0.3));
    const int64_t n = g.size();
    at::Tensor a = at::zeros({ n, n });
    for (int64_t t = 0; t < n; ++t)
        for (int64_t s = 0; s < n; ++s)
            if (cs::test::edgeAllowed(g.nodes[t], g.nodes[s]) && rng() % 2 == 0)
                a[t][s] = normal(rng);
    g.adjacency = cs::graph::Adjacency::fromDense(a);
    g.logitProbabilities = { 0.6f, 0.3f };
    g.metadata.slug = "cli-graph";
    g.metadata.scan = "test-scan";
    return g;
}

// Tinyworld with its shipped CLT on the Dallas prompt, on the CPU: the engine's side of the
// intervene tests.
constexpr const char* kDallas = "Fact: the capital of the state containing Dallas is";
cs::attribution::ReplacementContext dallasContext()
{
    const std::string folder = cs::resolveModelFolder(cs::kDefaultModel);
    auto model = cs::model::Model::load(folder, { "cpu", true });
    auto set
        = cs::transcoder::TranscoderSet::load(cs::transcoder::resolveTranscoderFolder(folder, "clt"), { "cpu", true });
    const auto ids = model->tokenizer().encode(kDallas);
    return cs::attribution::buildContext(model, set, at::tensor(ids, at::kLong));
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
        // Which engine: the LibTorch this test itself links, and what it can reach.
        const Json& t = j["torch"];
        QCOMPARE(t["version"].get<std::string>(), std::string(TORCH_VERSION));
        QCOMPARE(t["cuda_compiled"].get<bool>(), at::detail::getCUDAHooks().isBuilt());
        QCOMPARE(t["cuda_available"].get<bool>(), at::hasCUDA());
        QCOMPARE(t["device"].get<std::string>(), std::string("cpu"));
#ifdef CS_EXPECT_CUDA_BUILD
        QVERIFY(t["cuda_compiled"].get<bool>()); // the default build links the wheel's CUDA LibTorch
#endif
        // auto picks CUDA exactly when it is there.
        Run a = cli({ "--device", "auto", "info", m_model, "--json" });
        QCOMPARE(a.exitCode, 0);
        QCOMPARE(a.json()["torch"]["device"].get<std::string>(), std::string(at::hasCUDA() ? "cuda:0" : "cpu"));
    }

    // --device cuda where there is no GPU: a clear error, exit 1, nothing else.
    void cudaWithoutGpu()
    {
        if (at::hasCUDA())
            QSKIP("this machine has a GPU");
        for (const char* command : { "info", "logits" }) {
            QStringList args { "--device", "cuda", command, m_model };
            if (QString(command) == "logits")
                args << "--text"
                     << "a";
            Run r = cli(args);
            QCOMPARE(r.exitCode, 1);
            QVERIFY2(r.err.startsWith("circuitscope-cli: error: device \"cuda\" was asked for"), qPrintable(r.err));
            QVERIFY2(r.err.contains("use --device cpu or auto"), qPrintable(r.err));
            QVERIFY(r.out.isEmpty());
        }
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

    // A model that loads finite but whose forward pass overflows: every weight of the final
    // norm is 3e38, finite, so any normalized value above 1 becomes infinite and the logits NaN.
    // logits and generate printed them (issue 23); they refuse, printing no result.
    void nonFiniteLogitsAreRefused()
    {
        cs::test::TinySpec spec;
        spec.family = "llama";
        spec.nLayers = 2;
        const QString folder = cs::test::writeTinyModel(m_dir.filePath("overflow"), spec);
        auto weights = cs::test::tinyWeights(spec);
        for (auto& [name, t] : weights)
            if (name == "model.norm.weight")
                t = at::full_like(t, 3e38);
        cs::test::writeSafetensors(folder + "/model.safetensors", weights, spec.storeDtype);
        const Run l = cli({ "logits", folder, "--text", "a b", "--json" });
        QCOMPARE(l.exitCode, 1);
        QVERIFY2(l.err.startsWith("circuitscope-cli: error: the model's logits at position 0 of 4 are not finite "
                                  "(NaN or infinite): the forward pass overflows"),
            qPrintable(l.err));
        QCOMPARE(l.out, QString());
        const Run g = cli({ "generate", folder, "--text", "a b", "--max-new", "4", "--json" });
        QCOMPARE(g.exitCode, 1);
        QVERIFY2(g.err.startsWith("circuitscope-cli: error: generate: the model's logits for new token 1 (position 3) "
                                  "are not finite (NaN or infinite)"),
            qPrintable(g.err));
        QCOMPARE(g.out, QString());
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
        // The engine reads "" as auto: typed, it ran on whatever was there (issue 21).
        QTest::newRow("empty device") << QStringList { "--device", "", "info", "MODEL" }
                                      << "--device needs a value (cpu, cuda, cuda:N or auto), not an empty one";
        QTest::newRow("empty device after the command")
            << QStringList { "info", "MODEL", "--device=" } << "--device needs a value";
        QTest::newRow("bad top-k") << QStringList { "logits", "MODEL", "--text", "a", "--top-k", "-1" }
                                   << "must not be negative";
        // Values that used to run to nonsense with exit 0 (issue 24).
        QTest::newRow("top-k 0") << QStringList { "logits", "MODEL", "--text", "a", "--top-k", "0" }
                                 << "lists no token";
        QTest::newRow("top-k 2^31") << QStringList { "logits", "MODEL", "--text", "a", "--top-k", "2147483648" }
                                    << "more than the vocabulary";
        QTest::newRow("temperature nan") << QStringList { "generate", "MODEL", "--text", "a", "--temperature", "nan" }
                                         << "--temperature needs a finite number";
        QTest::newRow("temperature inf") << QStringList { "generate", "MODEL", "--text", "a", "--temperature", "inf" }
                                         << "--temperature needs a finite number";
        QTest::newRow("lr nan") << QStringList { "transcoder", "train", "MODEL", "--corpus", "c.txt", "--out",
            "/nonexistent/o", "--lr", "nan" }
                                << "--lr needs a finite number";
        QTest::newRow("organism without layers") << QStringList { "organism", "build", "--out", "/nonexistent/x",
            "--layers", "0" } << "--layers must be positive, not 0";
        // Options are declared per command (CLI11): another command's option is refused, saying whose.
        QTest::newRow("another command's option")
            << QStringList { "info", "MODEL", "--steps", "5" } << "unknown option --steps for info (an option of";
        QTest::newRow("a word too many") << QStringList { "graph", "info", "a.json", "b.json" }
                                         << "unexpected argument \"b.json\" for graph info";
        QTest::newRow("an option before the command")
            << QStringList { "--json", "info", "MODEL" } << "unknown option --json before a command";
    }

    // Each command prints its own arguments and options with --help, and exits 0; a word that
    // names another command is an argument where it stands, never a switch of command.
    void commandHelpAndArguments()
    {
        for (const QStringList& command : { QStringList { "trace" }, QStringList { "graph", "prune" },
                 QStringList { "intervene" }, QStringList { "features", "build" } }) {
            Run r = cli(command + QStringList { "--help" });
            QVERIFY2(r.exitCode == 0, qPrintable(command.join(' ') + ": " + r.err));
            QVERIFY2(r.out.contains("Usage: circuitscope-cli " + command.join(' ')), qPrintable(r.out));
            QVERIFY2(r.out.contains("--device"), qPrintable(r.out));
        }
        QVERIFY(cli({ "trace", "--help" }).out.contains("--max-feature-nodes N"));
        QVERIFY(cli({ "graph", "--help" }).out.contains("graph prune"));
        // "info" here is the IN file, not the command.
        Run r = cli({ "graph", "info", "info" });
        QCOMPARE(r.exitCode, 1);
        QVERIFY2(r.err.contains("info"), qPrintable(r.err));
        QVERIFY2(!r.err.contains("unknown"), qPrintable(r.err));
        // --device after the command, and --name=value.
        Run t = cli({ "tokenize", m_model, "--text=a b", "--device", "cpu", "--json" });
        QVERIFY2(t.exitCode == 0, qPrintable(t.err));
        QVERIFY(t.json()["ids"].size() >= 2);
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

    // Issue 23: requests that ran to the context's end, or died with an internal error and
    // C++ stack frames, are refused before any work with a message naming the value.
    void refusedUpFront()
    {
        auto refused = [](const QStringList& args, const QString& phrase) {
            Run r = cli(args);
            QVERIFY2(r.exitCode == 1, qPrintable(args.join(' ') + ": " + r.err));
            QVERIFY2(r.err.startsWith("circuitscope-cli: error:") && r.err.contains(phrase), qPrintable(r.err));
            QVERIFY2(!r.err.contains("Exception raised from") && !r.err.contains("internal error"), qPrintable(r.err));
        };
        // The tiny model's context is 64 positions; the prompt "a" is a BOS and one token.
        refused({ "generate", m_model, "--text", "a", "--max-new", "100000" },
            "--max-new 100000 after the prompt's 2 tokens needs more positions than the model's context of 64 (at "
            "most --max-new 62)");
        refused({ "generate", m_model, "--text", "a", "--max-new", "63" }, "context of 64");
        refused({ "generate", m_model, "--text", "a", "--max-new", "99999999999" }, // issue 21: ran to the end
            "--max-new 99999999999 after the prompt's 2 tokens needs more positions");
        Run fits = cli({ "generate", m_model, "--text", "a", "--max-new", "62", "--json" });
        QVERIFY2(fits.exitCode == 0, qPrintable(fits.err));
        QCOMPARE(fits.json()["ids"].size(), size_t(62));

        // A value whose magnitude float32 cannot hold.
        refused({ "intervene", "tinyworld", "--text", "a b", "--set", "0:1:5=1e308" },
            "\"0:1:5=1e308\": 1e308 is beyond float32's range");
        refused(
            { "intervene", "tinyworld", "--text", "a b", "--add", "0:*:5=-4e38" }, "-4e38 is beyond float32's range");

        // A transcoders: list of 100,000 layers for tinyworld's few.
        const QString set = m_dir.filePath("long-list");
        QVERIFY(QDir().mkpath(set));
        std::string yaml = "model_kind: transcoder_set\nfeature_input_hook: mlp.hook_in\n"
                           "feature_output_hook: mlp.hook_out\ntranscoders:\n";
        for (int i = 0; i < 100000; ++i)
            yaml += "  - layer_0.safetensors\n";
        cs::test::writeTextFile(set + "/config.yaml", yaml);
        const int64_t tinyworldLayers
            = cs::model::Model::load(cs::resolveModelFolder("tinyworld"), { "cpu" })->config().nLayers;
        refused({ "intervene", "tinyworld", "--text", "a b", "--set", "0:1:5=1", "--transcoder", set },
            QString("config.yaml line 4: the transcoders: list has 100000 entries, more than the model's %1 layers")
                .arg(tinyworldLayers));

        // Writes: an output path that is there and not a regular file is never replaced.
        const QString graphPath = m_dir.filePath("upfront.csgraph");
        cs::graph::writeGraphFile(graphPath.toStdString(), smallGraph());
        const QString fifo = m_dir.filePath("out-fifo");
        QCOMPARE(::mkfifo(QFile::encodeName(fifo).constData(), 0600), 0);
        refused({ "graph", "export", graphPath, "--out", fifo, "--all" },
            "cannot write " + fifo + ": it exists and is not a regular file (a FIFO)");
        QVERIFY(QFileInfo(fifo).isFile() == false && QFileInfo::exists(fifo));
        const QString folder = m_dir.filePath("out-folder");
        QVERIFY(QDir().mkpath(folder));
        refused({ "graph", "export", graphPath, "--out", folder, "--all" },
            "cannot write " + folder + ": it exists and is not a regular file (a folder)");
        QVERIFY(QFileInfo(folder).isDir());
        // /dev/full (issue 21: both exited 0; as root the rename replaced the device with a file).
        const QString json = m_dir.filePath("upfront.json");
        QCOMPARE(cli({ "graph", "export", graphPath, "--out", json, "--all" }).exitCode, 0);
        for (const QStringList& args : { QStringList { "graph", "export", graphPath, "--out", "/dev/full", "--all" },
                 QStringList { "graph", "import", json, "--out", "/dev/full" } })
            refused(args, "cannot write /dev/full: it exists and is not a regular file (a device)");
        QVERIFY(!QFileInfo("/dev/full").isFile());
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

    // trace on tinyworld with its shipped CLT: the summary's counts agree with the JSON it wrote
    // and with the saved full graph re-pruned by `graph prune`; the JSON's metadata carries the
    // scores and exactness; both methods give the same graph; bad input is refused.
    void trace()
    {
        const QString text = "Fact: the capital of the state containing Dallas is";
        const QString json = m_dir.filePath("dallas.json"), full = m_dir.filePath("dallas.csgraph");
        Run r
            = cli({ "--device", "cpu", "trace", "tinyworld", "--text", text, "--out", json, "--full", full, "--json" });
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const Json summary = Json::parse(r.out.toStdString());
        for (const char* key : { "nodes", "edges", "scores", "exactness", "trace_ms", "prune_ms" })
            QVERIFY2(summary.contains(key), key);
        QVERIFY(summary["exactness"]["max_rel_residual"].get<double>() <= 1e-5);
        const Json graph = readJson(json);
        QCOMPARE(static_cast<int64_t>(graph["nodes"].size()), summary["nodes"].get<int64_t>());
        QCOMPARE(static_cast<int64_t>(graph["links"].size()), summary["edges"].get<int64_t>());
        const Json& md = graph["metadata"];
        QCOMPARE(md["scores"]["replacement"].get<double>(), summary["scores"]["replacement"].get<double>());
        QVERIFY(md["scores"]["completeness"].get<double>() > 0);
        QVERIFY(md["exactness"].contains("max_abs_residual"));
        QCOMPARE(md["prompt"].get<std::string>(), text.toStdString());
        bool austin = false;
        for (const auto& node : graph["nodes"])
            austin = austin
                || (node["feature_type"] == "logit"
                    && node["clerp"].get<std::string>().find("Austin") != std::string::npos);
        QVERIFY(austin);

        Run pruned = cli({ "graph", "prune", full, "--json" });
        QVERIFY2(pruned.exitCode == 0, qPrintable(pruned.err));
        const Json p = Json::parse(pruned.out.toStdString());
        QCOMPARE(p["nodes"].get<int64_t>(), summary["nodes"].get<int64_t>());
        QCOMPARE(p["edges"].get<int64_t>(), summary["edges"].get<int64_t>());

        Run autograd = cli({ "--device", "cpu", "trace", "tinyworld", "--text", text, "--out",
            m_dir.filePath("dallas-autograd.json"), "--method", "autograd", "--json" });
        QVERIFY2(autograd.exitCode == 0, qPrintable(autograd.err));
        const Json a = Json::parse(autograd.out.toStdString());
        QCOMPARE(a["nodes"].get<int64_t>(), summary["nodes"].get<int64_t>());
        QCOMPARE(a["edges_total"].get<int64_t>(), summary["edges_total"].get<int64_t>());

        // circuit-tracer's ids and metadata: error nodes "0_{layer}_{pos}", jsNodeId
        // "{layer}_{pos}-0"; transcoder_list empty beside a named scan; generation_settings;
        // the scores of the whole graph and of the pruned one, named.
        int errors = 0;
        for (const auto& node : graph["nodes"])
            if (node["feature_type"] == "mlp reconstruction error") {
                const std::string layer = node["layer"].get<std::string>(),
                                  pos = std::to_string(node["ctx_idx"].get<int>());
                QCOMPARE(node["node_id"].get<std::string>(), "0_" + layer + "_" + pos);
                QCOMPARE(node["jsNodeId"].get<std::string>(), layer + "_" + pos + "-0");
                ++errors;
            }
        QVERIFY(errors > 0);
        if (!md["scan"].get<std::string>().empty())
            QVERIFY(md["transcoder_list"].empty());
        QCOMPARE(md["generation_settings"]["max_n_logits"].get<int64_t>(), int64_t(10));
        QCOMPARE(md["generation_settings"]["desired_logit_prob"].get<double>(), 0.95);
        QCOMPARE(md["generation_settings"]["max_feature_nodes"].get<int64_t>(), int64_t(-1));
        QCOMPARE(md["scores"]["full"]["replacement"].get<double>(), summary["scores"]["replacement"].get<double>());
        QCOMPARE(
            md["scores"]["pruned"]["replacement"].get<double>(), summary["pruned_scores"]["replacement"].get<double>());
        QVERIFY(
            md["scores"]["pruned"]["replacement"].get<double>() <= md["scores"]["full"]["replacement"].get<double>());
        QVERIFY(md["scores"]["full"].contains("corrected_completeness"));

        // A logit difference: its own node id and clerp, both tokens' probabilities.
        Run diff = cli({ "--device", "cpu", "trace", "tinyworld", "--text", text, "--out", m_dir.filePath("d.json"),
            "--logit-diff", " Austin| is", "--json" });
        QVERIFY2(diff.exitCode == 0, qPrintable(diff.err));
        const Json d = readJson(m_dir.filePath("d.json"));
        const Json& difference = d["metadata"]["logit_difference"];
        QCOMPARE(difference["token"].get<std::string>(), std::string(" Austin"));
        QCOMPARE(difference["contrast_token"].get<std::string>(), std::string(" is"));
        QVERIFY(difference["prob"].get<double>() > 0.5 && difference["contrast_prob"].get<double>() < 0.5);
        int logits = 0;
        for (const auto& node : d["nodes"])
            if (node["feature_type"] == "logit") {
                ++logits;
                const std::string id = node["node_id"].get<std::string>();
                QVERIFY2(id.find('_' + std::to_string(difference["token_id"].get<int64_t>()) + "vs"
                             + std::to_string(difference["contrast_token_id"].get<int64_t>()) + '_')
                        != std::string::npos,
                    id.c_str());
                const std::string clerp = node["clerp"].get<std::string>();
                QVERIFY2(clerp.find("\" Austin\" \u2212 \" is\"") != std::string::npos, clerp.c_str());
                QCOMPARE(node["token_prob"].get<double>(), difference["prob"].get<double>());
            }
        QCOMPARE(logits, 1);

        const std::vector<std::pair<QStringList, QString>> bad = {
            { { "--text", "" }, "empty" },
            { { "--text", QString(30000, QChar('x')) }, "more than the model's maximum" }, // over 4,096 tokens
            { { "--text", text, "--method", "magic" }, "--method" },
            { { "--text", text, "--logit-tokens", " Austin Texas" }, "not one" },
            { { "--text", text, "--transcoder", "no-such-set" }, "no transcoder set" },
            { { "--text", text, "--node-threshold", "2" }, "[0, 1]" },
        };
        for (const auto& [extra, phrase] : bad) {
            Run e = cli(
                QStringList { "--device", "cpu", "trace", "tinyworld", "--out", m_dir.filePath("x.json") } + extra);
            QCOMPARE(e.exitCode, 1);
            QVERIFY2(e.err.contains(phrase), qPrintable(e.err));
        }
    }

    // trace --memory-limit (issue 21): a trace whose estimated peak passes the limit is refused
    // before any row with the feature cap that fits, and that cap then traces under it; the
    // estimate is in the JSON; a size that is not one is refused naming the option.
    void traceMemoryLimit()
    {
        const QString text = "Fact: the capital of the state containing Dallas is";
        const QString json = m_dir.filePath("limited.json");
        Run full = cli({ "--device", "cpu", "trace", "tinyworld", "--text", text, "--out", json, "--json" });
        QVERIFY2(full.exitCode == 0, qPrintable(full.err));
        const int64_t estimate = Json::parse(full.out.toStdString())["memory_estimate_bytes"].get<int64_t>();
        QVERIFY(estimate > 0);
        const QString limit = QString::number(estimate / 2);
        Run refused = cli({ "--device", "cpu", "trace", "tinyworld", "--text", text, "--out", json, "--memory-limit",
            limit, "--json" });
        QCOMPARE(refused.exitCode, 1);
        const QRegularExpression cap("--max-feature-nodes (\\d+)");
        const auto match = cap.match(refused.err);
        QVERIFY2(match.hasMatch() && refused.err.contains("tracing "), qPrintable(refused.err));
        Run capped = cli({ "--device", "cpu", "trace", "tinyworld", "--text", text, "--out", json, "--memory-limit",
            limit, "--max-feature-nodes", match.captured(1), "--json" });
        QVERIFY2(capped.exitCode == 0, qPrintable(capped.err));
        QCOMPARE(Json::parse(capped.out.toStdString())["features"].get<int64_t>(), match.captured(1).toLongLong());
        QVERIFY(Json::parse(capped.out.toStdString())["memory_estimate_bytes"].get<int64_t>() <= estimate / 2);
        for (const char* bad : { "lots", "-5", "12Q", "0" }) {
            Run r = cli(
                { "--device", "cpu", "trace", "tinyworld", "--text", text, "--out", json, "--memory-limit", bad });
            QCOMPARE(r.exitCode, 1);
            QVERIFY2(r.err.contains("--memory-limit needs a size such as 4G"), qPrintable(r.err));
        }
        Run none = cli({ "--device", "cpu", "trace", "tinyworld", "--text", text, "--out", json, "--memory-limit",
            "none", "--json" });
        QVERIFY2(none.exitCode == 0, qPrintable(none.err));
    }

    // The numbers on "Fact: Michael Jordan plays the sport of": the pruned graph's scores can
    // only fall as pruning gets harsher (a lower edge threshold keeps a subset of the edges;
    // across node thresholds on this graph too) and stay below the whole graph's; named logit
    // targets weigh equally, so an unlikely one (" football") keeps a circuit.
    void prunedScoresAndNamedTargets()
    {
        const QString text = "Fact: Michael Jordan plays the sport of";
        const QString json = m_dir.filePath("jordan.json"), full = m_dir.filePath("jordan.csgraph");
        Run r
            = cli({ "--device", "cpu", "trace", "tinyworld", "--text", text, "--out", json, "--full", full, "--json" });
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const Json whole = r.json()["scores"];
        std::map<std::pair<double, double>, Json> table;
        const std::vector<double> nodeThresholds = { 1.0, 0.9, 0.8, 0.6, 0.4, 0.3 };
        const std::vector<double> edgeThresholds = { 1.0, 0.98, 0.9, 0.8 };
        for (double nt : nodeThresholds)
            for (double et : edgeThresholds) {
                Run p = cli({ "graph", "prune", full, "--node-threshold", QString::number(nt), "--edge-threshold",
                    QString::number(et), "--json" });
                QVERIFY2(p.exitCode == 0, qPrintable(p.err));
                table[{ nt, et }] = p.json()["pruned_scores"];
            }
        const auto notAbove = [](const Json& inner, const Json& outer) {
            for (const char* key : { "replacement", "completeness", "corrected_completeness" })
                if (inner[key].get<double>() > outer[key].get<double>() + 1e-7) // float32 influence vs float64 sums
                    return false;
            return true;
        };
        for (size_t a = 0; a < nodeThresholds.size(); ++a)
            for (size_t b = 0; b < edgeThresholds.size(); ++b) {
                const Json& here = table[{ nodeThresholds[a], edgeThresholds[b] }];
                QVERIFY2(notAbove(here, whole), here.dump().c_str());
                if (b > 0)
                    QVERIFY2(notAbove(here, table[{ nodeThresholds[a], edgeThresholds[b - 1] }]), here.dump().c_str());
                if (a > 0)
                    QVERIFY2(notAbove(here, table[{ nodeThresholds[a - 1], edgeThresholds[b] }]), here.dump().c_str());
            }
        // The harshest cut explains much less than the whole (main reported 1.0 / 1.0 here).
        const double harshest = table[std::make_pair(0.3, 0.8)]["replacement"].get<double>();
        QVERIFY(harshest < 0.9 * whole["replacement"].get<double>());

        const QString named = m_dir.filePath("jordan-named.json");
        Run t = cli({ "--device", "cpu", "trace", "tinyworld", "--text", text, "--out", named, "--logit-tokens",
            " basketball| football", "--json" });
        QVERIFY2(t.exitCode == 0, qPrintable(t.err));
        const Json doc = readJson(named);
        std::map<std::string, std::string> logitIds; // token -> node id
        for (const auto& node : doc["nodes"])
            if (node["feature_type"] == "logit")
                logitIds[node["clerp"].get<std::string>()] = node["node_id"].get<std::string>();
        QCOMPARE(logitIds.size(), size_t(2));
        for (const auto& [clerp, id] : logitIds) {
            int inputs = 0;
            for (const auto& link : doc["links"])
                inputs += link["target"].get<std::string>() == id;
            QVERIFY2(inputs > 0, qPrintable(QString::fromStdString(clerp + " has no incoming edges")));
        }
        for (const auto& node : doc["nodes"])
            if (node["feature_type"] == "logit")
                QCOMPARE(node["target_weight"].get<double>(), 0.5);
        Run w = cli({ "--device", "cpu", "trace", "tinyworld", "--text", text, "--out", named, "--logit-tokens",
            " basketball| football", "--logit-weights", "1", "--json" });
        QCOMPARE(w.exitCode, 1);
        QVERIFY2(w.err.contains("1 logit weights for 2"), qPrintable(w.err));
    }

    // intervene on tinyworld with its shipped CLT: the JSON contract's keys; before is the
    // model's own distribution, after and the logit deltas are the engine's intervention;
    // repeated and mixed edits; generation before is the model's greedy continuation.
    void intervene()
    {
        const std::string prompt = kDallas;
        const auto ctx = dallasContext();
        const auto& model = ctx.model;
        const auto ids = model->tokenizer().encode(prompt);
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
        for (const char* key : { "before", "after", "logit_delta", "demeaned_logit_delta", "generation" })
            QVERIFY2(j.contains(key), key);
        QCOMPARE(j["mode"].get<std::string>(), std::string("constrained"));
        QCOMPARE(j["generation_mode"].get<std::string>(), std::string("free")); // the continuation runs free
        QCOMPARE(j["direct_effects"].get<bool>(), true);
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
        QCOMPARE(j["demeaned_logit_delta"].size(), expected.demeanedLogitDelta.size());
        for (const auto& [id, d] : expected.demeanedLogitDelta)
            QVERIFY(std::abs(j["demeaned_logit_delta"][std::to_string(id)].get<double>() - d) < 1e-5);
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

    // intervene's circuit-tracer modes: --freeze-attention / --no-freeze-attention /
    // --constrained-layers A:B / --direct-effects select the patch regime with those options,
    // as the engine runs them; the JSON names them and says how the continuation ran.
    void interveneModes()
    {
        const std::string prompt = kDallas;
        const auto ctx = dallasContext();
        const auto& model = ctx.model;
        const auto ids = model->tokenizer().encode(prompt);
        const int64_t nLayers = model->config().nLayers;
        const QString text = QString::fromStdString(prompt);
        // The strongest layer-2 feature (a CLT's: it writes to layers 2..3), at its position.
        const at::Tensor layer2 = ctx.activations[2]; // [n_pos, n_features]
        const int64_t flat = layer2.argmax().item<int64_t>();
        const int64_t position = flat / layer2.size(1), feature = flat % layer2.size(1);
        QVERIFY(layer2[position][feature].item<float>() > 0);
        const QString edit = QStringLiteral("2:%1:%2=2").arg(position).arg(feature);
        const std::vector<cs::intervention::FeatureEdit> edits
            = { { 2, position, feature, cs::intervention::Op::Scale, 2.0 } };

        struct Case {
            QStringList flags;
            bool freezeAttention;
            std::optional<cs::intervention::LayerRange> range;
        };
        const std::vector<Case> cases = { { { "--freeze-attention" }, true, std::nullopt },
            { { "--mode", "patch" }, true, std::nullopt }, { { "--no-freeze-attention" }, false, std::nullopt },
            { { "--constrained-layers", "2:4" }, true, cs::intervention::LayerRange { 2, 4 } },
            { { "--constrained-layers", ":3" }, true, cs::intervention::LayerRange { 0, 3 } },
            { { "--direct-effects" }, true, cs::intervention::LayerRange { 0, nLayers } } };
        for (const Case& c : cases) {
            cs::intervention::InterventionOptions o;
            o.regime = cs::intervention::Regime::Patch;
            o.freezeAttention = c.freezeAttention;
            o.constrainedLayers = c.range;
            o.topK = 5;
            o.generate = 2;
            const auto expected = cs::intervention::intervene(ctx, edits, o);
            Run r = cli(QStringList { "--device", "cpu", "intervene", "tinyworld", "--text", text, "--scale", edit,
                            "--top-k", "5", "--generate", "2", "--json" }
                + c.flags);
            QVERIFY2(r.exitCode == 0, qPrintable(r.err));
            const Json j = r.json();
            QCOMPARE(j["mode"].get<std::string>(), std::string("patch"));
            QCOMPARE(j["freeze_attention"].get<bool>(), c.freezeAttention);
            if (c.range)
                QCOMPARE(j["constrained_layers"], Json({ c.range->first, c.range->end }));
            else
                QVERIFY(j["constrained_layers"].is_null());
            QCOMPARE(j["direct_effects"].get<bool>(), expected.directEffects);
            QCOMPARE(j["generation_mode"].get<std::string>(), std::string("patch"));
            QCOMPARE(j["generation"]["after"].get<std::string>(), expected.generationAfter);
            for (size_t i = 0; i < 5; ++i)
                QVERIFY(std::abs(j["after"]["top"][i]["logit"].get<double>() - expected.after[i].logit) < 1e-5);
            for (const auto& [id, d] : expected.demeanedLogitDelta)
                QVERIFY(std::abs(j["demeaned_logit_delta"][std::to_string(id)].get<double>() - d) < 1e-5);
        }
        QVERIFY(cli({ "--device", "cpu", "intervene", "tinyworld", "--text", text, "--scale", edit, "--direct-effects",
                        "--json" })
                    .json()["direct_effects"]
                    .get<bool>());

        // The readable table names the regime and shows both deltas.
        Run table = cli({ "--device", "cpu", "intervene", "tinyworld", "--text", text, "--scale", edit,
            "--constrained-layers", "1:3" });
        QVERIFY2(table.exitCode == 0, qPrintable(table.err));
        QVERIFY2(table.out.contains("layers 1:3 constrained") && table.out.contains("demeaned"), qPrintable(table.out));

        const std::vector<std::pair<QStringList, QString>> bad = {
            { { "--mode", "free", "--freeze-attention" }, "options of --mode patch" },
            { { "--constrained-layers", "0:2", "--mode", "constrained" }, "options of --mode patch" },
            { { "--freeze-attention", "--no-freeze-attention" }, "contradict" },
            { { "--constrained-layers", "3" }, "not of the form" },
            { { "--constrained-layers", "3:1" }, "nonempty range" },
            { { "--constrained-layers", "0:9" }, "nonempty range" },
            { { "--constrained-layers", "0:x" }, "not an integer" },
            { { "--no-freeze-attention", "--constrained-layers", "0:2" }, "freeze attention" },
            { { "--direct-effects", "--constrained-layers", "0:2" }, "give one of them" },
            { { "--constrained-layers", "0:2" }, "change nothing" }, // the feature writes to layers 2..3 (a CLT)
        };
        for (const auto& [extra, phrase] : bad) {
            Run e = cli(
                QStringList { "--device", "cpu", "intervene", "tinyworld", "--text", text, "--scale", edit } + extra);
            QCOMPARE(e.exitCode, 1);
            QVERIFY2(e.err.contains(phrase), qPrintable(extra.join(' ') + ": " + e.err));
        }
    }

    // validate: the JSON's keys; constrained predictions equal to the model's, r = 1; the points
    // are the engine's validateGraph on the same prompt; bad options refused.
    void validate()
    {
        const auto ctx = dallasContext();
        const auto traced = cs::attribution::trace(ctx);
        const auto expected = cs::validation::validateGraph(ctx, traced.graph, 8, -1.0);
        const QString text = QString::fromStdString(kDallas);
        Run r = cli(
            { "--device", "cpu", "validate", "tinyworld", "--text", text, "--top", "8", "--op", "scale:-1", "--json" });
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const Json j = r.json();
        for (const char* key : { "targets", "points", "correlation", "downstream", "downstream_correlation" })
            QVERIFY2(j.contains(key), key);
        QCOMPARE(j["targets"].size(), size_t(traced.graph.ranges().logits.size()));
        QCOMPARE(j["points"].size(), size_t(8));
        for (size_t i = 0; i < 8; ++i) {
            const Json& p = j["points"][i];
            QCOMPARE(p["node"].get<std::string>(), cs::graph::nodeId(traced.graph, expected.points[i].node));
            QVERIFY(std::abs(p["predicted"].get<double>() - p["actual_constrained"].get<double>()) < 1e-4);
            QVERIFY(std::abs(p["actual_free"].get<double>() - expected.points[i].actualFree) < 1e-4);
        }
        QVERIFY(std::abs(j["correlation"]["constrained"].get<double>() - 1) < 1e-6);
        QVERIFY(j["correlation"]["free"].is_number());
        Run table = cli({ "--device", "cpu", "validate", "tinyworld", "--text", text, "--top", "3" });
        QVERIFY2(
            table.exitCode == 0 && table.out.contains("correlation of predicted and actual"), qPrintable(table.out));
        const std::vector<std::pair<QStringList, QString>> bad = { { { "--op", "flip" }, "--op must be" },
            { { "--op", "scale:x" }, "--op must be" }, { { "--top", "0" }, "at least 1" } };
        for (const auto& [extra, phrase] : bad) {
            Run e = cli(QStringList { "--device", "cpu", "validate", "tinyworld", "--text", text } + extra);
            QCOMPARE(e.exitCode, 1);
            QVERIFY2(e.err.contains(phrase), qPrintable(extra.join(' ') + ": " + e.err));
        }
    }

    // weights: the JSON's keys; the partners the engine's virtualPartners gives; the token plots
    // against featureToLogits / embeddingToFeatures; by TWERA, the partners weights::partners
    // reads from the store shipped with tinyworld; bad requests refused.
    void weights()
    {
        const auto ctx = dallasContext();
        {
            const std::string storePath = cs::features::findStore(
                ctx.model->folder(), cs::transcoder::resolveTranscoderFolder(ctx.model->folder(), "clt"));
            QVERIFY(!storePath.empty());
            auto store = cs::features::FeatureStore::open(storePath);
            const auto want = cs::weights::partners(*ctx.model, *ctx.transcoders, store.get(), 3, 321,
                cs::weights::Direction::Up, cs::weights::Kind::Twera, 5);
            QCOMPARE(want.partners.size(), size_t(5));
            Run t = cli({ "--device", "cpu", "weights", "tinyworld", "--feature", "3:321", "--direction", "up",
                "--kind", "twera", "--top", "5", "--json" });
            QVERIFY2(t.exitCode == 0, qPrintable(t.err));
            const Json tj = t.json();
            QCOMPARE(tj["kind"].get<std::string>(), std::string("twera"));
            QCOMPARE(tj["coactivating"].get<int64_t>(), want.coactivating);
            for (size_t i = 0; i < want.partners.size(); ++i) {
                const Json& p = tj["partners"][i];
                for (const char* key : { "layer", "feature", "weight", "virtual", "era", "twera", "coactivations" })
                    QVERIFY2(p.contains(key), key);
                QCOMPARE(p["layer"].get<int64_t>(), want.partners[i].layer);
                QCOMPARE(p["feature"].get<int64_t>(), want.partners[i].feature);
                QCOMPARE(p["coactivations"].get<int64_t>(), want.partners[i].coactivations);
                QVERIFY(std::abs(p["twera"].get<double>() - want.partners[i].twera) < 1e-6);
                QCOMPARE(p["weight"].get<double>(), p["twera"].get<double>());
                QVERIFY(p["coactivations"].get<int64_t>() > 0);
            }
        }
        const auto expected
            = cs::weights::virtualPartners(*ctx.model, *ctx.transcoders, 3, 321, cs::weights::Direction::Up, 6);
        Run r = cli({ "--device", "cpu", "weights", "tinyworld", "--feature", "3:321", "--direction", "up", "--top",
            "6", "--tokens", " Austin| Texas", "--json" });
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const Json j = r.json();
        for (const char* key : { "feature", "kind", "partners", "tokens" })
            QVERIFY2(j.contains(key), key);
        QCOMPARE(j["partners"].size(), expected.size());
        for (size_t i = 0; i < expected.size(); ++i) {
            QCOMPARE(j["partners"][i]["layer"].get<int64_t>(), expected[i].layer);
            QCOMPARE(j["partners"][i]["feature"].get<int64_t>(), expected[i].feature);
            QVERIFY(std::abs(j["partners"][i]["virtual"].get<double>() - expected[i].virtualWeight) < 1e-5);
        }
        const at::Tensor out = cs::weights::featureToLogits(*ctx.model, *ctx.transcoders, 3);
        const int64_t austin = ctx.model->tokenizer().encode(" Austin", false).at(0);
        QVERIFY(std::abs(j["tokens"][0]["output"].get<double>() - out[321][austin].item<double>()) < 1e-4);
        const std::vector<std::pair<QStringList, QString>> bad
            = { { { "--store", "/nonexistent/features.db" }, "no such feature store" },
                  { { "--kind", "x" }, "--kind must be" }, { { "--direction", "left" }, "--direction must be" },
                  { { "--tokens", " Dallas" }, "not one" } };
        for (const auto& [extra, phrase] : bad) {
            Run e = cli(QStringList { "--device", "cpu", "weights", "tinyworld", "--feature", "3:321" } + extra);
            QCOMPARE(e.exitCode, 1);
            QVERIFY2(e.err.contains(phrase), qPrintable(extra.join(' ') + ": " + e.err));
        }
        Run noFeature = cli({ "--device", "cpu", "weights", "tinyworld" });
        QVERIFY(noFeature.exitCode == 1 && noFeature.err.contains("--feature"));
    }

    // sweep: the grids of --feature and the ranked features equal the engine's sweep; --out writes
    // sweep.json (what --json prints) and a heat map per grid, whose pixels follow the grid (the
    // largest cell at viridis' top colour, a zero cell at its bottom one).
    void sweep()
    {
        const auto ctx = dallasContext();
        cs::sweep::SweepOptions o;
        o.templateText = "calc: {a}+{b}=";
        for (int64_t v = 0; v < 12; ++v)
            o.a.push_back(v);
        o.b = { 3, 9, 14, 59 };
        const auto want = cs::sweep::sweep(*ctx.model, *ctx.transcoders, o);
        const QString dir = m_dir.filePath("sweep-out");
        Run r = cli({ "--device", "cpu", "sweep", "tinyworld", "--template", "calc: {a}+{b}=", "--a", "0..11", "--b",
            "3,9,14,59", "--feature", "0:241", "--rank", "--top", "2", "--out", dir, "--json" });
        QVERIFY2(r.exitCode == 0, qPrintable(r.err));
        const Json j = r.json();
        QFile saved(dir + "/sweep.json");
        QVERIFY(saved.open(QIODevice::ReadOnly));
        QCOMPARE(Json::parse(saved.readAll().toStdString()), j);
        QCOMPARE(j["ranked"].size(), size_t(2));
        QCOMPARE(j["features"].size(), size_t(3)); // 0:241 and the two ranked (if 0:241 is not one of them)
        for (const Json& f : j["features"]) {
            const int64_t layer = f["layer"], feature = f["feature"];
            const at::Tensor g = want.activations[size_t(layer)].select(2, feature);
            QCOMPARE(f["grid"].size(), size_t(12));
            double maxValue = 0;
            int64_t maxRow = 0, maxCol = 0, zeroRow = -1, zeroCol = -1;
            for (int64_t i = 0; i < 12; ++i)
                for (int64_t k = 0; k < 4; ++k) {
                    const double v = f["grid"][size_t(i)][size_t(k)].get<double>();
                    QVERIFY(std::abs(v - g[i][k].item<double>()) < 1e-5);
                    if (v > maxValue) {
                        maxValue = v;
                        maxRow = i;
                        maxCol = k;
                    }
                    if (v == 0 && zeroRow < 0) {
                        zeroRow = i;
                        zeroCol = k;
                    }
                }
            // The image: 4 px a cell, rows a, columns b.
            QFile file(dir + "/" + QString::fromStdString(f["image"].get<std::string>()));
            QVERIFY(file.open(QIODevice::ReadOnly));
            const QByteArray bytes = file.readAll();
            png_image image {};
            image.version = PNG_IMAGE_VERSION;
            QVERIFY(png_image_begin_read_from_memory(&image, bytes.constData(), size_t(bytes.size())));
            image.format = PNG_FORMAT_RGB;
            QCOMPARE(int(image.width), 4 * 4);
            QCOMPARE(int(image.height), 12 * 4);
            std::vector<uint8_t> pixels(PNG_IMAGE_SIZE(image));
            QVERIFY(png_image_finish_read(&image, nullptr, pixels.data(), 0, nullptr));
            const auto pixel = [&](int64_t row, int64_t col) { // a cell's centre
                const size_t at = size_t(((row * 4 + 2) * 16 + col * 4 + 2) * 3);
                return std::array<int, 3> { pixels[at], pixels[at + 1], pixels[at + 2] };
            };
            if (maxValue > 0)
                QVERIFY((pixel(maxRow, maxCol) == std::array<int, 3> { 253, 231, 37 }));
            if (zeroRow >= 0)
                QVERIFY((pixel(zeroRow, zeroCol) == std::array<int, 3> { 68, 1, 84 }));
        }
    }

    // organism tasks: paired items whose prompts have the same token count and whose answers
    // differ; neurons curve on a few of them: the JSON's keys, F = 0 for the empty circuit and 1
    // for the whole model, the curve equal to the engine's.
    void neuronTasksAndCurve()
    {
        const QString dir = m_dir.filePath("tasks");
        Run t = cli({ "organism", "tasks", "tinyworld", "--out", dir, "--items", "6", "--json" });
        QVERIFY2(t.exitCode == 0, qPrintable(t.err));
        const auto model = cs::model::Model::load(cs::resolveModelFolder(cs::kDefaultModel), { "cpu", true });
        for (const char* task : { "agreement", "two_hop", "sports", "addition" }) {
            QCOMPARE(t.json()[task]["items"].get<int64_t>(), int64_t(6));
            for (const auto& item : cs::neurons::readTask((dir + "/" + task + ".jsonl").toStdString())) {
                QCOMPARE(model->tokenizer().encode(item.prompt).size(),
                    model->tokenizer().encode(item.counterfactual).size());
                QVERIFY(model->tokenizer().encode(item.answer, false).front()
                    != model->tokenizer().encode(item.counterfactualAnswer, false).front());
            }
        }
        const QString task = dir + "/two_hop.jsonl";
        Run c = cli(
            { "--device", "cpu", "neurons", "curve", "tinyworld", "--task", task, "--ks", "0,30,1000000", "--json" });
        QVERIFY2(c.exitCode == 0, qPrintable(c.err));
        const Json j = c.json();
        QCOMPARE(j["method"].get<std::string>(), std::string("relp"));
        QCOMPARE(j["node_kind"].get<std::string>(), std::string("neurons"));
        QCOMPARE(j["points"].size(), size_t(3));
        QVERIFY(std::abs(j["points"][0]["faithfulness"].get<double>()) < 1e-5);
        QVERIFY(std::abs(j["points"][2]["faithfulness"].get<double>() - 1) < 1e-5);
        cs::neurons::CurveOptions o;
        o.ks = { 0, 30, 1000000 };
        const auto want = cs::neurons::evaluateCircuits(*model, cs::neurons::readTask(task.toStdString()), o);
        QVERIFY(std::abs(j["points"][1]["faithfulness"].get<double>() - want.points[1].faithfulness) < 1e-6);
        QVERIFY(std::abs(j["points"][1]["completeness"].get<double>() - want.points[1].completeness) < 1e-6);
        for (const auto& [extra, phrase] :
            std::vector<std::pair<QStringList, QString>> { { { "--transcoder", "clt" }, "--node-kind features" },
                { { "--method", "lrp" }, "relp or ig" }, { { "--ks", "10,x" }, "non-negative integers" } }) {
            Run e = cli(QStringList { "--device", "cpu", "neurons", "curve", "tinyworld", "--task", task } + extra);
            QCOMPARE(e.exitCode, 1);
            QVERIFY2(e.err.contains(phrase), qPrintable(e.err));
        }
        // Transcoder features as the nodes: the full circuit is the model, the empty one 0.
        Run fc = cli({ "--device", "cpu", "neurons", "curve", "tinyworld", "--task", task, "--node-kind", "features",
            "--ks", "0,40,100000000", "--json" });
        QVERIFY2(fc.exitCode == 0, qPrintable(fc.err));
        QCOMPARE(fc.json()["node_kind"].get<std::string>(), std::string("features"));
        QVERIFY(std::abs(fc.json()["points"][0]["faithfulness"].get<double>()) < 1e-5);
        QVERIFY(std::abs(fc.json()["points"][2]["faithfulness"].get<double>() - 1) < 1e-3);
        QVERIFY(std::abs(fc.json()["points"][2]["completeness"].get<double>()) < 1e-3);
        Run noTask = cli({ "--device", "cpu", "neurons", "curve", "tinyworld" });
        QVERIFY(noTask.exitCode == 1 && noTask.err.contains("--task"));

        // neurons trace on a paired item: the graph JSON of neuron nodes, its .csgraph equal to
        // the engine's trace run here, rows that sum to their quantities.
        const cs::neurons::TaskItem item = cs::neurons::readTask(task.toStdString()).front();
        const QString graphJson = m_dir.filePath("neurons.json"), full = m_dir.filePath("neurons.csgraph");
        Run n = cli({ "--device", "cpu", "neurons", "trace", "tinyworld", "--text", QString::fromStdString(item.prompt),
            "--counterfactual", QString::fromStdString(item.counterfactual), "--answer",
            QString::fromStdString(item.answer), "--counterfactual-answer",
            QString::fromStdString(item.counterfactualAnswer), "--max-nodes", "150", "--out", graphJson, "--full", full,
            "--json" });
        QVERIFY2(n.exitCode == 0, qPrintable(n.err));
        const Json nj = n.json();
        QCOMPARE(nj["node_kind"].get<std::string>(), std::string("neurons"));
        QCOMPARE(nj["units"].get<int64_t>(), int64_t(150));
        QVERIFY(nj["exactness"]["max_rel_residual"].get<double>() < 1e-4);
        const Json doc = readJson(graphJson);
        QCOMPARE(doc["metadata"]["basis"].get<std::string>(), std::string("neurons"));
        int neuronNodes = 0;
        for (const auto& node : doc["nodes"])
            neuronNodes += node["feature_type"] == "mlp neuron";
        QVERIFY(neuronNodes > 0 && neuronNodes <= 150);
        cs::neurons::TraceOptions o2;
        o2.maxNodes = 150;
        o2.attribution.baselineIds = model->tokenizer().encode(item.counterfactual);
        const auto& tok = model->tokenizer();
        const auto traced = cs::neurons::trace(*model, tok.encode(item.prompt),
            { tok.encode(item.answer, false).front(), tok.encode(item.counterfactualAnswer, false).front() }, o2);
        const cs::graph::Graph got = cs::graph::readGraphFile(full.toStdString());
        QCOMPARE(got.size(), traced.graph.size());
        for (int64_t i = 0; i < got.size(); ++i)
            QVERIFY(got.nodes[i].layer == traced.graph.nodes[i].layer
                && got.nodes[i].feature == traced.graph.nodes[i].feature
                && got.nodes[i].position == traced.graph.nodes[i].position);
        QVERIFY((got.adjacency.dense() - traced.graph.adjacency.dense()).abs().max().item<double>() < 1e-5);
        Run info = cli({ "graph", "info", full, "--json" });
        QVERIFY2(info.exitCode == 0, qPrintable(info.err));
        QCOMPARE(info.json()["basis"].get<std::string>(), std::string("neurons"));
        // --node-kind features is the transcoder trace of the same prompt and target.
        Run f = cli({ "--device", "cpu", "neurons", "trace", "tinyworld", "--text", QString::fromStdString(item.prompt),
            "--target", QString::fromStdString(item.answer), "--node-kind", "features", "--out",
            m_dir.filePath("features.json"), "--json" });
        QVERIFY2(f.exitCode == 0, qPrintable(f.err));
        QVERIFY(readJson(m_dir.filePath("features.json")).dump().find("cross layer transcoder") != std::string::npos);
        for (const auto& [extra, phrase] :
            std::vector<std::pair<QStringList, QString>> { { { "--counterfactual", "x" }, "--counterfactual-answer" },
                { { "--target", " A", "--answer", " B" }, "not both" }, { { "--batch-size", "0" }, "at least 1" } }) {
            Run e = cli(QStringList { "--device", "cpu", "neurons", "trace", "tinyworld", "--text",
                            "calc: 1+2=", "--out", m_dir.filePath("bad.json") }
                + extra);
            QCOMPARE(e.exitCode, 1);
            QVERIFY2(e.err.contains(phrase), qPrintable(e.err));
        }
    }

    // graph export / prune / import / info on a graph file written here: the counts and
    // scores against the engine's Pruner run in the test, the files written, the JSON keys.
    void graphCommands()
    {
        const cs::graph::Graph g = smallGraph();
        const QString full = m_dir.filePath("g.csgraph");
        cs::graph::writeGraphFile(full.toStdString(), g);
        const cs::graph::Pruner pruner(g);
        const cs::graph::PruneResult pruned = pruner.prune(0.5, 0.9);
        const int64_t keptNodes = std::count(pruned.nodeMask.begin(), pruned.nodeMask.end(), true);
        const int64_t keptEdges = pruned.edgeCount();
        const int64_t allEdges = g.adjacency.nnz();
        QVERIFY(keptNodes < g.size() && keptEdges < allEdges); // the thresholds prune something

        // export: the graph JSON of what the Pruner keeps, with the thresholds in its metadata.
        const QString exported = m_dir.filePath("pruned.json");
        Run e
            = cli({ "graph", "export", full, "--out", exported, "--node-threshold", "0.5", "--edge-threshold", "0.9" });
        QVERIFY2(e.exitCode == 0, qPrintable(e.err));
        const Json doc = readJson(exported);
        QCOMPARE(int64_t(doc["nodes"].size()), keptNodes);
        QCOMPARE(int64_t(doc["links"].size()), keptEdges);
        QCOMPARE(doc["metadata"]["pruning_settings"]["node_threshold"].get<double>(), 0.5);
        QCOMPARE(doc["metadata"]["pruning_settings"]["edge_threshold"].get<double>(), 0.9);
        QCOMPARE(doc["metadata"]["slug"].get<std::string>(), std::string("cli-graph"));
        const QString everything = m_dir.filePath("all.json");
        Run a = cli({ "graph", "export", full, "--out", everything, "--all" });
        QVERIFY2(a.exitCode == 0, qPrintable(a.err));
        QCOMPARE(int64_t(readJson(everything)["links"].size()), allEdges);

        // prune --json: counts, the scores of the graph and of the pruned subgraph.
        Run p = cli({ "graph", "prune", full, "--node-threshold", "0.5", "--edge-threshold", "0.9", "--json" });
        QVERIFY2(p.exitCode == 0, qPrintable(p.err));
        const Json j = p.json();
        for (const char* key : { "nodes", "edges", "nodes_total", "edges_total", "nodes_by_kind", "scores",
                 "pruned_scores", "neuronpedia_subgraph_scores", "prune_ms" })
            QVERIFY2(j.contains(key), key);
        QCOMPARE(j["nodes"].get<int64_t>(), keptNodes);
        QCOMPARE(j["edges"].get<int64_t>(), keptEdges);
        QCOMPARE(j["nodes_total"].get<int64_t>(), g.size());
        QCOMPARE(j["edges_total"].get<int64_t>(), allEdges);
        QCOMPARE(j["nodes_by_kind"]["embedding"]["kept"].get<int64_t>(), int64_t(4));
        QCOMPARE(j["nodes_by_kind"]["logit"]["total"].get<int64_t>(), int64_t(2));
        QCOMPARE(j["scores"]["replacement"].get<double>(), pruner.scores().replacement);
        QCOMPARE(j["scores"]["completeness"].get<double>(), pruner.scores().completeness);
        std::vector<bool> pinned(pruned.nodeMask.size());
        for (size_t i = 0; i < pinned.size(); ++i)
            pinned[i] = pruned.nodeMask[i] && g.nodes[i].kind == cs::graph::NodeKind::Feature;
        const cs::graph::Scores sub = pruner.scoresOf(pruned);
        QCOMPARE(j["pruned_scores"]["replacement"].get<double>(), sub.replacement);
        QCOMPARE(j["pruned_scores"]["completeness"].get<double>(), sub.completeness);
        QCOMPARE(j["pruned_scores"]["corrected_completeness"].get<double>(), sub.correctedCompleteness);
        QCOMPARE(j["scores"]["corrected_completeness"].get<double>(), pruner.scores().correctedCompleteness);
        const cs::graph::Scores neuronpedia = cs::graph::neuronpediaSubgraphScores(g, pinned, &pruned);
        QCOMPARE(j["neuronpedia_subgraph_scores"]["replacement"].get<double>(), neuronpedia.replacement);
        // The exported file names both: the whole graph's and the pruned graph's.
        QCOMPARE(doc["metadata"]["scores"]["full"]["replacement"].get<double>(), pruner.scores().replacement);
        QCOMPARE(doc["metadata"]["scores"]["pruned"]["replacement"].get<double>(),
            pruner.scoresOf(pruner.prune(0.5, 0.9)).replacement);
        QVERIFY(j["prune_ms"].get<double>() >= 0);
        Run text = cli({ "graph", "prune", full });
        QVERIFY2(text.exitCode == 0 && text.out.contains("edges kept:"), qPrintable(text.out + text.err));

        // prune of a graph JSON: within the links it holds.
        Run pj = cli({ "graph", "prune", exported, "--node-threshold", "1", "--edge-threshold", "1", "--json" });
        QVERIFY2(pj.exitCode == 0, qPrintable(pj.err));
        QCOMPARE(pj.json()["nodes_total"].get<int64_t>(), keptNodes);
        QCOMPARE(pj.json()["edges_total"].get<int64_t>(), keptEdges);

        // import: read back, written again with every node and link.
        const QString imported = m_dir.filePath("imported.json");
        Run i = cli({ "graph", "import", exported, "--out", imported, "--json" });
        QVERIFY2(i.exitCode == 0, qPrintable(i.err));
        QCOMPARE(i.json()["nodes"].get<int64_t>(), keptNodes);
        QCOMPARE(i.json()["edges"].get<int64_t>(), keptEdges);
        const Json again = readJson(imported);
        QCOMPARE(again["links"], doc["links"]);
        QCOMPARE(again["nodes"].size(), doc["nodes"].size());
        // ... or as a graph file.
        const QString importedFile = m_dir.filePath("imported.csgraph");
        QCOMPARE(cli({ "graph", "import", exported, "--out", importedFile }).exitCode, 0);
        QVERIFY(cs::graph::isGraphFile(importedFile.toStdString()));
        QCOMPARE(cs::graph::readGraphFile(importedFile.toStdString()).size(), keptNodes);

        // info, of either kind of file.
        Run info = cli({ "graph", "info", full, "--json" });
        QVERIFY2(info.exitCode == 0, qPrintable(info.err));
        const Json s = info.json();
        QCOMPARE(s["format"].get<std::string>(), std::string("graph file"));
        QCOMPARE(s["prompt"].get<std::string>(), g.metadata.prompt);
        QCOMPARE(s["nodes"].get<int64_t>(), g.size());
        QCOMPARE(s["nodes_by_kind"]["feature"].get<int64_t>(), int64_t(24));
        QCOMPARE(s["nodes_by_kind"]["error"].get<int64_t>(), int64_t(12));
        QCOMPARE(s["edges"].get<int64_t>(), allEdges);
        QCOMPARE(s["scores"]["replacement"].get<double>(), pruner.scores().replacement);
        QCOMPARE(s["n_layers"].get<int64_t>(), int64_t(3));
        QCOMPARE(s["logits"].size(), size_t(2));
        Run infoJson = cli({ "graph", "info", exported, "--json" });
        QVERIFY2(infoJson.exitCode == 0, qPrintable(infoJson.err));
        QCOMPARE(infoJson.json()["format"].get<std::string>(), std::string("graph JSON"));
        Run infoText = cli({ "graph", "info", full });
        QVERIFY2(infoText.exitCode == 0 && infoText.out.contains("completeness"), qPrintable(infoText.out));

        // Errors: a message and exit code 1.
        const QString garbage = m_dir.filePath("garbage.bin");
        cs::test::writeTextFile(garbage, std::string("\x01\x02not a graph", 13));
        const QString truncated = m_dir.filePath("truncated.csgraph");
        QVERIFY(QFile::copy(full, truncated));
        QVERIFY(QFile::resize(truncated, 100));
        const QList<QPair<QStringList, QString>> refusals = {
            { { "graph", "prune", full, "--node-threshold", "1.5" }, "--node-threshold must be between 0 and 1" },
            { { "graph", "export", full, "--out", exported, "--edge-threshold", "-0.1" },
                "--edge-threshold must be between 0 and 1" },
            { { "graph", "export", full }, "graph export needs --out" },
            { { "graph", "export", full, "--out", exported, "--all", "--node-threshold", "0.5" },
                "give it no thresholds" },
            { { "graph", "info", m_dir.filePath("no-such.csgraph") }, "no such file" },
            { { "graph", "info", garbage }, "is not valid JSON" },
            { { "graph", "info", truncated }, "truncated file?" },
            { { "graph", "export", exported, "--out", m_dir.filePath("no-such-folder/x.json") }, "cannot write" },
            { { "graph", "import", exported }, "graph import needs --out" },
            { { "graph", "info" }, "graph info needs a graph" },
            { { "graph", "fly" }, "graph needs a subcommand" },
        };
        for (const auto& [args, phrase] : refusals) {
            Run r = cli(args);
            QCOMPARE(r.exitCode, 1);
            QVERIFY2(r.err.contains(phrase), qPrintable(args.join(' ') + ": " + r.err));
        }
    }

    // graph import refuses what graph export would (issue 23): it wrote graphs it then refused;
    // a number beyond a double was "internal error: number overflow" without the file.
    void graphImportChecksWhatExportDoes()
    {
        const cs::graph::Graph g = smallGraph();
        const QString good = m_dir.filePath("import-good.json");
        cs::graph::writeJsonFile(good.toStdString(), g, cs::graph::keepAll(g));
        QFile goodFile(good);
        QVERIFY(goodFile.open(QIODevice::ReadOnly));
        const Json doc = Json::parse(goodFile.readAll().toStdString());
        const auto write = [&](const QString& name, const std::string& text) {
            const QString path = m_dir.filePath(name);
            cs::test::writeTextFile(path, text);
            return path;
        };
        Json far = doc;
        for (Json& node : far["nodes"])
            if (node["feature_type"] == "embedding") {
                node["ctx_idx"] = 999;
                break;
            }
        Json loop = doc;
        loop["links"].push_back({ { "source", loop["nodes"][0]["node_id"] }, { "target", loop["nodes"][0]["node_id"] },
            { "weight", 1.0 } });
        std::string overflow = doc.dump();
        const size_t weight = overflow.find("\"weight\":");
        QVERIFY(weight != std::string::npos);
        overflow.insert(weight + 9, "1e400,\"w\":");
        const std::vector<std::pair<QString, QString>> cases = {
            { write("import-far.json", far.dump()), "is at position 999, outside the prompt's" },
            { write("import-loop.json", loop.dump()), "a self-loop on node" },
            { write("import-overflow.json", overflow), "a number too large for a double at line 1" },
        };
        for (const auto& [path, phrase] : cases) {
            const QString out = path + ".csgraph";
            Run r = cli({ "graph", "import", path, "--out", out });
            QCOMPARE(r.exitCode, 1);
            QVERIFY2(
                r.err.contains(path) && r.err.contains(phrase) && !r.err.contains("internal error"), qPrintable(r.err));
            QVERIFY(!QFileInfo::exists(out));
        }
        QCOMPARE(cli({ "graph", "import", good, "--out", good + ".csgraph" }).exitCode, 0);
    }

    // A store that carries SQL of its own (issue 24: `features label` fired its trigger and every
    // feature row was gone, exit 0): refused with a message, the trigger never fires, the rows and
    // labels are as they were.
    void plantedStoreSqlNeverRuns()
    {
        const QString db = m_dir.filePath("planted.db");
        cs::features::StoreInfo info;
        info.model = "tiny";
        info.scan = "clt";
        info.nLayers = 2;
        info.nFeatures = 8;
        info.contextLength = 6;
        info.tokens = 600;
        info.complete = true;
        std::vector<cs::features::FeatureRecord> records;
        for (int64_t feature : { 1, 3, 5 }) {
            cs::features::FeatureRecord r;
            r.layer = 1;
            r.feature = feature;
            r.tokens = 600;
            r.activeTokens = 30;
            r.actMax = 2.5f;
            records.push_back(r);
        }
        cs::features::FeatureStore::create(db.toStdString(), info)->writeRecords(records, info);
        const auto count = [&](const char* query) {
            sqlite3* raw = nullptr;
            sqlite3_open_v2(db.toUtf8().constData(), &raw, SQLITE_OPEN_READONLY, nullptr);
            sqlite3_stmt* s = nullptr;
            int64_t n = -1;
            if (sqlite3_prepare_v2(raw, query, -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
                n = sqlite3_column_int64(s, 0);
            sqlite3_finalize(s);
            sqlite3_close(raw);
            return n;
        };
        {
            sqlite3* raw = nullptr;
            QCOMPARE(sqlite3_open_v2(db.toUtf8().constData(), &raw, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
            const int rc = sqlite3_exec(raw, "CREATE TRIGGER t AFTER INSERT ON labels BEGIN DELETE FROM features; END",
                nullptr, nullptr, nullptr);
            sqlite3_close(raw);
            QCOMPARE(rc, SQLITE_OK);
        }
        QCOMPARE(count("SELECT count(*) FROM features"), int64_t(3));

        Run l = cli({ "features", "label", db, "1:5", "--label", "hello" });
        QCOMPARE(l.exitCode, 1);
        QVERIFY2(l.err.contains(db
                     + " is not a usable feature store: it holds a trigger \"t\" that Circuitscope does "
                       "not create"),
            qPrintable(l.err));
        QCOMPARE(count("SELECT count(*) FROM features"), int64_t(3)); // the trigger never fired
        QCOMPARE(count("SELECT count(*) FROM labels"), int64_t(0)); // nothing was written
        QCOMPARE(cli({ "features", "show", db, "1:5" }).exitCode, 1); // nor is it read
    }

    // `features label` on a store the user cannot write, or in a folder they cannot write, exited
    // 0 and the label was lost (issue 21): it is an error naming the store, and nothing changes.
    // root ignores permissions, so there the file or folder is made immutable (FS_IMMUTABLE_FL)
    // instead, which binds root too.
    void labelOnAReadOnlyStore()
    {
        const bool root = ::geteuid() == 0;
        const auto lock = [&](const QString& path, bool on) {
            if (!root) {
                const QFileInfo info(path);
                return QFile::setPermissions(path,
                    on ? (info.isDir() ? QFile::ReadOwner | QFile::ExeOwner : QFile::ReadOwner)
                       : QFile::ReadOwner | QFile::WriteOwner | QFile::ExeOwner);
            }
            const int fd = ::open(QFile::encodeName(path).constData(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
            int flags = 0;
            bool done = fd >= 0 && ::ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0;
            flags = on ? flags | FS_IMMUTABLE_FL : flags & ~FS_IMMUTABLE_FL;
            done = done && ::ioctl(fd, FS_IOC_SETFLAGS, &flags) == 0;
            if (fd >= 0)
                ::close(fd);
            return done;
        };
        cs::features::StoreInfo info;
        info.model = "tiny";
        info.scan = "clt";
        info.nLayers = 2;
        info.nFeatures = 8;
        info.contextLength = 6;
        info.tokens = 600;
        for (const bool lockFolder : { false, true }) {
            const QString folder = m_dir.filePath(lockFolder ? "locked-folder" : "locked-file");
            QVERIFY(QDir().mkpath(folder));
            const QString db = folder + "/store.db";
            cs::features::FeatureStore::create(db.toStdString(), info)->setLabel(1, 5, "before");
            if (!lock(lockFolder ? folder : db, true))
                QSKIP("cannot make a file read-only here (root, and no FS_IMMUTABLE_FL on this file system)");
            const Run l = cli({ "features", "label", db, "1:5", "--label", "after" });
            QVERIFY(lock(lockFolder ? folder : db, false));
            QCOMPARE(l.exitCode, 1);
            const QString expected = lockFolder ? "cannot write " + db + ": its folder " + folder + " is read-only"
                                                : "cannot write " + db + ": the file is read-only";
            QVERIFY2(l.err.contains(expected), qPrintable(l.err));
            const auto labels = cs::features::FeatureStore::open(db.toStdString())->search("", -1);
            QCOMPARE(labels.size(), size_t(1));
            QCOMPARE(labels[0].label, std::string("before"));
        }
    }

    void features()
    {
        // A small store written with the engine API: three features, a vocabulary with a
        // partial UTF-8 token, one label.
        const QString db = m_dir.filePath("features.db");
        cs::features::StoreInfo info;
        info.model = "tiny";
        info.scan = "clt";
        info.nLayers = 2;
        info.nFeatures = 8;
        info.contextLength = 6;
        info.tokens = 600;
        info.complete = true;
        // " on" holds an ESC sequence (a colour change), which text output escapes (issue 23).
        const std::vector<std::string> vocab
            = { "<bos>", " the", " cat", " sat", "\n", " \x1b[31mon", " mat", "\xE2\x82" };
        std::vector<cs::features::FeatureRecord> records;
        for (auto [layer, feature] : { std::pair<int64_t, int64_t> { 0, 1 }, { 0, 5 }, { 1, 3 } }) {
            cs::features::FeatureRecord r;
            r.layer = layer;
            r.feature = feature;
            r.tokens = 600;
            r.activeTokens = 30 + feature;
            r.actMax = 2.5f + static_cast<float>(feature);
            r.actMin = 0.125f;
            r.actSum = 20.0;
            r.quantileLevels = { 0.5, 0.9 };
            r.quantileValues = { 1.0f, 2.0f };
            r.histogramEdges = { 0.0f, 1.0f, 2.0f, r.actMax };
            r.histogramCounts = { 20, 7, 3 };
            for (int k = 0; k < 2; ++k) {
                cs::features::Example e;
                e.context = 10 * k + feature;
                e.tokens = { 0, 1, 2, 3, 5 + k, 7 };
                e.activations = { 0.0f, 0.0f, r.actMax - static_cast<float>(k), 0.5f, 0.0f, 0.0f };
                e.position = 2;
                e.activation = e.activations[2];
                r.top.push_back(e);
            }
            r.quantiles.push_back({ "Subsample Interval 0", { r.top[1] } });
            r.topLogits = { { 3, " sat", 1.5f }, { 6, " mat", 0.5f } };
            r.bottomLogits = { { 4, "\n", -1.0f } };
            r.topInputs = { { 2, " cat", 0.75f } };
            records.push_back(r);
        }
        {
            auto store = cs::features::FeatureStore::create(db.toStdString(), info);
            store->writeVocabulary(vocab);
            store->writeRecords(records, info);
            store->setLabel(0, 5, "Cat detector");
        }

        // show --json: the engine's circuit-tracer JSON of the card, plus notes.
        Run s = cli({ "features", "show", db, "0:5", "--json" });
        QVERIFY2(s.exitCode == 0, qPrintable(s.err));
        Json shown = s.json();
        QCOMPARE(shown["notes"].get<std::string>(), std::string());
        shown.erase("notes");
        const auto reader = cs::features::FeatureStore::open(db.toStdString());
        QCOMPARE(shown, cs::features::circuitTracerJson(reader->card(0, 5), vocab));
        QCOMPARE(shown["label"].get<std::string>(), std::string("Cat detector"));
        QCOMPARE(shown["index"].get<int64_t>(), int64_t(5));
        QCOMPARE(shown["examples_quantiles"][0]["quantile_name"].get<std::string>(), std::string("Top activations"));
        QCOMPARE(shown["examples_quantiles"][0]["examples"][0]["tokens"][2].get<std::string>(), std::string(" cat"));
        QCOMPARE(shown["examples_quantiles"][0]["examples"][0]["tokens"][5].get<std::string>(),
            std::string("\uFFFD\uFFFD")); // one per invalid byte
        QCOMPARE(shown["examples_quantiles"][0]["examples"][0]["train_token_ind"].get<int64_t>(), int64_t(2));
        QCOMPARE(shown["examples_quantiles"][0]["examples"][0]["tokens_acts_list"][2].get<float>(), 7.5f);
        QCOMPARE(shown["activation_frequency"].get<double>(), 35.0 / 600.0);
        QCOMPARE(shown["top_logits"], Json({ " sat", " mat" }));
        // ... and as text.
        Run text = cli({ "features", "show", db, "0:5" });
        QVERIFY2(text.exitCode == 0, qPrintable(text.err));
        for (const char* phrase : { "layer 0 feature 5: Cat detector", "« cat»", "top activations:",
                 "Subsample Interval 0:", "histogram", "top logits: \" sat\" (+1.5)", "top inputs" })
            QVERIFY2(text.out.contains(QString::fromUtf8(phrase)), qPrintable(phrase + (": " + text.out)));
        QVERIFY2(text.out.contains("\\x1b[31mon") && !text.out.contains(QChar(0x1b)), qPrintable(text.out));

        // search: case-insensitive, in labels.
        Run found = cli({ "features", "search", db, "CAT", "--json" });
        QVERIFY2(found.exitCode == 0, qPrintable(found.err));
        QCOMPARE(found.json(), Json::parse(R"([{"layer": 0, "feature": 5, "label": "Cat detector"}])"));

        // label: written, found by the engine, kept by a rebuild of the statistics.
        Run l = cli({ "features", "label", db, "1:3", "--label", "Sat verb", "--notes", "past tense" });
        QVERIFY2(l.exitCode == 0, qPrintable(l.err));
        QCOMPARE(reader->card(1, 3).label, std::string("Sat verb"));
        QCOMPARE(reader->card(1, 3).notes, std::string("past tense"));
        cs::features::FeatureStore::create(db.toStdString(), info)->writeRecords(records, info);
        QCOMPARE(cli({ "features", "search", db, "verb", "--json" }).json().size(), size_t(1));

        // export: one file per feature.
        const QString out = m_dir.filePath("features-export");
        Run e = cli({ "features", "export", db, "--format", "circuit-tracer", "--out", out });
        QVERIFY2(e.exitCode == 0, qPrintable(e.err));
        QVERIFY2(e.out.startsWith("3 features written"), qPrintable(e.out));
        for (const char* file : { "0/1.json", "0/5.json", "1/3.json" })
            QVERIFY2(QFile::exists(out + "/" + file), file);
        QCOMPARE(readJson(out + "/1/3.json")["label"].get<std::string>(), std::string("Sat verb"));
        const QString flat = m_dir.filePath("features-cantor");
        QCOMPARE(cli({ "features", "export", db, "--out", flat, "--layout", "cantor" }).exitCode, 0);
        QCOMPARE(readJson(flat + "/13.json")["index"].get<int64_t>(), int64_t(13)); // (1 + 3)(1 + 3 + 1) / 2 + 3

        // info.
        Run i = cli({ "features", "info", db, "--json" });
        QVERIFY2(i.exitCode == 0, qPrintable(i.err));
        const Json j = i.json();
        QCOMPARE(j["model"].get<std::string>(), std::string("tiny"));
        QCOMPARE(j["n_layers"].get<int64_t>(), int64_t(2));
        QCOMPARE(j["n_features"].get<int64_t>(), int64_t(8));
        QCOMPARE(j["features"].get<int64_t>(), int64_t(3));
        QCOMPARE(j["labels"].get<int64_t>(), int64_t(2));
        QCOMPARE(j["tokens"].get<int64_t>(), int64_t(600));
        QCOMPARE(j["complete"].get<bool>(), true);
        QCOMPARE(j["coactivations"].get<bool>(), false); // written without them
        QVERIFY(cli({ "features", "info", db }).out.contains("features with statistics: 3"));

        // Errors: a message and exit code 1.
        const QString corrupt = m_dir.filePath("corrupt.db");
        cs::test::writeTextFile(corrupt, std::string(4096, 'x'));
        const QList<QPair<QStringList, QString>> refusals = {
            { { "features", "show", corrupt, "0:1" }, "is not an SQLite database" },
            { { "features", "info", corrupt }, "is not an SQLite database" },
            { { "features", "info", m_dir.filePath("no-such.db") }, "no such feature store" },
            { { "features", "show", db, "9:0" }, "out of range" },
            { { "features", "show", db, "1:7" }, "is not in" },
            { { "features", "show", db, "x" }, "is not a feature" },
            { { "features", "show", db }, "needs the feature as LAYER:FEATURE" },
            { { "features", "label", db, "0:1" }, "needs --label" },
            { { "features", "export", db, "--out", out, "--format", "neuronpedia" }, "--format must be" },
            { { "features", "export", db }, "needs --out" },
            { { "features", "export", db, "--out", out, "--layout", "tree" }, "--layout must be" },
            { { "features", "search", db }, "needs the TEXT" },
            { { "features", "build" }, "needs MODEL" },
            { { "features", "build", "tinyworld", "--out", out }, "needs --corpus" },
            { { "features", "fly" }, "features needs a subcommand" },
        };
        for (const auto& [args, phrase] : refusals) {
            Run r = cli(args);
            QCOMPARE(r.exitCode, 1);
            QVERIFY2(r.err.contains(phrase), qPrintable(args.join(' ') + ": " + r.err));
        }

        // A real build on tinyworld with its CLT from a small corpus; its card reads back.
        const QString corpus = m_dir.filePath("features-corpus.txt");
        std::string lines;
        for (int line = 0; line < 150; ++line)
            lines += "Fact: the capital of the state containing Dallas is Austin\ncalc: 36+59=95\n";
        cs::test::writeTextFile(corpus, lines);
        const QString built = m_dir.filePath("built.db");
        Run b = cli({ "--device", "cpu", "features", "build", "tinyworld", "--corpus", corpus, "--tokens", "1500",
            "--out", built, "--json" });
        QVERIFY2(b.exitCode == 0, qPrintable(b.err));
        const Json bj = Json::parse(b.out.toStdString());
        for (const char* key : { "tokens", "contexts", "tokens_per_second", "bytes", "mb_per_million_tokens" })
            QVERIFY2(bj.contains(key), key);
        QVERIFY(bj["tokens"].get<int64_t>() >= 1500);
        Run card = cli({ "features", "show", built, "0:0", "--json" });
        QVERIFY2(card.exitCode == 0, qPrintable(card.err));
        QVERIFY(Json::parse(card.out.toStdString()).contains("examples_quantiles"));
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
