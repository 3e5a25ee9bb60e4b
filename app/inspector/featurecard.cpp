#include "featurecard.h"

#include "tokentext.h"

#include <QVariantMap>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

namespace cs::app {

namespace {

QString tokenText(int64_t id, const std::vector<std::string>& vocabulary)
{
    if (id >= 0 && id < static_cast<int64_t>(vocabulary.size()))
        return visibleTokenText(vocabulary[static_cast<std::size_t>(id)]);
    return QStringLiteral("[%1]").arg(id);
}

// A token as running text: spaces stay spaces, so an example reads as the sentence it is.
QString exampleText(int64_t id, const std::vector<std::string>& vocabulary)
{
    if (id >= 0 && id < static_cast<int64_t>(vocabulary.size()))
        return QString::fromStdString(visibleText(vocabulary[static_cast<std::size_t>(id)]));
    return QStringLiteral("[%1]").arg(id);
}

} // namespace

// --- ExampleListModel

ExampleListModel::ExampleListModel(QObject* parent)
    : QAbstractListModel(parent)
{
}

void ExampleListModel::setRecord(const cs::features::FeatureRecord* record, const std::vector<std::string>& vocabulary)
{
    beginResetModel();
    m_rows.clear();
    if (record) {
        // Activations are shown against the feature's largest one, so that chips of every
        // example share one scale; a feature that never fired has nothing to scale by.
        const double scale = record->actMax > 0 ? 1.0 / record->actMax : 0.0;
        std::map<std::pair<int, std::vector<int64_t>>, std::size_t> seen; // (group, tokens) -> row
        const auto add = [&](const cs::features::Example& example, const QString& group, int groupIndex) {
            const auto [it, fresh] = seen.emplace(std::make_pair(groupIndex, example.tokens), m_rows.size());
            if (!fresh) {
                ++m_rows[it->second].repeats;
                return;
            }
            Row row;
            row.group = group;
            row.groupIndex = groupIndex;
            row.context = example.context;
            row.tokens.reserve(static_cast<int>(example.tokens.size()));
            for (std::size_t i = 0; i < example.tokens.size(); ++i) {
                row.tokens.append(tokenText(example.tokens[i], vocabulary));
                row.texts.append(exampleText(example.tokens[i], vocabulary));
                row.tokenIds.append(QVariant::fromValue<qint64>(example.tokens[i]));
                const double value = i < example.activations.size() ? example.activations[i] : 0.0;
                row.rawActivations.append(value);
                row.activations.append(std::clamp(value * scale, 0.0, 1.0));
            }
            row.peakPosition = static_cast<int>(example.position);
            row.peakActivation = example.activation;
            m_rows.push_back(std::move(row));
        };
        for (const cs::features::Example& example : record->top)
            add(example, QStringLiteral("Top activations"), 0);
        for (std::size_t band = 0; band < record->quantiles.size(); ++band) {
            const cs::features::QuantileExamples& q = record->quantiles[band];
            for (const cs::features::Example& example : q.examples)
                add(example, QString::fromStdString(q.name), static_cast<int>(band) + 1);
        }
    }
    endResetModel();
    Q_EMIT countChanged();
}

int ExampleListModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : static_cast<int>(m_rows.size());
}

QVariant ExampleListModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const Row& row = m_rows[static_cast<std::size_t>(index.row())];
    switch (role) {
    case Qt::DisplayRole:
        return row.tokens.join(QString());
    case GroupRole:
        return row.group;
    case GroupIndexRole:
        return row.groupIndex;
    case ContextRole:
        return row.context;
    case TokensRole:
        return row.tokens;
    case TokenIdsRole:
        return row.tokenIds;
    case ActivationsRole:
        return row.activations;
    case RawActivationsRole:
        return row.rawActivations;
    case PeakPositionRole:
        return row.peakPosition;
    case PeakActivationRole:
        return row.peakActivation;
    case TextsRole:
        return row.texts;
    case RepeatsRole:
        return row.repeats;
    default:
        return {};
    }
}

