// Figures (app/figure): the spec built from a hand-made graph checked against sums computed
// here from the adjacency (supernode edges, dropped internal edges, scopes, hidden nodes, kept
// edges), labels and intervention notes; the dot layout checked for the properties a figure
// must have (layers ordered bottom to top, one rank per layer, edges starting at their source
// and ending at their target, no overlapping boxes); the exports read back with independent
// readers (QXmlStreamReader for SVG, QImage for PNG, the PDF's own markers), atomic writes and
// refusals. Fast: label unit.

#include "graph_nodes.h"
#include "graph_reference.h"
#include "hf_fixtures.h"

#include "figure.h"

#include <cs/attribution.h>
#include <cs/engine.h>
#include <cs/error.h>
#include <cs/graph.h>
#include <cs/model.h>
#include <cs/transcoder.h>

#include <ATen/ATen.h>

#include <QDir>
#include <QFile>
#include <QImage>
#include <QProcess>
#include <QSet>
#include <QTemporaryDir>
#include <QXmlStreamReader>
#include <QtTest>

#include <atomic>
#include <cmath>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <unistd.h>

using cs::app::ExplorerState;
using cs::app::FigureFormat;
using cs::app::FigureLayout;
using cs::app::FigureNodeKind;
using cs::app::FigureOptions;
using cs::app::FigureScope;
using cs::app::FigureSpec;
using cs::app::Intervention;
using cs::app::InterventionOp;
using cs::app::Supernode;
using cs::graph::Graph;
using cs::graph::Node;
using cs::graph::NodeKind;
using cs::graph::PruneResult;

Q_DECLARE_METATYPE(FigureScope)
Q_DECLARE_METATYPE(FigureFormat)

namespace {

// Indices of the hand-made graph's nodes (circuit-tracer order: features, errors, embeddings,
// logits); 3 layers, 3 positions.
enum : int64_t {
    F0 = 0, // L0 @1
    F1, // L0 @2
    F2, // L1 @1
    F3, // L1 @2, with its own label (an imported clerp)
    F4, // L2 @2
    F5, // L2 @1
    E0, // error L0 @2
    E1, // error L1 @2
    T0, // embedding "Fact" @0
    T1, // embedding " <b>&\"x\"\n" @1
    T2, // embedding "&lt;" + a stray byte @2
    LA, // logit " Austin"
    LB, // logit " Dallas"
    kNodes
};

const char* const kSpecialToken = " <b>&\"x\"\n";
// As a figure shows the token: as text, the leading space dropped, the newline marked.
const char* const kSpecialTokenShown = "<b>&\"x\"\u23CE";
const char* const kEntityToken = "&lt;\xE2";
const char* const kEntityTokenShown = "&lt;<0xE2>";
const char* const kSupernodeName = "Say \"capital\" <&>";
const char* const kUserLabel = "a < b & \"c\"";
// Graphviz expands \N, \G, \l ... in labels and ids; these must come out as written.
const char* const kBackslashLabel = "x\\N\\ly\\";
const char* const kBackslashName = "back\\slash \\G";

Graph makeGraph(uint64_t seed)
{
    Graph g;
    const auto feature = [&](int64_t layer, int64_t position, int64_t index) {
        g.nodes.push_back(cs::test::featureNode(layer, position, index, 1.5));
    };
    feature(0, 1, 5);
    feature(0, 2, 7);
    feature(1, 1, 11);
    feature(1, 2, 3);
    feature(2, 2, 9);
    feature(2, 1, 2);
    g.nodes[F3].label = "graph's own label";
    for (int64_t layer : { 0, 1 })
        g.nodes.push_back(cs::test::errorNode(layer, 2));
    const std::vector<std::string> tokens { "Fact", kSpecialToken, kEntityToken };
    for (int64_t p = 0; p < 3; ++p)
        g.nodes.push_back(cs::test::embeddingNode(p, 70 + p, tokens[static_cast<size_t>(p)]));
    const std::vector<std::pair<std::string, double>> logits { { " Austin", 0.6 }, { " Dallas", 0.25 } };
    for (size_t k = 0; k < logits.size(); ++k)
        g.nodes.push_back(cs::test::logitNode(3, 2, 80 + static_cast<int64_t>(k), logits[k].first, logits[k].second));
    g.metadata.prompt = "Fact <b>&\"x\"\n";
    g.metadata.promptTokens = tokens;
    g.metadata.scan = "tinyworld-clt";

    // Every allowed edge (source at a lower level, no later position; target a feature or a
    // logit) with a random signed weight, most of them present.
    std::mt19937_64 rng(seed);
    std::normal_distribution<double> normal(0.0, 1.0);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    at::Tensor a = at::zeros({ kNodes, kNodes }, at::kFloat);
    auto acc = a.accessor<float, 2>();
    for (int64_t t = 0; t < kNodes; ++t) {
        const Node& target = g.nodes[static_cast<size_t>(t)];
        if (target.kind != NodeKind::Feature && target.kind != NodeKind::Logit)
            continue;
        for (int64_t s = 0; s < kNodes; ++s) {
            if (!cs::test::edgeAllowed(target, g.nodes[static_cast<size_t>(s)]) || uniform(rng) > 0.85)
                continue;
            acc[t][s] = static_cast<float>(normal(rng));
        }
    }
    acc[F2][F0] = 0.75f; // an edge inside the cross-layer supernode {F0, F2}
    acc[F4][F0] = -0.5f;
    acc[F4][F2] = 1.25f;
    g.adjacency = cs::graph::Adjacency::fromDense(a);
    g.logitProbabilities = { 0.6f, 0.25f };
    g.validate();
    return g;
}

std::string idOf(const Graph& g, int64_t i)
{
    return cs::graph::nodeId(g, i);
}

std::vector<std::string> idsOf(const Graph& g, const std::vector<int64_t>& indices)
{
    std::vector<std::string> out;
    for (int64_t i : indices)
        out.push_back(idOf(g, i));
    return out;
}

// keepAll with node F5 dropped (and its edges) and two more edges dropped, so that "kept"
// differs from "nonzero".
PruneResult partialPrune(const Graph& g)
{
    PruneResult pr = cs::graph::keepAll(g);
    pr.nodeMask[F5] = false;
    const cs::graph::Adjacency& a = g.adjacency;
    const auto drop = [&](int64_t t, int64_t s) {
        if (const int64_t e = a.find(t, s); e >= 0)
            pr.edgeMask[static_cast<size_t>(e)] = false;
    };
    for (int64_t i = 0; i < g.size(); ++i) {
        drop(F5, i);
        drop(i, F5);
    }
    drop(F4, F2);
    drop(LA, F4);
    return pr;
}

// The figure's groups computed from the definitions: the graph nodes in scope, then each
// supernode's present members as one group, each other node alone.
std::map<std::string, std::vector<int64_t>> expectedGroups(
    const Graph& g, const PruneResult& pr, const ExplorerState& state, FigureScope scope)
{
    std::set<int64_t> present;
    for (int64_t i = 0; i < g.size(); ++i) {
        const std::string id = idOf(g, i);
        bool in = false;
        if (scope == FigureScope::Subgraph) {
            in = std::count(state.pinned.begin(), state.pinned.end(), id) > 0;
            for (const Supernode& s : state.supernodes)
                in = in || std::count(s.members.begin(), s.members.end(), id) > 0;
        } else {
            in = pr.nodeMask[static_cast<size_t>(i)] && std::count(state.hidden.begin(), state.hidden.end(), id) == 0;
        }
        if (in)
            present.insert(i);
    }
    std::map<std::string, std::vector<int64_t>> groups;
    std::set<int64_t> grouped;
    for (const Supernode& s : state.supernodes) {
        for (const std::string& member : s.members) {
            for (int64_t i : present) {
                if (idOf(g, i) == member && !grouped.count(i)) {
                    groups["supernode:" + s.name].push_back(i);
                    grouped.insert(i);
                }
            }
        }
    }
    for (int64_t i : present) {
        if (!grouped.count(i))
            groups[idOf(g, i)] = { i };
    }
    return groups;
}

// Sum over every member pair of A[t, s] (kept edges only in the pruned scope), in float64.
std::map<std::pair<std::string, std::string>, double> expectedEdges(
    const Graph& g, const PruneResult& pr, const std::map<std::string, std::vector<int64_t>>& groups, FigureScope scope)
{
    const at::Tensor dense = g.adjacency.dense();
    const at::Tensor denseMask = cs::test::denseEdgeMask(g, pr);
    auto a = dense.accessor<float, 2>();
    auto mask = denseMask.accessor<bool, 2>();
    std::map<std::pair<std::string, std::string>, double> out;
    for (const auto& [sourceId, sources] : groups) {
        for (const auto& [targetId, targets] : groups) {
            if (sourceId == targetId)
                continue;
            double sum = 0;
            for (int64_t s : sources) {
                for (int64_t t : targets) {
                    if (scope == FigureScope::PrunedGraph && !mask[t][s])
                        continue;
                    sum += a[t][s];
                }
            }
            if (sum != 0)
                out[{ sourceId, targetId }] = sum;
        }
    }
    return out;
}

ExplorerState baseState(const Graph& g)
{
    ExplorerState state;
    state.pinned = idsOf(g, { F0, F1, F2, F4, E1, T0, T1, LA });
    return state;
}

// Every <text> of an SVG file, and the ids of its node groups; fails the test on bad XML.
struct SvgContent {
    QStringList texts;
    QSet<QString> nodeIds;
    QString error;
};

SvgContent readSvg(const QString& path)
{
    SvgContent out;
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly)) {
        out.error = "cannot open";
        return out;
    }
    QXmlStreamReader xml(&file);
    while (!xml.atEnd()) {
        xml.readNext();
        if (!xml.isStartElement())
            continue;
        if (xml.name() == QLatin1String("g") && xml.attributes().value("class") == QLatin1String("node"))
            out.nodeIds.insert(xml.attributes().value("id").toString());
        if (xml.name() == QLatin1String("text"))
            out.texts.append(xml.readElementText(QXmlStreamReader::IncludeChildElements));
    }
    if (xml.hasError())
        out.error = xml.errorString() + " at line " + QString::number(xml.lineNumber());
    return out;
}

