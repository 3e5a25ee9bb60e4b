#pragma once
// The explorer's global weights (docs/ARCHITECTURE.md §7.5, issue 19), run on the engine worker
// (tags explorer-partners, explorer-token-plot, explorer-sweep, §13). Owned by
// ExplorerController; QML reaches it as explorer.weights. It follows the feature whose card the
// inspector shows (ExplorerController::cardLayer / cardFeature):
//   partners:   its upstream and downstream partners (cs::weights::partners) ranked by TWERA,
//               ERA or virtual weight, each list a PartnerListModel;
//   token plot: for the tokens of weightTokens ("a| b| c"), each token's embedding through the
//               feature's encoder and the feature's decoders through the unembedding to that
//               token's logit (embeddingToFeatures, featureToLogits);
//   sweeps:     an operand sweep (cs::sweep) started from the window, with progress and
//               cancel; the ranked features it found, and the shown feature's operand plot (a
//               viridis image of its [a, b] grid, OperandPlot draws it).
// A new model or transcoder set clears the sweep (its features are another set's).

#include <cs/sweep.h>
#include <cs/weights.h>

#include <QAbstractListModel>
#include <QImage>
#include <QObject>
#include <QString>
#include <QVariantList>
#include <QtQml/qqmlregistration.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cs::app {

class ExplorerController;

// One side's partners of a feature, in the engine's order (by |weight| of the chosen kind).
class PartnerListModel : public QAbstractListModel {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("made by ExplorerWeights")
    Q_PROPERTY(int count READ rowCount NOTIFY countChanged)
public:
    enum Role {
        LayerRole = Qt::UserRole + 1,
        FeatureRole,
        TitleRole, // "L2 #991"
        CaptionRole, // the user's label, the store's, or the description of its card
        WeightRole, // by the list's kind
        FractionRole, // weight / the list's largest |weight|, in [-1, 1] (the signed bar)
        VirtualRole,
        EraRole,
        TweraRole,
        CoactivationsRole, // token positions where both fired; -1 when the store did not keep the pair
    };
    Q_ENUM(Role)

    struct Row {
        cs::weights::Partner partner;
        QString caption;
    };

    explicit PartnerListModel(QObject* parent = nullptr);
    // Replaces every row (one model reset).
    void setRows(std::vector<Row> rows, cs::weights::Kind kind);
    const std::vector<Row>& rows() const { return m_rows; }

    int rowCount(const QModelIndex& parent = QModelIndex()) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QHash<int, QByteArray> roleNames() const override;

Q_SIGNALS:
    void countChanged();

private:
    std::vector<Row> m_rows;
    cs::weights::Kind m_kind = cs::weights::Kind::Virtual;
    double m_maxAbs = 0;
};

class ExplorerWeights : public QObject {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("owned by ExplorerController")

    // Partners: "twera", "era" or "virtual" (what the lists are ranked by; the user's choice),
    // and what they are ranked by now (virtual when the store has no co-activation statistics).
    Q_PROPERTY(QString kind READ kind WRITE setKind NOTIFY kindChanged)
    Q_PROPERTY(QString shownKind READ shownKind NOTIFY partnersChanged)
    Q_PROPERTY(bool statisticsAvailable READ statisticsAvailable NOTIFY partnersChanged)
    Q_PROPERTY(cs::app::PartnerListModel* upstream READ upstream CONSTANT)
    Q_PROPERTY(cs::app::PartnerListModel* downstream READ downstream CONSTANT)
    // Per side: the features it fired with at all, and how many of them the store keeps (-1
    // without statistics).
    Q_PROPERTY(qint64 upCoactivating READ upCoactivating NOTIFY partnersChanged)
    Q_PROPERTY(qint64 upKept READ upKept NOTIFY partnersChanged)
    Q_PROPERTY(qint64 downCoactivating READ downCoactivating NOTIFY partnersChanged)
    Q_PROPERTY(qint64 downKept READ downKept NOTIFY partnersChanged)
    // Why the lists are empty or ranked otherwise than asked (no statistics, an error); empty
    // otherwise.
    Q_PROPERTY(QString partnersText READ partnersText NOTIFY partnersChanged)
    Q_PROPERTY(bool loadingPartners READ isLoadingPartners NOTIFY partnersChanged)
    Q_PROPERTY(double partnersMs READ partnersMs NOTIFY partnersChanged) // the engine's time, both sides

