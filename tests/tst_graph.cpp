// Attribution graphs: influence, pruning and scores checked against brute-force computations
// written here from the definitions (float64, an explicit matrix inverse, full sorts,
// circuit-tracer's repeated dangling-node sweeps) on small random DAGs in circuit-tracer's node
// order; the graph JSON checked against Neuronpedia's JSON Schema, round trips, a file built
// exactly as circuit-tracer writes it (with the older colliding error ids), and broken files
// refused with messages that name the place. Fast: label unit, also run under ASan.

#include "graph_nodes.h"
#include "graph_reference.h"
#include "hf_fixtures.h"
#include "json_schema.h"

#include "cs/error.h"
#include "cs/graph.h"
#include "cs/graph_paths.h"
#include "cs/safetensors.h"

#include <ATen/ATen.h>

#include <QDir>
#include <QElapsedTimer>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <fstream>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <sys/stat.h>
#include <tuple>

using cs::graph::Graph;
using cs::graph::Node;
using cs::graph::NodeKind;
using cs::graph::Pruner;
using cs::graph::PruneResult;
using nlohmann::json;
using namespace cs::test;

namespace {

// A random graph: features at random (layer, position, index), every error node, one
// embedding per position, logits at the last position; an edge s -> t may exist when s sits at
// a lower layer and no later position than t, t is a feature or a logit, and s is not a logit.
struct Spec {
    int64_t nLayers = 3;
    int64_t nPos = 4;
    int64_t nFeatures = 20;
    int64_t nLogits = 3;
    double density = 0.3; // the chance that an allowed edge exists
    uint64_t seed = 1;
};

using cs::test::edgeAllowed; // graph_nodes.h
using cs::test::levelOf;

Graph randomGraph(const Spec& spec)
{
    std::mt19937_64 rng(spec.seed);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    std::normal_distribution<double> normal(0.0, 1.0);
    Graph g;
    std::set<std::tuple<int64_t, int64_t, int64_t>> used;
    while (static_cast<int64_t>(g.nodes.size()) < spec.nFeatures) {
        Node f;
        f.kind = NodeKind::Feature;
        f.layer = static_cast<int64_t>(rng() % spec.nLayers);
        f.position = static_cast<int64_t>(rng() % spec.nPos);
        f.feature = static_cast<int64_t>(rng() % (8 * spec.nFeatures));
        if (!used.insert({ f.layer, f.feature, f.position }).second)
            continue;
        f.activation = 0.1 + 3 * uniform(rng);
        f.label = "feature " + std::to_string(g.nodes.size());
        g.nodes.push_back(f);
    }
    for (int64_t l = 0; l < spec.nLayers; ++l)
        for (int64_t p = 0; p < spec.nPos; ++p) {
            Node e;
            e.kind = NodeKind::Error;
            e.layer = l;
            e.position = p;
            g.nodes.push_back(e);
        }
    for (int64_t p = 0; p < spec.nPos; ++p) {
        Node e;
        e.kind = NodeKind::Embedding;
        e.layer = -1;
        e.position = p;
        e.tokenId = 100 + 7 * p;
        e.token = "tok" + std::to_string(p);
        g.nodes.push_back(e);
        g.metadata.promptTokens.push_back(e.token);
        g.metadata.prompt += e.token;
    }
    double remaining = 0.95;
    std::vector<float> probabilities;
    for (int64_t k = 0; k < spec.nLogits; ++k) {
        Node l;
        l.kind = NodeKind::Logit;
        l.layer = spec.nLayers;
        l.position = spec.nPos - 1;
        l.tokenId = 1000 + k;
        l.token = " out" + std::to_string(k);
        l.tokenProb = remaining * 0.6;
        remaining -= l.tokenProb;
        probabilities.push_back(static_cast<float>(l.tokenProb));
        g.nodes.push_back(l);
    }
    const int64_t n = g.size();
    std::vector<float> a(static_cast<size_t>(n * n), 0.0f);
    for (int64_t t = 0; t < n; ++t)
        for (int64_t s = 0; s < n; ++s)
            if (edgeAllowed(g.nodes[t], g.nodes[s]) && uniform(rng) < spec.density)
                a[t * n + s] = static_cast<float>(normal(rng));
    g.adjacency = cs::graph::Adjacency::fromDense(at::from_blob(a.data(), { n, n }, at::kFloat));
    g.logitProbabilities = probabilities;
    g.metadata.slug = "random-" + std::to_string(spec.seed);
    g.metadata.scan = "test-scan";
    g.metadata.transcoderList = { "tc-a", "tc-b" };
    return g;
}

using cs::test::checkSchema;

json graphSchema()
{
    std::ifstream in(CS_GRAPH_SCHEMA);
    if (!in)
        return nullptr;
    return json::parse(in);
}

// The keys and types the schema requires, checked one by one (works without the schema file).
void checkRequiredKeys(const json& doc)
{
    QVERIFY(doc.is_object());
    for (const char* key : { "metadata", "qParams", "nodes", "links" })
        QVERIFY2(doc.contains(key), key);
    const json& m = doc["metadata"];
    QVERIFY(m["slug"].is_string() && m["scan"].is_string() && m["prompt"].is_string());
    QVERIFY(m["prompt_tokens"].is_array());
    for (const json& t : m["prompt_tokens"])
        QVERIFY(t.is_string());
    QVERIFY(doc["qParams"].is_object());
    for (const json& node : doc["nodes"]) {
        QVERIFY(node["node_id"].is_string() && node["jsNodeId"].is_string() && node["clerp"].is_string());
        QVERIFY(node["feature"].is_number_integer() && node["ctx_idx"].is_number_integer());
        QVERIFY(node["layer"].is_string() && node["feature_type"].is_string());
        QVERIFY(node["influence"].is_null() || node["influence"].is_number());
        QVERIFY(node["activation"].is_null() || node["activation"].is_number());
    }
    for (const json& link : doc["links"])
        QVERIFY(link["source"].is_string() && link["target"].is_string() && link["weight"].is_number());
}

// A file exactly as circuit-tracer's create_graph_files writes it, from a version whose error
// ids are "0_{layer}_{pos}": the error at layer 1, position 2 has the id of the layer-0
// feature 1 at position 2. Nodes in circuit-tracer's order, links by target then source.
// (The logits' clerps are set in circuitTracerFile(): moc misreads \" inside a raw string.)
const char* const kCircuitTracerFile = R"({
  "metadata": {"slug": "cat-mat", "scan": "tiny-scan", "transcoder_list": [],
    "prompt_tokens": ["<bos>", "The", " cat"], "prompt": "The cat", "node_threshold": 0.8,
    "schema_version": 1},
  "qParams": {"pinnedIds": ["1_7_2"], "supernodes": [["cats", "0_1_2", "1_7_2"]], "linkType": "both",
    "clickedId": "", "sg_pos": ""},
  "nodes": [
    {"node_id": "0_1_2", "feature": 2, "layer": "0", "ctx_idx": 2, "feature_type": "cross layer transcoder",
     "token_prob": 0.0, "is_target_logit": false, "run_idx": 0, "reverse_ctx_idx": 0, "jsNodeId": "0_1-0",
     "clerp": "cat detector", "influence": 0.4, "activation": 2.5},
    {"node_id": "1_7_2", "feature": 43, "layer": "1", "ctx_idx": 2, "feature_type": "cross layer transcoder",
     "token_prob": 0.0, "is_target_logit": false, "run_idx": 0, "reverse_ctx_idx": 0, "jsNodeId": "1_7-0",
     "clerp": "", "influence": 0.2, "activation": 1.25},
    {"node_id": "0_0_1", "feature": -1, "layer": "0", "ctx_idx": 1, "feature_type": "mlp reconstruction error",
     "token_prob": 0.0, "is_target_logit": false, "run_idx": 0, "reverse_ctx_idx": 0, "jsNodeId": "0_1-0",
     "clerp": "", "influence": 0.7, "activation": null},
    {"node_id": "0_1_2", "feature": -1, "layer": "1", "ctx_idx": 2, "feature_type": "mlp reconstruction error",
     "token_prob": 0.0, "is_target_logit": false, "run_idx": 0, "reverse_ctx_idx": 0, "jsNodeId": "1_2-0",
     "clerp": "", "influence": 0.6, "activation": null},
    {"node_id": "E_2_0", "feature": 0, "layer": "E", "ctx_idx": 0, "feature_type": "embedding",
     "token_prob": 0.0, "is_target_logit": false, "run_idx": 0, "reverse_ctx_idx": 0, "jsNodeId": "E_2-0",
     "clerp": "", "influence": 0.9, "activation": null},
    {"node_id": "E_450_1", "feature": 1, "layer": "E", "ctx_idx": 1, "feature_type": "embedding",
     "token_prob": 0.0, "is_target_logit": false, "run_idx": 0, "reverse_ctx_idx": 0, "jsNodeId": "E_450-1",
     "clerp": "", "influence": 0.95, "activation": null},
    {"node_id": "E_9_2", "feature": 2, "layer": "E", "ctx_idx": 2, "feature_type": "embedding",
     "token_prob": 0.0, "is_target_logit": false, "run_idx": 0, "reverse_ctx_idx": 0, "jsNodeId": "E_9-2",
     "clerp": "", "influence": 1.0, "activation": null},
    {"node_id": "3_42_2", "feature": 42, "layer": "3", "ctx_idx": 2, "feature_type": "logit",
     "token_prob": 0.7, "is_target_logit": true, "run_idx": 0, "reverse_ctx_idx": 0, "jsNodeId": "L_42-2",
     "clerp": "", "influence": null, "activation": null},
    {"node_id": "3_43_2", "feature": 43, "layer": "3", "ctx_idx": 2, "feature_type": "logit",
     "token_prob": 0.2, "is_target_logit": false, "run_idx": 0, "reverse_ctx_idx": 0, "jsNodeId": "L_43-2",
     "clerp": "", "influence": null, "activation": null}
  ],
  "links": [
    {"source": "E_9_2", "target": "0_1_2", "weight": 1.5},
    {"source": "0_1_2", "target": "1_7_2", "weight": 0.5},
    {"source": "0_0_1", "target": "1_7_2", "weight": 0.25},
    {"source": "E_9_2", "target": "1_7_2", "weight": -0.75},
    {"source": "0_1_2", "target": "3_42_2", "weight": 0.3},
    {"source": "1_7_2", "target": "3_42_2", "weight": 2.0},
    {"source": "0_1_2", "target": "3_42_2", "weight": -0.2},
    {"source": "1_7_2", "target": "3_43_2", "weight": 0.4},
    {"source": "0_1_2", "target": "3_43_2", "weight": 0.1}
  ]
})";

json circuitTracerFile()
{
    json doc = json::parse(kCircuitTracerFile);
    doc["nodes"][7]["clerp"] = "Output \" mat\" (p=0.700)";
    doc["nodes"][8]["clerp"] = "Output \" hat\" (p=0.200)";
    return doc;
}

// The parts of a graph file, to be changed and written again by the refusal cases.
struct FileParts {
    json doc; // the "circuitscope.graph" metadata, parsed
    at::Tensor rowStarts, columns, values; // the adjacency's arrays
    at::Tensor logitProbabilities;
};

FileParts readParts(const std::string& path)
{
    const auto file = cs::io::SafetensorsFile::open(path);
    return { json::parse(file->metadata().at(cs::graph::kGraphFileMetadataKey)),
        file->tensor("adjacency.row_starts").clone(), file->tensor("adjacency.columns").clone(),
        file->tensor("adjacency.values").clone(), file->tensor("logit_probabilities").clone() };
}

