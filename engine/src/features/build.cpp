// Building a feature store (features.h): the corpus streamed through model and transcoders in
// batches of contexts; per feature, running statistics, a top-k of contexts and two hash
// samples (contexts where it fired, and its positive activation values); at the end, the
// quantiles, histogram, quantile bands and the decoder / encoder token lists.
//
// Samples keep the items with the smallest hash of (feature, item): which items they hold does
// not depend on batching, on the order items arrive or on a resume, and a sample holds every
// item while there are no more than its size. Ties in the top-k go to the earlier context.
#include "cs/features.h"

#include "cs/distributed.h"
#include "cs/error.h"
#include "cs/transcoder_train.h"
#include "cs/weights.h"
#include "io/splitmix.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>
#include <queue>

namespace cs::features {

namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kStateMagic = 0x43534653; // "CSFS"
constexpr uint32_t kStateVersion = 2; // 2: the co-activation pairs

using io::splitmix64;

uint64_t itemHash(int64_t feature, int64_t item, uint64_t salt)
{
    return splitmix64(splitmix64(static_cast<uint64_t>(feature) ^ salt) ^ static_cast<uint64_t>(item));
}

// A bounded set keeping the `capacity` entries with the smallest key (a max-heap on key). Its
// entries are made once, up front, and refilled in place: a long build allocates nothing per
// item, so its small buffers never interleave with the batches' large tensors on the heap (which
// fragmented the heap to gigabytes before).
template<typename T> class BottomK {
public:
    struct Entry {
        uint64_t key;
        T value;
        bool operator<(const Entry& o) const { return key < o.key; }
    };
    void reserve(size_t capacity, const T& prototype) { m_heap.assign(capacity, Entry { 0, prototype }); }
    // The key an entry must beat to get in.
    uint64_t bar() const { return m_size < m_heap.size() ? std::numeric_limits<uint64_t>::max() : m_heap.front().key; }
    // The entry to fill for `key` (which must beat bar()); call commit() once it is filled.
    T& open(uint64_t key)
    {
        if (m_size == m_heap.size())
            std::pop_heap(m_heap.begin(), m_heap.end()); // the largest key goes to the back, to be refilled
        else
            ++m_size;
        m_heap[m_size - 1].key = key;
        return m_heap[m_size - 1].value;
    }
    void commit() { std::push_heap(m_heap.begin(), m_heap.begin() + static_cast<std::ptrdiff_t>(m_size)); }
    size_t size() const { return m_size; }
    const Entry& operator[](size_t i) const { return m_heap[i]; }

private:
    std::vector<Entry> m_heap;
    size_t m_size = 0;
};

// What a pair of features (source at an earlier layer) accumulates where both fire.
struct PairStats {
    int64_t count = 0;
    double sourceSum = 0;
    double productSum = 0;
};

// The co-activating pairs by key (source * total features + target): open addressing with
// linear probing in two flat arrays, doubled at half load. Not std::unordered_map: its heap node
// per pair, allocated between the batches' large tensors, fragmented the heap (tinyworld's 2M
// tokens, 2.5M pairs: peak RSS 5.2 GB against 1.0 GB without the pass); two arrays are a few
// large blocks that go back whole.
class PairTable {
public:
    PairStats& operator[](uint64_t key) // inserts zeros for a new key
    {
        if (2 * (m_size + 1) > m_keys.size())
            grow();
        size_t i = slot(key);
        if (m_keys[i] == kEmpty) {
            m_keys[i] = key;
            m_values[i] = {};
            ++m_size;
        }
        return m_values[i];
    }
    const PairStats& at(uint64_t key) const
    {
        const size_t i = m_keys.empty() ? 0 : slot(key);
        if (m_keys.empty() || m_keys[i] != key)
            throw Error("internal error: a co-activation pair is missing");
        return m_values[i];
    }
    size_t size() const { return m_size; }
    // Every key, in ascending order (a state's bytes and the stored lists do not depend on the
    // table's layout).
    std::vector<uint64_t> sortedKeys() const
    {
        std::vector<uint64_t> keys;
        keys.reserve(m_size);
        for (uint64_t k : m_keys)
            if (k != kEmpty)
                keys.push_back(k);
        std::sort(keys.begin(), keys.end());
        return keys;
    }
    void clear()
    {
        m_keys.clear();
        m_values.clear();
        m_size = 0;
    }

private:
    static constexpr uint64_t kEmpty = ~uint64_t(0);
    size_t slot(uint64_t key) const
    {
        const size_t mask = m_keys.size() - 1;
        size_t i = static_cast<size_t>(splitmix64(key)) & mask;
        while (m_keys[i] != kEmpty && m_keys[i] != key)
            i = (i + 1) & mask;
        return i;
    }
    void grow()
    {
        std::vector<uint64_t> keys(std::max<size_t>(1 << 16, 2 * m_keys.size()), kEmpty);
        std::vector<PairStats> values(keys.size());
        keys.swap(m_keys);
        values.swap(m_values);
        for (size_t i = 0; i < keys.size(); ++i)
            if (keys[i] != kEmpty) {
                const size_t j = slot(keys[i]);
                m_keys[j] = keys[i];
                m_values[j] = values[i];
            }
    }
    std::vector<uint64_t> m_keys; // kEmpty where free; a power of two long
    std::vector<PairStats> m_values;
    size_t m_size = 0;
};

// Per feature, everything the build accumulates.
struct Accumulator {
    int64_t active = 0;
    float max = 0;
    float min = std::numeric_limits<float>::infinity();
    double sum = 0;
    std::vector<Example> top; // [topK] made up front; the first topCount sorted by ranksBefore
    size_t topCount = 0;
    BottomK<Example> contexts; // where it fired
    BottomK<float> values; // positive activations
};

bool ranksBefore(const Example& a, const Example& b)
{
    return a.activation != b.activation ? a.activation > b.activation : a.context < b.context;
}

// A little binary writer/reader for the resume state.
class Writer {
public:
    template<typename T> void put(const T& v)
    {
        const auto* p = reinterpret_cast<const uint8_t*>(&v);
        bytes.insert(bytes.end(), p, p + sizeof(T));
    }
    template<typename T> void putVector(const std::vector<T>& v)
    {
        put<uint64_t>(v.size());
        const auto* p = reinterpret_cast<const uint8_t*>(v.data());
        bytes.insert(bytes.end(), p, p + v.size() * sizeof(T));
    }
    void putString(const std::string& s) { putVector(std::vector<char>(s.begin(), s.end())); }
    std::vector<uint8_t> bytes;
};

class Reader {
public:
    // Reads bytes it does not own: they must outlive it.
    Reader(const uint8_t* data, size_t size)
        : m_data(data)
        , m_size(size)
    {
    }
    template<typename T> T get()
    {
        need(sizeof(T));
        T v;
        std::memcpy(&v, m_data + m_at, sizeof(T));
        m_at += sizeof(T);
        return v;
    }
    template<typename T> std::vector<T> getVector()
    {
        const auto n = get<uint64_t>();
        if (n > (m_size - m_at) / sizeof(T))
            throw Error("the saved build state is damaged (a length runs past its end): delete the store to rebuild");
        std::vector<T> v(static_cast<size_t>(n));
        std::memcpy(v.data(), m_data + m_at, static_cast<size_t>(n) * sizeof(T));
        m_at += static_cast<size_t>(n) * sizeof(T);
        return v;
    }
    std::string getString()
    {
        auto v = getVector<char>();
        return std::string(v.begin(), v.end());
    }
    bool done() const { return m_at == m_size; }

private:
    void need(size_t n) const
    {
        if (m_size - m_at < n)
            throw Error("the saved build state is damaged (it ends early): delete the store to rebuild");
    }
    // A view: a state received from another rank is read where it arrived, not copied.
    const uint8_t* m_data;
    size_t m_size;
    size_t m_at = 0;
};

void putExample(Writer& w, const Example& e)
{
    w.put<int64_t>(e.context);
    w.putVector(std::vector<int32_t>(e.tokens.begin(), e.tokens.end()));
    w.putVector(e.activations);
    w.put<int64_t>(e.position);
    w.put<float>(e.activation);
}

Example getExample(Reader& r)
{
    Example e;
    e.context = r.get<int64_t>();
    const auto tokens = r.getVector<int32_t>();
    e.tokens.assign(tokens.begin(), tokens.end());
    e.activations = r.getVector<float>();
    e.position = r.get<int64_t>();
    e.activation = r.get<float>();
    return e;
}

nlohmann::json optionsJson(const BuildOptions& o, const std::string& corpus)
{
    nlohmann::json j = { { "corpus", std::filesystem::path(corpus).filename().string() }, { "max_tokens", o.maxTokens },
        { "context_length", o.contextLength }, { "batch_contexts", o.batchContexts }, { "top_k", o.topK },
        { "quantile_bands", o.quantileBands }, { "per_band", o.perBand }, { "context_sample", o.contextSample },
        { "value_sample", o.valueSample }, { "window", o.window }, { "histogram_bins", o.histogramBins },
        { "logit_count", o.logitCount }, { "coactivations", o.coactivations },
        { "coactivation_partners", o.coactivationPartners } };
    if (!o.basis.empty()) // absent for transcoder stores, so their resumes see the same options
        j["basis"] = o.basis;
    return j;
}

void checkOptions(const BuildOptions& o)
{
    if (o.maxTokens < 0 || o.contextLength < 2 || o.batchContexts < 1 || o.topK < 1 || o.quantileBands < 0
        || o.perBand < 0 || o.contextSample < 1 || o.valueSample < 1 || o.window < 0 || o.histogramBins < 1
        || o.logitCount < 0 || o.checkpointEvery < 1 || o.coactivationPartners < 0)
        throw Error("feature store build: every count must be positive (context length at least 2)");
}

// numpy's default quantile: linear interpolation between order statistics of sorted values.
float quantile(const std::vector<float>& sorted, double q)
{
    if (sorted.empty())
        return 0;
    const double at = q * static_cast<double>(sorted.size() - 1);
    const auto lo = static_cast<size_t>(std::floor(at));
    const size_t hi = std::min(lo + 1, sorted.size() - 1);
    return static_cast<float>(sorted[lo] + (at - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]));
}

