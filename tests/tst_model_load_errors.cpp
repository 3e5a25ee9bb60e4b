// Model::load on broken Hugging Face folders: every case must end in a cs::Error whose
// message names what is wrong (the field, the tensor, the file), never in a crash or another
// exception type. The folders are tiny models from fixtures/hf_fixtures.h, broken one way
// each; the suite runs under AddressSanitizer in CI.

#include "hf_fixtures.h"

#include "cs/error.h"
#include "cs/model.h"
#include "cs/safetensors.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <QDir>
#include <QFile>
#include <QFileInfo>
#include <QTemporaryDir>
#include <QtTest>

#include <algorithm>
#include <cmath>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <sys/stat.h>

using cs::test::TinySpec;
using Json = nlohmann::json;
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

namespace {

TinySpec specFor(const QString& breakage)
{
    TinySpec spec;
    spec.family = breakage.startsWith("gpt2") ? "gpt2" : breakage.startsWith("gemma2") ? "gemma2" : "llama";
    if (spec.family == "gpt2")
        spec.dMlp = 4 * spec.dModel;
    if (breakage == "index_missing_shard" || breakage == "index_not_json" || breakage == "index_nul_shard")
        spec.sharded = true;
    if (breakage == "missing_lm_head")
        spec.tied = false;
    if (breakage == "weight_i16")
        spec.storeDtype = "F16"; // as many bytes as I16
    if (breakage == "bad_kv_heads")
        spec.nKvHeads = 3; // shapes consistent, but 4 query heads cannot share 3 kv heads
    return cs::test::normalized(spec);
}

void editConfig(const QString& dir, const TinySpec& spec, const std::function<void(Json&)>& edit)
{
    Json config = Json::parse(cs::test::tinyConfigJson(spec));
    edit(config);
    cs::test::writeTextFile(dir + "/config.json", config.dump(2));
}

void editWeights(const QString& dir, const TinySpec& spec, const std::function<void(NamedTensors&)>& edit)
{
    NamedTensors weights = cs::test::tinyWeights(spec);
    edit(weights);
    cs::test::writeSafetensors(dir + "/model.safetensors", weights, spec.storeDtype);
}

// A safetensors file of exactly this header and these data bytes.
void writeRawSafetensors(const QString& path, const std::string& header, const QByteArray& data)
{
    QByteArray bytes(8, 0);
    uint64_t n = header.size();
    for (int i = 0; i < 8; ++i)
        bytes[i] = char((n >> (8 * i)) & 0xFF);
    bytes += QByteArray::fromStdString(header);
    bytes += data;
    QFile file(path);
    QVERIFY(file.open(QIODevice::WriteOnly | QIODevice::Truncate));
    file.write(bytes);
}

} // namespace

class TestModelLoadErrors : public QObject {
    Q_OBJECT

private Q_SLOTS:
    void initTestCase();
    void brokenFolder_data();
    void brokenFolder();
    void intactFolderLoads();

private:
    // Writes a tiny model into `dir` broken as `breakage` says; returns the folder to load.
    QString prepare(const QString& breakage, const QString& dir);

    std::unique_ptr<QTemporaryDir> m_dir;
};

void TestModelLoadErrors::initTestCase()
{
    m_dir = std::make_unique<QTemporaryDir>(cs::test::testTempRoot() + "/tst_model_load_errors-XXXXXX");
    QVERIFY(m_dir->isValid());
}

