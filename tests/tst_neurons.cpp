// Neuron-basis attribution (cs/neurons.h) against properties that must hold and hand-derived
// cases: RelP's forms give the values of act(z) and a * b with the hand-derived gradients
// (sigmoid(z) for SiLU, gelu(z) / z for the GELUs, b / 2 and a / 2 for the half rule); RelP
// conserves the metric through every layer's residual stream (a cut every path crosses) in
// bias-free models of three families, and its last-layer neuron scores equal the hand-written
// linear read-out through the frozen final norm; integrated gradients satisfy the completeness
// axiom layer by layer on tinyworld, from zero and from a counterfactual prompt; bad requests
// are refused.
#include "hf_fixtures.h"

#include "cs/engine.h"
#include "cs/error.h"
#include "cs/graph.h"
#include "cs/intervention.h"
#include "cs/model.h"
#include "cs/neurons.h"
#include "cs/replacement.h"
#include "cs/transcoder.h"

#include "../engine/src/neurons/feature_basis.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <QTemporaryDir>
#include <QtTest>

#include <cmath>
#include <fstream>
#include <sys/stat.h>

using cs::model::Activation;

class TestNeurons : public QObject {
    Q_OBJECT

    QTemporaryDir m_dir { cs::test::testTempRoot() + "/neurons-XXXXXX" };

    std::shared_ptr<const cs::model::Model> tiny(const std::string& family)
    {
        cs::test::TinySpec spec;
        spec.family = family;
        spec.nLayers = 3;
        const QString folder = cs::test::writeTinyModel(m_dir.filePath(QString::fromStdString(family)), spec);
        return cs::model::Model::load(folder.toStdString(), { "cpu", true });
    }

private Q_SLOTS:
    void relpForms()
    {
        at::AutoGradMode gradients(true);
        for (const Activation act : { Activation::Silu, Activation::GeluTanh, Activation::GeluExact }) {
            const at::Tensor z = at::tensor({ -2.0, -0.5, 0.0, 0.75, 3.0 }, at::kDouble).requires_grad_(true);
            const at::Tensor y = cs::model::relpActivation(z, act);
            const at::Tensor zd = z.detach();
            const at::Tensor want = act == Activation::Silu ? at::silu(zd)
                : act == Activation::GeluTanh               ? at::gelu(zd, "tanh")
                                                            : at::gelu(zd);
            QVERIFY(at::allclose(y.detach(), want, 1e-12, 1e-12));
            y.sum().backward();
            const at::Tensor grad = z.grad();
            for (int64_t i = 0; i < z.size(0); ++i) {
                const double v = z[i].item<double>(), f = want[i].item<double>();
                // Hand-derived: sigmoid(z) for SiLU, f(z) / z for the GELUs (1/2 at 0).
                const double expected = act == Activation::Silu ? 1.0 / (1.0 + std::exp(-v)) : v == 0 ? 0.5 : f / v;
                QVERIFY2(std::abs(grad[i].item<double>() - expected) < 1e-12, qPrintable(QString::number(v)));
                // Relevance is conserved: z * grad = f(z).
                QVERIFY(std::abs(v * grad[i].item<double>() - f) < 1e-12);
            }
        }
        const at::Tensor a = at::tensor({ 1.5, -2.0 }, at::kDouble).requires_grad_(true);
        const at::Tensor b = at::tensor({ 4.0, 0.25 }, at::kDouble).requires_grad_(true);
        const at::Tensor p = cs::model::relpProduct(a, b);
        QVERIFY(at::allclose(p.detach(), (a * b).detach()));
        p.sum().backward();
        QVERIFY(at::allclose(a.grad(), b.detach() / 2)); // the half rule
        QVERIFY(at::allclose(b.grad(), a.detach() / 2));
    }

    // Without biases, the linearized network is linear in the residual stream: the scores at
    // any layer's residual stream sum to the metric.
    void relpConservesTheMetric_data()
    {
        QTest::addColumn<QString>("family");
        QTest::newRow("llama (SiLU, gate x up)") << "llama";
        QTest::newRow("qwen3 (q/k norms)") << "qwen3";
        QTest::newRow("gemma2 (GELU, post-norms, soft-cap)") << "gemma2";
    }

    void relpConservesTheMetric()
    {
        QFETCH(QString, family);
        const auto model = tiny(family.toStdString());
        const std::vector<int64_t> ids = { 1, 17, 42, 99, 5, 63, 7 };
        cs::neurons::AttributionOptions o;
        o.kind = cs::neurons::NodeKind::Resid;
        const auto r = cs::neurons::attribute(*model, ids, { 11, 23 }, o);
        QCOMPARE(static_cast<int64_t>(r.scores.size()), model->config().nLayers);
        // The metric itself is the real model's (RelP changes gradients, not values).
        const at::Tensor logits = model->forward(at::tensor(ids, at::kLong).unsqueeze(0)).logits[0][6];
        QVERIFY(std::abs(r.metric - (logits[11] - logits[23]).item<double>()) < 1e-4);
        for (const at::Tensor& s : r.scores) {
            QCOMPARE(s.size(0), int64_t(ids.size()));
            const double sum = s.sum().item<double>();
            QVERIFY2(std::abs(sum - r.metric) < 1e-3 * std::max(1.0, std::abs(r.metric)),
                qPrintable(QString("%1 vs %2").arg(sum).arg(r.metric)));
        }
        // The neuron scores do not sum to the metric (the residual stream bypasses each MLP),
        // but they are the same run's: each layer's width is d_mlp.
        o.kind = cs::neurons::NodeKind::Neurons;
        const auto n = cs::neurons::attribute(*model, ids, { 11, 23 }, o);
        QCOMPARE(n.scores[0].size(1), model->config().dMlp);
    }