QHash<int, QByteArray> ExampleListModel::roleNames() const
{
    return {
        { GroupRole, "group" },
        { GroupIndexRole, "groupIndex" },
        { ContextRole, "context" },
        { TokensRole, "tokens" },
        { TokenIdsRole, "tokenIds" },
        { ActivationsRole, "activations" },
        { RawActivationsRole, "rawActivations" },
        { PeakPositionRole, "peakPosition" },
        { PeakActivationRole, "peakActivation" },
        { TextsRole, "texts" },
        { RepeatsRole, "repeats" },
    };
}

// --- TokenValueModel

TokenValueModel::TokenValueModel(QObject* parent)
    : QAbstractListModel(parent)
{
}

void TokenValueModel::setValues(const std::vector<cs::features::TokenValue>& values)
{
    beginResetModel();
    m_values = values;
    m_visible.clear();
    m_maxAbs = 0;
    for (const cs::features::TokenValue& value : m_values) {
        m_visible.push_back(visibleTokenText(value.token));
        m_maxAbs = std::max(m_maxAbs, std::abs(double(value.value)));
    }
    endResetModel();
    Q_EMIT countChanged();
}

int TokenValueModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : static_cast<int>(m_values.size());
}

QVariant TokenValueModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const std::size_t row = static_cast<std::size_t>(index.row());
    const cs::features::TokenValue& value = m_values[row];
    switch (role) {
    case Qt::DisplayRole:
    case TokenRole:
        return m_visible[row];
    case RawTokenRole:
        return QString::fromStdString(value.token);
    case TokenIdRole:
        return QVariant::fromValue<qint64>(value.id);
    case ValueRole:
        return double(value.value);
    case FractionRole:
        return m_maxAbs > 0 ? std::abs(double(value.value)) / m_maxAbs : 0.0;
    default:
        return {};
    }
}

QHash<int, QByteArray> TokenValueModel::roleNames() const
{
    return {
        { TokenRole, "token" },
        { RawTokenRole, "rawToken" },
        { TokenIdRole, "tokenId" },
        { ValueRole, "value" },
        { FractionRole, "fraction" },
    };
}

// --- FeatureCard

FeatureCard::FeatureCard(QObject* parent)
    : QObject(parent)
    , m_activation(std::numeric_limits<double>::quiet_NaN())
    , m_examples(new ExampleListModel(this))
    , m_topLogits(new TokenValueModel(this))
    , m_bottomLogits(new TokenValueModel(this))
    , m_topInputs(new TokenValueModel(this))
{
}

FeatureCard::~FeatureCard() = default;

void FeatureCard::setRecord(std::shared_ptr<const cs::features::FeatureRecord> record, double activation,
    const std::vector<std::string>& vocabulary)
{
    m_record = std::move(record);
    m_examples->setRecord(m_record.get(), vocabulary);
    static const std::vector<cs::features::TokenValue> none;
    m_topLogits->setValues(m_record ? m_record->topLogits : none);
    m_bottomLogits->setValues(m_record ? m_record->bottomLogits : none);
    m_topInputs->setValues(m_record ? m_record->topInputs : none);
    m_activation = m_record ? activation : std::numeric_limits<double>::quiet_NaN();
    m_label = m_record ? QString::fromStdString(m_record->label) : QString();
    Q_EMIT recordChanged();
    Q_EMIT labelChanged();
    Q_EMIT activationChanged();
}

void FeatureCard::clear()
{
    setRecord(nullptr, std::numeric_limits<double>::quiet_NaN(), {});
}

void FeatureCard::setActivation(double activation)
{
    // NaN != NaN: compare through isnan so that clearing twice does not notify twice.
    if (activation == m_activation || (std::isnan(activation) && std::isnan(m_activation)))
        return;
    m_activation = activation;
    Q_EMIT activationChanged();
}

void FeatureCard::setLabel(const QString& label)
{
    if (label == m_label)
        return;
    m_label = label;
    Q_EMIT labelChanged();
}

