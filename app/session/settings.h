#pragma once
// The explorer's preferences, each a Q_PROPERTY written to QSettings (group "explorer") as soon
// as it changes. Values out of range are clamped (numbers) or replaced by the default (text)
// both when set and when read back from the settings file:
//   theme            "system" | "light" | "dark"                      default "system"
//   nodeThreshold    [0, 1], the pruning defaults of a new graph      default 0.8
//   edgeThreshold    [0, 1]                                           default 0.98
//   maxFeatureNodes  [0, 1 000 000]; 0 = no cap (all active features, as circuit-tracer's
//                    max_feature_nodes=None; TraceOptions::maxFeatureNodes = -1)   default 0
//   topK             [1, 100] next-token rows shown                   default 10
//   generateTokens   [1, 1024] tokens per "generate"                  default 8
//   autosaveSeconds  0 = autosave off, else [5, 3600]                 default 60
//   figureDpi        [72, 2400] PNG figure resolution                 default 300
//   device           "auto" | "cpu" | "cuda" | "cuda:N" (lower-cased, trimmed)   default "auto"
//   lastFolder       the last folder a file dialog used               default ""

#include <QObject>
#include <QSettings>
#include <QString>

#include <memory>

namespace cs::app {

class ExplorerSettings : public QObject {
    Q_OBJECT
    Q_PROPERTY(QString theme READ theme WRITE setTheme NOTIFY themeChanged)
    Q_PROPERTY(double nodeThreshold READ nodeThreshold WRITE setNodeThreshold NOTIFY nodeThresholdChanged)
    Q_PROPERTY(double edgeThreshold READ edgeThreshold WRITE setEdgeThreshold NOTIFY edgeThresholdChanged)
    Q_PROPERTY(int maxFeatureNodes READ maxFeatureNodes WRITE setMaxFeatureNodes NOTIFY maxFeatureNodesChanged)
    Q_PROPERTY(int topK READ topK WRITE setTopK NOTIFY topKChanged)
    Q_PROPERTY(int generateTokens READ generateTokens WRITE setGenerateTokens NOTIFY generateTokensChanged)
    Q_PROPERTY(int autosaveSeconds READ autosaveSeconds WRITE setAutosaveSeconds NOTIFY autosaveSecondsChanged)
    Q_PROPERTY(int figureDpi READ figureDpi WRITE setFigureDpi NOTIFY figureDpiChanged)
    Q_PROPERTY(QString device READ device WRITE setDevice NOTIFY deviceChanged)
    Q_PROPERTY(QString lastFolder READ lastFolder WRITE setLastFolder NOTIFY lastFolderChanged)
public:
    static constexpr double kDefaultNodeThreshold = 0.8;
    static constexpr double kDefaultEdgeThreshold = 0.98;
    static constexpr int kDefaultMaxFeatureNodes = 0;
    static constexpr int kDefaultTopK = 10;
    static constexpr int kDefaultGenerateTokens = 8;
    static constexpr int kDefaultAutosaveSeconds = 60;

    // `settings` (not owned) is where values live; null uses a default QSettings (the
    // application's organization and name).
    explicit ExplorerSettings(QSettings* settings = nullptr, QObject* parent = nullptr);
    ~ExplorerSettings() override;

    QString theme() const { return m_theme; }
    double nodeThreshold() const { return m_nodeThreshold; }
    double edgeThreshold() const { return m_edgeThreshold; }
    int maxFeatureNodes() const { return m_maxFeatureNodes; }
    int topK() const { return m_topK; }
    int generateTokens() const { return m_generateTokens; }
    int autosaveSeconds() const { return m_autosaveSeconds; }
    int figureDpi() const { return m_figureDpi; }
    void setFigureDpi(int dpi);
    QString device() const { return m_device; }
    QString lastFolder() const { return m_lastFolder; }

    void setTheme(const QString& theme);
    void setNodeThreshold(double value);
    void setEdgeThreshold(double value);
    void setMaxFeatureNodes(int value);
    void setTopK(int value);
    void setGenerateTokens(int value);
    void setAutosaveSeconds(int value);
    void setDevice(const QString& device);
    void setLastFolder(const QString& folder);

    // Every property back to its default (each change notified and saved).
    Q_INVOKABLE void resetToDefaults();

    // The value each setter stores for `value` (for callers that validate input first).
    static QString validTheme(const QString& theme);
    static double validThreshold(double value, double fallback);
    static int validAutosaveSeconds(int value);
    static QString validDevice(const QString& device);

Q_SIGNALS:
    void themeChanged();
    void nodeThresholdChanged();
    void edgeThresholdChanged();
    void maxFeatureNodesChanged();
    void topKChanged();
    void generateTokensChanged();
    void autosaveSecondsChanged();
    void figureDpiChanged();
    void deviceChanged();
    void lastFolderChanged();

private:
    void store(const char* key, const QVariant& value);

    std::unique_ptr<QSettings> m_ownSettings;
    QSettings* m_settings = nullptr;
    QString m_theme;
    double m_nodeThreshold = kDefaultNodeThreshold;
    double m_edgeThreshold = kDefaultEdgeThreshold;
    int m_maxFeatureNodes = kDefaultMaxFeatureNodes;
    int m_topK = kDefaultTopK;
    int m_generateTokens = kDefaultGenerateTokens;
    int m_autosaveSeconds = kDefaultAutosaveSeconds;
    int m_figureDpi = 300;
    QString m_device;
    QString m_lastFolder;
};

} // namespace cs::app
