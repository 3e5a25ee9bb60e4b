// The tracer (attribution.h): chooses the logit targets, visits feature rows (all of them, or
// by estimated influence up to max_feature_nodes), measures exactness and assembles the graph.
#include "cs/attribution.h"

#include "attribution/memory.h"
#include "attribution/row_pass.h"
#include "cs/error.h"
#include "cs/model.h"
#include "util/clock.h"
#include "util/token_text.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>

namespace cs::attribution {

namespace {

std::vector<LogitTarget> chooseLogits(const ReplacementContext& ctx, const LogitTargets& want)
{
    const int64_t vocab = ctx.logits.size(1);
    at::Tensor probs = at::softmax(ctx.logits[ctx.nPos() - 1].to(at::kDouble), 0).cpu();
    const double* p = probs.data_ptr<double>();
    auto checkToken = [&](int64_t id) {
        if (id < 0 || id >= vocab)
            throw Error("logit target token " + std::to_string(id) + " is outside the vocabulary (size "
                + std::to_string(vocab) + ")");
    };
    std::vector<LogitTarget> out;
    if (want.difference) {
        const auto [a, b] = *want.difference;
        checkToken(a);
        checkToken(b);
        if (a == b)
            throw Error("a logit difference needs two different tokens");
        out.push_back({ { a, b }, { 1.0, -1.0 }, { p[a], p[b] }, 1.0 });
        return out;
    }
    if (!want.weights.empty() && want.weights.size() != want.tokens.size())
        throw Error(std::to_string(want.weights.size()) + " logit weights for " + std::to_string(want.tokens.size())
            + " named logit tokens: give one weight per token");
    if (!want.tokens.empty()) {
        double total = 0;
        for (size_t k = 0; k < want.tokens.size(); ++k) {
            const int64_t id = want.tokens[k];
            checkToken(id);
            for (const auto& t : out)
                if (t.tokens[0] == id)
                    throw Error("logit target token " + std::to_string(id) + " is named twice");
            const double weight
                = want.weights.empty() ? 1.0 / static_cast<double>(want.tokens.size()) : want.weights[k];
            if (!(weight >= 0) || !std::isfinite(weight))
                throw Error("logit weight " + std::to_string(weight) + " must be a finite non-negative number");
            total += weight;
            out.push_back({ { id }, { 1.0 }, { p[id] }, weight });
        }
        if (!(total > 0))
            throw Error("the logit weights are all 0: give at least one target a positive weight");
        return out;
    }
    if (want.maxNLogits < 1)
        throw Error("max_n_logits must be at least 1");
    if (!(want.desiredLogitProb > 0 && want.desiredLogitProb <= 1))
        throw Error("desired_logit_prob must be in (0, 1]");
    // The most likely tokens until their cumulative probability reaches desiredLogitProb.
    auto top = at::topk(probs, std::min(want.maxNLogits, vocab));
    at::Tensor ids = std::get<1>(top);
    double cumulative = 0;
    for (int64_t i = 0; i < ids.numel(); ++i) {
        const int64_t id = ids[i].item<int64_t>();
        out.push_back({ { id }, { 1.0 }, { p[id] }, p[id] });
        cumulative += p[id];
        if (cumulative >= want.desiredLogitProb)
            break;
    }
    return out;
}

// Rows of A kept sparse as they are computed: each batch's nonzero entries over all source
// columns, with each row's sums (the dense [rows, columns] block never outlives its batch).
struct SparseRows {
    struct Chunk {
        std::vector<int64_t> starts; // [rows + 1]: offsets into columns / values
        std::vector<int32_t> columns; // source columns (SourceLayout), increasing within a row
        std::vector<float> values; // A[t, column], nonzero
    };
    std::vector<Chunk> chunks; // one per batch, in computation order
    std::vector<std::pair<int32_t, int32_t>> where; // [rows]: (chunk, row in chunk)
    std::vector<double> sum; // [rows]: sum_s A[t, s] over all columns, float64 (exactness)
    std::vector<double> absSum; // [rows]: sum_s |A[t, s]| over all columns (normalization)
    int64_t nnz = 0;

    int64_t size() const { return static_cast<int64_t>(where.size()); }