QByteArray readAll(const QString& path)
{
    QFile file(path);
    if (!file.open(QIODevice::ReadOnly))
        return {};
    return file.readAll();
}

bool isWritableFolder(const QString& dir)
{
    const QString probe = dir + "/probe";
    QFile file(probe);
    const bool ok = file.open(QIODevice::WriteOnly);
    if (ok) {
        file.close();
        QFile::remove(probe);
    }
    return ok;
}

// The figure the layout and export tests draw: the whole graph, one supernode across layers
// 0 and 1 (mean layer 0.5: its own rank), the special labels, an intervention.
FigureSpec richSpec(const Graph& g, cs::app::FigureTheme theme = cs::app::FigureTheme::Light)
{
    ExplorerState state;
    state.pinned = idsOf(g, { F0, F2 });
    state.supernodes.push_back({ kSupernodeName, idsOf(g, { F0, F2 }) });
    state.labels[cs::app::featureKey(1, 3)] = kUserLabel;
    state.labels[cs::app::featureKey(2, 2)] = kBackslashLabel;
    state.supernodes.push_back({ kBackslashName, idsOf(g, { E0 }) });
    Intervention ablate;
    ablate.target = std::string("supernode:") + kSupernodeName;
    state.interventions.push_back(ablate);
    FigureOptions options;
    options.featureLabel = [](int64_t layer, int64_t feature) {
        return "store label of " + std::to_string(layer) + "/" + std::to_string(feature);
    };
    options.scores = "replacement 0.8 \u00B7 completeness 0.9";
    options.theme = theme;
    return cs::app::buildFigure(g, cs::graph::keepAll(g), state, FigureScope::PrunedGraph, options);
}