    // The last layer's neurons reach the logits through the down projection, the frozen final
    // norm and the unembedding alone: score = h * (W_down^T (g (.) (W_U[a] - W_U[c])) / rms).
    void relpLastLayerByHand()
    {
        const auto model = tiny("llama");
        const auto& c = model->config();
        const std::vector<int64_t> ids = { 1, 30, 31, 32, 33 };
        at::Tensor hidden, resid;
        cs::model::ForwardOptions fo;
        fo.hook = [&](int64_t layer, cs::model::Hook h, at::Tensor& v) {
            if (layer == c.nLayers - 1 && h == cs::model::Hook::MlpHidden)
                hidden = v[0].clone();
            if (layer == c.nLayers - 1 && h == cs::model::Hook::ResidPost)
                resid = v[0].clone();
        };
        model->forward(at::tensor(ids, at::kLong).unsqueeze(0), fo);
        const int64_t last = static_cast<int64_t>(ids.size()) - 1;
        const at::Tensor x = resid[last].to(at::kDouble);
        const double rms = std::sqrt((x * x).mean().item<double>() + c.normEps);
        const at::Tensor readout
            = (model->weight("unembed.weight")[3] - model->weight("unembed.weight")[4]).to(at::kDouble)
            * model->weight("final_norm.weight").to(at::kDouble) / rms;
        const at::Tensor down = model->weight("layers." + std::to_string(c.nLayers - 1) + ".mlp.down.weight");
        const at::Tensor want = hidden[last].to(at::kDouble) * at::mv(down.to(at::kDouble).t(), readout);
        const auto r = cs::neurons::attribute(*model, ids, { 3, 4 });
        const at::Tensor got = r.scores.back()[last].to(at::kDouble);
        QVERIFY2(
            at::allclose(got, want, 1e-4, 1e-6), qPrintable(QString::number((got - want).abs().max().item<double>())));
        // Earlier positions' last-layer neurons do not reach the last position's logits.
        QVERIFY(r.scores.back().narrow(0, 0, last).abs().max().item<double>() == 0);
    }

    // On a purely linear model RelP is gradient x input and integrated gradients are exact: a
    // llama whose attention queries and keys are zero (uniform patterns), whose MLP gates are
    // zero (SiLU(0) = 0: no MLP) and whose norms' eps dwarfs the residual stream (the
    // denominator is sqrt(eps) to 1e-9; the norm weights undo the scale) is linear in every
    // layer's residual stream. There RelP's scores (one backward pass) equal the plain
    // gradient x input of the real model, and IG from zero equals both, each layer's summing to
    // the metric.
    void linearModel()
    {
        cs::test::TinySpec spec;
        spec.nLayers = 2;
        spec.normEps = 1e8;
        const QString folder = cs::test::writeTinyModel(m_dir.filePath("linear"), spec);
        const auto loaded = cs::model::Model::load(folder.toStdString(), { "cpu", true });
        auto weights = loaded->weights();
        for (auto& [name, w] : weights) {
            const bool zero = name.find("attn.q.weight") != std::string::npos
                || name.find("attn.k.weight") != std::string::npos || name.find("mlp.gate.weight") != std::string::npos;
            if (zero)
                w = at::zeros_like(w);
            if (name.find("norm.weight") != std::string::npos)
                w = at::full_like(w, 1e4); // sqrt(eps): the norms pass the stream through
        }
        const auto model = cs::model::Model::fromWeights(loaded->config(), weights, nullptr);
        const std::vector<int64_t> ids = { 1, 17, 42, 99, 5 };
        const cs::neurons::Metric metric { 11, 23 };
        cs::neurons::AttributionOptions o;
        o.kind = cs::neurons::NodeKind::Resid;
        const auto relp = cs::neurons::attribute(*model, ids, metric, o);
        o.method = cs::neurons::Method::IntegratedGradients;
        o.steps = 4; // exact for a linear function at any number of points
        const auto ig = cs::neurons::attribute(*model, ids, metric, o);
        // Plain gradient x input of the unmodified forward pass (no RelP rules, nothing frozen).
        at::AutoGradMode gradients(true);
        std::vector<at::Tensor> leaves(2), values(2);
        cs::model::ForwardOptions fo;
        fo.hook = [&](int64_t layer, cs::model::Hook h, at::Tensor& v) {
            if (h == cs::model::Hook::ResidPost) {
                values[static_cast<size_t>(layer)] = v.detach()[0];
                leaves[static_cast<size_t>(layer)] = at::zeros_like(v).requires_grad_(true);
                v = v + leaves[static_cast<size_t>(layer)];
            }
        };
        const at::Tensor last = model->forward(at::tensor(ids, at::kLong).unsqueeze(0), fo).logits[0][4];
        (last[11] - last[23]).backward();
        const double scale = std::max(1e-3, std::abs(relp.metric));
        for (size_t l = 0; l < 2; ++l) {
            const at::Tensor plain = values[l] * leaves[l].grad()[0];
            QVERIFY2((relp.scores[l] - plain).abs().max().item<double>() < 1e-4 * scale,
                qPrintable(QString::number((relp.scores[l] - plain).abs().max().item<double>())));
            QVERIFY2((ig.scores[l] - plain).abs().max().item<double>() < 1e-4 * scale,
                qPrintable(QString::number((ig.scores[l] - plain).abs().max().item<double>())));
            QVERIFY(std::abs(ig.scores[l].sum().item<double>() - relp.metric) < 1e-4 * scale);
        }
        QVERIFY(std::abs(relp.metric) > 1e-3); // a metric that is not trivially 0
    }

