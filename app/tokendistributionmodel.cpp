#include "tokendistributionmodel.h"

#include "tokentext.h"

namespace cs::app {

TokenDistributionModel::TokenDistributionModel(QObject* parent)
    : QAbstractListModel(parent)
{
}

void TokenDistributionModel::setDistribution(std::shared_ptr<const NextTokenDistribution> distribution)
{
    beginResetModel();
    m_distribution = std::move(distribution);
    m_visible.clear();
    m_raw.clear();
    if (m_distribution) {
        m_visible.reserve(m_distribution->top.size());
        m_raw.reserve(m_distribution->top.size());
        for (const cs::TokenScore& score : m_distribution->top) {
            m_visible.push_back(visibleTokenText(score.token));
            m_raw.push_back(QString::fromStdString(score.token));
        }
    }
    endResetModel();
    // maxProbability changes with every snapshot, so notify even when the count is the same.
    Q_EMIT countChanged();
}

int TokenDistributionModel::rowCount(const QModelIndex& parent) const
{
    if (parent.isValid() || !m_distribution)
        return 0;
    return static_cast<int>(m_distribution->top.size());
}

QVariant TokenDistributionModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const auto row = static_cast<std::size_t>(index.row());
    const cs::TokenScore& score = m_distribution->top[row];
    switch (role) {
    case Qt::DisplayRole:
    case TextRole:
        return m_visible[row];
    case Qt::ToolTipRole:
        return QStringLiteral("token %1 · p = %2 · logit %3")
            .arg(score.id)
            .arg(static_cast<double>(score.prob), 0, 'g', 4)
            .arg(static_cast<double>(score.logit), 0, 'f', 3);
    case TokenIdRole:
        return QVariant::fromValue<qint64>(score.id);
    case RawTextRole:
        return m_raw[row];
    case ProbabilityRole:
        return static_cast<double>(score.prob);
    case LogitRole:
        return static_cast<double>(score.logit);
    case RankRole:
        return index.row() + 1;
    default:
        return {};
    }
}

QHash<int, QByteArray> TokenDistributionModel::roleNames() const
{
    return {
        { TokenIdRole, "tokenId" },
        { TextRole, "text" },
        { RawTextRole, "rawText" },
        { ProbabilityRole, "probability" },
        { LogitRole, "logit" },
        { RankRole, "rank" },
    };
}

double TokenDistributionModel::maxProbability() const
{
    if (!m_distribution || m_distribution->top.empty())
        return 0;
    return static_cast<double>(m_distribution->top.front().prob);
}

} // namespace cs::app