// The properties every figure layout must have; empty when it has them all.
QString layoutProblem(const FigureSpec& spec, const FigureLayout& layout)
{
    const auto name = [](const std::string& a, const char* what, const std::string& b) {
        return QString::fromStdString(a + " " + what + " " + b);
    };
    if (layout.nodes.size() != spec.nodes.size() || layout.edges.size() != spec.edges.size())
        return "layout sizes differ from the spec's";
    if (!(layout.width > 0 && layout.height > 0))
        return "empty bounding box";
    for (size_t i = 0; i < spec.nodes.size(); ++i) {
        const auto& a = layout.nodes[i];
        if (a.id != spec.nodes[i].id)
            return "node order differs: " + QString::fromStdString(a.id);
        if (!(a.width > 0 && a.height > 0))
            return "empty box: " + QString::fromStdString(a.id);
        if (a.x - a.width / 2 < -0.5 || a.x + a.width / 2 > layout.width + 0.5 || a.y - a.height / 2 < -0.5
            || a.y + a.height / 2 > layout.height + 0.5)
            return "outside the bounding box: " + QString::fromStdString(a.id);
        for (size_t j = 0; j < spec.nodes.size(); ++j) {
            if (i == j)
                continue;
            const auto& b = layout.nodes[j];
            const double la = spec.nodes[i].layer;
            const double lb = spec.nodes[j].layer;
            // y grows downwards: a lower layer sits lower (larger y); one layer, one rank.
            if (la < lb && !(a.y > b.y + 1))
                return name(a.id, "is not below", b.id);
            if (la == lb && a.y != b.y)
                return name(a.id, "is not level with", b.id);
            const bool apart = std::fabs(a.x - b.x) >= (a.width + b.width) / 2 - 0.5
                || std::fabs(a.y - b.y) >= (a.height + b.height) / 2 - 0.5;
            if (!apart)
                return name(a.id, "overlaps", b.id);
        }
    }
    // Embeddings at the bottom, logits on top.
    double lowestLogit = -1;
    double highestEmbedding = layout.height + 1;
    for (size_t i = 0; i < spec.nodes.size(); ++i) {
        if (spec.nodes[i].kind == FigureNodeKind::Logit)
            lowestLogit = std::max(lowestLogit, layout.nodes[i].y);
        if (spec.nodes[i].kind == FigureNodeKind::Embedding)
            highestEmbedding = std::min(highestEmbedding, layout.nodes[i].y);
    }
    for (size_t i = 0; i < spec.nodes.size(); ++i) {
        const auto kind = spec.nodes[i].kind;
        if ((kind != FigureNodeKind::Logit && !(layout.nodes[i].y > lowestLogit))
            || (kind != FigureNodeKind::Embedding && !(layout.nodes[i].y < highestEmbedding)))
            return "not between the embeddings and the logits: " + QString::fromStdString(spec.nodes[i].id);
    }
    // Each edge: a cubic Bezier from its source's box to its target's (the arrow's tip).
    const auto inside = [](const cs::app::FigureLayoutNode& n, cs::app::FigurePoint p, double slack) {
        return std::fabs(p.x - n.x) <= n.width / 2 + slack && std::fabs(p.y - n.y) <= n.height / 2 + slack;
    };
    for (size_t j = 0; j < spec.edges.size(); ++j) {
        const auto& edge = layout.edges[j];
        if (edge.source != spec.edges[j].source || edge.target != spec.edges[j].target
            || edge.weight != spec.edges[j].weight)
            return "edge order differs";
        if (edge.points.size() < 4 || (edge.points.size() - 1) % 3 != 0)
            return name(edge.source, "->", edge.target) + ": not a cubic Bezier";
        const auto& source = layout.nodes[static_cast<size_t>(spec.indexOf(edge.source))];
        const auto& target = layout.nodes[static_cast<size_t>(spec.indexOf(edge.target))];
        if (!inside(source, edge.points.front(), 3))
            return name(edge.source, "->", edge.target) + ": does not start at its source";
        if (!inside(target, edge.arrowTip, 3))
            return name(edge.source, "->", edge.target) + ": does not end at its target";
    }
    return {};
}

} // namespace

class TestFigure : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();

    void supernodeEdges_data();
    void supernodeEdges();
    void handWrittenNodeSet();
    void labels();
    void automaticDescriptionsApartAndLegend();
    void interventions();
    void textHelpers();
    void badPruneResult();

    void layoutInvariants();
    void layoutFromManyThreads();
    void dotText();

    void exportSvg();
    void exportPng_data();
    void exportPng();
    void exportPdf();
    void formatFromPath_data();
    void formatFromPath();
    void refusals();
    void unwritableFolder();

    void tinyworld();

private:
    Graph m_graph;
    QTemporaryDir m_dir { cs::test::testTempRoot() + "/figure-XXXXXX" };
};

void TestFigure::initTestCase()
{
    QVERIFY(m_dir.isValid());
    m_graph = makeGraph(7);
}

void TestFigure::supernodeEdges_data()
{
    QTest::addColumn<FigureScope>("scope");
    QTest::addColumn<std::vector<std::string>>("pinned");
    QTest::addColumn<std::vector<Supernode>>("supernodes");
    QTest::addColumn<std::vector<std::string>>("hidden");
    const Graph& g = m_graph;
    const std::vector<std::string> pinned = idsOf(g, { F0, F1, F2, F3, F4, E1, T0, T1, LA, LB });
    QTest::newRow("subgraph, no supernode")
        << FigureScope::Subgraph << pinned << std::vector<Supernode> {} << std::vector<std::string> {};
    QTest::newRow("subgraph, one layer") << FigureScope::Subgraph << pinned
                                         << std::vector<Supernode> { { "same layer", idsOf(g, { F0, F1 }) } }
                                         << std::vector<std::string> {};
    QTest::newRow("subgraph, across layers (internal edge)")
        << FigureScope::Subgraph << pinned
        << std::vector<Supernode> { { "cross", idsOf(g, { F0, F2 }) }, { "top", idsOf(g, { F4, F3 }) } }
        << std::vector<std::string> {};
    QTest::newRow("subgraph, members not pinned")
        << FigureScope::Subgraph << idsOf(g, { T0, LA })
        << std::vector<Supernode> { { "late", idsOf(g, { F1, F3, E0 }) } } << std::vector<std::string> {};
    QTest::newRow("pruned, supernodes") << FigureScope::PrunedGraph << pinned
                                        << std::vector<Supernode> { { "cross", idsOf(g, { F0, F2 }) },
                                               { "with pruned", idsOf(g, { F5, F4 }) } }
                                        << std::vector<std::string> {};
    QTest::newRow("pruned, hidden") << FigureScope::PrunedGraph << pinned
                                    << std::vector<Supernode> { { "embeddings", idsOf(g, { T1, T2 }) } }
                                    << idsOf(g, { F1, E0, T2 });
}

