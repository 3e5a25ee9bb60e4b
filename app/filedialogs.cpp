#include "filedialogs.h"

#include <QApplication>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QSettings>
#include <QStandardPaths>
#include <QUrl>
#include <QWindow>

namespace cs::app {

namespace {

QString settingsKey(const QString& purpose)
{
    return QStringLiteral("dialogs/%1/folder").arg(purpose);
}

} // namespace

FileDialogs::FileDialogs(QObject* parent)
    : QObject(parent)
{
}

FileDialogs::~FileDialogs()
{
    delete m_dialog.data();
}

QFileDialog* FileDialogs::current() const
{
    return m_dialog.data();
}

QString FileDialogs::startFolder(const QString& purpose) const
{
    const QString last = QSettings().value(settingsKey(purpose)).toString();
    if (!last.isEmpty() && QFileInfo(last).isDir())
        return last;
    const QString documents = QStandardPaths::writableLocation(QStandardPaths::DocumentsLocation);
    if (!documents.isEmpty() && QFileInfo(documents).isDir())
        return documents;
    return QDir::homePath();
}

void FileDialogs::save(const QString& purpose, const QString& title, const QString& acceptText,
    const QStringList& filters, const QString& defaultSuffix, const QString& suggestedName)
{
    auto* dialog = new QFileDialog(nullptr, title, startFolder(purpose));
    dialog->setAcceptMode(QFileDialog::AcceptSave);
    dialog->setFileMode(QFileDialog::AnyFile);
    dialog->setNameFilters(filters);
    if (!defaultSuffix.isEmpty())
        dialog->setDefaultSuffix(defaultSuffix);
    if (!suggestedName.isEmpty())
        dialog->selectFile(suggestedName);
    dialog->setLabelText(QFileDialog::Accept, acceptText);
    show(dialog, purpose);
}

void FileDialogs::open(const QString& purpose, const QString& title, const QStringList& filters)
{
    auto* dialog = new QFileDialog(nullptr, title, startFolder(purpose));
    dialog->setAcceptMode(QFileDialog::AcceptOpen);
    dialog->setFileMode(QFileDialog::ExistingFile);
    dialog->setNameFilters(filters);
    show(dialog, purpose);
}

void FileDialogs::openFolder(const QString& purpose, const QString& title, const QString& start)
{
    const QString local = start.startsWith(QLatin1String("file:")) ? QUrl(start).toLocalFile() : start;
    auto* dialog
        = new QFileDialog(nullptr, title, !local.isEmpty() && QFileInfo(local).isDir() ? local : startFolder(purpose));
    dialog->setAcceptMode(QFileDialog::AcceptOpen);
    dialog->setFileMode(QFileDialog::Directory);
    dialog->setOption(QFileDialog::ShowDirsOnly);
    show(dialog, purpose);
}

void FileDialogs::show(QFileDialog* dialog, const QString& purpose)
{
    if (!qobject_cast<QApplication*>(QCoreApplication::instance())) {
        // A QGuiApplication cannot show widgets; say so rather than crash.
        delete dialog;
        qWarning("FileDialogs: file dialogs need a QApplication");
        Q_EMIT rejected(purpose);
        return;
    }
    delete m_dialog.data(); // one at a time
    m_dialog = dialog;
    dialog->setAttribute(Qt::WA_DeleteOnClose);
    dialog->setWindowModality(Qt::ApplicationModal);
    // Keep it above the explorer's window, which is a QQuickWindow, not a widget.
    if (QWindow* owner = QGuiApplication::focusWindow()) {
        dialog->winId();
        if (dialog->windowHandle())
            dialog->windowHandle()->setTransientParent(owner);
    }
    connect(dialog, &QFileDialog::fileSelected, this, [this, purpose](const QString& path) {
        const QFileInfo info(path);
        QSettings().setValue(settingsKey(purpose), info.isDir() ? info.absoluteFilePath() : info.absolutePath());
        Q_EMIT accepted(purpose, path);
    });
    connect(dialog, &QFileDialog::rejected, this, [this, purpose] { Q_EMIT rejected(purpose); });
    dialog->open();
}

} // namespace cs::app