void TestModelLoadErrors::brokenFolder_data()
{
    QTest::addColumn<QString>("breakage");
    QTest::addColumn<QString>("phrase"); // must appear in what() (case-insensitive)

    // config.json
    QTest::newRow("unknown model_type") << "unknown_model_type"
                                        << "mamba_xyz";
    QTest::newRow("no model_type") << "no_model_type"
                                   << "model_type";
    QTest::newRow("llama without hidden_size") << "no_hidden_size"
                                               << "hidden_size";
    QTest::newRow("gpt2 without n_embd") << "gpt2_no_n_embd"
                                         << "n_embd";
    QTest::newRow("hidden_size not a number") << "hidden_size_string"
                                              << "hidden_size";
    QTest::newRow("negative num_hidden_layers") << "negative_layers"
                                                << "num_hidden_layers";
    QTest::newRow("heads not divisible by kv heads") << "bad_kv_heads"
                                                     << "num_key_value_heads";
    QTest::newRow("unsupported rope_scaling") << "rope_yarn"
                                              << "yarn";
    QTest::newRow("config.json not JSON") << "config_not_json"
                                          << "config.json";
    QTest::newRow("config.json a JSON array") << "config_array"
                                              << "config.json";
    // A link to a device would read forever (issue 24): only regular files are read.
    QTest::newRow("config.json a link to /dev/zero") << "config_dev_zero"
                                                     << "config.json is not a regular file";
    QTest::newRow("config.json a FIFO") << "config_fifo"
                                        << "config.json is not a regular file (a FIFO)";
    QTest::newRow("config.json over its cap") << "config_huge"
                                              << "config.json is 67108865 bytes, more than the 67108864";
    // Values that load but make every logit NaN (issue 24): refused at load, the field named.
    QTest::newRow("rms_norm_eps -1") << "rms_norm_eps_negative"
                                     << "config.json (llama): \"rms_norm_eps\" must be a positive number, got -1.0";
    QTest::newRow("rope_theta 0") << "rope_theta_zero"
                                  << "config.json (llama): \"rope_theta\" must be a positive number, got 0.0";
    QTest::newRow("rope_scaling.factor 0") << "rope_factor_zero"
                                           << "\"rope_scaling.factor\" must be a positive number, got 0.0";
    QTest::newRow("llama3 high_freq_factor = low_freq_factor")
        << "llama3_equal_factors"
        << "high_freq_factor (2.0) must be larger than rope_scaling.low_freq_factor (2.0)";
    QTest::newRow("rope_parameters.rope_theta -5") << "rope_parameters_theta"
                                                   << "\"rope_parameters.rope_theta\" must be a positive number";
    QTest::newRow("gpt2 layer_norm_epsilon 0")
        << "gpt2_eps_zero"
        << "config.json (gpt2): \"layer_norm_epsilon\" must be a positive number";
    // Issue 21: eps 0 as well as below it; values float32 cannot hold, which it rounds to 0 or
    // infinity (1e-300 made every logit NaN, 1e300 every activation 0).
    QTest::newRow("rms_norm_eps 0") << "rms_norm_eps_zero"
                                    << "config.json (llama): \"rms_norm_eps\" must be a positive number, got 0.0";
    QTest::newRow("rms_norm_eps 1e300")
        << "rms_norm_eps_huge"
        << "config.json (llama): \"rms_norm_eps\" is 1e+300, outside float32's range (1.2e-38 to 3.4e+38)";
    QTest::newRow("rope_theta -1") << "rope_theta_negative"
                                   << "config.json (llama): \"rope_theta\" must be a positive number, got -1.0";
    QTest::newRow("rope_theta 1e-300") << "rope_theta_tiny"
                                       << "config.json (llama): \"rope_theta\" is 1e-300, outside float32's range";
    QTest::newRow("rope_theta 1e300") << "rope_theta_huge"
                                      << "config.json (llama): \"rope_theta\" is 1e+300, outside float32's range";
    QTest::newRow("gpt2 layer_norm_epsilon 1e-45")
        << "gpt2_eps_tiny"
        << "config.json (gpt2): \"layer_norm_epsilon\" is 1e-45, outside float32's range";
    // Values that were replaced or ran a different model than the folder holds (issue 23).
    QTest::newRow("head_dim -1") << "head_dim_negative"
                                 << "config.json (llama): \"head_dim\" must be a positive integer, got -1";
    QTest::newRow("head_dim 2^64-1") << "head_dim_huge"
                                     << "config.json: head_dim: is too large";
    QTest::newRow("max_position_embeddings -1")
        << "max_positions_negative"
        << "config.json (llama): \"max_position_embeddings\" must be a positive integer, got -1";
    QTest::newRow("num_hidden_layers below the checkpoint's")
        << "fewer_layers"
        << "config.json: the config gives 1 layer (num_hidden_layers or n_layer) but the checkpoint holds 2";
    QTest::newRow("gpt2 n_layer below the checkpoint's")
        << "gpt2_fewer_layers"
        << "config.json: the config gives 1 layer (num_hidden_layers or n_layer) but the checkpoint holds 2";
    QTest::newRow("tokenizer ids past vocab_size")
        << "tokenizer_past_vocab"
        << "tokenizer.json: its largest token id is 999, but the model's vocabulary (vocab_size in config.json) has "
           "300 ids";

    // Tensors.
    QTest::newRow("missing tensor") << "missing_tensor"
                                    << "model.layers.1.mlp.down_proj.weight";
    QTest::newRow("untied without lm_head") << "missing_lm_head"
                                            << "lm_head.weight";
    QTest::newRow("wrong shape") << "wrong_shape"
                                 << "model.layers.0.self_attn.q_proj.weight";
    QTest::newRow("embeddings smaller than vocab_size") << "short_embeddings"
                                                        << "model.embed_tokens.weight";
    QTest::newRow("gpt2 c_attn wrong shape") << "gpt2_wrong_c_attn"
                                             << "transformer.h.0.attn.c_attn.weight";
    // A corrupt file's NaN would show only as NaN logits (issue 23): every weight is checked at load.
    QTest::newRow("a NaN weight") << "weight_nan"
                                  << "tensor \"model.layers.0.mlp.up_proj.weight\" holds 1 NaN or infinite value";
    QTest::newRow("an infinite gpt2 weight")
        << "gpt2_weight_inf"
        << "tensor \"transformer.h.1.mlp.c_fc.weight\" holds 2 NaN or infinite values";
    QTest::newRow("an integer weight") << "weight_int"
                                       << "is stored as I32, but a weight must be a floating-point type";
    // Issue 21: a tensor of NaN or infinities only, one flattened (its element count right, its
    // shape not), one stored as I16 (as many bytes as F16).
    QTest::newRow("a weight all NaN")
        << "weight_all_nan"
        << "tensor \"model.layers.1.self_attn.o_proj.weight\" holds 1024 NaN or infinite values (of 1024)";
    QTest::newRow("a weight all -inf") << "weight_all_inf"
                                       << "tensor \"model.norm.weight\" holds 32 NaN or infinite values (of 32)";
    QTest::newRow("a weight flattened")
        << "weight_flat"
        << "tensor \"model.layers.0.self_attn.q_proj.weight\" in %1 has shape [1024] but the config implies [32, 32]";
    QTest::newRow("a weight stored as I16")
        << "weight_i16"
        << "tensor \"model.layers.0.mlp.gate_proj.weight\" in %1 is stored as I16, but a weight must be a "
           "floating-point type";

    // Files.
    QTest::newRow("no safetensors") << "no_safetensors"
                                    << "safetensors";
    QTest::newRow("index names a missing shard") << "index_missing_shard"
                                                 << "model-00002-of-00002.safetensors";
    QTest::newRow("index not JSON") << "index_not_json"
                                    << "model.safetensors.index.json";
    // A path ends at its first NUL: "model-00001-of-00002.safetensors\0x" opened the first shard (issue 21).
    QTest::newRow("shard name with a NUL byte") << "index_nul_shard"
                                                << "model.safetensors.index.json: weight_map entry "
                                                   "\"model.embed_tokens.weight\" names a shard with a NUL byte at "
                                                   "byte 32, which no file name holds";
    QTest::newRow("truncated safetensors") << "truncated"
                                           << "model.safetensors";
    QTest::newRow("header length past the end") << "huge_header"
                                                << "model.safetensors";
    QTest::newRow("header not JSON") << "header_not_json"
                                     << "model.safetensors";
    QTest::newRow("data offsets past the end") << "offsets_past_end"
                                               << "model.safetensors";
    // A FIFO would block the open until someone writes to it (issue 24).
    QTest::newRow("model.safetensors a FIFO") << "safetensors_fifo"
                                              << "model.safetensors is not a regular file";
    QTest::newRow("byte count disagrees with shape") << "offsets_wrong_size"
                                                     << "model.safetensors";
    QTest::newRow("empty folder") << "empty_folder"
                                  << "config.json";
    QTest::newRow("nonexistent folder") << "nonexistent"
                                        << "does-not-exist";
}

