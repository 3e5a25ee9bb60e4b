#pragma once
// The top-k next tokens of one prompt run, one row per token, most probable first.

#include "snapshots.h"

#include <QAbstractListModel>
#include <QtQml/qqmlregistration.h>

#include <memory>
#include <vector>

namespace cs::app {

class TokenDistributionModel : public QAbstractListModel {
    Q_OBJECT
    QML_ELEMENT
    Q_PROPERTY(int count READ rowCount NOTIFY countChanged)
    Q_PROPERTY(double maxProbability READ maxProbability NOTIFY countChanged)
public:
    enum Role {
        TokenIdRole = Qt::UserRole + 1,
        TextRole, // the token with whitespace made visible ("␣the")
        RawTextRole, // the token as decoded, whitespace as is
        ProbabilityRole, // in [0, 1]
        LogitRole,
        RankRole, // 1-based
    };
    Q_ENUM(Role)

    explicit TokenDistributionModel(QObject* parent = nullptr);

    // Replaces every row (one model reset); null clears.
    void setDistribution(std::shared_ptr<const NextTokenDistribution> distribution);
    std::shared_ptr<const NextTokenDistribution> distribution() const { return m_distribution; }

    int rowCount(const QModelIndex& parent = QModelIndex()) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QHash<int, QByteArray> roleNames() const override;

    double maxProbability() const;

Q_SIGNALS:
    void countChanged();

private:
    std::shared_ptr<const NextTokenDistribution> m_distribution;
    std::vector<QString> m_visible; // per row, made once per snapshot
    std::vector<QString> m_raw;
};

} // namespace cs::app
