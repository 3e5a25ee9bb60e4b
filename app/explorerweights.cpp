#include "explorerweights.h"

#include "explorercontroller.h"
#include "explorerengine.h"

#include <cs/colormap.h>
#include <cs/error.h>

#include <QPointer>

#include <algorithm>
#include <array>
#include <cmath>

namespace cs::app {

namespace {

QString qs(const std::string& s)
{
    return QString::fromStdString(s);
}

QString featureTitle(int64_t layer, int64_t feature)
{
    return QStringLiteral("L%1 #%2").arg(layer).arg(feature);
}

// What a finding's structure says of the feature, for people: "sum ends in 5".
QString structureText(const cs::sweep::Finding& f)
{
    const qint64 g = f.group;
    switch (f.structure) {
    case cs::sweep::Structure::AOnes:
        return QStringLiteral("a ends in %1").arg(g);
    case cs::sweep::Structure::BOnes:
        return QStringLiteral("b ends in %1").arg(g);
    case cs::sweep::Structure::SumOnes:
        return QStringLiteral("sum ends in %1").arg(g);
    case cs::sweep::Structure::SumTens:
        return QStringLiteral("sum in %1..%2").arg(g * 10).arg(g * 10 + 9);
    case cs::sweep::Structure::ATens:
        return QStringLiteral("a in %1..%2").arg(g * 10).arg(g * 10 + 9);
    case cs::sweep::Structure::BTens:
        return QStringLiteral("b in %1..%2").arg(g * 10).arg(g * 10 + 9);
    }
    return {};
}

QString rangeText(const std::vector<int64_t>& values)
{
    if (values.empty())
        return {};
    bool consecutive = true;
    for (size_t i = 1; i < values.size() && consecutive; ++i)
        consecutive = values[i] == values[i - 1] + 1;
    if (consecutive)
        return QStringLiteral("%1..%2").arg(values.front()).arg(values.back());
    return QStringLiteral("%1 values").arg(values.size());
}

} // namespace

QRgb viridis(double t)
{
    const auto rgb = cs::viridis(t);
    return qRgb(rgb[0], rgb[1], rgb[2]);
}

// --- PartnerListModel

PartnerListModel::PartnerListModel(QObject* parent)
    : QAbstractListModel(parent)
{
}

void PartnerListModel::setRows(std::vector<Row> rows, cs::weights::Kind kind)
{
    beginResetModel();
    m_rows = std::move(rows);
    m_kind = kind;
    m_maxAbs = 0;
    for (const Row& r : m_rows)
        m_maxAbs = std::max(m_maxAbs, std::abs(r.partner.weight(kind)));
    endResetModel();
    Q_EMIT countChanged();
}

int PartnerListModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : int(m_rows.size());
}

QVariant PartnerListModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const Row& row = m_rows[size_t(index.row())];
    const cs::weights::Partner& p = row.partner;
    switch (role) {
    case Qt::DisplayRole:
    case TitleRole:
        return featureTitle(p.layer, p.feature);
    case LayerRole:
        return int(p.layer);
    case FeatureRole:
        return int(p.feature);
    case CaptionRole:
        return row.caption;
    case WeightRole:
        return p.weight(m_kind);
    case FractionRole:
        return m_maxAbs > 0 ? p.weight(m_kind) / m_maxAbs : 0.0;
    case VirtualRole:
        return p.virtualWeight;
    case EraRole:
        return p.era;
    case TweraRole:
        return p.twera;
    case CoactivationsRole:
        return p.statistics ? qint64(p.coactivations) : qint64(-1);
    default:
        return {};
    }
}

QHash<int, QByteArray> PartnerListModel::roleNames() const
{
    return {
        { LayerRole, "partnerLayer" },
        { FeatureRole, "partnerFeature" },
        { TitleRole, "title" },
        { CaptionRole, "caption" },
        { WeightRole, "weight" },
        { FractionRole, "fraction" },
        { VirtualRole, "virtualWeight" },
        { EraRole, "era" },
        { TweraRole, "twera" },
        { CoactivationsRole, "coactivations" },
    };
}

// --- ExplorerWeights

ExplorerWeights::ExplorerWeights(ExplorerController& core)
    : QObject(&core)
    , m_core(core)
{
    m_upstream = new PartnerListModel(this);
    m_downstream = new PartnerListModel(this);
}

ExplorerWeights::~ExplorerWeights()
{
    if (m_sweepCancel)
        m_sweepCancel->store(true); // the worker stops it after its batch and drops the result
}

