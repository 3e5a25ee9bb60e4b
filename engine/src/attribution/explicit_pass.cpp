// The explicit transposed pass (attribution.h): rows of A by the hand-written transpose of the
// frozen linear model, no autograd graph and no MLP backward.
//
// For a batch of targets the gradient G [rows, prefix, d_model] with respect to the residual
// stream is carried down from the highest target layer. At layer l, going down:
//   1. G is the gradient at resid_post of l, which is also the gradient at mlp_out of l: every
//      source written there is contracted with it (error vectors; features, grouped by position
//      into one batched matrix product per layer).
//   2. The skip connection's transpose adds W_skip^T G through the input hook's norm.
//   3. Attention's transpose: post-norm, W_O, the frozen pattern transposed (keys receive from
//      the queries that attended to them), W_V, the attention-input norm; plus the residual.
//   4. Targets that read at layer l inject their read vector (the encoder row behind the frozen
//      MLP-input norm) at their position; it goes through attention's transpose with the one
//      pattern row of its query, which costs a prefix, not a prefix squared.
// Rows are batched by (layer, position), so a batch's targets mostly start at one layer and
// the dense transpose runs only below it.
// After layer 0, G is the gradient at the embeddings.
#include "attribution/frozen_norm.h"
#include "attribution/row_pass.h"

#include "cs/error.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <optional>

namespace cs::attribution {

namespace {

struct LayerData {
    std::optional<FrozenNorm> attnNorm, attnPost;
    // The norm in front of the transcoder input: weighted for mlp_in, unweighted for
    // mlp_normalized, none for resid_mid.
    std::optional<FrozenNorm> mlpNorm;
    at::Tensor wv; // [n_kv_heads * d_head, d_model]
    at::Tensor wo; // [d_model, n_heads * d_head]
    at::Tensor patternT; // [n_heads, n_keys, n_queries]: the frozen pattern, transposed
    at::Tensor skip; // [d_model, d_model] or undefined
    at::Tensor encoder; // [n_features, d_model]
    at::Tensor errors; // [n_pos, d_model]
    // Every source vector written to this layer's MLP output, grouped by position and padded:
    at::Tensor sources; // [n_pos, slots, d_model]: a_s W_dec_{s->l} (zero in padding)
    at::Tensor columns; // [n_pos, slots] int64: the source's column (the dummy column in padding)
    int64_t slots = 0;
};

class ExplicitPass final : public RowPass {
public:
    explicit ExplicitPass(const PassSetup& setup);
    int64_t maxRows(int64_t prefix) const override;
    at::Tensor rows(const std::vector<RowTarget>& targets) override;

private:
    at::Tensor attentionTranspose(const LayerData& layer, const at::Tensor& g, int64_t prefix);
    at::Tensor attentionTransposeAt(
        const LayerData& layer, const at::Tensor& read, const at::Tensor& positions, int64_t prefix);

