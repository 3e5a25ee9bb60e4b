// Transcoder sets on disk in circuit-tracer's formats: save/load round trips of both
// architectures and every activation; folders written here tensor by tensor exactly as
// circuit-tracer writes them, checked against reconstructions computed with plain ATen ops
// from the raw tensors; and every kind of broken folder refused with a message that names the
// file and the problem (run under ASan in CI).

#include "hf_fixtures.h"

#include "cs/config.h"
#include "cs/error.h"
#include "cs/safetensors.h"
#include "cs/transcoder.h"

#include <ATen/ATen.h>

#include <QDir>
#include <QFile>
#include <QTemporaryDir>
#include <QtTest>
#include <nlohmann/json.hpp>
#include <sys/resource.h>
#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <memory>
#include <set>

using cs::transcoder::Activation;
using cs::transcoder::Architecture;
using cs::transcoder::LayerWeights;
using cs::transcoder::TranscoderConfig;
using cs::transcoder::TranscoderSet;
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;
using SetPtr = std::shared_ptr<const TranscoderSet>;

namespace {

constexpr int64_t kLayers = 3; // n_layers
constexpr int64_t kDModel = 8; // d_model
constexpr int64_t kFeatures = 16; // n_features per layer
constexpr int64_t kTopK = 4; // TopK: features kept per token
constexpr int64_t kPos = 5; // n_pos of the random inputs

// A set of random weights built in memory, as a trainer would.
SetPtr randomSet(Architecture arch, Activation act, bool skip, uint64_t seed = 7, int64_t nLayers = kLayers)
{
    at::manual_seed(seed);
    TranscoderConfig c;
    c.architecture = arch;
    c.activation = act;
    c.topK = act == Activation::TopK ? kTopK : 0;
    c.nLayers = nLayers;
    c.dModel = kDModel;
    c.nFeatures = kFeatures;
    c.skip = skip;
    c.inputHook = cs::model::Hook::ResidMid;
    c.inputHookName = "hook_resid_mid";
    c.outputHookName = "hook_mlp_out";
    c.modelName = "tiny/model";
    c.scan = "round-trip";
    std::vector<LayerWeights> layers;
    for (int64_t l = 0; l < nLayers; ++l) {
        const int64_t nOut = arch == Architecture::CrossLayer ? nLayers - l : 1;
        LayerWeights w;
        w.encoder = at::randn({ kFeatures, kDModel }) * 0.5; // [n_features, d_model]
        w.encoderBias = at::randn({ kFeatures }) * 0.1;
        if (act == Activation::JumpReLU)
            w.threshold = at::rand({ kFeatures }) * 0.5;
        w.decoder = at::randn({ kFeatures, nOut, kDModel }) * 0.3; // [n_features, n_out, d_model]
        w.decoderBias = at::randn({ kDModel }) * 0.1;
        if (skip)
            w.skip = at::randn({ kDModel, kDModel }) * 0.2;
        layers.push_back(std::move(w));
    }
    return TranscoderSet::fromWeights(c, std::move(layers), "cpu");
}

at::Tensor rounded(const at::Tensor& t, at::ScalarType stored)
{
    return t.defined() ? t.to(stored).to(at::kFloat) : t;
}

// The set with every weight rounded through the stored dtype: what a load must give back.
SetPtr roundedSet(const TranscoderSet& set, at::ScalarType stored)
{
    std::vector<LayerWeights> layers;
    for (int64_t l = 0; l < set.nLayers(); ++l) {
        LayerWeights w;
        w.encoder = rounded(set.encoder(l), stored);
        w.encoderBias = rounded(set.encoderBias(l), stored);
        w.threshold = rounded(set.threshold(l), stored);
        w.decoder = rounded(set.decoder(l), stored);
        w.decoderBias = rounded(set.decoderBias(l), stored);
        w.skip = rounded(set.skip(l), stored);
        layers.push_back(std::move(w));
    }
    return TranscoderSet::fromWeights(set.config(), std::move(layers), "cpu");
}

bool sameTensor(const at::Tensor& a, const at::Tensor& b)
{
    if (a.defined() != b.defined())
        return false;
    return !a.defined() || (a.sizes() == b.sizes() && at::equal(a.cpu(), b.cpu()));
}

bool closeTensor(const at::Tensor& a, const at::Tensor& b, double rtol, double atol)
{
    if (a.defined() != b.defined())
        return false;
    return !a.defined() || (a.sizes() == b.sizes() && at::allclose(a.cpu(), b.cpu(), rtol, atol));
}

// Relative rounding of a stored dtype (half an ulp, doubled for slack).
double precisionOf(at::ScalarType stored)
{
    return stored == at::kHalf ? 1e-3 : stored == at::kBFloat16 ? 8e-3 : 0.0;
}

at::ScalarType scalarTypeOf(const QString& dtype)
{
    return cs::io::toScalarType(cs::io::dtypeFromName(dtype.toStdString()));
}

// This process's peak resident memory so far (getrusage's ru_maxrss), in KiB.
int64_t peakResidentKiB()
{
    struct rusage usage { };
    ::getrusage(RUSAGE_SELF, &usage);
    return usage.ru_maxrss;
}

std::string messageOf(const std::function<void()>& f)
{
    try {
        f();
    } catch (const cs::Error& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("NOT A cs::Error: ") + e.what();
    }
    return "NO ERROR";
}

// Every tensor of a safetensors file, copied out of the mapping.
NamedTensors readTensors(const QString& path)
{
    auto file = cs::io::SafetensorsFile::open(path.toStdString());
    NamedTensors out;
    for (const auto& info : file->tensors())
        out.emplace_back(info.name, file->tensor(info.name).clone());
    return out;
}

// Writes tensors as they are (each in its own dtype), as safetensors' save_file does.
void writeTensors(const QString& path, const NamedTensors& tensors)
{
    cs::io::SafetensorsWriter w;
    for (const auto& [name, t] : tensors)
        w.add(name, t);
    w.write(path.toStdString());
}

void editTensors(const QString& path, const std::function<void(NamedTensors&)>& edit)
{
    NamedTensors t = readTensors(path);
    edit(t);
    writeTensors(path, t);
}

at::Tensor& tensorNamed(NamedTensors& tensors, const std::string& name)
{
    for (auto& [n, t] : tensors)
        if (n == name)
            return t;
    throw std::runtime_error("test: no tensor " + name);
}

std::string readText(const QString& path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        throw std::runtime_error("test: cannot read " + path.toStdString());
    return f.readAll().toStdString();
}

// The reference activation, written from the definitions in cs/transcoder.h.
at::Tensor referenceActivation(const at::Tensor& pre, Activation act, const at::Tensor& threshold, int64_t k)
{
    switch (act) {
    case Activation::JumpReLU:
        return at::where(pre > threshold, pre, at::zeros_like(pre));
    case Activation::ReLU:
        return at::clamp_min(pre, 0);
    case Activation::TopK: {
        const at::Tensor idx = std::get<1>(at::topk(pre, k, -1));
        const at::Tensor keep = at::zeros_like(pre).scatter_(-1, idx, 1.0);
        return at::clamp_min(pre, 0) * keep;
    }
    }
    return pre;
}

} // namespace

class TestTranscoderFormat : public QObject {
    Q_OBJECT

    std::unique_ptr<QTemporaryDir> m_dir;

