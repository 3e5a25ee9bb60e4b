// Building a feature store: on a small corpus the stored statistics and examples equal a
// brute-force computation over every token; an interrupted build resumed equals one
// uninterrupted run; labels survive a rebuild.
#include "hf_fixtures.h"

#include "cs/error.h"
#include "cs/features.h"
#include "cs/transcoder_train.h"

#include <ATen/ATen.h>
#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>

using namespace cs;

namespace {

std::shared_ptr<const transcoder::TranscoderSet> randomClt(const model::ModelConfig& mc, int64_t nFeatures)
{
    at::manual_seed(11);
    transcoder::TranscoderConfig c;
    c.architecture = transcoder::Architecture::CrossLayer;
    c.activation = transcoder::Activation::ReLU;
    c.nLayers = mc.nLayers;
    c.dModel = mc.dModel;
    c.nFeatures = nFeatures;
    c.scan = "test/clt";
    std::vector<transcoder::LayerWeights> layers;
    for (int64_t l = 0; l < mc.nLayers; ++l) {
        transcoder::LayerWeights w;
        w.encoder = at::randn({ nFeatures, mc.dModel }) / std::sqrt(double(mc.dModel));
        w.encoderBias = at::randn({ nFeatures }) * 0.3 - 0.6; // most tokens leave a feature off
        w.decoder = at::randn({ nFeatures, mc.nLayers - l, mc.dModel }) * 0.1;
        w.decoderBias = at::zeros({ mc.dModel });
        layers.push_back(w);
    }
    return transcoder::TranscoderSet::fromWeights(c, layers, "cpu");
}

std::string writeCorpus(const QTemporaryDir& dir, int lines)
{
    return test::writeWordCorpus(dir.filePath("corpus.txt").toStdString(), lines);
}

struct Fixture {
    QTemporaryDir dir;
    std::shared_ptr<const model::Model> model;
    std::shared_ptr<const transcoder::TranscoderSet> tc;
    std::string corpus;
    Fixture(int lines = 60)
    {
        test::TinySpec spec;
        spec.nLayers = 2;
        model = model::Model::load(test::writeTinyModel(dir.filePath("m"), spec).toStdString(), { "cpu", true });
        tc = randomClt(model->config(), 12);
        corpus = writeCorpus(dir, lines);
    }
    std::string db(const char* name) const { return dir.filePath(name).toStdString(); }
};

// numpy's default quantile.
double npQuantile(std::vector<double> v, double q)
{
    std::sort(v.begin(), v.end());
    const double at = q * double(v.size() - 1);
    const auto lo = static_cast<size_t>(std::floor(at));
    const size_t hi = std::min(lo + 1, v.size() - 1);
    return v[lo] + (at - double(lo)) * (v[hi] - v[lo]);
}

bool sameExample(const features::Example& a, const features::Example& b)
{
    return a.context == b.context && a.tokens == b.tokens && a.activations == b.activations && a.position == b.position
        && a.activation == b.activation;
}

bool sameRecord(const features::FeatureRecord& a, const features::FeatureRecord& b)
{
    auto sameList = [](const std::vector<features::Example>& x, const std::vector<features::Example>& y) {
        return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin(), sameExample);
    };
    if (a.quantiles.size() != b.quantiles.size())
        return false;
    for (size_t i = 0; i < a.quantiles.size(); ++i)
        if (a.quantiles[i].name != b.quantiles[i].name || !sameList(a.quantiles[i].examples, b.quantiles[i].examples))
            return false;
    return a.tokens == b.tokens && a.activeTokens == b.activeTokens && a.actMax == b.actMax && a.actMin == b.actMin
        && a.actSum == b.actSum && a.quantileValues == b.quantileValues && a.histogramCounts == b.histogramCounts
        && a.histogramEdges == b.histogramEdges && sameList(a.top, b.top);
}

} // namespace