void writeParts(const std::string& path, const FileParts& parts, const std::string& metadataText)
{
    cs::io::SafetensorsWriter writer;
    if (parts.rowStarts.defined())
        writer.add("adjacency.row_starts", parts.rowStarts);
    if (parts.columns.defined())
        writer.add("adjacency.columns", parts.columns);
    if (parts.values.defined())
        writer.add("adjacency.values", parts.values);
    if (parts.logitProbabilities.defined())
        writer.add("logit_probabilities", parts.logitProbabilities);
    if (!metadataText.empty())
        writer.setMetadata(cs::graph::kGraphFileMetadataKey, metadataText);
    writer.write(path);
}

std::string readBytes(const std::string& path)
{
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

void writeBytes(const std::string& path, const std::string& bytes)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
}

} // namespace

Q_DECLARE_METATYPE(Spec)

class TestGraph : public QObject {
    Q_OBJECT

    static void addSpecs()
    {
        QTest::addColumn<Spec>("spec");
        QTest::newRow("dense 2 layers") << Spec { 2, 3, 10, 2, 0.5, 1 };
        QTest::newRow("3 layers") << Spec { 3, 4, 30, 3, 0.3, 2 };
        QTest::newRow("sparse 4 layers") << Spec { 4, 5, 60, 4, 0.08, 3 };
        QTest::newRow("deep 6 layers") << Spec { 6, 3, 50, 2, 0.2, 4 };
    }

private Q_SLOTS:
    void nodeIdsAndHelpers()
    {
        const Graph g = randomGraph({ 2, 3, 4, 2, 0.5, 9 });
        const auto r = g.ranges();
        QCOMPARE(r.features.begin, 0);
        QCOMPARE(r.errors.begin, 4);
        QCOMPARE(r.embeddings.begin, 10);
        QCOMPARE(r.logits.begin, 13);
        QCOMPARE(r.logits.end, 15);
        QCOMPARE(g.nLayers(), 2);
        QCOMPARE(g.nPositions(), 3);
        QCOMPARE(cs::graph::cantorPairing(2, 3), 18); // (2 + 3)(2 + 3 + 1) / 2 + 3
        QCOMPARE(cs::graph::cantorPairing(0, 253), 32384);
        const Node& f = g.nodes[0];
        QCOMPARE(cs::graph::nodeId(g, 0),
            std::to_string(f.layer) + "_" + std::to_string(f.feature) + "_" + std::to_string(f.position));
        QCOMPARE(cs::graph::nodeId(g, r.errors.begin + 4), std::string("1_-1_1")); // layer 1, position 1
        QCOMPARE(cs::graph::nodeId(g, r.embeddings.begin + 2), std::string("E_114_2"));
        QCOMPARE(cs::graph::nodeId(g, r.logits.begin + 1), std::string("3_1001_2")); // layer n_layers + 1

        Graph bad = g;
        std::swap(bad.nodes[0], bad.nodes[r.errors.begin]);
        QVERIFY_THROWS_EXCEPTION(cs::Error, bad.validate());
        bad = g;
        bad.adjacency = cs::graph::Adjacency(3);
        QVERIFY_THROWS_EXCEPTION(cs::Error, Pruner { bad });
        bad = g;
        at::Tensor withNan = g.adjacency.dense();
        withNan[1][0] = std::nanf("");
        bad.adjacency = cs::graph::Adjacency::fromDense(withNan);
        QVERIFY_THROWS_EXCEPTION(cs::Error, Pruner { bad });
        bad = g;
        bad.logitProbabilities = std::vector<float>(5, 1.0f);
        QVERIFY_THROWS_EXCEPTION(cs::Error, Pruner { bad });
    }

    // The sparse rows against the dense matrix they came from: every access path, the builder
    // with rows in any order, and the inconsistencies it refuses.
    void adjacency_data() { addSpecs(); }
    void adjacency()
    {
        QFETCH(Spec, spec);
        const Graph g = randomGraph(spec);
        const int64_t n = g.size();
        const cs::graph::Adjacency& a = g.adjacency;
        const at::Tensor dense = a.dense();
        QCOMPARE(a.size(), n);
        QCOMPARE(a.nnz(), (dense != 0).sum().item<int64_t>());
        QVERIFY(cs::graph::Adjacency::fromDense(dense) == a);
        QVERIFY(cs::graph::Adjacency::fromDense(dense.to(at::kDouble)) == a);
        auto d = dense.accessor<float, 2>();
        int64_t entry = 0;
        for (int64_t t = 0; t < n; ++t) {
            const cs::graph::Adjacency::Row row = a.row(t);
            QCOMPARE(row.begin, entry);
            for (int64_t k = 0; k < row.size; ++k, ++entry) {
                QVERIFY(k == 0 || row.columns[k] > row.columns[k - 1]);
                QCOMPARE(row.values[k], d[t][row.columns[k]]);
                QCOMPARE(a.rowOf(row.entry(k)), t);
            }
            for (int64_t s = 0; s < n; ++s) {
                QCOMPARE(a.value(t, s), d[t][s]);
                QCOMPARE(a.find(t, s) >= 0, d[t][s] != 0.0f);
            }
        }
        QCOMPARE(a.value(-1, 0), 0.0f);
        QCOMPARE(a.find(0, n), int64_t(-1));
        // Columns (outgoing edges) from the transposed index, by increasing target.
        for (int64_t s = 0; s < n; ++s) {
            const cs::graph::Adjacency::Column column = a.column(s);
            std::vector<int64_t> expected;
            for (int64_t t = 0; t < n; ++t)
                if (d[t][s] != 0.0f)
                    expected.push_back(t);
            QCOMPARE(column.size, static_cast<int64_t>(expected.size()));
            for (int64_t k = 0; k < column.size; ++k) {
                QCOMPARE(static_cast<int64_t>(column.targets[k]), expected[k]);
                QCOMPARE(a.values()[a.find(column.targets[k], s)], d[column.targets[k]][s]);
            }
        }

        // Rows in a shuffled order, each with its entries shuffled and a zero added.
        std::mt19937_64 rng(spec.seed);
        std::vector<int64_t> order(static_cast<size_t>(n));
        std::iota(order.begin(), order.end(), 0);
        std::shuffle(order.begin(), order.end(), rng);
        cs::graph::AdjacencyBuilder builder(n);
        for (int64_t t : order) {
            std::vector<std::pair<int32_t, float>> entries;
            for (int64_t s = 0; s < n; ++s)
                if (d[t][s] != 0.0f)
                    entries.emplace_back(static_cast<int32_t>(s), d[t][s]);
            entries.emplace_back(static_cast<int32_t>(rng() % n), 0.0f);
            std::shuffle(entries.begin(), entries.end(), rng);
            std::vector<int32_t> columns;
            std::vector<float> values;
            std::set<int32_t> seen;
            for (const auto& [c, v] : entries)
                if (seen.insert(c).second) { // the zero may land on a column in use: skip it then
                    columns.push_back(c);
                    values.push_back(v);
                } else if (v != 0.0f) {
                    const auto at = std::find(columns.begin(), columns.end(), c) - columns.begin();
                    values[static_cast<size_t>(at)] = v;
                }
            builder.setRow(t, columns, values);
        }
        QCOMPARE(builder.nnz(), a.nnz());
        QVERIFY(builder.build() == a);

        // Copies share the arrays; a different value is a different matrix.
        const cs::graph::Adjacency copy = a;
        QCOMPARE(copy.values(), a.values());
        at::Tensor changed = dense.clone();
        changed[n - 1][0] = 1.5f;
        QVERIFY(cs::graph::Adjacency::fromDense(changed) != a);

        // Refused: a row given twice, a column outside the matrix or named twice, arrays that
        // do not fit together.
        cs::graph::AdjacencyBuilder twice(3);
        twice.setRow(1, std::vector<int32_t> { 0 }, std::vector<float> { 1.0f });
        QVERIFY_THROWS_EXCEPTION(cs::Error, twice.setRow(1, std::vector<int32_t> { 2 }, std::vector<float> { 1.0f }));
        QVERIFY_THROWS_EXCEPTION(cs::Error, twice.setRow(2, std::vector<int32_t> { 3 }, std::vector<float> { 1.0f }));
        QVERIFY_THROWS_EXCEPTION(
            cs::Error, twice.setRow(0, std::vector<int32_t> { 2, 2 }, std::vector<float> { 1.0f, 2.0f }));
        QVERIFY_THROWS_EXCEPTION(cs::Error, twice.setRow(5, std::vector<int32_t> {}, std::vector<float> {}));
        QCOMPARE(twice.build().dense()[1][0].item<float>(), 1.0f);
        using A = cs::graph::Adjacency;
        QVERIFY_THROWS_EXCEPTION(cs::Error, (A { 2, { 0, 1 }, { 0 }, { 1.0f } })); // 2 row starts for 2 rows
        QVERIFY_THROWS_EXCEPTION(cs::Error, (A { 2, { 0, 1, 1 }, { 0 }, {} }));
        QVERIFY_THROWS_EXCEPTION(cs::Error, (A { 2, { 0, 1, 2 }, { 0, 2 }, { 1.0f, 1.0f } }));
        QVERIFY_THROWS_EXCEPTION(cs::Error, (A { 2, { 0, 2, 2 }, { 1, 0 }, { 1.0f, 1.0f } }));
        QVERIFY_THROWS_EXCEPTION(cs::Error, (A { 2, { 0, 2, 1 }, { 0, 1 }, { 1.0f, 1.0f } }));
        QVERIFY_THROWS_EXCEPTION(cs::Error, A::fromDense(at::zeros({ 2, 3 })));
        const A zeros { 2, { 0, 2, 2 }, { 0, 1 }, { 0.0f, 3.0f } }; // a stored zero is dropped
        QCOMPARE(zeros.nnz(), 1);
        QCOMPARE(zeros.value(0, 1), 3.0f);
    }

    // The path-length profile against brute force: dense A_hat (row-normalized |A|), its
    // powers summed, P_l = sum over embeddings of (w^T sum_{i <= l} A_hat^i).
    void pathLengths_data() { addSpecs(); }
    void pathLengths()
    {
        QFETCH(Spec, spec);
        const Graph g = randomGraph(spec);
        const cs::graph::PathLengths mine = cs::graph::pathLengths(g);
        const at::Tensor a = cs::test::rowNormalized(g.adjacency.dense().to(at::kDouble));
        const at::Tensor w = cs::test::logitWeights(g);
        const auto r = g.ranges();
        at::Tensor x = w.clone(); // w^T A^i
        at::Tensor b = at::zeros_like(w); // w^T sum_{1 <= i <= l} A^i
        QVERIFY(mine.longestPath >= 1);
        QCOMPARE(mine.cumulative.size(), size_t(mine.longestPath + 1));
        QCOMPARE(mine.cumulative[0], 0.0);
        for (int64_t l = 1; l <= mine.longestPath + 2; ++l) {
            x = at::matmul(x, a);
            b = b + x;
            const double reference = b.slice(0, r.embeddings.begin, r.embeddings.end).sum().item<double>();
            if (l <= mine.longestPath)
                QVERIFY2(std::abs(mine.cumulative[size_t(l)] - reference) <= 1e-9 + 1e-6 * std::abs(reference),
                    qPrintable(QString("l = %1: %2 vs %3").arg(l).arg(mine.cumulative[size_t(l)]).arg(reference)));
            else // past the longest path nothing more arrives
                QVERIFY(std::abs(reference - mine.cumulative.back()) <= 1e-9 + 1e-6 * std::abs(reference));
        }
        // The whole series is the embeddings' influence, and the profile reaches it.
        QVERIFY(std::abs(mine.cumulative.back() - mine.total) <= 1e-6 * std::max(1.0, mine.total));
        QVERIFY(mine.meanLength >= 1 && mine.meanLength <= double(mine.longestPath));
        // A shorter cut stops early and is a prefix of the whole profile.
        const cs::graph::PathLengths two = cs::graph::pathLengths(g, 2);
        QCOMPARE(two.cumulative.size(), size_t(3));
        QCOMPARE(two.cumulative[1], mine.cumulative[1]);
        const nlohmann::json j = cs::graph::pathLengthsJson(mine);
        QCOMPARE(j["share"].size(), mine.cumulative.size());
        QVERIFY(std::abs(j["share"].back().get<double>() - 1.0) < 1e-6 || mine.total == 0);
    }