void TestFigure::supernodeEdges()
{
    QFETCH(FigureScope, scope);
    QFETCH(std::vector<std::string>, pinned);
    QFETCH(std::vector<Supernode>, supernodes);
    QFETCH(std::vector<std::string>, hidden);
    const Graph& g = m_graph;
    const PruneResult pr = partialPrune(g);
    ExplorerState state;
    state.pinned = pinned;
    state.supernodes = supernodes;
    state.hidden = hidden;
    const FigureSpec spec = cs::app::buildFigure(g, pr, state, scope);

    const auto groups = expectedGroups(g, pr, state, scope);
    std::set<std::string> expectedIds;
    for (const auto& entry : groups)
        expectedIds.insert(entry.first);
    std::set<std::string> ids;
    for (const cs::app::FigureNode& node : spec.nodes) {
        QVERIFY2(ids.insert(node.id).second, node.id.c_str());
        if (node.kind == FigureNodeKind::Supernode) {
            // Named, and placed at the members' mean layer.
            const auto& members = groups.at(node.id);
            double mean = 0;
            for (int64_t m : members)
                mean
                    += static_cast<double>(g.nodes[static_cast<size_t>(m)].layer) / static_cast<double>(members.size());
            QCOMPARE(node.layer, mean);
            QCOMPARE(node.members.size(), members.size());
            QVERIFY(node.label.rfind(node.id.substr(10), 0) == 0);
        }
    }
    QCOMPARE(ids, expectedIds);

    const auto expected = expectedEdges(g, pr, groups, scope);
    std::map<std::pair<std::string, std::string>, double> actual;
    for (const cs::app::FigureEdge& edge : spec.edges) {
        QVERIFY2(edge.source != edge.target, edge.source.c_str()); // internal edges dropped
        QVERIFY(actual.emplace(std::make_pair(edge.source, edge.target), edge.weight).second);
    }
    QCOMPARE(actual.size(), expected.size());
    for (const auto& [ends, weight] : expected) {
        const auto it = actual.find(ends);
        QVERIFY2(it != actual.end(), (ends.first + " -> " + ends.second).c_str());
        QVERIFY2(std::fabs(it->second - weight) <= 1e-5 * std::max(1.0, std::fabs(weight)),
            (ends.first + " -> " + ends.second + ": " + std::to_string(it->second) + " vs " + std::to_string(weight))
                .c_str());
    }
}

void TestFigure::handWrittenNodeSet()
{
    // The same rule, written out by hand once: cross = {F0, F2}, F3 hidden, F5 pruned.
    const Graph& g = m_graph;
    ExplorerState state;
    state.pinned = idsOf(g, { F0, F2, F4, LA });
    state.supernodes.push_back({ "cross", idsOf(g, { F0, F2 }) });
    state.hidden = idsOf(g, { F3 });

    FigureSpec sub = cs::app::buildFigure(g, partialPrune(g), state, FigureScope::Subgraph);
    std::set<std::string> ids;
    for (const auto& node : sub.nodes)
        ids.insert(node.id);
    QCOMPARE(ids, (std::set<std::string> { "supernode:cross", idOf(g, F4), idOf(g, LA) }));
    // cross -> F4 is A[F4, F0] + A[F4, F2] = -0.5 + 1.25; the internal F0 -> F2 (0.75) is gone.
    bool found = false;
    for (const auto& edge : sub.edges) {
        if (edge.source == "supernode:cross" && edge.target == idOf(g, F4)) {
            QCOMPARE(edge.weight, 0.75);
            found = true;
        }
    }
    QVERIFY(found);

    FigureSpec pruned = cs::app::buildFigure(g, partialPrune(g), state, FigureScope::PrunedGraph);
    ids.clear();
    for (const auto& node : pruned.nodes)
        ids.insert(node.id);
    QCOMPARE(ids,
        (std::set<std::string> { "supernode:cross", idOf(g, F1), idOf(g, F4), idOf(g, E0), idOf(g, E1), idOf(g, T0),
            idOf(g, T1), idOf(g, T2), idOf(g, LA), idOf(g, LB) }));
    // The kept edges only: F2 -> F4 was dropped by the prune result, so cross -> F4 = A[F4, F0].
    for (const auto& edge : pruned.edges) {
        if (edge.source == "supernode:cross" && edge.target == idOf(g, F4))
            QCOMPARE(edge.weight, -0.5);
    }
}