    // A fresh folder for the current test function and data row.
    QString folder(const QString& name = QString())
    {
        QString tag = QString::fromLatin1(QTest::currentTestFunction());
        if (QTest::currentDataTag())
            tag += "-" + QString::fromLatin1(QTest::currentDataTag());
        for (QChar& ch : tag)
            if (!ch.isLetterOrNumber() && ch != '-')
                ch = '_';
        if (!name.isEmpty())
            tag += "-" + name;
        const QString path = m_dir->filePath(tag);
        QDir(path).removeRecursively();
        QDir().mkpath(path);
        return path;
    }

    // `set`'s weights under config `c` (a skip-less ReLU set), saved and loaded back.
    SetPtr savedWithConfig(const TranscoderSet& set, const TranscoderConfig& c)
    {
        std::vector<LayerWeights> layers;
        for (int64_t l = 0; l < kLayers; ++l)
            layers.push_back({ set.encoder(l), set.encoderBias(l), {}, set.decoder(l), set.decoderBias(l), {} });
        const QString dir = folder();
        TranscoderSet::fromWeights(c, layers, "cpu")->save(dir.toStdString());
        return TranscoderSet::load(dir.toStdString());
    }

private Q_SLOTS:
    void initTestCase()
    {
        m_dir = std::make_unique<QTemporaryDir>(cs::test::testTempRoot() + "/tst_transcoder_format-XXXXXX");
        QVERIFY(m_dir->isValid());
    }

    void roundTrip_data()
    {
        QTest::addColumn<int>("arch");
        QTest::addColumn<int>("act");
        QTest::addColumn<bool>("skip");
        QTest::addColumn<QString>("dtype");
        const int plt = int(Architecture::PerLayer), clt = int(Architecture::CrossLayer);
        const int jump = int(Activation::JumpReLU), relu = int(Activation::ReLU), topk = int(Activation::TopK);
        QTest::newRow("plt jump_relu f32") << plt << jump << false << "F32";
        QTest::newRow("plt jump_relu skip bf16") << plt << jump << true << "BF16";
        QTest::newRow("plt relu skip f32") << plt << relu << true << "F32";
        QTest::newRow("plt topk f16") << plt << topk << false << "F16";
        QTest::newRow("clt jump_relu f32") << clt << jump << false << "F32";
        QTest::newRow("clt jump_relu skip f16") << clt << jump << true << "F16";
        QTest::newRow("clt relu bf16") << clt << relu << false << "BF16";
        QTest::newRow("clt topk skip f32") << clt << topk << true << "F32";
    }
    void roundTrip()
    {
        QFETCH(int, arch);
        QFETCH(int, act);
        QFETCH(bool, skip);
        QFETCH(QString, dtype);
        const at::ScalarType stored = scalarTypeOf(dtype);
        const SetPtr original = randomSet(Architecture(arch), Activation(act), skip);
        const QString dir = folder();
        original->save(dir.toStdString(), dtype.toStdString());
        const SetPtr want = roundedSet(*original, stored);

        TranscoderSet::LoadOptions eagerOptions;
        eagerOptions.device = "cpu";
        eagerOptions.lazyDecoders = false;
        TranscoderSet::LoadOptions lazyOptions = eagerOptions;
        lazyOptions.lazyDecoders = true;
        const SetPtr eager = TranscoderSet::load(dir.toStdString(), eagerOptions);
        const SetPtr lazy = TranscoderSet::load(dir.toStdString(), lazyOptions);

        // decoderRows on the lazy set before anything materializes its decoders.
        const at::Tensor ids = at::tensor({ int64_t(3), int64_t(0), kFeatures - 1, int64_t(3) });
        for (int64_t l = 0; l < kLayers; ++l)
            QVERIFY(sameTensor(lazy->decoderRows(l, ids), want->decoder(l).index_select(0, ids)));

        const double tol = precisionOf(stored);
        for (const SetPtr& got : { eager, lazy }) {
            const TranscoderConfig& c = got->config();
            QCOMPARE(int(c.architecture), arch);
            QCOMPARE(int(c.activation), act);
            QCOMPARE(c.topK, original->config().topK);
            QCOMPARE(c.nLayers, kLayers);
            QCOMPARE(c.dModel, kDModel);
            QCOMPARE(c.nFeatures, kFeatures);
            QCOMPARE(c.skip, skip);
            QCOMPARE(c.inputHook, cs::model::Hook::ResidMid);
            QCOMPARE(c.inputHookName, std::string("hook_resid_mid"));
            QCOMPARE(c.outputHook, cs::model::Hook::MlpOut);
            QCOMPARE(c.outputHookName, std::string("hook_mlp_out"));
            QCOMPARE(c.modelName, std::string("tiny/model"));
            QCOMPARE(c.scan, std::string("round-trip"));
            QCOMPARE(got->folder(), dir.toStdString());
            for (int64_t l = 0; l < kLayers; ++l) {
                // Exactly the stored values, and those within the dtype's precision of the originals.
                QVERIFY(sameTensor(got->encoder(l), want->encoder(l)));
                QVERIFY(sameTensor(got->encoderBias(l), want->encoderBias(l)));
                QVERIFY(sameTensor(got->threshold(l), want->threshold(l)));
                QVERIFY(sameTensor(got->decoderBias(l), want->decoderBias(l)));
                QVERIFY(sameTensor(got->skip(l), want->skip(l)));
                QVERIFY(sameTensor(got->decoder(l), want->decoder(l)));
                QVERIFY(closeTensor(got->encoder(l), original->encoder(l), tol, 1e-6));
                QVERIFY(closeTensor(got->decoder(l), original->decoder(l), tol, 1e-6));
                QVERIFY(closeTensor(got->skip(l), original->skip(l), tol, 1e-6));
                QVERIFY(closeTensor(got->threshold(l), original->threshold(l), tol, 1e-6));
                QVERIFY(sameTensor(got->decoderRows(l, ids), got->decoder(l).index_select(0, ids)));
            }
        }
        // A lazy decoder materializes once.
        QCOMPARE(lazy->decoder(1).data_ptr(), lazy->decoder(1).data_ptr());

        // Encoding and reconstruction on random inputs agree with the stored weights'.
        at::manual_seed(11);
        const at::Tensor x = at::randn({ kLayers, 2, kPos, kDModel }); // [n_layers, batch, n_pos, d_model]
        std::vector<at::Tensor> actsGot, actsWant;
        for (int64_t l = 0; l < kLayers; ++l) {
            actsGot.push_back(lazy->encode(l, x[l]));
            actsWant.push_back(want->encode(l, x[l]));
            QVERIFY(closeTensor(actsGot.back(), actsWant.back(), 1e-5, 1e-6));
            QVERIFY(closeTensor(eager->encode(l, x[l]), actsWant.back(), 1e-5, 1e-6));
        }
        QVERIFY(actsWant[0].gt(0).any().item<bool>()); // the comparison is not of zeros
        for (int64_t t = 0; t < kLayers; ++t) {
            const at::Tensor y = want->decode(t, actsWant, x[t]);
            QVERIFY(closeTensor(lazy->decode(t, actsGot, x[t]), y, 1e-5, 1e-5));
            QVERIFY(closeTensor(eager->decode(t, actsGot, x[t]), y, 1e-5, 1e-5));
        }
    }

