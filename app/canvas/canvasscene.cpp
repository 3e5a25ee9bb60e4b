#include "canvasscene.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace cs::app {

int CanvasScene::slotOf(const std::string& id) const
{
    for (size_t i = 0; i < nodes.size(); ++i) {
        if (nodes[i].id == id)
            return static_cast<int>(i);
    }
    return -1;
}

namespace {

// Token text for captions and tooltips: newlines and tabs made visible, the rest as is.
QString tokenDisplay(const std::string& token)
{
    QString text = QString::fromStdString(token);
    text.replace(QLatin1Char('\n'), QStringLiteral("\u23ce"));
    text.replace(QLatin1Char('\t'), QStringLiteral("\u21e5"));
    return text;
}

QString quoted(const QString& text)
{
    return QStringLiteral("\u201c") + text + QStringLiteral("\u201d");
}

QString promptToken(const cs::graph::Graph& graph, int64_t position)
{
    const auto& tokens = graph.metadata.promptTokens;
    if (position >= 0 && position < static_cast<int64_t>(tokens.size()))
        return tokenDisplay(tokens[static_cast<size_t>(position)]);
    return {};
}

QRgb scaleAlpha(QRgb color, double factor)
{
    return qRgba(qRed(color), qGreen(color), qBlue(color),
        std::clamp(static_cast<int>(std::lround(qAlpha(color) * factor)), 0, 255));
}

} // namespace

QRectF sceneBounds(const std::vector<CanvasNode>& nodes, double margin)
{
    if (nodes.empty())
        return QRectF(-margin, -margin, 2 * margin, 2 * margin);
    double x0 = nodes[0].x, x1 = nodes[0].x, y0 = nodes[0].y, y1 = nodes[0].y;
    for (const CanvasNode& n : nodes) {
        // RoundedBox is the widest shape: its half width is 1.3 radius (canvasgeometry.cpp).
        const double r = n.radius * 1.3;
        x0 = std::min(x0, n.x - r);
        x1 = std::max(x1, n.x + r);
        y0 = std::min(y0, n.y - r);
        y1 = std::max(y1, n.y + r);
    }
    return QRectF(x0 - margin, y0 - margin, (x1 - x0) + 2 * margin, (y1 - y0) + 2 * margin);
}

void styleEdges(std::vector<CanvasEdge>& edges, size_t nodeCount, const SceneStyle& style)
{
    // The largest |w| among each target's inputs: widths are shares of it.
    std::vector<float> maxIn(nodeCount, 0.0f);
    for (const CanvasEdge& e : edges)
        maxIn[static_cast<size_t>(e.target)] = std::max(maxIn[static_cast<size_t>(e.target)], std::abs(e.weight));
    std::vector<float> share(edges.size());
    for (size_t i = 0; i < edges.size(); ++i) {
        CanvasEdge& e = edges[i];
        const float m = maxIn[static_cast<size_t>(e.target)];
        share[i] = m > 0 ? std::abs(e.weight) / m : 0.0f;
        e.width = static_cast<float>(style.minEdgeWidth + share[i] * (style.maxEdgeWidth - style.minEdgeWidth));
        e.color = e.weight < 0 ? style.negativeEdge : style.positiveEdge;
    }
    // Weakest first, so that the strong edges are drawn over the weak ones.
    std::vector<size_t> order(edges.size());
    for (size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return share[a] < share[b]; });
    std::vector<CanvasEdge> sorted;
    sorted.reserve(edges.size());
    for (size_t i : order)
        sorted.push_back(edges[i]);
    edges.swap(sorted);
}