    void influence_data() { addSpecs(); }
    void influence()
    {
        QFETCH(Spec, spec);
        const Graph g = randomGraph(spec);
        const Pruner pruner(g);
        const Reference ref = referencePrune(g, 0.8, 0.98);
        const at::Tensor mine = at::tensor(pruner.influence()).to(at::kDouble);
        const double scale = ref.influence.abs().max().item<double>();
        QVERIFY(scale > 0);
        QVERIFY2(at::allclose(mine, ref.influence, 1e-4, 1e-6 * scale), "influence differs from w^T((I-A)^-1 - I)");
        QVERIFY(at::allclose(at::tensor(pruner.cumulativeInfluence()).to(at::kDouble),
            at::tensor(ref.cumulative, at::kDouble), 0, 1e-5));
        QCOMPARE(pruner.size(), g.size());
    }

    void prune_data()
    {
        QTest::addColumn<Spec>("spec");
        QTest::addColumn<double>("nodeThreshold");
        QTest::addColumn<double>("edgeThreshold");
        const std::pair<const char*, Spec> specs[] = {
            { "dense 2 layers", { 2, 3, 10, 2, 0.5, 1 } },
            { "3 layers", { 3, 4, 30, 3, 0.3, 2 } },
            { "sparse 4 layers", { 4, 5, 60, 4, 0.08, 3 } },
            { "deep 6 layers", { 6, 3, 50, 2, 0.2, 4 } },
        };
        const std::pair<double, double> thresholds[]
            = { { 0.8, 0.98 }, { 0.5, 0.9 }, { 0.95, 0.7 }, { 0.0, 0.0 }, { 1.0, 1.0 }, { 0.3, 1.0 } };
        for (const auto& [name, spec] : specs)
            for (const auto& [nt, et] : thresholds)
                QTest::addRow("%s, nodes %.2f, edges %.2f", name, nt, et) << spec << nt << et;
    }
    void prune()
    {
        QFETCH(Spec, spec);
        QFETCH(double, nodeThreshold);
        QFETCH(double, edgeThreshold);
        const Graph g = randomGraph(spec);
        const int64_t n = g.size();
        const PruneResult mine = Pruner(g).prune(nodeThreshold, edgeThreshold);
        const Reference ref = referencePrune(g, nodeThreshold, edgeThreshold);
        QCOMPARE(static_cast<int64_t>(mine.nodeMask.size()), n);
        QCOMPARE(static_cast<int64_t>(mine.edgeMask.size()), g.adjacency.nnz());
        QVERIFY(mine.fits(g));
        for (int64_t i = 0; i < n; ++i)
            QVERIFY2(mine.nodeMask[i] == ref.nodes[i],
                qPrintable(QStringLiteral("node %1 (%2): kept %3, brute force %4")
                               .arg(i)
                               .arg(cs::graph::nodeKindName(g.nodes[i].kind))
                               .arg(mine.nodeMask[i])
                               .arg(ref.nodes[i])));
        const at::Tensor mask = denseEdgeMask(g, mine);
        auto edges = mask.accessor<bool, 2>();
        int64_t kept = 0;
        for (int64_t t = 0; t < n; ++t)
            for (int64_t s = 0; s < n; ++s) {
                QVERIFY2(edges[t][s] == ref.edges[t][s],
                    qPrintable(QStringLiteral("edge %1 -> %2: kept %3, brute force %4")
                                   .arg(s)
                                   .arg(t)
                                   .arg(edges[t][s])
                                   .arg(ref.edges[t][s])));
                kept += edges[t][s];
            }
        qInfo("%lld of %lld nodes, %lld edges kept",
            static_cast<long long>(std::count(mine.nodeMask.begin(), mine.nodeMask.end(), true)),
            static_cast<long long>(n), static_cast<long long>(kept));
    }

    void pruneEdgeCases()
    {
        const Graph g = randomGraph({ 3, 4, 30, 3, 0.3, 2 });
        const Pruner pruner(g);
        QVERIFY_THROWS_EXCEPTION(cs::Error, pruner.prune(-0.1, 0.5));
        QVERIFY_THROWS_EXCEPTION(cs::Error, pruner.prune(0.5, 1.5));
        QVERIFY_THROWS_EXCEPTION(cs::Error, pruner.prune(std::nan(""), 0.5));

        // No edges at all: only embeddings and logits stay.
        Graph empty = g;
        empty.adjacency = cs::graph::Adjacency(g.size());
        const PruneResult r = Pruner(empty).prune(0.8, 0.98);
        for (int64_t i = 0; i < g.size(); ++i)
            QCOMPARE(static_cast<bool>(r.nodeMask[i]), alwaysKept(g, i));
        QCOMPARE(r.edgeCount(), 0);

        // A graph without nodes explains nothing: refused (Graph::validate), as a file of one is.
        Graph none;
        none.logitProbabilities = {};
        QVERIFY_THROWS_EXCEPTION(cs::Error, Pruner { none });

        // A cycle through a logit is refused.
        Graph cyclic = g;
        at::Tensor cycle = g.adjacency.dense();
        const auto ranges = g.ranges();
        cycle[0][ranges.logits.begin] = 1.0f; // logit -> feature 0
        cycle[ranges.logits.begin][0] = 1.0f; // feature 0 -> logit
        cyclic.adjacency = cs::graph::Adjacency::fromDense(cycle);
        QVERIFY_THROWS_EXCEPTION(cs::Error, Pruner { cyclic });
    }

    // An embedding feeds a feature and the logit; an error node feeds the logit:
    //   A_hat: logit row [feature 1/2, error 1/2], feature row [embedding 1]; w = 1 on the logit.
    //   influence: feature 1/2, error 1/2, embedding 1/2 (through the feature).
    //   replacement = 0.5 / (0.5 + 0.5); completeness = (0.5 * 1 + 0.5 + 0.5 + 0.5) / 2.5 = 0.8.
    void scoresByHand()
    {
        Graph g;
        Node f;
        f.kind = NodeKind::Feature;
        f.layer = 0;
        f.feature = 3;
        Node e;
        e.kind = NodeKind::Error;
        e.layer = 0;
        Node emb;
        emb.kind = NodeKind::Embedding;
        emb.layer = -1;
        emb.tokenId = 5;
        Node logit;
        logit.kind = NodeKind::Logit;
        logit.layer = 1;
        logit.tokenId = 6;
        logit.tokenProb = 1;
        g.nodes = { f, e, emb, logit };
        at::Tensor a = at::zeros({ 4, 4 });
        a[0][2] = 2.0f; // embedding -> feature
        a[3][0] = 3.0f; // feature -> logit
        a[3][1] = 3.0f; // error -> logit
        g.adjacency = cs::graph::Adjacency::fromDense(a);
        g.logitProbabilities = std::vector<float>(1, 1.0f);
        g.metadata.promptTokens = { "a" };
        const auto s = cs::graph::graphScores(g);
        QCOMPARE(s.replacement, 0.5);
        QVERIFY(std::fabs(s.completeness - 0.8) < 1e-6);
        // Corrected: the nodes with inputs only, the feature (0.5 x 1) and the logit (1 x 0.5).
        QVERIFY(std::fabs(s.correctedCompleteness - 1.0 / 1.5) < 1e-6);
        // Neuronpedia's: unpinning the feature merges it into the error node, nothing is explained.
        const auto merged = cs::graph::neuronpediaSubgraphScores(g, { false, false, false, false });
        QCOMPARE(merged.replacement, 0.0);
        QVERIFY(std::fabs(merged.completeness - 0.5) < 1e-6); // the logit row is all error
        QCOMPARE(cs::graph::neuronpediaSubgraphScores(g, { true, false, false, false }).replacement, s.replacement);
        // Ours: the unpinned feature is unexplained; so is the logit's error input. Completeness
        // counts the error and embedding (no inputs) as complete: (0 + 0 + 0.5 + 0.5) / 2.5.
        const auto sub = cs::graph::subgraphScores(g, { false, false, false, false });
        QCOMPARE(sub.replacement, 0.0);
        QVERIFY(std::fabs(sub.completeness - 0.4) < 1e-6);
        QCOMPARE(sub.correctedCompleteness, 0.0);
        const auto pinned = cs::graph::subgraphScores(g, { true, false, false, false });
        QVERIFY(std::fabs(pinned.replacement - s.replacement) < 1e-9);
        QVERIFY(std::fabs(pinned.completeness - s.completeness) < 1e-6);

        // A graph made only of error nodes: circuit-tracer's completeness is 0.5 (the error
        // node counts as complete), the corrected one 0.
        Graph errorsOnly;
        errorsOnly.nodes = { e, emb, logit };
        at::Tensor b = at::zeros({ 3, 3 });
        b[2][0] = 1.5f; // error -> logit
        errorsOnly.adjacency = cs::graph::Adjacency::fromDense(b);
        errorsOnly.logitProbabilities = std::vector<float>(1, 1.0f);
        errorsOnly.metadata.promptTokens = { "a" };
        const auto pure = cs::graph::graphScores(errorsOnly);
        QVERIFY(std::fabs(pure.completeness - 0.5) < 1e-6);
        QCOMPARE(pure.correctedCompleteness, 0.0);
        QCOMPARE(pure.replacement, 0.0);
        // No error input anywhere: corrected completeness 1.
        Graph noErrors = g;
        at::Tensor c = a.clone();
        c[3][1] = 0.0f;
        noErrors.adjacency = cs::graph::Adjacency::fromDense(c);
        QVERIFY(std::fabs(cs::graph::graphScores(noErrors).correctedCompleteness - 1.0) < 1e-6);
        QVERIFY(std::fabs(cs::graph::graphScores(noErrors).replacement - 1.0) < 1e-6);
    }