    // The files save() writes, read with the safetensors reader alone: names, shapes and skip
    // conventions as circuit-tracer's loaders expect them.
    void savedFilesHaveCircuitTracerLayout()
    {
        const SetPtr plt = randomSet(Architecture::PerLayer, Activation::JumpReLU, true);
        const QString pltDir = folder("plt");
        plt->save(pltDir.toStdString());
        QCOMPARE(QDir(pltDir).entryList(QDir::Files, QDir::Name),
            QStringList({ "config.yaml", "layer_0.safetensors", "layer_1.safetensors", "layer_2.safetensors" }));
        auto layer1 = cs::io::SafetensorsFile::open((pltDir + "/layer_1.safetensors").toStdString());
        std::set<std::string> names;
        for (const auto& t : layer1->tensors())
            names.insert(t.name);
        QCOMPARE(names,
            (std::set<std::string> { "W_enc", "W_dec", "b_enc", "b_dec", "activation_function.threshold", "W_skip" }));
        QCOMPARE(layer1->find("W_dec")->shape, (std::vector<int64_t> { kFeatures, kDModel }));
        QVERIFY(sameTensor(layer1->tensor("W_dec"), plt->decoder(1).select(1, 0)));
        QVERIFY(sameTensor(layer1->tensor("W_skip"), plt->skip(1))); // applied as x @ W_skip.T
        const std::string pltYaml = readText(pltDir + "/config.yaml");
        QVERIFY(pltYaml.find("model_kind: transcoder_set\n") != std::string::npos);
        QVERIFY(pltYaml.find("feature_input_hook: hook_resid_mid\n") != std::string::npos);
        QVERIFY(pltYaml.find("feature_output_hook: hook_mlp_out\n") != std::string::npos);
        QVERIFY(pltYaml.find("activation: jump_relu\n") != std::string::npos);

        const SetPtr clt = randomSet(Architecture::CrossLayer, Activation::TopK, true);
        const QString cltDir = folder("clt");
        clt->save(cltDir.toStdString(), "BF16");
        auto enc0 = cs::io::SafetensorsFile::open((cltDir + "/W_enc_0.safetensors").toStdString());
        names.clear();
        for (const auto& t : enc0->tensors()) {
            names.insert(t.name);
            QCOMPARE(t.dtype, cs::io::DType::BF16);
        }
        QCOMPARE(names, (std::set<std::string> { "W_enc_0", "b_enc_0", "b_dec_0", "W_skip_0" }));
        // The CLT convention: applied as x @ W_skip_i, so it is our skip transposed.
        QVERIFY(sameTensor(enc0->tensor("W_skip_0").to(at::kFloat), rounded(clt->skip(0).t(), at::kBFloat16)));
        for (int64_t l = 0; l < kLayers; ++l) {
            auto dec = cs::io::SafetensorsFile::open((cltDir + QString("/W_dec_%1.safetensors").arg(l)).toStdString());
            QCOMPARE(dec->tensors().size(), size_t(1));
            QCOMPARE(dec->find("W_dec_" + std::to_string(l))->shape,
                (std::vector<int64_t> { kFeatures, kLayers - l, kDModel }));
        }
        const std::string cltYaml = readText(cltDir + "/config.yaml");
        QVERIFY(cltYaml.find("model_kind: cross_layer_transcoder\n") != std::string::npos);
        QVERIFY(cltYaml.find("activation: topk\n") != std::string::npos);
        QVERIFY(cltYaml.find("k: 4\n") != std::string::npos);
        QVERIFY(cltYaml.find("scan: round-trip\n") != std::string::npos);
        QVERIFY(cltYaml.find("model_name: tiny/model\n") != std::string::npos);
    }

    // Names that YAML would read as something else survive a save and a load.
    void awkwardNamesRoundTrip_data()
    {
        QTest::addColumn<QString>("modelName");
        QTest::addColumn<QString>("scan");
        QTest::newRow("bool and null words") << "true"
                                             << "null";
        QTest::newRow("numbers") << "123"
                                 << "-1.5e3";
        QTest::newRow("colon and hash") << "org/model: v2 # final"
                                        << "#scan";
        QTest::newRow("quotes and backslash") << "it's \"x\"\\y"
                                              << "'single'";
        QTest::newRow("spaces and unicode") << " padded "
                                            << "caf\u00e9 \u2192 scan";
        QTest::newRow("indicators") << "- dash"
                                    << "[flow] {map} &anchor *alias !tag |block >fold %dir @at `tick";
    }
    void awkwardNamesRoundTrip()
    {
        QFETCH(QString, modelName);
        QFETCH(QString, scan);
        const SetPtr set = randomSet(Architecture::PerLayer, Activation::ReLU, false);
        TranscoderConfig c = set->config();
        c.modelName = modelName.toStdString();
        c.scan = scan.toStdString();
        std::vector<LayerWeights> layers;
        for (int64_t l = 0; l < kLayers; ++l)
            layers.push_back({ set->encoder(l), set->encoderBias(l), {}, set->decoder(l), set->decoderBias(l), {} });
        const SetPtr named = TranscoderSet::fromWeights(c, layers);
        const QString dir = folder();
        named->save(dir.toStdString());
        const SetPtr back = TranscoderSet::load(dir.toStdString());
        QCOMPARE(QString::fromStdString(back->config().modelName), modelName);
        QCOMPARE(QString::fromStdString(back->config().scan), scan);
    }

    // A CLT folder as circuit-tracer's CrossLayerTranscoder.to_safetensors writes it, with the
    // config.yaml of a Hugging Face repository.
    void readsCircuitTracerClt_data()
    {
        QTest::addColumn<bool>("threshold");
        QTest::addColumn<QString>("dtype");
        QTest::addColumn<bool>("lazy");
        QTest::newRow("jump_relu f32 lazy") << true << "F32" << true;
        QTest::newRow("jump_relu bf16 eager") << true << "BF16" << false;
        QTest::newRow("relu f16 lazy") << false << "F16" << true;
        QTest::newRow("relu f32 eager") << false << "F32" << false;
        QTest::newRow("jump_relu f64 lazy") << true << "F64" << true;
    }
    void readsCircuitTracerClt()
    {
        QFETCH(bool, threshold);
        QFETCH(QString, dtype);
        QFETCH(bool, lazy);
        const at::ScalarType stored = scalarTypeOf(dtype);
        const QString dir = folder();
        at::manual_seed(21);
        std::vector<at::Tensor> wEnc, bEnc, bDec, theta, wDec; // float32, rounded through dtype
        for (int64_t i = 0; i < kLayers; ++i) {
            const std::string n = std::to_string(i);
            wEnc.push_back(rounded(at::randn({ kFeatures, kDModel }) * 0.5, stored));
            bEnc.push_back(rounded(at::randn({ kFeatures }) * 0.1, stored));
            bDec.push_back(rounded(at::randn({ kDModel }) * 0.1, stored));
            theta.push_back(rounded(at::rand({ kFeatures }) * 0.5, stored));
            wDec.push_back(rounded(at::randn({ kFeatures, kLayers - i, kDModel }) * 0.3, stored));
            NamedTensors enc { { "W_enc_" + n, wEnc[i] }, { "b_enc_" + n, bEnc[i] }, { "b_dec_" + n, bDec[i] } };
            if (threshold)
                enc.emplace_back("threshold_" + n, theta[i]);
            for (auto& [name, t] : enc)
                t = t.to(stored);
            writeTensors(dir + QString("/W_enc_%1.safetensors").arg(i), enc);
            writeTensors(dir + QString("/W_dec_%1.safetensors").arg(i), { { "W_dec_" + n, wDec[i].to(stored) } });
        }
        cs::test::writeTextFile(dir + "/config.yaml",
            "model_kind: cross_layer_transcoder\nfeature_input_hook: mlp.hook_in\nfeature_output_hook: mlp.hook_out\n");

        TranscoderSet::LoadOptions options;
        options.device = "cpu";
        options.lazyDecoders = lazy;
        const SetPtr set = TranscoderSet::load(dir.toStdString(), options);
        const TranscoderConfig& c = set->config();
        QCOMPARE(c.architecture, Architecture::CrossLayer);
        QCOMPARE(c.activation, threshold ? Activation::JumpReLU : Activation::ReLU);
        QCOMPARE(c.nLayers, kLayers);
        QCOMPARE(c.nFeatures, kFeatures);
        QCOMPARE(c.dModel, kDModel);
        QVERIFY(!c.skip);
        QCOMPARE(c.inputHook, cs::model::Hook::MlpIn);
        QCOMPARE(c.inputHookName, std::string("mlp.hook_in"));
        QCOMPARE(c.outputHook, cs::model::Hook::MlpOut);
        QCOMPARE(c.outputHookName, std::string("mlp.hook_out"));
        QCOMPARE(QString::fromStdString(c.scan), QDir(dir).dirName()); // no scan: the folder's name

        // a_s = act(x_s W_enc_s^T + b_enc_s); y_t = sum_{s<=t} a_s @ W_dec_s[:, t-s, :] + b_dec_t.
        at::manual_seed(22);
        const at::Tensor x = at::randn({ kLayers, kPos, kDModel }); // [n_layers, n_pos, d_model]
        std::vector<at::Tensor> a, acts;
        for (int64_t s = 0; s < kLayers; ++s) {
            const at::Tensor pre = at::matmul(x[s], wEnc[s].t()) + bEnc[s];
            a.push_back(threshold ? at::where(pre > theta[s], pre, at::zeros_like(pre)) : at::clamp_min(pre, 0));
            acts.push_back(set->encode(s, x[s]));
            QVERIFY(closeTensor(acts[s], a[s], 1e-5, 1e-5));
        }
        for (int64_t t = 0; t < kLayers; ++t) {
            at::Tensor y = bDec[t].expand({ kPos, kDModel });
            for (int64_t s = 0; s <= t; ++s)
                y = y + at::matmul(a[s], wDec[s].select(1, t - s));
            QVERIFY(closeTensor(set->decode(t, acts, x[t]), y, 1e-5, 1e-5));
        }
        const at::Tensor ids = at::tensor({ int64_t(5), int64_t(1) });
        QVERIFY(sameTensor(set->decoderRows(2, ids), wDec[2].index_select(0, ids)));
    }