    // Appends a batch: rows [b, columns] float32 on any device.
    void append(const at::Tensor& rows)
    {
        if (!rows.device().is_cpu()) {
            appendFromDevice(rows);
            return;
        }
        const at::Tensor cpu = rows.to(at::kCPU, at::kFloat).contiguous();
        const int64_t b = cpu.size(0), columns = cpu.size(1);
        const float* p = cpu.data_ptr<float>();
        Chunk chunk;
        chunk.starts.assign(static_cast<size_t>(b + 1), 0);
        // Count first, so the chunk's arrays are allocated once at their size.
        std::vector<int64_t> counts(static_cast<size_t>(b), 0);
        std::vector<double> sums(static_cast<size_t>(b), 0.0), absSums(static_cast<size_t>(b), 0.0);
        at::parallel_for(0, b, 1, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) {
                const float* row = p + i * columns;
                int64_t count = 0;
                double total = 0, absTotal = 0;
                for (int64_t c = 0; c < columns; ++c) {
                    const float v = row[c];
                    count += v != 0.0f;
                    total += v;
                    absTotal += std::abs(static_cast<double>(v));
                }
                counts[i] = count;
                sums[i] = total;
                absSums[i] = absTotal;
            }
        });
        for (int64_t i = 0; i < b; ++i)
            chunk.starts[i + 1] = chunk.starts[i] + counts[i];
        chunk.columns.resize(static_cast<size_t>(chunk.starts[b]));
        chunk.values.resize(static_cast<size_t>(chunk.starts[b]));
        at::parallel_for(0, b, 1, [&](int64_t begin, int64_t end) {
            for (int64_t i = begin; i < end; ++i) {
                const float* row = p + i * columns;
                int64_t out = chunk.starts[i];
                for (int64_t c = 0; c < columns; ++c)
                    if (row[c] != 0.0f) {
                        chunk.columns[out] = static_cast<int32_t>(c);
                        chunk.values[out] = row[c];
                        ++out;
                    }
            }
        });
        commit(std::move(chunk), sums.data(), absSums.data());
    }

    // The same for rows on a GPU: the nonzero entries are found there and only they cross
    // to the host (row-major order, as nonzero() and masked_select() give them).
    void appendFromDevice(const at::Tensor& rows)
    {
        const int64_t b = rows.size(0);
        const at::Tensor mask = rows != 0;
        const at::Tensor counts = mask.sum(1).cpu();
        const at::Tensor sums = rows.sum(1, false, at::kDouble).cpu();
        const at::Tensor absSums = rows.abs().sum(1, false, at::kDouble).cpu();
        const at::Tensor columns = mask.nonzero().select(1, 1).to(at::kInt).cpu().contiguous();
        const at::Tensor values = rows.masked_select(mask).cpu().contiguous();
        Chunk chunk;
        chunk.starts.assign(static_cast<size_t>(b + 1), 0);
        const int64_t* count = counts.data_ptr<int64_t>();
        for (int64_t i = 0; i < b; ++i)
            chunk.starts[i + 1] = chunk.starts[i] + count[i];
        chunk.columns.assign(columns.data_ptr<int32_t>(), columns.data_ptr<int32_t>() + columns.numel());
        chunk.values.assign(values.data_ptr<float>(), values.data_ptr<float>() + values.numel());
        commit(std::move(chunk), sums.data_ptr<double>(), absSums.data_ptr<double>());
    }

    // Adds a filled chunk and its rows' sums (one per row of the chunk).
    void commit(Chunk chunk, const double* sums, const double* absSums)
    {
        const int64_t b = static_cast<int64_t>(chunk.starts.size()) - 1;
        const auto index = static_cast<int32_t>(chunks.size());
        for (int64_t i = 0; i < b; ++i) {
            where.emplace_back(index, static_cast<int32_t>(i));
            sum.push_back(sums[i]);
            absSum.push_back(absSums[i]);
        }
        nnz += chunk.starts[static_cast<size_t>(b)];
        chunks.push_back(std::move(chunk));
    }

    // Row r's entries.
    struct Row {
        const int32_t* columns;
        const float* values;
        int64_t size;
    };
    Row row(int64_t r) const
    {
        const auto [c, i] = where[static_cast<size_t>(r)];
        const Chunk& chunk = chunks[static_cast<size_t>(c)];
        const int64_t begin = chunk.starts[static_cast<size_t>(i)];
        return { chunk.columns.data() + begin, chunk.values.data() + begin,
            chunk.starts[static_cast<size_t>(i) + 1] - begin };
    }
};

// The influence on the logits of every source column, estimated from the rows computed so far
// (circuit-tracer's compute_partial_influences): w^T (A_hat + A_hat^2 + ...) with unvisited
// rows zero, one sparse product per path length (rows whose weight is 0 skipped). A_hat
// normalizes each row by its sum of |A| over all columns.                         [columns]
std::vector<float> partialInfluence(const SparseRows& rows, const std::vector<RowTarget>& targets,
    const std::vector<LogitTarget>& logits, int64_t columns, int64_t maxDepth)
{
    const int64_t r = rows.size();
    std::vector<float> prod(static_cast<size_t>(r), 0.f); // [r]: the weight each row carries now
    std::vector<float> scale(static_cast<size_t>(r)); // [r]: 1 / clamped |row| sum
    for (int64_t i = 0; i < r; ++i) {
        const RowTarget& t = targets[static_cast<size_t>(i)];
        if (t.logit >= 0)
            prod[i] = static_cast<float>(logits[static_cast<size_t>(t.logit)].weight);
        scale[i] = static_cast<float>(1.0 / std::max(rows.absSum[i], 1e-10));
    }
    // Rows split among the threads, each scattering into its own accumulator.
    const int64_t nThreads = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), r));
    std::vector<std::vector<float>> partial(static_cast<size_t>(nThreads));
    std::vector<float> influence(static_cast<size_t>(columns), 0.f);
    std::vector<float> contribution(static_cast<size_t>(columns));
    for (int64_t depth = 0; depth < maxDepth; ++depth) {
        at::parallel_for(0, nThreads, 1, [&](int64_t tb, int64_t te) {
            for (int64_t th = tb; th < te; ++th) {
                std::vector<float>& acc = partial[static_cast<size_t>(th)];
                acc.assign(static_cast<size_t>(columns), 0.f);
                for (int64_t i = th * r / nThreads; i < (th + 1) * r / nThreads; ++i) {
                    if (prod[i] == 0.f)
                        continue;
                    const float f = prod[i] * scale[i];
                    const SparseRows::Row row = rows.row(i);
                    for (int64_t k = 0; k < row.size; ++k)
                        acc[row.columns[k]] += f * std::abs(row.values[k]);
                }
            }
        });
        float largest = 0;
        for (int64_t c = 0; c < columns; ++c) {
            float v = 0;
            for (const auto& acc : partial)
                v += acc[c];
            contribution[c] = v;
            largest = std::max(largest, std::abs(v));
        }
        if (largest == 0)
            break;
        for (int64_t c = 0; c < columns; ++c)
            influence[c] += contribution[c];
        for (int64_t i = 0; i < r; ++i) {
            const RowTarget& t = targets[static_cast<size_t>(i)];
            prod[i] = t.logit >= 0 ? 0.f : contribution[static_cast<size_t>(t.active)];
        }
    }
    return influence;
}

