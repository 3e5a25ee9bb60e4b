#include "recentfiles.h"

#include <QDir>
#include <QFileInfo>
#include <QVariantMap>

#include <algorithm>

namespace cs::app {

namespace {

const QString kKey = QStringLiteral("recent/files");

QString normalKind(const QString& kind)
{
    if (kind == QLatin1String("graph") || kind == QLatin1String("model"))
        return kind;
    return QStringLiteral("session");
}

} // namespace

RecentFilesModel::RecentFilesModel(QSettings* settings, QObject* parent)
    : QAbstractListModel(parent)
    , m_settings(settings)
{
    if (!m_settings) {
        m_ownSettings = std::make_unique<QSettings>();
        m_settings = m_ownSettings.get();
    }
    load();
}

QString RecentFilesModel::canonical(const QString& path)
{
    const QFileInfo info(path);
    const QString c = info.canonicalFilePath(); // empty when the file is gone
    return c.isEmpty() ? QDir::cleanPath(info.absoluteFilePath()) : c;
}

void RecentFilesModel::load()
{
    m_entries.clear();
    const QVariantList list = m_settings->value(kKey).toList();
    for (const QVariant& v : list) {
        const QVariantMap m = v.toMap();
        const QString path = m.value(QStringLiteral("path")).toString();
        if (path.isEmpty())
            continue;
        const QString c = canonical(path);
        if (std::any_of(m_entries.begin(), m_entries.end(), [&](const Entry& e) { return e.path == c; }))
            continue; // a file edited by hand may repeat
        m_entries.push_back({ c, normalKind(m.value(QStringLiteral("kind")).toString()), QFileInfo::exists(c) });
        if (static_cast<int>(m_entries.size()) == kMaxRecentFiles)
            break;
    }
}

void RecentFilesModel::save()
{
    QVariantList list;
    for (const Entry& e : m_entries)
        list.push_back(QVariantMap { { QStringLiteral("path"), e.path }, { QStringLiteral("kind"), e.kind } });
    m_settings->setValue(kKey, list);
    m_settings->sync();
}

void RecentFilesModel::add(const QString& path, const QString& kind)
{
    if (path.isEmpty())
        return;
    const QString c = canonical(path);
    const int before = static_cast<int>(m_entries.size());
    beginResetModel();
    m_entries.erase(std::remove_if(m_entries.begin(), m_entries.end(), [&](const Entry& e) { return e.path == c; }),
        m_entries.end());
    m_entries.insert(m_entries.begin(), { c, normalKind(kind), QFileInfo::exists(c) });
    if (static_cast<int>(m_entries.size()) > kMaxRecentFiles)
        m_entries.resize(kMaxRecentFiles);
    endResetModel();
    save();
    if (static_cast<int>(m_entries.size()) != before)
        Q_EMIT countChanged();
}

void RecentFilesModel::remove(const QString& path)
{
    const QString c = canonical(path);
    auto it = std::find_if(
        m_entries.begin(), m_entries.end(), [&](const Entry& e) { return e.path == c || e.path == path; });
    if (it == m_entries.end())
        return;
    const int row = static_cast<int>(it - m_entries.begin());
    beginRemoveRows(QModelIndex(), row, row);
    m_entries.erase(it);
    endRemoveRows();
    save();
    Q_EMIT countChanged();
}

void RecentFilesModel::clear()
{
    if (m_entries.empty()) {
        save();
        return;
    }
    beginResetModel();
    m_entries.clear();
    endResetModel();
    save();
    Q_EMIT countChanged();
}

void RecentFilesModel::refresh()
{
    beginResetModel();
    for (Entry& e : m_entries)
        e.exists = QFileInfo::exists(e.path);
    endResetModel();
}

QString RecentFilesModel::pathAt(int row) const
{
    return row >= 0 && row < static_cast<int>(m_entries.size()) ? m_entries[row].path : QString();
}

int RecentFilesModel::rowCount(const QModelIndex& parent) const
{
    return parent.isValid() ? 0 : static_cast<int>(m_entries.size());
}

QVariant RecentFilesModel::data(const QModelIndex& index, int role) const
{
    if (!checkIndex(index, CheckIndexOption::IndexIsValid | CheckIndexOption::ParentIsInvalid))
        return {};
    const Entry& e = m_entries[static_cast<size_t>(index.row())];
    switch (role) {
    case Qt::DisplayRole:
    case NameRole:
        return QFileInfo(e.path).fileName();
    case PathRole:
        return e.path;
    case FolderRole:
        return QDir::toNativeSeparators(QFileInfo(e.path).absolutePath());
    case ExistsRole:
        return e.exists;
    case KindRole:
        return e.kind;
    default:
        return {};
    }
}

QHash<int, QByteArray> RecentFilesModel::roleNames() const
{
    return { { PathRole, "path" }, { NameRole, "name" }, { FolderRole, "folder" }, { ExistsRole, "exists" },
        { KindRole, "kind" } };
}

} // namespace cs::app