void TestFigure::labels()
{
    const Graph& g = m_graph;
    ExplorerState state;
    state.pinned = idsOf(g, { F0, F1, F3, E1, T1, T2, LA });
    state.labels[cs::app::featureKey(0, 5)] = kUserLabel; // F0: the user's label wins
    state.labels[cs::app::featureKey(1, 3)] = "user label"; // F3: over the graph's own
    FigureOptions options;
    options.featureLabel = [](int64_t layer, int64_t feature) {
        return feature == 7 ? "a very long store label that needs to be wrapped over several lines "
                              "because it is longer than a line and longer still"
                            : "store " + std::to_string(layer);
    };
    options.wrapColumns = 20;
    options.maxLabelLines = 2;
    const FigureSpec spec = cs::app::buildFigure(g, partialPrune(g), state, FigureScope::Subgraph, options);
    const auto label = [&](int64_t i) { return spec.nodes.at(static_cast<size_t>(spec.indexOf(idOf(g, i)))).label; };

    // A feature's first line names it and its position: "L0 #5 @2 token".
    const auto firstLine = [&](int64_t i) {
        const std::string l = label(i);
        return l.substr(0, l.find('\n'));
    };
    const auto rest = [&](int64_t i) {
        const std::string l = label(i);
        return l.substr(l.find('\n') + 1);
    };
    QVERIFY(firstLine(F0).rfind("L0 #5 @" + std::to_string(g.nodes[size_t(F0)].position), 0) == 0);
    QCOMPARE(rest(F0), std::string(kUserLabel));
    QVERIFY(firstLine(F3).rfind("L1 #3 @", 0) == 0);
    QCOMPARE(rest(F3), std::string("user label"));
    const std::string wrapped = label(F1);
    QVERIFY(wrapped.rfind("L0 #7 @", 0) == 0);
    QVERIFY(rest(F1).rfind("a very long store", 0) == 0);
    QCOMPARE(std::count(wrapped.begin(), wrapped.end(), '\n'), 2L); // two label lines
    QVERIFY(wrapped.size() >= 3 && wrapped.substr(wrapped.size() - 3) == "\u2026");
    size_t start = wrapped.find('\n') + 1;
    while (start < wrapped.size()) {
        const size_t end = std::min(wrapped.find('\n', start), wrapped.size());
        QVERIFY(QString::fromStdString(wrapped.substr(start, end - start)).size() <= 20);
        start = end + 1;
    }
    QCOMPARE(label(E1), std::string("Err L1\npos 2 ") + kEntityTokenShown);
    QCOMPARE(label(T1), std::string(kSpecialTokenShown) + "\npos 1");
    QCOMPARE(label(T2), std::string(kEntityTokenShown) + "\npos 2");
    QCOMPARE(label(LA), std::string("Austin\np = 0.6")); // the token as text
    // Every label is valid UTF-8 even where a token holds part of a character.
    for (const auto& node : spec.nodes)
        QCOMPARE(QString::fromStdString(node.label).toStdString(), node.label);
}

void TestFigure::interventions()
{
    const Graph& g = m_graph;
    ExplorerState state;
    state.pinned = idsOf(g, { F0, F1, F2, F4, LA });
    state.supernodes.push_back({ "pair", idsOf(g, { F0, F1 }) });
    Intervention scale;
    scale.target = idOf(g, F4);
    scale.op = InterventionOp::Scale;
    scale.value = -2;
    Intervention ablateGroup;
    ablateGroup.target = "supernode:pair";
    ablateGroup.positions = { -1 };
    Intervention injectMember; // a member of "pair": marks the supernode
    injectMember.target = idOf(g, F1);
    injectMember.op = InterventionOp::Inject;
    injectMember.value = 5;
    Intervention off; // listed, not applied
    off.target = idOf(g, F2);
    off.enabled = false;
    Intervention absent; // a node the figure does not draw
    absent.target = idOf(g, F5);
    state.interventions = { scale, ablateGroup, injectMember, off, absent };

    const FigureSpec spec = cs::app::buildFigure(g, partialPrune(g), state, FigureScope::Subgraph);
    const auto node = [&](const std::string& id) { return spec.nodes.at(static_cast<size_t>(spec.indexOf(id))); };
    QVERIFY(node(idOf(g, F4)).intervened);
    QCOMPARE(node(idOf(g, F4)).annotation, std::string("\u00D7\u22122"));
    QVERIFY(node("supernode:pair").intervened);
    QCOMPARE(node("supernode:pair").annotation, std::string("ablated @all; L0 #7: = 5"));
    QVERIFY(!node(idOf(g, F2)).intervened);
    QVERIFY(node(idOf(g, F2)).annotation.empty());
    QVERIFY(!node(idOf(g, LA)).intervened);
    // The notes: a heading, then every intervention, disabled ones marked.
    QCOMPARE(spec.notes.size(), size_t(6));
    QCOMPARE(spec.notes[0], std::string("Interventions:"));
    QCOMPARE(spec.notes[1], std::string("L2 #9: \u00D7\u22122"));
    QCOMPARE(spec.notes[4], std::string("L1 #11: ablated (off)"));
    QCOMPARE(spec.notes[5], std::string("L2 #2: ablated"));
}

void TestFigure::textHelpers()
{
    QCOMPARE(cs::app::visibleToken(""), std::string("\u2205"));
    QCOMPARE(cs::app::visibleToken(" a\tb\r"), std::string("\u2423a\u21E5b<0x0D>"));
    QCOMPARE(cs::app::visibleToken("\xC3\xA9\xC3"), std::string("\xC3\xA9<0xC3>")); // é, then a stray lead byte
    QCOMPARE(cs::app::visibleText(" a b\n"), std::string(" a b\u23CE"));
    QCOMPARE(cs::app::formatNumber(-2), std::string("\u22122"));
    QCOMPARE(cs::app::formatNumber(0.125), std::string("0.125"));
    QCOMPARE(cs::app::formatNumber(12345), std::string("1.23e+04"));
}

void TestFigure::badPruneResult()
{
    PruneResult pr = cs::graph::keepAll(m_graph);
    pr.nodeMask.pop_back();
    QVERIFY_THROWS_EXCEPTION(
        cs::Error, cs::app::buildFigure(m_graph, pr, baseState(m_graph), FigureScope::PrunedGraph));
    // The subgraph scope does not read the prune result.
    QVERIFY(!cs::app::buildFigure(m_graph, pr, baseState(m_graph), FigureScope::Subgraph).nodes.empty());
}

