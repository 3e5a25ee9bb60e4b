#pragma once
// The explorer's open, save and export dialogs: Qt Widgets' QFileDialog, which is the
// platform's own dialog where the platform theme has one (GTK, KDE, Windows, macOS) and Qt's
// widget dialog elsewhere. Qt Quick Dialogs 6.4's fallback, which the window used before, has
// no file-name field (a typed path needed a hidden Ctrl+L), says "Open" on Save and opened in
// the program's own folder. These dialogs name their button after what they do, accept a
// typed name or path with Enter, and start in the folder last used for the same purpose, else
// the user's documents folder. Window-modal and asynchronous: the answer comes as a signal.
// Needs a QApplication (main.cpp makes one).

#include <QObject>
#include <QPointer>
#include <QString>
#include <QStringList>
#include <QtQml/qqmlregistration.h>

class QFileDialog;

namespace cs::app {

class FileDialogs : public QObject {
    Q_OBJECT
    QML_ELEMENT
    QML_UNCREATABLE("owned by AppController")
public:
    explicit FileDialogs(QObject* parent = nullptr);
    ~FileDialogs() override;

    // purpose: a short name ("session", "figure", "graph-json", "open") that the answer carries
    // and under which the folder is remembered. acceptText: the button ("Save", "Export").
    // filters: "Circuitscope sessions (*.circuitscope.json)" and the like; defaultSuffix is
    // added to a typed name without one; suggestedName fills the name field.
    Q_INVOKABLE void save(const QString& purpose, const QString& title, const QString& acceptText,
        const QStringList& filters, const QString& defaultSuffix = {}, const QString& suggestedName = {});
    Q_INVOKABLE void open(const QString& purpose, const QString& title, const QStringList& filters);
    // A folder (a model, a transcoder set); startFolder overrides the remembered one when given.
    Q_INVOKABLE void openFolder(const QString& purpose, const QString& title, const QString& startFolder = {});

    // Where a dialog for `purpose` starts: the last folder used for it, else Documents (home
    // when there is none). Never the program's folder.
    QString startFolder(const QString& purpose) const;
    // The dialog on screen, or null (tests drive it).
    QFileDialog* current() const;

Q_SIGNALS:
    void accepted(const QString& purpose, const QString& path);
    void rejected(const QString& purpose);

private:
    void show(QFileDialog* dialog, const QString& purpose);

    QPointer<QFileDialog> m_dialog;
};

} // namespace cs::app