// The firing token of a context (the first largest activation; the BOS position is 0).
int64_t firingToken(const float* acts, int64_t n)
{
    int64_t best = 0;
    for (int64_t t = 1; t < n; ++t)
        if (acts[t] > acts[best])
            best = t;
    return best;
}

// Fills `e` (reusing its buffers) with the window of a context around its firing token:
// `window` tokens ending a few after it (the whole context when window is 0).
void fillWindow(Example& e, int64_t context, const int64_t* ids, const float* acts, int64_t n, int64_t window)
{
    const int64_t best = firingToken(acts, n);
    int64_t begin = 0, end = n;
    if (window > 0 && window < n) {
        const int64_t after = std::min<int64_t>(4, window / 4);
        begin = std::clamp<int64_t>(best + after + 1 - window, 0, n - window);
        end = begin + window;
    }
    e.context = context;
    e.tokens.assign(ids + begin, ids + end);
    e.activations.assign(acts + begin, acts + end);
    e.position = best - begin;
    e.activation = acts[best];
}

void fillFrom(Example& e, const Example& from)
{
    e.context = from.context;
    e.tokens.assign(from.tokens.begin(), from.tokens.end());
    e.activations.assign(from.activations.begin(), from.activations.end());
    e.position = from.position;
    e.activation = from.activation;
}

// Where a context with this peak goes in a feature's top list (ranksBefore), or topK when it
// does not get in; makes room there (the last entry, or the spare, moves to it to be refilled).
size_t openTop(Accumulator& a, int64_t context, float peak, size_t topK)
{
    Example probe;
    probe.context = context;
    probe.activation = peak;
    const auto first = a.top.begin(), used = a.top.begin() + static_cast<std::ptrdiff_t>(a.topCount);
    const auto at = static_cast<size_t>(std::upper_bound(first, used, probe, ranksBefore) - first);
    if (at >= topK)
        return topK;
    const size_t last = std::min(a.topCount, topK - 1); // the spare, or the entry that drops out
    std::rotate(first + static_cast<std::ptrdiff_t>(at), first + static_cast<std::ptrdiff_t>(last),
        first + static_cast<std::ptrdiff_t>(last) + 1);
    a.topCount = std::min(a.topCount + 1, topK);
    return at;
}

class Builder {
public:
    // tc null: the model's MLP neurons are the features (BuildOptions::basis "neurons").
    Builder(const model::Model& model, const transcoder::TranscoderSet* tc, const BuildOptions& o)
        : m_model(model)
        , m_tc(tc)
        , m_o(o)
        , m_L(tc ? tc->nLayers() : model.config().nLayers)
        , m_F(tc ? tc->nFeatures() : model.config().dMlp)
        , m_acc(static_cast<size_t>(m_L * m_F))
    {
        // Every buffer the build keeps, made now (see BottomK).
        const int64_t width = o.window > 0 ? std::min(o.window, o.contextLength) : o.contextLength;
        Example prototype;
        prototype.tokens.resize(static_cast<size_t>(width)); // sized, not reserved: copies keep the size
        prototype.activations.resize(static_cast<size_t>(width));
        for (auto& a : m_acc) {
            a.top.assign(static_cast<size_t>(o.topK), prototype);
            a.contexts.reserve(static_cast<size_t>(o.contextSample), prototype);
            a.values.reserve(static_cast<size_t>(o.valueSample), 0.f);
        }
    }

    // One batch of contexts [n, T] whose first context has index `first`.
    void add(const at::Tensor& ids, int64_t first)
    {
        const int64_t n = ids.size(0), T = ids.size(1), L = m_L;
        std::vector<at::Tensor> inputs(static_cast<size_t>(L));
        // What the features are computed from: the transcoders' input, or the neurons themselves.
        const model::Hook inputHook = m_tc ? m_tc->config().inputHook : model::Hook::MlpHidden;
        model::ForwardOptions fo;
        fo.hook = [&](int64_t layer, model::Hook hook, at::Tensor& value) {
            if (hook == inputHook)
                inputs[static_cast<size_t>(layer)] = value;
        };
        m_model.forward(ids, fo);
        at::Tensor idsCpu = ids.to(at::kCPU).contiguous();
        std::vector<at::Tensor> layers;
        for (int64_t l = 0; l < L; ++l) {
            const at::Tensor& input = inputs[static_cast<size_t>(l)];
            at::Tensor acts = (m_tc ? m_tc->encode(l, input) : input).to(at::kCPU, at::kFloat); // [n, T, F]
            acts.select(1, 0).zero_(); // the BOS position: the same in every context, never trained on
            acts = acts.contiguous();
            addLayer(l, acts, idsCpu, first);
            if (m_o.coactivations)
                layers.push_back(acts);
        }
        if (m_o.coactivations)
            addCoactivations(layers);
        m_tokens += n * (T - 1);
        m_contexts = first + n;
    }