std::shared_ptr<const CanvasScene> buildGraphScene(const cs::graph::Graph& graph, const cs::graph::PruneResult& pruned,
    const ExplorerState& state, const SceneStyle& style, const std::vector<bool>* searchHits)
{
    using cs::graph::NodeKind;
    auto scene = std::make_shared<CanvasScene>();
    const int64_t n = graph.size();
    const std::unordered_set<std::string> hidden(state.hidden.begin(), state.hidden.end());
    const std::unordered_set<std::string> pinned(state.pinned.begin(), state.pinned.end());

    // Nodes an enabled intervention acts on, directly or through a supernode.
    std::unordered_set<std::string> intervened;
    for (const Intervention& iv : state.interventions) {
        if (!iv.enabled)
            continue;
        const auto nodes = interventionNodes(state, iv);
        intervened.insert(nodes.begin(), nodes.end());
    }

    // Influence order within a cell: the cumulative share grows as influence falls.
    std::vector<float> cumulative = pruned.cumulativeInfluence;
    const bool hasInfluence = static_cast<int64_t>(cumulative.size()) == n;
    if (!hasInfluence)
        cumulative.assign(static_cast<size_t>(n), 0.0f);

    // The shown nodes, in graph order; slotOf[i] = the scene slot or -1.
    std::vector<int32_t> slotOf(static_cast<size_t>(n), -1);
    std::vector<int64_t> shown;
    for (int64_t i = 0; i < n; ++i) {
        if (static_cast<size_t>(i) < pruned.nodeMask.size() && !pruned.nodeMask[static_cast<size_t>(i)])
            continue;
        std::string id = cs::graph::nodeId(graph, i);
        if (hidden.count(id))
            continue;
        slotOf[static_cast<size_t>(i)] = static_cast<int32_t>(shown.size());
        shown.push_back(i);
        CanvasNode node;
        node.graphIndex = i;
        node.id = std::move(id);
        scene->nodes.push_back(std::move(node));
    }

    // Rows: row = layer + 1 (embeddings at layer -1 on row 0, logits at n_layers on the top row).
    const int64_t nLayers = graph.nLayers();
    const int64_t topRow = nLayers + 1;
    const int64_t nPos = std::max<int64_t>(graph.nPositions(), 1);
    std::map<std::pair<int64_t, int64_t>, std::vector<int64_t>> cells; // (row, position) -> graph indices
    for (int64_t i : shown) {
        const auto& gn = graph.nodes[static_cast<size_t>(i)];
        const int64_t row = std::clamp<int64_t>(gn.layer + 1, 0, topRow);
        const int64_t pos = std::clamp<int64_t>(gn.position, 0, nPos - 1);
        cells[{ row, pos }].push_back(i);
    }
    // Columns: as wide as the most crowded cell's widest sub-row and the token's label; a
    // position showing nothing but its embedding may collapse.
    const size_t perRow = static_cast<size_t>(std::max(1, style.maxPerRow));
    std::vector<size_t> crowd(static_cast<size_t>(nPos), 0);
    std::vector<bool> busy(static_cast<size_t>(nPos), false); // a node other than the embedding
    std::vector<size_t> subRows(static_cast<size_t>(topRow) + 1, 1);
    for (const auto& [key, members] : cells) {
        crowd[static_cast<size_t>(key.second)] = std::max(crowd[static_cast<size_t>(key.second)], members.size());
        if (key.first > 0)
            busy[static_cast<size_t>(key.second)] = true;
        subRows[static_cast<size_t>(key.first)]
            = std::max(subRows[static_cast<size_t>(key.first)], (members.size() + perRow - 1) / perRow);
    }
    std::vector<QString> tokenLabels(static_cast<size_t>(nPos));
    std::vector<double> columnLeft(static_cast<size_t>(nPos) + 1, 0.0);
    for (int64_t p = 0; p < nPos; ++p) {
        tokenLabels[static_cast<size_t>(p)] = promptToken(graph, p);
        const double labelWidth
            = static_cast<double>(std::min<qsizetype>(tokenLabels[static_cast<size_t>(p)].size(), style.maxLabelChars))
                * style.charWidth
            + 8;
        const double nodesWidth
            = static_cast<double>(std::min(crowd[static_cast<size_t>(p)], perRow)) * style.nodeSpacing
            + style.columnPadding;
        const bool labelled = nPos <= style.labelledPositions;
        double width = std::max({ labelled ? style.minColumnWidth : style.nodeSpacing + style.columnPadding, nodesWidth,
            labelled ? labelWidth : 0.0 });
        if (style.collapseEmptyPositions && !busy[static_cast<size_t>(p)])
            width = style.collapsedColumnWidth;
        columnLeft[static_cast<size_t>(p) + 1] = columnLeft[static_cast<size_t>(p)] + width;
    }
    // Rows: tall enough for their sub-rows, then spread to the view's aspect ratio.
    std::vector<double> rowHeight(static_cast<size_t>(topRow) + 1);
    double total = 0;
    for (int64_t r = 0; r <= topRow; ++r) {
        rowHeight[static_cast<size_t>(r)] = std::max(
            style.rowHeight, static_cast<double>(subRows[static_cast<size_t>(r)] - 1) * style.subRowHeight + 40);
        total += rowHeight[static_cast<size_t>(r)];
    }
    if (style.viewAspect > 0) {
        const double wanted = style.viewAspect * (columnLeft.back() + 2 * style.margin) - 2 * style.margin;
        if (wanted > total) {
            for (double& h : rowHeight)
                h *= wanted / total;
            total = wanted;
        }
    }
    // Row r's centre: the top row (logits) first, embeddings at the bottom.
    std::vector<double> rowY(static_cast<size_t>(topRow) + 1);
    double y = 0;
    for (int64_t r = topRow; r >= 0; --r) {
        rowY[static_cast<size_t>(r)] = y + 0.5 * rowHeight[static_cast<size_t>(r)];
        y += rowHeight[static_cast<size_t>(r)];
    }
    for (auto& [key, members] : cells) {
        std::sort(members.begin(), members.end(), [&](int64_t a, int64_t b) {
            const float ca = cumulative[static_cast<size_t>(a)], cb = cumulative[static_cast<size_t>(b)];
            if (ca != cb)
                return ca < cb;
            return a < b;
        });
        const size_t p = static_cast<size_t>(key.second);
        const double mid = 0.5 * (columnLeft[p] + columnLeft[p + 1]);
        const size_t lines = (members.size() + perRow - 1) / perRow;
        for (size_t j = 0; j < members.size(); ++j) {
            // Sub-rows of at most perRow nodes, the most influential first, centred on the row.
            const size_t line = j / perRow;
            const size_t inLine = line + 1 < lines ? perRow : members.size() - line * perRow;
            const double k = static_cast<double>(inLine);
            CanvasNode& node = scene->nodes[static_cast<size_t>(slotOf[static_cast<size_t>(members[j])])];
            node.x = mid + (static_cast<double>(j % perRow) - 0.5 * (k - 1)) * style.nodeSpacing;
            node.y = rowY[static_cast<size_t>(key.first)]
                + (static_cast<double>(line) - 0.5 * static_cast<double>(lines - 1)) * style.subRowHeight;
        }
    }
    for (int64_t p = 0; p < nPos; ++p)
        scene->columns.push_back({ 0.5 * (columnLeft[static_cast<size_t>(p)] + columnLeft[static_cast<size_t>(p) + 1]),
            0.5 * (columnLeft[static_cast<size_t>(p) + 1] - columnLeft[static_cast<size_t>(p)]),
            tokenLabels[static_cast<size_t>(p)] });
    for (int64_t r = 0; r <= topRow; ++r)
        scene->rows.push_back({ rowY[static_cast<size_t>(r)], 0.5 * rowHeight[static_cast<size_t>(r)],
            r == 0            ? QStringLiteral("Emb")
                : r == topRow ? QStringLiteral("Out")
                              : QStringLiteral("L%1").arg(r - 1) });

    // Edges kept by the prune result between shown nodes.
    if (pruned.fits(graph) && n > 0) {
        for (int64_t t : shown) {
            const cs::graph::Adjacency::Row row = graph.adjacency.row(t);
            for (int64_t k = 0; k < row.size; ++k) {
                const int64_t s = row.columns[k];
                if (!pruned.edgeMask[static_cast<size_t>(row.entry(k))] || slotOf[static_cast<size_t>(s)] < 0 || s == t)
                    continue;
                CanvasEdge e;
                e.source = slotOf[static_cast<size_t>(s)];
                e.target = slotOf[static_cast<size_t>(t)];
                e.weight = row.values[k];
                scene->edges.push_back(e);
            }
        }
    }
    styleEdges(scene->edges, scene->nodes.size(), style);

    // The selected node's neighbours stay bright; the rest dim.
    const int selectedSlot = state.selected.empty() ? -1 : scene->slotOf(state.selected);
    std::vector<bool> nearSelected(scene->nodes.size(), selectedSlot < 0);
    if (selectedSlot >= 0) {
        nearSelected[static_cast<size_t>(selectedSlot)] = true;
        for (const CanvasEdge& e : scene->edges) {
            if (e.source == selectedSlot)
                nearSelected[static_cast<size_t>(e.target)] = true;
            if (e.target == selectedSlot)
                nearSelected[static_cast<size_t>(e.source)] = true;
        }
    }

    // Kind, look, flags, captions, tooltips.
    for (size_t slot = 0; slot < scene->nodes.size(); ++slot) {
        CanvasNode& node = scene->nodes[slot];
        const auto& gn = graph.nodes[static_cast<size_t>(node.graphIndex)];
        node.radius = style.nodeRadius;
        if (static_cast<int>(slot) == selectedSlot)
            node.flags |= NodeSelected;
        if (pinned.count(node.id))
            node.flags |= NodePinned;
        if (intervened.count(node.id))
            node.flags |= NodeIntervened;
        if (!nearSelected[slot])
            node.flags |= NodeDimmed;
        if (searchHits && static_cast<size_t>(node.graphIndex) < searchHits->size()
            && (*searchHits)[static_cast<size_t>(node.graphIndex)])
            node.flags |= NodeSearchHit;

        const QString posToken = promptToken(graph, gn.position);
        const QString where = QStringLiteral("position %1").arg(gn.position)
            + (posToken.isEmpty() ? QString() : QStringLiteral(" ") + quoted(posToken));
        const QString influence = hasInfluence ? QStringLiteral("\ninfluence (cumulative share) %1")
                                                     .arg(cumulative[static_cast<size_t>(node.graphIndex)], 0, 'g', 3)
                                               : QString();
        switch (gn.kind) {
        case NodeKind::Feature: {
            node.shape = NodeShape::Circle;
            node.fill = style.featureFill;
            QString label;
            const auto user = state.labels.find(labelKey(graph.metadata.basis, gn.layer, gn.feature));
            if (user != state.labels.end())
                label = QString::fromStdString(user->second);
            else if (style.labelFunction)
                label = style.labelFunction(gn.layer, gn.feature);
            if (node.flags & (NodeSelected | NodePinned))
                node.caption = label;
            QString noun = QString::fromStdString(unitNoun(graph.metadata.basis));
            noun[0] = noun[0].toUpper();
            node.tooltip = QStringLiteral("%1 L%2 #%3, %4\nactivation %5")
                               .arg(noun)
                               .arg(gn.layer)
                               .arg(gn.feature)
                               .arg(where)
                               .arg(gn.activation, 0, 'g', 4)
                + influence + (label.isEmpty() ? QString() : QStringLiteral("\n") + label);
            break;
        }
        case NodeKind::Error:
            node.shape = NodeShape::Diamond;
            node.fill = style.errorFill;
            node.tooltip = (graph.metadata.basis.empty() ? QStringLiteral("Error L%1, %2")
                                                         : QStringLiteral("Other units L%1 (not nodes), %2"))
                               .arg(gn.layer)
                               .arg(where)
                + influence;
            break;
        case NodeKind::Embedding:
            node.shape = NodeShape::Square;
            node.fill = style.embeddingFill;
            // The token axis names it; a caption only when selected or pinned.
            if (node.flags & (NodeSelected | NodePinned))
                node.caption = tokenDisplay(gn.token);
            node.tooltip
                = QStringLiteral("Embedding %1, position %2").arg(quoted(tokenDisplay(gn.token))).arg(gn.position)
                + influence;
            break;
        case NodeKind::Logit: {
            node.shape = NodeShape::Square;
            node.fill = style.logitFill;
            const QString token = tokenDisplay(gn.token);
            node.caption = QStringLiteral("%1 %2%").arg(token).arg(100.0 * gn.tokenProb, 0, 'f', 1);
            node.tooltip
                = QStringLiteral("Logit %1, p = %2").arg(quoted(token)).arg(gn.tokenProb, 0, 'g', 4) + influence;
            break;
        }
        }
        if (node.flags & NodeDimmed)
            node.fill = scaleAlpha(node.fill, style.dimAlpha);
        node.tooltip = QString::fromStdString(node.id) + QStringLiteral("\n") + node.tooltip;
    }
    scene->bounds = sceneBounds(scene->nodes, style.margin);
    scene->look = style.look;
    return scene;
}