    // Scores of a kept part (Pruner::scoresOf) against the dense definition, and monotone: a
    // part inside another never scores higher. Nested parts: random node and edge subsets, each
    // inside the last; and pruning at a fixed node threshold with falling edge thresholds (the
    // edges kept at a lower edge threshold are a subset). Keeping everything gives scores().
    void prunedScores_data() { addSpecs(); }
    void prunedScores()
    {
        QFETCH(Spec, spec);
        const Graph g = randomGraph(spec);
        const int64_t n = g.size(), nnz = g.adjacency.nnz();
        const Pruner pruner(g);
        const auto whole = pruner.scores();
        const auto all = pruner.scoresOf(cs::graph::keepAll(g));
        QVERIFY(std::fabs(all.replacement - whole.replacement) < 1e-6);
        QVERIFY(std::fabs(all.completeness - whole.completeness) < 1e-6);
        QVERIFY(std::fabs(all.correctedCompleteness - whole.correctedCompleteness) < 1e-6);
        const auto ref = referenceScores(g, g.adjacency.dense());
        QVERIFY(std::fabs(whole.correctedCompleteness - ref.correctedCompleteness) < 1e-5);

        const auto closeTo = [](const cs::graph::Scores& a, const cs::graph::Scores& b) {
            return std::fabs(a.replacement - b.replacement) < 1e-5 && std::fabs(a.completeness - b.completeness) < 1e-5
                && std::fabs(a.correctedCompleteness - b.correctedCompleteness) < 1e-5;
        };
        // (1e-7: the whole graph's influence is stored in float32, the kept part's summed in float64.)
        const auto notAbove = [](const cs::graph::Scores& inner, const cs::graph::Scores& outer) {
            return inner.replacement <= outer.replacement + 1e-7 && inner.completeness <= outer.completeness + 1e-7
                && inner.correctedCompleteness <= outer.correctedCompleteness + 1e-7;
        };
        std::mt19937_64 rng(spec.seed + 7);
        PruneResult part = cs::graph::keepAll(g);
        cs::graph::Scores last = all;
        for (int round = 0; round < 6; ++round) {
            for (int64_t i = 0; i < n; ++i)
                if (rng() % 5 == 0 && g.nodes[i].kind != NodeKind::Logit)
                    part.nodeMask[i] = false;
            for (int64_t e = 0; e < nnz; ++e)
                if (rng() % 4 == 0)
                    part.edgeMask[e] = false;
            const auto now = pruner.scoresOf(part);
            QVERIFY(closeTo(now, referenceKeptScores(g, part.nodeMask, denseEdgeMask(g, part))));
            QVERIFY2(notAbove(now, last),
                qPrintable(QStringLiteral("round %1: replacement %2 after %3, completeness %4 after %5")
                               .arg(round)
                               .arg(now.replacement)
                               .arg(last.replacement)
                               .arg(now.completeness)
                               .arg(last.completeness)));
            last = now;
        }
        for (const double nodeThreshold : { 1.0, 0.9, 0.7, 0.5 }) {
            cs::graph::Scores previous = whole;
            for (const double edgeThreshold : { 1.0, 0.98, 0.9, 0.7, 0.5, 0.2 }) {
                const PruneResult pruned = pruner.prune(nodeThreshold, edgeThreshold);
                const auto now = pruner.scoresOf(pruned);
                QVERIFY(closeTo(now, referenceKeptScores(g, pruned.nodeMask, denseEdgeMask(g, pruned))));
                QVERIFY2(notAbove(now, previous),
                    qPrintable(QStringLiteral("node %1 edge %2: %3 %4 %5 after %6 %7 %8")
                                   .arg(nodeThreshold)
                                   .arg(edgeThreshold)
                                   .arg(now.replacement)
                                   .arg(now.completeness)
                                   .arg(now.correctedCompleteness)
                                   .arg(previous.replacement)
                                   .arg(previous.completeness)
                                   .arg(previous.correctedCompleteness)));
                previous = now;
            }
        }
        QVERIFY_THROWS_EXCEPTION(cs::Error, pruner.scoresOf(PruneResult {}));
    }