class TestFeatureBuild : public QObject {
    Q_OBJECT

private Q_SLOTS:
    // Every statistic and example against a computation over all tokens at once.
    void matchesBruteForce()
    {
        Fixture fx;
        features::BuildOptions o;
        o.contextLength = 16;
        o.batchContexts = 3;
        o.topK = 4;
        o.contextSample = 100000; // samples hold everything: exact
        o.valueSample = 100000;
        o.quantileBands = 3;
        o.perBand = 2;
        o.maxTokens = 0;
        const auto result = features::build(fx.model, fx.tc, fx.corpus, fx.db("a.db"), o);
        auto store = features::FeatureStore::open(fx.db("a.db"));

        // Brute force: every row at once, activations of every feature at every token.
        transcoder::TokenRows rows(fx.corpus,
            std::shared_ptr<const model::Tokenizer>(std::shared_ptr<const model::Tokenizer>(), &fx.model->tokenizer()),
            o.contextLength);
        at::Tensor ids = rows.next(1 << 20); // [contexts, T]
        QCOMPARE(ids.size(0), result.contexts);
        const int64_t C = ids.size(0), T = ids.size(1);
        QCOMPARE(result.tokens, C * (T - 1));
        std::vector<at::Tensor> inputs(2);
        model::ForwardOptions fo;
        fo.hook = [&](int64_t layer, model::Hook hook, at::Tensor& v) {
            if (hook == model::Hook::MlpIn)
                inputs[static_cast<size_t>(layer)] = v;
        };
        fx.model->forward(ids, fo);
        int checked = 0;
        for (int64_t l = 0; l < 2; ++l) {
            at::Tensor acts = fx.tc->encode(l, inputs[static_cast<size_t>(l)]).to(at::kDouble); // [C, T, F]
            acts.select(1, 0).zero_();
            for (int64_t f = 0; f < 12; ++f) {
                const auto card = store->card(l, f);
                at::Tensor a = acts.select(2, f); // [C, T]
                at::Tensor pos = a.masked_select(a > 0);
                QCOMPARE(card.tokens, C * (T - 1));
                QCOMPARE(card.activeTokens, pos.numel());
                if (pos.numel() == 0) {
                    QCOMPARE(card.actMax, 0.f);
                    QVERIFY(card.top.empty());
                    continue;
                }
                ++checked;
                QVERIFY(std::abs(card.actMax - pos.max().item<double>()) <= 1e-5 * card.actMax);
                QVERIFY(std::abs(card.actMin - pos.min().item<double>()) <= 1e-5 * card.actMax);
                QVERIFY(std::abs(card.actSum - pos.sum().item<double>()) <= 1e-4 * card.actSum);
                std::vector<double> values(pos.data_ptr<double>(), pos.data_ptr<double>() + pos.numel());
                for (size_t i = 0; i < card.quantileLevels.size(); ++i)
                    QVERIFY(std::abs(card.quantileValues[i] - npQuantile(values, card.quantileLevels[i]))
                        <= 1e-4 * card.actMax);
                int64_t histogramTotal = 0;
                for (auto c : card.histogramCounts)
                    histogramTotal += c;
                QCOMPARE(histogramTotal, pos.numel());
                // Top contexts: by peak, descending, ties to the earlier context.
                at::Tensor peak = std::get<0>(a.max(1)); // [C]
                std::vector<int64_t> order(static_cast<size_t>(C));
                std::iota(order.begin(), order.end(), 0);
                std::stable_sort(order.begin(), order.end(),
                    [&](int64_t x, int64_t y) { return peak[x].item<double>() > peak[y].item<double>(); });
                int64_t fired = (peak > 0).sum().item<int64_t>();
                QCOMPARE(static_cast<int64_t>(card.top.size()), std::min<int64_t>(o.topK, fired));
                for (size_t k = 0; k < card.top.size(); ++k) {
                    const auto& e = card.top[k];
                    // The k-th largest peak; the context may differ from the brute force's only
                    // between equal peaks (batches round the last bit differently).
                    const double tol = 1e-5 * card.actMax;
                    QVERIFY(std::abs(e.activation - peak[order[k]].item<double>()) <= tol);
                    const int64_t c = e.context;
                    QVERIFY(c == order[k] || std::abs(peak[c].item<double>() - peak[order[k]].item<double>()) <= tol);
                    QCOMPARE(static_cast<int64_t>(e.tokens.size()), T);
                    for (int64_t t = 0; t < T; ++t) {
                        QCOMPARE(e.tokens[static_cast<size_t>(t)], ids[c][t].item<int64_t>());
                        // Per-token activations are stored as float16.
                        const double want = a[c][t].item<double>();
                        QVERIFY(std::abs(e.activations[static_cast<size_t>(t)] - want) <= 1e-3 * std::abs(want) + 1e-6);
                    }
                    QCOMPARE(e.position, a[c].argmax().item<int64_t>());
                }
                // Quantile bands: all fired contexts sorted by peak, cut into equal bands.
                int64_t inBands = 0;
                for (const auto& band : card.quantiles)
                    inBands += static_cast<int64_t>(band.examples.size());
                QVERIFY(inBands > 0 && inBands <= o.quantileBands * o.perBand);
                const int64_t strongest = card.quantiles.front().examples.front().context;
                QVERIFY(std::abs(peak[strongest].item<double>() - peak[order[0]].item<double>()) <= 1e-5 * card.actMax);
            }
        }
        QVERIFY(checked >= 6);
        // Output tokens: the top logit of feature 0 at layer 0 is the largest of its decoder
        // through the unembedding.
        const auto card = store->card(0, 0);
        at::Tensor dir = fx.tc->decoder(0)[0].sum(0) * fx.model->weight("final_norm.weight");
        at::Tensor logits = at::mv(fx.model->weight("unembed.weight"), dir);
        QCOMPARE(card.topLogits.front().id, logits.argmax().item<int64_t>());
        QCOMPARE(card.bottomLogits.front().id, logits.argmin().item<int64_t>());
    }