QString TestModelLoadErrors::prepare(const QString& breakage, const QString& dir)
{
    if (breakage == "nonexistent")
        return dir + "/does-not-exist";
    QDir().mkpath(dir);
    if (breakage == "empty_folder")
        return dir;

    const TinySpec spec = specFor(breakage);
    cs::test::writeTinyModel(dir, spec);
    const QString st = dir + "/model.safetensors";

    if (breakage == "bad_kv_heads")
        ; // broken by specFor alone
    else if (breakage == "unknown_model_type")
        editConfig(dir, spec, [](Json& c) { c["model_type"] = "mamba_xyz"; });
    else if (breakage == "no_model_type")
        editConfig(dir, spec, [](Json& c) { c.erase("model_type"); });
    else if (breakage == "no_hidden_size")
        editConfig(dir, spec, [](Json& c) { c.erase("hidden_size"); });
    else if (breakage == "gpt2_no_n_embd")
        editConfig(dir, spec, [](Json& c) { c.erase("n_embd"); });
    else if (breakage == "hidden_size_string")
        editConfig(dir, spec, [](Json& c) { c["hidden_size"] = "thirty-two"; });
    else if (breakage == "negative_layers")
        editConfig(dir, spec, [](Json& c) { c["num_hidden_layers"] = -2; });
    else if (breakage == "rope_yarn")
        editConfig(dir, spec, [](Json& c) { c["rope_scaling"] = { { "rope_type", "yarn" }, { "factor", 4.0 } }; });
    else if (breakage == "config_not_json")
        cs::test::writeTextFile(dir + "/config.json", "{\"model_type\": \"llama\", \"hidden_size\": 32,");
    else if (breakage == "config_array")
        cs::test::writeTextFile(dir + "/config.json", "[1, 2, 3]");
    else if (breakage == "config_dev_zero") {
        QFile::remove(dir + "/config.json");
        QFile::link("/dev/zero", dir + "/config.json"); // a failure shows as the wrong message below
    } else if (breakage == "config_fifo") {
        QFile::remove(dir + "/config.json");
        ::mkfifo(QFile::encodeName(dir + "/config.json").constData(), 0600);
    } else if (breakage == "config_huge") {
        QFile::resize(dir + "/config.json", (qint64(64) << 20) + 1); // sparse: no disk written
    } else if (breakage == "rms_norm_eps_negative")
        editConfig(dir, spec, [](Json& c) { c["rms_norm_eps"] = -1.0; });
    else if (breakage == "rms_norm_eps_zero")
        editConfig(dir, spec, [](Json& c) { c["rms_norm_eps"] = 0.0; });
    else if (breakage == "rms_norm_eps_huge")
        editConfig(dir, spec, [](Json& c) { c["rms_norm_eps"] = 1e300; });
    else if (breakage == "rope_theta_negative")
        editConfig(dir, spec, [](Json& c) { c["rope_theta"] = -1.0; });
    else if (breakage == "rope_theta_tiny")
        editConfig(dir, spec, [](Json& c) { c["rope_theta"] = 1e-300; });
    else if (breakage == "rope_theta_huge")
        editConfig(dir, spec, [](Json& c) { c["rope_theta"] = 1e300; });
    else if (breakage == "gpt2_eps_tiny")
        editConfig(dir, spec, [](Json& c) { c["layer_norm_epsilon"] = 1e-45; });
    else if (breakage == "rope_theta_zero")
        editConfig(dir, spec, [](Json& c) { c["rope_theta"] = 0.0; });
    else if (breakage == "rope_factor_zero")
        editConfig(dir, spec, [](Json& c) { c["rope_scaling"] = { { "rope_type", "linear" }, { "factor", 0.0 } }; });
    else if (breakage == "llama3_equal_factors")
        editConfig(dir, spec, [](Json& c) {
            c["rope_scaling"] = { { "rope_type", "llama3" }, { "factor", 8.0 }, { "low_freq_factor", 2.0 },
                { "high_freq_factor", 2.0 }, { "original_max_position_embeddings", 128 } };
        });
    else if (breakage == "rope_parameters_theta")
        editConfig(dir, spec, [](Json& c) {
            c.erase("rope_theta");
            c["rope_parameters"] = { { "rope_type", "default" }, { "rope_theta", -5.0 } };
        });
    else if (breakage == "gpt2_eps_zero")
        editConfig(dir, spec, [](Json& c) { c["layer_norm_epsilon"] = 0.0; });
    else if (breakage == "safetensors_fifo") {
        QFile::remove(st);
        ::mkfifo(QFile::encodeName(st).constData(), 0600);
    } else if (breakage == "missing_tensor")
        editWeights(dir, spec, [](NamedTensors& w) {
            w.erase(std::remove_if(w.begin(), w.end(),
                        [](const auto& t) { return t.first == "model.layers.1.mlp.down_proj.weight"; }),
                w.end());
        });
    else if (breakage == "missing_lm_head")
        editWeights(dir, spec, [](NamedTensors& w) {
            w.erase(
                std::remove_if(w.begin(), w.end(), [](const auto& t) { return t.first == "lm_head.weight"; }), w.end());
        });
    else if (breakage == "wrong_shape")
        editWeights(dir, spec, [&](NamedTensors& w) {
            for (auto& [name, t] : w)
                if (name == "model.layers.0.self_attn.q_proj.weight")
                    t = at::zeros({ spec.nHeads * spec.dHead, spec.dModel + 1 });
        });
    else if (breakage == "short_embeddings")
        editWeights(dir, spec, [&](NamedTensors& w) {
            for (auto& [name, t] : w)
                if (name == "model.embed_tokens.weight")
                    t = t.slice(0, 0, spec.vocab - 20).contiguous();
        });
    else if (breakage == "gpt2_wrong_c_attn")
        editWeights(dir, spec, [&](NamedTensors& w) {
            for (auto& [name, t] : w)
                if (name == "transformer.h.0.attn.c_attn.weight")
                    t = at::zeros({ spec.dModel, 2 * spec.dModel });
        });
    else if (breakage == "head_dim_negative")
        editConfig(dir, spec, [](Json& c) { c["head_dim"] = -1; });
    else if (breakage == "head_dim_huge")
        editConfig(dir, spec, [](Json& c) { c["head_dim"] = std::numeric_limits<uint64_t>::max(); });
    else if (breakage == "max_positions_negative")
        editConfig(dir, spec, [](Json& c) { c["max_position_embeddings"] = -1; });
    else if (breakage == "fewer_layers")
        editConfig(dir, spec, [](Json& c) { c["num_hidden_layers"] = 1; });
    else if (breakage == "gpt2_fewer_layers")
        editConfig(dir, spec, [](Json& c) { c["n_layer"] = 1; });
    else if (breakage == "tokenizer_past_vocab") {
        QFile file(dir + "/tokenizer.json");
        if (!file.open(QIODevice::ReadOnly))
            qFatal("cannot read the fixture's tokenizer.json");
        Json t = Json::parse(file.readAll().toStdString());
        file.close();
        t["model"]["vocab"]["<|far|>"] = 999; // an id past the embedding matrix
        cs::test::writeTextFile(dir + "/tokenizer.json", t.dump());
    } else if (breakage == "weight_nan")
        editWeights(dir, spec, [](NamedTensors& w) {
            for (auto& [name, t] : w)
                if (name == "model.layers.0.mlp.up_proj.weight")
                    t = t.clone().index_put_({ 3, 5 }, std::nanf(""));
        });
    else if (breakage == "gpt2_weight_inf")
        editWeights(dir, spec, [](NamedTensors& w) {
            for (auto& [name, t] : w)
                if (name == "transformer.h.1.mlp.c_fc.weight") {
                    t = t.clone();
                    t.view(-1)[0] = INFINITY;
                    t.view(-1)[7] = -INFINITY;
                }
        });
    else if (breakage == "weight_all_nan" || breakage == "weight_all_inf")
        editWeights(dir, spec, [&](NamedTensors& w) {
            for (auto& [name, t] : w)
                if (name
                    == (breakage == "weight_all_nan" ? "model.layers.1.self_attn.o_proj.weight" : "model.norm.weight"))
                    t = at::full_like(t, breakage == "weight_all_nan" ? std::nanf("") : -INFINITY);
        });
    else if (breakage == "weight_flat" || breakage == "weight_i16") {
        // The header rewritten: the same bytes, another shape or dtype.
        auto file = cs::io::SafetensorsFile::open(st.toStdString());
        Json header = Json::object();
        QByteArray data;
        for (const cs::io::TensorInfo& info : file->tensors()) {
            const std::string& name = info.name;
            const at::Tensor t = file->tensor(name).contiguous();
            const QByteArray bytes(static_cast<const char*>(t.data_ptr()), int(t.nbytes()));
            Json entry = { { "dtype", cs::io::dtypeName(info.dtype) }, { "shape", info.shape },
                { "data_offsets", { data.size(), data.size() + bytes.size() } } };
            if (breakage == "weight_flat" && name == "model.layers.0.self_attn.q_proj.weight")
                entry["shape"] = { t.numel() };
            if (breakage == "weight_i16" && name == "model.layers.0.mlp.gate_proj.weight")
                entry["dtype"] = "I16";
            header[name] = entry;
            data += bytes;
        }
        file.reset(); // unmapped before the file is rewritten
        writeRawSafetensors(st, header.dump(), data);
    } else if (breakage == "weight_int") {
        cs::io::SafetensorsWriter writer;
        for (const auto& [name, t] : cs::test::tinyWeights(spec))
            writer.add(name, name == "model.norm.weight" ? t.to(at::kInt) : t);
        writer.write(st.toStdString());
    } else if (breakage == "no_safetensors")
        QFile::remove(st);
    else if (breakage == "index_missing_shard")
        QFile::remove(dir + "/model-00002-of-00002.safetensors");
    else if (breakage == "index_nul_shard") {
        QFile file(dir + "/model.safetensors.index.json");
        if (!file.open(QIODevice::ReadOnly))
            qFatal("cannot read the fixture's index");
        Json index = Json::parse(file.readAll().toStdString());
        file.close();
        Json& entry = index["weight_map"]["model.embed_tokens.weight"]; // the shard that holds it, cut short
        entry = entry.get<std::string>() + std::string("\0evil", 5);
        cs::test::writeTextFile(dir + "/model.safetensors.index.json", index.dump());
    } else if (breakage == "index_not_json")
        cs::test::writeTextFile(dir + "/model.safetensors.index.json", "{\"weight_map\": {");
    else if (breakage == "truncated")
        QFile::resize(st, QFileInfo(st).size() / 2);
    else if (breakage == "huge_header") {
        QFile file(st);
        if (file.open(QIODevice::ReadWrite))
            file.write(QByteArray(8, char(0x7F)));
    } else if (breakage == "header_not_json")
        writeRawSafetensors(st, "this is not json", QByteArray(64, 0));
    else if (breakage == "offsets_past_end")
        writeRawSafetensors(
            st, R"({"model.norm.weight":{"dtype":"F32","shape":[32],"data_offsets":[0,128]}})", QByteArray(16, 0));
    else if (breakage == "offsets_wrong_size")
        writeRawSafetensors(
            st, R"({"model.norm.weight":{"dtype":"F32","shape":[32],"data_offsets":[0,64]}})", QByteArray(128, 0));
    else
        qFatal("unknown breakage %s", qPrintable(breakage));
    return dir;
}