// A feature nobody labelled shows its automatic description apart from labels (grey italics, an
// HTML label); a labelled one does not; the heading carries a key to shapes and edge colours.
void TestFigure::automaticDescriptionsApartAndLegend()
{
    const Graph& g = m_graph;
    ExplorerState state;
    state.pinned = idsOf(g, { F0, F1, F3, T1, LA });
    state.labels[cs::app::featureKey(0, 5)] = kUserLabel; // F0
    FigureOptions options;
    options.autoCaption = [](int64_t layer, int64_t feature) {
        return "auto " + std::to_string(layer) + "/" + std::to_string(feature);
    };
    const FigureSpec spec = cs::app::buildFigure(g, partialPrune(g), state, FigureScope::Subgraph, options);
    const auto node = [&](int64_t i) { return spec.nodes.at(static_cast<size_t>(spec.indexOf(idOf(g, i)))); };
    QVERIFY(node(F0).autoLabel.empty()); // the user's label
    QCOMPARE(node(F1).autoLabel, std::string("auto 0/7"));
    QVERIFY(node(F1).label.find("auto 0/7") == std::string::npos); // not mixed into the label
    const std::string dot = cs::app::toDot(spec);
    QVERIFY(dot.find("<I>auto 0/7</I>") != std::string::npos);
    QVERIFY(dot.find("excites") != std::string::npos && dot.find("inhibits") != std::string::npos);
    const QString path = m_dir.filePath("described.svg");
    cs::app::exportFigure(spec, path.toStdString(), FigureFormat::Svg);
    const SvgContent svg = readSvg(path);
    QVERIFY2(svg.error.isEmpty(), qPrintable(svg.error));
    QVERIFY2(svg.texts.contains(QStringLiteral("auto 0/7")), qPrintable(svg.texts.join(" | ")));
    for (const char* key : { "token", "feature", "error", "supernode", "output" })
        QVERIFY2(svg.texts.contains(QString::fromLatin1(key)), key);
}

void TestFigure::layoutInvariants()
{
    const FigureSpec spec = richSpec(m_graph);
    const FigureLayout layout = cs::app::layoutFigure(spec);
    QCOMPARE(layout.padding, 0.08 * 72); // tight margins
    const QString problem = layoutProblem(spec, layout);
    QVERIFY2(problem.isEmpty(), qPrintable(problem));
    // The supernode (mean layer 0.5) has a rank of its own between layers 0 and 1.
    const auto& supernode = layout.nodes[static_cast<size_t>(spec.indexOf(std::string("supernode:") + kSupernodeName))];
    const auto& layer0 = layout.nodes[static_cast<size_t>(spec.indexOf(idOf(m_graph, F1)))];
    const auto& layer1 = layout.nodes[static_cast<size_t>(spec.indexOf(idOf(m_graph, F3)))];
    QVERIFY(supernode.y < layer0.y && supernode.y > layer1.y);
}

void TestFigure::layoutFromManyThreads()
{
    // Graphviz is not thread-safe; the figure's mutex makes concurrent calls safe and the layout
    // deterministic.
    const FigureSpec spec = richSpec(m_graph);
    const FigureLayout reference = cs::app::layoutFigure(spec);
    std::atomic<int> mismatches { 0 };
    std::atomic<int> failures { 0 };
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&]() {
            for (int k = 0; k < 3; ++k) {
                try {
                    const FigureLayout layout = cs::app::layoutFigure(spec);
                    for (size_t i = 0; i < layout.nodes.size(); ++i) {
                        if (layout.nodes[i].x != reference.nodes[i].x || layout.nodes[i].y != reference.nodes[i].y)
                            ++mismatches;
                    }
                } catch (const cs::Error&) {
                    ++failures;
                }
            }
        });
    }
    for (auto& thread : threads)
        thread.join();
    QCOMPARE(failures.load(), 0);
    QCOMPARE(mismatches.load(), 0);
}

void TestFigure::dotText()
{
    const FigureSpec spec = richSpec(m_graph);
    const std::string dot = cs::app::toDot(spec);
    QVERIFY(dot.find("rankdir=BT") != std::string::npos);
    // Every node once, by index, with its id; quotes and backslashes escaped.
    for (size_t i = 0; i < spec.nodes.size(); ++i)
        QVERIFY(dot.find("  n" + std::to_string(i) + " [id=") != std::string::npos);
    QVERIFY(dot.find("id=\"supernode:Say \\\"capital\\\" <&>\"") != std::string::npos);
    QVERIFY(dot.find("&amp;") != std::string::npos); // '&' in labels kept from entity decoding
    QVERIFY(dot.find('\xE2' + std::string("\n")) == std::string::npos);
}

void TestFigure::exportSvg()
{
    const FigureSpec spec = richSpec(m_graph);
    const QString path = m_dir.filePath("figure.svg");
    cs::app::exportFigure(spec, path.toStdString(), FigureFormat::Svg);
    const SvgContent svg = readSvg(path);
    QVERIFY2(svg.error.isEmpty(), qPrintable(svg.error));
    for (const auto& node : spec.nodes)
        QVERIFY2(svg.nodeIds.contains(QString::fromStdString(node.id)), node.id.c_str());
    const QStringList lines = svg.texts;
    QVERIFY2(lines.contains(QString::fromUtf8(kSupernodeName)), qPrintable(lines.join(" | ")));
    QVERIFY(lines.contains(QString::fromUtf8(kSpecialTokenShown)));
    QVERIFY(lines.contains(QString::fromUtf8(kEntityTokenShown)));
    QVERIFY(lines.contains(QString::fromUtf8(kUserLabel)));
    QVERIFY2(lines.contains(QString::fromUtf8(kBackslashLabel)), qPrintable(lines.join(" | ")));
    QVERIFY(lines.contains(QString::fromUtf8(kBackslashName)));
    QVERIFY(std::any_of(lines.begin(), lines.end(), [](const QString& l) { return l.startsWith("L1 #3 @"); }));
    QVERIFY(lines.contains(QString::fromUtf8("store label of 2/9")));
    QVERIFY(lines.contains(QString::fromUtf8("ablated")));
    // The title: the prompt with its newline shown.
    QVERIFY(lines.contains(QString::fromUtf8("Fact <b>&\"x\"\u23CE")));
    QVERIFY(lines.contains(QString::fromUtf8("Interventions:")));
    // No temporary file left beside it.
    QCOMPARE(QDir(m_dir.path()).entryList({ "figure.svg*" }, QDir::Files), QStringList { "figure.svg" });
}