    // A PLT folder as circuit-tracer's SingleLayerTranscoder.to_safetensors writes its layers,
    // listed by `transcoders:` (indented or at column 0, as PyYAML writes lists) or found as
    // layer_{i}.safetensors.
    void readsCircuitTracerPlt_data()
    {
        QTest::addColumn<int>("act");
        QTest::addColumn<bool>("skip");
        QTest::addColumn<QString>("list"); // none, indented, pyyaml, maps, flow
        QTest::addColumn<bool>("lazy");
        QTest::newRow("jump_relu skip indented list") << int(Activation::JumpReLU) << true << "indented" << true;
        QTest::newRow("relu pyyaml list") << int(Activation::ReLU) << false << "pyyaml" << false;
        QTest::newRow("topk skip k in files") << int(Activation::TopK) << true << "none" << true;
        QTest::newRow("jump_relu layer files eager") << int(Activation::JumpReLU) << false << "none" << false;
        // circuit-tracer's own configs (its configs/llama-relu.yaml): {id, layer, filepath} maps,
        // here out of layer order, one commented out, no model_kind, an anchor on a value.
        QTest::newRow("relu circuit-tracer maps list") << int(Activation::ReLU) << true << "maps" << true;
        QTest::newRow("jump_relu flow list") << int(Activation::JumpReLU) << false << "flow" << false;
    }
    void readsCircuitTracerPlt()
    {
        QFETCH(int, act);
        QFETCH(bool, skip);
        QFETCH(QString, list);
        QFETCH(bool, lazy);
        const Activation activation = Activation(act);
        const QString dir = folder();
        QDir(dir).mkpath("weights");
        at::manual_seed(31);
        std::vector<at::Tensor> wEnc, wDec, bEnc, bDec, theta, wSkip;
        std::string listText = "transcoders:\n";
        std::vector<std::string> flowItems;
        for (int64_t i = 0; i < kLayers; ++i) {
            wEnc.push_back(at::randn({ kFeatures, kDModel }) * 0.5);
            wDec.push_back(at::randn({ kFeatures, kDModel }) * 0.3);
            bEnc.push_back(at::randn({ kFeatures }) * 0.1);
            bDec.push_back(at::randn({ kDModel }) * 0.1);
            theta.push_back(at::rand({ kFeatures }) * 0.5);
            wSkip.push_back(at::randn({ kDModel, kDModel }) * 0.2);
            NamedTensors t { { "W_enc", wEnc[i] }, { "W_dec", wDec[i] }, { "b_enc", bEnc[i] }, { "b_dec", bDec[i] } };
            if (activation == Activation::JumpReLU)
                t.emplace_back("activation_function.threshold", theta[i]);
            if (activation == Activation::TopK)
                t.emplace_back("k", at::scalar_tensor(kTopK, at::kLong)); // torch.tensor(k): int64, rank 0
            if (skip)
                t.emplace_back("W_skip", wSkip[i]);
            if (list == "none") {
                writeTensors(dir + QString("/layer_%1.safetensors").arg(i), t);
            } else {
                const QString name = QString("weights/tc-%1.safetensors").arg(i);
                writeTensors(dir + "/" + name, t);
                // One entry quoted, one through a harmless "..", one plain.
                const std::string entry = i == 0 ? "\"" + name.toStdString() + "\""
                    : i == 1                     ? "weights/../" + name.toStdString()
                                                 : name.toStdString();
                const std::string layer = std::to_string(i);
                if (list == "maps")
                    listText.insert(std::string("transcoders:\n").size(),
                        "  - id: \"tiny-relu-" + layer + "\"\n    layer: " + layer + "\n    filepath: " + entry + "\n\n"
                            + (i == 0 ? "  # - id: \"tiny-relu-9\"\n  #   layer: 9\n  #   filepath: \"gone\"\n" : ""));
                else if (list == "flow")
                    flowItems.push_back(entry);
                else
                    listText += (list == "indented" ? "  - " : "- ") + entry + "   # layer " + layer + "\n";
            }
        }
        if (list == "flow") {
            listText = "transcoders: [";
            for (size_t i = 0; i < flowItems.size(); ++i)
                listText += (i ? ", " : "") + flowItems[i];
            listText += "]\n";
        }
        std::string config = "# a circuit-tracer transcoder set\n"
                             "model_name: \"google/gemma-2-2b\"\n"
            + std::string(list == "maps" ? "" : "model_kind: transcoder_set\n")
            + "\n"
              "feature_input_hook: ln2.hook_normalized\n"
              "feature_output_hook: 'hook_mlp_out'\n"
            + (list == "maps" ? "scan: &scan 'tiny-plt'   # an anchor, never used\n"
                              : "scan: 'tiny-plt'   # the feature store's name\n")
            + "some_key_we_do_not_know: 42\n";
        if (activation == Activation::TopK)
            config += "activation: topk\n"; // k comes from the files
        if (activation == Activation::ReLU)
            config += "activation: relu\n";
        if (list != "none")
            config += listText;
        cs::test::writeTextFile(dir + "/config.yaml", config);

        TranscoderSet::LoadOptions options;
        options.device = "cpu";
        options.lazyDecoders = lazy;
        const SetPtr set = TranscoderSet::load(dir.toStdString(), options);
        const TranscoderConfig& c = set->config();
        QCOMPARE(c.architecture, Architecture::PerLayer);
        QCOMPARE(c.activation, activation);
        QCOMPARE(c.topK, activation == Activation::TopK ? kTopK : int64_t(0));
        QCOMPARE(c.skip, skip);
        QCOMPARE(c.nLayers, kLayers);
        // TransformerLens's ln2.hook_normalized is before the norm's weight, not the MLP input.
        QCOMPARE(c.inputHook, cs::model::Hook::MlpNormalized);
        QCOMPARE(c.inputHookName, std::string("ln2.hook_normalized"));
        QCOMPARE(c.outputHookName, std::string("hook_mlp_out"));
        QCOMPARE(c.modelName, std::string("google/gemma-2-2b"));
        QCOMPARE(c.scan, std::string("tiny-plt"));

        // y = act(x W_enc^T + b_enc) @ W_dec + b_dec (+ x @ W_skip^T).
        at::manual_seed(32);
        const at::Tensor x = at::randn({ kLayers, kPos, kDModel });
        std::vector<at::Tensor> acts(kLayers);
        for (int64_t l = 0; l < kLayers; ++l) {
            const at::Tensor pre = at::matmul(x[l], wEnc[l].t()) + bEnc[l];
            const at::Tensor a = referenceActivation(pre, activation, theta[l], kTopK);
            acts[l] = set->encode(l, x[l]);
            QVERIFY(closeTensor(acts[l], a, 1e-5, 1e-5));
            at::Tensor y = at::matmul(a, wDec[l]) + bDec[l];
            if (skip)
                y = y + at::matmul(x[l], wSkip[l].t());
            QVERIFY(closeTensor(set->decode(l, acts, x[l]), y, 1e-5, 1e-5));
            QVERIFY(sameTensor(set->decoder(l), wDec[l].unsqueeze(1)));
        }
    }