    std::vector<uint8_t> saveState(int64_t contexts) const
    {
        Writer w;
        w.put(kStateMagic);
        w.put(kStateVersion);
        w.put<int64_t>(contexts);
        w.put<int64_t>(m_tokens);
        for (const auto& a : m_acc) {
            w.put(a.active);
            w.put(a.max);
            w.put(a.min);
            w.put(a.sum);
            w.put<uint64_t>(a.topCount);
            for (size_t i = 0; i < a.topCount; ++i)
                putExample(w, a.top[i]);
            w.put<uint64_t>(a.contexts.size());
            for (size_t i = 0; i < a.contexts.size(); ++i) {
                w.put(a.contexts[i].key);
                putExample(w, a.contexts[i].value);
            }
            std::vector<uint64_t> keys;
            std::vector<float> values;
            for (size_t i = 0; i < a.values.size(); ++i) {
                keys.push_back(a.values[i].key);
                values.push_back(a.values[i].value);
            }
            w.putVector(keys);
            w.putVector(values);
        }
        // The pairs in key order.
        const std::vector<uint64_t> keys = m_pairs.sortedKeys();
        std::vector<int64_t> counts;
        std::vector<double> sums;
        counts.reserve(keys.size());
        sums.reserve(2 * keys.size());
        for (uint64_t key : keys) {
            const PairStats& p = m_pairs.at(key);
            counts.push_back(p.count);
            sums.push_back(p.sourceSum);
            sums.push_back(p.productSum);
        }
        w.putVector(keys);
        w.putVector(counts);
        w.putVector(sums);
        return std::move(w.bytes);
    }

    // Returns the contexts the state covers.
    int64_t loadState(const std::vector<uint8_t>& bytes)
    {
        if (m_tokens != 0 || m_pairs.size() != 0)
            throw Error("internal error: a build state loaded into a builder that holds one");
        // Folding a state into an empty builder gives that state: every statistic and list below
        // is its own merge's identity when empty (0, infinity, no items).
        const int64_t contexts = foldState(bytes.data(), bytes.size());
        m_contexts = contexts;
        return contexts;
    }

    // Adds a state saved by another builder over other contexts of the same corpus (a rank's part
    // of a distributed build): counts and sums add, max and min combine, the top lists merge by
    // ranksBefore, the samples keep the smallest keys of both (the items a single build's samples
    // would hold, since keys depend only on (feature, item)), pairs add. Returns the contexts the
    // folded state says it covers.
    int64_t foldState(const uint8_t* bytes, size_t size)
    {
        Reader r(bytes, size);
        if (r.get<uint32_t>() != kStateMagic || r.get<uint32_t>() != kStateVersion)
            throw Error("the saved build state is not one this version reads: delete the store to rebuild");
        const auto contexts = r.get<int64_t>();
        m_tokens += r.get<int64_t>();
        const auto topK = static_cast<size_t>(m_o.topK);
        for (auto& a : m_acc) {
            a.active += r.get<int64_t>();
            a.max = std::max(a.max, r.get<float>());
            a.min = std::min(a.min, r.get<float>());
            a.sum += r.get<double>();
            // A state of other sizes is refused: the options are checked before, so this is damage.
            auto within = [&](uint64_t count, int64_t capacity) {
                if (count > static_cast<uint64_t>(capacity))
                    throw Error("the saved build state is damaged (a list is too long): delete the store to rebuild");
                return count;
            };
            for (auto k = within(r.get<uint64_t>(), m_o.topK); k > 0; --k) {
                const Example e = getExample(r);
                const size_t at = openTop(a, e.context, e.activation, topK);
                if (at < topK)
                    fillFrom(a.top[at], e);
            }
            for (auto k = within(r.get<uint64_t>(), m_o.contextSample); k > 0; --k) {
                const auto key = r.get<uint64_t>();
                const Example e = getExample(r);
                if (key < a.contexts.bar()) {
                    fillFrom(a.contexts.open(key), e);
                    a.contexts.commit();
                }
            }
            const auto keys = r.getVector<uint64_t>();
            const auto values = r.getVector<float>();
            if (keys.size() != values.size() || keys.size() > static_cast<size_t>(m_o.valueSample))
                throw Error("the saved build state is damaged: delete the store to rebuild");
            for (size_t i = 0; i < keys.size(); ++i)
                if (keys[i] < a.values.bar()) {
                    a.values.open(keys[i]) = values[i];
                    a.values.commit();
                }
        }
        const auto keys = r.getVector<uint64_t>();
        const auto counts = r.getVector<int64_t>();
        const auto sums = r.getVector<double>();
        const auto total = static_cast<uint64_t>(m_acc.size());
        if (counts.size() != keys.size() || sums.size() != 2 * keys.size())
            throw Error(
                "the saved build state is damaged (its co-activation lists differ): delete the store to rebuild");
        for (size_t i = 0; i < keys.size(); ++i) {
            if (keys[i] / total >= total)
                throw Error("the saved build state is damaged (a co-activation pair is out of range): delete the store "
                            "to rebuild");
            PairStats& p = m_pairs[keys[i]];
            p.count += counts[i];
            p.sourceSum += sums[2 * i];
            p.productSum += sums[2 * i + 1];
        }
        if (!r.done())
            throw Error("the saved build state is damaged (bytes left over): delete the store to rebuild");
        return contexts;
    }

    int64_t tokens() const { return m_tokens; }
    int64_t pairCount() const { return static_cast<int64_t>(m_pairs.size()); }
    std::vector<FeatureRecord> records(const std::vector<std::string>& vocab) const;
    // Per feature and side, its co-activation partners: all, or the strongest by ERA and TWERA.
    std::vector<CoActivationList> coactivationLists() const;

private:
    void addLayer(int64_t layer, const at::Tensor& acts, const at::Tensor& ids, int64_t first);
    void addCoactivations(const std::vector<at::Tensor>& layers);

    const model::Model& m_model;
    const transcoder::TranscoderSet* m_tc; // null for the neuron basis
    BuildOptions m_o;
    int64_t m_L = 0, m_F = 0; // layers, and features (or neurons) a layer
    std::vector<Accumulator> m_acc;
    // Pairs by source * (total features) + target, global ids (layer * n_features + feature).
    PairTable m_pairs;
    int64_t m_tokens = 0;
    int64_t m_contexts = 0;
};

constexpr uint64_t kContextSalt = 0x636f6e74657874ull; // "context"
constexpr uint64_t kValueSalt = 0x76616c7565ull; // "value"

void Builder::addLayer(int64_t layer, const at::Tensor& acts, const at::Tensor& ids, int64_t first)
{
    const int64_t n = acts.size(0), T = acts.size(1), F = acts.size(2);
    const float* a = acts.data_ptr<float>();
    const int64_t* id = ids.data_ptr<int64_t>();
    // Per context and feature: the largest activation (to decide whether it is a candidate).
    at::Tensor ctxMax = std::get<0>(acts.max(1)); // [n, F]
    const float* cm = ctxMax.data_ptr<float>();
    std::vector<float> column(static_cast<size_t>(T));
    for (int64_t c = 0; c < n; ++c) {
        const int64_t context = first + c;
        for (int64_t f = 0; f < F; ++f) {
            const float peak = cm[c * F + f];
            if (!(peak > 0))
                continue;
            Accumulator& acc = m_acc[static_cast<size_t>(layer * F + f)];
            const int64_t global = layer * F + f;
            // Token statistics and the value sample.
            for (int64_t t = 0; t < T; ++t) {
                const float v = a[(c * T + t) * F + f];
                column[static_cast<size_t>(t)] = v;
                if (v > 0) {
                    ++acc.active;
                    acc.sum += v;
                    acc.max = std::max(acc.max, v);
                    acc.min = std::min(acc.min, v);
                    const uint64_t key = itemHash(global, context * T + t, kValueSalt);
                    if (key < acc.values.bar()) {
                        acc.values.open(key) = v;
                        acc.values.commit();
                    }
                }
            }
            // The top-k, then the context sample.
            const size_t at = openTop(acc, context, peak, static_cast<size_t>(m_o.topK));
            if (at < static_cast<size_t>(m_o.topK))
                fillWindow(acc.top[at], context, id + c * T, column.data(), T, m_o.window);
            const uint64_t key = itemHash(global, context, kContextSalt);
            if (key < acc.contexts.bar()) {
                fillWindow(acc.contexts.open(key), context, id + c * T, column.data(), T, m_o.window);
                acc.contexts.commit();
            }
        }
    }
}