void TestFigure::exportPng_data()
{
    QTest::addColumn<double>("dpi");
    QTest::addColumn<bool>("dark");
    QTest::newRow("72 dpi") << 72.0 << false;
    QTest::newRow("150 dpi") << 150.0 << false;
    QTest::newRow("100 dpi, dark") << 100.0 << true;
}

void TestFigure::exportPng()
{
    QFETCH(double, dpi);
    QFETCH(bool, dark);
    const FigureSpec spec = richSpec(m_graph, dark ? cs::app::FigureTheme::Dark : cs::app::FigureTheme::Light);
    QCOMPARE(spec.theme, dark ? cs::app::FigureTheme::Dark : cs::app::FigureTheme::Light);
    for (const auto& node : spec.nodes)
        QCOMPARE(node.fillColor, cs::app::defaultFillColor(node.kind, spec.theme));
    const FigureLayout layout = cs::app::layoutFigure(spec);
    const QString path = m_dir.filePath(QString("figure-%1-%2.png").arg(dpi).arg(dark));
    cs::app::ExportOptions options;
    options.dpi = dpi;
    cs::app::exportFigure(spec, path.toStdString(), FigureFormat::Png, options);
    QImage image(path);
    QVERIFY(!image.isNull());
    const double expectedWidth = (layout.width + 2 * layout.padding) * dpi / 72;
    const double expectedHeight = (layout.height + 2 * layout.padding) * dpi / 72;
    QVERIFY2(std::fabs(image.width() - expectedWidth) <= 1,
        qPrintable(QString("%1 vs %2").arg(image.width()).arg(expectedWidth)));
    QVERIFY2(std::fabs(image.height() - expectedHeight) <= 1,
        qPrintable(QString("%1 vs %2").arg(image.height()).arg(expectedHeight)));

    // Not blank: the background (the corner) and several other colours, over a fair share.
    const QRgb background = image.pixel(0, 0);
    if (dark)
        QVERIFY(qRed(background) < 64 && qGreen(background) < 64 && qBlue(background) < 64);
    else
        QCOMPARE(background, qRgb(255, 255, 255));
    QSet<QRgb> colours;
    qint64 drawn = 0;
    for (int y = 0; y < image.height(); ++y) {
        for (int x = 0; x < image.width(); ++x) {
            const QRgb pixel = image.pixel(x, y);
            colours.insert(pixel);
            if (pixel != background)
                ++drawn;
        }
    }
    QVERIFY2(colours.size() >= 8, qPrintable(QString::number(colours.size())));
    QVERIFY(drawn > static_cast<qint64>(image.width()) * image.height() / 20);
    const QByteArray out = qgetenv("CS_FIGURE_OUT"); // to look at
    if (!out.isEmpty() && QDir().mkpath(QString::fromLocal8Bit(out)))
        QFile::copy(path, QString::fromLocal8Bit(out) + "/" + QFileInfo(path).fileName());
}

void TestFigure::exportPdf()
{
    const QString path = m_dir.filePath("figure.pdf");
    cs::app::exportFigure(richSpec(m_graph), path.toStdString(), FigureFormat::Pdf);
    const QByteArray bytes = readAll(path);
    QVERIFY(bytes.startsWith("%PDF-"));
    QVERIFY(bytes.trimmed().endsWith("%%EOF"));
    QVERIFY(bytes.contains("/Type /Page"));
}

void TestFigure::formatFromPath_data()
{
    QTest::addColumn<QString>("path");
    QTest::addColumn<int>("format"); // -1: refused
    QTest::newRow("svg") << "/a/b.svg" << int(FigureFormat::Svg);
    QTest::newRow("PDF") << "/a/b.PDF" << int(FigureFormat::Pdf);
    QTest::newRow("png, dotted folder") << "/a.b/c.d.png" << int(FigureFormat::Png);
    QTest::newRow("jpeg") << "/a/b.jpg" << -1;
    QTest::newRow("none") << "/a/b" << -1;
    QTest::newRow("dot in folder only") << "/a.svg/b" << -1;
}

void TestFigure::formatFromPath()
{
    QFETCH(QString, path);
    QFETCH(int, format);
    if (format < 0) {
        try {
            cs::app::formatFromPath(path.toStdString());
            QFAIL("accepted");
        } catch (const cs::Error& e) {
            QVERIFY2(QString(e.what()).contains(path), e.what());
        }
    } else {
        QCOMPARE(int(cs::app::formatFromPath(path.toStdString())), format);
    }
}

void TestFigure::refusals()
{
    const FigureSpec spec = richSpec(m_graph);
    const QString existing = m_dir.filePath("keep.svg");
    cs::test::writeTextFile(existing, "<svg>old</svg>");

    // An empty figure over an existing file: refused, the file kept.
    try {
        cs::app::exportFigure(FigureSpec {}, existing.toStdString(), FigureFormat::Svg);
        QFAIL("exported an empty figure");
    } catch (const cs::Error& e) {
        QVERIFY2(QString(e.what()).contains(existing), e.what());
    }
    QCOMPARE(readAll(existing), QByteArray("<svg>old</svg>"));
    QVERIFY_THROWS_EXCEPTION(cs::Error, cs::app::layoutFigure(FigureSpec {}));

    // A folder that does not exist.
    const QString missing = m_dir.filePath("no/such/folder/figure.png");
    try {
        cs::app::exportFigure(spec, missing.toStdString(), FigureFormat::Png);
        QFAIL("exported into a missing folder");
    } catch (const cs::Error& e) {
        QVERIFY2(QString(e.what()).contains(missing), e.what());
    }

    // An edge naming a node the figure lacks.
    FigureSpec broken = spec;
    broken.edges.push_back({ "nowhere", spec.nodes.front().id, 1.0 });
    QVERIFY_THROWS_EXCEPTION(cs::Error, cs::app::toDot(broken));

    // A resolution out of range.
    cs::app::ExportOptions options;
    options.dpi = 0;
    QVERIFY_THROWS_EXCEPTION(
        cs::Error, cs::app::exportFigure(spec, m_dir.filePath("x.png").toStdString(), FigureFormat::Png, options));
    QVERIFY(!QFile::exists(m_dir.filePath("x.png")));

    // Exporting over an existing file replaces it whole.
    cs::app::exportFigure(spec, existing.toStdString(), FigureFormat::Svg);
    QVERIFY(readSvg(existing).error.isEmpty());
    QVERIFY(readAll(existing).size() > 1000);
}