    // A save over an earlier, larger set leaves no layer of it behind; a lazily loaded set can
    // be saved over the files it still maps.
    void saveReplacesEarlierSet()
    {
        const QString dir = folder();
        randomSet(Architecture::CrossLayer, Activation::ReLU, false, 1, kLayers + 1)->save(dir.toStdString());
        const SetPtr three = randomSet(Architecture::CrossLayer, Activation::JumpReLU, false, 2);
        three->save(dir.toStdString());
        QVERIFY(!QFile::exists(dir + QString("/W_enc_%1.safetensors").arg(kLayers)));
        QVERIFY(!QFile::exists(dir + QString("/W_dec_%1.safetensors").arg(kLayers)));
        const SetPtr lazy = TranscoderSet::load(dir.toStdString());
        QCOMPARE(lazy->nLayers(), kLayers);
        lazy->save(dir.toStdString(), "F32");
        const SetPtr again = TranscoderSet::load(dir.toStdString());
        for (int64_t l = 0; l < kLayers; ++l) {
            QVERIFY(sameTensor(again->decoder(l), three->decoder(l)));
            QVERIFY(sameTensor(again->threshold(l), three->threshold(l)));
        }
    }

    void refusesBrokenFolders_data()
    {
        QTest::addColumn<QString>("breakage");
        QTest::addColumn<QStringList>("phrases"); // each must appear in the message

        QTest::newRow("no folder") << "no_folder" << QStringList { "does not exist" };
        QTest::newRow("missing config.yaml") << "no_config" << QStringList { "config.yaml" };
        QTest::newRow("unknown model_kind")
            << "unknown_kind" << QStringList { "config.yaml line 1", "sparse_autoencoder" };
        QTest::newRow("no model_kind") << "no_kind" << QStringList { "config.yaml", "model_kind is missing" };
        QTest::newRow("unsupported input hook")
            << "bad_input_hook" << QStringList { "config.yaml line 2", "hook_resid_pre" };
        QTest::newRow("output hook not mlp_out")
            << "output_is_input" << QStringList { "config.yaml line 3", "feature_output_hook", "hook_resid_mid" };
        QTest::newRow("no input hook") << "no_input_hook" << QStringList { "feature_input_hook is missing" };
        QTest::newRow("unknown activation") << "bad_activation" << QStringList { "config.yaml line 4", "gelu" };
        QTest::newRow("topk without k") << "topk_no_k" << QStringList { "config.yaml", "topk needs k" };
        QTest::newRow("k not a number") << "k_text" << QStringList { "config.yaml line 5", "k must be an integer" };
        QTest::newRow("k above n_features") << "k_too_big" << QStringList { "config.yaml line 5", "k = 17" };

        QTest::newRow("plt layer file missing")
            << "plt_missing_layer" << QStringList { "layer_1.safetensors is missing" };
        QTest::newRow("plt no layer files") << "plt_no_layers" << QStringList { "layer_0.safetensors" };
        // A FIFO blocked the open until someone wrote to it (issue 21): only regular files are read.
        QTest::newRow("plt layer file a FIFO")
            << "plt_fifo" << QStringList { "layer_1.safetensors is not a regular file (a FIFO)" };
        // Declared sizes that do not match are refused from the headers, before any tensor is read
        // (issue 21): layer 0's W_enc declares 2^26 features (1 GiB of F16, a sparse file), its
        // b_enc 16. Reading W_enc first converted it to double (4 GiB) to check it for NaN; a
        // larger one failed with LibTorch's allocation error.
        QTest::newRow("plt W_enc of 2^26 features, b_enc of 16")
            << "plt_huge_encoder"
            << QStringList { "layer_0.safetensors", "\"b_enc\" has shape [16], expected [67108864]" };
        QTest::newRow("plt W_enc d_model differs")
            << "plt_enc_dmodel" << QStringList { "layer_2.safetensors", "\"W_enc\"", "[16, 9]", "[16, 8]" };
        QTest::newRow("plt W_skip in some layers")
            << "plt_skip_partial" << QStringList { "layer_1.safetensors", "W_skip" };
        QTest::newRow("plt integer weights")
            << "plt_int_weights" << QStringList { "layer_0.safetensors", "b_dec", "floating-point" };
        QTest::newRow("plt k in file disagrees")
            << "plt_k_disagrees" << QStringList { "layer_0.safetensors", "k = 4", "k = 5" };

        QTest::newRow("clt W_enc files not contiguous")
            << "clt_gap" << QStringList { "W_enc_2.safetensors is missing", "W_enc_3.safetensors" };
        QTest::newRow("clt W_dec file missing") << "clt_no_decoder" << QStringList { "W_dec_1.safetensors" };
        QTest::newRow("clt W_dec with one target too many")
            << "clt_decoder_shape" << QStringList { "W_dec_1.safetensors", "\"W_dec_1\"", "[16, 3, 8]", "[16, 2, 8]" };
        QTest::newRow("clt W_enc and b_enc disagree in F")
            << "clt_bias_features" << QStringList { "W_enc_0.safetensors", "\"b_enc_0\"", "[17]", "[16]" };
        QTest::newRow("clt threshold missing in one layer")
            << "clt_no_threshold" << QStringList { "W_enc_2.safetensors", "threshold_2" };
        QTest::newRow("clt truncated file") << "clt_truncated" << QStringList { "W_dec_1.safetensors", "truncated" };
        QTest::newRow("clt transcoders list") << "clt_list" << QStringList { "config.yaml line 4", "transcoders" };

        QTest::newRow("listed path escapes the folder")
            << "list_escape" << QStringList { "config.yaml line 6", "../outside.safetensors", "outside the folder" };
        QTest::newRow("listed path absolute")
            << "list_absolute" << QStringList { "config.yaml line 5", "absolute path" };
        QTest::newRow("listed hf:// URI") << "list_hf" << QStringList { "config.yaml line 5", "hf://", "Download" };
        QTest::newRow("listed file missing") << "list_missing" << QStringList { "nope.safetensors", "does not exist" };
        QTest::newRow("listed npz") << "list_npz" << QStringList { "params.npz", "npz" };
        // Issue 21: one file for two layers ran one layer's weights as another's; a list shorter
        // than the model's layers was refused only later, without naming config.yaml.
        QTest::newRow("listed file twice")
            << "list_twice"
            << QStringList { "config.yaml line 6",
                   "transcoders[1] \"layer_0.safetensors\" is the file of layer 0 too (\"layer_0.safetensors\")" };
        QTest::newRow("listed file twice, through a link")
            << "list_link"
            << QStringList { "config.yaml line 7",
                   "transcoders[2] \"alias.safetensors\" is the file of layer 1 too (\"layer_1.safetensors\")" };
        QTest::newRow("list shorter than the model's layers")
            << "list_short"
            << QStringList { "config.yaml line 4",
                   QString("the transcoders: list has %1 entries, fewer than the model's %2 layers")
                       .arg(kLayers - 1)
                       .arg(kLayers) };
        QTest::newRow("transcoders not a list")
            << "list_scalar" << QStringList { "config.yaml line 4", "must be a list" };

        // A corrupt file's NaN would show only as a trace's "NaN in the adjacency matrix" (issue 23).
        QTest::newRow("plt NaN in W_enc")
            << "plt_nan" << QStringList { "layer_1.safetensors", "tensor \"W_enc\" holds 1 NaN or infinite value" };
        QTest::newRow("clt infinite decoder")
            << "clt_inf_decoder"
            << QStringList { "W_dec_1.safetensors", "tensor \"W_dec_1\" holds 2 NaN or infinite values" };
        // Each entry is a file to open: a list far longer than a model's layers is refused unread.
        QTest::newRow("transcoders list of 5,000")
            << "list_huge" << QStringList { "config.yaml line 4", "5000 entries, more than the 4096 layers" };
        QTest::newRow("transcoders list longer than the model's layers")
            << "list_past_model"
            << QStringList { "config.yaml line 4",
                   QString("%1 entries, more than the model's %2 layers").arg(kLayers + 1).arg(kLayers) };

        QTest::newRow("yaml flow list for a value")
            << "yaml_flow" << QStringList { "config.yaml line 1", "model_kind must be a single value" };
        QTest::newRow("yaml nested map") << "yaml_nested" << QStringList { "config.yaml line 3", "nested" };
        QTest::newRow("yaml map in a list without layer")
            << "yaml_list_map" << QStringList { "config.yaml line 5", "needs layer and filepath" };
        QTest::newRow("yaml map in a list, layer twice")
            << "yaml_list_layer_twice" << QStringList { "config.yaml line 7", "layer 0 is listed twice" };
        QTest::newRow("yaml map in a list, layer out of range")
            << "yaml_list_layer_range" << QStringList { "config.yaml line 5", "\"7\" is not a layer" };
        QTest::newRow("yaml list in a list")
            << "yaml_list_list" << QStringList { "config.yaml line 5", "nested lists" };
        QTest::newRow("yaml map in a map in a list")
            << "yaml_list_deep" << QStringList { "config.yaml line 7", "nested" };
        QTest::newRow("yaml nested 100,000 deep") << "yaml_deep" << QStringList { "config.yaml line 1", "nested" };
        QTest::newRow("yaml tab indentation") << "yaml_tab" << QStringList { "config.yaml line 2" };
        QTest::newRow("yaml alias") << "yaml_alias" << QStringList { "config.yaml line 2", "aliases" };
        QTest::newRow("yaml tag") << "yaml_tag" << QStringList { "config.yaml line 1", "tags" };
        QTest::newRow("yaml not UTF-8") << "yaml_utf8" << QStringList { "config.yaml", "not UTF-8" };
        QTest::newRow("yaml unterminated quote")
            << "yaml_quote" << QStringList { "config.yaml line 4", "EOF in scalar" };
        QTest::newRow("yaml duplicate key") << "yaml_duplicate" << QStringList { "config.yaml line 2", "twice" };
        QTest::newRow("yaml garbage") << "yaml_garbage" << QStringList { "config.yaml line 1", "key: value" };
        QTest::newRow("yaml two documents")
            << "yaml_documents" << QStringList { "config.yaml line 3", "several YAML documents" };
        QTest::newRow("yaml bad escape") << "yaml_escape" << QStringList { "config.yaml line 1", "escape" };
    }
    void refusesBrokenFolders()
    {
        QFETCH(QString, breakage);
        QFETCH(QStringList, phrases);
        QString dir = folder();
        const bool clt = breakage.startsWith("clt");
        const bool topk = breakage.startsWith("topk") || breakage.startsWith("k_") || breakage == "plt_k_disagrees";
        const SetPtr set = randomSet(clt ? Architecture::CrossLayer : Architecture::PerLayer,
            topk ? Activation::TopK : Activation::JumpReLU, breakage == "plt_skip_partial");
        set->save(dir.toStdString());
        const std::string head = "model_kind: transcoder_set\nfeature_input_hook: hook_resid_mid\n"
                                 "feature_output_hook: hook_mlp_out\n";
        auto config = [&](const std::string& text) { cs::test::writeTextFile(dir + "/config.yaml", text); };
        auto file = [&](const QString& name) { return dir + "/" + name; };

        if (breakage == "no_folder")
            dir += "/not-here";
        else if (breakage == "no_config")
            QFile::remove(file("config.yaml"));
        else if (breakage == "unknown_kind")
            config("model_kind: sparse_autoencoder\nfeature_input_hook: hook_resid_mid\n"
                   "feature_output_hook: hook_mlp_out\n");
        else if (breakage == "no_kind")
            config("feature_input_hook: hook_resid_mid\nfeature_output_hook: hook_mlp_out\n");
        else if (breakage == "bad_input_hook")
            config(
                "model_kind: transcoder_set\nfeature_input_hook: hook_resid_pre\nfeature_output_hook: hook_mlp_out\n");
        else if (breakage == "output_is_input")
            config(
                "model_kind: transcoder_set\nfeature_input_hook: mlp.hook_in\nfeature_output_hook: hook_resid_mid\n");
        else if (breakage == "no_input_hook")
            config("model_kind: transcoder_set\nfeature_output_hook: hook_mlp_out\n");
        else if (breakage == "bad_activation")
            config(head + "activation: gelu\n");
        else if (breakage == "topk_no_k")
            config(head + "activation: topk\n");
        else if (breakage == "k_text")
            config(head + "activation: topk\nk: \"4\"\n");
        else if (breakage == "k_too_big")
            config(head + "activation: topk\nk: 17\n");
        else if (breakage == "plt_missing_layer")
            QFile::remove(file("layer_1.safetensors"));
        else if (breakage == "plt_no_layers")
            for (int i = 0; i < kLayers; ++i)
                QFile::remove(file(QString("layer_%1.safetensors").arg(i)));
        else if (breakage == "plt_fifo") {
            QFile::remove(file("layer_1.safetensors"));
            QCOMPARE(::mkfifo(QFile::encodeName(file("layer_1.safetensors")).constData(), 0600), 0);
        } else if (breakage == "plt_huge_encoder") {
            // The small tensors' bytes first, then W_enc's, left a hole (no disk is written).
            const int64_t hugeFeatures = int64_t(1) << 26;
            std::string data;
            nlohmann::json header = nlohmann::json::object();
            for (const auto& [name, t] : readTensors(file("layer_0.safetensors"))) {
                if (name == "W_enc")
                    continue;
                const at::Tensor f = t.to(at::kFloat).contiguous();
                header[name] = { { "dtype", "F32" }, { "shape", f.sizes().vec() },
                    { "data_offsets", { data.size(), data.size() + f.nbytes() } } };
                data.append(static_cast<const char*>(f.data_ptr()), f.nbytes());
            }
            const int64_t encoderBytes = hugeFeatures * kDModel * 2;
            header["W_enc"] = { { "dtype", "F16" }, { "shape", { hugeFeatures, kDModel } },
                { "data_offsets", { int64_t(data.size()), int64_t(data.size()) + encoderBytes } } };
            std::string text = header.dump();
            text.append((8 - text.size() % 8) % 8, ' ');
            std::string bytes(8, '\0');
            for (int i = 0; i < 8; ++i)
                bytes[size_t(i)] = char((text.size() >> (8 * i)) & 0xFF);
            bytes += text + data;
            QFile out(file("layer_0.safetensors"));
            QVERIFY(out.open(QIODevice::WriteOnly | QIODevice::Truncate));
            QCOMPARE(out.write(bytes.data(), qint64(bytes.size())), qint64(bytes.size()));
            QVERIFY(out.resize(qint64(bytes.size()) + encoderBytes));
        } else if (breakage == "plt_enc_dmodel")
            editTensors(file("layer_2.safetensors"), [](NamedTensors& t) {
                tensorNamed(t, "W_enc") = at::zeros({ kFeatures, kDModel + 1 });
            });
        else if (breakage == "plt_skip_partial")
            editTensors(file("layer_1.safetensors"), [](NamedTensors& t) {
                t.erase(std::remove_if(t.begin(), t.end(), [](const auto& p) { return p.first == "W_skip"; }), t.end());
            });
        else if (breakage == "plt_int_weights")
            editTensors(file("layer_0.safetensors"),
                [](NamedTensors& t) { tensorNamed(t, "b_dec") = at::zeros({ kDModel }, at::kInt); });
        else if (breakage == "plt_k_disagrees") {
            config(head + "activation: topk\nk: 4\n");
            editTensors(file("layer_0.safetensors"),
                [](NamedTensors& t) { t.emplace_back("k", at::scalar_tensor(5, at::kLong)); });
        } else if (breakage == "clt_gap") {
            QFile::rename(file("W_enc_2.safetensors"), file("W_enc_3.safetensors"));
            QFile::rename(file("W_dec_2.safetensors"), file("W_dec_3.safetensors"));
        } else if (breakage == "clt_no_decoder")
            QFile::remove(file("W_dec_1.safetensors"));
        else if (breakage == "clt_decoder_shape")
            writeTensors(file("W_dec_1.safetensors"), { { "W_dec_1", at::zeros({ kFeatures, kLayers, kDModel }) } });
        else if (breakage == "clt_bias_features")
            editTensors(file("W_enc_0.safetensors"),
                [](NamedTensors& t) { tensorNamed(t, "b_enc_0") = at::zeros({ kFeatures + 1 }); });
        else if (breakage == "clt_no_threshold")
            editTensors(file("W_enc_2.safetensors"), [](NamedTensors& t) {
                t.erase(std::remove_if(t.begin(), t.end(), [](const auto& p) { return p.first == "threshold_2"; }),
                    t.end());
            });
        else if (breakage == "clt_truncated")
            std::filesystem::resize_file(file("W_dec_1.safetensors").toStdString(),
                std::filesystem::file_size(file("W_dec_1.safetensors").toStdString()) - 100);
        else if (breakage == "clt_list")
            config("model_kind: cross_layer_transcoder\nfeature_input_hook: hook_resid_mid\n"
                   "feature_output_hook: hook_mlp_out\ntranscoders:\n  - W_enc_0.safetensors\n");
        else if (breakage == "plt_nan")
            editTensors(file("layer_1.safetensors"), [](NamedTensors& t) {
                at::Tensor& w = tensorNamed(t, "W_enc");
                w = w.clone();
                w[2][3] = std::nanf("");
            });
        else if (breakage == "clt_inf_decoder")
            editTensors(file("W_dec_1.safetensors"), [](NamedTensors& t) {
                at::Tensor& w = tensorNamed(t, "W_dec_1");
                w = w.clone();
                w[0][0][0] = INFINITY;
                w[5][1][2] = -INFINITY;
            });
        else if (breakage == "list_huge" || breakage == "list_past_model") {
            std::string list = head + "transcoders:\n";
            const int64_t n = breakage == "list_huge" ? 5000 : kLayers + 1;
            for (int64_t i = 0; i < n; ++i)
                list += "  - layer_0.safetensors\n";
            config(list);
        } else if (breakage == "list_twice")
            config(head + "transcoders:\n  - layer_0.safetensors\n  - layer_0.safetensors\n  - layer_2.safetensors\n");
        else if (breakage == "list_link") {
            QVERIFY(QFile::link("layer_1.safetensors", file("alias.safetensors")));
            config(head + "transcoders:\n  - layer_0.safetensors\n  - layer_1.safetensors\n  - alias.safetensors\n");
        } else if (breakage == "list_short")
            config(head + "transcoders:\n  - layer_0.safetensors\n  - layer_1.safetensors\n");
        else if (breakage == "list_escape") {
            QFile::copy(file("layer_0.safetensors"), dir + "/../outside.safetensors");
            config(head + "transcoders:\n  - layer_0.safetensors\n  - ../outside.safetensors\n");
        } else if (breakage == "list_absolute")
            config(head + "transcoders:\n  - " + file("layer_0.safetensors").toStdString() + "\n");
        else if (breakage == "list_hf")
            config(head + "transcoders:\n  - hf://org/repo/layer_0.safetensors\n");
        else if (breakage == "list_missing")
            config(head + "transcoders:\n  - layer_0.safetensors\n  - nope.safetensors\n");
        else if (breakage == "list_npz")
            config(head + "transcoders:\n  - layer_0/params.npz\n");
        else if (breakage == "list_scalar")
            config(head + "transcoders: layer_0.safetensors\n");
        else if (breakage == "yaml_flow")
            config("model_kind: [transcoder_set]\n");
        else if (breakage == "yaml_nested")
            config("model_kind: transcoder_set\nfeature_input_hook:\n  name: mlp.hook_in\n");
        else if (breakage == "yaml_list_map")
            config(head + "transcoders:\n  - path: layer_0.safetensors\n");
        else if (breakage == "yaml_list_layer_twice")
            config(head
                + "transcoders:\n  - layer: 0\n    filepath: layer_0.safetensors\n  - layer: 0\n"
                  "    filepath: layer_1.safetensors\n");
        else if (breakage == "yaml_list_layer_range")
            config(head + "transcoders:\n  - {layer: 7, filepath: layer_0.safetensors}\n");
        else if (breakage == "yaml_list_list")
            config(head + "transcoders:\n  - [layer_0.safetensors]\n");
        else if (breakage == "yaml_list_deep")
            config(head + "transcoders:\n  - layer: 0\n    filepath:\n      name: layer_0.safetensors\n");
        else if (breakage == "yaml_deep")
            config("k: " + std::string(100000, '[') + "\n");
        else if (breakage == "yaml_tab")
            config("model_kind: transcoder_set\n\tfeature_input_hook: mlp.hook_in\n");
        else if (breakage == "yaml_alias")
            config("model_kind: &kind transcoder_set\nscan: *kind\n");
        else if (breakage == "yaml_tag")
            config("model_kind: !python/object transcoder_set\n");
        else if (breakage == "yaml_utf8")
            config("model_kind: transcoder_set\nscan: \"\xff\xfe\"\n");
        else if (breakage == "yaml_quote")
            config(head + "model_name: \"gemma\n");
        else if (breakage == "yaml_duplicate")
            config("model_kind: transcoder_set\nmodel_kind: cross_layer_transcoder\n");
        else if (breakage == "yaml_garbage")
            config("\x7f"
                   "ELF\x02\x01\x01 this is not yaml\n");
        else if (breakage == "yaml_documents")
            config("---\nmodel_kind: transcoder_set\n---\nmodel_kind: cross_layer_transcoder\n");
        else if (breakage == "yaml_escape")
            config("model_kind: \"transcoder\\qset\"\n");
        else
            QFAIL(qPrintable("unknown breakage " + breakage));

        for (bool lazy : { true, false }) {
            TranscoderSet::LoadOptions options;
            options.device = "cpu";
            options.lazyDecoders = lazy;
            if (breakage == "list_past_model" || breakage == "list_short")
                options.modelLayers = kLayers;
            const int64_t peakBefore = peakResidentKiB();
            const std::string message = messageOf([&] { TranscoderSet::load(dir.toStdString(), options); });
            // Refused before anything large is read or made: the peak stays within 256 MiB of where it was.
            QVERIFY2(peakResidentKiB() - peakBefore < 256 * 1024,
                qPrintable(QString("peak memory grew by %1 MiB").arg((peakResidentKiB() - peakBefore) / 1024)));
            for (const QString& phrase : phrases)
                QVERIFY2(message.find(phrase.toStdString()) != std::string::npos,
                    qPrintable("\"" + phrase + "\" not in: " + QString::fromStdString(message)));
        }
    }