// The same estimate from A_hat's rows held dense on the device ([rows, columns], each row
// |A| over its sum, normalized once as it was stored): one mat-vec per path length. [columns]
at::Tensor partialInfluenceDense(const at::Tensor& normalized, const std::vector<RowTarget>& targets,
    const std::vector<LogitTarget>& logits, int64_t maxDepth)
{
    const at::Tensor& rows = normalized;
    const int64_t r = rows.size(0);
    const at::Tensor& a = normalized;
    std::vector<float> weights(static_cast<size_t>(r), 0.f);
    std::vector<int64_t> featureRows, featureCols;
    for (int64_t i = 0; i < r; ++i) {
        const RowTarget& t = targets[static_cast<size_t>(i)];
        if (t.logit >= 0) {
            weights[static_cast<size_t>(i)] = static_cast<float>(logits[static_cast<size_t>(t.logit)].weight);
        } else {
            featureRows.push_back(i);
            featureCols.push_back(t.active);
        }
    }
    const auto device = rows.device();
    at::Tensor prod = at::tensor(weights).to(device);
    at::Tensor rowIdx = at::tensor(featureRows, at::kLong).to(device);
    at::Tensor colIdx = at::tensor(featureCols, at::kLong).to(device);
    at::Tensor influence = at::zeros({ rows.size(1) }, rows.options());
    for (int64_t depth = 0; depth < maxDepth; ++depth) {
        at::Tensor contribution = at::mv(a.t(), prod); // [columns]
        if (contribution.abs().max().item<float>() == 0)
            break;
        influence += contribution;
        prod = at::zeros({ r }, rows.options()).index_copy(0, rowIdx, contribution.index_select(0, colIdx));
    }
    return influence;
}

} // namespace

const char* methodName(Method method)
{
    return method == Method::Explicit ? "explicit" : "autograd";
}

std::optional<Method> methodFromName(const std::string& name)
{
    if (name == "explicit")
        return Method::Explicit;
    if (name == "autograd")
        return Method::Autograd;
    return std::nullopt;
}

namespace {

// Drives one RowPass over batches, storing rows sparsely in computation order.
class RowDriver {
public:
    RowDriver(RowPass& pass, const TraceOptions& options, int64_t capacity)
        : m_pass(pass)
        , m_options(options)
        , m_capacity(capacity)
    {
    }

    // Computes rows for the targets, in an order with narrow cones: by layer (a batch's dense
    // sweep starts below its targets' layer), then position (its prefix ends near its start).
    void run(std::vector<RowTarget> targets)
    {
        std::stable_sort(targets.begin(), targets.end(), [](const RowTarget& a, const RowTarget& b) {
            return a.layer != b.layer ? a.layer < b.layer : a.position < b.position;
        });
        size_t begin = 0;
        while (begin < targets.size()) {
            size_t end = begin + 1;
            int64_t prefix = targets[begin].position + 1;
            while (end < targets.size()) {
                const int64_t size = static_cast<int64_t>(end - begin + 1);
                prefix = std::max(prefix, targets[end].position + 1);
                if (size > m_options.batchSize || size > m_pass.maxRows(prefix))
                    break;
                ++end;
            }
            std::vector<RowTarget> batch(targets.begin() + static_cast<std::ptrdiff_t>(begin),
                targets.begin() + static_cast<std::ptrdiff_t>(end));
            const auto start = Clock::now();
            const at::Tensor rows = m_pass.rows(batch); // [batch, columns]
            if (m_dense.defined()) { // A_hat's rows: |A| over its row sum
                const at::Tensor a = rows.abs();
                m_dense.narrow(0, done(), rows.size(0)).copy_(a / a.sum(1, true).clamp_min(1e-10));
            }
            m_rows.append(rows); // kept as its nonzero entries
            m_rowsMs += msSince(start);
            ++m_batches;
            m_targets.insert(m_targets.end(), batch.begin(), batch.end());
            if (m_options.progress && !m_options.progress(static_cast<double>(done()) / m_capacity))
                throw Cancelled();
            begin = end;
        }
    }

