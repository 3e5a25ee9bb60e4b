#pragma once
// The feature card: what the feature store knows of one transcoder feature (its statistics,
// histogram, top-activating and quantile examples, promoted / suppressed output tokens and top
// input tokens), with this graph's activation placed on its histogram. QML shows it through
// FeatureCard.qml; the user's label edits come back as labelEdited() for the caller to store.

#include <cs/features.h>

#include <QAbstractListModel>
#include <QObject>
#include <QString>
#include <QStringList>
#include <QVariantList>
#include <QtQml/qqmlregistration.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cs::app {

// One row per stored example: the top-activating contexts first (group "Top activations"),
// then each quantile band in the record's order ("Subsample Interval 0", ...).
class ExampleListModel : public QAbstractListModel {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("made by FeatureCard")
    Q_PROPERTY(int count READ rowCount NOTIFY countChanged)
public:
    enum Role {
        GroupRole = Qt::UserRole + 1, // the group's name (ListView sections)
        GroupIndexRole, // 0 for the top activations, 1 + band index for the bands
        ContextRole, // the context's id in the build's stream
        TokensRole, // QStringList: each token's text with whitespace made visible
        TokenIdsRole, // QVariantList of ints
        ActivationsRole, // QVariantList of doubles: activation / the feature's actMax, in [0, 1]
        RawActivationsRole, // QVariantList of doubles: the stored activations
        PeakPositionRole, // index into tokens of the largest activation
        PeakActivationRole, // that activation
        TextsRole, // QStringList: each token's text as text (spaces kept; newlines, tabs, bad bytes marked)
        RepeatsRole, // how many stored examples of this group had these very tokens (shown once)
    };
    Q_ENUM(Role)

    explicit ExampleListModel(QObject* parent = nullptr);

    // Replaces every row (one model reset); null clears. Token ids outside the vocabulary
    // show as "[id]". An example whose tokens repeat an earlier one's in the same group (the
    // same sentence met again in the corpus) is shown once, with its count.
    void setRecord(const cs::features::FeatureRecord* record, const std::vector<std::string>& vocabulary);

    int rowCount(const QModelIndex& parent = QModelIndex()) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QHash<int, QByteArray> roleNames() const override;

Q_SIGNALS:
    void countChanged();

private:
    struct Row {
        QString group;
        int groupIndex = 0;
        qint64 context = 0;
        QStringList tokens;
        QStringList texts;
        int repeats = 1;
        QVariantList tokenIds;
        QVariantList activations;
        QVariantList rawActivations;
        int peakPosition = 0;
        double peakActivation = 0;
    };
    std::vector<Row> m_rows;
};

// Tokens with a value each (top / bottom logits, top inputs), in the record's order.
class TokenValueModel : public QAbstractListModel {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("made by FeatureCard")
    Q_PROPERTY(int count READ rowCount NOTIFY countChanged)
    Q_PROPERTY(double maxAbsValue READ maxAbsValue NOTIFY countChanged)
public:
    enum Role {
        TokenRole = Qt::UserRole + 1, // whitespace made visible
        RawTokenRole, // as stored
        TokenIdRole,
        ValueRole,
        FractionRole, // |value| / maxAbsValue, for bars
    };
    Q_ENUM(Role)

    explicit TokenValueModel(QObject* parent = nullptr);

    void setValues(const std::vector<cs::features::TokenValue>& values); // one model reset
    double maxAbsValue() const { return m_maxAbs; }

    int rowCount(const QModelIndex& parent = QModelIndex()) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QHash<int, QByteArray> roleNames() const override;

Q_SIGNALS:
    void countChanged();

private:
    std::vector<cs::features::TokenValue> m_values;
    std::vector<QString> m_visible;
    double m_maxAbs = 0;
};