// Per position, every pair of features at different layers that both fire there. The active
// features of each layer come from one vectorized scan (nonzero, row-major: by context, then
// position, then feature); a position's lists across layers are then walked together. Each
// position has tens of such pairs in a sparse set (an L0 of a few per layer), so a hash table
// of the pairs that ever co-occur is both exact and small next to the dense square.
void Builder::addCoactivations(const std::vector<at::Tensor>& layers)
{
    const auto L = static_cast<int64_t>(layers.size());
    if (L < 2)
        return;
    const int64_t F = m_F, T = layers[0].size(1);
    const auto total = static_cast<uint64_t>(L * F);
    struct Active {
        at::Tensor index; // [k, 3] (context, position, feature)
        at::Tensor value; // [k]
        int64_t at = 0; // the next entry to read
    };
    std::vector<Active> active(static_cast<size_t>(L));
    for (int64_t l = 0; l < L; ++l) {
        const at::Tensor& acts = layers[static_cast<size_t>(l)];
        Active& a = active[static_cast<size_t>(l)];
        a.index = at::nonzero(acts > 0).contiguous();
        a.value = acts.view({ -1 })
                      .index({ a.index.select(1, 0) * T * F + a.index.select(1, 1) * F + a.index.select(1, 2) })
                      .contiguous();
    }
    const int64_t positions = layers[0].size(0) * T;
    std::vector<std::vector<std::pair<uint64_t, float>>> here(static_cast<size_t>(L));
    for (int64_t p = 0; p < positions; ++p) {
        int64_t nonEmpty = 0;
        for (int64_t l = 0; l < L; ++l) {
            Active& a = active[static_cast<size_t>(l)];
            auto& list = here[static_cast<size_t>(l)];
            list.clear();
            const int64_t k = a.index.size(0);
            const int64_t* idx = a.index.data_ptr<int64_t>();
            const float* val = a.value.data_ptr<float>();
            while (a.at < k && idx[a.at * 3] * T + idx[a.at * 3 + 1] == p) {
                list.emplace_back(static_cast<uint64_t>(l * F + idx[a.at * 3 + 2]), val[a.at]);
                ++a.at;
            }
            nonEmpty += list.empty() ? 0 : 1;
        }
        if (nonEmpty < 2)
            continue;
        for (int64_t ls = 0; ls < L; ++ls)
            for (const auto& [s, as] : here[static_cast<size_t>(ls)])
                for (int64_t lt = ls + 1; lt < L; ++lt)
                    for (const auto& [t, av] : here[static_cast<size_t>(lt)]) {
                        PairStats& stats = m_pairs[s * total + t];
                        ++stats.count;
                        stats.sourceSum += as;
                        stats.productSum += static_cast<double>(as) * av;
                    }
    }
}

std::vector<CoActivationList> Builder::coactivationLists() const
{
    const int64_t L = m_L, F = m_F;
    const auto total = static_cast<uint64_t>(L * F);
    const std::vector<uint64_t> keys = m_pairs.sortedKeys();
    if (!m_tc) // no pairs are gathered for neurons (checkOptions)
        return {};
    // V for every pair of layers, to rank the pairs by ERA and TWERA (cs/weights.h).
    std::vector<at::Tensor> virtualWeights(static_cast<size_t>(L * L));
    for (int64_t ls = 0; ls < L; ++ls)
        for (int64_t lt = ls + 1; lt < L; ++lt)
            virtualWeights[static_cast<size_t>(ls * L + lt)]
                = weights::virtualWeights(m_model, *m_tc, ls, lt).to(at::kCPU, at::kFloat).contiguous();
    const double tokens = static_cast<double>(std::max<int64_t>(m_tokens, 1));
    std::vector<double> era(keys.size()), twera(keys.size());
    std::vector<std::vector<uint32_t>> sources(static_cast<size_t>(total)), targets(static_cast<size_t>(total));
    for (size_t i = 0; i < keys.size(); ++i) {
        const uint64_t s = keys[i] / total, t = keys[i] % total;
        const PairStats& p = m_pairs.at(keys[i]);
        const int64_t ls = static_cast<int64_t>(s) / F, lt = static_cast<int64_t>(t) / F;
        const double v = virtualWeights[static_cast<size_t>(ls * L + lt)]
                             .data_ptr<float>()[(static_cast<int64_t>(s) % F) * F + static_cast<int64_t>(t) % F];
        const double targetSum = m_acc[t].sum;
        era[i] = p.sourceSum / tokens * v;
        twera[i] = targetSum > 0 ? p.productSum / targetSum * v : 0.0;
        sources[t].push_back(static_cast<uint32_t>(i));
        targets[s].push_back(static_cast<uint32_t>(i));
    }
    const auto keepK = static_cast<size_t>(m_o.coactivationPartners);
    // The indices of the strongest by |score| (all when keepK is 0 or there are no more).
    const auto strongest = [&](std::vector<uint32_t> list, const std::vector<double>& score) {
        if (keepK > 0 && list.size() > keepK) {
            std::partial_sort(list.begin(), list.begin() + static_cast<std::ptrdiff_t>(keepK), list.end(),
                [&](uint32_t x, uint32_t y) {
                    const double a = std::abs(score[x]), b = std::abs(score[y]);
                    return a != b ? a > b : x < y;
                });
            list.resize(keepK);
        }
        return list;
    };
    std::vector<CoActivationList> out;
    for (const bool upstream : { true, false }) {
        const auto& byOwner = upstream ? sources : targets;
        for (uint64_t owner = 0; owner < total; ++owner) {
            const auto& all = byOwner[owner];
            if (all.empty())
                continue;
            std::vector<uint32_t> kept = strongest(all, era);
            for (uint32_t i : strongest(all, twera))
                kept.push_back(i);
            std::sort(kept.begin(), kept.end()); // by key: by partner within one owner's list
            kept.erase(std::unique(kept.begin(), kept.end()), kept.end());
            CoActivationList list;
            list.layer = static_cast<int64_t>(owner) / F;
            list.feature = static_cast<int64_t>(owner) % F;
            list.upstream = upstream;
            list.partners = static_cast<int64_t>(all.size());
            for (uint32_t i : kept) {
                const uint64_t partner = upstream ? keys[i] / total : keys[i] % total;
                const PairStats& p = m_pairs.at(keys[i]);
                list.kept.push_back({ static_cast<int64_t>(partner) / F, static_cast<int64_t>(partner) % F, p.count,
                    p.sourceSum, p.productSum });
            }
            out.push_back(std::move(list));
        }
    }
    return out;
}