    // Paired RelP scores the difference from the counterfactual's values with the same gradient.
    void relpPaired()
    {
        const auto model = tiny("llama");
        const std::vector<int64_t> ids = { 1, 30, 31, 32, 33 }, other = { 1, 30, 60, 32, 33 };
        const auto alone = cs::neurons::attribute(*model, ids, { 3, 4 });
        cs::neurons::AttributionOptions o;
        o.baselineIds = other;
        const auto paired = cs::neurons::attribute(*model, ids, { 3, 4 }, o);
        std::vector<at::Tensor> base(alone.values.size());
        cs::model::ForwardOptions fo;
        fo.hook = [&](int64_t layer, cs::model::Hook h, at::Tensor& v) {
            if (h == cs::model::Hook::MlpHidden)
                base[size_t(layer)] = v[0].clone();
        };
        model->forward(at::tensor(other, at::kLong).unsqueeze(0), fo);
        int checked = 0;
        for (size_t l = 0; l < base.size(); ++l) {
            const at::Tensor x = alone.values[l], mask = x.abs() > 1e-3;
            const at::Tensor grad = alone.scores[l] / at::where(mask, x, at::ones_like(x));
            const at::Tensor want = (x - base[l]) * grad;
            QVERIFY(at::allclose(paired.scores[l].masked_select(mask), want.masked_select(mask), 1e-3, 1e-5));
            checked += static_cast<int>(mask.sum().item<int64_t>());
            // Where the prompts agree (positions 0, 1 before the change), the score is 0.
            QVERIFY(paired.scores[l].narrow(0, 0, 2).abs().max().item<double>() < 1e-6);
        }
        QVERIFY(checked > 100);
    }

    // Completeness, layer by layer, at the default 32 steps: within 1% of m(x) - m(x with the
    // layer at the baseline), on tinyworld's two-hop prompt, from zero and from a counterfactual.
    void integratedGradientsComplete()
    {
        const auto model = cs::model::Model::load(cs::resolveModelFolder(cs::kDefaultModel), { "cpu", true });
        const auto& tok = model->tokenizer();
        const auto ids = tok.encode("Fact: the capital of the state containing Dallas is");
        const auto other = tok.encode("Fact: the capital of the state containing Miami is");
        QCOMPARE(other.size(), ids.size());
        const cs::neurons::Metric metric { tok.encode(" Austin", false).at(0),
            tok.encode(" Tallahassee", false).at(0) };
        for (const auto kind : { cs::neurons::NodeKind::Neurons, cs::neurons::NodeKind::AttnOut }) {
            for (const bool paired : { false, true }) {
                cs::neurons::AttributionOptions o;
                o.method = cs::neurons::Method::IntegratedGradients;
                o.kind = kind;
                o.batchSize = 16;
                if (paired)
                    o.baselineIds = other;
                const auto r = cs::neurons::attribute(*model, ids, metric, o);
                QVERIFY(r.metric > 5); // Austin over Tallahassee
                for (size_t l = 0; l < r.scores.size(); ++l) {
                    const double want = r.metric - r.baselineMetric[l], got = r.scores[l].sum().item<double>();
                    // One path at 32 points is not within 1%: layer 0's neurons from zero (2.2%
                    // measured; the integrand has a spike 32 Gauss-Legendre points miss, checked
                    // at 256 points below).
                    const bool rough = kind == cs::neurons::NodeKind::Neurons && !paired && l == 0;
                    QVERIFY2(std::abs(got - want) <= (rough ? 0.05 : 0.01) * std::abs(want) + 1e-3,
                        qPrintable(QString("%1 layer %2 paired %3: %4 vs %5")
                                       .arg(cs::neurons::nodeKindName(kind))
                                       .arg(l)
                                       .arg(paired)
                                       .arg(got)
                                       .arg(want)));
                }
            }
        }
    }

    // The one path 32 points miss, at 256: within 1% (2e-7 measured).
    void integratedGradientsConverge()
    {
        const auto model = cs::model::Model::load(cs::resolveModelFolder(cs::kDefaultModel), { "cpu", true });
        const auto& tok = model->tokenizer();
        cs::neurons::AttributionOptions o;
        o.method = cs::neurons::Method::IntegratedGradients;
        o.steps = 256;
        o.batchSize = 64;
        const auto r = cs::neurons::attribute(*model, tok.encode("Fact: the capital of the state containing Dallas is"),
            { tok.encode(" Austin", false).at(0), tok.encode(" Tallahassee", false).at(0) }, o);
        const double want = r.metric - r.baselineMetric[0], got = r.scores[0].sum().item<double>();
        QVERIFY2(std::abs(got - want) <= 0.01 * std::abs(want), qPrintable(QString("%1 vs %2").arg(got).arg(want)));
    }

