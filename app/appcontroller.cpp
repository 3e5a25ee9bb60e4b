#include "appcontroller.h"

#include <QCoreApplication>
#include <QDir>
#include <QFileInfo>
#include <QKeySequence>
#include <QSettings>

#include <cs/engine.h>

#include <algorithm>
#include <chrono>

namespace cs::app {

namespace {

// Request tags: a newer request replaces a queued one with the same tag.
const QString kOpenTag = QStringLiteral("open");
const QString kPromptTag = QStringLiteral("prompt");
const QString kGenerateTag = QStringLiteral("generate");

const QString kLastModelFolderKey = QStringLiteral("explorer/lastModelFolder");

double millisecondsSince(std::chrono::steady_clock::time_point start)
{
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

QString formatDuration(double ms)
{
    if (ms < 1000)
        return QStringLiteral("%1 ms").arg(ms, 0, 'f', ms < 10 ? 1 : 0);
    return QStringLiteral("%1 s").arg(ms / 1000, 0, 'f', 2);
}

// A path as typed, or the local path of a file:// URL (what FolderDialog gives).
QString toLocalPath(const QString& pathOrUrl)
{
    const QString trimmed = pathOrUrl.trimmed();
    if (trimmed.startsWith(QLatin1String("file:"))) {
        const QUrl url(trimmed);
        if (url.isLocalFile())
            return QDir::cleanPath(url.toLocalFile());
    }
    return trimmed;
}

// Runs on the worker: the folder for a name or path, with a friendlier word when the
// default model is missing (an install without resources/models, say).
std::string resolveForOpen(const std::string& nameOrFolder)
{
    try {
        return cs::resolveModelFolder(nameOrFolder);
    } catch (const cs::Error& e) {
        if (nameOrFolder == cs::kDefaultModel)
            throw cs::Error(std::string("No model open: the default model ") + cs::kDefaultModel
                + " was not found; open a Hugging Face folder (" + e.what() + ")");
        throw;
    }
}

} // namespace

AppController::AppController(QObject* parent)
    : QObject(parent)
{
    m_debounce.setSingleShot(true);
    m_debounce.setInterval(kPromptDebounceMs);
    connect(&m_debounce, &QTimer::timeout, this, &AppController::runPrompt);
    connect(&m_worker, &EngineWorker::busyChanged, this, &AppController::busyChanged);
    connect(&m_worker, &EngineWorker::busyChanged, this, &AppController::updateUpToDate);
    m_statusText = QStringLiteral("No model open");
    m_explorer = new ExplorerController(m_worker, this);
    m_prompt = QString::fromLatin1(kStartupPrompt);
    // An opened session or graph brings its prompt: the prompt box, its tokens and the
    // next-token panels show that prompt, so Enter traces what the graph shows.
    connect(m_explorer, &ExplorerController::graphOpened, this, [this](const QString& prompt) {
        if (prompt.isEmpty() || prompt == m_prompt)
            return;
        m_prompt = prompt;
        Q_EMIT promptChanged();
        clearGeneration();
        runPrompt();
        updateUpToDate();
    });
    connect(m_explorer, &ExplorerController::statusOccurred, this, [this](const QString& message) {
        clearErrorFrom(QStringLiteral("explorer"));
        setStatus(message);
    });
    connect(m_explorer, &ExplorerController::errorOccurred, this,
        [this](const QString& message) { setError(QStringLiteral("explorer"), message); });
    connect(m_explorer, &ExplorerController::traceFinished, this, [this](bool ok) {
        if (ok) {
            clearErrorFrom(QStringLiteral("explorer"));
            setStatus(m_explorer->traceText());
        }
    });
}

AppController::~AppController() = default;

QString AppController::modelName() const
{
    return m_model ? QString::fromStdString(m_model->info.name) : QString();
}

QString AppController::modelFamily() const
{
    return m_model ? QString::fromStdString(m_model->info.family) : QString();
}

int AppController::modelLayers() const
{
    return m_model ? static_cast<int>(m_model->info.nLayers) : 0;
}

int AppController::modelDModel() const
{
    return m_model ? static_cast<int>(m_model->info.dModel) : 0;
}

int AppController::modelVocabSize() const
{
    return m_model ? static_cast<int>(m_model->info.vocabSize) : 0;
}

QString AppController::modelDevice() const
{
    return m_model ? QString::fromStdString(m_model->info.device) : QString();
}

QString AppController::modelFolder() const
{
    return m_model ? QString::fromStdString(m_model->info.folder) : QString();
}

QString AppController::modelInfo() const
{
    if (!m_model)
        return {};
    const cs::ModelInfo& info = m_model->info;
    QStringList parts;
    parts << QString::fromStdString(info.family);
    parts << QStringLiteral("%1 layers").arg(info.nLayers);
    parts << QStringLiteral("d_model %1").arg(info.dModel);
    if (info.nHeads > 0)
        parts << QStringLiteral("%1 heads").arg(info.nHeads);
    parts << QStringLiteral("vocab %1").arg(info.vocabSize);
    if (!info.dtype.empty())
        parts << QString::fromStdString(info.dtype);
    parts << QString::fromStdString(info.device);
    return parts.join(QStringLiteral(" · "));
}

QUrl AppController::browseFolder() const
{
    QString folder = modelFolder();
    if (folder.isEmpty())
        folder = QSettings().value(kLastModelFolderKey).toString();
    if (folder.isEmpty())
        return QUrl::fromLocalFile(QDir::homePath());
    const QFileInfo info(folder);
    const QDir parent = info.absoluteDir();
    return QUrl::fromLocalFile(parent.exists() ? parent.absolutePath() : QDir::homePath());
}

void AppController::setDevice(const QString& device)
{
    if (device == m_device)
        return;
    m_device = device;
    Q_EMIT deviceChanged();
}

void AppController::openModel(const QString& nameOrFolder)
{
    const QString target = toLocalPath(nameOrFolder);
    if (target.isEmpty()) {
        setError(kOpenTag, QStringLiteral("No model folder given"));
        return;
    }
    setLoading(true);
    setStatus(QStringLiteral("Opening %1…").arg(target));
    const std::string targetUtf8 = target.toStdString();
    const std::string device = m_device.toStdString();
    m_worker.request<ModelSnapshot>(
        kOpenTag,
        [targetUtf8, device](EngineState& state) {
            const auto start = std::chrono::steady_clock::now();
            const std::string folder = resolveForOpen(targetUtf8);
            std::shared_ptr<cs::ModelHandle> handle = cs::ModelHandle::open(folder, device);
            auto snapshot = std::make_shared<ModelSnapshot>();
            snapshot->info = handle->info();
            snapshot->loadMs = millisecondsSince(start);
            // Only a model that opened replaces the one before.
            state.model = std::move(handle);
            return std::shared_ptr<const ModelSnapshot>(std::move(snapshot));
        },
        [this](std::shared_ptr<const ModelSnapshot> snapshot) { onModelOpened(snapshot); },
        [this, target](const QString& message) {
            setLoading(false);
            setError(kOpenTag, message);
            setStatus(hasModel() ? QStringLiteral("Could not open %1; %2 stays open").arg(target, modelName())
                                 : QStringLiteral("No model open"));
            Q_EMIT modelOpenFinished(false);
        });
}

void AppController::onModelOpened(const std::shared_ptr<const ModelSnapshot>& snapshot)
{
    m_model = snapshot;
    QSettings().setValue(kLastModelFolderKey, QString::fromStdString(snapshot->info.folder));
    setLoading(false);
    clearErrorFrom(kOpenTag);
    // What was shown belongs to the previous model.
    m_analysis.reset();
    m_distribution.setDistribution(nullptr);
    m_promptTokens.setTokens(nullptr);
    clearGeneration();
    Q_EMIT modelChanged();
    setStatus(QStringLiteral("Opened %1 in %2").arg(modelName(), formatDuration(snapshot->loadMs)));
    Q_EMIT modelOpenFinished(true);
    runPrompt();
    // The explorer loads the model's transcoders and feature store, then traces the prompt.
    m_explorer->onModelOpened(QString::fromStdString(snapshot->info.folder), m_traceOnNextOpen ? m_prompt : QString());
    m_traceOnNextOpen = true;
}

void AppController::tracePrompt()
{
    runPrompt();
    if (hasModel())
        m_explorer->trace(m_prompt);
}

void AppController::setPrompt(const QString& prompt)
{
    if (prompt == m_prompt)
        return;
    m_prompt = prompt;
    Q_EMIT promptChanged();
    clearGeneration();
    if (hasModel())
        m_debounce.start();
    updateUpToDate();
}

void AppController::runPrompt()
{
    m_debounce.stop();
    if (!hasModel()) {
        setStatus(QStringLiteral("Open a model to see the next-token distribution"));
        return;
    }
    const QString prompt = m_prompt;
    const int topK = m_topK;
    m_worker.request<PromptAnalysis>(
        kPromptTag,
        [prompt, topK](EngineState& state) {
            if (!state.model)
                throw cs::Error("No model open");
            const auto start = std::chrono::steady_clock::now();
            auto analysis = std::make_shared<PromptAnalysis>();
            analysis->prompt = prompt;
            analysis->topK = topK;
            analysis->tokens.ids = state.model->encode(prompt.toStdString());
            analysis->tokens.texts = state.model->tokenTexts(analysis->tokens.ids);
            // An empty prompt without a BOS token has no position to predict from.
            if (!analysis->tokens.ids.empty())
                analysis->next.top = state.model->logits(analysis->tokens.ids, topK, false).top;
            analysis->elapsedMs = millisecondsSince(start);
            return std::shared_ptr<const PromptAnalysis>(std::move(analysis));
        },
        [this](std::shared_ptr<const PromptAnalysis> analysis) { onPromptAnalyzed(analysis); },
        [this](const QString& message) {
            setError(kPromptTag, message);
            setStatus(QStringLiteral("The prompt did not run"));
        });
}

void AppController::onPromptAnalyzed(const std::shared_ptr<const PromptAnalysis>& analysis)
{
    clearErrorFrom(kPromptTag);
    m_analysis = analysis;
    // The models share the snapshot (aliasing shared_ptrs), no copies.
    m_promptTokens.setTokens(std::shared_ptr<const PromptTokens>(analysis, &analysis->tokens));
    m_distribution.setDistribution(std::shared_ptr<const NextTokenDistribution>(analysis, &analysis->next));
    const auto nTokens = analysis->tokens.ids.size();
    if (nTokens == 0) {
        setStatus(QStringLiteral("Type a prompt"));
    } else {
        setStatus(QStringLiteral("%1 token%2 · top %3 in %4")
                      .arg(nTokens)
                      .arg(nTokens == 1 ? QString() : QStringLiteral("s"))
                      .arg(analysis->next.top.size())
                      .arg(formatDuration(analysis->elapsedMs)));
    }
    Q_EMIT promptAnalyzed();
    updateUpToDate();
}

bool AppController::isUpToDate() const
{
    return m_analysis && m_analysis->prompt == m_prompt && m_analysis->topK == m_topK && !m_debounce.isActive()
        && !m_worker.isBusy();
}

void AppController::updateUpToDate()
{
    const bool upToDate = isUpToDate();
    if (upToDate == m_upToDate)
        return;
    m_upToDate = upToDate;
    Q_EMIT upToDateChanged();
}

void AppController::setTopK(int topK)
{
    topK = std::clamp(topK, 1, kMaxTopK);
    if (topK == m_topK)
        return;
    m_topK = topK;
    Q_EMIT topKChanged();
    if (hasModel())
        runPrompt();
    updateUpToDate();
}

void AppController::generate(int maxNew)
{
    if (!hasModel()) {
        setStatus(QStringLiteral("Open a model to generate"));
        return;
    }
    maxNew = std::clamp(maxNew, 1, 512);
    const QString prompt = m_prompt;
    setStatus(QStringLiteral("Generating %1 tokens…").arg(maxNew));
    m_worker.request<GenerationSnapshot>(
        kGenerateTag,
        [prompt, maxNew](EngineState& state) {
            if (!state.model)
                throw cs::Error("No model open");
            const auto start = std::chrono::steady_clock::now();
            const std::vector<int64_t> ids = state.model->encode(prompt.toStdString());
            if (ids.empty())
                throw cs::Error("Type a prompt to continue (this tokenizer adds no BOS token)");
            cs::GenerateRequest request;
            request.maxNew = maxNew;
            request.temperature = 0.0; // greedy
            const cs::GenerateResult result = state.model->generate(ids, request);
            auto snapshot = std::make_shared<GenerationSnapshot>();
            snapshot->prompt = prompt;
            snapshot->text = QString::fromStdString(result.text);
            snapshot->nNew = static_cast<int64_t>(result.newIds.size());
            snapshot->elapsedMs = millisecondsSince(start);
            return std::shared_ptr<const GenerationSnapshot>(std::move(snapshot));
        },
        [this](std::shared_ptr<const GenerationSnapshot> snapshot) { onGenerated(snapshot); },
        [this](const QString& message) {
            setError(kGenerateTag, message);
            setStatus(QStringLiteral("Generation failed"));
        });
}

void AppController::onGenerated(const std::shared_ptr<const GenerationSnapshot>& snapshot)
{
    clearErrorFrom(kGenerateTag);
    // The prompt changed while generating: this continuation belongs to another prompt.
    if (snapshot->prompt != m_prompt)
        return;
    m_generation = snapshot->text;
    m_generationPrompt = snapshot->prompt;
    Q_EMIT generationChanged();
    setStatus(QStringLiteral("Generated %1 token%2 in %3")
                  .arg(snapshot->nNew)
                  .arg(snapshot->nNew == 1 ? QString() : QStringLiteral("s"))
                  .arg(formatDuration(snapshot->elapsedMs)));
}

QString AppController::aboutText() const
{
    const cs::TorchInfo torch = cs::torchInfo("auto");
    QString gpu = QStringLiteral("no GPU: the engine runs on the CPU");
    if (torch.cudaAvailable)
        gpu = QStringLiteral("GPU: %1").arg(QString::fromStdString(torch.gpuName));
    else if (torch.cudaCompiled)
        gpu = QStringLiteral("CUDA %1 built in; no GPU found, the engine runs on the CPU")
                  .arg(QString::fromStdString(torch.cudaVersion));
    return QStringLiteral("Circuitscope %1\n\nAttribution graphs through transcoder replacement models, as in "
                          "Anthropic's \"Circuit Tracing\" (2025).\n\nQt %2 · LibTorch %3\n%4")
        .arg(QCoreApplication::applicationVersion(), QString::fromLatin1(qVersion()),
            QString::fromStdString(torch.version), gpu);
}

QString AppController::shortcutText(const QVariant& shortcut) const
{
    QKeySequence sequence;
    if (shortcut.typeId() == QMetaType::QKeySequence) {
        sequence = shortcut.value<QKeySequence>();
    } else if (shortcut.typeId() == QMetaType::QString) {
        sequence = QKeySequence(shortcut.toString());
    } else if (shortcut.canConvert<int>()) {
        const auto bindings = QKeySequence::keyBindings(QKeySequence::StandardKey(shortcut.toInt()));
        if (!bindings.isEmpty())
            sequence = bindings.first();
    }
    return sequence.toString(QKeySequence::NativeText);
}

void AppController::clearError()
{
    if (m_errorText.isEmpty())
        return;
    m_errorText.clear();
    m_errorSource.clear();
    Q_EMIT errorTextChanged();
}

void AppController::setError(const QString& source, const QString& message)
{
    m_errorSource = source;
    if (message == m_errorText)
        return;
    m_errorText = message;
    Q_EMIT errorTextChanged();
}

void AppController::clearErrorFrom(const QString& source)
{
    if (m_errorSource == source)
        clearError();
}

void AppController::setStatus(const QString& text)
{
    if (text == m_statusText)
        return;
    m_statusText = text;
    Q_EMIT statusTextChanged();
}

void AppController::setLoading(bool loading)
{
    if (loading == m_loading)
        return;
    m_loading = loading;
    Q_EMIT loadingChanged();
}

void AppController::clearGeneration()
{
    if (m_generation.isEmpty() && m_generationPrompt.isEmpty())
        return;
    m_generation.clear();
    m_generationPrompt.clear();
    Q_EMIT generationChanged();
}

} // namespace cs::app