    // Token plots: the tokens, separated by |; rows {token, valid, message, id, input, output}
    // (input: the token's embedding through the feature's encoder; output: the feature's
    // decoders to the token's logit).
    Q_PROPERTY(QString weightTokens READ weightTokens WRITE setWeightTokens NOTIFY tokenPlotChanged)
    Q_PROPERTY(QVariantList tokenRows READ tokenRows NOTIFY tokenPlotChanged)
    Q_PROPERTY(double tokenInputMax READ tokenInputMax NOTIFY tokenPlotChanged) // the largest |input|
    Q_PROPERTY(double tokenOutputMax READ tokenOutputMax NOTIFY tokenPlotChanged) // the largest |output|
    Q_PROPERTY(QString tokenPlotText READ tokenPlotText NOTIFY tokenPlotChanged)

    // Sweeps.
    Q_PROPERTY(bool sweeping READ isSweeping NOTIFY sweepChanged)
    Q_PROPERTY(double sweepProgress READ sweepProgress NOTIFY sweepProgressChanged) // 0..1
    Q_PROPERTY(QString sweepText READ sweepText NOTIFY sweepChanged) // what ran, or why not
    Q_PROPERTY(bool hasSweep READ hasSweep NOTIFY sweepChanged)
    // Findings {layer, feature, title, caption, structure, group, explained, active}, best first.
    Q_PROPERTY(QVariantList findings READ findings NOTIFY sweepChanged)
    // The shown feature's operand plot from the latest sweep: rows a, columns b.
    Q_PROPERTY(bool hasOperandPlot READ hasOperandPlot NOTIFY operandPlotChanged)
    Q_PROPERTY(QImage operandImage READ operandImage NOTIFY operandPlotChanged) // [a rows, b columns], viridis
    Q_PROPERTY(QVariantList operandA READ operandA NOTIFY operandPlotChanged)
    Q_PROPERTY(QVariantList operandB READ operandB NOTIFY operandPlotChanged)
    Q_PROPERTY(double operandMin READ operandMin NOTIFY operandPlotChanged)
    Q_PROPERTY(double operandMax READ operandMax NOTIFY operandPlotChanged)
    Q_PROPERTY(QString operandText READ operandText NOTIFY operandPlotChanged)

public:
    // The most prompts one sweep from the window runs (each prompt keeps every feature's
    // activation, n_layers x n_features floats), and the most values each variable takes.
    static constexpr int64_t kMaxPrompts = 20000;
    static constexpr int64_t kMaxValues = 200;
    static constexpr int64_t kTopPartners = 10;
    static constexpr int64_t kTopFindings = 100;

    explicit ExplorerWeights(ExplorerController& core);
    ~ExplorerWeights() override;

    QString kind() const;
    void setKind(const QString& kind);
    QString shownKind() const;
    bool statisticsAvailable() const { return m_statistics; }
    PartnerListModel* upstream() const { return m_upstream; }
    PartnerListModel* downstream() const { return m_downstream; }
    qint64 upCoactivating() const { return m_upCoactivating; }
    qint64 upKept() const { return m_upKept; }
    qint64 downCoactivating() const { return m_downCoactivating; }
    qint64 downKept() const { return m_downKept; }
    QString partnersText() const { return m_partnersText; }
    bool isLoadingPartners() const { return m_loadingPartners; }
    double partnersMs() const { return m_partnersMs; }

