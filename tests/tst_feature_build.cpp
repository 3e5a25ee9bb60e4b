// Building a feature store: on a small corpus the stored statistics and examples equal a
// brute-force computation over every token, and so do the co-activation statistics of every
// pair, the partners kept by ERA and TWERA and the partner rankings read from them; an
// interrupted build resumed equals one uninterrupted run; labels survive a rebuild.
#include "hf_fixtures.h"

#include "cs/error.h"
#include "cs/features.h"
#include "cs/transcoder_train.h"
#include "cs/weights.h"

#include <ATen/ATen.h>
#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <numeric>
#include <random>
#include <set>
#include <tuple>

using namespace cs;

namespace {

std::string writeCorpus(const QTemporaryDir& dir, int lines)
{
    return test::writeWordCorpus(dir.filePath("corpus.txt").toStdString(), lines);
}

struct Fixture {
    QTemporaryDir dir;
    std::shared_ptr<const model::Model> model;
    std::shared_ptr<const transcoder::TranscoderSet> tc;
    std::string corpus;
    Fixture(int lines = 60, int64_t layers = 2)
    {
        test::TinySpec spec;
        spec.nLayers = layers;
        model = model::Model::load(test::writeTinyModel(dir.filePath("m"), spec).toStdString(), { "cpu", true });
        tc = test::randomClt(model->config(), 12);
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

    // Co-activation statistics of every pair (3 layers: pairs across one and two layers) against
    // sums over every token position; then the partners a store keeps and the rankings by V,
    // ERA and TWERA against the same brute force.
    void coactivationsMatchBruteForce()
    {
        Fixture fx(60, 3);
        const int64_t L = 3, F = 12;
        features::BuildOptions o;
        o.contextLength = 16;
        o.batchContexts = 3;
        o.maxTokens = 0;
        o.coactivationPartners = 0; // every pair
        const auto result = features::build(fx.model, fx.tc, fx.corpus, fx.db("all.db"), o);
        o.coactivationPartners = 2;
        features::build(fx.model, fx.tc, fx.corpus, fx.db("kept.db"), o);
        auto all = features::FeatureStore::open(fx.db("all.db"));
        auto kept = features::FeatureStore::open(fx.db("kept.db"));
        QVERIFY(all->hasCoactivations() && kept->hasCoactivations());

        transcoder::TokenRows rows(fx.corpus,
            std::shared_ptr<const model::Tokenizer>(std::shared_ptr<const model::Tokenizer>(), &fx.model->tokenizer()),
            o.contextLength);
        at::Tensor ids = rows.next(1 << 20);
        std::vector<at::Tensor> inputs(static_cast<size_t>(L));
        model::ForwardOptions fo;
        fo.hook = [&](int64_t layer, model::Hook hook, at::Tensor& v) {
            if (hook == model::Hook::MlpIn)
                inputs[static_cast<size_t>(layer)] = v;
        };
        fx.model->forward(ids, fo);
        std::vector<at::Tensor> acts; // per layer [positions, F] float64, the BOS position zero
        for (int64_t l = 0; l < L; ++l) {
            at::Tensor a = fx.tc->encode(l, inputs[static_cast<size_t>(l)]).to(at::kDouble);
            a.select(1, 0).zero_();
            acts.push_back(a.reshape({ -1, F }));
        }
        const double tokens = static_cast<double>(result.tokens);
        int64_t pairs = 0;
        for (int64_t lt = 1; lt < L; ++lt)
            for (int64_t ft = 0; ft < F; ++ft) {
                const at::Tensor targetActs = acts[static_cast<size_t>(lt)].select(1, ft);
                const at::Tensor on = (targetActs > 0).to(at::kDouble);
                const auto list = all->coactivations(lt, ft, true);
                QCOMPARE(list.partners, static_cast<int64_t>(list.kept.size()));
                size_t next = 0;
                for (int64_t ls = 0; ls < lt; ++ls) {
                    const at::Tensor as = acts[static_cast<size_t>(ls)];
                    const at::Tensor count = ((as > 0).to(at::kDouble) * on.unsqueeze(1)).sum(0); // [F]
                    const at::Tensor sourceSum = (as * on.unsqueeze(1)).sum(0);
                    const at::Tensor productSum = (as * targetActs.unsqueeze(1)).sum(0);
                    for (int64_t fs = 0; fs < F; ++fs) {
                        const auto n = static_cast<int64_t>(count[fs].item<double>());
                        if (n == 0)
                            continue;
                        ++pairs;
                        QVERIFY2(next < list.kept.size(), "a pair that fired together is missing");
                        const auto& c = list.kept[next++];
                        QCOMPARE(c.layer, ls);
                        QCOMPARE(c.feature, fs);
                        QCOMPARE(c.count, n);
                        QVERIFY(std::abs(c.sourceSum - sourceSum[fs].item<double>()) <= 1e-5 * c.sourceSum);
                        QVERIFY(std::abs(c.productSum - productSum[fs].item<double>()) <= 1e-5 * c.productSum);
                        // The same pair, read from the source's side.
                        bool found = false;
                        for (const auto& d : all->coactivations(ls, fs, false).kept)
                            if (d.layer == lt && d.feature == ft) {
                                found
                                    = d.count == c.count && d.sourceSum == c.sourceSum && d.productSum == c.productSum;
                                break;
                            }
                        QVERIFY(found);
                    }
                }
                QCOMPARE(next, list.kept.size()); // and no pair that never fired together
            }
        QCOMPARE(result.coactivationPairs, pairs);
        QVERIFY(pairs > 50);

        // ERA and TWERA of every pair, by brute force, to check what was kept and the rankings.
        int trimmed = 0; // lists where the store kept fewer than all
        for (int64_t l = 0; l < L; ++l)
            for (int64_t f = 0; f < F; ++f)
                for (const bool up : { true, false }) {
                    const auto every = all->coactivations(l, f, up);
                    const auto some = kept->coactivations(l, f, up);
                    QCOMPARE(some.partners, every.partners);
                    std::vector<std::tuple<int64_t, int64_t, double, double>> scored; // layer, feature, ERA, TWERA
                    for (const auto& c : every.kept) {
                        const int64_t ls = up ? c.layer : l, fs = up ? c.feature : f;
                        const int64_t lt = up ? l : c.layer, ft = up ? f : c.feature;
                        const double v = cs::weights::virtualWeights(*fx.model, *fx.tc, ls, lt)[fs][ft].item<double>();
                        const double targetSum = acts[static_cast<size_t>(lt)].select(1, ft).sum().item<double>();
                        scored.emplace_back(c.layer, c.feature, c.sourceSum / tokens * v, c.productSum / targetSum * v);
                    }
                    // Kept: the union of the top 2 by |ERA| and the top 2 by |TWERA|.
                    std::set<std::pair<int64_t, int64_t>> want;
                    for (const int which : { 0, 1 }) {
                        auto order = scored;
                        std::stable_sort(order.begin(), order.end(), [&](const auto& x, const auto& y) {
                            return std::abs(which ? std::get<3>(x) : std::get<2>(x))
                                > std::abs(which ? std::get<3>(y) : std::get<2>(y));
                        });
                        for (size_t i = 0; i < std::min<size_t>(2, order.size()); ++i)
                            want.insert({ std::get<0>(order[i]), std::get<1>(order[i]) });
                    }
                    std::set<std::pair<int64_t, int64_t>> got;
                    for (const auto& c : some.kept)
                        got.insert({ c.layer, c.feature });
                    QVERIFY2(got == want, qPrintable(QString("%1:%2 %3").arg(l).arg(f).arg(up ? "up" : "down")));
                    trimmed += some.kept.size() < every.kept.size() ? 1 : 0;
                    // The ranking by TWERA read from the store that kept every pair.
                    const auto direction = up ? cs::weights::Direction::Up : cs::weights::Direction::Down;
                    const auto ranked = cs::weights::partners(
                        *fx.model, *fx.tc, all.get(), l, f, direction, cs::weights::Kind::Twera, 3);
                    QCOMPARE(ranked.coactivating, every.partners);
                    std::stable_sort(scored.begin(), scored.end(), [](const auto& x, const auto& y) {
                        return std::abs(std::get<3>(x)) > std::abs(std::get<3>(y));
                    });
                    QCOMPARE(ranked.partners.size(), std::min<size_t>(3, scored.size()));
                    for (size_t i = 0; i < ranked.partners.size(); ++i) {
                        const auto& p = ranked.partners[i];
                        QVERIFY(p.statistics);
                        QVERIFY(std::abs(p.twera - std::get<3>(scored[i])) <= 1e-4 * std::abs(std::get<3>(scored[i])));
                        QVERIFY(std::abs(p.era - (std::get<2>(scored[i])))
                            <= 1e-4 * std::abs(std::get<2>(scored[i])) + 1e-12);
                    }
                }
        QVERIFY(trimmed >= 5);
        // Without a store, only the weights alone.
        QVERIFY_THROWS_EXCEPTION(Error,
            cs::weights::partners(
                *fx.model, *fx.tc, nullptr, 1, 0, cs::weights::Direction::Up, cs::weights::Kind::Era, 3));
        o.coactivations = false;
        features::build(fx.model, fx.tc, fx.corpus, fx.db("none.db"), o);
        auto none = features::FeatureStore::open(fx.db("none.db"));
        QVERIFY(!none->hasCoactivations());
        QVERIFY_THROWS_EXCEPTION(Error, none->coactivations(1, 0, true));
        QVERIFY_THROWS_EXCEPTION(Error,
            cs::weights::partners(
                *fx.model, *fx.tc, none.get(), 1, 0, cs::weights::Direction::Up, cs::weights::Kind::Twera, 3));
        const auto byV = cs::weights::partners(
            *fx.model, *fx.tc, none.get(), 1, 0, cs::weights::Direction::Up, cs::weights::Kind::Virtual, 3);
        QCOMPARE(byV.partners.size(), size_t(3));
        QVERIFY(!byV.partners[0].statistics);
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
            for (int64_t f = 0; f < 12; ++f) {
                QVERIFY2(sameRecord(a->card(l, f), b->card(l, f)), qPrintable(QString("%1:%2").arg(l).arg(f)));
                // The co-activation sums too, to the last bit: they add up in the same order.
                for (const bool up : { true, false }) {
                    const auto x = a->coactivations(l, f, up), y = b->coactivations(l, f, up);
                    QCOMPARE(x.partners, y.partners);
                    QCOMPARE(x.kept.size(), y.kept.size());
                    for (size_t i = 0; i < x.kept.size(); ++i)
                        QVERIFY(x.kept[i].layer == y.kept[i].layer && x.kept[i].feature == y.kept[i].feature
                            && x.kept[i].count == y.kept[i].count && x.kept[i].sourceSum == y.kept[i].sourceSum
                            && x.kept[i].productSum == y.kept[i].productSum);
                }
            }
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

    // A store of the model's own MLP neurons (basis "neurons", no transcoder): its counts, peaks
    // and top contexts against the neurons' values over every token, and its token lists
    // against the down projection through the unembedding and the MLP run by hand on each
    // token's normalized embedding.
    void neuronStoreMatchesBruteForce()
    {
        Fixture fx;
        features::BuildOptions o;
        o.contextLength = 16;
        o.batchContexts = 3;
        o.topK = 4;
        o.maxTokens = 0;
        o.basis = "neurons";
        QVERIFY_THROWS_EXCEPTION(Error, features::build(fx.model, nullptr, fx.corpus, fx.db("n.db"), o));
        o.coactivations = false;
        features::build(fx.model, nullptr, fx.corpus, fx.db("n.db"), o);
        auto store = features::FeatureStore::open(fx.db("n.db"));
        const auto& mc = fx.model->config();
        QCOMPARE(store->info().scan, std::string("neurons"));
        QCOMPARE(store->info().nFeatures, mc.dMlp);
        QCOMPARE(store->info().nLayers, mc.nLayers);
        QCOMPARE(features::findUnitStore(fx.dir.path().toStdString(), "neurons"), std::string());

        transcoder::TokenRows rows(fx.corpus,
            std::shared_ptr<const model::Tokenizer>(std::shared_ptr<const model::Tokenizer>(), &fx.model->tokenizer()),
            o.contextLength);
        const at::Tensor ids = rows.next(1 << 20);
        std::vector<at::Tensor> hidden(static_cast<size_t>(mc.nLayers));
        model::ForwardOptions fo;
        fo.hook = [&](int64_t layer, model::Hook hook, at::Tensor& v) {
            if (hook == model::Hook::MlpHidden)
                hidden[static_cast<size_t>(layer)] = v.to(at::kDouble).clone();
        };
        fx.model->forward(ids, fo);
        for (int64_t l = 0; l < mc.nLayers; ++l) {
            at::Tensor acts = hidden[static_cast<size_t>(l)];
            acts.select(1, 0).zero_(); // the BOS position
            const std::string p = "layers." + std::to_string(l) + ".";
            const at::Tensor logits = at::matmul(fx.model->weight(p + "mlp.down.weight").t().to(at::kDouble)
                    * fx.model->weight("final_norm.weight").to(at::kDouble),
                fx.model->weight("unembed.weight").t().to(at::kDouble)); // [d_mlp, vocab]
            const at::Tensor x = fx.model->weight("embed.weight").to(at::kDouble);
            const at::Tensor n = x / at::sqrt(x.pow(2).mean(-1, true) + mc.normEps)
                * fx.model->weight(p + "mlp_norm.weight").to(at::kDouble);
            const at::Tensor inputs
                = (at::silu(at::matmul(n, fx.model->weight(p + "mlp.gate.weight").t().to(at::kDouble)))
                    * at::matmul(n, fx.model->weight(p + "mlp.up.weight").t().to(at::kDouble)))
                      .t(); // [d_mlp, vocab]
            for (int64_t u = 0; u < mc.dMlp; u += 7) {
                const auto card = store->card(l, u);
                const at::Tensor a = acts.select(2, u);
                const at::Tensor pos = a.masked_select(a > 0);
                QCOMPARE(card.activeTokens, pos.numel());
                QVERIFY(pos.numel() > 0); // SiLU neurons fire somewhere in 60 lines
                QVERIFY(std::abs(card.actMax - pos.max().item<double>()) <= 1e-5 * card.actMax);
                QVERIFY(std::abs(card.actSum - pos.sum().item<double>()) <= 1e-4 * card.actSum);
                QVERIFY(std::abs(card.top.front().activation - pos.max().item<double>()) <= 1e-5 * card.actMax);
                QCOMPARE(card.topLogits.front().id, logits[u].argmax().item<int64_t>());
                QCOMPARE(card.bottomLogits.front().id, logits[u].argmin().item<int64_t>());
                QCOMPARE(card.topInputs.front().id, inputs[u].argmax().item<int64_t>());
                QVERIFY(std::abs(card.topInputs.front().value - inputs[u].max().item<double>())
                    <= 1e-4 * std::abs(inputs[u].max().item<double>()) + 1e-6);
            }
        }
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
        QVERIFY_THROWS_EXCEPTION(
            Error, features::build(fx.model, test::randomClt(other, 4), fx.corpus, fx.db("b4.db"), o));
    }
};

QTEST_GUILESS_MAIN(TestFeatureBuild)
#include "tst_feature_build.moc"
