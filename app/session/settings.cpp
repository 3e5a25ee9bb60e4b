#include "settings.h"

#include <QRegularExpression>

#include <algorithm>
#include <cmath>

namespace cs::app {

namespace {

int clampInt(int value, int lo, int hi)
{
    return std::clamp(value, lo, hi);
}

int readInt(QSettings* s, const char* key, int fallback)
{
    bool ok = false;
    const int v = s->value(QLatin1String(key), fallback).toInt(&ok);
    return ok ? v : fallback;
}

double readDouble(QSettings* s, const char* key, double fallback)
{
    bool ok = false;
    const double v = s->value(QLatin1String(key), fallback).toDouble(&ok);
    return ok ? v : fallback;
}

} // namespace

ExplorerSettings::ExplorerSettings(QSettings* settings, QObject* parent)
    : QObject(parent)
    , m_settings(settings)
{
    if (!m_settings) {
        m_ownSettings = std::make_unique<QSettings>();
        m_settings = m_ownSettings.get();
    }
    QSettings* s = m_settings;
    m_theme = validTheme(s->value(QStringLiteral("explorer/theme"), QStringLiteral("system")).toString());
    m_nodeThreshold
        = validThreshold(readDouble(s, "explorer/nodeThreshold", kDefaultNodeThreshold), kDefaultNodeThreshold);
    m_edgeThreshold
        = validThreshold(readDouble(s, "explorer/edgeThreshold", kDefaultEdgeThreshold), kDefaultEdgeThreshold);
    m_maxFeatureNodes = clampInt(readInt(s, "explorer/maxFeatureNodes", kDefaultMaxFeatureNodes), 0, 1000000);
    m_topK = clampInt(readInt(s, "explorer/topK", kDefaultTopK), 1, 100);
    m_generateTokens = clampInt(readInt(s, "explorer/generateTokens", kDefaultGenerateTokens), 1, 1024);
    m_autosaveSeconds = validAutosaveSeconds(readInt(s, "explorer/autosaveSeconds", kDefaultAutosaveSeconds));
    m_figureDpi = clampInt(readInt(s, "explorer/figureDpi", 300), 72, 2400);
    m_device = validDevice(s->value(QStringLiteral("explorer/device"), QStringLiteral("auto")).toString());
    m_lastFolder = s->value(QStringLiteral("explorer/lastFolder")).toString();
}

ExplorerSettings::~ExplorerSettings() = default;

QString ExplorerSettings::validTheme(const QString& theme)
{
    const QString t = theme.trimmed().toLower();
    if (t == QLatin1String("light") || t == QLatin1String("dark"))
        return t;
    return QStringLiteral("system");
}

double ExplorerSettings::validThreshold(double value, double fallback)
{
    if (!std::isfinite(value))
        return fallback;
    return std::clamp(value, 0.0, 1.0);
}

int ExplorerSettings::validAutosaveSeconds(int value)
{
    if (value <= 0)
        return 0;
    return clampInt(value, 5, 3600);
}

QString ExplorerSettings::validDevice(const QString& device)
{
    const QString d = device.trimmed().toLower();
    static const QRegularExpression pattern(QStringLiteral("^(auto|cpu|cuda|cuda:[0-9]{1,2})$"));
    return pattern.match(d).hasMatch() ? d : QStringLiteral("auto");
}

void ExplorerSettings::store(const char* key, const QVariant& value)
{
    m_settings->setValue(QLatin1String(key), value);
    m_settings->sync();
}

void ExplorerSettings::setTheme(const QString& theme)
{
    const QString v = validTheme(theme);
    if (v == m_theme)
        return;
    m_theme = v;
    store("explorer/theme", v);
    Q_EMIT themeChanged();
}

void ExplorerSettings::setNodeThreshold(double value)
{
    const double v = validThreshold(value, m_nodeThreshold);
    if (v == m_nodeThreshold)
        return;
    m_nodeThreshold = v;
    store("explorer/nodeThreshold", v);
    Q_EMIT nodeThresholdChanged();
}

void ExplorerSettings::setEdgeThreshold(double value)
{
    const double v = validThreshold(value, m_edgeThreshold);
    if (v == m_edgeThreshold)
        return;
    m_edgeThreshold = v;
    store("explorer/edgeThreshold", v);
    Q_EMIT edgeThresholdChanged();
}

void ExplorerSettings::setMaxFeatureNodes(int value)
{
    const int v = clampInt(value, 0, 1000000);
    if (v == m_maxFeatureNodes)
        return;
    m_maxFeatureNodes = v;
    store("explorer/maxFeatureNodes", v);
    Q_EMIT maxFeatureNodesChanged();
}

void ExplorerSettings::setTopK(int value)
{
    const int v = clampInt(value, 1, 100);
    if (v == m_topK)
        return;
    m_topK = v;
    store("explorer/topK", v);
    Q_EMIT topKChanged();
}

void ExplorerSettings::setGenerateTokens(int value)
{
    const int v = clampInt(value, 1, 1024);
    if (v == m_generateTokens)
        return;
    m_generateTokens = v;
    store("explorer/generateTokens", v);
    Q_EMIT generateTokensChanged();
}

void ExplorerSettings::setAutosaveSeconds(int value)
{
    const int v = validAutosaveSeconds(value);
    if (v == m_autosaveSeconds)
        return;
    m_autosaveSeconds = v;
    store("explorer/autosaveSeconds", v);
    Q_EMIT autosaveSecondsChanged();
}

void ExplorerSettings::setFigureDpi(int dpi)
{
    const int v = clampInt(dpi, 72, 2400);
    if (v == m_figureDpi)
        return;
    m_figureDpi = v;
    store("explorer/figureDpi", v);
    Q_EMIT figureDpiChanged();
}

void ExplorerSettings::setDevice(const QString& device)
{
    const QString v = validDevice(device);
    if (v == m_device)
        return;
    m_device = v;
    store("explorer/device", v);
    Q_EMIT deviceChanged();
}

void ExplorerSettings::setLastFolder(const QString& folder)
{
    if (folder == m_lastFolder)
        return;
    m_lastFolder = folder;
    store("explorer/lastFolder", folder);
    Q_EMIT lastFolderChanged();
}

void ExplorerSettings::resetToDefaults()
{
    setTheme(QStringLiteral("system"));
    setNodeThreshold(kDefaultNodeThreshold);
    setEdgeThreshold(kDefaultEdgeThreshold);
    setMaxFeatureNodes(kDefaultMaxFeatureNodes);
    setTopK(kDefaultTopK);
    setGenerateTokens(kDefaultGenerateTokens);
    setAutosaveSeconds(kDefaultAutosaveSeconds);
    setDevice(QStringLiteral("auto"));
    setLastFolder(QString());
}

} // namespace cs::app