    // Means over every position but the BOS; ablation equals a forward pass whose hook sets each
    // unit outside `keep` to its mean, written here.
    void meanAblationEqualsHookedForward()
    {
        const auto model = tiny("llama");
        const std::vector<std::vector<int64_t>> prompts = { { 1, 5, 9, 13 }, { 1, 40, 41 }, { 7, 8 } };
        for (const auto kind : { cs::neurons::NodeKind::Neurons, cs::neurons::NodeKind::Resid }) {
            const auto means = cs::neurons::meanValues(*model, prompts, kind);
            // By hand: every prompt's values, BOS (id 1 is the tiny model's BOS when first) left out.
            std::vector<at::Tensor> sums(means.size());
            int64_t count = 0;
            for (const auto& ids : prompts) {
                const int64_t skip = model->config().bosTokenId && ids[0] == *model->config().bosTokenId ? 1 : 0;
                cs::model::ForwardOptions fo;
                fo.hook = [&](int64_t layer, cs::model::Hook h, at::Tensor& v) {
                    if (h == cs::neurons::hookOf(kind)) {
                        const at::Tensor s = v[0].narrow(0, skip, v.size(1) - skip).sum(0);
                        sums[size_t(layer)] = sums[size_t(layer)].defined() ? sums[size_t(layer)] + s : s;
                    }
                };
                model->forward(at::tensor(ids, at::kLong).unsqueeze(0), fo);
                count += int64_t(ids.size()) - skip;
            }
            for (size_t l = 0; l < means.size(); ++l)
                QVERIFY(at::allclose(means[l], sums[l] / double(count), 1e-5, 1e-6));

            const std::vector<int64_t> ids = { *model->config().bosTokenId, 22, 33, 44, 55 };
            at::manual_seed(5);
            std::vector<at::Tensor> keep;
            for (size_t l = 0; l < means.size(); ++l)
                keep.push_back(at::rand({ 5, means[l].size(0) }) < 0.5);
            const double got = cs::neurons::ablatedMetric(*model, ids, { 3, 4 }, kind, means, keep);
            cs::model::ForwardOptions fo;
            fo.hook = [&](int64_t layer, cs::model::Hook h, at::Tensor& v) {
                if (h != cs::neurons::hookOf(kind))
                    return;
                at::Tensor out = v.clone();
                const bool bos = model->config().bosTokenId && ids[0] == *model->config().bosTokenId;
                for (int64_t p = bos ? 1 : 0; p < 5; ++p) // a leading BOS is never ablated
                    for (int64_t u = 0; u < v.size(2); ++u)
                        if (!keep[size_t(layer)][p][u].item<bool>())
                            out[0][p][u] = means[size_t(layer)][u];
                v = out;
            };
            const at::Tensor last = model->forward(at::tensor(ids, at::kLong).unsqueeze(0), fo).logits[0][4];
            QVERIFY2(std::abs(got - (last[3] - last[4]).item<double>()) < 1e-5, qPrintable(QString::number(got)));
        }
    }