    QString weightTokens() const { return m_weightTokens; }
    void setWeightTokens(const QString& tokens);
    QVariantList tokenRows() const { return m_tokenRows; }
    double tokenInputMax() const { return m_tokenInputMax; }
    double tokenOutputMax() const { return m_tokenOutputMax; }
    QString tokenPlotText() const { return m_tokenPlotText; }

    bool isSweeping() const { return m_sweepCancel != nullptr; }
    double sweepProgress() const { return m_sweepProgress; }
    QString sweepText() const { return m_sweepText; }
    bool hasSweep() const { return m_sweep != nullptr; }
    QVariantList findings() const { return m_findings; }
    bool hasOperandPlot() const { return !m_operandValues.empty(); }
    QImage operandImage() const { return m_operandImage; }
    QVariantList operandA() const;
    QVariantList operandB() const;
    double operandMin() const { return m_operandMin; }
    double operandMax() const { return m_operandMax; }
    QString operandText() const { return m_operandText; }
    // The shown feature's grid, row-major [a.size(), b.size()] (tests); empty without a plot.
    const std::vector<float>& operandValues() const { return m_operandValues; }
    std::shared_ptr<const cs::sweep::SweepResult> sweepResult() const { return m_sweep; }
    double lastSweepSeconds() const { return m_sweep ? m_sweep->seconds : 0; }

    // Runs templateText over a x b: ranges "0..99" (inclusive) or lists "1,5,7"; position as
    // SweepOptions::position. A grid past kMaxPrompts or kMaxValues is cut to fit (the sweep's
    // text says so); a bad template or range is refused with a message in sweepText.
    Q_INVOKABLE void startSweep(
        const QString& templateText, const QString& aRange, const QString& bRange, int position);
    // Stops the running sweep after its current batch; the latest finished sweep stays.
    Q_INVOKABLE void cancelSweep();

    // "0..99" or "1,5,7" -> the values; empty with `error` set for anything else.
    static std::vector<int64_t> parseRange(const QString& text, QString& error);

    // Called by the core: the shown feature changed (-1 for none), the resources were reloaded.
    void setFeature(int64_t layer, int64_t feature);
    void resourcesReloaded();
    // A label changed: the captions of the partners follow.
    void refreshCaptions();

Q_SIGNALS:
    void kindChanged();
    void partnersChanged();
    void tokenPlotChanged();
    void sweepChanged();
    void sweepProgressChanged();
    void operandPlotChanged();

private:
    void requestPartners();
    void requestTokenPlot();
    void updateOperandPlot();
    QString findingText(const cs::sweep::Finding& finding) const;

    ExplorerController& m_core;
    int64_t m_layer = -1, m_feature = -1;
    cs::weights::Kind m_kind = cs::weights::Kind::Twera;
    cs::weights::Kind m_shownKind = cs::weights::Kind::Twera;
    bool m_statistics = false;
    PartnerListModel* m_upstream = nullptr;
    PartnerListModel* m_downstream = nullptr;
    qint64 m_upCoactivating = -1, m_upKept = -1, m_downCoactivating = -1, m_downKept = -1;
    QString m_partnersText;
    bool m_loadingPartners = false;
    double m_partnersMs = 0;

    QString m_weightTokens;
    bool m_tokensChosen = false; // the user set them; until then the digits when single tokens
    QVariantList m_tokenRows;
    double m_tokenInputMax = 0, m_tokenOutputMax = 0;
    QString m_tokenPlotText;

    std::shared_ptr<std::atomic<bool>> m_sweepCancel; // set while a sweep runs
    double m_sweepProgress = 0;
    QString m_sweepText;
    std::shared_ptr<const cs::sweep::SweepResult> m_sweep;
    std::vector<cs::sweep::Finding> m_rank;
    QVariantList m_findings;
    std::vector<float> m_operandValues;
    QImage m_operandImage;
    double m_operandMin = 0, m_operandMax = 0;
    QString m_operandText;
};

// The viridis colour map at t in [0, 1] (clamped): dark purple to yellow, brightness rising.
QRgb viridis(double t);

} // namespace cs::app