QString ExplorerWeights::kind() const
{
    return QString::fromLatin1(cs::weights::kindName(m_kind));
}

QString ExplorerWeights::shownKind() const
{
    return QString::fromLatin1(cs::weights::kindName(m_shownKind));
}

void ExplorerWeights::setKind(const QString& kind)
{
    cs::weights::Kind next;
    try {
        next = cs::weights::kindFromName(kind.toStdString());
    } catch (const cs::Error& e) {
        m_partnersText = qs(e.what());
        Q_EMIT partnersChanged();
        return;
    }
    if (next == m_kind)
        return;
    m_kind = next;
    Q_EMIT kindChanged();
    requestPartners();
}

void ExplorerWeights::setFeature(int64_t layer, int64_t feature)
{
    if (layer == m_layer && feature == m_feature)
        return;
    m_layer = layer;
    m_feature = feature;
    requestPartners();
    requestTokenPlot();
    updateOperandPlot();
}

void ExplorerWeights::resourcesReloaded()
{
    // Another set: the sweep's features and the partners were the old set's.
    cancelSweep();
    m_sweep.reset();
    m_rank.clear();
    m_findings.clear();
    Q_EMIT sweepChanged();
    updateOperandPlot();
    requestPartners();
    requestTokenPlot();
}

void ExplorerWeights::refreshCaptions()
{
    const auto relabel = [this](PartnerListModel* model) {
        std::vector<PartnerListModel::Row> rows = model->rows();
        bool changed = false;
        for (auto& row : rows) {
            const auto& labels = m_core.m_state.labels;
            if (auto it = labels.find(featureKey(row.partner.layer, row.partner.feature));
                it != labels.end() && qs(it->second) != row.caption) {
                row.caption = qs(it->second);
                changed = true;
            }
        }
        if (changed)
            model->setRows(std::move(rows), m_shownKind);
    };
    relabel(m_upstream);
    relabel(m_downstream);
}

void ExplorerWeights::requestPartners()
{
    if (m_layer < 0 || !m_core.m_ready) {
        m_upstream->setRows({}, m_kind);
        m_downstream->setRows({}, m_kind);
        m_upCoactivating = m_upKept = m_downCoactivating = m_downKept = -1;
        m_partnersText.clear();
        m_loadingPartners = false;
        Q_EMIT partnersChanged();
        return;
    }
    auto resources = m_core.m_resources;
    const int64_t layer = m_layer, feature = m_feature;
    const cs::weights::Kind kind = m_kind;
    m_loadingPartners = true;
    Q_EMIT partnersChanged();
    m_core.m_worker.request<PartnerLists>(
        QStringLiteral("explorer-partners"),
        [resources, layer, feature, kind](EngineState&) {
            return std::make_shared<const PartnerLists>(
                featurePartners(*resources, layer, feature, kind, kTopPartners));
        },
        [this, kind](std::shared_ptr<const PartnerLists> lists) {
            m_loadingPartners = false;
            m_shownKind = lists->kind;
            m_statistics = lists->statistics;
            m_partnersMs = lists->ms;
            const auto rows = [this](const cs::weights::Partners& side, const std::vector<std::string>& captions) {
                std::vector<PartnerListModel::Row> out;
                for (size_t i = 0; i < side.partners.size(); ++i) {
                    const auto& p = side.partners[i];
                    const auto& labels = m_core.m_state.labels;
                    const auto it = labels.find(featureKey(p.layer, p.feature));
                    out.push_back({ p, it != labels.end() ? qs(it->second) : qs(captions[i]) });
                }
                return out;
            };
            m_upstream->setRows(rows(lists->up, lists->upCaptions), lists->kind);
            m_downstream->setRows(rows(lists->down, lists->downCaptions), lists->kind);
            m_upCoactivating = lists->up.coactivating;
            m_upKept = lists->up.kept;
            m_downCoactivating = lists->down.coactivating;
            m_downKept = lists->down.kept;
            m_partnersText = lists->statistics || kind == cs::weights::Kind::Virtual
                ? QString()
                : QStringLiteral("This feature store has no co-activation statistics, which ERA and TWERA need "
                                 "(build the store again with circuitscope-cli features): ranked by virtual weight");
            Q_EMIT partnersChanged();
        },
        [this](const QString& message) {
            m_loadingPartners = false;
            m_upstream->setRows({}, m_kind);
            m_downstream->setRows({}, m_kind);
            m_partnersText = message;
            Q_EMIT partnersChanged();
        });
}

