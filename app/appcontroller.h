#pragma once
// The explorer's one controller, a QML singleton: the open model, the prompt and what the
// engine said about it. It owns the engine worker and the list models QML shows; all its
// state lives on the UI thread and changes only when a snapshot arrives.

#include "engineworker.h"
#include "explorercontroller.h"
#include "filedialogs.h"
#include "snapshots.h"
#include "tokenchipsmodel.h"
#include "tokendistributionmodel.h"

#include <QObject>
#include <QString>
#include <QTimer>
#include <QUrl>
#include <QtQml/qqmlregistration.h>

namespace cs::app {

class AppController : public QObject {
    Q_OBJECT
    QML_ELEMENT
    QML_SINGLETON

    // The open model; hasModel is false until one opened.
    Q_PROPERTY(bool hasModel READ hasModel NOTIFY modelChanged)
    Q_PROPERTY(QString modelName READ modelName NOTIFY modelChanged)
    Q_PROPERTY(QString modelFamily READ modelFamily NOTIFY modelChanged)
    Q_PROPERTY(int modelLayers READ modelLayers NOTIFY modelChanged)
    Q_PROPERTY(int modelDModel READ modelDModel NOTIFY modelChanged)
    Q_PROPERTY(int modelVocabSize READ modelVocabSize NOTIFY modelChanged)
    Q_PROPERTY(QString modelDevice READ modelDevice NOTIFY modelChanged)
    Q_PROPERTY(QString modelFolder READ modelFolder NOTIFY modelChanged)
    // One line: "llama · 4 layers · d_model 128 · vocab 512 · F32 · cpu".
    Q_PROPERTY(QString modelInfo READ modelInfo NOTIFY modelChanged)
    // Where to start the folder dialog: the folder holding the last model opened.
    Q_PROPERTY(QUrl browseFolder READ browseFolder NOTIFY modelChanged)

    // The device models open on: cpu, cuda or auto.
    Q_PROPERTY(QString device READ device WRITE setDevice NOTIFY deviceChanged)

    Q_PROPERTY(bool busy READ busy NOTIFY busyChanged) // the engine has work queued or running
    Q_PROPERTY(bool loading READ loading NOTIFY loadingChanged) // a model is being opened
    Q_PROPERTY(QString errorText READ errorText NOTIFY errorTextChanged) // empty when all is well
    Q_PROPERTY(QString statusText READ statusText NOTIFY statusTextChanged)

    Q_PROPERTY(QString prompt READ prompt WRITE setPrompt NOTIFY promptChanged)
    // The prompt the shown tokens and distribution belong to; differs from prompt while a
    // newer one is waiting or running.
    Q_PROPERTY(QString analyzedPrompt READ analyzedPrompt NOTIFY promptAnalyzed)
    Q_PROPERTY(bool upToDate READ isUpToDate NOTIFY upToDateChanged)
    Q_PROPERTY(int topK READ topK WRITE setTopK NOTIFY topKChanged)
    Q_PROPERTY(int maxTopK READ maxTopK CONSTANT)
    // The last greedy continuation of the current prompt; empty when none.
    Q_PROPERTY(QString generation READ generation NOTIFY generationChanged)
    Q_PROPERTY(QString generationPrompt READ generationPrompt NOTIFY generationChanged)

    Q_PROPERTY(cs::app::TokenDistributionModel* distribution READ distribution CONSTANT)
    Q_PROPERTY(cs::app::TokenChipsModel* promptTokens READ promptTokens CONSTANT)
    // The attribution-graph explorer of the open model.
    Q_PROPERTY(cs::app::ExplorerController* explorer READ explorer CONSTANT)
    // The open, save and export dialogs (Qt Widgets' file dialog: native where the platform has one).
    Q_PROPERTY(cs::app::FileDialogs* fileDialogs READ fileDialogs CONSTANT)

public:
    // Typing waits this long for the next key before running the model.
    static constexpr int kPromptDebounceMs = 150;
    static constexpr int kDefaultTopK = 10;
    static constexpr int kMaxTopK = 100;
    // What the explorer traces at start-up when no prompt was given.
    static constexpr const char* kStartupPrompt = "Fact: the capital of the state containing Dallas is";

    explicit AppController(QObject* parent = nullptr);
    ~AppController() override;

    bool hasModel() const { return m_model != nullptr; }
    QString modelName() const;
    QString modelFamily() const;
    int modelLayers() const;
    int modelDModel() const;
    int modelVocabSize() const;
    QString modelDevice() const;
    QString modelFolder() const;
    QString modelInfo() const;
    QUrl browseFolder() const;