    // Also keeps A_hat's rows (|A| row-normalized) dense in a [capacity, columns] buffer with
    // these options (a GPU's), for partialInfluenceDense.
    void keepDense(int64_t columns, at::TensorOptions options)
    {
        m_dense = at::empty({ m_capacity, columns }, options);
    }
    bool hasDense() const { return m_dense.defined(); }
    at::Tensor denseRows() const { return m_dense.narrow(0, 0, done()); }
    // Gives the dense buffer's memory back.
    void dropDense() { m_dense = at::Tensor(); }

    const SparseRows& rows() const { return m_rows; }
    SparseRows& rows() { return m_rows; }
    const std::vector<RowTarget>& targets() const { return m_targets; }
    int64_t done() const { return m_rows.size(); }
    int64_t batches() const { return m_batches; }
    double rowsMs() const { return m_rowsMs; }

private:
    RowPass& m_pass;
    const TraceOptions& m_options;
    int64_t m_capacity;
    SparseRows m_rows;
    at::Tensor m_dense;
    std::vector<RowTarget> m_targets;
    int64_t m_batches = 0;
    double m_rowsMs = 0;
};

// Per computed row: the target quantity (actual), its part that no source carries (constant),
// and the scale float32 rounding works at, |w_t| |x_t| for the read vector w_t and the vector
// x_t it reads (the transcoder input, or the final residual).
struct TargetQuantities {
    at::Tensor actual, constant, scale; // [rows] float64
};

TargetQuantities targetQuantities(const ReplacementContext& ctx, const std::vector<RowTarget>& targets,
    const std::vector<LogitTarget>& logits, const at::Tensor& logitReads)
{
    RunOptions none;
    none.errors = false;
    none.embeddings = false;
    none.edit = [](int64_t, at::Tensor& acts) { acts.zero_(); };
    const RunResult constant = runReplacement(ctx, none);
    const transcoder::TranscoderSet& tc = *ctx.transcoders;
    const int64_t last = ctx.nPos() - 1;
    const auto n = static_cast<int64_t>(targets.size());
    at::Tensor actual = at::zeros({ n }, at::kDouble), constants = at::zeros({ n }, at::kDouble),
               scales = at::zeros({ n }, at::kDouble);
    // Logit rows, one by one (there are a handful).
    for (int64_t i = 0; i < n; ++i) {
        const RowTarget& t = targets[static_cast<size_t>(i)];
        if (t.logit < 0)
            continue;
        const LogitTarget& lt = logits[static_cast<size_t>(t.logit)];
        at::Tensor toks = at::tensor(lt.tokens, at::kLong);
        auto quantity = [&](const at::Tensor& finalResid) {
            at::Tensor coef = at::tensor(lt.coefficients, at::kDouble).to(finalResid.options());
            return (demeanedLogits(ctx, finalResid, last, toks) * coef).sum().item<double>();
        };
        actual[i] = quantity(ctx.finalResid);
        constants[i] = quantity(constant.finalResid);
        scales[i] = (logitReads[t.logit].norm() * ctx.finalResid[last].norm()).item<double>();
    }
    // Feature rows, one batch per layer on the device (a row at a time would cost a device
    // round trip each): the encoder row against the transcoder input at the row's position.
    at::Tensor featureCpu = ctx.active.feature.cpu();
    const int64_t* feature = featureCpu.data_ptr<int64_t>();
    for (int64_t l = 0; l < ctx.nLayers(); ++l) {
        std::vector<int64_t> rows, positions, features;
        for (int64_t i = 0; i < n; ++i) {
            const RowTarget& t = targets[static_cast<size_t>(i)];
            if (t.logit < 0 && t.layer == l) {
                rows.push_back(i);
                positions.push_back(t.position);
                features.push_back(feature[t.active]);
            }
        }
        if (rows.empty())
            continue;
        const auto device = tc.encoder(l).device();
        at::Tensor enc = tc.encoder(l).index_select(0, at::tensor(features, at::kLong).to(device)); // [k, d]
        at::Tensor pos = at::tensor(positions, at::kLong).to(device);
        at::Tensor x = ctx.inputs[static_cast<size_t>(l)].index_select(0, pos); // [k, d]
        at::Tensor xc = constant.inputs[static_cast<size_t>(l)].index_select(0, pos);
        at::Tensor idx = at::tensor(rows, at::kLong);
        actual.index_copy_(0, idx, (enc * x).sum(1).to(at::kDouble).cpu());
        constants.index_copy_(0, idx, (enc * xc).sum(1).to(at::kDouble).cpu());
        scales.index_copy_(0, idx, (enc.norm(2, 1) * x.norm(2, 1)).to(at::kDouble).cpu());
    }
    return { actual, constants, scales };
}

PassSetup makeSetup(const ReplacementContext& ctx, std::vector<LogitTarget> logits, int64_t budget)
{
    PassSetup setup;
    setup.context = &ctx;
    setup.layout.nFeatures = ctx.active.size();
    setup.layout.nLayers = ctx.nLayers();
    setup.layout.nPos = ctx.nPos();
    const int64_t d = ctx.model->config().dModel;
    setup.logitReads = at::zeros({ static_cast<int64_t>(logits.size()), d }, ctx.errors[0].options());
    for (size_t i = 0; i < logits.size(); ++i) {
        at::Tensor reads = logitReadVectors(ctx, ctx.nPos() - 1, at::tensor(logits[i].tokens, at::kLong));
        at::Tensor coef = at::tensor(logits[i].coefficients, at::kDouble).to(reads.options());
        setup.logitReads[static_cast<int64_t>(i)].copy_((reads * coef.unsqueeze(1)).sum(0));
    }
    setup.logits = std::move(logits);
    setup.memoryBudgetBytes = budget;
    return setup;
}

std::unique_ptr<RowPass> makePass(Method method, const PassSetup& setup)
{
    return method == Method::Explicit ? makeExplicitPass(setup) : makeAutogradPass(setup);
}

void checkOptions(const TraceOptions& options)
{
    if (options.batchSize < 1)
        throw Error("the batch size must be at least 1");
    if (options.memoryBudgetBytes < 1)
        throw Error("the memory budget must be positive");
}

} // namespace