void FeatureCard::commitLabel(const QString& text)
{
    const QString trimmed = text.trimmed();
    if (!m_record || trimmed == m_label)
        return;
    Q_EMIT labelEdited(trimmed);
}

int FeatureCard::layer() const
{
    return m_record ? static_cast<int>(m_record->layer) : -1;
}

int FeatureCard::feature() const
{
    return m_record ? static_cast<int>(m_record->feature) : -1;
}

QString FeatureCard::title() const
{
    if (!m_record)
        return {};
    const QString title = QStringLiteral("L%1 #%2").arg(m_record->layer).arg(m_record->feature);
    return m_noun == QLatin1String("feature") ? title : m_noun + QLatin1Char(' ') + title;
}

QString FeatureCard::notes() const
{
    return m_record ? QString::fromStdString(m_record->notes) : QString();
}

qint64 FeatureCard::tokens() const
{
    return m_record ? m_record->tokens : 0;
}

qint64 FeatureCard::activeTokens() const
{
    return m_record ? m_record->activeTokens : 0;
}

double FeatureCard::frequency() const
{
    return m_record ? m_record->activationFrequency() : 0.0;
}

double FeatureCard::actMax() const
{
    return m_record ? m_record->actMax : 0.0;
}

double FeatureCard::actMin() const
{
    return m_record ? m_record->actMin : 0.0;
}

double FeatureCard::actMean() const
{
    return m_record && m_record->activeTokens > 0 ? m_record->actSum / double(m_record->activeTokens) : 0.0;
}

QVariantList FeatureCard::quantiles() const
{
    QVariantList list;
    if (!m_record)
        return list;
    const std::size_t n = std::min(m_record->quantileLevels.size(), m_record->quantileValues.size());
    for (std::size_t i = 0; i < n; ++i) {
        QVariantMap entry;
        entry.insert(QStringLiteral("level"), m_record->quantileLevels[i]);
        entry.insert(QStringLiteral("value"), double(m_record->quantileValues[i]));
        list.append(entry);
    }
    return list;
}

QVariantList FeatureCard::histogramCounts() const
{
    QVariantList list;
    if (m_record) {
        for (int64_t count : m_record->histogramCounts)
            list.append(QVariant::fromValue<qint64>(count));
    }
    return list;
}

QVariantList FeatureCard::histogramEdges() const
{
    QVariantList list;
    if (m_record) {
        for (float edge : m_record->histogramEdges)
            list.append(double(edge));
    }
    return list;
}

int FeatureCard::histogramMaxCount() const
{
    int64_t best = 0;
    if (m_record) {
        for (int64_t count : m_record->histogramCounts)
            best = std::max(best, count);
    }
    return static_cast<int>(std::min<int64_t>(best, std::numeric_limits<int>::max()));
}

bool FeatureCard::hasActivation() const
{
    return m_record && !std::isnan(m_activation);
}

int FeatureCard::markerBin() const
{
    if (!hasActivation())
        return -1;
    const std::vector<float>& edges = m_record->histogramEdges;
    const int bins = static_cast<int>(m_record->histogramCounts.size());
    if (bins == 0 || edges.size() != static_cast<std::size_t>(bins) + 1)
        return -1;
    // The first edge above the activation closes its bin; upper_bound keeps [e_i, e_i+1).
    const auto above = std::upper_bound(
        edges.begin(), edges.end(), m_activation, [](double value, float edge) { return value < double(edge); });
    const int bin = static_cast<int>(above - edges.begin()) - 1;
    return std::clamp(bin, 0, bins - 1);
}

double FeatureCard::markerFraction() const
{
    if (!hasActivation())
        return -1.0;
    const std::vector<float>& edges = m_record->histogramEdges;
    if (edges.size() < 2 || !(edges.back() > edges.front()))
        return -1.0;
    return std::clamp((m_activation - edges.front()) / (double(edges.back()) - edges.front()), 0.0, 1.0);
}

} // namespace cs::app