    // Faithfulness is 0 for the empty circuit and 1 for the whole model; completeness the
    // reverse; a task file round-trips and bad lines are refused naming the line.
    void circuitCurve()
    {
        const auto model = cs::model::Model::load(cs::resolveModelFolder(cs::kDefaultModel), { "cpu", true });
        const std::string t = "Fact: the capital of the state containing ";
        const std::vector<cs::neurons::TaskItem> task = {
            { t + "Dallas is", " Austin", t + "Miami is", " Tallahassee" },
            { t + "Miami is", " Tallahassee", t + "Dallas is", " Austin" },
            { t + "Denver is", " Denver", t + "Boston is", " Boston" },
        };
        const std::string path = m_dir.filePath("task.jsonl").toStdString();
        cs::neurons::writeTask(path, task);
        const auto read = cs::neurons::readTask(path);
        QCOMPARE(read.size(), task.size());
        QCOMPARE(read[2].counterfactualAnswer, std::string(" Boston"));
        for (const auto method : { cs::neurons::Method::RelP, cs::neurons::Method::IntegratedGradients }) {
            cs::neurons::CurveOptions o;
            o.attribution.method = method;
            o.attribution.steps = 8;
            o.attribution.batchSize = 8;
            o.ks = { 0, 20, 1000000 };
            const auto curve = cs::neurons::evaluateCircuits(*model, read, o);
            QCOMPARE(curve.items, int64_t(3));
            QVERIFY(curve.full > curve.empty);
            QVERIFY(std::abs(curve.points[0].faithfulness) < 1e-5);
            QVERIFY(std::abs(curve.points[0].completeness - 1) < 1e-5);
            QVERIFY(std::abs(curve.points[2].faithfulness - 1) < 1e-5);
            QVERIFY(std::abs(curve.points[2].completeness) < 1e-5);
            // Ablating the 20 top-scored of tinyworld's ~26,000 neuron nodes (4 layers x 512 x 13
            // positions) removes most of the metric (measured: 96% by RelP).
            QVERIFY2(curve.points[1].completeness < 0.5, qPrintable(QString::number(curve.points[1].completeness)));
        }
        // Edge circuits: with every edge kept (or none removed) the circuit is the node circuit of
        // the same k (evaluateCircuits' faithfulness at k = nodes, an independent run); the edge
        // counts are the fractions of the candidates; half the edges do better than none here.
        cs::neurons::EdgeCurveOptions eo;
        eo.nodes = 40;
        eo.fractions = { 0.0, 0.05, 0.5, 1.0 };
        const auto edges = cs::neurons::evaluateEdgeCircuits(*model, read, eo);
        cs::neurons::CurveOptions co;
        co.ks = { 40 };
        const auto nodes = cs::neurons::evaluateCircuits(*model, read, co);
        QVERIFY(edges.candidates > 0);
        QVERIFY(std::abs(edges.full - nodes.full) < 1e-4 && std::abs(edges.empty - nodes.empty) < 1e-4);
        const double span = edges.full - edges.empty;
        QVERIFY2(std::abs((edges.nodesOnly - edges.empty) / span - nodes.points[0].faithfulness) < 1e-5,
            qPrintable(
                QString("%1 vs %2").arg((edges.nodesOnly - edges.empty) / span).arg(nodes.points[0].faithfulness)));
        QVERIFY(std::abs(edges.points[3].faithfulness - nodes.points[0].faithfulness) < 1e-5);
        QCOMPARE(edges.points[3].edges, edges.candidates);
        QCOMPARE(edges.points[0].edges, int64_t(0));
        // Removing nothing (completeness at fraction 0) is the node circuit too.
        QVERIFY(std::abs(edges.points[0].completeness - nodes.points[0].faithfulness) < 1e-5);
        QVERIFY(edges.points[2].faithfulness > edges.points[0].faithfulness);
        // Bad task files.
        const auto bad = [&](const std::string& text, const char* phrase) {
            const std::string file = m_dir.filePath("bad.jsonl").toStdString();
            std::ofstream(file) << text;
            try {
                cs::neurons::readTask(file);
            } catch (const cs::Error& e) {
                return std::string(e.what()).find(phrase) != std::string::npos
                    && std::string(e.what()).find("bad.jsonl") != std::string::npos;
            }
            return false;
        };
        QVERIFY(bad("{\"prompt\": \"a\"}\n", "no \"answer\""));
        QVERIFY(bad("{\"prompt\": \"a\", \"answer\": 3}\n", "not a string"));
        QVERIFY(bad("[1]\n", "not a JSON object"));
        QVERIFY(bad("{\"prompt\": \"a\", \"answer\": \"b\", \"counterfactual\": \"c\"}\n", "or neither"));
        QVERIFY(bad("{oops\n", "line 1"));
        QVERIFY(bad("\n\n", "no items"));
    }

    // Neuron graphs: without biases every row (each unit node and the logit) sums to its
    // quantity, whatever the node cap (the error nodes hold the rest of each layer).
    void traceRowsSumToTheirQuantities_data()
    {
        QTest::addColumn<QString>("family");
        QTest::addColumn<QString>("kind");
        QTest::addColumn<int>("maxNodes");
        QTest::newRow("llama neurons, all") << "llama"
                                            << "neurons" << -1;
        QTest::newRow("llama neurons, 25") << "llama"
                                           << "neurons" << 25;
        QTest::newRow("gemma2 neurons, 40") << "gemma2"
                                            << "neurons" << 40;
        QTest::newRow("qwen3 resid, 30") << "qwen3"
                                         << "resid" << 30;
        QTest::newRow("llama attn_out, 30") << "llama"
                                            << "attn_out" << 30;
    }

    void traceRowsSumToTheirQuantities()
    {
        QFETCH(QString, family);
        QFETCH(QString, kind);
        QFETCH(int, maxNodes);
        const auto model = tiny(family.toStdString());
        const std::vector<int64_t> ids = { 1, 17, 42, 99, 5, 63, 7 };
        cs::neurons::TraceOptions o;
        o.attribution.kind = cs::neurons::nodeKindFromName(kind.toStdString());
        o.maxNodes = maxNodes;
        o.batchSize = 7;
        const auto r = cs::neurons::trace(*model, ids, { 11, 23 }, o);
        const cs::graph::Graph& g = r.graph;
        const auto ranges = g.ranges();
        const int64_t L = model->config().nLayers, n = static_cast<int64_t>(ids.size());
        if (maxNodes > 0)
            QCOMPARE(ranges.features.size(), int64_t(maxNodes));
        QCOMPARE(ranges.errors.size(), L * n);
        QCOMPARE(ranges.embeddings.size(), n);
        QCOMPARE(ranges.logits.size(), int64_t(1));
        QCOMPARE(g.metadata.basis, kind.toStdString());
        QCOMPARE(r.rows, ranges.features.size() + 1);
        // Each unit row against its value, the logit row against the metric, in double.
        const auto rowSum = [&](int64_t t) {
            const auto row = g.adjacency.row(t);
            double sum = 0, scale = 0;
            for (int64_t k = 0; k < row.size; ++k) {
                sum += row.values[k];
                scale += std::abs(row.values[k]);
            }
            return std::make_pair(sum, scale);
        };
        for (int64_t t = ranges.features.begin; t < ranges.features.end; ++t) {
            const auto [sum, scale] = rowSum(t);
            const double value = g.nodes[static_cast<size_t>(t)].activation;
            QVERIFY2(std::abs(sum - value) <= 1e-4 * (scale + std::abs(value)) + 1e-6,
                qPrintable(QString("node %1: %2 vs %3").arg(t).arg(sum).arg(value)));
            // Sources are earlier layers only, at positions up to the target's.
            const auto row = g.adjacency.row(t);
            for (int64_t k = 0; k < row.size; ++k) {
                const auto& s = g.nodes[static_cast<size_t>(row.columns[k])];
                QVERIFY(s.layer < g.nodes[static_cast<size_t>(t)].layer);
                QVERIFY(s.position <= g.nodes[static_cast<size_t>(t)].position);
            }
        }
        const auto [sum, scale] = rowSum(g.size() - 1);
        QVERIFY2(std::abs(sum - r.attribution.metric) <= 1e-4 * scale,
            qPrintable(QString("%1 vs %2").arg(sum).arg(r.attribution.metric)));
        QVERIFY(r.maxRelResidual < 1e-4);
    }