    void checkFitsComparesWithTheModel_data()
    {
        QTest::addColumn<int>("nLayers");
        QTest::addColumn<int>("dModel");
        QTest::addColumn<QString>("phrase"); // empty: it fits
        QTest::newRow("fits") << int(kLayers) << int(kDModel) << "";
        QTest::newRow("more model layers") << int(kLayers + 1) << int(kDModel) << "layers";
        QTest::newRow("fewer model layers") << int(kLayers - 1) << int(kDModel) << "layers";
        QTest::newRow("wider model") << int(kLayers) << int(2 * kDModel) << "d_model";
    }
    void checkFitsComparesWithTheModel()
    {
        QFETCH(int, nLayers);
        QFETCH(int, dModel);
        QFETCH(QString, phrase);
        const QString dir = folder();
        randomSet(Architecture::CrossLayer, Activation::ReLU, false)->save(dir.toStdString());
        const SetPtr set = TranscoderSet::load(dir.toStdString());
        cs::model::ModelConfig model;
        model.family = "llama";
        model.nLayers = nLayers;
        model.dModel = dModel;
        model.nHeads = 2;
        model.dHead = dModel / 2;
        const std::string message = messageOf([&] { set->checkFits(model); });
        if (phrase.isEmpty()) {
            QCOMPARE(QString::fromStdString(message), QString("NO ERROR"));
        } else {
            QVERIFY2(message.find(phrase.toStdString()) != std::string::npos, message.c_str());
            QVERIFY2(message.find(dir.toStdString()) != std::string::npos, message.c_str());
        }
    }

