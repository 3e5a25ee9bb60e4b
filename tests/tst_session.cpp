// Sessions (app/session): the session file's round trip (state by ExplorerState::operator==, the
// graph node by node and its adjacency exactly, inline and as a .csgraph sidecar), what the
// engine's graph JSON alone loses (reported, and made up for by the session's complement),
// Neuronpedia qParams both ways, atomic writes that leave the old file byte for byte, refusals
// of broken files naming the path and the reason, a small fuzz, autosave with a simulated crash,
// recent files (under QAbstractItemModelTester) and settings on a temporary ini file.

#include "autosave.h"
#include "graph_nodes.h"
#include "recentfiles.h"
#include "sessionfile.h"
#include "settings.h"

#include <cs/error.h>
#include <cs/graph.h>

#include <ATen/ATen.h>

#include <QAbstractItemModelTester>
#include <QDir>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QSettings>
#include <QSignalSpy>
#include <QSysInfo>
#include <QTemporaryDir>
#include <QtTest>

#include <csignal>
#include <random>
#include <set>
#include <sys/stat.h>
#include <unistd.h>

using cs::app::ExplorerState;
using cs::app::Intervention;
using cs::app::InterventionOp;
using cs::app::SessionData;
using cs::app::Supernode;
using cs::graph::Graph;
using cs::graph::Node;
using cs::graph::NodeKind;
using nlohmann::json;

namespace {

// A graph in circuit-tracer's node order with the cases graph JSON handles badly: an error node
// and a feature with no edge at all, activations on error nodes, a logit and an embedding token
// that are not UTF-8 (half of "é"), labels, metadata extra and qParams.
struct Spec {
    int64_t nLayers = 3;
    int64_t nPos = 5;
    int64_t nFeatures = 30;
    int64_t nLogits = 3;
    double density = 0.4;
    uint64_t seed = 1;
};

Graph makeGraph(const Spec& spec)
{
    std::mt19937_64 rng(spec.seed);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    Graph g;
    std::set<std::tuple<int64_t, int64_t, int64_t>> used;
    while (static_cast<int64_t>(g.nodes.size()) < spec.nFeatures) {
        const auto layer = static_cast<int64_t>(rng() % spec.nLayers);
        const auto position = static_cast<int64_t>(rng() % spec.nPos);
        const auto feature = static_cast<int64_t>(rng() % 5000);
        if (!used.insert({ layer, feature, position }).second)
            continue;
        Node f = cs::test::featureNode(layer, position, feature, 0.25 + 2 * uniform(rng));
        if (g.nodes.size() % 4 == 0)
            f.label = "label of " + std::to_string(g.nodes.size());
        g.nodes.push_back(f);
    }
    for (int64_t l = 0; l < spec.nLayers; ++l)
        for (int64_t p = 0; p < spec.nPos; ++p) {
            // The error's norm, say: graph JSON writes null.
            g.nodes.push_back(cs::test::errorNode(l, p, 0.5 * uniform(rng)));
        }
    for (int64_t p = 0; p < spec.nPos; ++p) {
        const Node e = cs::test::embeddingNode(p, 40 + 3 * p, p == 1 ? std::string("\xc3") : " w" + std::to_string(p));
        g.nodes.push_back(e);
        g.metadata.promptTokens.push_back(e.token);
        g.metadata.prompt += e.token;
    }
    double remaining = 0.9;
    std::vector<float> probabilities;
    for (int64_t k = 0; k < spec.nLogits; ++k) {
        const Node l = cs::test::logitNode(spec.nLayers, spec.nPos - 1, 900 + k,
            k == 1 ? std::string("\xa9x") : " out" + std::to_string(k), remaining * 0.5);
        remaining -= l.tokenProb;
        probabilities.push_back(static_cast<float>(l.tokenProb));
        g.nodes.push_back(l);
    }
    const int64_t n = g.size();
    std::vector<float> a(static_cast<size_t>(n * n), 0.0f);
    // Node 0 (a feature) and the first error node get no edge at all.
    const int64_t firstError = spec.nFeatures;
    std::normal_distribution<double> normal(0.0, 1.0);
    for (int64_t t = 0; t < n; ++t)
        for (int64_t s = 0; s < n; ++s) {
            const bool allowed = cs::test::edgeAllowed(g.nodes[t], g.nodes[s]);
            if (allowed && t != 0 && s != 0 && s != firstError && uniform(rng) < spec.density)
                a[t * n + s] = static_cast<float>(normal(rng));
        }
    g.adjacency = cs::graph::Adjacency::fromDense(at::from_blob(a.data(), { n, n }, at::kFloat));
    g.logitProbabilities = probabilities;
    g.metadata.slug = "session-test-" + std::to_string(spec.seed);
    g.metadata.scan = "tinyworld";
    g.metadata.transcoderList = { "clt" };
    g.metadata.nodeThreshold = 0.7;
    g.metadata.edgeThreshold = 0.95;
    g.metadata.extra = { { "info", { { "creator_name", "tst_session" } } }, { "scores", { { "replacement", 0.5 } } } };
    g.metadata.qParams = { { "linkType", "both" }, { "custom", 7 } };
    g.nodes[spec.nFeatures + spec.nLayers * spec.nPos + spec.nPos].label = "my logit"; // first logit
    return g;
}

std::string id(const Graph& g, int64_t i)
{
    return cs::graph::nodeId(g, i);
}

// A state touching every field, naming nodes of g.
ExplorerState makeState(const Graph& g)
{
    const auto r = g.ranges();
    ExplorerState s;
    s.nodeThreshold = 0.6;
    s.edgeThreshold = 0.9;
    s.selected = id(g, 3);
    s.pinned = { id(g, 3), id(g, 5), id(g, 7), id(g, r.errors.begin + 2), id(g, r.logits.begin) };
    s.hidden = { id(g, 9), id(g, r.embeddings.begin) };
    s.supernodes = { Supernode { "say capital", { id(g, 5), id(g, 7) } } };
    s.labels = { { cs::app::featureKey(g.nodes[3].layer, g.nodes[3].feature), "Texas ⟶ Austin" },
        { cs::app::featureKey(g.nodes[5].layer, g.nodes[5].feature), "capital \"cities\"" } };
    Intervention a;
    a.target = id(g, 3);
    a.op = InterventionOp::Scale;
    a.value = -2.5;
    a.positions = { 1, 2 };
    a.free = true;
    Intervention b;
    b.target = "supernode:say capital";
    b.op = InterventionOp::Inject;
    b.value = 4;
    b.positions = { -1 };
    b.enabled = false;
    Intervention c;
    c.target = id(g, 7);
    s.interventions = { a, b, c };
    s.view = { 1.75, -120.5, 33.25 };
    return s;
}

SessionData makeSession(const Spec& spec = {})
{
    SessionData d;
    d.model = "resources/models/tinyworld";
    d.transcoder = "resources/models/tinyworld/clt";
    d.featureStore = "/tmp/features.sqlite";
    d.device = "cpu";
    d.graph = makeGraph(spec);
    d.prompt = d.graph.metadata.prompt;
    d.state = makeState(d.graph);
    d.extra = { { "undo_depth", 3 }, { "note", "hello" } };
    return d;
}

void compareGraphs(const Graph& a, const Graph& b)
{
    QCOMPARE(a.size(), b.size());
    for (int64_t i = 0; i < a.size(); ++i) {
        const Node& x = a.nodes[i];
        const Node& y = b.nodes[i];
        const QByteArray where = QByteArray("node ") + QByteArray::number(static_cast<qlonglong>(i));
        QVERIFY2(x.kind == y.kind, where);
        QVERIFY2(x.layer == y.layer, where);
        QVERIFY2(x.position == y.position, where);
        QVERIFY2(x.feature == y.feature, where);
        QVERIFY2(x.activation == y.activation, where);
        QVERIFY2(x.tokenId == y.tokenId, where);
        QVERIFY2(x.token == y.token, where);
        QVERIFY2(x.tokenProb == y.tokenProb, where);
        QVERIFY2(x.label == y.label, where);
    }
    QVERIFY(a.adjacency == b.adjacency);
    QVERIFY(a.logitProbabilities == b.logitProbabilities);
    const auto& m = a.metadata;
    const auto& n = b.metadata;
    QCOMPARE(m.slug, n.slug);
    QCOMPARE(m.prompt, n.prompt);
    QVERIFY(m.promptTokens == n.promptTokens);
    QCOMPARE(m.scan, n.scan);
    QVERIFY(m.transcoderList == n.transcoderList);
    QCOMPARE(m.nodeThreshold, n.nodeThreshold);
    QCOMPARE(m.edgeThreshold, n.edgeThreshold);
    QCOMPARE(QString::fromStdString(m.qParams.dump()), QString::fromStdString(n.qParams.dump()));
    QCOMPARE(QString::fromStdString(m.extra.dump()), QString::fromStdString(n.extra.dump()));
}

QByteArray readAll(const QString& path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    return f.readAll();
}

void writeAll(const QString& path, const QByteArray& bytes)
{
    QFile f(path);
    QVERIFY(f.open(QIODevice::WriteOnly | QIODevice::Truncate));
    QCOMPARE(f.write(bytes), bytes.size());
}

// A pid no process has (kill(pid, 0) says ESRCH).
qint64 deadPid()
{
    for (qint64 pid = 32000; pid > 1000; --pid)
        if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
            return pid;
    return -1;
}

} // namespace

