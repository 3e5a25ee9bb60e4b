#include "tokenchipsmodel.h"

#include "tokentext.h"

#include <algorithm>

namespace cs::app {

TokenChipsModel::TokenChipsModel(QObject* parent)
    : QAbstractListModel(parent)
{
}

void TokenChipsModel::setTokens(std::shared_ptr<const PromptTokens> tokens)
{
    const int before = rowCount();
    beginResetModel();
    m_tokens = std::move(tokens);
    m_visible.clear();
    if (m_tokens) {
        m_visible.reserve(m_tokens->texts.size());
        for (const std::string& text : m_tokens->texts)
            m_visible.push_back(visibleTokenText(text));
    }
    endResetModel();
    if (rowCount() != before)
        Q_EMIT countChanged();
}

int TokenChipsModel::rowCount(const QModelIndex& parent) const
{
    if (parent.isValid() || !m_tokens)
        return 0;
    // ids and texts come from one job and have one length; the smaller guards a bad engine.
    return static_cast<int>(std::min(m_tokens->ids.size(), m_tokens->texts.size()));
}

QVariant TokenChipsModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const auto row = static_cast<std::size_t>(index.row());
    switch (role) {
    case Qt::DisplayRole:
    case TextRole:
        return m_visible[row];
    case Qt::ToolTipRole:
        return QStringLiteral("position %1 · token %2").arg(index.row()).arg(m_tokens->ids[row]);
    case PositionRole:
        return index.row();
    case TokenIdRole:
        return QVariant::fromValue<qint64>(m_tokens->ids[row]);
    case RawTextRole:
        return QString::fromStdString(m_tokens->texts[row]);
    default:
        return {};
    }
}

QHash<int, QByteArray> TokenChipsModel::roleNames() const
{
    return {
        { PositionRole, "position" },
        { TokenIdRole, "tokenId" },
        { TextRole, "text" },
        { RawTextRole, "rawText" },
    };
}

} // namespace cs::app
