#pragma once
// The prompt's tokens, one row per position, for the token chips under the prompt.

#include "snapshots.h"

#include <QAbstractListModel>
#include <QtQml/qqmlregistration.h>

#include <memory>
#include <vector>

namespace cs::app {

class TokenChipsModel : public QAbstractListModel {
    Q_OBJECT
    QML_ELEMENT
    Q_PROPERTY(int count READ rowCount NOTIFY countChanged)
public:
    enum Role {
        PositionRole = Qt::UserRole + 1, // 0-based position in the prompt
        TokenIdRole,
        TextRole, // whitespace made visible
        RawTextRole,
    };
    Q_ENUM(Role)

    explicit TokenChipsModel(QObject* parent = nullptr);

    // Replaces every row (one model reset); null clears.
    void setTokens(std::shared_ptr<const PromptTokens> tokens);
    std::shared_ptr<const PromptTokens> tokens() const { return m_tokens; }

    int rowCount(const QModelIndex& parent = QModelIndex()) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QHash<int, QByteArray> roleNames() const override;

Q_SIGNALS:
    void countChanged();

private:
    std::shared_ptr<const PromptTokens> m_tokens;
    std::vector<QString> m_visible; // per position, made once per snapshot
};

} // namespace cs::app