    // With every unit a node, the edges compose to RelP's attributions: in the linearized
    // network the total gradient at s is its direct gradient to the metric plus, over every
    // later unit t, t's total gradient times s's direct gradient into t, so
    //   attr(s) = A[m, s] + sum_t A[t, s] * attr(t) / x_t.
    void traceEdgesComposeToAttributions_data()
    {
        QTest::addColumn<QString>("family");
        QTest::newRow("llama") << "llama";
        QTest::newRow("gemma2") << "gemma2";
    }

    void traceEdgesComposeToAttributions()
    {
        QFETCH(QString, family);
        const auto model = tiny(family.toStdString());
        const std::vector<int64_t> ids = { 1, 17, 42, 99, 5 };
        cs::neurons::TraceOptions o;
        o.maxNodes = -1;
        o.batchSize = 64;
        const auto r = cs::neurons::trace(*model, ids, { 11, 23 }, o);
        const cs::graph::Graph& g = r.graph;
        const auto ranges = g.ranges();
        QCOMPARE(ranges.features.size(), model->config().nLayers * int64_t(ids.size()) * model->config().dMlp);
        const at::Tensor a = g.adjacency.dense().to(at::kDouble);
        const int64_t nUnits = ranges.features.size(), m = g.size() - 1;
        at::Tensor attr = at::zeros({ nUnits }, at::kDouble), x = at::zeros({ nUnits }, at::kDouble);
        for (int64_t i = 0; i < nUnits; ++i) {
            const auto& node = g.nodes[static_cast<size_t>(i)];
            attr[i] = r.attribution.scores[static_cast<size_t>(node.layer)][node.position][node.feature].item<double>();
            x[i] = node.activation;
        }
        const at::Tensor units = a.narrow(0, 0, nUnits).narrow(1, 0, nUnits); // [target, source]
        const at::Tensor composed = a[m].narrow(0, 0, nUnits) + at::mv(units.t(), attr / x);
        const double err = (composed - attr).abs().max().item<double>();
        const double size = attr.abs().max().item<double>();
        QVERIFY2(err < 1e-3 * size, qPrintable(QString("%1 of %2").arg(err).arg(size)));
        // No error node carries anything: every unit is a node and the model has no biases.
        QVERIFY(a.narrow(1, ranges.errors.begin, ranges.errors.size()).abs().max().item<double>() < 1e-4 * size);
    }

    // The graph JSON and the .csgraph keep the basis: feature_type "mlp neuron" and "other
    // units", read back as the same graph.
    void traceGraphFilesKeepTheBasis()
    {
        const auto model = tiny("llama");
        cs::neurons::TraceOptions o;
        o.maxNodes = 12;
        const auto r = cs::neurons::trace(*model, { 1, 17, 42, 99 }, { 11, -1 }, o);
        const cs::graph::Graph& g = r.graph;
        cs::graph::PruneResult all;
        all.nodeMask.assign(static_cast<size_t>(g.size()), true);
        all.edgeMask.assign(static_cast<size_t>(g.adjacency.nnz()), true);
        const nlohmann::json doc = cs::graph::toJson(g, all);
        QCOMPARE(doc["metadata"]["basis"].get<std::string>(), std::string("neurons"));
        int neurons = 0, others = 0;
        for (const auto& node : doc["nodes"]) {
            neurons += node["feature_type"] == "mlp neuron";
            others += node["feature_type"] == "other units";
            QVERIFY(node["feature_type"] != "cross layer transcoder");
        }
        QVERIFY(neurons > 0 && others > 0);
        const cs::graph::Graph back = cs::graph::fromJson(doc);
        QCOMPARE(back.metadata.basis, std::string("neurons"));
        QCOMPARE(back.ranges().features.size(), int64_t(neurons));
        // Told by the feature types alone (another tool may drop our metadata key).
        nlohmann::json bare = doc;
        bare["metadata"].erase("basis");
        QCOMPARE(cs::graph::fromJson(bare).metadata.basis, std::string("neurons"));
        // A transcoder error type in a neuron graph is refused, naming the node.
        nlohmann::json mixed = doc;
        for (auto& node : mixed["nodes"])
            if (node["feature_type"] == "other units") {
                node["feature_type"] = "mlp reconstruction error";
                break;
            }
        try {
            cs::graph::fromJson(mixed);
            QFAIL("a mixed graph was accepted");
        } catch (const cs::Error& e) {
            QVERIFY2(std::string(e.what()).find("feature_type") != std::string::npos, e.what());
        }
        const std::string path = m_dir.filePath("neurons.csgraph").toStdString();
        cs::graph::writeGraphFile(path, g);
        const cs::graph::Graph file = cs::graph::readGraphFile(path);
        QCOMPARE(file.metadata.basis, std::string("neurons"));
        QVERIFY(file.adjacency == g.adjacency);
    }