std::vector<FeatureRecord> Builder::records(const std::vector<std::string>& vocab) const
{
    const int64_t L = m_L, F = m_F;
    const auto& mc = m_model.config();
    const int64_t k = std::min<int64_t>(m_o.logitCount, mc.vocabSize);
    auto tokenList = [&](const at::Tensor& values, const at::Tensor& ids) {
        std::vector<TokenValue> out;
        for (int64_t i = 0; i < ids.numel(); ++i) {
            const int64_t id = ids[i].item<int64_t>();
            out.push_back({ id, id < static_cast<int64_t>(vocab.size()) ? vocab[static_cast<size_t>(id)] : "",
                values[i].item<float>() });
        }
        return out;
    };
    const std::vector<double> levels = { 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999 };
    std::vector<FeatureRecord> out;
    for (int64_t l = 0; l < L; ++l) {
        // The tokens its decoders promote and suppress, and the tokens that excite it alone
        // (cs/weights.h), [F, vocab] each.
        const at::Tensor logits
            = m_tc ? weights::featureToLogits(m_model, *m_tc, l) : weights::neuronToLogits(m_model, l);
        auto topL = at::topk(logits, k, 1, true), bottomL = at::topk(logits, k, 1, false);
        const at::Tensor inputs
            = m_tc ? weights::embeddingToFeatures(m_model, *m_tc, l) : weights::embeddingToNeurons(m_model, l);
        auto topI = at::topk(inputs, k, 1, true);
        for (int64_t f = 0; f < F; ++f) {
            const Accumulator& a = m_acc[static_cast<size_t>(l * F + f)];
            FeatureRecord r;
            r.layer = l;
            r.feature = f;
            r.tokens = m_tokens;
            r.activeTokens = a.active;
            r.actMax = a.max;
            r.actMin = a.active > 0 ? a.min : 0.f;
            r.actSum = a.sum;
            std::vector<float> values;
            for (size_t i = 0; i < a.values.size(); ++i)
                values.push_back(a.values[i].value);
            std::sort(values.begin(), values.end());
            r.quantileLevels = levels;
            for (double q : levels)
                r.quantileValues.push_back(quantile(values, q));
            const int64_t bins = m_o.histogramBins;
            r.histogramEdges.resize(static_cast<size_t>(bins + 1));
            for (int64_t i = 0; i <= bins; ++i)
                r.histogramEdges[static_cast<size_t>(i)] = a.max * static_cast<float>(i) / static_cast<float>(bins);
            r.histogramCounts.assign(static_cast<size_t>(bins), 0);
            for (float v : values) {
                int64_t bin = a.max > 0 ? static_cast<int64_t>(v / a.max * static_cast<float>(bins)) : 0;
                ++r.histogramCounts[static_cast<size_t>(std::clamp<int64_t>(bin, 0, bins - 1))];
            }
            r.top.assign(a.top.begin(), a.top.begin() + static_cast<std::ptrdiff_t>(a.topCount));
            // Quantile bands: the sampled contexts sorted by their peak, cut into equal bands,
            // strongest first; from each, perBand contexts evenly spaced through it.
            std::vector<Example> sample;
            for (size_t i = 0; i < a.contexts.size(); ++i)
                sample.push_back(a.contexts[i].value);
            std::sort(sample.begin(), sample.end(), ranksBefore);
            const auto total = static_cast<int64_t>(sample.size());
            for (int64_t b = 0; b < m_o.quantileBands && total > 0; ++b) {
                const int64_t lo = total * b / m_o.quantileBands, hi = total * (b + 1) / m_o.quantileBands;
                if (hi <= lo)
                    continue;
                QuantileExamples band;
                band.name = "Subsample Interval " + std::to_string(b);
                const int64_t take = std::min(m_o.perBand, hi - lo);
                for (int64_t j = 0; j < take; ++j)
                    band.examples.push_back(sample[static_cast<size_t>(lo + (hi - lo) * j / take)]);
                r.quantiles.push_back(std::move(band));
            }
            r.topLogits = tokenList(std::get<0>(topL)[f], std::get<1>(topL)[f]);
            r.bottomLogits = tokenList(std::get<0>(bottomL)[f], std::get<1>(bottomL)[f]);
            r.topInputs = tokenList(std::get<0>(topI)[f], std::get<1>(topI)[f]);
            out.push_back(std::move(r));
        }
    }
    return out;
}

} // namespace