void ExplorerWeights::setWeightTokens(const QString& tokens)
{
    m_tokensChosen = true;
    if (tokens == m_weightTokens)
        return;
    m_weightTokens = tokens;
    Q_EMIT tokenPlotChanged();
    requestTokenPlot();
}

void ExplorerWeights::requestTokenPlot()
{
    if (m_layer < 0 || !m_core.m_ready) {
        m_tokenRows.clear();
        m_tokenPlotText.clear();
        Q_EMIT tokenPlotChanged();
        return;
    }
    auto resources = m_core.m_resources;
    const int64_t layer = m_layer, feature = m_feature;
    const bool chooseDefault = !m_tokensChosen;
    const std::string given = m_weightTokens.toStdString();
    struct Plot {
        std::string tokens; // the list plotted (the default when none was chosen)
        std::vector<TokenWeight> weights;
    };
    m_core.m_worker.request<Plot>(
        QStringLiteral("explorer-token-plot"),
        [resources, layer, feature, chooseDefault, given](EngineState&) {
            auto plot = std::make_shared<Plot>();
            plot->tokens = chooseDefault ? defaultWeightTokens(*resources) : given;
            plot->weights = tokenWeights(*resources, layer, feature, splitTokens(plot->tokens));
            return std::shared_ptr<const Plot>(plot);
        },
        [this, chooseDefault](std::shared_ptr<const Plot> plot) {
            if (chooseDefault && !m_tokensChosen)
                m_weightTokens = qs(plot->tokens);
            m_tokenRows.clear();
            m_tokenInputMax = m_tokenOutputMax = 0;
            QStringList split;
            for (const TokenWeight& w : plot->weights) {
                const bool valid = w.pieces == 1;
                if (valid) {
                    m_tokenInputMax = std::max(m_tokenInputMax, std::abs(w.input));
                    m_tokenOutputMax = std::max(m_tokenOutputMax, std::abs(w.output));
                } else {
                    split << QStringLiteral("“%1”").arg(qs(w.token));
                }
                m_tokenRows.append(QVariantMap {
                    { QStringLiteral("token"), qs(w.token) },
                    { QStringLiteral("valid"), valid },
                    { QStringLiteral("message"),
                        valid               ? QString()
                            : w.pieces == 0 ? QStringLiteral("no token")
                                            : QStringLiteral("%1 tokens, not one").arg(w.pieces) },
                    { QStringLiteral("id"), qint64(w.id) },
                    { QStringLiteral("input"), w.input },
                    { QStringLiteral("output"), w.output },
                });
            }
            m_tokenPlotText = !split.isEmpty()
                ? QStringLiteral("%1 %2 not a single token of this model (a leading space is part of a token)")
                      .arg(split.join(QStringLiteral(", ")), split.size() == 1 ? "is" : "are")
                : plot->weights.empty() ? QStringLiteral("Name tokens separated by |, e.g. \" 0| 1| 2\"")
                                        : QString();
            Q_EMIT tokenPlotChanged();
        },
        [this](const QString& message) {
            m_tokenRows.clear();
            m_tokenPlotText = message;
            Q_EMIT tokenPlotChanged();
        });
}

std::vector<int64_t> ExplorerWeights::parseRange(const QString& text, QString& error)
{
    std::vector<int64_t> values;
    const QString t = text.trimmed();
    bool okA = false, okB = false;
    if (const int dots = t.indexOf(QLatin1String("..")); dots >= 0) {
        const qint64 from = t.left(dots).trimmed().toLongLong(&okA);
        const qint64 to = t.mid(dots + 2).trimmed().toLongLong(&okB);
        if (!okA || !okB) {
            error = QStringLiteral("“%1” is not a range: write FROM..TO, e.g. 0..99").arg(text);
            return {};
        }
        if (to < from) {
            error = QStringLiteral("the range %1 is empty: FROM..TO needs TO >= FROM").arg(t);
            return {};
        }
        // Past kMaxValues the caller cuts the list; do not build millions of values first.
        for (qint64 v = from; v <= to && qint64(values.size()) <= kMaxValues; ++v)
            values.push_back(v);
        return values;
    }
    for (const QString& part : t.split(QLatin1Char(','), Qt::SkipEmptyParts)) {
        const qint64 v = part.trimmed().toLongLong(&okA);
        if (!okA) {
            error = QStringLiteral("“%1” is not a number: write FROM..TO or numbers separated by commas").arg(part);
            return {};
        }
        values.push_back(v);
    }
    if (values.empty())
        error = QStringLiteral("the range is empty: write FROM..TO (e.g. 0..99) or numbers separated by commas");
    return values;
}