    // Unit edits as the model runs: a scale of 1 changes nothing; zeroing every neuron of a
    // layer at a position equals zeroing that layer's MLP output there (a bias-free MLP), an
    // edit through another hook; and the edited run equals a forward pass hooked by hand.
    void interveneOnUnits()
    {
        const auto model = tiny("llama");
        const auto& c = model->config();
        const std::vector<int64_t> ids = { 1, 17, 42, 99, 5 };
        using cs::intervention::FeatureEdit;
        using cs::intervention::Op;
        const auto same
            = cs::neurons::intervene(*model, ids, cs::neurons::NodeKind::Neurons, { { 1, 2, 7, Op::Scale, 1.0 } });
        QVERIFY(at::equal(same.logitsBefore, same.logitsAfter));
        std::vector<FeatureEdit> neurons, outputs;
        for (int64_t u = 0; u < c.dMlp; ++u)
            neurons.push_back({ 1, 3, u, Op::Scale, 0.0 });
        for (int64_t d = 0; d < c.dModel; ++d)
            outputs.push_back({ 1, 3, d, Op::Set, 0.0 });
        const auto a = cs::neurons::intervene(*model, ids, cs::neurons::NodeKind::Neurons, neurons);
        const auto b = cs::neurons::intervene(*model, ids, cs::neurons::NodeKind::MlpOut, outputs);
        QVERIFY(!at::allclose(a.logitsBefore, a.logitsAfter));
        QVERIFY(at::allclose(a.logitsAfter, b.logitsAfter, 1e-5, 1e-5));
        // Steering one neuron at every position, against the hook written here.
        const auto steer
            = cs::neurons::intervene(*model, ids, cs::neurons::NodeKind::Neurons, { { 0, -1, 5, Op::Add, 3.0 } });
        cs::model::ForwardOptions fo;
        fo.hook = [](int64_t layer, cs::model::Hook h, at::Tensor& v) {
            if (layer == 0 && h == cs::model::Hook::MlpHidden) {
                v = v.clone();
                v.select(2, 5).add_(3.0);
            }
        };
        const at::Tensor want = model->forward(at::tensor(ids, at::kLong).unsqueeze(0), fo).logits[0][4];
        QVERIFY(at::allclose(steer.logitsAfter, want, 1e-6, 1e-6));
        QCOMPARE(steer.after.front().id, want.argmax().item<int64_t>());
        for (const FeatureEdit& bad : { FeatureEdit { 9, 0, 0, Op::Set, 0 }, FeatureEdit { 0, 5, 0, Op::Set, 0 },
                 FeatureEdit { 0, 0, c.dMlp, Op::Set, 0 }, FeatureEdit { 0, 0, 0, Op::Set, NAN } })
            QVERIFY_THROWS_EXCEPTION(
                cs::Error, cs::neurons::intervene(*model, ids, cs::neurons::NodeKind::Neurons, { bad }));
    }