TraceResult trace(const ReplacementContext& ctx, const TraceOptions& options)
{
    checkOptions(options);
    const auto start = Clock::now();
    at::NoGradGuard noGradients; // the autograd pass turns them on for itself
    const model::Model& model = *ctx.model;
    const int64_t nLayers = ctx.nLayers(), nPos = ctx.nPos(), last = nPos - 1;
    const int64_t nActive = ctx.active.size();

    // Logits that are not finite (NaN weights in a checkpoint) would make every row of the trace
    // NaN, found only after all of it; refuse them once, here.
    const at::Tensor finite = at::isfinite(ctx.logits).all(1); // [n_pos]
    if (!finite.all().item<bool>())
        throw Error("the model's logits are not finite (NaN or infinite) at position "
            + std::to_string(at::argmin(finite.to(at::kInt)).item<int64_t>())
            + " of the prompt: its weights or config.json hold values out of range; nothing to trace");
    std::vector<LogitTarget> logits = chooseLogits(ctx, options.logits);
    const int64_t nLogits = static_cast<int64_t>(logits.size());
    const MemoryEstimate memory = estimateTraceMemory(ctx, options, nLogits);
    checkTraceMemory(ctx, options, nLogits, memory);
    const PassSetup setup = makeSetup(ctx, logits, options.memoryBudgetBytes);
    const SourceLayout& layout = setup.layout;
    std::unique_ptr<RowPass> pass = makePass(options.method, setup);
    const int64_t limit
        = options.maxFeatureNodes < 0 || options.maxFeatureNodes >= nActive ? nActive : options.maxFeatureNodes;

    at::Tensor layerCpu = ctx.active.layer.cpu().contiguous(), posCpu = ctx.active.position.cpu().contiguous();
    const int64_t* activeLayer = layerCpu.data_ptr<int64_t>();
    const int64_t* activePos = posCpu.data_ptr<int64_t>();
    auto featureTarget = [&](int64_t i) { return RowTarget { activeLayer[i], activePos[i], i, -1 }; };

    RowDriver driver(*pass, options, nLogits + limit);
    // With a feature cap on a GPU: the dense rows for the influence estimates, when they take
    // at most a third of the device's free memory (3.5 GB for Gemma-2-2B at 64 tokens).
    if (limit < nActive && model.device().is_cuda()) {
        const double bytes = 4.0 * static_cast<double>(nLogits + limit) * static_cast<double>(layout.columns());
        if (bytes <= static_cast<double>(model::cudaMemoryInfo(model.device()).first) / 3)
            driver.keepDense(layout.columns(), ctx.errors[0].options());
    }
    std::vector<RowTarget> logitTargets;
    for (int64_t i = 0; i < nLogits; ++i)
        logitTargets.push_back({ nLayers, last, -1, i });
    driver.run(logitTargets);

    double influenceMs = 0;
    std::vector<bool> visited(static_cast<size_t>(nActive), false);
    if (limit == nActive) {
        std::vector<RowTarget> all;
        for (int64_t i = 0; i < nActive; ++i)
            all.push_back(featureTarget(i));
        driver.run(all);
        std::fill(visited.begin(), visited.end(), true);
    } else {
        // Visit features by their estimated influence on the logits, one batch at a time.
        int64_t count = 0;
        // Visited features, on the influence's device: masked out of the next choice.
        at::Tensor visitedMask;
        while (count < limit) {
            const auto t0 = Clock::now();
            // On a GPU the rows are also kept dense on the device when they fit, and the estimate
            // is a few dense products there; elsewhere it sweeps the sparse rows on the CPU.
            at::Tensor influence = driver.hasDense()
                ? partialInfluenceDense(driver.denseRows(), driver.targets(), logits, nLayers + 2).narrow(0, 0, nActive)
                : at::tensor(partialInfluence(driver.rows(), driver.targets(), logits, layout.columns(), nLayers + 2))
                      .narrow(0, 0, nActive);
            if (!visitedMask.defined())
                visitedMask = at::zeros({ nActive }, influence.options().dtype(at::kBool));
            influence = influence.masked_fill(visitedMask, -1.0f);
            const int64_t take = std::min(options.batchSize, limit - count);
            at::Tensor order = std::get<1>(at::topk(influence, take));
            visitedMask.index_fill_(0, order, true);
            at::Tensor orderCpu = order.cpu();
            influenceMs += msSince(t0);
            std::vector<RowTarget> batch;
            for (int64_t k = 0; k < take; ++k) {
                const int64_t i = orderCpu.data_ptr<int64_t>()[k];
                visited[static_cast<size_t>(i)] = true;
                batch.push_back(featureTarget(i));
            }
            driver.run(batch);
            count += take;
        }
    }

    driver.dropDense();
    TraceResult result;
    result.logitTargets = logits;
    SparseRows& rows = driver.rows(); // in computation order
    const std::vector<RowTarget>& targets = driver.targets();

    // Nodes: visited features (in active order), errors, embeddings, logits.
    std::vector<int64_t> selected;
    for (int64_t i = 0; i < nActive; ++i)
        if (visited[static_cast<size_t>(i)])
            selected.push_back(i);
    const int64_t nSel = static_cast<int64_t>(selected.size());
    std::vector<int64_t> nodeOfActive(static_cast<size_t>(nActive), -1);
    for (int64_t k = 0; k < nSel; ++k)
        nodeOfActive[static_cast<size_t>(selected[static_cast<size_t>(k)])] = k;
    const int64_t nSources = nSel + nLayers * nPos + nPos;
    const int64_t nNodes = nSources + nLogits;

    graph::Graph& g = result.graph;
    at::Tensor featCpu = ctx.active.feature.cpu(), actCpu = ctx.active.activation.cpu();
    featCpu = featCpu.contiguous();
    actCpu = actCpu.to(at::kDouble).contiguous();
    for (int64_t i : selected) {
        graph::Node node;
        node.kind = graph::NodeKind::Feature;
        node.layer = activeLayer[i];
        node.position = activePos[i];
        node.feature = featCpu.data_ptr<int64_t>()[i];
        node.activation = actCpu.data_ptr<double>()[i];
        g.nodes.push_back(node);
    }
    for (int64_t l = 0; l < nLayers; ++l) {
        at::Tensor norms = ctx.errors[static_cast<size_t>(l)].norm(2, 1).to(at::kDouble).cpu().contiguous();
        for (int64_t p = 0; p < nPos; ++p) {
            graph::Node node;
            node.kind = graph::NodeKind::Error;
            node.layer = l;
            node.position = p;
            node.activation = norms.data_ptr<double>()[p];
            g.nodes.push_back(node);
        }
    }
    at::Tensor idsCpu = ctx.ids.cpu();
    for (int64_t p = 0; p < nPos; ++p) {
        graph::Node node;
        node.kind = graph::NodeKind::Embedding;
        node.layer = -1;
        node.position = p;
        node.tokenId = idsCpu[p].item<int64_t>();
        node.token = model::tokenText(model, node.tokenId);
        g.nodes.push_back(node);
        g.metadata.promptTokens.push_back(node.token);
    }
    std::vector<float> logitWeights;
    for (const auto& lt : logits) {
        graph::Node node;
        node.kind = graph::NodeKind::Logit;
        node.layer = nLayers;
        node.position = last;
        node.tokenId = lt.tokens[0];
        node.token = model::tokenText(model, lt.tokens[0]);
        node.tokenProb = lt.probabilities[0];
        if (lt.tokens.size() == 2) {
            node.contrastTokenId = lt.tokens[1];
            node.contrastToken = model::tokenText(model, lt.tokens[1]);
            node.contrastTokenProb = lt.probabilities[1];
            g.metadata.extra["logit_difference"] = { { "token_id", node.tokenId }, { "token", node.token },
                { "prob", node.tokenProb }, { "contrast_token_id", node.contrastTokenId },
                { "contrast_token", node.contrastToken }, { "contrast_prob", node.contrastTokenProb } };
        }
        g.nodes.push_back(node);
        logitWeights.push_back(static_cast<float>(lt.weight));
    }
    g.logitProbabilities = logitWeights;

    // The adjacency: each computed row as sparse rows in node order, over the kept source
    // columns (visited features, errors, embeddings). The column of a feature that was not
    // visited (with a feature cap) is folded into the error node at its layer and position, so
    // every row keeps its whole sum and the graph stays exact: that error node then stands for
    // the MLP error plus the features the cap left out. Columns keep their order (visited
    // features in active order, errors, embeddings), so each row stays sorted. Built straight
    // into its arrays, then the batches' entries are let go.
    const int64_t nErrors = nLayers * nPos;
    std::vector<int64_t> columnNode(static_cast<size_t>(layout.columns()), -1); // source column -> node
    for (int64_t k = 0; k < nSel; ++k)
        columnNode[static_cast<size_t>(selected[static_cast<size_t>(k)])] = k;
    for (int64_t i = 0; i < nActive; ++i)
        if (!visited[static_cast<size_t>(i)])
            columnNode[static_cast<size_t>(i)] = nSel + activeLayer[i] * nPos + activePos[i];
    for (int64_t c = nActive; c < layout.columns(); ++c)
        columnNode[static_cast<size_t>(c)] = nSel + (c - nActive);
    std::vector<int64_t> rowNodes;
    for (const auto& t : targets)
        rowNodes.push_back(t.logit >= 0 ? nSources + t.logit : nodeOfActive[static_cast<size_t>(t.active)]);
    std::vector<int64_t> rowOfNode(static_cast<size_t>(nNodes), -1);
    for (int64_t r = 0; r < rows.size(); ++r)
        rowOfNode[static_cast<size_t>(rowNodes[static_cast<size_t>(r)])] = r;
    // Emits row r's entries in column order through emit(node column, value): the features
    // first, then the error columns with what was folded into them (summed in float64), then
    // the embeddings. The scratch is the caller's (one per thread), left cleared.
    struct Scratch {
        std::vector<double> errorSum; // [nErrors]
        std::vector<uint8_t> listed; // [nErrors]: in touched
        std::vector<int32_t> touched;
    };
    const auto assembleRow = [&](int64_t r, Scratch& scratch, const auto& emit) {
        auto& [errorSum, listed, touched] = scratch;
        const SparseRows::Row row = rows.row(r);
        if (nSel == nActive) {
            for (int64_t k = 0; k < row.size; ++k)
                emit(static_cast<int32_t>(columnNode[static_cast<size_t>(row.columns[k])]), row.values[k]);
            return;
        }
        touched.clear();
        int64_t k = 0;
        for (; k < row.size && row.columns[k] < nActive + nErrors; ++k) {
            const int64_t to = columnNode[static_cast<size_t>(row.columns[k])];
            if (to < nSel) {
                emit(static_cast<int32_t>(to), row.values[k]);
                continue;
            }
            const auto e = static_cast<size_t>(to - nSel);
            if (!listed[e]) {
                listed[e] = 1;
                touched.push_back(static_cast<int32_t>(e));
            }
            errorSum[e] += row.values[k];
        }
        std::sort(touched.begin(), touched.end());
        for (const int32_t e : touched) {
            const auto value = static_cast<float>(errorSum[static_cast<size_t>(e)]);
            errorSum[static_cast<size_t>(e)] = 0;
            listed[static_cast<size_t>(e)] = 0;
            if (value != 0)
                emit(static_cast<int32_t>(nSel + e), value);
        }
        for (; k < row.size; ++k)
            emit(static_cast<int32_t>(columnNode[static_cast<size_t>(row.columns[k])]), row.values[k]);
    };
    std::vector<int64_t> rowStarts(static_cast<size_t>(nNodes + 1), 0);
    {
        std::vector<int64_t> counts(static_cast<size_t>(nNodes), 0);
        at::parallel_for(0, nNodes, 64, [&](int64_t begin, int64_t end) {
            Scratch scratch { std::vector<double>(static_cast<size_t>(nErrors), 0.0),
                std::vector<uint8_t>(static_cast<size_t>(nErrors), 0), {} };
            for (int64_t node = begin; node < end; ++node)
                if (const int64_t r = rowOfNode[static_cast<size_t>(node)]; r >= 0)
                    assembleRow(r, scratch, [&](int32_t, float) { ++counts[static_cast<size_t>(node)]; });
        });
        for (int64_t node = 0; node < nNodes; ++node)
            rowStarts[static_cast<size_t>(node) + 1]
                = rowStarts[static_cast<size_t>(node)] + counts[static_cast<size_t>(node)];
    }
    std::vector<double> exportedSum(static_cast<size_t>(rows.size()), 0.0); // [rows]: each row's sum as exported
    {
        std::vector<int32_t> columns(static_cast<size_t>(rowStarts.back()));
        std::vector<float> values(static_cast<size_t>(rowStarts.back()));
        at::parallel_for(0, nNodes, 64, [&](int64_t begin, int64_t end) {
            Scratch scratch { std::vector<double>(static_cast<size_t>(nErrors), 0.0),
                std::vector<uint8_t>(static_cast<size_t>(nErrors), 0), {} };
            for (int64_t node = begin; node < end; ++node) {
                const int64_t r = rowOfNode[static_cast<size_t>(node)];
                if (r < 0)
                    continue;
                int64_t out = rowStarts[static_cast<size_t>(node)];
                double sum = 0;
                assembleRow(r, scratch, [&](int32_t column, float value) {
                    columns[static_cast<size_t>(out)] = column;
                    values[static_cast<size_t>(out)] = value;
                    sum += value;
                    ++out;
                });
                exportedSum[static_cast<size_t>(r)] = sum;
            }
        });
        rows.chunks.clear();
        rows.chunks.shrink_to_fit();
        g.adjacency = graph::Adjacency(nNodes, std::move(rowStarts), std::move(columns), std::move(values));
    }

    // Exactness of every computed row, as exported: the row's sum in the graph plus its
    // constant against the target's actual quantity.
    const TargetQuantities q = targetQuantities(ctx, targets, logits, setup.logitReads);
    const at::Tensor& actual = q.actual;
    const at::Tensor& constant = q.constant;
    at::Tensor residual = actual - (at::tensor(exportedSum, at::kDouble) + constant); // summed in float64
    at::Tensor scale = q.scale;
    result.exactness.rows = rows.size();
    if (rows.size() > 0) {
        result.exactness.maxAbsResidual = residual.abs().max().item<double>();
        result.exactness.maxRelResidual = (residual.abs() / scale.clamp_min(1e-30)).max().item<double>();
    }

    // Per row, in node order: the constant and actual quantities.
    at::Tensor order = at::argsort(at::tensor(rowNodes, at::kLong));
    result.constants = constant.index_select(0, order);
    result.actuals = actual.index_select(0, order);

    graph::Metadata& md = g.metadata;
    md.prompt = model.hasTokenizer()
        ? model.tokenizer().decode(std::vector<int64_t>(idsCpu.data_ptr<int64_t>(), idsCpu.data_ptr<int64_t>() + nPos))
        : std::string();
    md.scan = ctx.transcoders->config().scan;
    // As circuit-tracer: a named scan leaves the list empty; otherwise the transcoders used.
    md.transcoderList.clear();
    if (md.scan.empty())
        md.transcoderList.push_back(ctx.transcoders->folder());
    md.extra["generation_settings"]
        = { { "max_n_logits", options.logits.maxNLogits }, { "desired_logit_prob", options.logits.desiredLogitProb },
              { "batch_size", options.batchSize }, { "max_feature_nodes", options.maxFeatureNodes },
              { "method", methodName(options.method) }, { "logit_weights", logitWeights } };
    md.extra["exactness"] = { { "max_abs_residual", result.exactness.maxAbsResidual },
        { "max_rel_residual", result.exactness.maxRelResidual }, { "rows", result.exactness.rows } };
    md.extra["info"] = { { "creator_name", "circuitscope" }, { "method", methodName(options.method) },
        { "max_feature_nodes", options.maxFeatureNodes }, { "batch_size", options.batchSize },
        { "active_features", nActive }, { "held_positions", ctx.heldPositions } };

    result.stats.activeFeatures = nActive;
    result.stats.rows = driver.done();
    result.stats.batches = driver.batches();
    result.stats.rowsMs = driver.rowsMs();
    result.stats.influenceMs = influenceMs;
    result.stats.flops = pass->flops;
    result.stats.memoryDeviceBytes = memory.deviceBytes();
    result.stats.memoryHostBytes = memory.hostBytes();
    result.stats.totalMs = msSince(start);
    return result;
}

