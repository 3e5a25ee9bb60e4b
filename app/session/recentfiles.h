#pragma once
// The recent files list (File > Open Recent, the start page): most recent first, one row per
// file (deduplicated by canonical path, so a symlink and its target are one entry), at most
// kMaxRecentFiles, persisted in QSettings under "recent/files" as a list of {path, kind} maps.

#include <QAbstractListModel>
#include <QSettings>
#include <QString>

#include <memory>
#include <vector>

namespace cs::app {

constexpr int kMaxRecentFiles = 10;

class RecentFilesModel : public QAbstractListModel {
    Q_OBJECT
    Q_PROPERTY(int count READ rowCount NOTIFY countChanged)
public:
    enum Role {
        PathRole = Qt::UserRole + 1, // absolute path, as added (canonical when the file existed)
        NameRole, // the file name
        FolderRole, // the folder, native separators
        ExistsRole, // whether the file is there (checked on add() and refresh())
        KindRole, // "session", "graph" or "model"
    };
    Q_ENUM(Role)

    // `settings` (not owned) persists the list; null uses a default QSettings (the application's).
    explicit RecentFilesModel(QSettings* settings = nullptr, QObject* parent = nullptr);

    // Puts `path` first (moving it up if listed), drops the oldest past kMaxRecentFiles, saves.
    // kind: "session", "graph" or "model"; anything else is stored as "session". An empty path
    // is ignored.
    Q_INVOKABLE void add(const QString& path, const QString& kind);
    Q_INVOKABLE void remove(const QString& path); // by canonical path; no-op when not listed
    Q_INVOKABLE void clear();
    // Re-checks which files exist (one model reset).
    Q_INVOKABLE void refresh();
    Q_INVOKABLE QString pathAt(int row) const;

    int rowCount(const QModelIndex& parent = QModelIndex()) const override;
    QVariant data(const QModelIndex& index, int role = Qt::DisplayRole) const override;
    QHash<int, QByteArray> roleNames() const override;

Q_SIGNALS:
    void countChanged();

private:
    struct Entry {
        QString path;
        QString kind;
        bool exists = false;
    };
    static QString canonical(const QString& path);
    void load();
    void save();

    std::unique_ptr<QSettings> m_ownSettings;
    QSettings* m_settings = nullptr;
    std::vector<Entry> m_entries;
};

} // namespace cs::app