    // Transcoder features as the nodes (CurveOptions::transcoders): with every feature kept
    // the replacement model with its errors is the model (faithfulness 1), with none it is 0;
    // integrated gradients satisfy the completeness axiom layer by layer (a ReLU set, so the
    // path is smooth enough for 64 points), and RelP's scores are activation x gradient of the
    // frozen replacement model, checked against a finite difference of one feature.
    void featureCircuits()
    {
        const auto model = tiny("llama");
        const auto& c = model->config();
        at::manual_seed(5);
        cs::transcoder::TranscoderConfig tc;
        tc.architecture = cs::transcoder::Architecture::CrossLayer;
        tc.activation = cs::transcoder::Activation::ReLU;
        tc.nLayers = c.nLayers;
        tc.dModel = c.dModel;
        tc.nFeatures = 24;
        std::vector<cs::transcoder::LayerWeights> layers;
        for (int64_t l = 0; l < c.nLayers; ++l) {
            cs::transcoder::LayerWeights w;
            w.encoder = at::randn({ 24, c.dModel }) / std::sqrt(double(c.dModel));
            w.encoderBias = at::randn({ 24 }) * 0.1;
            w.decoder = at::randn({ 24, c.nLayers - l, c.dModel }) * 0.2;
            w.decoderBias = at::zeros({ c.dModel });
            layers.push_back(w);
        }
        const auto set = cs::transcoder::TranscoderSet::fromWeights(tc, layers, "cpu");
        const std::vector<int64_t> ids = { 1, 17, 42, 99, 5, 63 };
        const cs::neurons::Metric metric { 11, 23 };
        const cs::neurons::detail::Model shared = model;

        cs::neurons::AttributionOptions ig;
        ig.method = cs::neurons::Method::IntegratedGradients;
        ig.steps = 64;
        const auto a = cs::neurons::detail::featureAttribution(shared, set, ids, metric, ig);
        for (size_t l = 0; l < a.scores.size(); ++l) {
            const double sum = a.scores[l].sum().item<double>(), want = a.metric - a.baselineMetric[l];
            QVERIFY2(std::abs(sum - want) <= 0.01 * std::abs(want) + 1e-4,
                qPrintable(QString("layer %1: %2 vs %3").arg(l).arg(sum).arg(want)));
        }
        // RelP: the frozen replacement model with features recomputed is continuous in one
        // feature's activation; its derivative there times the activation is the score.
        const auto r = cs::neurons::detail::featureAttribution(shared, set, ids, metric, {});
        const at::Tensor s1 = r.scores[1];
        const auto best = s1.abs().argmax().item<int64_t>();
        const int64_t pos = best / 24, f = best % 24;
        const auto ctx = cs::attribution::buildContext(model, set, ids);
        const auto run = [&](double delta) {
            cs::attribution::RunOptions ro;
            ro.recompute = true;
            ro.edit = [&](int64_t layer, at::Tensor& acts) {
                if (layer == 1)
                    acts[pos][f] += delta;
            };
            const at::Tensor last = cs::attribution::runReplacement(ctx, ro).logits[int64_t(ids.size()) - 1];
            return (last[11] - last[23]).item<double>();
        };
        const double h = 1e-2, slope = (run(h) - run(-h)) / (2 * h);
        const double x = r.values[1][pos][f].item<double>();
        QVERIFY2(std::abs(x * slope - s1[pos][f].item<double>()) <= 1e-2 * std::abs(s1[pos][f].item<double>()) + 1e-4,
            qPrintable(QString("%1 vs %2").arg(x * slope).arg(s1[pos][f].item<double>())));

        // Everything kept is the model; nothing kept is m(empty).
        const std::vector<std::vector<int64_t>> prompts = { ids, { 1, 18, 40, 98, 6, 60 } };
        const auto means = cs::neurons::detail::featureMeans(shared, set, prompts, true);
        std::vector<at::Tensor> all, none;
        for (const at::Tensor& m : means) {
            all.push_back(at::ones(m.sizes(), at::kBool));
            none.push_back(at::zeros(m.sizes(), at::kBool));
        }
        QVERIFY(std::abs(cs::neurons::detail::featureAblatedMetric(shared, set, ids, metric, means, all) - a.metric)
            < 1e-4 * std::max(1.0, std::abs(a.metric)));
        QVERIFY(std::abs(cs::neurons::detail::featureAblatedMetric(shared, set, ids, metric, means, none) - a.metric)
            > 1e-3);
    }

    void badRequests()
    {
        const auto model = tiny("llama");
        cs::neurons::AttributionOptions o;
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::neurons::attribute(*model, {}, { 3, -1 }, o));
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::neurons::attribute(*model, { 1, 2 }, { 100000, -1 }, o));
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::neurons::attribute(*model, { 1, 100000 }, { 3, -1 }, o));
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::neurons::attribute(*model, std::vector<int64_t>(65, 1), { 3, -1 }, o));
        o.method = cs::neurons::Method::IntegratedGradients;
        o.baselineIds = { 1, 2, 3 };
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::neurons::attribute(*model, { 1, 2 }, { 3, -1 }, o));
        o.baselineIds.clear();
        o.steps = 0;
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::neurons::attribute(*model, { 1, 2 }, { 3, -1 }, o));
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::neurons::nodeKindFromName("features"));
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::neurons::methodFromName("lrp"));
        QCOMPARE(cs::neurons::nodeKindFromName("mlp_out"), cs::neurons::NodeKind::MlpOut);
        QCOMPARE(cs::neurons::methodFromName("ig"), cs::neurons::Method::IntegratedGradients);
        // A task "file" that is a FIFO is refused, not waited on.
        const std::string fifo = m_dir.filePath("task.fifo").toStdString();
        QCOMPARE(::mkfifo(fifo.c_str(), 0600), 0);
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::neurons::readTask(fifo));
        // A model whose logits are NaN: refused before any attribution.
        auto weights = model->weights();
        weights["final_norm.weight"] = at::full_like(weights["final_norm.weight"], NAN);
        const auto broken = cs::model::Model::fromWeights(model->config(), weights, nullptr);
        try {
            cs::neurons::attribute(*broken, { 1, 2, 3 }, { 3, -1 });
            QFAIL("NaN logits were attributed");
        } catch (const cs::Error& e) {
            QVERIFY2(QString(e.what()).contains("not finite"), e.what());
        }
        cs::neurons::TraceOptions t;
        t.batchSize = 0;
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::neurons::trace(*model, { 1, 2 }, { 3, -1 }, t));
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::neurons::trace(*model, {}, { 3, -1 }));
    }
};

QTEST_GUILESS_MAIN(TestNeurons)
#include "tst_neurons.moc"