namespace {

namespace fs = std::filesystem;

// The options key of a store whose saved state is the merge of a distributed build's parts: the
// whole corpus folded in, waiting only for its records to be written (build() and merge()
// finish it without reading the corpus again). Its value is the number of parts.
constexpr const char* kMergedKey = "merged_parts";
// The options key of a part (partPath): which rank of how many, and the folders it loaded.
constexpr const char* kPartKey = "part";

nlohmann::json without(nlohmann::json j, const char* key)
{
    if (j.is_object())
        j.erase(key);
    return j;
}

// The options a store records (optionsJson), back as BuildOptions: a merge takes its parts'.
BuildOptions optionsFromJson(const nlohmann::json& j, const std::string& where)
{
    try {
        BuildOptions o;
        o.maxTokens = j.at("max_tokens").get<int64_t>();
        o.contextLength = j.at("context_length").get<int64_t>();
        o.batchContexts = j.at("batch_contexts").get<int64_t>();
        o.topK = j.at("top_k").get<int64_t>();
        o.quantileBands = j.at("quantile_bands").get<int64_t>();
        o.perBand = j.at("per_band").get<int64_t>();
        o.contextSample = j.at("context_sample").get<int64_t>();
        o.valueSample = j.at("value_sample").get<int64_t>();
        o.window = j.at("window").get<int64_t>();
        o.histogramBins = j.at("histogram_bins").get<int64_t>();
        o.logitCount = j.at("logit_count").get<int64_t>();
        o.coactivations = j.at("coactivations").get<bool>();
        o.coactivationPartners = j.at("coactivation_partners").get<int64_t>();
        o.basis = j.value("basis", std::string());
        return o;
    } catch (const nlohmann::json::exception&) {
        throw Error(where + " does not record the options it was built with in a form this version reads");
    }
}

// The checks every build makes of its inputs; returns the set whose features are built (null for
// the neuron basis, whose features are the model's own neurons).
const transcoder::TranscoderSet* checkInputs(
    const model::Model* model, const transcoder::TranscoderSet* tc, const BuildOptions& o)
{
    checkOptions(o);
    const bool neurons = o.basis == "neurons";
    if (!o.basis.empty() && !neurons)
        throw Error("feature store build: the basis must be transcoder features or neurons, not \"" + o.basis + "\"");
    if (!model || (!tc && !neurons))
        throw Error("feature store build: no model or no transcoder set");
    if (neurons && o.coactivations)
        throw Error("feature store build: co-activation statistics (for ERA and TWERA) are kept for transcoder "
                    "features only; build the neuron store without them");
    if (!model->hasTokenizer())
        throw Error("the model folder has no tokenizer.json; the feature store reads a text corpus");
    if (neurons)
        return nullptr;
    tc->checkFits(model->config());
    return tc;
}

// The store's identity (model, set, shape); buildOptions are the caller's.
StoreInfo storeInfo(const model::Model& model, const transcoder::TranscoderSet* tc, const BuildOptions& o)
{
    StoreInfo info;
    info.model = fs::path(model.folder()).filename().string();
    if (tc) {
        info.scan = tc->config().scan.empty() ? fs::path(tc->folder()).filename().string() : tc->config().scan;
        info.nLayers = tc->nLayers();
        info.nFeatures = tc->nFeatures();
    } else { // findUnitStore's: the basis is the scan
        info.scan = o.basis;
        info.nLayers = model.config().nLayers;
        info.nFeatures = model.config().dMlp;
    }
    info.contextLength = o.contextLength;
    return info;
}

// The end of every build: the vocabulary, the co-activation lists, then the records with the
// store marked complete, and the state dropped.
void finishStore(
    FeatureStore& store, const Builder& builder, const model::Model& model, StoreInfo info, const BuildOptions& o)
{
    std::vector<std::string> vocab;
    for (int64_t id = 0; id < model.config().vocabSize; ++id)
        vocab.push_back(model.tokenizer().tokenText(id));
    info.tokens = builder.tokens();
    info.complete = true;
    store.writeVocabulary(vocab);
    // The pairs before the records: a store whose records say complete has its pairs too.
    if (o.coactivations)
        store.writeCoactivations(builder.coactivationLists());
    store.writeRecords(builder.records(vocab), info);
    store.clearBuildState();
}

// Opens (or creates) the store a merge writes: create() refuses another model's or set's store,
// and this refuses one holding an interrupted build that is not this build's merge (a
// one-process build's state, or other options), which a merge would throw away. Sets `merged`
// when it holds this build's merge already (a merge stopped before its records were written).
std::unique_ptr<FeatureStore> openMergeTarget(const std::string& dbPath, const StoreInfo& info, bool& merged)
{
    auto store = FeatureStore::create(dbPath, info);
    merged = false;
    if (store->buildState()) {
        const nlohmann::json have = store->info().buildOptions;
        const bool isMerge = have.is_object() && have.contains(kMergedKey);
        if (!isMerge || without(have, kMergedKey) != info.buildOptions)
            throw Error(dbPath + " holds an interrupted build "
                + (isMerge ? std::string("merged from parts with other options")
                           : std::string("of one process (`features build` without --distributed resumes it)"))
                + "; not overwriting it (finish it, or delete it)");
        merged = true;
    }
    return store;
}

// Saves the merged state in the store before its records are written: from here on the store
// holds everything the parts held, so the parts may go, and a merge that stops while writing
// the records is finished by running it again (or by `features build` with the same options).
void saveMerged(FeatureStore& store, const Builder& builder, StoreInfo info, int64_t parts, const BuildOptions& o)
{
    info.tokens = builder.tokens();
    info.complete = false;
    info.buildOptions[kMergedKey] = parts;
    // Every part's contexts together: the contexts a one-process build's state would cover.
    store.saveBuildState(builder.saveState(builder.tokens() / (o.contextLength - 1)), info);
    store.clearRecords(); // no statistics of an older build stay (labels do)
}

void removeStoreFiles(const std::string& path)
{
    std::error_code ec;
    for (const char* suffix : { "", "-wal", "-shm" })
        fs::remove(path + suffix, ec);
}

BuildResult makeResult(const Builder& builder, const BuildOptions& o, Clock::time_point start,
    Clock::time_point runStart, int64_t resumedFrom, const std::string& dbPath, int64_t ranks)
{
    BuildResult result;
    result.tokens = builder.tokens();
    result.contexts = builder.tokens() / (o.contextLength - 1);
    result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const double runSeconds = std::chrono::duration<double>(Clock::now() - runStart).count();
    result.tokensPerSecond = runSeconds > 0 ? static_cast<double>(result.tokens - resumedFrom) / runSeconds : 0;
    result.resumedFromTokens = resumedFrom;
    result.coactivationPairs = builder.pairCount();
    result.ranks = ranks;
    std::error_code ec;
    result.bytes = static_cast<int64_t>(fs::file_size(dbPath, ec));
    return result;
}

// A value a rank states (and whether it failed) to all the others: a [ranks, 1 + values] table,
// each rank filling its row, summed. A step only one rank may fail (its part is someone else's
// file) thus stops every rank at once, instead of leaving the others in the next collective until
// the timeout. Throws this rank's error, or one naming the first rank that failed.
std::vector<std::vector<int64_t>> exchange(
    distributed::Group& g, const std::vector<int64_t>& values, const std::string& error, const std::string& what)
{
    const int64_t W = g.size(), width = static_cast<int64_t>(values.size()) + 1;
    at::Tensor table = at::zeros({ W, width }, at::kLong);
    int64_t* row = table.data_ptr<int64_t>() + g.rank() * width;
    row[0] = error.empty() ? 0 : 1;
    std::copy(values.begin(), values.end(), row + 1);
    std::vector<at::Tensor> tensors { table };
    g.allReduce(tensors);
    const at::Tensor all = tensors[0].contiguous();
    const int64_t* data = all.data_ptr<int64_t>();
    if (!error.empty())
        throw Error(error);
    std::vector<std::vector<int64_t>> out;
    for (int64_t r = 0; r < W; ++r) {
        if (data[r * width] != 0)
            throw Error("rank " + std::to_string(r) + " of " + std::to_string(W) + " could not " + what
                + " (its own error says why)");
        out.emplace_back(data + r * width + 1, data + (r + 1) * width);
    }
    return out;
}

// One rank of a distributed build (BuildOptions::group). The ranks go in lockstep rounds: in
// round i rank r builds batch i * ranks + r, then one all-reduce of three numbers (its tokens so
// far, whether it has batches left, whether it was asked to stop) tells every rank the job's
// progress and whether to go on, and a rank that died makes the others' all-reduce throw within
// the group's timeout. Checkpoints fall on the same rounds everywhere. A rank resumes from its
// part; ranks whose parts stopped at different rounds (one died between two checkpoints) start
// at the earliest, and those further on skip the rounds they have. At the end each part's state
// goes to rank 0, which folds them into one, saves it in dbPath (after which every rank deletes
// its part) and writes the records.
BuildResult buildDistributed(const model::Model& model, const transcoder::TranscoderSet* tc,
    const std::string& corpusPath, const std::string& dbPath, const BuildOptions& o, const StoreInfo& info,
    const std::function<bool(const BuildProgress&)>& progress)
{
    distributed::Group& g = *o.group;
    const int64_t W = g.size(), rank = g.rank(), B = o.batchContexts;
    const int64_t perRound = W * B; // contexts a round
    const auto start = Clock::now();
    // Ranks started with other options would build parts that do not add up. (The model's, the
    // set's and the corpus's contents are the caller's to compare: here they are names.)
    std::string text = "model " + info.model + "\nset " + info.scan + "\n";
    for (const auto& [key, value] : info.buildOptions.items())
        text += key + " " + value.dump() + "\n";
    text += "checkpoint_every " + std::to_string(o.checkpointEvery) + "\n";
    g.checkSame("feature store build options", text);

    const std::string part = partPath(dbPath, rank, W);
    StoreInfo partInfo = info;
    partInfo.buildOptions[kPartKey] = { { "rank", rank }, { "ranks", W },
        { "model_folder", fs::absolute(model.folder()).lexically_normal().string() },
        { "transcoder_folder", tc ? fs::absolute(tc->folder()).lexically_normal().string() : std::string() } };
    const auto samePart = [](nlohmann::json a, nlohmann::json b) {
        for (nlohmann::json* j : { &a, &b })
            if (j->is_object() && j->contains(kPartKey) && (*j)[kPartKey].is_object()) {
                (*j)[kPartKey].erase("model_folder"); // the same build may load them from elsewhere
                (*j)[kPartKey].erase("transcoder_folder");
            }
        return a == b;
    };
    Builder builder(model, tc, o);
    std::unique_ptr<FeatureStore> db, store;
    bool merged = false; // rank 0: dbPath holds this build's merge, short of its records
    bool finished = false; // the part holds all of this rank's batches
    int64_t reached = 0; // contexts through the last round the part holds (its state's count)
    std::string error;
    try {
        if (rank == 0 && o.mergeParts) // before any work: a store at dbPath that is someone else's is refused now
            db = openMergeTarget(dbPath, info, merged);
        store = FeatureStore::create(part, partInfo);
        if (auto state = store->buildState()) {
            if (!samePart(store->info().buildOptions, partInfo.buildOptions))
                throw Error(
                    part + " is a part of a build with other options: finish it as it was started, or delete it");
            reached = builder.loadState(*state);
            finished = store->info().complete;
        }
    } catch (const std::exception& e) {
        error = e.what();
    }
    constexpr int64_t kNever = std::numeric_limits<int64_t>::max() / 4; // the round of a finished part
    int64_t doneRounds = finished ? kNever : reached / perRound; // rounds whose batch the part holds
    std::vector<std::vector<int64_t>> table;
    try {
        table = exchange(g, { merged ? 1 : 0, builder.tokens(), doneRounds, finished ? 0 : 1 }, error,
            "start its share of the build");
    } catch (const Error&) {
        if (store && builder.tokens() == 0) { // a part this run made, holding nothing: not left behind
            store.reset();
            removeStoreFiles(part);
        }
        throw;
    }
    int64_t round = kNever, jobTokens = 0;
    bool anyLeft = false;
    for (const auto& row : table) {
        jobTokens += row[1];
        round = std::min(round, row[2]);
        anyLeft = anyLeft || row[3] != 0;
    }
    const int64_t resumedFrom = jobTokens;
    const auto runStart = Clock::now();

    if (table[0][0] != 0) { // dbPath holds every part already: they go, and rank 0 writes the records
        store.reset();
        removeStoreFiles(part);
        if (rank != 0) {
            BuildResult r;
            r.ranks = W;
            return r;
        }
        Builder all(model, tc, o);
        all.loadState(*db->buildState());
        finishStore(*db, all, model, info, o);
        return makeResult(all, o, start, runStart, all.tokens(), dbPath, W);
    }

    std::unique_ptr<transcoder::TokenRows> rows; // made when this rank first reads
    int64_t next = 0; // contexts read from the corpus (this rank's and the others')
    const int64_t perContext = o.contextLength - 1;
    const int64_t wanted = o.maxTokens > 0 ? (o.maxTokens + perContext - 1) / perContext : -1;
    bool done = finished; // no batch of this rank is left
    bool stopAsked = false;
    int64_t sinceCheckpoint = 0;
    const auto save = [&] { // a checkpoint: the rounds this rank has done
        if (finished)
            return; // its state is final
        partInfo.tokens = builder.tokens();
        store->saveBuildState(builder.saveState(doneRounds * perRound), partInfo);
    };
    while (anyLeft) {
        if (!done && round >= doneRounds) {
            const int64_t first = (round * W + rank) * B; // this rank's batch, in the whole corpus
            if (wanted >= 0 && first >= wanted) {
                done = true;
            } else {
                if (!rows)
                    rows = std::make_unique<transcoder::TokenRows>(corpusPath,
                        std::shared_ptr<const model::Tokenizer>(
                            std::shared_ptr<const model::Tokenizer>(), &model.tokenizer()),
                        o.contextLength);
                while (next < first) { // the other ranks' batches
                    const int64_t n = std::min(B, first - next), got = rows->next(n).size(0);
                    next += got;
                    if (got < n) {
                        done = true;
                        break;
                    }
                }
                if (!done) {
                    const int64_t n = wanted < 0 ? B : std::min(B, wanted - first);
                    at::Tensor ids = rows->next(n);
                    next += ids.size(0);
                    if (ids.size(0) > 0)
                        builder.add(ids.to(model.device()), first);
                    done = ids.size(0) < n;
                    doneRounds = round + 1;
                }
            }
        }
        std::vector<at::Tensor> sums { at::tensor({ builder.tokens(), int64_t(done ? 0 : 1), int64_t(stopAsked) }) };
        try {
            g.allReduce(sums);
        } catch (const Error&) {
            try { // what this rank did since its last checkpoint is kept
                save();
            } catch (const std::exception&) {
            }
            throw;
        }
        jobTokens = sums[0][0].item<int64_t>();
        anyLeft = sums[0][1].item<int64_t>() > 0;
        const bool stop = sums[0][2].item<int64_t>() > 0;
        ++round;
        sinceCheckpoint += perRound;
        if (stop) { // every rank stops after the same round
            save();
            throw Cancelled();
        }
        if (anyLeft && sinceCheckpoint >= o.checkpointEvery) {
            save();
            sinceCheckpoint = 0;
        }
        if (progress && anyLeft) {
            BuildProgress p;
            p.tokens = jobTokens;
            p.totalTokens = wanted > 0 ? wanted * perContext : 0;
            const double seconds = std::chrono::duration<double>(Clock::now() - runStart).count();
            p.tokensPerSecond = seconds > 0 ? static_cast<double>(jobTokens - resumedFrom) / seconds : 0;
            p.secondsLeft = p.totalTokens > 0 && p.tokensPerSecond > 0
                ? static_cast<double>(p.totalTokens - p.tokens) / p.tokensPerSecond
                : 0;
            stopAsked = !progress(p);
        }
    }
    if (jobTokens == 0)
        throw Error("the corpus " + corpusPath + " has no text to build from");
    // The part is finished: a run of the same command from here goes straight to the merge. Its
    // bytes are also what goes to rank 0 (rank 0 keeps its own in its builder).
    std::vector<uint8_t> mine;
    if (!finished || rank != 0)
        mine = builder.saveState(next);
    if (!finished) {
        partInfo.tokens = builder.tokens();
        partInfo.complete = true;
        store->saveBuildState(mine, partInfo);
        finished = true;
    }
    if (!o.mergeParts) {
        g.barrier(); // every part is saved when rank 0 reports
        BuildResult r;
        r.tokens = jobTokens;
        r.contexts = jobTokens / perContext;
        r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
        const double runSeconds = std::chrono::duration<double>(Clock::now() - runStart).count();
        r.tokensPerSecond = runSeconds > 0 ? static_cast<double>(jobTokens - resumedFrom) / runSeconds : 0;
        r.resumedFromTokens = resumedFrom;
        r.ranks = W;
        return r;
    }

    // Each part's state to rank 0, one rank at a time (a broadcast: the group has no
    // point-to-point send), folded into rank 0's as it arrives.
    const auto sizes = exchange(g, { static_cast<int64_t>(mine.size()) }, {}, "send its part");
    for (int64_t r = 1; r < W; ++r) {
        const int64_t n = sizes[static_cast<size_t>(r)][0];
        at::Tensor bytes = at::empty({ n }, at::kByte);
        if (rank == r)
            std::memcpy(bytes.data_ptr<uint8_t>(), mine.data(), mine.size());
        std::vector<at::Tensor> tensors { bytes };
        g.broadcast(tensors, r);
        if (rank == 0) {
            const at::Tensor got = tensors[0].contiguous();
            builder.foldState(got.data_ptr<uint8_t>(), static_cast<size_t>(n));
        }
    }
    if (rank == 0)
        saveMerged(*db, builder, info, W, o);
    g.barrier(); // the parts are in dbPath now
    store.reset();
    removeStoreFiles(part);
    if (rank != 0) {
        BuildResult r;
        r.tokens = jobTokens;
        r.contexts = jobTokens / perContext;
        r.resumedFromTokens = resumedFrom;
        r.ranks = W;
        return r;
    }
    finishStore(*db, builder, model, info, o);
    return makeResult(builder, o, start, runStart, resumedFrom, dbPath, W);
}

} // namespace