void ExplorerWeights::startSweep(
    const QString& templateText, const QString& aRange, const QString& bRange, int position)
{
    const auto refuse = [this](const QString& why) {
        m_sweepText = why;
        Q_EMIT sweepChanged();
    };
    if (!m_core.m_ready)
        return refuse(QStringLiteral("Open a model with a transcoder set first"));
    if (!templateText.contains(QLatin1String("{a}")) || !templateText.contains(QLatin1String("{b}")))
        return refuse(QStringLiteral("The template needs both {a} and {b}, e.g. “calc: {a}+{b}=”"));
    QString error;
    std::vector<int64_t> a = parseRange(aRange, error);
    if (a.empty())
        return refuse(QStringLiteral("a: %1").arg(error));
    std::vector<int64_t> b = parseRange(bRange, error);
    if (b.empty())
        return refuse(QStringLiteral("b: %1").arg(error));
    // A huge grid is cut to what the window keeps, and the text says so.
    QString capped;
    if (int64_t(a.size()) > kMaxValues || int64_t(b.size()) > kMaxValues
        || int64_t(a.size() * b.size()) > kMaxPrompts) {
        a.resize(std::min<size_t>(a.size(), size_t(kMaxValues)));
        b.resize(std::min<size_t>(b.size(), size_t(std::min(kMaxValues, kMaxPrompts / int64_t(a.size())))));
        capped = QStringLiteral(" · capped to a %1 × b %2 (the window runs at most %3 values each, %4 prompts)")
                     .arg(rangeText(a), rangeText(b))
                     .arg(kMaxValues)
                     .arg(kMaxPrompts);
    }
    if (m_sweepCancel)
        m_sweepCancel->store(true); // the newer sweep replaces it
    auto cancel = std::make_shared<std::atomic<bool>>(false);
    m_sweepCancel = cancel;
    m_sweepProgress = 0;
    const qint64 prompts = qint64(a.size() * b.size());
    m_sweepText = QStringLiteral("Sweeping %1 prompts…%2").arg(prompts).arg(capped);
    Q_EMIT sweepChanged();
    Q_EMIT sweepProgressChanged();

    cs::sweep::SweepOptions options;
    options.templateText = templateText.toStdString();
    options.a = std::move(a);
    options.b = std::move(b);
    options.position = position;
    QPointer<ExplorerWeights> guard(this);
    // After each batch, from the worker: the fraction reaches the UI thread and counts only while
    // this sweep is the current one; a set flag stops the sweep.
    options.progress = [guard, cancel](double fraction) {
        QMetaObject::invokeMethod(
            guard.data(),
            [guard, cancel, fraction] {
                if (!guard || guard->m_sweepCancel != cancel)
                    return;
                guard->m_sweepProgress = fraction;
                Q_EMIT guard->sweepProgressChanged();
            },
            Qt::QueuedConnection);
        return !cancel->load();
    };
    auto resources = m_core.m_resources;
    m_core.m_worker.request<SweepOutput>(
        QStringLiteral("explorer-sweep"),
        [resources, options](
            EngineState&) { return std::make_shared<const SweepOutput>(runSweep(*resources, options, kTopFindings)); },
        [this, cancel, templateText, capped](std::shared_ptr<const SweepOutput> out) {
            if (m_sweepCancel == cancel)
                m_sweepCancel.reset();
            m_sweep = out->result;
            m_rank = out->findings;
            m_findings.clear();
            for (size_t i = 0; i < out->findings.size(); ++i) {
                const auto& f = out->findings[i];
                const auto& labels = m_core.m_state.labels;
                const auto it = labels.find(featureKey(f.layer, f.feature));
                m_findings.append(QVariantMap {
                    { QStringLiteral("layer"), int(f.layer) },
                    { QStringLiteral("feature"), int(f.feature) },
                    { QStringLiteral("title"), featureTitle(f.layer, f.feature) },
                    { QStringLiteral("caption"), it != labels.end() ? qs(it->second) : qs(out->captions[i]) },
                    { QStringLiteral("structure"), QString::fromLatin1(cs::sweep::structureName(f.structure)) },
                    { QStringLiteral("structureText"), structureText(f) },
                    { QStringLiteral("group"), qint64(f.group) },
                    { QStringLiteral("explained"), f.explained },
                    { QStringLiteral("active"), f.activeShare },
                });
            }
            m_sweepProgress = 1;
            m_sweepText = QStringLiteral("“%1”, a %2 × b %3: %4 prompts in %5 s · %6 features ranked%7")
                              .arg(templateText, rangeText(m_sweep->a), rangeText(m_sweep->b))
                              .arg(m_sweep->prompts)
                              .arg(m_sweep->seconds, 0, 'f', 2)
                              .arg(m_findings.size())
                              .arg(capped);
            Q_EMIT sweepProgressChanged();
            Q_EMIT sweepChanged();
            updateOperandPlot();
        },
        [this, cancel](const QString& message) {
            if (m_sweepCancel == cancel)
                m_sweepCancel.reset();
            m_sweepText = cancel->load()
                ? QStringLiteral("Sweep cancelled at %1%").arg(int(std::lround(m_sweepProgress * 100)))
                : message;
            Q_EMIT sweepChanged();
        });
}