// Registered in QML as FeatureCardData (FeatureCard is the QML view of it, FeatureCard.qml).
class FeatureCard : public QObject {
    Q_OBJECT
    QML_NAMED_ELEMENT(FeatureCardData)
    Q_PROPERTY(bool hasRecord READ hasRecord NOTIFY recordChanged)
    Q_PROPERTY(int layer READ layer NOTIFY recordChanged)
    Q_PROPERTY(int feature READ feature NOTIFY recordChanged)
    Q_PROPERTY(QString title READ title NOTIFY recordChanged) // "L3 #918", "neuron L3 #230"
    // What the record describes: "feature" (a transcoder's), or "neuron" (a store of the model's
    // own units, cs::features::findUnitStore).
    Q_PROPERTY(QString noun READ noun NOTIFY recordChanged)
    Q_PROPERTY(QString label READ label NOTIFY labelChanged) // the store's label (clerp)
    Q_PROPERTY(QString notes READ notes NOTIFY recordChanged)
    Q_PROPERTY(qint64 tokens READ tokens NOTIFY recordChanged) // tokens the build saw
    Q_PROPERTY(qint64 activeTokens READ activeTokens NOTIFY recordChanged)
    Q_PROPERTY(double frequency READ frequency NOTIFY recordChanged) // activeTokens / tokens, in [0, 1]
    Q_PROPERTY(double actMax READ actMax NOTIFY recordChanged)
    Q_PROPERTY(double actMin READ actMin NOTIFY recordChanged) // smallest positive
    Q_PROPERTY(double actMean READ actMean NOTIFY recordChanged) // mean positive activation
    // [{level, value}, ...] in the record's order.
    Q_PROPERTY(QVariantList quantiles READ quantiles NOTIFY recordChanged)
    Q_PROPERTY(QVariantList histogramCounts READ histogramCounts NOTIFY recordChanged) // [bins] ints
    Q_PROPERTY(QVariantList histogramEdges READ histogramEdges NOTIFY recordChanged) // [bins + 1]
    Q_PROPERTY(int histogramMaxCount READ histogramMaxCount NOTIFY recordChanged)
    // This graph's activation of the feature; NaN (hasActivation false) when there is none.
    Q_PROPERTY(double activation READ activation NOTIFY activationChanged)
    Q_PROPERTY(bool hasActivation READ hasActivation NOTIFY activationChanged)
    // The histogram bin holding the activation (bins are [e_i, e_i+1), the last closed; values
    // outside the edges clamp to the first / last bin); -1 without an activation or histogram.
    Q_PROPERTY(int markerBin READ markerBin NOTIFY activationChanged)
    // Where the activation sits between the first and last edge, clamped to [0, 1]; -1 without.
    Q_PROPERTY(double markerFraction READ markerFraction NOTIFY activationChanged)
    Q_PROPERTY(cs::app::ExampleListModel* examples READ examples CONSTANT)
    Q_PROPERTY(cs::app::TokenValueModel* topLogits READ topLogits CONSTANT)
    Q_PROPERTY(cs::app::TokenValueModel* bottomLogits READ bottomLogits CONSTANT)
    Q_PROPERTY(cs::app::TokenValueModel* topInputs READ topInputs CONSTANT)
public:
    explicit FeatureCard(QObject* parent = nullptr);
    ~FeatureCard() override;

    // Shows a record (null clears); activation is this graph's (NaN for none); vocabulary is
    // FeatureStore::vocabulary(), the text of each token id of the examples.
    void setRecord(std::shared_ptr<const cs::features::FeatureRecord> record, double activation,
        const std::vector<std::string>& vocabulary);
    Q_INVOKABLE void clear();
    // Moves the activation marker only (another node of the same feature).
    void setActivation(double activation);
    // Shows a label stored elsewhere (after the caller saved an edit, or undid one).
    void setLabel(const QString& label);
    // What the label editor calls: emits labelEdited(trimmed text) when it differs from label.
    Q_INVOKABLE void commitLabel(const QString& text);

    std::shared_ptr<const cs::features::FeatureRecord> record() const { return m_record; }
    bool hasRecord() const { return m_record != nullptr; }
    int layer() const;
    int feature() const;
    QString title() const;
    QString noun() const { return m_noun; }
    // Set before setRecord: the next record's noun ("feature" by default).
    void setNoun(const QString& noun) { m_noun = noun.isEmpty() ? QStringLiteral("feature") : noun; }
    QString label() const { return m_label; }
    QString notes() const;
    qint64 tokens() const;
    qint64 activeTokens() const;
    double frequency() const;
    double actMax() const;
    double actMin() const;
    double actMean() const;
    QVariantList quantiles() const;
    QVariantList histogramCounts() const;
    QVariantList histogramEdges() const;
    int histogramMaxCount() const;
    double activation() const { return m_activation; }
    bool hasActivation() const;
    int markerBin() const;
    double markerFraction() const;

    ExampleListModel* examples() const { return m_examples; }
    TokenValueModel* topLogits() const { return m_topLogits; }
    TokenValueModel* bottomLogits() const { return m_bottomLogits; }
    TokenValueModel* topInputs() const { return m_topInputs; }

Q_SIGNALS:
    void recordChanged();
    void labelChanged();
    void activationChanged();
    // The user committed a new label (trimmed; may be empty to remove it).
    void labelEdited(const QString& label);

private:
    std::shared_ptr<const cs::features::FeatureRecord> m_record;
    double m_activation;
    QString m_label;
    QString m_noun = QStringLiteral("feature");
    ExampleListModel* m_examples;
    TokenValueModel* m_topLogits;
    TokenValueModel* m_bottomLogits;
    TokenValueModel* m_topInputs;
};

} // namespace cs::app