class TestSession : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase() { at::manual_seed(0); }

    // What circuit-tracer's graph JSON alone keeps of a full graph (toJson with keepAll, then
    // fromJson), matched node by node through the node ids: the adjacency of the nodes it
    // writes, the feature fields. Reported: what it loses, which the session's "graph_nodes"
    // complement carries.
    void graphJsonAloneLoses()
    {
        const Graph g = makeGraph({});
        // Through text, as writeJsonFile writes it (bytes that are not UTF-8 become U+FFFD).
        const std::string text
            = cs::graph::toJson(g, cs::graph::keepAll(g)).dump(-1, ' ', false, json::error_handler_t::replace);
        const Graph back = cs::graph::fromJson(json::parse(text));
        std::map<std::string, int64_t> index;
        for (int64_t i = 0; i < back.size(); ++i)
            index[id(back, i)] = i;
        const at::Tensor a = g.adjacency.dense();
        const at::Tensor b = back.adjacency.dense();
        QStringList lost;
        int64_t missing = 0;
        for (int64_t i = 0; i < g.size(); ++i) {
            auto it = index.find(id(g, i));
            if (it == index.end()) {
                ++missing;
                // Only nodes without any edge may go missing.
                QCOMPARE(a[i].abs().sum().item<float>() + a.select(1, i).abs().sum().item<float>(), 0.0f);
                continue;
            }
            const Node& x = g.nodes[i];
            const Node& y = back.nodes[it->second];
            QVERIFY(x.kind == y.kind && x.layer == y.layer && x.position == y.position && x.feature == y.feature);
            if (x.kind == NodeKind::Feature) {
                QCOMPARE(y.activation, x.activation);
                QCOMPARE(y.label, x.label);
            }
            if (x.activation != y.activation)
                lost << QStringLiteral("activation of %1 %2").arg(cs::graph::nodeKindName(x.kind), id(g, i).c_str());
            if (x.token != y.token)
                lost << QStringLiteral("token of %1 %2").arg(cs::graph::nodeKindName(x.kind), id(g, i).c_str());
            for (int64_t j = 0; j < g.size(); ++j) {
                auto jt = index.find(id(g, j));
                const float w = jt == index.end() ? 0.0f : b[it->second][jt->second].item<float>();
                QCOMPARE(w, a[i][j].item<float>());
            }
        }
        QVERIFY(missing >= 2); // at least the edgeless feature and error node made so
        if (back.metadata.promptTokens != g.metadata.promptTokens)
            lost << "prompt tokens that are not UTF-8";
        if (back.metadata.qParams != g.metadata.qParams)
            lost << "qParams (defaults added)";
        qInfo().noquote() << "graph JSON alone drops" << missing
                          << "edgeless nodes and:" << lost.join(QStringLiteral("; "));
        QVERIFY(!lost.isEmpty()); // if this fails the engine's JSON became lossless: simplify the session
    }

    void roundTrip_data()
    {
        QTest::addColumn<bool>("sidecar");
        QTest::addColumn<bool>("indent");
        QTest::newRow("inline") << false << false;
        QTest::newRow("inline indented") << false << true;
        QTest::newRow("sidecar") << true << false;
    }
    void roundTrip()
    {
        QFETCH(bool, sidecar);
        QFETCH(bool, indent);
        QTemporaryDir dir;
        QVERIFY(dir.isValid());
        const SessionData d = makeSession();
        const QString path = dir.filePath(QStringLiteral("my graph.circuitscope.json"));
        cs::app::SessionWriteOptions options;
        options.indent = indent;
        options.sidecarEdgeThreshold = sidecar ? 10 : 2'000'000;
        const auto stats = cs::app::writeSession(path.toStdString(), d, options);
        QCOMPARE(stats.sidecar, sidecar);
        QCOMPARE(QFileInfo::exists(dir.filePath(QStringLiteral("my graph.csgraph"))), sidecar);
        QCOMPARE(QString::fromStdString(cs::app::sidecarPath(path.toStdString())),
            dir.filePath(QStringLiteral("my graph.csgraph")));

        const json doc = json::parse(readAll(path).toStdString());
        QCOMPARE(QString::fromStdString(doc["format"]), QStringLiteral("circuitscope.session"));
        QCOMPARE(doc["version"].get<int>(), 1);
        QVERIFY(QDateTime::fromString(QString::fromStdString(doc["saved_at"]), Qt::ISODateWithMs).isValid());
        QCOMPARE(doc.contains("graph_file"), sidecar);
        QCOMPARE(doc.contains("graph"), !sidecar);

        const SessionData back = cs::app::readSession(path.toStdString());
        QVERIFY(back.warnings.empty());
        QVERIFY(back.state == d.state);
        QCOMPARE(back.model, d.model);
        QCOMPARE(back.transcoder, d.transcoder);
        QCOMPARE(back.featureStore, d.featureStore);
        QCOMPARE(back.device, d.device);
        QCOMPARE(back.prompt, d.prompt);
        QVERIFY(back.extra == d.extra);
        compareGraphs(back.graph, d.graph);

        // Writing what was read gives the same file, but for the time stamp.
        const QString again = dir.filePath(QStringLiteral("again.circuitscope.json"));
        cs::app::writeSession(again.toStdString(), back, options);
        json x = json::parse(readAll(path).toStdString());
        json y = json::parse(readAll(again).toStdString());
        x.erase("saved_at");
        y.erase("saved_at");
        if (sidecar) {
            QCOMPARE(QString::fromStdString(y["graph_file"]), QStringLiteral("again.csgraph"));
            y["graph_file"] = x["graph_file"];
        }
        QVERIFY(x == y);
    }

    // Saving over a session with a sidecar never rewrites the sidecar the file on disk names: the
    // new graph goes to the other name, and the old one goes once the new session is in place
    // (tst_crash_consistency kills writers in between).
    void sidecarAlternates()
    {
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("s.circuitscope.json"));
        const QString first = dir.filePath(QStringLiteral("s.csgraph"));
        const QString second = dir.filePath(QStringLiteral("s.alt.csgraph"));
        cs::app::SessionWriteOptions options;
        options.sidecarEdgeThreshold = 0;
        const auto named = [&] { return json::parse(readAll(path).toStdString())["graph_file"].get<std::string>(); };
        SessionData d = makeSession();
        cs::app::writeSession(path.toStdString(), d, options);
        QCOMPARE(named(), std::string("s.csgraph"));
        QVERIFY(QFileInfo::exists(first) && !QFileInfo::exists(second));
        const QByteArray firstGraph = readAll(first);
        d.graph.metadata.slug = "second";
        cs::app::writeSession(path.toStdString(), d, options);
        QCOMPARE(named(), std::string("s.alt.csgraph"));
        QVERIFY(!QFileInfo::exists(first) && QFileInfo::exists(second));
        QCOMPARE(cs::app::readSession(path.toStdString()).graph.metadata.slug, std::string("second"));
        d.graph.metadata.slug = "third";
        cs::app::writeSession(path.toStdString(), d, options);
        QCOMPARE(named(), std::string("s.csgraph"));
        QVERIFY(QFileInfo::exists(first) && !QFileInfo::exists(second));
        QCOMPARE(cs::app::readSession(path.toStdString()).graph.metadata.slug, std::string("third"));
        QVERIFY(readAll(first) != firstGraph);
        // Inline again: the sidecar is named by nothing and goes.
        options.sidecarEdgeThreshold = 2'000'000;
        cs::app::writeSession(path.toStdString(), d, options);
        QVERIFY(!QFileInfo::exists(first) && !QFileInfo::exists(second));
        QCOMPARE(QString::fromStdString(cs::app::sidecarPaths(path.toStdString()).back()), second);
    }

    // The session's graph JSON is a Neuronpedia graph carrying the subgraph in its qParams.
    void sessionGraphCarriesSubgraph()
    {
        const SessionData d = makeSession();
        const json doc = json::parse(cs::app::sessionJsonText(d));
        const Graph viaJson = cs::graph::fromJson(doc["graph"]);
        ExplorerState s = cs::app::stateFromQParams(viaJson.metadata.qParams, viaJson);
        QVERIFY(s.pinned == d.state.pinned);
        QVERIFY(s.supernodes == d.state.supernodes);
        QVERIFY(s.labels == d.state.labels);
        QCOMPARE(s.selected, d.state.selected);
        QCOMPARE(s.nodeThreshold, d.state.nodeThreshold);
    }

    void qParamsRoundTrip()
    {
        const Graph g = makeGraph({ 3, 5, 30, 3, 0.4, 7 });
        const ExplorerState s = makeState(g);
        json q = { { "linkType", "both" }, { "sg_pos", "" } };
        cs::app::stateToQParams(s, q);
        QCOMPARE(QString::fromStdString(q["linkType"]), QStringLiteral("both")); // kept
        QVERIFY(q["pinnedIds"].is_array());
        // clerps keyed as the frontend matches them: the node's "feature" field (Cantor pairing).
        const int64_t z = cs::graph::cantorPairing(g.nodes[3].layer, g.nodes[3].feature);
        bool found = false;
        for (const json& row : q["clerps"])
            found = found || (row[0] == std::to_string(z) && row[1] == "Texas ⟶ Austin");
        QVERIFY(found);
        // Written into a graph JSON, the node ids in qParams are the file's node_id values
        // (circuit-tracer's, for error nodes too), and they read back as ours.
        Graph withState = g;
        withState.metadata.qParams = q;
        const json graphJson = cs::graph::toJson(withState, cs::graph::keepAll(withState));
        std::set<std::string> fileIds;
        for (const json& n : graphJson["nodes"])
            fileIds.insert(n["node_id"].get<std::string>());
        for (const json& pid : graphJson["qParams"]["pinnedIds"])
            QVERIFY(fileIds.count(pid.get<std::string>()));
        QCOMPARE(cs::graph::fromJson(graphJson).metadata.qParams["pinnedIds"], q["pinnedIds"]);

        ExplorerState expected = s;
        expected.interventions.clear(); // not part of Neuronpedia's state
        expected.view = {};
        expected.edgeThreshold = ExplorerState().edgeThreshold;
        const ExplorerState back = cs::app::stateFromQParams(q, g);
        QVERIFY(back == expected);
    }

    // qParams as Neuronpedia's URL state and files hold them: comma-separated id lists, clerps
    // as JSON text, keys that are plain node ids, unknown ids.
    void qParamsNeuronpediaStyle()
    {
        const Graph g = makeGraph({ 3, 5, 30, 3, 0.4, 3 });
        const auto r = g.ranges();
        const std::string f1 = id(g, 1), f2 = id(g, 2), e = id(g, r.embeddings.begin), l = id(g, r.logits.begin);
        const int64_t z2 = cs::graph::cantorPairing(g.nodes[2].layer, g.nodes[2].feature);
        const json clerps = json::array({ json::array({ std::to_string(z2), "via cantor" }),
            json::array({ f1, "via node id" }), json::array({ "999999999", "nobody" }) });
        const json q = { { "pinnedIds", f1 + "," + f2 + ",27_1_1," + e + "," + l },
            { "supernodes",
                json::array({ json::array({ "group", f1, f2, "99_99_99" }), json::array({ "empty", "1_2_3" }) }) },
            { "clerps", clerps.dump() }, { "clickedId", f2 }, { "hiddenIds", e }, { "pruningThreshold", "0.55" },
            { "linkType", "both" } };
        const ExplorerState s = cs::app::stateFromQParams(q, g);
        QVERIFY((s.pinned == std::vector<std::string> { f1, f2, e, l }));
        QCOMPARE(s.supernodes.size(), size_t(1));
        QVERIFY((s.supernodes[0] == Supernode { "group", { f1, f2 } }));
        QCOMPARE(s.selected, f2);
        QVERIFY(s.hidden == std::vector<std::string> { e });
        QCOMPARE(s.nodeThreshold, 0.55);
        QCOMPARE(s.labels.size(), size_t(2));
        QCOMPARE(s.labels.at(cs::app::featureKey(g.nodes[2].layer, g.nodes[2].feature)), std::string("via cantor"));
        QCOMPARE(s.labels.at(cs::app::featureKey(g.nodes[1].layer, g.nodes[1].feature)), std::string("via node id"));

        // Arrays work as well as strings; junk never throws.
        const json arrays = { { "pinnedIds", json::array({ f1, 5, nullptr }) }, { "clerps", clerps } };
        QVERIFY((cs::app::stateFromQParams(arrays, g).pinned == std::vector<std::string> { f1 }));
        QCOMPARE(cs::app::stateFromQParams(arrays, g).labels.size(), size_t(2));
        for (const json& junk :
            { json(nullptr), json(3), json::array(), json { { "pinnedIds", 3 } }, json { { "supernodes", "x" } },
                json { { "clerps", "[[" } }, json { { "clerps", json::array({ 1, 2 }) } } })
            QVERIFY(cs::app::stateFromQParams(junk, g) == ExplorerState());
    }

    void atomicWrite()
    {
        QTemporaryDir dir;
        const SessionData d = makeSession();
        const QString path = dir.filePath(QStringLiteral("s.circuitscope.json"));
        cs::app::writeSession(path.toStdString(), d);
        const QByteArray before = readAll(path);
        QVERIFY(!before.isEmpty());
        auto entries
            = [&] { return QDir(dir.path()).entryList(QDir::AllEntries | QDir::NoDotAndDotDot | QDir::Hidden); };
        const QStringList listed = entries();

        auto expectFailure = [&](const QString& target, const SessionData& data, const char* reason) {
            try {
                cs::app::writeSession(target.toStdString(), data);
                QFAIL(qPrintable("no error writing " + target));
            } catch (const cs::Error& e) {
                const QString message = QString::fromUtf8(e.what());
                QVERIFY2(message.contains(target), qPrintable(message));
                QVERIFY2(message.contains(QLatin1String(reason)), qPrintable(message));
            }
        };
        // A graph that fails validation, over the existing file.
        SessionData bad = d;
        bad.graph.adjacency = cs::graph::Adjacency(2);
        expectFailure(path, bad, "cannot write the session");
        // A path that is a folder.
        QVERIFY(QDir(dir.path()).mkdir(QStringLiteral("folder.circuitscope.json")));
        expectFailure(dir.filePath(QStringLiteral("folder.circuitscope.json")), d, "folder");
        // A folder that does not exist, and one nobody may write (even root: /proc).
        expectFailure(dir.filePath(QStringLiteral("no/such/s.circuitscope.json")), d, "cannot write");
        expectFailure(QStringLiteral("/proc/cs-tst-session.circuitscope.json"), d, "cannot write");
        QCOMPARE(readAll(path), before);
        QStringList now = entries();
        now.removeAll(QStringLiteral("folder.circuitscope.json"));
        QCOMPARE(now, listed); // no temporary files left behind

        // A read-only folder (root writes anyway, so only as a user).
        if (::geteuid() != 0) {
            QVERIFY(QFile::setPermissions(dir.path(), QFileDevice::ReadOwner | QFileDevice::ExeOwner));
            expectFailure(path, d, "cannot write");
            QVERIFY(QFile::setPermissions(
                dir.path(), QFileDevice::ReadOwner | QFileDevice::WriteOwner | QFileDevice::ExeOwner));
            QCOMPARE(readAll(path), before);
        }
    }

    void refusals_data()
    {
        QTest::addColumn<QString>("edit"); // what to do to a valid file
        QTest::addColumn<QString>("reason"); // a part of the message
        QTest::newRow("missing") << "missing"
                                 << "no such file";
        QTest::newRow("empty") << "empty"
                               << "empty";
        // Only regular files are read (issue 24: a link to /dev/zero grew without end).
        QTest::newRow("a link to /dev/zero") << "special:/dev/zero"
                                             << "is not a regular file (a device)";
        QTest::newRow("a FIFO") << "special:fifo"
                                << "is not a regular file (a FIFO)";
        QTest::newRow("truncated at 1") << "truncate:1"
                                        << "truncated";
        QTest::newRow("truncated at 100") << "truncate:100"
                                          << "truncated";
        QTest::newRow("truncated at half") << "truncate:half"
                                           << "truncated";
        QTest::newRow("truncated before the end") << "truncate:-1"
                                                  << "truncated";
        QTest::newRow("not JSON") << "text:hello, world"
                                  << "not valid JSON at byte";
        QTest::newRow("JSON array") << "text:[1, 2]"
                                    << "expected a JSON object";
        QTest::newRow("nested 100,000 deep")
            << "text:{\"extra\": " + QString(100000, QChar('[')) + QString(100000, QChar(']')) + "}"
            << "nested deeper than 512 levels";
        QTest::newRow("wrong format") << "set:format=\"circuitscope.graph\""
                                      << "not a Circuitscope session";
        QTest::newRow("version 999") << "set:version=999"
                                     << "newer";
        QTest::newRow("version 0") << "set:version=0"
                                   << "not a session version";
        QTest::newRow("version text") << "set:version=\"1\""
                                      << "version: expected an integer";
        QTest::newRow("no format") << "erase:format"
                                   << "missing key \"format\"";
        QTest::newRow("no state") << "erase:state"
                                  << "missing key \"state\"";
        QTest::newRow("no graph") << "erase:graph"
                                  << "missing key \"graph\"";
        QTest::newRow("model a number") << "set:model=3"
                                        << "model: expected a string";
        QTest::newRow("state an array") << "set:state=[]"
                                        << "state: expected an object";
        QTest::newRow("pinned a number") << "state:pinned=5"
                                         << "state.pinned: expected an array";
        QTest::newRow("pinned id a number") << "state:pinned=[\"a\", 3]"
                                            << "state.pinned[1]: expected a string";
        QTest::newRow("threshold out of range") << "state:node_threshold=1.5"
                                                << "not in [0, 1]";
        QTest::newRow("bad op") << "state:interventions=[{\"target\": \"x\", \"op\": \"melt\"}]"
                                << "is not \"ablate\"";
        QTest::newRow("bad mode") << "state:interventions=[{\"target\": \"x\", \"op\": \"scale\", \"mode\": \"loose\"}]"
                                  << "state.interventions[0].mode";
        QTest::newRow("supernode without name") << "state:supernodes=[{\"members\": []}]"
                                                << "missing key \"name\"";
        QTest::newRow("labels array") << "state:labels=[]"
                                      << "state.labels: expected an object";
        QTest::newRow("zoom zero") << "state:view={\"zoom\": 0}"
                                   << "zoom: is not positive";
        QTest::newRow("graph an array") << "set:graph=[]"
                                        << "graph";
        QTest::newRow("graph link to nowhere") << "link:nowhere"
                                               << "is not the node_id of a node";
        QTest::newRow("graph_nodes short") << "nodes:drop"
                                           << "is not among graph_nodes";
        QTest::newRow("graph_nodes field type") << "nodes:type"
                                                << "graph_nodes.nodes[0][1]: expected an integer";
        QTest::newRow("missing sidecar") << "sidecar:remove"
                                         << "is missing";
        QTest::newRow("corrupt sidecar") << "sidecar:truncate"
                                         << "graph_file";
        // A sidecar that is a FIFO would block the open (issue 21): only regular files are read.
        QTest::newRow("sidecar a FIFO") << "sidecar:fifo"
                                        << "is not a regular file (a FIFO)";
        QTest::newRow("sidecar elsewhere") << "sidecar:path"
                                           << "not a file name next to the session";
    }
    void refusals()
    {
        QFETCH(QString, edit);
        QFETCH(QString, reason);
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("broken.circuitscope.json"));
        const bool sidecar = edit.startsWith(QLatin1String("sidecar:"));
        cs::app::SessionWriteOptions options;
        options.sidecarEdgeThreshold = sidecar ? 0 : 2'000'000;
        cs::app::writeSession(path.toStdString(), makeSession({ 2, 3, 8, 2, 0.5, 4 }), options);
        const QByteArray valid = readAll(path);
        const QString op = edit.section(QLatin1Char(':'), 0, 0);
        const QString arg = edit.section(QLatin1Char(':'), 1);
        json doc = json::parse(valid.toStdString());
        QByteArray text;
        bool asJson = false;
        if (op == QLatin1String("missing")) {
            QFile::remove(path);
        } else if (op == QLatin1String("special")) {
            QFile::remove(path);
            if (arg == QLatin1String("fifo"))
                QCOMPARE(::mkfifo(QFile::encodeName(path).constData(), 0600), 0);
            else
                QVERIFY(QFile::link(arg, path));
        } else if (op == QLatin1String("empty")) {
            text = "";
        } else if (op == QLatin1String("truncate")) {
            const int at = arg == QLatin1String("half") ? valid.size() / 2
                                                        : (arg.toInt() < 0 ? valid.size() + arg.toInt() : arg.toInt());
            text = valid.left(at);
        } else if (op == QLatin1String("text")) {
            text = arg.toUtf8();
        } else if (op == QLatin1String("set") || op == QLatin1String("state")) {
            const QString key = arg.section(QLatin1Char('='), 0, 0);
            const json value = json::parse(arg.section(QLatin1Char('='), 1).toStdString());
            (op == QLatin1String("set") ? doc : doc["state"])[key.toStdString()] = value;
            asJson = true;
        } else if (op == QLatin1String("erase")) {
            doc.erase(arg.toStdString());
            asJson = true;
        } else if (op == QLatin1String("link")) {
            doc["graph"]["links"][0]["source"] = "77_77_77";
            asJson = true;
        } else if (op == QLatin1String("nodes")) {
            json& nodes = doc["graph_nodes"]["nodes"];
            if (arg == QLatin1String("drop"))
                nodes.erase(nodes.begin() + 1); // node 1 has edges, so the graph JSON lists it
            else
                nodes[0][1] = "one";
            asJson = true;
        } else if (op == QLatin1String("sidecar")) {
            const QString file = dir.filePath(QStringLiteral("broken.csgraph"));
            QVERIFY(QFileInfo::exists(file));
            if (arg == QLatin1String("remove"))
                QFile::remove(file);
            else if (arg == QLatin1String("truncate"))
                writeAll(file, readAll(file).left(200));
            else if (arg == QLatin1String("fifo")) {
                QFile::remove(file);
                QCOMPARE(::mkfifo(QFile::encodeName(file).constData(), 0600), 0);
            } else {
                doc["graph_file"] = "../broken.csgraph";
                asJson = true;
            }
        }
        if (asJson)
            text = QByteArray::fromStdString(doc.dump());
        if (op != QLatin1String("missing") && op != QLatin1String("sidecar") && op != QLatin1String("special"))
            writeAll(path, text);
        else if (asJson)
            writeAll(path, text);
        try {
            cs::app::readSession(path.toStdString());
            QFAIL("no error");
        } catch (const cs::Error& e) {
            const QString message = QString::fromUtf8(e.what());
            QVERIFY2(message.startsWith(path), qPrintable(message));
            QVERIFY2(message.contains(reason), qPrintable(message));
        }
    }

    // State entries naming nodes the graph lacks are dropped with a warning each; the rest loads.
    void unknownIdsWarn()
    {
        QTemporaryDir dir;
        SessionData d = makeSession();
        const ExplorerState good = d.state;
        d.state.selected = "9_9_9";
        d.state.pinned.insert(d.state.pinned.begin() + 1, "8_8_8");
        d.state.pinned.push_back(d.state.pinned.front()); // a repeat
        d.state.hidden.push_back("E_1_99");
        d.state.supernodes[0].members.push_back("7_7_7");
        d.state.supernodes.push_back(Supernode { "ghost", { "6_6_6" } });
        Intervention ghost;
        ghost.target = "supernode:ghost";
        d.state.interventions.push_back(ghost);
        ghost.target = "5_5_5";
        d.state.interventions.push_back(ghost);
        const QString path = dir.filePath(QStringLiteral("w.circuitscope.json"));
        cs::app::writeSession(path.toStdString(), d);
        const SessionData back = cs::app::readSession(path.toStdString());
        ExplorerState expected = good;
        expected.selected.clear();
        QVERIFY(back.state == expected);
        QCOMPARE(back.warnings.size(), size_t(9));
        QString all;
        for (const std::string& w : back.warnings)
            all += QString::fromStdString(w) + QLatin1Char('\n');
        for (const char* name : { "9_9_9", "8_8_8", "listed twice", "E_1_99", "7_7_7", "6_6_6", "ghost", "5_5_5" })
            QVERIFY2(all.contains(QLatin1String(name)), qPrintable(all));
    }

    // Interventions at positions outside the prompt and labels keyed by no feature are dropped
    // with a warning each (issue 23): the rest of the session is the user's work, so it loads.
    void outsidePromptAndLabelKeysWarn()
    {
        QTemporaryDir dir;
        SessionData d = makeSession();
        d.state.labels["1:2"] = "kept";
        d.state.labels["neurons/1:2"] = "kept too";
        const ExplorerState good = d.state;
        const int64_t nPositions = static_cast<int64_t>(d.graph.metadata.promptTokens.size());
        Intervention far;
        far.target = cs::graph::nodeId(d.graph, 0);
        far.positions = { 0, nPositions }; // one past the prompt
        d.state.interventions.push_back(far);
        far.positions = { -1, 0 }; // -1 (every position) stands alone
        d.state.interventions.push_back(far);
        for (const char* key : { "foo", "3:x", "bogus/1:2", "/1:2", "-1:2" })
            d.state.labels[key] = "dropped";
        const QString path = dir.filePath(QStringLiteral("p.circuitscope.json"));
        cs::app::writeSession(path.toStdString(), d);
        const SessionData back = cs::app::readSession(path.toStdString());
        QVERIFY(back.state == good);
        QCOMPARE(back.warnings.size(), size_t(7));
        QString all;
        for (const std::string& w : back.warnings)
            all += QString::fromStdString(w) + QLatin1Char('\n');
        for (const QString& phrase :
            { QStringLiteral("is at position %1, outside the prompt's %1 tokens").arg(nPositions),
                QStringLiteral("is at position -1"), QStringLiteral("\"foo\""), QStringLiteral("\"3:x\""),
                QStringLiteral("\"bogus/1:2\""), QStringLiteral("\"/1:2\""), QStringLiteral("\"-1:2\"") })
            QVERIFY2(all.contains(phrase), qPrintable(all));
    }

    // Random truncations and byte changes of a valid file: cs::Error or a session, never a crash.
    void fuzz()
    {
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("f.circuitscope.json"));
        cs::app::SessionWriteOptions options;
        options.indent = true;
        cs::app::writeSession(path.toStdString(), makeSession({ 2, 3, 6, 2, 0.5, 5 }), options);
        const QByteArray valid = readAll(path);
        std::mt19937_64 rng(11);
        int loaded = 0, refused = 0;
        const char specials[] = "{}[]\",:0-e.9tfn \\";
        for (int round = 0; round < 400; ++round) {
            QByteArray bytes = valid;
            if (round % 4 == 0) {
                bytes.truncate(static_cast<int>(rng() % static_cast<uint64_t>(valid.size())));
            } else {
                const int flips = 1 + static_cast<int>(rng() % 4);
                for (int k = 0; k < flips; ++k) {
                    const int at = static_cast<int>(rng() % static_cast<uint64_t>(bytes.size()));
                    bytes[at] = rng() % 2 ? static_cast<char>(rng() % 256) : specials[rng() % (sizeof specials - 1)];
                }
            }
            writeAll(path, bytes);
            try {
                cs::app::readSession(path.toStdString());
                ++loaded;
            } catch (const cs::Error&) {
                ++refused;
            } catch (const std::exception& e) {
                QFAIL(qPrintable(QStringLiteral("round %1: not a cs::Error: %2").arg(round).arg(e.what())));
            }
        }
        qInfo() << "fuzz: loaded" << loaded << "refused" << refused;
        QCOMPARE(loaded + refused, 400);
        QVERIFY(refused > 0);
    }

    void autosaveRecovery()
    {
        QTemporaryDir dir;
        const QString folder = dir.filePath(QStringLiteral("autosave"));
        const SessionData d = makeSession();

        cs::app::SessionAutosave first;
        first.setFolder(folder);
        QVERIFY_THROWS_EXCEPTION(cs::Error, first.save(d)); // not started
        first.start();
        QVERIFY(QFileInfo::exists(first.markerPath()));
        first.save(d);
        QVERIFY(QFileInfo::exists(first.autosavePath()));
        QVERIFY(cs::app::readSession(first.autosavePath().toStdString()).state == d.state);

        // A second live instance (this process, so alive) sees nothing to recover, and its
        // files are apart from the first's.
        cs::app::SessionAutosave second;
        second.setFolder(folder);
        second.start();
        QVERIFY(second.autosavePath() != first.autosavePath());
        QVERIFY(second.recoverable().isEmpty());
        QVERIFY(first.recoverable().isEmpty());

        // A crashed instance: a marker whose pid is gone, and its autosave.
        const qint64 pid = deadPid();
        QVERIFY(pid > 0);
        auto writeMarker = [&](const QString& name, const QJsonObject& marker) {
            writeAll(QDir(folder).filePath(name + QStringLiteral(".marker")), QJsonDocument(marker).toJson());
        };
        const QJsonObject dead { { "pid", pid }, { "boot_id", QString::fromLatin1(QSysInfo::bootUniqueId()) },
            { "host", QSysInfo::machineHostName() }, { "autosave", "autosave-dead.circuitscope.json" } };
        writeMarker(QStringLiteral("autosave-dead"), dead);
        QVERIFY(QFile::copy(
            first.autosavePath(), QDir(folder).filePath(QStringLiteral("autosave-dead.circuitscope.json"))));
        // A marker from before a reboot (this very pid, another boot id).
        QJsonObject rebooted = dead;
        rebooted["pid"] = QCoreApplication::applicationPid();
        rebooted["boot_id"] = QStringLiteral("another-boot");
        rebooted["autosave"] = QStringLiteral("autosave-rebooted.circuitscope.json");
        writeMarker(QStringLiteral("autosave-rebooted"), rebooted);
        QVERIFY(QFile::copy(
            first.autosavePath(), QDir(folder).filePath(QStringLiteral("autosave-rebooted.circuitscope.json"))));
        // A marker of this live process (same boot): not recoverable.
        QJsonObject live = dead;
        live["pid"] = QCoreApplication::applicationPid();
        live["autosave"] = QStringLiteral("autosave-live.circuitscope.json");
        writeMarker(QStringLiteral("autosave-live"), live);
        QVERIFY(QFile::copy(
            first.autosavePath(), QDir(folder).filePath(QStringLiteral("autosave-live.circuitscope.json"))));
        // A dead marker that never saved.
        QJsonObject unsaved = dead;
        unsaved["autosave"] = QStringLiteral("autosave-unsaved.circuitscope.json");
        writeMarker(QStringLiteral("autosave-unsaved"), unsaved);

        const QStringList found = second.recoverableSessions();
        QCOMPARE(found.size(), 2);
        QVERIFY(found.contains(QDir(folder).absoluteFilePath(QStringLiteral("autosave-dead.circuitscope.json"))));
        QVERIFY(found.contains(QDir(folder).absoluteFilePath(QStringLiteral("autosave-rebooted.circuitscope.json"))));
        QVERIFY(found.contains(second.recoverable()));
        const SessionData recovered = cs::app::readSession(second.recoverable().toStdString());
        QVERIFY(recovered.state == d.state);
        compareGraphs(recovered.graph, d.graph);

        // What saves killed mid-write leave (tst_crash_consistency): temporary files of the dead
        // instances' autosaves and sidecars go with them, a live instance's stay.
        const QStringList deadTemporaries { "autosave-dead.circuitscope.json.aB3dE9",
            "autosave-dead.csgraph.tmp-Xy12Zw", "autosave-dead.alt.csgraph.tmp-Q1w2E3",
            "autosave-unsaved.circuitscope.json.tmp42" };
        const QString liveTemporary = QStringLiteral("autosave-live.csgraph.tmp-Live01");
        for (const QString& name : deadTemporaries + QStringList { liveTemporary })
            writeAll(QDir(folder).filePath(name), "partial");

        second.discardRecovery();
        QVERIFY(second.recoverable().isEmpty());
        QVERIFY(!QFileInfo::exists(QDir(folder).filePath(QStringLiteral("autosave-dead.marker"))));
        QVERIFY(!QFileInfo::exists(QDir(folder).filePath(QStringLiteral("autosave-unsaved.marker"))));
        QVERIFY(QFileInfo::exists(QDir(folder).filePath(QStringLiteral("autosave-live.marker"))));
        QVERIFY(QFileInfo::exists(first.autosavePath())); // the live instance's files stay
        for (const QString& name : deadTemporaries)
            QVERIFY2(!QFileInfo::exists(QDir(folder).filePath(name)), qPrintable(name));
        QVERIFY(QFileInfo::exists(QDir(folder).filePath(liveTemporary)));
        QFile::remove(QDir(folder).filePath(liveTemporary));

        // Clean exits leave nothing.
        const QString firstPath = first.autosavePath();
        const QString firstMarker = first.markerPath();
        first.finish();
        QVERIFY(!QFileInfo::exists(firstPath));
        QVERIFY(!QFileInfo::exists(firstMarker));
        second.finish();
        QFile::remove(QDir(folder).filePath(QStringLiteral("autosave-live.marker")));
        QFile::remove(QDir(folder).filePath(QStringLiteral("autosave-live.circuitscope.json")));
        cs::app::SessionAutosave third;
        third.setFolder(folder);
        third.start();
        QVERIFY(third.recoverable().isEmpty());
        third.finish();
        QVERIFY(QDir(folder).entryList(QDir::Files).isEmpty());
    }

    // The timer path: markDirty() -> the snapshot -> a worker thread writes; figures for a graph
    // of about tinyworld's graph JSON size.
    void autosaveTimer()
    {
        QTemporaryDir dir;
        cs::app::SessionAutosave autosave;
        autosave.setFolder(dir.filePath(QStringLiteral("a")));
        autosave.setInterval(100);
        autosave.start();
        // ~1,300 nodes and ~35,000 edges: a graph JSON of about 2-3 MB.
        const SessionData big = makeSession({ 6, 12, 1100, 5, 0.12, 9 });
        int snapshots = 0;
        autosave.setSnapshot([&] {
            ++snapshots;
            return big;
        });
        QSignalSpy saved(&autosave, &cs::app::SessionAutosave::saved);
        QSignalSpy failed(&autosave, &cs::app::SessionAutosave::saveFailed);
        autosave.setInterval(0); // off: marking saves nothing
        QCOMPARE(autosave.interval(), 0);
        autosave.markDirty();
        QVERIFY(!saved.wait(300));
        QCOMPARE(snapshots, 0);
        autosave.setInterval(100);
        QCOMPARE(autosave.interval(), 100);
        autosave.markDirty();
        autosave.markDirty(); // one save for both
        QVERIFY(autosave.isDirty());
        QVERIFY(saved.wait(30000));
        QCOMPARE(snapshots, 1);
        QCOMPARE(failed.count(), 0);
        QVERIFY(!autosave.isDirty());
        QVERIFY(!autosave.isSaving());
        const QString path = saved.at(0).at(0).toString();
        QCOMPARE(path, autosave.autosavePath());
        qInfo().noquote() << QStringLiteral("autosave of %1 nodes, %2 bytes: JSON %3 ms (worker thread), write %4 ms")
                                 .arg(big.graph.size())
                                 .arg(QFileInfo(path).size())
                                 .arg(saved.at(0).at(1).toDouble(), 0, 'f', 1)
                                 .arg(saved.at(0).at(2).toDouble(), 0, 'f', 1);
        QElapsedTimer clock;
        clock.start();
        const SessionData back = cs::app::readSession(path.toStdString());
        qInfo().noquote() << QStringLiteral("reading it back: %1 ms").arg(clock.nsecsElapsed() / 1e6, 0, 'f', 1);
        compareGraphs(back.graph, big.graph);

        // A save that fails (the folder gone) says so and stays dirty.
        QVERIFY(QDir(autosave.folder()).removeRecursively());
        autosave.saveNow();
        QVERIFY(autosave.waitForSave());
        QCOMPARE(failed.count(), 1);
        QVERIFY(failed.at(0).at(0).toString().contains(autosave.autosavePath()));
        QVERIFY(autosave.isDirty());
        QVERIFY(!autosave.lastError().isEmpty());
        QCOMPARE(saved.count(), 1);
        autosave.finish();
        QVERIFY(!autosave.isStarted());
        autosave.setFolder(QStringLiteral("/proc/cs-no-such-folder"));
        QVERIFY_THROWS_EXCEPTION(cs::Error, autosave.start());
    }

    void recentFiles()
    {
        QTemporaryDir dir;
        const QString ini = dir.filePath(QStringLiteral("settings.ini"));
        QSettings settings(ini, QSettings::IniFormat);
        cs::app::RecentFilesModel model(&settings);
        QAbstractItemModelTester tester(&model, QAbstractItemModelTester::FailureReportingMode::QtTest);
        QCOMPARE(model.rowCount(), 0);
        const auto names = model.roleNames();
        for (const char* role : { "path", "name", "folder", "exists", "kind" })
            QVERIFY(std::find(names.begin(), names.end(), QByteArray(role)) != names.end());

        auto touch = [&](const QString& name) {
            const QString p = dir.filePath(name);
            writeAll(p, "x");
            return p;
        };
        const QString a = touch(QStringLiteral("a.circuitscope.json"));
        const QString b = touch(QStringLiteral("b.json"));
        model.add(a, QStringLiteral("session"));
        model.add(b, QStringLiteral("graph"));
        QCOMPARE(model.rowCount(), 2);
        QCOMPARE(model.data(model.index(0), cs::app::RecentFilesModel::PathRole).toString(),
            QFileInfo(b).canonicalFilePath());
        QCOMPARE(model.data(model.index(0), cs::app::RecentFilesModel::NameRole).toString(), QStringLiteral("b.json"));
        QCOMPARE(model.data(model.index(0), cs::app::RecentFilesModel::KindRole).toString(), QStringLiteral("graph"));
        QCOMPARE(model.data(model.index(0), cs::app::RecentFilesModel::FolderRole).toString(),
            QDir::toNativeSeparators(QFileInfo(b).canonicalPath()));
        QVERIFY(model.data(model.index(0), cs::app::RecentFilesModel::ExistsRole).toBool());

        // The same file by another name (a symlink, a relative path): one entry, moved first.
        const QString link = dir.filePath(QStringLiteral("link.json"));
        QVERIFY(QFile::link(a, link));
        model.add(link, QStringLiteral("session"));
        QCOMPARE(model.rowCount(), 2);
        QCOMPARE(model.pathAt(0), QFileInfo(a).canonicalFilePath());
        model.add(QDir(dir.path()).filePath(QStringLiteral("./b.json")), QStringLiteral("graph"));
        QCOMPARE(model.rowCount(), 2);
        QCOMPARE(model.pathAt(0), QFileInfo(b).canonicalFilePath());

        // At most ten, most recent first.
        QStringList added;
        for (int i = 0; i < 12; ++i) {
            added.prepend(QFileInfo(touch(QStringLiteral("m%1.circuitscope.json").arg(i))).canonicalFilePath());
            model.add(added.front(), QStringLiteral("model"));
        }
        QCOMPARE(model.rowCount(), cs::app::kMaxRecentFiles);
        for (int i = 0; i < model.rowCount(); ++i)
            QCOMPARE(model.pathAt(i), added[i]);

        // Persisted: a new model on the same settings lists the same files; a missing file shows.
        QFile::remove(added[0]);
        model.remove(added[1]);
        QCOMPARE(model.rowCount(), 9);
        {
            QSettings again(ini, QSettings::IniFormat);
            cs::app::RecentFilesModel reloaded(&again);
            QAbstractItemModelTester t2(&reloaded, QAbstractItemModelTester::FailureReportingMode::QtTest);
            QCOMPARE(reloaded.rowCount(), 9);
            QCOMPARE(reloaded.pathAt(0), added[0]);
            QCOMPARE(reloaded.pathAt(1), added[2]);
            QVERIFY(!reloaded.data(reloaded.index(0), cs::app::RecentFilesModel::ExistsRole).toBool());
            QVERIFY(reloaded.data(reloaded.index(1), cs::app::RecentFilesModel::ExistsRole).toBool());
        }
        model.refresh();
        QVERIFY(!model.data(model.index(0), cs::app::RecentFilesModel::ExistsRole).toBool());
        model.add(QString(), QStringLiteral("session")); // ignored
        QCOMPARE(model.rowCount(), 9);
        model.clear();
        QCOMPARE(model.rowCount(), 0);
        QSettings cleared(ini, QSettings::IniFormat);
        QVERIFY(cleared.value(QStringLiteral("recent/files")).toList().isEmpty());
    }

    void settings()
    {
        QTemporaryDir dir;
        const QString ini = dir.filePath(QStringLiteral("settings.ini"));
        {
            QSettings store(ini, QSettings::IniFormat);
            cs::app::ExplorerSettings s(&store);
            QCOMPARE(s.theme(), QStringLiteral("system"));
            QCOMPARE(s.nodeThreshold(), 0.8);
            QCOMPARE(s.edgeThreshold(), 0.98);
            QCOMPARE(s.maxFeatureNodes(), 0);
            QCOMPARE(s.topK(), 10);
            QCOMPARE(s.generateTokens(), 8);
            QCOMPARE(s.autosaveSeconds(), 60);
            QCOMPARE(s.device(), QStringLiteral("auto"));
            QCOMPARE(s.lastFolder(), QString());

            QSignalSpy theme(&s, &cs::app::ExplorerSettings::themeChanged);
            QSignalSpy node(&s, &cs::app::ExplorerSettings::nodeThresholdChanged);
            s.setTheme(QStringLiteral("Dark"));
            s.setTheme(QStringLiteral("dark")); // no change, no signal
            QCOMPARE(theme.count(), 1);
            QCOMPARE(s.theme(), QStringLiteral("dark"));
            s.setTheme(QStringLiteral("purple"));
            QCOMPARE(s.theme(), QStringLiteral("system"));
            s.setNodeThreshold(1.7);
            QCOMPARE(s.nodeThreshold(), 1.0);
            s.setNodeThreshold(std::nan(""));
            QCOMPARE(s.nodeThreshold(), 1.0);
            QCOMPARE(node.count(), 1);
            s.setEdgeThreshold(-3);
            QCOMPARE(s.edgeThreshold(), 0.0);
            s.setMaxFeatureNodes(-5);
            QCOMPARE(s.maxFeatureNodes(), 0);
            s.setMaxFeatureNodes(4096);
            s.setTopK(0);
            QCOMPARE(s.topK(), 1);
            s.setTopK(1000);
            QCOMPARE(s.topK(), 100);
            s.setGenerateTokens(20);
            s.setAutosaveSeconds(2);
            QCOMPARE(s.autosaveSeconds(), 5);
            s.setAutosaveSeconds(-1);
            QCOMPARE(s.autosaveSeconds(), 0);
            s.setAutosaveSeconds(99999);
            QCOMPARE(s.autosaveSeconds(), 3600);
            s.setDevice(QStringLiteral(" CUDA:1 "));
            QCOMPARE(s.device(), QStringLiteral("cuda:1"));
            s.setLastFolder(QStringLiteral("/data/graphs"));
            s.setTheme(QStringLiteral("light"));
        }
        // Written at once: read by a fresh QSettings and a fresh object.
        {
            QSettings raw(ini, QSettings::IniFormat);
            QCOMPARE(raw.value(QStringLiteral("explorer/theme")).toString(), QStringLiteral("light"));
            QSettings store(ini, QSettings::IniFormat);
            cs::app::ExplorerSettings s(&store);
            QCOMPARE(s.theme(), QStringLiteral("light"));
            QCOMPARE(s.nodeThreshold(), 1.0);
            QCOMPARE(s.edgeThreshold(), 0.0);
            QCOMPARE(s.maxFeatureNodes(), 4096);
            QCOMPARE(s.topK(), 100);
            QCOMPARE(s.generateTokens(), 20);
            QCOMPARE(s.autosaveSeconds(), 3600);
            QCOMPARE(s.device(), QStringLiteral("cuda:1"));
            QCOMPARE(s.lastFolder(), QStringLiteral("/data/graphs"));
            s.resetToDefaults();
            QCOMPARE(s.topK(), 10);
        }
        // Values edited by hand into nonsense come back valid.
        {
            QSettings raw(ini, QSettings::IniFormat);
            raw.setValue(QStringLiteral("explorer/topK"), QStringLiteral("many"));
            raw.setValue(QStringLiteral("explorer/nodeThreshold"), 42);
            raw.setValue(QStringLiteral("explorer/device"), QStringLiteral("tpu"));
            raw.setValue(QStringLiteral("explorer/generateTokens"), -4);
            raw.sync();
            cs::app::ExplorerSettings s(&raw);
            QCOMPARE(s.topK(), 10);
            QCOMPARE(s.nodeThreshold(), 1.0);
            QCOMPARE(s.device(), QStringLiteral("auto"));
            QCOMPARE(s.generateTokens(), 1);
        }
    }
};

QTEST_GUILESS_MAIN(TestSession)
#include "tst_session.moc"