void TestFigure::unwritableFolder()
{
    const QString folder = m_dir.filePath("locked");
    QVERIFY(QDir().mkpath(folder));
    const QString existing = folder + "/figure.svg";
    cs::test::writeTextFile(existing, "<svg>old</svg>");
    QFile::setPermissions(folder, QFileDevice::ReadOwner | QFileDevice::ExeOwner);
    bool immutable = false;
    if (isWritableFolder(folder)) {
        // Root ignores permissions; an immutable folder stops it where the file system allows.
        immutable = QProcess::execute("chattr", { "+i", folder }) == 0 && !isWritableFolder(folder);
    }
    struct Restore {
        QString folder;
        bool immutable;
        ~Restore()
        {
            if (immutable)
                QProcess::execute("chattr", { "-i", folder });
            QFile::setPermissions(folder, QFileDevice::ReadOwner | QFileDevice::WriteOwner | QFileDevice::ExeOwner);
        }
    } restore { folder, immutable };
    if (isWritableFolder(folder))
        QSKIP("cannot make a folder unwritable here (root without chattr)");

    try {
        cs::app::exportFigure(richSpec(m_graph), existing.toStdString(), FigureFormat::Svg);
        QFAIL("exported into an unwritable folder");
    } catch (const cs::Error& e) {
        QVERIFY2(QString(e.what()).contains(existing), e.what());
    }
    QCOMPARE(readAll(existing), QByteArray("<svg>old</svg>"));
    QCOMPARE(QDir(folder).entryList(QDir::Files | QDir::Hidden), QStringList { "figure.svg" });
}

// The real start-up graph: tinyworld's canonical prompt traced with its shipped CLT, pruned at
// the default thresholds; both scopes laid out and exported. With CS_FIGURE_OUT set, the
// figures are also written there (to look at).
void TestFigure::tinyworld()
{
    std::string folder;
    try {
        folder = cs::resolveModelFolder("tinyworld");
    } catch (const cs::Error& e) {
        QSKIP(e.what());
    }
    const auto model = cs::model::Model::load(folder, { "cpu", true });
    const auto transcoders
        = cs::transcoder::TranscoderSet::load(cs::transcoder::resolveTranscoderFolder(folder, "clt"));
    const auto context = cs::attribution::buildContext(model, transcoders,
        at::tensor(model->tokenizer().encode("Fact: the capital of the state containing Dallas is")));
    const Graph graph = cs::attribution::trace(context, {}).graph;
    const cs::graph::Pruner pruner(graph);
    const PruneResult pruned = pruner.prune(0.8, 0.98);

    // Pin the kept features with the largest influence; group the first two.
    std::vector<int64_t> features;
    for (int64_t i = graph.ranges().features.begin; i < graph.ranges().features.end; ++i) {
        if (pruned.nodeMask[static_cast<size_t>(i)])
            features.push_back(i);
    }
    QVERIFY(features.size() >= 6);
    const float* influence = pruner.influence().data();
    std::sort(features.begin(), features.end(), [&](int64_t a, int64_t b) { return influence[a] > influence[b]; });
    features.resize(6);
    ExplorerState state;
    state.pinned = idsOf(graph, features);
    state.pinned.push_back(idOf(graph, graph.ranges().logits.begin));
    for (int64_t i = graph.ranges().embeddings.begin; i < graph.ranges().embeddings.end; ++i) {
        if (graph.nodes[static_cast<size_t>(i)].token == " Dallas")
            state.pinned.push_back(idOf(graph, i));
    }
    state.supernodes.push_back({ "top two", { state.pinned[0], state.pinned[1] } });
    Intervention ablate;
    ablate.target = "supernode:top two";
    state.interventions.push_back(ablate);
    FigureOptions options;
    const cs::graph::Scores scores = pruner.scores();
    options.scores = "replacement " + cs::app::formatNumber(scores.replacement) + " \u00B7 completeness "
        + cs::app::formatNumber(scores.completeness);

    const QByteArray out = qgetenv("CS_FIGURE_OUT");
    for (FigureScope scope : { FigureScope::Subgraph, FigureScope::PrunedGraph }) {
        const FigureSpec spec = cs::app::buildFigure(graph, pruned, state, scope, options);
        const FigureLayout layout = cs::app::layoutFigure(spec);
        const QString problem = layoutProblem(spec, layout);
        QVERIFY2(problem.isEmpty(), qPrintable(problem));
        const std::string name = scope == FigureScope::Subgraph ? "subgraph" : "pruned";
        const QString svg = m_dir.filePath(QString::fromStdString("tinyworld-" + name + ".svg"));
        cs::app::exportFigure(spec, svg.toStdString(), FigureFormat::Svg);
        const SvgContent content = readSvg(svg);
        QVERIFY2(content.error.isEmpty(), qPrintable(content.error));
        QCOMPARE(content.nodeIds.size(), qsizetype(spec.nodes.size()));
        QVERIFY(content.texts.contains("top two"));
        if (!out.isEmpty()) {
            QDir().mkpath(QString::fromLocal8Bit(out));
            for (const char* ext : { ".svg", ".pdf", ".png" }) {
                const std::string path = QString::fromLocal8Bit(out).toStdString() + "/tinyworld-" + name + ext;
                cs::app::exportFigure(spec, path, cs::app::formatFromPath(path));
            }
        }
    }
}

QTEST_GUILESS_MAIN(TestFigure)
#include "tst_figure.moc"