std::shared_ptr<const CanvasScene> buildLayoutScene(
    std::vector<CanvasNode> nodes, const std::vector<LayoutEdge>& edges, const SceneStyle& style)
{
    auto scene = std::make_shared<CanvasScene>();
    for (CanvasNode& node : nodes) {
        if (node.radius <= 0)
            node.radius = node.shape == NodeShape::RoundedBox ? style.supernodeRadius : style.nodeRadius;
        if (node.fill == 0) {
            switch (node.shape) {
            case NodeShape::Circle:
                node.fill = style.featureFill;
                break;
            case NodeShape::Diamond:
                node.fill = style.errorFill;
                break;
            case NodeShape::Square:
                node.fill = style.embeddingFill;
                break;
            case NodeShape::RoundedBox:
                node.fill = style.supernodeFill;
                break;
            }
            if (node.flags & NodeDimmed)
                node.fill = scaleAlpha(node.fill, style.dimAlpha);
        }
    }
    scene->nodes = std::move(nodes);
    const int32_t count = static_cast<int32_t>(scene->nodes.size());
    for (const LayoutEdge& le : edges) {
        if (le.source < 0 || le.source >= count || le.target < 0 || le.target >= count || le.weight == 0.0f)
            continue;
        CanvasEdge e;
        e.source = le.source;
        e.target = le.target;
        e.weight = le.weight;
        scene->edges.push_back(e);
    }
    styleEdges(scene->edges, scene->nodes.size(), style);
    scene->bounds = sceneBounds(scene->nodes, style.margin);
    scene->look = style.look;
    return scene;
}