    QString device() const { return m_device; }
    void setDevice(const QString& device);

    bool busy() const { return m_worker.isBusy(); }
    bool loading() const { return m_loading; }
    QString errorText() const { return m_errorText; }
    QString statusText() const { return m_statusText; }

    QString prompt() const { return m_prompt; }
    QString analyzedPrompt() const { return m_analysis ? m_analysis->prompt : QString(); }
    // The shown distribution is for the current prompt and top-k, and nothing is pending.
    bool isUpToDate() const;
    int topK() const { return m_topK; }
    int maxTopK() const { return kMaxTopK; }
    QString generation() const { return m_generation; }
    QString generationPrompt() const { return m_generationPrompt; }

    TokenDistributionModel* distribution() { return &m_distribution; }
    TokenChipsModel* promptTokens() { return &m_promptTokens; }
    EngineWorker& worker() { return m_worker; }
    ExplorerController* explorer() { return m_explorer; }
    FileDialogs* fileDialogs() { return &m_fileDialogs; }
    // Traces the current prompt as an attribution graph (Enter in the prompt box).
    Q_INVOKABLE void tracePrompt();
    // Whether the next model to open traces the prompt (true by default; a file opened at
    // start-up turns it off once).
    void setTraceOnNextOpen(bool trace) { m_traceOnNextOpen = trace; }

    // Opens a Hugging Face folder (a path or a file:// URL) or a shipped model by name, on
    // the worker. On failure the error shows and the model open before stays open.
    Q_INVOKABLE void openModel(const QString& nameOrFolder);
    // Sets the prompt and runs it after kPromptDebounceMs without another change.
    Q_INVOKABLE void setPrompt(const QString& prompt);
    // Runs the current prompt now (Enter).
    Q_INVOKABLE void runPrompt();
    Q_INVOKABLE void setTopK(int topK);
    // A greedy continuation of the current prompt, maxNew tokens long.
    Q_INVOKABLE void generate(int maxNew = 16);
    Q_INVOKABLE void clearError();
    // Help ▸ About: the program's, Qt's and LibTorch's versions and what the engine can reach.
    Q_INVOKABLE QString aboutText() const;
    // A shortcut as the platform writes it ("Ctrl+S"; a StandardKey as its first binding), for
    // menu items: Qt Quick Controls' menus do not show an Action's shortcut themselves.
    Q_INVOKABLE QString shortcutText(const QVariant& shortcut) const;

Q_SIGNALS:
    void modelChanged();
    void deviceChanged();
    void busyChanged();
    void loadingChanged();
    void errorTextChanged();
    void statusTextChanged();
    void promptChanged();
    void upToDateChanged();
    void topKChanged();
    void generationChanged();
    // A prompt run's snapshot reached the models.
    void promptAnalyzed();
    // An open request ended; ok false when it failed (errorText says why).
    void modelOpenFinished(bool ok);

private:
    void onModelOpened(const std::shared_ptr<const ModelSnapshot>& snapshot);
    void onPromptAnalyzed(const std::shared_ptr<const PromptAnalysis>& analysis);
    void onGenerated(const std::shared_ptr<const GenerationSnapshot>& snapshot);
    // source: which kind of request failed, so its next success clears the message.
    void setError(const QString& source, const QString& message);
    void clearErrorFrom(const QString& source);
    void setStatus(const QString& text);
    void setLoading(bool loading);
    void clearGeneration();

    void updateUpToDate();

    std::shared_ptr<const ModelSnapshot> m_model;
    std::shared_ptr<const PromptAnalysis> m_analysis; // what the models show
    bool m_upToDate = false;
    QString m_device = QStringLiteral("auto");
    bool m_loading = false;
    QString m_errorText;
    QString m_errorSource;
    QString m_statusText;
    QString m_prompt;
    int m_topK = kDefaultTopK;
    QString m_generation;
    QString m_generationPrompt;
    QTimer m_debounce;
    TokenDistributionModel m_distribution;
    TokenChipsModel m_promptTokens;
    EngineWorker m_worker; // joined first on destruction, before the models its results fill
    bool m_traceOnNextOpen = true;
    ExplorerController* m_explorer = nullptr; // a child: deleted after m_worker is joined
    FileDialogs m_fileDialogs;
};

} // namespace cs::app