BuildResult build(std::shared_ptr<const model::Model> model, std::shared_ptr<const transcoder::TranscoderSet> tcIn,
    const std::string& corpusPath, const std::string& dbPath, const BuildOptions& o,
    const std::function<bool(const BuildProgress&)>& progress)
{
    const transcoder::TranscoderSet* tc = checkInputs(model.get(), tcIn.get(), o);
    at::NoGradGuard noGradients;
    const auto start = Clock::now();
    StoreInfo info = storeInfo(*model, tc, o);
    info.buildOptions = optionsJson(o, corpusPath);
    if (o.group)
        return buildDistributed(*model, tc, corpusPath, dbPath, o, info, progress);
    auto store = FeatureStore::create(dbPath, info);

    Builder builder(*model, tc, o);
    std::unique_ptr<transcoder::TokenRows> rows;
    bool merged = false; // the store holds a merge of a distributed build's parts: the whole corpus
    int64_t contexts = 0, resumedFrom = 0;
    if (auto state = store->buildState()) {
        const nlohmann::json have = store->info().buildOptions;
        merged = have.is_object() && have.contains(kMergedKey);
        if (without(have, kMergedKey) != info.buildOptions)
            throw Error("the store at " + dbPath
                + " holds a build started with other options: finish it with the same ones, or delete it");
        contexts = builder.loadState(*state);
        resumedFrom = builder.tokens();
    } else {
        store->clearRecords(); // a fresh build: no statistics of an older one stay (labels do)
    }
    if (!merged) {
        rows = std::make_unique<transcoder::TokenRows>(corpusPath,
            std::shared_ptr<const model::Tokenizer>(std::shared_ptr<const model::Tokenizer>(), &model->tokenizer()),
            o.contextLength);
        for (int64_t skipped = 0; skipped < contexts;) { // the contexts the state covers
            const int64_t got = rows->next(std::min<int64_t>(o.batchContexts, contexts - skipped)).size(0);
            if (got == 0)
                throw Error("the corpus is shorter than the saved build state says: is it the same file?");
            skipped += got;
        }
    }
    const int64_t perContext = o.contextLength - 1;
    const int64_t wanted = o.maxTokens > 0 ? (o.maxTokens + perContext - 1) / perContext : -1;
    int64_t sinceCheckpoint = 0;
    const auto runStart = Clock::now();
    while (!merged && (wanted < 0 || contexts < wanted)) {
        const int64_t n = wanted < 0 ? o.batchContexts : std::min(o.batchContexts, wanted - contexts);
        at::Tensor ids = rows->next(n);
        if (ids.size(0) == 0)
            break;
        builder.add(ids.to(model->device()), contexts);
        contexts += ids.size(0);
        sinceCheckpoint += ids.size(0);
        info.tokens = builder.tokens();
        if (sinceCheckpoint >= o.checkpointEvery) {
            store->saveBuildState(builder.saveState(contexts), info);
            sinceCheckpoint = 0;
        }
        if (progress) {
            BuildProgress p;
            p.tokens = builder.tokens();
            p.totalTokens = wanted > 0 ? wanted * perContext : 0;
            const double seconds = std::chrono::duration<double>(Clock::now() - runStart).count();
            p.tokensPerSecond = seconds > 0 ? static_cast<double>(builder.tokens() - resumedFrom) / seconds : 0;
            p.secondsLeft = p.totalTokens > 0 && p.tokensPerSecond > 0
                ? static_cast<double>(p.totalTokens - p.tokens) / p.tokensPerSecond
                : 0;
            if (!progress(p)) {
                store->saveBuildState(builder.saveState(contexts), info);
                throw Cancelled();
            }
        }
    }
    if (contexts == 0)
        throw Error("the corpus " + corpusPath + " has no text to build from");
    finishStore(*store, builder, *model, info, o);
    BuildResult result = makeResult(builder, o, start, runStart, resumedFrom, dbPath, 1);
    result.contexts = contexts;
    return result;
}