void TestModelLoadErrors::brokenFolder()
{
    QFETCH(QString, breakage);
    QFETCH(QString, phrase);
    const QString folder = prepare(breakage, m_dir->filePath(breakage));
    try {
        const auto model = cs::model::Model::load(folder.toStdString(), { "cpu" });
        QFAIL(qPrintable("loaded without an error (" + QString::number(model->config().nLayers) + " layers)"));
    } catch (const cs::Error& e) {
        const QString message = QString::fromUtf8(e.what());
        phrase.replace("%1", folder); // the folder, where a message names it
        QVERIFY2(message.contains(phrase, Qt::CaseInsensitive),
            qPrintable(QString("the message \"%1\" does not name \"%2\"").arg(message, phrase)));
    } catch (const std::exception& e) {
        QFAIL(qPrintable(QString("threw something other than cs::Error: %1").arg(QString::fromUtf8(e.what()))));
    } catch (...) {
        QFAIL("threw something that is not a std::exception");
    }
}

// The control: the same fixture unbroken loads, so the failures above are the breakages'.
void TestModelLoadErrors::intactFolderLoads()
{
    for (const char* family : { "llama", "gpt2", "gemma2" }) {
        const TinySpec spec = specFor(QString(family) + "_intact");
        const QString folder = cs::test::writeTinyModel(m_dir->filePath(QString("intact_") + family), spec);
        const auto model = cs::model::Model::load(folder.toStdString(), { "cpu" });
        QCOMPARE(model->config().nLayers, spec.nLayers);
        // The configuration alone is the loaded model's, and needs no weights.
        for (const auto& entry : QDir(folder).entryList({ "*.safetensors*" }, QDir::Files))
            QVERIFY(QFile::remove(folder + "/" + entry));
        const cs::model::ModelConfig alone = cs::model::Model::loadConfig(folder.toStdString());
        const cs::model::ModelConfig& loaded = model->config();
        QCOMPARE(alone.nLayers, loaded.nLayers);
        QCOMPARE(alone.dModel, loaded.dModel);
        QCOMPARE(alone.dMlp, loaded.dMlp);
        QCOMPARE(alone.nHeads, loaded.nHeads);
        QCOMPARE(alone.vocabSize, loaded.vocabSize);
        QCOMPARE(alone.modelType, loaded.modelType);
        QVERIFY_THROWS_EXCEPTION(cs::Error, cs::model::Model::load(folder.toStdString(), { "cpu" }));
    }
}

QTEST_GUILESS_MAIN(TestModelLoadErrors)
#include "tst_model_load_errors.moc"