std::shared_ptr<const CanvasScene> makeSyntheticScene(int nodeCount, int edgeCount, uint32_t seed)
{
    SceneStyle style;
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    nodeCount = std::max(nodeCount, 0);
    // Rows as a traced graph's layers: about 25 nodes per row per row, at most 30 rows.
    const int rows = std::clamp(static_cast<int>(std::sqrt(nodeCount / 25.0)), 2, 30);
    const int perRow = std::max(1, (nodeCount + rows - 1) / rows);
    std::vector<CanvasNode> nodes(static_cast<size_t>(nodeCount));
    for (int i = 0; i < nodeCount; ++i) {
        CanvasNode& node = nodes[static_cast<size_t>(i)];
        const int row = i / perRow;
        const int col = i % perRow;
        node.id = "syn_" + std::to_string(i);
        node.x = col * style.nodeSpacing * 1.5 + (unit(rng) - 0.5) * style.nodeSpacing * 0.4;
        node.y = (rows - 1 - row) * style.rowHeight + (unit(rng) - 0.5) * style.rowHeight * 0.3;
        const double kind = unit(rng);
        node.shape = kind < 0.85 ? NodeShape::Circle : kind < 0.95 ? NodeShape::Diamond : NodeShape::Square;
        if (i % 97 == 0)
            node.flags |= NodePinned;
        node.tooltip = QStringLiteral("synthetic node %1, row %2").arg(i).arg(row);
        if (i % 211 == 0)
            node.caption = QStringLiteral("node %1").arg(i);
    }
    std::vector<LayoutEdge> edges;
    if (nodeCount > perRow) {
        edges.reserve(static_cast<size_t>(std::max(edgeCount, 0)));
        std::normal_distribution<double> normal(0.0, 1.0);
        const int sourceCount = nodeCount - perRow; // nodes below the top row
        for (int k = 0; k < edgeCount; ++k) {
            const int s = static_cast<int>(unit(rng) * sourceCount) % sourceCount;
            const int row = s / perRow;
            const int targetRow = std::min(rows - 1, row + 1 + static_cast<int>(unit(rng) * 3));
            // A target near the source's column, so edges look as a traced graph's do.
            const int col
                = std::clamp(s % perRow + static_cast<int>(std::lround((unit(rng) - 0.5) * 40)), 0, perRow - 1);
            const int t = std::min(nodeCount - 1, targetRow * perRow + col);
            if (t == s)
                continue;
            float w = static_cast<float>(normal(rng));
            if (w == 0.0f)
                w = 1e-3f;
            edges.push_back({ s, t, w });
        }
    }
    return buildLayoutScene(std::move(nodes), edges, style);
}

} // namespace cs::app