std::string partPath(const std::string& dbPath, int64_t rank, int64_t ranks)
{
    return dbPath + ".part-" + std::to_string(rank) + "-of-" + std::to_string(ranks);
}

PartInfo readPart(const std::string& path)
{
    const auto store = FeatureStore::open(path);
    PartInfo p;
    p.store = store->info();
    const nlohmann::json& o = p.store.buildOptions;
    if (!o.is_object() || !o.contains(kPartKey) || !o[kPartKey].is_object())
        throw Error(path + " is not a part of a distributed build (it is a feature store of its own)");
    try {
        const nlohmann::json& j = o[kPartKey];
        p.rank = j.at("rank").get<int64_t>();
        p.ranks = j.at("ranks").get<int64_t>();
        p.modelFolder = j.at("model_folder").get<std::string>();
        p.transcoderFolder = j.at("transcoder_folder").get<std::string>();
    } catch (const nlohmann::json::exception&) {
        throw Error(path + " is damaged: its record of which part it is cannot be read");
    }
    // (A job's size is bounded as torchrun's WORLD_SIZE is: a merge makes a slot per rank.)
    if (p.ranks < 1 || p.ranks > (int64_t(1) << 20) || p.rank < 0 || p.rank >= p.ranks)
        throw Error(
            path + " is damaged: it says it is rank " + std::to_string(p.rank) + " of " + std::to_string(p.ranks));
    p.finished = p.store.complete;
    p.tokens = p.store.tokens;
    p.store.buildOptions.erase(kPartKey);
    return p;
}

BuildResult merge(std::shared_ptr<const model::Model> model, std::shared_ptr<const transcoder::TranscoderSet> tcIn,
    const std::vector<std::string>& parts, const std::string& dbPath)
{
    if (parts.empty())
        throw Error("features merge needs the parts to merge");
    const auto start = Clock::now();
    std::vector<PartInfo> infos;
    for (const std::string& path : parts)
        infos.push_back(readPart(path));
    const PartInfo& first = infos.front();
    const int64_t W = first.ranks;
    std::vector<std::string> byRank(static_cast<size_t>(W));
    for (size_t i = 0; i < parts.size(); ++i) {
        const PartInfo& p = infos[i];
        std::string differs;
        if (p.ranks != W)
            differs = "a job of " + std::to_string(p.ranks) + " ranks, not " + std::to_string(W);
        else if (p.store.model != first.store.model || p.store.scan != first.store.scan
            || p.store.nLayers != first.store.nLayers || p.store.nFeatures != first.store.nFeatures)
            differs = "model \"" + p.store.model + "\" and transcoders \"" + p.store.scan + "\", not \""
                + first.store.model + "\" and \"" + first.store.scan + "\"";
        else if (p.store.buildOptions != first.store.buildOptions)
            differs = "options " + p.store.buildOptions.dump() + ", not " + first.store.buildOptions.dump();
        if (!differs.empty())
            throw Error(parts[i] + " is a part of another build than " + parts[0] + ": " + differs);
        std::string& slot = byRank[static_cast<size_t>(p.rank)];
        if (!slot.empty())
            throw Error(slot + " and " + parts[i] + " are both the part of rank " + std::to_string(p.rank));
        slot = parts[i];
    }
    for (int64_t r = 0; r < W; ++r)
        if (byRank[static_cast<size_t>(r)].empty())
            throw Error("the part of rank " + std::to_string(r) + " of " + std::to_string(W) + " is missing (a file "
                + fs::path(partPath("DB", r, W)).filename().string() + " beside the others)");
    for (size_t i = 0; i < parts.size(); ++i)
        if (!infos[i].finished)
            throw Error(parts[i] + " is unfinished (rank " + std::to_string(infos[i].rank) + " stopped at "
                + std::to_string(infos[i].tokens) + " tokens): run the job again with the same command to finish it");

    const BuildOptions o = optionsFromJson(first.store.buildOptions, parts[0]);
    const transcoder::TranscoderSet* tc = checkInputs(model.get(), tcIn.get(), o);
    at::NoGradGuard noGradients;
    StoreInfo info = storeInfo(*model, tc, o);
    info.buildOptions = first.store.buildOptions;
    if (info.model != first.store.model || info.scan != first.store.scan || info.nLayers != first.store.nLayers
        || info.nFeatures != first.store.nFeatures)
        throw Error("the parts were built with model \"" + first.store.model + "\" and transcoders \""
            + first.store.scan + "\" (" + std::to_string(first.store.nLayers) + " x "
            + std::to_string(first.store.nFeatures) + "), not \"" + info.model + "\" and \"" + info.scan + "\" ("
            + std::to_string(info.nLayers) + " x " + std::to_string(info.nFeatures) + ")");
    bool merged = false;
    auto db = openMergeTarget(dbPath, info, merged);
    const auto runStart = Clock::now();
    Builder builder(*model, tc, o);
    for (const std::string& path : byRank) {
        const auto state = FeatureStore::open(path)->buildState();
        if (!state)
            throw Error(path + " holds no build state");
        builder.foldState(state->data(), state->size());
    }
    saveMerged(*db, builder, info, W, o);
    finishStore(*db, builder, *model, info, o);
    return makeResult(builder, o, start, runStart, 0, dbPath, W);
}

} // namespace cs::features