    PassSetup m_setup;
    const ReplacementContext& m_ctx;
    std::vector<LayerData> m_layers;
    int64_t m_nHeads = 0, m_nKvHeads = 0, m_dHead = 0, m_dModel = 0;
    int64_t m_maxSlots = 1; // the most sources at one position of one layer
};

ExplicitPass::ExplicitPass(const PassSetup& setup)
    : m_setup(setup)
    , m_ctx(*setup.context)
{
    const model::Model& model = *m_ctx.model;
    const auto& mc = model.config();
    const transcoder::TranscoderSet& tc = *m_ctx.transcoders;
    m_nHeads = mc.nHeads;
    m_nKvHeads = mc.nKvHeads;
    m_dHead = mc.dHead;
    m_dModel = mc.dModel;
    const int64_t nLayers = m_ctx.nLayers(), nPos = m_ctx.nPos();
    const int64_t dummy = m_setup.layout.columns();

    // Source vectors per target layer, from each source layer's decoder rows.
    std::vector<std::vector<at::Tensor>> vectors(static_cast<size_t>(nLayers));
    std::vector<std::vector<at::Tensor>> positions(static_cast<size_t>(nLayers));
    std::vector<std::vector<at::Tensor>> columns(static_cast<size_t>(nLayers));
    const ActiveFeatures& active = m_ctx.active;
    for (int64_t ls = 0; ls < nLayers; ++ls) {
        at::Tensor mine = (active.layer == ls).nonzero().flatten(); // columns of this layer's features
        if (mine.numel() == 0)
            continue;
        at::Tensor acts = active.activation.index_select(0, mine);
        at::Tensor rows = tc.decoderRows(ls, active.feature.index_select(0, mine)); // [k, n_targets, d]
        rows = rows * acts.view({ -1, 1, 1 });
        at::Tensor pos = active.position.index_select(0, mine);
        for (int64_t t = 0; t < tc.nTargets(ls); ++t) {
            const auto l = static_cast<size_t>(ls + t);
            vectors[l].push_back(rows.select(1, t));
            positions[l].push_back(pos);
            columns[l].push_back(mine);
        }
    }

    const at::TensorOptions longs = at::TensorOptions().dtype(at::kLong).device(model.device());
    for (int64_t l = 0; l < nLayers; ++l) {
        LayerData d;
        d.attnNorm.emplace(FrozenNorm::layer(model, m_ctx.frozen, l, model::NormSite::AttnIn));
        if (mc.postNorms)
            d.attnPost.emplace(FrozenNorm::layer(model, m_ctx.frozen, l, model::NormSite::AttnPost));
        d.mlpNorm = FrozenNorm::transcoderInput(model, m_ctx.frozen, l, tc.config().inputHook);
        const std::string prefix = "layers." + std::to_string(l) + ".";
        d.wv = model.weight(prefix + "attn.v.weight");
        d.wo = model.weight(prefix + "attn.o.weight");
        d.patternT = m_ctx.frozen.layers[static_cast<size_t>(l)].pattern.select(0, 0).transpose(1, 2).contiguous();
        d.skip = tc.skip(l);
        d.encoder = tc.encoder(l);
        d.errors = m_ctx.errors[static_cast<size_t>(l)];

        const auto i = static_cast<size_t>(l);
        at::Tensor vecs = vectors[i].empty() ? at::zeros({ 0, m_dModel }, d.errors.options()) : at::cat(vectors[i]);
        at::Tensor pos = positions[i].empty() ? at::zeros({ 0 }, longs) : at::cat(positions[i]);
        at::Tensor cols = columns[i].empty() ? at::zeros({ 0 }, longs) : at::cat(columns[i]);
        // Slot of each source within its position: its rank among the sources at that position.
        at::Tensor posCpu = pos.cpu();
        const int64_t* p = posCpu.data_ptr<int64_t>();
        std::vector<int64_t> count(static_cast<size_t>(nPos), 0), flat(static_cast<size_t>(pos.numel()));
        for (int64_t k = 0; k < pos.numel(); ++k)
            flat[static_cast<size_t>(k)] = count[static_cast<size_t>(p[k])]++;
        d.slots = std::max<int64_t>(1, *std::max_element(count.begin(), count.end()));
        for (int64_t k = 0; k < pos.numel(); ++k)
            flat[static_cast<size_t>(k)] += p[k] * d.slots;
        at::Tensor flatIdx = at::tensor(flat, at::kLong).to(model.device());
        d.sources = at::zeros({ nPos * d.slots, m_dModel }, d.errors.options());
        d.columns = at::full({ nPos * d.slots }, dummy, longs);
        if (pos.numel() > 0) {
            d.sources.index_copy_(0, flatIdx, vecs);
            d.columns.index_copy_(0, flatIdx, cols);
        }
        d.sources = d.sources.view({ nPos, d.slots, m_dModel });
        d.columns = d.columns.view({ nPos, d.slots });
        m_maxSlots = std::max(m_maxSlots, d.slots);
        m_layers.push_back(std::move(d));
    }
}

int64_t ExplicitPass::maxRows(int64_t prefix) const
{
    const int64_t perRow = explicitRowBytes(m_ctx.model->config(), m_maxSlots, prefix, m_setup.layout.columns());
    return std::max<int64_t>(1, m_setup.memoryBudgetBytes / std::max<int64_t>(perRow, 1));
}

at::Tensor ExplicitPass::attentionTranspose(const LayerData& d, const at::Tensor& gIn, int64_t prefix)
{
    const int64_t rows = gIn.size(0);
    at::Tensor g = d.attnPost ? d.attnPost->backward(gIn, 0) : gIn; // [rows, prefix, d_model]
    // Through W_O to each head's output, arranged [heads, queries, rows * d_head].
    at::Tensor gz = at::matmul(g, d.wo).view({ rows, prefix, m_nHeads, m_dHead });
    gz = gz.permute({ 2, 1, 0, 3 }).reshape({ m_nHeads, prefix, rows * m_dHead });
    // Through the frozen pattern: key k receives sum_q P[q, k] g[q].
    at::Tensor patternT = d.patternT.narrow(1, 0, prefix).narrow(2, 0, prefix);
    at::Tensor gv = at::bmm(patternT, gz); // [heads, keys, rows * d_head]
    // Heads that share a key/value head add up (grouped-query attention).
    const int64_t groups = m_nHeads / m_nKvHeads;
    gv = gv.view({ m_nKvHeads, groups, prefix, rows, m_dHead }).sum(1); // [kv_heads, keys, rows, d_head]
    gv = gv.permute({ 2, 1, 0, 3 }).reshape({ rows, prefix, m_nKvHeads * m_dHead });
    at::Tensor gh = at::matmul(gv, d.wv); // [rows, prefix, d_model]
    flops += 2.0 * rows * prefix
        * (static_cast<double>(m_dModel) * m_nHeads * m_dHead + static_cast<double>(prefix) * m_nHeads * m_dHead
            + static_cast<double>(m_nKvHeads) * m_dHead * m_dModel);
    return d.attnNorm->backward(gh, 0);
}

// The same for gradients that sit at one position per row (a target's read vector, injected at
// this layer): read [k, d_model] at positions [k]. The pattern's row of that query replaces the
// product with the whole pattern, so the cost is linear in the prefix, not quadratic.
at::Tensor ExplicitPass::attentionTransposeAt(
    const LayerData& d, const at::Tensor& read, const at::Tensor& positions, int64_t prefix)
{
    const int64_t k = read.size(0);
    at::Tensor g = d.attnPost ? d.attnPost->backwardAt(read, positions) : read; // [k, d_model]
    at::Tensor gz = at::matmul(g, d.wo).view({ k, m_nHeads, 1, m_dHead });
    // P[h, q = position, key] for keys in the prefix: [k, heads, prefix, 1].
    at::Tensor row = d.patternT.narrow(1, 0, prefix).index_select(2, positions).permute({ 2, 0, 1 }).unsqueeze(-1);
    const int64_t groups = m_nHeads / m_nKvHeads;
    at::Tensor gv = (row * gz).view({ k, m_nKvHeads, groups, prefix, m_dHead }).sum(2); // [k, kv_heads, prefix, d_head]
    gv = gv.permute({ 0, 2, 1, 3 }).reshape({ k, prefix, m_nKvHeads * m_dHead });
    at::Tensor gh = at::matmul(gv, d.wv); // [k, prefix, d_model]
    flops += 2.0 * k
        * (static_cast<double>(m_dModel) * m_nHeads * m_dHead + 0.5 * prefix * m_nHeads * m_dHead
            + static_cast<double>(prefix) * m_nKvHeads * m_dHead * m_dModel);
    return d.attnNorm->backward(gh, 0);
}

at::Tensor ExplicitPass::rows(const std::vector<RowTarget>& targets)
{
    const int64_t n = static_cast<int64_t>(targets.size());
    const int64_t nLayers = m_ctx.nLayers();
    const SourceLayout& layout = m_setup.layout;
    const auto device = m_ctx.model->device();
    int64_t prefix = 0, top = 0;
    bool anyLogit = false;
    for (const auto& t : targets) {
        prefix = std::max(prefix, t.position + 1);
        top = std::max(top, t.layer);
        anyLogit = anyLogit || t.logit >= 0;
    }
    const at::TensorOptions floats = m_ctx.errors[0].options();
    at::Tensor out = at::zeros({ n, layout.columns() + 1 }, floats); // the last column takes the padding
    at::Tensor g = at::zeros({ n, prefix, m_dModel }, floats);

    auto rowsWhere = [&](auto pick) {
        std::vector<int64_t> rowIds, pos, ids;
        for (int64_t r = 0; r < n; ++r) {
            const auto& t = targets[static_cast<size_t>(r)];
            if (pick(t)) {
                rowIds.push_back(r);
                pos.push_back(t.position);
                ids.push_back(t.logit >= 0 ? t.logit : t.active);
            }
        }
        auto toDevice = [&](const std::vector<int64_t>& v) { return at::tensor(v, at::kLong).to(device); };
        return std::make_tuple(toDevice(rowIds), toDevice(pos), toDevice(ids), static_cast<int64_t>(rowIds.size()));
    };

    if (anyLogit) {
        auto [rowIds, pos, ids, k] = rowsWhere([](const RowTarget& t) { return t.logit >= 0; });
        g.index_put_({ rowIds, pos }, m_setup.logitReads.index_select(0, ids), true);
    }
    bool live = anyLogit; // g is nonzero from here down
    const int64_t held = m_ctx.heldPositions;
    for (int64_t l = std::min(top, nLayers - 1); l >= 0; --l) {
        const LayerData& d = m_layers[static_cast<size_t>(l)];
        at::Tensor gmid;
        if (live) {
            // 1. Sources written to this layer's MLP output.
            out.narrow(1, layout.errorColumn(l, 0), prefix).add_((g * d.errors.narrow(0, 0, prefix)).sum(-1));
            at::Tensor products = at::bmm(g.transpose(0, 1), d.sources.narrow(0, 0, prefix).transpose(1, 2));
            out.index_add_(1, d.columns.narrow(0, 0, prefix).reshape({ -1 }),
                products.permute({ 1, 0, 2 }).reshape({ n, prefix * d.slots }));
            flops += 2.0 * n * prefix * static_cast<double>(d.slots + 1) * m_dModel;
            // 2. The skip connection (none at held positions: their MLP outputs are constants).
            gmid = g;
            if (d.skip.defined()) {
                at::Tensor gin = at::matmul(g, d.skip);
                if (held > 0)
                    gin.narrow(1, 0, std::min(held, prefix)).zero_();
                gmid = g + (d.mlpNorm ? d.mlpNorm->backward(gin, 0) : gin);
                flops += 2.0 * n * prefix * static_cast<double>(m_dModel) * m_dModel;
            }
        }
        // 3 and 4. Attention and the residual connection for the gradient carried from above;
        // targets reading at this layer enter after it, through the one-position transpose.
        at::Tensor next;
        if (live)
            next = gmid + attentionTranspose(d, gmid, prefix);
        auto [rowIds, pos, ids, k] = rowsWhere([&](const RowTarget& t) { return t.logit < 0 && t.layer == l; });
        if (k > 0) {
            if (!live)
                next = at::zeros({ n, prefix, m_dModel }, floats);
            at::Tensor read = d.encoder.index_select(0, m_ctx.active.feature.index_select(0, ids));
            if (d.mlpNorm)
                read = d.mlpNorm->backwardAt(read, pos);
            next.index_put_({ rowIds, pos }, read, true);
            next.index_add_(0, rowIds, attentionTransposeAt(d, read, pos, prefix));
            live = true;
        }
        if (live)
            g = next;
    }
    if (live)
        out.narrow(1, layout.embeddingColumn(0), prefix).add_((g * m_ctx.tokenEmbeddings.narrow(0, 0, prefix)).sum(-1));
    return out.narrow(1, 0, layout.columns());
}

} // namespace

int64_t explicitRowBytes(const model::ModelConfig& config, int64_t slots, int64_t prefix, int64_t columns)
{
    // The gradient and its copies through one layer, the contraction's products and the output row.
    return 4 * (prefix * (8 * config.dModel + 3 * config.nHeads * config.dHead + slots) + columns);
}

std::unique_ptr<RowPass> makeExplicitPass(const PassSetup& setup)
{
    return std::make_unique<ExplicitPass>(setup);
}

} // namespace cs::attribution