    void decoderRowsRefusesBadIds()
    {
        const QString dir = folder();
        randomSet(Architecture::PerLayer, Activation::ReLU, false)->save(dir.toStdString());
        for (bool lazy : { true, false }) {
            TranscoderSet::LoadOptions options;
            options.device = "cpu";
            options.lazyDecoders = lazy;
            const SetPtr set = TranscoderSet::load(dir.toStdString(), options);
            QVERIFY(messageOf([&] {
                set->decoderRows(0, at::tensor({ int64_t(0), kFeatures }));
            }).find("out of range")
                != std::string::npos);
            QVERIFY(messageOf([&] { set->decoderRows(0, at::tensor({ int64_t(-1) })); }).find("out of range")
                != std::string::npos);
            QVERIFY(messageOf([&] { set->decoderRows(0, at::tensor({ 1.0f })); }).find("integer") != std::string::npos);
            QVERIFY(messageOf([&] { set->decoder(kLayers); }).find("does not exist") != std::string::npos);
            QCOMPARE(set->decoderRows(1, at::zeros({ 0 }, at::kLong)).sizes().vec(),
                (std::vector<int64_t> { 0, 1, kDModel }));
        }
    }

    // The config names of the transcoder input: TransformerLens's ln2.hook_normalized (with or
    // without its "blocks.N." prefix) is the norm's output before its weight, the mlp_in names
    // after it; a saved set keeps the name it was given.
    void inputHookNames_data()
    {
        QTest::addColumn<QString>("name");
        QTest::addColumn<int>("hook");
        const int normalized = int(cs::model::Hook::MlpNormalized), mlpIn = int(cs::model::Hook::MlpIn);
        const int residMid = int(cs::model::Hook::ResidMid);
        for (const char* n : { "ln2.hook_normalized", "blocks.{layer}.ln2.hook_normalized",
                 "blocks.3.ln2.hook_normalized", "mlp_normalized" })
            QTest::newRow(n) << n << normalized;
        for (const char* n :
            { "mlp.hook_in", "blocks.{layer}.mlp.hook_in", "hook_mlp_in", "blocks.0.hook_mlp_in", "mlp_in" })
            QTest::newRow(n) << n << mlpIn;
        for (const char* n : { "hook_resid_mid", "blocks.{layer}.hook_resid_mid", "resid_mid" })
            QTest::newRow(n) << n << residMid;
    }
    void inputHookNames()
    {
        QFETCH(QString, name);
        QFETCH(int, hook);
        const std::string n = name.toStdString();
        QCOMPARE(int(cs::transcoder::hookFromConfigName(n)), hook);

        const SetPtr set = randomSet(Architecture::PerLayer, Activation::ReLU, false);
        TranscoderConfig c = set->config();
        c.inputHook = cs::model::Hook(hook);
        c.inputHookName = n;
        const SetPtr back = savedWithConfig(*set, c);
        QCOMPARE(int(back->config().inputHook), hook);
        QCOMPARE(back->config().inputHookName, n);
    }

    // A set built in memory for mlp_normalized under another hook's name saves the canonical
    // TransformerLens name.
    void savesCanonicalNormalizedName()
    {
        const SetPtr set = randomSet(Architecture::CrossLayer, Activation::ReLU, false);
        TranscoderConfig c = set->config();
        c.inputHook = cs::model::Hook::MlpNormalized;
        c.inputHookName = "mlp.hook_in";
        const SetPtr back = savedWithConfig(*set, c);
        QCOMPARE(back->config().inputHook, cs::model::Hook::MlpNormalized);
        QCOMPARE(back->config().inputHookName, std::string("ln2.hook_normalized"));
    }

    void saveRefusesBadDtype()
    {
        const SetPtr set = randomSet(Architecture::PerLayer, Activation::ReLU, false);
        QVERIFY(messageOf([&] { set->save(folder().toStdString(), "I32"); }).find("I32") != std::string::npos);
        QVERIFY(messageOf([&] { set->save(folder().toStdString(), "F8"); }).find("F8") != std::string::npos);
    }
};

QTEST_GUILESS_MAIN(TestTranscoderFormat)
#include "tst_transcoder_format.moc"