    // A build stopped part-way and resumed equals one uninterrupted build, with small samples
    // so the hash sampling is exercised.
    void resumeEqualsUninterrupted()
    {
        Fixture fx(120);
        features::BuildOptions o;
        o.contextLength = 12;
        o.batchContexts = 4;
        o.topK = 3;
        o.contextSample = 5;
        o.valueSample = 7;
        o.checkpointEvery = 8;
        o.maxTokens = 0;
        features::build(fx.model, fx.tc, fx.corpus, fx.db("whole.db"), o);
        int calls = 0;
        QVERIFY_THROWS_EXCEPTION(Cancelled,
            features::build(fx.model, fx.tc, fx.corpus, fx.db("parts.db"), o,
                [&](const features::BuildProgress&) { return ++calls < 5; }));
        {
            auto partial = features::FeatureStore::open(fx.db("parts.db"));
            QVERIFY(partial->buildState().has_value());
            QVERIFY(!partial->info().complete);
        }
        const auto resumed = features::build(fx.model, fx.tc, fx.corpus, fx.db("parts.db"), o);
        QCOMPARE(resumed.resumedFromTokens, int64_t(5 * 4 * 11));
        auto a = features::FeatureStore::open(fx.db("whole.db"));
        auto b = features::FeatureStore::open(fx.db("parts.db"));
        QVERIFY(b->info().complete);
        QVERIFY(!b->buildState().has_value());
        for (int64_t l = 0; l < 2; ++l)
            for (int64_t f = 0; f < 12; ++f)
                QVERIFY2(sameRecord(a->card(l, f), b->card(l, f)), qPrintable(QString("%1:%2").arg(l).arg(f)));
        // Other options cannot resume someone's state.
        QVERIFY_THROWS_EXCEPTION(Cancelled,
            features::build(fx.model, fx.tc, fx.corpus, fx.db("other.db"), o,
                [&](const features::BuildProgress&) { return false; }));
        o.topK = 4;
        QVERIFY_THROWS_EXCEPTION(Error, features::build(fx.model, fx.tc, fx.corpus, fx.db("other.db"), o));
    }

    void labelsSurviveRebuild()
    {
        Fixture fx;
        features::BuildOptions o;
        o.contextLength = 16;
        o.maxTokens = 200;
        features::build(fx.model, fx.tc, fx.corpus, fx.db("l.db"), o);
        {
            auto store = features::FeatureStore::open(fx.db("l.db"), true);
            store->setLabel(1, 3, "cats and mats", "seen on the cat prompt");
        }
        o.maxTokens = 400;
        features::build(fx.model, fx.tc, fx.corpus, fx.db("l.db"), o);
        auto store = features::FeatureStore::open(fx.db("l.db"));
        QCOMPARE(store->info().tokens, store->card(0, 0).tokens);
        QVERIFY(store->card(0, 0).tokens >= 400);
        QCOMPARE(store->card(1, 3).label, std::string("cats and mats"));
        QCOMPARE(store->card(1, 3).notes, std::string("seen on the cat prompt"));
    }

    void badInput()
    {
        Fixture fx;
        features::BuildOptions o;
        o.topK = 0;
        QVERIFY_THROWS_EXCEPTION(Error, features::build(fx.model, fx.tc, fx.corpus, fx.db("b.db"), o));
        o = {};
        QVERIFY_THROWS_EXCEPTION(Error, features::build(fx.model, fx.tc, fx.db("no-such.txt"), fx.db("b2.db"), o));
        const std::string empty = fx.db("empty.txt");
        std::ofstream(empty).close();
        QVERIFY_THROWS_EXCEPTION(Error, features::build(fx.model, fx.tc, empty, fx.db("b3.db"), o));
        // A transcoder set of another shape.
        model::ModelConfig other = fx.model->config();
        other.dModel = 16;
        QVERIFY_THROWS_EXCEPTION(Error, features::build(fx.model, randomClt(other, 4), fx.corpus, fx.db("b4.db"), o));
    }
};

QTEST_GUILESS_MAIN(TestFeatureBuild)
#include "tst_feature_build.moc"