void ExplorerWeights::cancelSweep()
{
    if (m_sweepCancel)
        m_sweepCancel->store(true);
}

QVariantList ExplorerWeights::operandA() const
{
    QVariantList out;
    if (m_sweep && hasOperandPlot())
        for (int64_t v : m_sweep->a)
            out.append(qint64(v));
    return out;
}

QVariantList ExplorerWeights::operandB() const
{
    QVariantList out;
    if (m_sweep && hasOperandPlot())
        for (int64_t v : m_sweep->b)
            out.append(qint64(v));
    return out;
}

void ExplorerWeights::updateOperandPlot()
{
    m_operandValues.clear();
    m_operandImage = QImage();
    m_operandMin = m_operandMax = 0;
    m_operandText.clear();
    if (m_sweep && m_layer >= 0)
        m_operandValues = operandGrid(*m_sweep, m_layer, m_feature);
    if (!m_operandValues.empty()) {
        const int rows = int(m_sweep->a.size()), cols = int(m_sweep->b.size());
        const auto [lo, hi] = std::minmax_element(m_operandValues.begin(), m_operandValues.end());
        m_operandMin = *lo;
        m_operandMax = *hi;
        const double span = m_operandMax - m_operandMin;
        // One pixel per cell; OperandPlot scales it up without smoothing.
        m_operandImage = QImage(cols, rows, QImage::Format_RGB32);
        for (int i = 0; i < rows; ++i) {
            auto* line = reinterpret_cast<QRgb*>(m_operandImage.scanLine(i));
            for (int j = 0; j < cols; ++j)
                line[j] = viridis(span > 0 ? (m_operandValues[size_t(i * cols + j)] - m_operandMin) / span : 0.0);
        }
        const auto it = std::find_if(m_rank.begin(), m_rank.end(),
            [&](const cs::sweep::Finding& f) { return f.layer == m_layer && f.feature == m_feature; });
        if (m_operandMax <= 0) {
            m_operandText = QStringLiteral("never fires on this grid");
        } else if (it != m_rank.end()) {
            m_operandText = findingText(*it);
        } else {
            // Not among the ranked: the finder's reading of this one map, on the worker.
            auto sweep = m_sweep;
            auto grid = std::make_shared<const std::vector<float>>(m_operandValues);
            m_core.m_worker.request<cs::sweep::Finding>(
                QStringLiteral("explorer-operand-explain"),
                [sweep, grid](
                    EngineState&) { return std::make_shared<const cs::sweep::Finding>(explainGrid(*sweep, *grid)); },
                [this, sweep, layer = m_layer, feature = m_feature](std::shared_ptr<const cs::sweep::Finding> f) {
                    if (sweep != m_sweep || layer != m_layer || feature != m_feature)
                        return;
                    m_operandText = findingText(*f);
                    Q_EMIT operandPlotChanged();
                },
                {});
        }
    }
    Q_EMIT operandPlotChanged();
}

QString ExplorerWeights::findingText(const cs::sweep::Finding& finding) const
{
    return QStringLiteral("%1 (explains %2% of the map) · fires on %3% of the cells · max %4")
        .arg(structureText(finding))
        .arg(finding.explained * 100, 0, 'f', 0)
        .arg(finding.activeShare * 100, 0, 'f', 0)
        .arg(m_operandMax, 0, 'g', 3);
}

} // namespace cs::app