at::Tensor computeRows(const ReplacementContext& ctx, const TraceResult& result, const std::vector<int64_t>& targets,
    Method method, int64_t batchSize)
{
    at::NoGradGuard noGradients;
    const graph::Graph& g = result.graph;
    const graph::KindRanges ranges = g.ranges();
    const PassSetup setup = makeSetup(ctx, result.logitTargets, int64_t(256) << 20);
    std::unique_ptr<RowPass> pass = makePass(method, setup);
    at::Tensor layerCpu = ctx.active.layer.cpu(), posCpu = ctx.active.position.cpu(),
               featCpu = ctx.active.feature.cpu();
    std::vector<RowTarget> rowTargets;
    for (int64_t node : targets) {
        if (node < 0 || node >= g.size())
            throw Error("computeRows: node " + std::to_string(node) + " is not in the graph");
        const graph::Node& n = g.nodes[static_cast<size_t>(node)];
        if (ranges.logits.contains(node)) {
            rowTargets.push_back({ ctx.nLayers(), ctx.nPos() - 1, -1, node - ranges.logits.begin });
            continue;
        }
        if (n.kind != graph::NodeKind::Feature)
            throw Error("computeRows: node " + std::to_string(node) + " is not a feature or a logit");
        int64_t found = -1;
        for (int64_t i = 0; i < ctx.active.size() && found < 0; ++i)
            if (layerCpu[i].item<int64_t>() == n.layer && posCpu[i].item<int64_t>() == n.position
                && featCpu[i].item<int64_t>() == n.feature)
                found = i;
        if (found < 0)
            throw Error("computeRows: the feature of node " + std::to_string(node) + " is not active in the context");
        rowTargets.push_back({ n.layer, n.position, found, -1 });
    }
    std::vector<at::Tensor> out;
    for (size_t begin = 0; begin < rowTargets.size(); begin += static_cast<size_t>(batchSize)) {
        const size_t end = std::min(rowTargets.size(), begin + static_cast<size_t>(batchSize));
        out.push_back(pass->rows(std::vector<RowTarget>(rowTargets.begin() + static_cast<std::ptrdiff_t>(begin),
            rowTargets.begin() + static_cast<std::ptrdiff_t>(end))));
    }
    return out.empty() ? at::zeros({ 0, setup.layout.columns() }) : at::cat(out);
}

} // namespace cs::attribution