    void scores_data() { addSpecs(); }
    void scores()
    {
        QFETCH(Spec, spec);
        const Graph g = randomGraph(spec);
        const int64_t n = g.size();
        const Pruner pruner(g);
        const auto whole = pruner.scores();
        const auto ref = referenceScores(g, g.adjacency.dense());
        QVERIFY(std::fabs(whole.replacement - ref.replacement) < 1e-5);
        QVERIFY(std::fabs(whole.completeness - ref.completeness) < 1e-5);
        QVERIFY(whole.replacement > 0 && whole.replacement < 1);
        QCOMPARE(cs::graph::graphScores(g).replacement, whole.replacement);

        // A pinned subgraph: about half of the features, and an error and an embedding (which
        // change nothing), on the whole graph and on the pruned one.
        std::mt19937_64 rng(spec.seed + 100);
        std::vector<bool> pinned(static_cast<size_t>(n), false);
        for (int64_t i = 0; i < n; ++i)
            pinned[i] = rng() % 2 == 0;
        const PruneResult pruned = pruner.prune(0.8, 0.98);
        for (const PruneResult* p : { static_cast<const PruneResult*>(nullptr), &pruned }) {
            const auto sub = cs::graph::neuronpediaSubgraphScores(g, pinned, p);
            const auto expected = referenceScores(g, mergedUnpinned(g, pinned, p));
            QVERIFY2(std::fabs(sub.replacement - expected.replacement) < 1e-5,
                qPrintable(
                    QStringLiteral("replacement %1, expected %2").arg(sub.replacement).arg(expected.replacement)));
            QVERIFY(std::fabs(sub.completeness - expected.completeness) < 1e-5);
        }
        // Every feature pinned: the whole graph's scores, both ways.
        for (const auto& all :
            { cs::graph::neuronpediaSubgraphScores(g, std::vector<bool>(static_cast<size_t>(n), true)),
                cs::graph::subgraphScores(g, std::vector<bool>(static_cast<size_t>(n), true)) }) {
            QVERIFY(std::fabs(all.replacement - whole.replacement) < 1e-6);
            QVERIFY(std::fabs(all.completeness - whole.completeness) < 1e-6);
        }
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::graph::subgraphScores(g, { true }));
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::graph::neuronpediaSubgraphScores(g, { true }));
        // Ours: the pinned features with every error, embedding and logit, within the pruned
        // graph's nodes and edges; never above the pruned graph's own scores.
        const auto sub = pruner.subgraphScores(pinned, &pruned);
        std::vector<bool> keptNodes = pruned.nodeMask;
        for (int64_t i = 0; i < n; ++i)
            keptNodes[i] = keptNodes[i] && (g.nodes[i].kind != NodeKind::Feature || pinned[i]);
        const auto expected = referenceKeptScores(g, keptNodes, denseEdgeMask(g, pruned));
        QVERIFY(std::fabs(sub.replacement - expected.replacement) < 1e-5);
        QVERIFY(std::fabs(sub.completeness - expected.completeness) < 1e-5);
        QVERIFY(sub.replacement <= pruner.scoresOf(pruned).replacement + 1e-9);
    }

    // A difference target "A − B" has its own id and clerp, B's id, text and probability, and
    // its weight (1) apart from A's probability; all of it survives the graph JSON (with the
    // trace's metadata), the graph file and the weights of named targets (target_weight).
    void differenceTargetRoundTrip()
    {
        Graph g = randomGraph({ 2, 3, 10, 1, 0.5, 5 });
        const auto r = g.ranges();
        Node& logit = g.nodes[r.logits.begin];
        logit.tokenId = 1000;
        logit.token = " Austin";
        logit.tokenProb = 0.625;
        logit.contrastTokenId = 1001;
        logit.contrastToken = " Dallas";
        logit.contrastTokenProb = 0.125;
        g.logitProbabilities = std::vector<float>(1, 1.0f);
        g.metadata.extra["logit_difference"] = { { "token_id", 1000 }, { "token", " Austin" }, { "prob", 0.625 },
            { "contrast_token_id", 1001 }, { "contrast_token", " Dallas" }, { "contrast_prob", 0.125 } };
        QCOMPARE(cs::graph::nodeId(g, r.logits.begin), std::string("3_1000vs1001_2"));

        const json out = cs::graph::toJson(g, cs::graph::keepAll(g));
        const json& node = out["nodes"].back();
        QCOMPARE(node["node_id"].get<std::string>(), std::string("3_1000vs1001_2"));
        QCOMPARE(node["jsNodeId"].get<std::string>(), std::string("L_1000vs1001-2"));
        QCOMPARE(
            node["clerp"].get<std::string>(), std::string("Output \" Austin\" \u2212 \" Dallas\" (p=0.625, 0.125)"));
        QCOMPARE(node["token_prob"].get<double>(), 0.625);
        QCOMPARE(node["target_weight"].get<double>(), 1.0);
        const Graph back = cs::graph::fromJson(out);
        const Node& b = back.nodes[back.ranges().logits.begin];
        QCOMPARE(b.tokenId, 1000);
        QCOMPARE(b.contrastTokenId, 1001);
        QCOMPARE(b.token, std::string(" Austin"));
        QCOMPARE(b.contrastToken, std::string(" Dallas"));
        QCOMPARE(b.contrastTokenProb, 0.125);
        QCOMPARE(b.label, std::string());
        QCOMPARE(back.logitProbabilities[static_cast<size_t>(0)], 1.0f); // the weight, not p(A)

        const QTemporaryDir dir;
        const std::string path = dir.filePath("diff.csgraph").toStdString();
        cs::graph::writeGraphFile(path, g);
        const Graph file = cs::graph::readGraphFile(path);
        const Node& f = file.nodes[file.ranges().logits.begin];
        QCOMPARE(f.contrastTokenId, 1001);
        QCOMPARE(f.contrastToken, std::string(" Dallas"));
        QCOMPARE(f.contrastTokenProb, 0.125);
    }

    void schemaKeywordsAreCovered()
    {
        const json schema = graphSchema();
        if (schema.is_null())
            QSKIP("Neuronpedia's graph schema is not beside the checkout (../shared/formats)");
        std::vector<std::string> unknown;
        cs::test::collectUnknownSchemaKeywords(schema, "", unknown);
        QVERIFY2(
            unknown.empty(), unknown.empty() ? "" : ("not checked by the test's validator: " + unknown[0]).c_str());
    }

    void writtenJsonValidates_data()
    {
        QTest::addColumn<Spec>("spec");
        QTest::addColumn<double>("nodeThreshold");
        QTest::addColumn<double>("edgeThreshold");
        QTest::newRow("3 layers, default") << Spec { 3, 4, 30, 3, 0.3, 2 } << 0.8 << 0.98;
        QTest::newRow("sparse, keep all") << Spec { 4, 5, 60, 4, 0.08, 3 } << 1.0 << 1.0;
        QTest::newRow("deep, tight") << Spec { 6, 3, 50, 2, 0.2, 4 } << 0.3 << 0.5;
    }
    void writtenJsonValidates()
    {
        QFETCH(Spec, spec);
        QFETCH(double, nodeThreshold);
        QFETCH(double, edgeThreshold);
        Graph g = randomGraph(spec);
        g.metadata.extra = { { "scores", { { "replacement", 0.5 } } }, { "info", { { "creator_name", "test" } } } };
        g.metadata.qParams = { { "pinnedIds", { cs::graph::nodeId(g, 0) } } };
        const json doc = cs::graph::toJson(g, Pruner(g).prune(nodeThreshold, edgeThreshold));
        checkRequiredKeys(doc);
        QCOMPARE(doc["metadata"]["scores"]["replacement"].get<double>(), 0.5);
        QCOMPARE(doc["qParams"]["linkType"].get<std::string>(), std::string("both"));
        QCOMPARE(doc["qParams"]["pinnedIds"][0].get<std::string>(), cs::graph::nodeId(g, 0));

        const json schema = graphSchema();
        if (schema.is_null())
            QSKIP("Neuronpedia's graph schema is not beside the checkout (../shared/formats)");
        std::vector<std::string> errors;
        checkSchema(schema, doc, "$", errors);
        QVERIFY2(errors.empty(), errors.empty() ? "" : errors[0].c_str());

        // The checker does catch what the schema forbids.
        json broken = doc;
        broken["nodes"][0]["ctx_idx"] = "3";
        broken["nodes"][1].erase("jsNodeId");
        broken["links"][0]["weight"] = nullptr;
        broken["metadata"].erase("scan");
        errors.clear();
        checkSchema(schema, broken, "$", errors);
        QCOMPARE(errors.size(), size_t(4));
    }

    void jsonRoundTrip_data()
    {
        QTest::addColumn<Spec>("spec");
        QTest::addColumn<double>("nodeThreshold");
        QTest::addColumn<double>("edgeThreshold");
        QTest::newRow("dense, default") << Spec { 2, 3, 10, 2, 0.5, 1 } << 0.8 << 0.98;
        QTest::newRow("3 layers, default") << Spec { 3, 4, 30, 3, 0.3, 2 } << 0.8 << 0.98;
        QTest::newRow("sparse, everything") << Spec { 4, 5, 60, 4, 0.08, 3 } << 1.0 << 1.0;
        QTest::newRow("deep, loose") << Spec { 6, 3, 50, 2, 0.2, 4 } << 0.95 << 0.99;
    }
    void jsonRoundTrip()
    {
        QFETCH(Spec, spec);
        QFETCH(double, nodeThreshold);
        QFETCH(double, edgeThreshold);
        Graph g = randomGraph(spec);
        g.metadata.nodeThreshold = nodeThreshold;
        g.metadata.edgeThreshold = edgeThreshold;
        g.metadata.extra = { { "scores", { { "replacement", 0.25 }, { "completeness", 0.75 } } } };
        g.nodes[g.ranges().logits.begin + 1].label = "my logit label";
        const PruneResult pruned = Pruner(g).prune(nodeThreshold, edgeThreshold);
        const json doc = cs::graph::toJson(g, pruned);
        const Graph back = cs::graph::fromJson(json::parse(doc.dump()));

        // The kept nodes, in order, field by field.
        std::vector<int64_t> kept;
        for (int64_t i = 0; i < g.size(); ++i)
            if (pruned.nodeMask[i])
                kept.push_back(i);
        QCOMPARE(back.size(), static_cast<int64_t>(kept.size()));
        QCOMPARE(static_cast<int64_t>(doc["nodes"].size()), back.size());
        for (int64_t k = 0; k < back.size(); ++k) {
            const Node& a = g.nodes[kept[k]];
            const Node& b = back.nodes[k];
            QCOMPARE(b.kind, a.kind);
            QCOMPARE(b.layer, a.layer);
            QCOMPARE(b.position, a.position);
            QCOMPARE(b.feature, a.feature);
            QCOMPARE(b.label, a.label);
            if (a.kind == NodeKind::Feature)
                QCOMPARE(b.activation, a.activation);
            if (a.kind == NodeKind::Embedding || a.kind == NodeKind::Logit) {
                QCOMPARE(b.tokenId, a.tokenId);
                QCOMPARE(b.token, a.kind == NodeKind::Logit && !a.label.empty() ? std::string() : a.token);
            }
            QCOMPARE(b.tokenProb, a.tokenProb);
            QCOMPARE(cs::graph::nodeId(back, k), cs::graph::nodeId(g, kept[k]));
        }
        // The kept edges with their weights, and nothing else.
        const at::Tensor expected = (g.adjacency.dense() * denseEdgeMask(g, pruned).to(at::kFloat))
                                        .index_select(0, at::tensor(kept, at::kLong))
                                        .index_select(1, at::tensor(kept, at::kLong));
        QVERIFY(at::equal(back.adjacency.dense(), expected));
        QCOMPARE(static_cast<int64_t>(doc["links"].size()), pruned.edgeCount());
        QVERIFY(at::allclose(at::tensor(back.logitProbabilities), at::tensor(g.logitProbabilities)));
        QCOMPARE(back.nLayers(), g.nLayers());

        const auto& m = back.metadata;
        QCOMPARE(m.slug, g.metadata.slug);
        QCOMPARE(m.scan, g.metadata.scan);
        QCOMPARE(m.prompt, g.metadata.prompt);
        QCOMPARE(m.promptTokens, g.metadata.promptTokens);
        QCOMPARE(m.transcoderList, g.metadata.transcoderList);
        QCOMPARE(m.nodeThreshold, nodeThreshold);
        QCOMPARE(m.edgeThreshold, edgeThreshold);
        QCOMPARE(m.extra, g.metadata.extra);

        // Written again as it is, the same nodes and links.
        const json again = cs::graph::toJson(back, cs::graph::keepAll(back));
        QCOMPARE(again["links"], doc["links"]);
        QCOMPARE(again["metadata"], doc["metadata"]);
        for (size_t k = 0; k < doc["nodes"].size(); ++k) {
            json a = doc["nodes"][k], b = again["nodes"][k];
            a.erase("influence"); // recomputed on the pruned graph
            b.erase("influence");
            QCOMPARE(b, a);
        }
    }

    void writesAndReadsFiles()
    {
        QTemporaryDir dir(cs::test::testTempRoot() + "/graph-XXXXXX");
        QVERIFY(dir.isValid());
        const Graph g = randomGraph({ 3, 4, 30, 3, 0.3, 2 });
        const PruneResult pruned = Pruner(g).prune(0.8, 0.98);
        const std::string path = dir.filePath("g.json").toStdString();
        cs::graph::writeJsonFile(path, g, pruned);
        const Graph back = cs::graph::readJsonFile(path);
        QCOMPARE(back.size(), static_cast<int64_t>(std::count(pruned.nodeMask.begin(), pruned.nodeMask.end(), true)));
        QCOMPARE(QDir(dir.path()).entryList(QDir::Files), QStringList { "g.json" }); // no temporary left

        const std::string garbage = dir.filePath("garbage.json").toStdString();
        cs::test::writeTextFile(QString::fromStdString(garbage), "{\"nodes\": [");
        try {
            cs::graph::readJsonFile(garbage);
            QFAIL("read a truncated file");
        } catch (const cs::Error& e) {
            QVERIFY2(std::string(e.what()).find(garbage + " is not valid JSON") != std::string::npos, e.what());
        }
        const std::string noLinks = dir.filePath("nolinks.json").toStdString();
        json doc = circuitTracerFile();
        doc.erase("links");
        cs::test::writeTextFile(QString::fromStdString(noLinks), doc.dump());
        try {
            cs::graph::readJsonFile(noLinks);
            QFAIL("read a file without links");
        } catch (const cs::Error& e) {
            QCOMPARE(std::string(e.what()), noLinks + ": missing key \"links\"");
        }
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::graph::readJsonFile(dir.filePath("missing.json").toStdString()));

        // A value nested 100,000 deep (in qParams here) is refused before it is parsed: copying
        // it would run the stack out.
        const std::string deep = dir.filePath("deep.json").toStdString();
        std::string text = circuitTracerFile().dump();
        text.insert(text.find("\"qParams\": {") + std::string("\"qParams\": {").size(),
            "\"deep\": " + std::string(100000, '[') + std::string(100000, ']') + ", ");
        cs::test::writeTextFile(QString::fromStdString(deep), text);
        try {
            cs::graph::readJsonFile(deep);
            QFAIL("read a file nested 100,000 deep");
        } catch (const cs::Error& e) {
            QVERIFY2(
                std::string(e.what()).find(deep + ": nested deeper than 512 levels") != std::string::npos, e.what());
        }
    }

    void importsCircuitTracerFile()
    {
        const Graph g = cs::graph::fromJson(circuitTracerFile());
        QCOMPARE(g.size(), 9);
        const auto r = g.ranges();
        QCOMPARE(r.features.size(), 2);
        QCOMPARE(r.errors.size(), 2);
        QCOMPARE(r.embeddings.size(), 3);
        QCOMPARE(r.logits.size(), 2);
        QCOMPARE(g.nLayers(), 2);
        QCOMPARE(g.nPositions(), 3);

        const Node& f0 = g.nodes[0]; // "0_1_2", a feature
        QCOMPARE(f0.kind, NodeKind::Feature);
        QCOMPARE(f0.layer, 0);
        QCOMPARE(f0.feature, 1);
        QCOMPARE(f0.position, 2);
        QCOMPARE(f0.activation, 2.5);
        QCOMPARE(f0.label, std::string("cat detector"));
        QCOMPARE(g.nodes[1].feature, 7);
        const Node& e0 = g.nodes[2]; // "0_0_1": the error at layer 0, position 1
        QCOMPARE(e0.kind, NodeKind::Error);
        QCOMPARE(e0.layer, 0);
        QCOMPARE(e0.position, 1);
        const Node& e1 = g.nodes[3]; // "0_1_2" again: the error at layer 1, position 2
        QCOMPARE(e1.kind, NodeKind::Error);
        QCOMPARE(e1.layer, 1);
        QCOMPARE(e1.position, 2);
        QCOMPARE(g.nodes[5].tokenId, 450);
        QCOMPARE(g.nodes[5].token, std::string("The"));
        const Node& l0 = g.nodes[7];
        QCOMPARE(l0.kind, NodeKind::Logit);
        QCOMPARE(l0.layer, 2); // n_layers; the file writes n_layers + 1
        QCOMPARE(l0.tokenId, 42);
        QCOMPARE(l0.token, std::string(" mat"));
        QCOMPARE(l0.label, std::string());
        QCOMPARE(l0.tokenProb, 0.7);
        QVERIFY(at::allclose(at::tensor(g.logitProbabilities), at::tensor({ 0.7f, 0.2f })));

        // Every link, with the colliding id resolved to the feature or to the error.
        at::Tensor expected = at::zeros({ 9, 9 });
        const auto link = [&](int64_t s, int64_t t, float w) { expected[t][s] = w; };
        link(6, 0, 1.5f); // E_9_2 -> feature 0_1_2 (an error has no inputs)
        link(0, 1, 0.5f); // feature 0_1_2 -> 1_7_2 (the layer-1 error cannot feed layer 1)
        link(2, 1, 0.25f);
        link(6, 1, -0.75f);
        link(0, 7, 0.3f); // the first "0_1_2" into the logit: the feature
        link(1, 7, 2.0f);
        link(3, 7, -0.2f); // the second, after 1_7_2 in node order: the error
        link(1, 8, 0.4f);
        link(3, 8, 0.1f); // after 1_7_2: the error
        QVERIFY(at::equal(g.adjacency.dense(), expected));

        QCOMPARE(g.metadata.slug, std::string("cat-mat"));
        QCOMPARE(g.metadata.promptTokens.size(), size_t(3));
        QCOMPARE(g.metadata.nodeThreshold, 0.8);
        QCOMPARE(g.metadata.qParams["supernodes"][0][0].get<std::string>(), std::string("cats"));
        QVERIFY(g.metadata.extra.empty());

        // Written back as circuit-tracer 0.5 writes it: error ids "0_{layer}_{pos}" (colliding
        // again), jsNodeId "{layer}_{pos}-0"; read back to the same graph. Our ids in qParams
        // ("0_-1_1" for an error) are written as circuit-tracer's and read back as ours; an id
        // that names a feature too stays the feature's.
        Graph pinnedError = g;
        pinnedError.metadata.qParams["pinnedIds"] = { "1_7_2", "0_-1_1" };
        const json out = cs::graph::toJson(pinnedError, cs::graph::keepAll(pinnedError));
        std::multiset<std::string> ids;
        for (const json& node : out["nodes"]) {
            ids.insert(node["node_id"].get<std::string>());
            if (node["feature_type"] == "mlp reconstruction error")
                QCOMPARE(node["jsNodeId"].get<std::string>(),
                    node["layer"].get<std::string>() + "_" + std::to_string(node["ctx_idx"].get<int>()) + "-0");
        }
        QCOMPARE(ids.count("0_1_2"), size_t(2)); // the layer-0 feature 1 and the error at layer 1, position 2
        QCOMPARE(ids.count("0_0_1"), size_t(1));
        QCOMPARE(ids.count("1_-1_2"), size_t(0));
        QCOMPARE(out["qParams"]["pinnedIds"], json({ "1_7_2", "0_0_1" }));
        const Graph reread = cs::graph::fromJson(out);
        QVERIFY(reread.adjacency == g.adjacency);
        QCOMPARE(reread.metadata.qParams["pinnedIds"], json({ "1_7_2", "0_-1_1" }));
        QCOMPARE(reread.metadata.qParams["supernodes"][0], json({ "cats", "0_1_2", "1_7_2" }));
        QCOMPARE(out["nodes"][7]["clerp"].get<std::string>(), std::string("Output \" mat\" (p=0.700)"));
        QCOMPARE(out["links"].size(), size_t(9));
        const Graph again = cs::graph::fromJson(out);
        QVERIFY(again.adjacency == g.adjacency);

        try {
            cs::graph::fromJson(json::array());
            QFAIL("read an array as a graph");
        } catch (const cs::Error& e) {
            QCOMPARE(
                std::string(e.what()), std::string("graph JSON: expected an object at the top level, got an array"));
        }
    }

    void refusesMalformed_data()
    {
        QTest::addColumn<QString>("patch"); // a JSON Patch applied to the circuit-tracer file
        QTest::addColumn<QString>("message");
        QTest::newRow("no metadata") << R"([{"op": "remove", "path": "/metadata"}])"
                                     << "graph JSON: missing key \"metadata\"";
        QTest::newRow("token not a string")
            << R"([{"op": "replace", "path": "/metadata/prompt_tokens/1", "value": 3}])"
            << "graph JSON: metadata.prompt_tokens[1]: expected a string, got an integer";
        QTest::newRow("nodes not an array") << R"([{"op": "replace", "path": "/nodes", "value": {}}])"
                                            << "graph JSON: nodes: expected an array, got an object";
        QTest::newRow("no ctx_idx") << R"([{"op": "remove", "path": "/nodes/0/ctx_idx"}])"
                                    << "graph JSON: nodes[0]: missing key \"ctx_idx\"";
        QTest::newRow("layer a boolean")
            << R"([{"op": "replace", "path": "/nodes/1/layer", "value": true}])"
            << "graph JSON: nodes[1].layer: expected a string or an integer, got a boolean";
        QTest::newRow("layer not a number") << R"([{"op": "replace", "path": "/nodes/1/layer", "value": "x1"}])"
                                            << "graph JSON: nodes[1].layer: \"x1\" is not a layer number";
        QTest::newRow("ctx_idx a string") << R"([{"op": "replace", "path": "/nodes/4/ctx_idx", "value": "0"}])"
                                          << "graph JSON: nodes[4].ctx_idx: expected an integer, got a string";
        QTest::newRow("unknown feature type")
            << R"([{"op": "replace", "path": "/nodes/2/feature_type", "value": "lorsa"}])"
            << "graph JSON: nodes[2].feature_type: \"lorsa\" is not supported";
        QTest::newRow("no feature index") // neither the id nor the Cantor pairing gives one at layer 1
            << R"([{"op": "replace", "path": "/nodes/1/node_id", "value": "f"},)"
               R"( {"op": "replace", "path": "/nodes/1/feature", "value": 3}])"
            << "graph JSON: nodes[1]: cannot tell the feature index";
        QTest::newRow("repeated id") << R"([{"op": "replace", "path": "/nodes/1/node_id", "value": "0_1_2"}])"
                                     << "graph JSON: nodes[1]: repeats node_id \"0_1_2\" of nodes[0]";
        QTest::newRow("unknown source") << R"([{"op": "replace", "path": "/links/0/source", "value": "9_9_9"}])"
                                        << "graph JSON: links[0].source: \"9_9_9\" is not the node_id of a node";
        QTest::newRow("no target") << R"([{"op": "remove", "path": "/links/1/target"}])"
                                   << "graph JSON: links[1]: missing key \"target\"";
        QTest::newRow("weight a string") << R"([{"op": "replace", "path": "/links/0/weight", "value": "1.0"}])"
                                         << "graph JSON: links[0].weight: expected a number, got a string";
        QTest::newRow("repeated link")
            << R"([{"op": "add", "path": "/links/-", "value": {"source": "E_9_2", "target": "1_7_2", "weight": 1}}])"
            << "graph JSON: links[9]: repeats the link from \"E_9_2\" to \"1_7_2\"";
        // Issue 23: what a writer refuses (Graph::validate) is refused on reading, naming the node.
        QTest::newRow("ctx_idx past the prompt") << R"([{"op": "replace", "path": "/nodes/1/ctx_idx", "value": 999}])"
                                                 << "graph JSON: attribution graph: node 1 (feature 1_7_999) is at "
                                                    "position 999, outside the prompt's 3 tokens";
        QTest::newRow("ctx_idx int64 max")
            << R"([{"op": "replace", "path": "/nodes/4/ctx_idx", "value": 9223372036854775807}])"
            << "graph JSON: attribution graph: node 6 (embedding E_2_9223372036854775807) is at position "
               "9223372036854775807";
        QTest::newRow("prompt_tokens shorter than the positions")
            << R"([{"op": "replace", "path": "/metadata/prompt_tokens", "value": ["<bos>", "The"]}])"
            << "graph JSON: attribution graph: node 0 (feature 0_1_2) is at position 2, outside the prompt's 2 tokens";
        QTest::newRow("feature at the logit layer") // Cantor(2, 7) = 52
            << R"([{"op": "replace", "path": "/nodes/1/layer", "value": "2"},)"
               R"( {"op": "replace", "path": "/nodes/1/feature", "value": 52}])"
            << "graph JSON: attribution graph: node 1 (feature 2_7_2) is at layer 2, outside the graph's 2 layers";
        QTest::newRow("huge feature id")
            << R"([{"op": "add", "path": "/nodes/2", "value": {"node_id": "0_99999999999_1", "layer": "0",)"
               R"( "ctx_idx": 1, "feature_type": "cross layer transcoder"}}])"
            << "graph JSON: attribution graph: node 2 (feature 0_99999999999_1) has feature index 99999999999";
        QTest::newRow("negative token id")
            << R"([{"op": "replace", "path": "/nodes/4/node_id", "value": "E_-5_0"}])"
            << "graph JSON: attribution graph: node 4 (embedding E_-5_0) has token id -5";
        QTest::newRow("huge logit token id")
            << R"([{"op": "replace", "path": "/nodes/8/feature", "value": 99999999999}])"
            << "graph JSON: attribution graph: node 8 (logit 3_99999999999_2) has token id 99999999999";
        QTest::newRow("token_prob above 1") << R"([{"op": "replace", "path": "/nodes/7/token_prob", "value": 1.5}])"
                                            << "graph JSON: attribution graph: node 7 (logit 3_42_2) has a token "
                                               "probability outside [0, 1]";
        QTest::newRow("link into an embedding")
            << R"([{"op": "add", "path": "/links/-", "value": {"source": "0_1_2", "target": "E_9_2", "weight": 1}}])"
            << "graph JSON: attribution graph: the link from 0_1_2 to E_9_2 goes into an embedding node";
        QTest::newRow("link from a logit back to an embedding") // issue 21
            << R"([{"op": "add", "path": "/links/-", "value": {"source": "3_42_2", "target": "E_2_0", "weight": 1}}])"
            << "graph JSON: attribution graph: the link from 3_42_2 to E_2_0 goes into an embedding node";
        // fuzz_graph_json: a cycle was read, and the pruner refused the graph only afterwards
        // ("influence does not converge"); traced graphs run forward, so a cycle is refused on reading.
        QTest::newRow("a cycle of two features")
            << R"([{"op": "add", "path": "/links/-", "value": {"source": "1_7_2", "target": "0_1_2", "weight": 1}}])"
            << "graph JSON: attribution graph: the links form a cycle through node ";
        QTest::newRow("a logit feeding a feature that feeds it")
            << R"([{"op": "add", "path": "/links/-", "value": {"source": "3_42_2", "target": "1_7_2", "weight": 1}}])"
            << "graph JSON: attribution graph: the links form a cycle through node ";
        QTest::newRow("self-loop on a feature")
            << R"([{"op": "add", "path": "/links/-", "value": {"source": "0_1_2", "target": "0_1_2", "weight": 1}}])"
            << "graph JSON: attribution graph: a self-loop on node 0_1_2";
        QTest::newRow("no logit node")
            << R"([{"op": "remove", "path": "/nodes/8"}, {"op": "remove", "path": "/nodes/7"},)"
               R"( {"op": "replace", "path": "/links", "value": []}])"
            << "graph JSON: attribution graph: no logit node";
        QTest::newRow("no nodes") << R"([{"op": "replace", "path": "/nodes", "value": []},)"
                                     R"( {"op": "replace", "path": "/links", "value": []}])"
                                  << "graph JSON: attribution graph: no nodes";
        QTest::newRow("feature relabelled as an error") // a second error at layer 1, position 2
            << R"([{"op": "replace", "path": "/nodes/1/feature_type", "value": "mlp reconstruction error"}])"
            << "graph JSON: attribution graph: node 3 (error 1_-1_2) repeats node 2";
        QTest::newRow("unknown schema_version")
            << R"([{"op": "replace", "path": "/metadata/schema_version", "value": 2}])"
            << "graph JSON: metadata.schema_version: 2 is not a schema version this reads (1)";
        QTest::newRow("influence a string") << R"([{"op": "replace", "path": "/nodes/0/influence", "value": "high"}])"
                                            << "graph JSON: nodes[0].influence: expected a number, got a string";
        // Issue 21: fields of the wrong type that were skipped or kept as they were. A string
        // is_target_logit was read as false (so the order of the logits, the target first, was
        // the file's); a score that is not a number was written back by graph import.
        QTest::newRow("is_target_logit a string")
            << R"([{"op": "replace", "path": "/nodes/8/is_target_logit", "value": "true"}])"
            << "graph JSON: nodes[8].is_target_logit: expected a boolean, got a string";
        QTest::newRow("a score not a number")
            << R"([{"op": "add", "path": "/metadata/scores", "value": {"replacement": "high", "completeness": 0.5}}])"
            << "graph JSON: metadata.scores.replacement: expected a number, got a string";
        QTest::newRow("a pruned score not a number")
            << R"([{"op": "add", "path": "/metadata/scores", "value": {"pruned": {"completeness": [1]}}}])"
            << "graph JSON: metadata.scores.pruned.completeness: expected a number, got an array";
        QTest::newRow("weight beyond float32") << R"([{"op": "replace", "path": "/links/0/weight", "value": 1e308}])"
                                               << "graph JSON: links[0].weight: the link from \"E_9_2\" to \"0_1_2\" "
                                                  "weighs 1000";
    }
    void refusesMalformed()
    {
        QFETCH(QString, patch);
        QFETCH(QString, message);
        const json doc = circuitTracerFile().patch(json::parse(patch.toStdString()));
        try {
            cs::graph::fromJson(doc);
            QFAIL("accepted a malformed graph");
        } catch (const cs::Error& e) {
            QVERIFY2(QString::fromUtf8(e.what()).startsWith(message), e.what());
        }
    }

    // A number beyond a double names the file and the line (it was "internal error: number
    // overflow"); the inputs of a node summing past float32 name the node (issue 23).
    void refusesOverflow()
    {
        QTemporaryDir dir(cs::test::testTempRoot() + "/graph-json-XXXXXX");
        QVERIFY(dir.isValid());
        const std::string path = dir.filePath("g.json").toStdString();
        std::string text = circuitTracerFile().dump(1);
        const size_t at = text.find("1.5");
        QVERIFY(at != std::string::npos);
        writeBytes(path, text.replace(at, 3, "1e400"));
        try {
            cs::graph::readJsonFile(path);
            QFAIL("read 1e400");
        } catch (const cs::Error& e) {
            const QString what = QString::fromUtf8(e.what());
            QVERIFY2(
                what.startsWith(QString::fromStdString(path + ": a number too large for a double at line ")), e.what());
        }
        json doc = circuitTracerFile();
        doc["links"][0]["weight"] = 3e38;
        doc["links"][3]["weight"] = -3e38; // E_9_2 -> 1_7_2
        doc["links"][1]["weight"] = 3e38; // 0_1_2 -> 1_7_2
        try {
            cs::graph::fromJson(doc);
            QFAIL("read inputs summing past float32");
        } catch (const cs::Error& e) {
            QVERIFY2(QString::fromUtf8(e.what()).startsWith(
                         "graph JSON: attribution graph: the weights of the links into 1_7_2 sum to more than float32"),
                e.what());
        }
    }

    // A 100,000-node graph is read, pruned and written without a dense n^2 matrix (40 GB in
    // float32): the adjacency is sparse (issue 23).
    void readsHundredThousandNodes()
    {
        json doc = circuitTracerFile();
        json& nodes = doc["nodes"];
        for (int k = 0; k < 100000; ++k)
            nodes.push_back({ { "node_id", "0_" + std::to_string(1000 + k) + "_1" }, { "feature", nullptr },
                { "layer", "0" }, { "ctx_idx", 1 }, { "feature_type", "cross layer transcoder" } });
        for (int k = 0; k < 100000; ++k)
            doc["links"].push_back(
                { { "source", "E_450_1" }, { "target", "0_" + std::to_string(1000 + k) + "_1" }, { "weight", 0.5 } });
        const Graph g = cs::graph::fromJson(doc);
        QCOMPARE(g.size(), int64_t(100009));
        const PruneResult r = Pruner(g).prune(0.8, 0.98);
        QCOMPARE(r.nodeMask.size(), size_t(g.size()));
        QCOMPARE(cs::graph::toJson(g, cs::graph::keepAll(g))["nodes"].size(), size_t(100009));
    }

    // The saved full graph: every node field, the adjacency bit for bit, the metadata; text
    // that is not UTF-8 (a token holding part of a character) byte for byte.
    void graphFileRoundTrip_data() { addSpecs(); }
    void graphFileRoundTrip()
    {
        QFETCH(Spec, spec);
        QTemporaryDir dir(cs::test::testTempRoot() + "/graph-file-XXXXXX");
        QVERIFY(dir.isValid());
        Graph g = randomGraph(spec);
        const auto r = g.ranges();
        g.nodes[0].activation = 0.1 + 0.2; // not the shortest decimal
        g.nodes[1].label = "quote \" backslash \\ newline \n tab \t";
        g.nodes[r.errors.begin].activation = -1.25e-7;
        g.nodes[r.errors.begin].label = "an error's label";
        g.nodes[r.embeddings.begin].token = std::string("caf\xc3", 4); // half of "é"
        g.metadata.promptTokens[0] = g.nodes[r.embeddings.begin].token;
        g.nodes[r.logits.begin].token = "\xe2\x82\xac"; // "€", whole
        g.nodes[r.logits.begin + 1].label = "my logit";
        g.metadata.prompt = "the prompt " + g.metadata.promptTokens[0];
        g.metadata.nodeThreshold = 0.55;
        g.metadata.edgeThreshold = 0.9125;
        g.metadata.qParams = { { "pinnedIds", { "0_1_2" } }, { "linkType", "both" } };
        g.metadata.extra = { { "scores", { { "replacement", 0.25 }, { "completeness", 0.75 } } },
            { "info", { { "generator", "tst_graph" } } } };
        at::Tensor dense = g.adjacency.dense();
        dense[0][1] = std::numeric_limits<float>::denorm_min(); // any float comes back
        g.adjacency = cs::graph::Adjacency::fromDense(dense);
        const std::string path = dir.filePath(QString("g") + cs::graph::kGraphFileExtension).toStdString();
        cs::graph::writeGraphFile(path, g);
        QCOMPARE(QDir(dir.path()).entryList(QDir::Files), QStringList { "g.csgraph" }); // no temporary left
        QVERIFY(cs::graph::isGraphFile(path));

        // A safetensors file with the adjacency's three arrays and the logit probabilities.
        const auto file = cs::io::SafetensorsFile::open(path);
        QCOMPARE(file->tensors().size(), size_t(4));
        QCOMPARE(file->find("adjacency.row_starts")->shape, (std::vector<int64_t> { g.size() + 1 }));
        QCOMPARE(file->find("adjacency.columns")->shape, (std::vector<int64_t> { g.adjacency.nnz() }));
        QCOMPARE(file->find("adjacency.values")->shape, (std::vector<int64_t> { g.adjacency.nnz() }));
        QVERIFY(!file->find("adjacency"));
        QCOMPARE(file->find("logit_probabilities")->shape, (std::vector<int64_t> { spec.nLogits }));
        QVERIFY(file->metadata().count(cs::graph::kGraphFileMetadataKey));

        const Graph back = cs::graph::readGraphFile(path);
        QCOMPARE(back.size(), g.size());
        for (int64_t i = 0; i < g.size(); ++i) {
            const Node& a = g.nodes[i];
            const Node& b = back.nodes[i];
            QCOMPARE(b.kind, a.kind);
            QCOMPARE(b.layer, a.layer);
            QCOMPARE(b.position, a.position);
            QCOMPARE(b.feature, a.feature);
            QCOMPARE(b.activation, a.activation); // exactly
            QCOMPARE(b.tokenId, a.tokenId);
            QCOMPARE(b.token, a.token);
            QCOMPARE(b.tokenProb, a.tokenProb);
            QCOMPARE(b.label, a.label);
        }
        QVERIFY(back.adjacency == g.adjacency); // bit for bit
        QCOMPARE(back.adjacency.value(0, 1), std::numeric_limits<float>::denorm_min());
        QVERIFY(back.logitProbabilities == g.logitProbabilities);
        const auto& m = back.metadata;
        QCOMPARE(m.slug, g.metadata.slug);
        QCOMPARE(m.prompt, g.metadata.prompt);
        QCOMPARE(m.promptTokens, g.metadata.promptTokens);
        QCOMPARE(m.scan, g.metadata.scan);
        QCOMPARE(m.transcoderList, g.metadata.transcoderList);
        QCOMPARE(m.nodeThreshold, 0.55);
        QCOMPARE(m.edgeThreshold, 0.9125);
        QCOMPARE(m.qParams, g.metadata.qParams);
        QCOMPARE(m.extra, g.metadata.extra);

        // Pruned the same as the graph it came from.
        const PruneResult p1 = Pruner(g).prune(0.8, 0.98);
        const PruneResult p2 = Pruner(back).prune(0.8, 0.98);
        QCOMPARE(p2.nodeMask, p1.nodeMask);
        QCOMPARE(p2.edgeMask, p1.edgeMask);

        // Written again over itself (a reader may still hold the old file), the same bytes.
        const std::string bytes = readBytes(path);
        cs::graph::writeGraphFile(path, back);
        QCOMPARE(readBytes(path), bytes);

        // A graph JSON is not a graph file.
        const std::string jsonPath = dir.filePath("g.json").toStdString();
        cs::graph::writeJsonFile(jsonPath, g, p1); // the half character becomes U+FFFD there
        QVERIFY(!cs::graph::isGraphFile(jsonPath));
        QCOMPARE(cs::graph::readJsonFile(jsonPath).metadata.promptTokens[0], std::string("caf\xef\xbf\xbd"));
    }

    void graphFileEdgeCases()
    {
        QTemporaryDir dir(cs::test::testTempRoot() + "/graph-file-XXXXXX");
        QVERIFY(dir.isValid());
        // No nodes at all: nothing to explain, refused (issue 23; it was written and read).
        Graph empty;
        empty.logitProbabilities = {};
        const std::string path = dir.filePath("empty.csgraph").toStdString();
        try {
            cs::graph::writeGraphFile(path, empty);
            QFAIL("wrote a graph without nodes");
        } catch (const cs::Error& e) {
            QCOMPARE(std::string(e.what()), "cannot write " + path + ": attribution graph: no nodes");
        }

        // A version 1 file (the dense [n, n] adjacency, before it was stored sparse) reads as
        // the same graph.
        Graph g = randomGraph({ 2, 3, 10, 2, 0.5, 1 });
        cs::graph::writeGraphFile(path, g);
        FileParts parts = readParts(path);
        parts.doc["version"] = 1;
        cs::io::SafetensorsWriter v1;
        v1.add("adjacency", g.adjacency.dense()); // [n, n] F32
        v1.add("logit_probabilities", parts.logitProbabilities);
        v1.setMetadata(cs::graph::kGraphFileMetadataKey, parts.doc.dump());
        const std::string old = dir.filePath("v1.csgraph").toStdString();
        v1.write(old);
        const Graph fromV1 = cs::graph::readGraphFile(old);
        QVERIFY(fromV1.adjacency == g.adjacency);
        QCOMPARE(fromV1.size(), g.size());
        QCOMPARE(Pruner(fromV1).prune(0.8, 0.98).edgeMask, Pruner(g).prune(0.8, 0.98).edgeMask);

        // What cannot be written is refused before anything is written.
        const std::string refused = dir.filePath("refused.csgraph").toStdString();
        g.nodes[0].activation = std::numeric_limits<double>::infinity();
        try {
            cs::graph::writeGraphFile(refused, g);
            QFAIL("wrote an infinite activation");
        } catch (const cs::Error& e) {
            QCOMPARE(std::string(e.what()),
                "cannot write " + refused + ": attribution graph: node 0 (feature " + cs::graph::nodeId(g, 0)
                    + ") has an infinite or NaN activation");
        }
        g = randomGraph({ 2, 3, 10, 2, 0.5, 1 });
        g.adjacency = cs::graph::Adjacency(3);
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::graph::writeGraphFile(refused, g));
        QVERIFY(!QFile::exists(QString::fromStdString(refused)));
    }

    void graphFileRefusals_data()
    {
        QTest::addColumn<QString>("change"); // what is done to a good file
        QTest::addColumn<QString>("message"); // a part of the message, after the path
        QTest::newRow("truncated data") << "truncate-data"
                                        << "run past the end of the data";
        QTest::newRow("truncated header") << "truncate-header"
                                          << "truncated file?";
        QTest::newRow("shorter than 8 bytes") << "truncate-5"
                                              << "shorter than the 8-byte header length";
        QTest::newRow("garbage bytes") << "garbage"
                                       << "is not a valid safetensors file";
        QTest::newRow("a graph JSON") << "json"
                                      << "is JSON text (a graph JSON?), not a Circuitscope graph file";
        QTest::newRow("no graph metadata") << "no-key"
                                           << "without \"circuitscope.graph\" metadata";
        QTest::newRow("metadata not JSON") << "metadata-garbage"
                                           << "\"circuitscope.graph\" metadata: is not JSON";
        QTest::newRow("metadata nested 100,000 deep") << "metadata-deep"
                                                      << "metadata: nested deeper than 512 levels";
        QTest::newRow("foreign format") << "format"
                                        << ".format: is \"other\", expected \"circuitscope.graph\"";
        QTest::newRow("newer version") << "version"
                                       << "format version 3 by a newer Circuitscope";
        QTest::newRow("no adjacency values") << "no-adjacency"
                                             << "no tensor \"adjacency.values\"";
        QTest::newRow("row starts too short")
            << "adjacency-shape"
            << "tensor \"adjacency.row_starts\": has 21 entries but must have 22 (21 nodes)";
        QTest::newRow("values float64") << "adjacency-dtype"
                                        << "tensor \"adjacency.values\": is F64, expected F32";
        QTest::newRow("columns int64") << "columns-dtype"
                                       << "tensor \"adjacency.columns\": is I64, expected I32";
        QTest::newRow("row starts two-dimensional")
            << "row-starts-2d"
            << "tensor \"adjacency.row_starts\": is [1, 22], expected one dimension";
        QTest::newRow("a value missing") << "values-short"
                                         << "tensor \"adjacency.values\": has";
        QTest::newRow("column out of range") << "column-range"
                                             << "has column 21, outside [0, 21)";
        QTest::newRow("columns not sorted") << "column-order"
                                            << "are not strictly increasing";
        QTest::newRow("row starts decrease") << "row-starts-order"
                                             << "ends before it starts";
        QTest::newRow("row starts past the entries") << "row-starts-end"
                                                     << "the row starts must run from 0 to the entry count";
        // fuzz_csgraph: a row start far past the entries, in the middle of the rows, read the columns
        // past their end before the next row's start (back at nnz) was seen.
        QTest::newRow("a row start far past the entries") << "row-starts-middle"
                                                          << "adjacency: row 1 ends at entry 562949953421313, past the";
        QTest::newRow("logit probabilities")
            << "logits-shape"
            << "tensor \"logit_probabilities\": is [3] but must be [2] (2 logit nodes)";
        QTest::newRow("a node too many")
            << "extra-node"
            << "tensor \"adjacency.row_starts\": has 22 entries but must have 23 (22 nodes)";
        QTest::newRow("NaN edge") << "nan"
                                  << "infinite or NaN";
        QTest::newRow("layer a string") << "layer-string"
                                        << "nodes[0].layer: expected an integer, got a string";
        // A position bounds what the explorer allocates per position (issue 23).
        QTest::newRow("a node at position 10^9") << "far-position"
                                                 << "is at position 1000000000, outside the prompt's 3 tokens";
        QTest::newRow("no label") << "no-label"
                                  << "nodes[1]: missing key \"label\"";
        QTest::newRow("unknown kind") << "kind"
                                      << "nodes[2].kind: \"lorsa\" is not a node kind";
        QTest::newRow("token bytes") << "token-bytes"
                                     << "holding an integer outside 0..255";
        QTest::newRow("node order") << "order"
                                    << "(the order is features, errors, embeddings, logits)";
        QTest::newRow("no metadata") << "no-metadata"
                                     << ": missing key \"metadata\"";
        // Issue 21: files that once ran past the time limit or were accepted.
        QTest::newRow("a null token") << "null-token"
                                      << "].token: expected a string or an array of bytes, got null";
        QTest::newRow("a feature node twice") << "feature-twice"
                                              << "repeats node 0 (the same id)";
        QTest::newRow("metadata without prompt_tokens") << "no-prompt-tokens"
                                                        << "metadata: missing key \"prompt_tokens\"";
        QTest::newRow("metadata without slug") << "no-slug"
                                               << "metadata: missing key \"slug\"";
        QTest::newRow("extra not an object") << "extra"
                                             << "metadata.extra: expected an object, got an array";
        QTest::newRow("missing file") << "missing"
                                      << "cannot read";
        // Only regular files are opened (issue 24): a FIFO blocked the open, a device read forever.
        QTest::newRow("a FIFO") << "fifo"
                                << "is not a regular file (a FIFO)";
        QTest::newRow("a link to /dev/urandom") << "device"
                                                << "is not a regular file (a device)";
    }
    void graphFileRefusals()
    {
        QFETCH(QString, change);
        QFETCH(QString, message);
        QTemporaryDir dir(cs::test::testTempRoot() + "/graph-file-XXXXXX");
        QVERIFY(dir.isValid());
        const Graph g = randomGraph({ 2, 3, 10, 2, 0.5, 1 });
        const std::string path = dir.filePath("g.csgraph").toStdString();
        cs::graph::writeGraphFile(path, g);
        const std::string good = readBytes(path);
        FileParts parts = readParts(path);
        const auto rewrite = [&] { writeParts(path, parts, parts.doc.dump()); };
        const int64_t n = g.size();
        const std::string c = change.toStdString();
        if (c == "truncate-data") {
            writeBytes(path, good.substr(0, good.size() - 7));
        } else if (c == "truncate-header") {
            writeBytes(path, good.substr(0, 40));
        } else if (c == "truncate-5") {
            writeBytes(path, good.substr(0, 5));
        } else if (c == "garbage") {
            std::mt19937_64 rng(3);
            std::string bytes(4096, '\0');
            for (char& b : bytes)
                b = static_cast<char>(rng() & 0xff);
            bytes[7] = 0; // a header length that fits, so the header's JSON is what fails
            bytes[6] = 0;
            bytes[5] = 0;
            bytes[4] = 0;
            bytes[3] = 0;
            bytes[2] = 0;
            bytes[1] = 0x08;
            writeBytes(path, bytes);
        } else if (c == "json") {
            cs::graph::writeJsonFile(path, g, cs::graph::keepAll(g));
        } else if (c == "no-key") {
            writeParts(path, parts, "");
        } else if (c == "metadata-garbage") {
            writeParts(path, parts, "{\"format\": ");
        } else if (c == "metadata-deep") {
            writeParts(path, parts, "{\"format\": " + std::string(100000, '[') + std::string(100000, ']') + "}");
        } else if (c == "format") {
            parts.doc["format"] = "other";
            rewrite();
        } else if (c == "version") {
            parts.doc["version"] = 3;
            rewrite();
        } else if (c == "no-adjacency") {
            parts.values = at::Tensor();
            rewrite();
        } else if (c == "adjacency-shape") {
            parts.rowStarts = parts.rowStarts.slice(0, 0, n).contiguous();
            rewrite();
        } else if (c == "adjacency-dtype") {
            parts.values = parts.values.to(at::kDouble);
            rewrite();
        } else if (c == "columns-dtype") {
            parts.columns = parts.columns.to(at::kLong);
            rewrite();
        } else if (c == "row-starts-2d") {
            parts.rowStarts = parts.rowStarts.unsqueeze(0).contiguous();
            rewrite();
        } else if (c == "values-short") {
            parts.values = parts.values.slice(0, 0, parts.values.numel() - 1).contiguous();
            rewrite();
        } else if (c == "column-range") {
            parts.columns[0] = static_cast<int32_t>(n);
            rewrite();
        } else if (c == "column-order") {
            // The first row with two entries gets them swapped.
            const at::Tensor starts = parts.rowStarts;
            int64_t at = -1;
            for (int64_t t = 0; t < n && at < 0; ++t)
                if (starts[t + 1].item<int64_t>() - starts[t].item<int64_t>() >= 2)
                    at = starts[t].item<int64_t>();
            QVERIFY(at >= 0);
            const at::Tensor first = parts.columns[at].clone();
            parts.columns[at] = parts.columns[at + 1];
            parts.columns[at + 1] = first;
            rewrite();
        } else if (c == "row-starts-order") {
            // The second-last row ends (where the last starts) before it starts.
            QVERIFY(parts.rowStarts[n - 2].item<int64_t>() > 0);
            parts.rowStarts[n - 1] = 0;
            rewrite();
        } else if (c == "row-starts-end") {
            parts.rowStarts[n] = parts.rowStarts[n].item<int64_t>() + 1;
            rewrite();
        } else if (c == "row-starts-middle") {
            parts.rowStarts[2] = int64_t(562949953421313); // 2^49 + 1, as the fuzzer wrote it
            rewrite();
        } else if (c == "logits-shape") {
            parts.logitProbabilities = at::ones({ 3 });
            rewrite();
        } else if (c == "extra-node") {
            parts.doc["nodes"].push_back(parts.doc["nodes"].back());
            rewrite();
        } else if (c == "nan") {
            parts.values[parts.values.numel() - 1] = std::nanf("");
            rewrite();
        } else if (c == "layer-string") {
            parts.doc["nodes"][0]["layer"] = "1";
            rewrite();
        } else if (c == "far-position") {
            parts.doc["nodes"][0]["position"] = 1000000000;
            rewrite();
        } else if (c == "no-label") {
            parts.doc["nodes"][1].erase("label");
            rewrite();
        } else if (c == "kind") {
            parts.doc["nodes"][2]["kind"] = "lorsa";
            rewrite();
        } else if (c == "token-bytes") {
            parts.doc["nodes"][n - 1]["token"] = json::array({ 65, 300 });
            rewrite();
        } else if (c == "order") {
            std::swap(parts.doc["nodes"][0], parts.doc["nodes"][n - 1]);
            rewrite();
        } else if (c == "no-metadata") {
            parts.doc.erase("metadata");
            rewrite();
        } else if (c == "null-token") {
            parts.doc["nodes"][n - 1]["token"] = nullptr;
            rewrite();
        } else if (c == "feature-twice") {
            QCOMPARE(parts.doc["nodes"][1]["kind"], json("feature"));
            parts.doc["nodes"][1] = parts.doc["nodes"][0];
            rewrite();
        } else if (c == "no-prompt-tokens" || c == "no-slug") {
            parts.doc["metadata"].erase(c == "no-slug" ? "slug" : "prompt_tokens");
            rewrite();
        } else if (c == "extra") {
            parts.doc["metadata"]["extra"] = json::array();
            rewrite();
        } else if (c == "missing") {
            QVERIFY(QFile::remove(QString::fromStdString(path)));
        } else if (c == "fifo" || c == "device") {
            QVERIFY(QFile::remove(QString::fromStdString(path)));
            if (c == "fifo")
                QCOMPARE(::mkfifo(path.c_str(), 0600), 0);
            else
                QVERIFY(QFile::link("/dev/urandom", QString::fromStdString(path)));
        } else {
            QFAIL("unknown change");
        }
        try {
            cs::graph::readGraphFile(path);
            QFAIL("read a broken graph file");
        } catch (const cs::Error& e) {
            const std::string what = e.what();
            QVERIFY2(what.find(path) != std::string::npos, e.what()); // names the file
            QVERIFY2(what.find(message.toStdString()) != std::string::npos, e.what());
        }
    }

    // About 2,000 nodes (1,782 features over 12 layers and 16 positions, half of the allowed
    // edges present): the UI re-prunes on every slider move.
    void repruneTiming()
    {
        const int64_t nLayers = 12, nPos = 16, nLogits = 10;
        const int64_t nFeatures = 2000 - nLayers * nPos - nPos - nLogits;
        Graph g;
        at::manual_seed(5);
        std::mt19937_64 rng(5);
        for (int64_t i = 0; i < nFeatures; ++i) {
            const auto layer = static_cast<int64_t>(rng() % nLayers);
            const auto position = static_cast<int64_t>(rng() % nPos);
            g.nodes.push_back(cs::test::featureNode(layer, position, i, 1));
        }
        for (int64_t l = 0; l < nLayers; ++l)
            for (int64_t p = 0; p < nPos; ++p)
                g.nodes.push_back(cs::test::errorNode(l, p));
        for (int64_t p = 0; p < nPos; ++p)
            g.nodes.push_back(cs::test::embeddingNode(p, p, ""));
        g.metadata.promptTokens.resize(static_cast<size_t>(nPos));
        for (int64_t k = 0; k < nLogits; ++k)
            g.nodes.push_back(cs::test::logitNode(nLayers, nPos - 1, k, "", 0.09));
        const int64_t n = g.size();
        QCOMPARE(n, 2000);
        std::vector<int64_t> level, position, target, source;
        for (const Node& node : g.nodes) {
            level.push_back(levelOf(node));
            position.push_back(node.position);
            target.push_back(node.kind == NodeKind::Feature || node.kind == NodeKind::Logit);
            source.push_back(node.kind != NodeKind::Logit);
        }
        const at::Tensor lv = at::tensor(level), ps = at::tensor(position);
        const at::Tensor allowed = (lv.unsqueeze(0) < lv.unsqueeze(1)) & (ps.unsqueeze(0) <= ps.unsqueeze(1))
            & at::tensor(target).to(at::kBool).unsqueeze(1) & at::tensor(source).to(at::kBool).unsqueeze(0);
        g.adjacency = cs::graph::Adjacency::fromDense(
            at::randn({ n, n }) * ((at::rand({ n, n }) < 0.5) & allowed).to(at::kFloat));
        g.logitProbabilities = std::vector<float>(static_cast<size_t>(nLogits), 0.09f);

        QElapsedTimer timer;
        timer.start();
        const Pruner pruner(g);
        const double buildMs = timer.nsecsElapsed() / 1e6;
        const auto time = [&](double nt, double et) {
            std::vector<double> ms;
            PruneResult r;
            for (int rep = 0; rep < 5; ++rep) {
                timer.restart();
                r = pruner.prune(nt, et);
                ms.push_back(timer.nsecsElapsed() / 1e6);
            }
            std::sort(ms.begin(), ms.end());
            qInfo("re-prune %lld nodes (%lld nonzero edges) at %.2f / %.2f: %.2f ms (median of 5); kept %lld "
                  "nodes, %lld edges",
                static_cast<long long>(n), static_cast<long long>(g.adjacency.nnz()), nt, et, ms[2],
                static_cast<long long>(std::count(r.nodeMask.begin(), r.nodeMask.end(), true)),
                static_cast<long long>(r.edgeCount()));
            return r;
        };
        qInfo("Pruner for %lld nodes built in %.1f ms", static_cast<long long>(n), buildMs);
        const PruneResult r = time(0.8, 0.98);
        time(0.5, 0.9);
        time(1.0, 1.0);
        for (int64_t i = g.ranges().embeddings.begin; i < n; ++i)
            QVERIFY(r.nodeMask[i]);
    }
};

QTEST_GUILESS_MAIN(TestGraph)
#include "tst_graph.moc"
