// The saved full graph (".csgraph", see cs/graph.h): the unpruned adjacency (its sparse rows'
// three arrays) and the logit probabilities as safetensors tensors, the nodes and metadata as JSON text in the header's
// __metadata__, so one file holds what re-pruning at any thresholds needs.

#include "cs/error.h"
#include "cs/files.h"
#include "cs/graph.h"
#include "cs/json_reader.h"
#include "cs/safetensors.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace cs::graph {

namespace {

using nlohmann::json;

constexpr const char* kFormatName = "circuitscope.graph";

std::string shapeText(const std::vector<int64_t>& shape)
{
    std::string out = "[";
    for (size_t i = 0; i < shape.size(); ++i)
        out += (i ? ", " : "") + std::to_string(shape[i]);
    return out + "]";
}

// Reads the graph JSON of one file; every message starts with the path and names the place.
class Reader : public JsonReader {
public:
    using JsonReader::JsonReader;

    Metadata metadata(const json& m) const
    {
        object(m, "metadata");
        Metadata meta;
        meta.slug = text(member(m, "slug", "metadata"), "metadata.slug");
        meta.prompt = text(member(m, "prompt", "metadata"), "metadata.prompt");
        meta.promptTokens = texts(member(m, "prompt_tokens", "metadata"), "metadata.prompt_tokens");
        meta.scan = text(member(m, "scan", "metadata"), "metadata.scan");
        meta.transcoderList = texts(member(m, "transcoder_list", "metadata"), "metadata.transcoder_list");
        meta.nodeThreshold = number(member(m, "node_threshold", "metadata"), "metadata.node_threshold");
        meta.edgeThreshold = number(member(m, "edge_threshold", "metadata"), "metadata.edge_threshold");
        meta.qParams = object(member(m, "q_params", "metadata"), "metadata.q_params");
        meta.extra = object(member(m, "extra", "metadata"), "metadata.extra");
        if (m.contains("basis")) { // absent in transcoder graphs and in files before it
            meta.basis = text(m["basis"], "metadata.basis");
            if (!isBasis(meta.basis))
                fail("metadata.basis", "\"" + meta.basis + "\" is not a basis (neurons, mlp_out, attn_out or resid)");
        }
        return meta;
    }

    Node node(const json& j, const std::string& where) const
    {
        object(j, where);
        Node node;
        const json& kind = member(j, "kind", where);
        const std::string name = kind.is_string() ? kind.get<std::string>() : std::string();
        if (name == "feature")
            node.kind = NodeKind::Feature;
        else if (name == "error")
            node.kind = NodeKind::Error;
        else if (name == "embedding")
            node.kind = NodeKind::Embedding;
        else if (name == "logit")
            node.kind = NodeKind::Logit;
        else
            fail(where + ".kind",
                (kind.is_string() ? "\"" + name + "\"" : jsonTypeName(kind))
                    + " is not a node kind (feature, error, embedding or logit)");
        node.layer = integer(member(j, "layer", where), where + ".layer");
        node.position = integer(member(j, "position", where), where + ".position");
        node.feature = integer(member(j, "feature", where), where + ".feature");
        node.activation = number(member(j, "activation", where), where + ".activation");
        node.tokenId = integer(member(j, "token_id", where), where + ".token_id");
        node.token = text(member(j, "token", where), where + ".token");
        node.tokenProb = number(member(j, "token_prob", where), where + ".token_prob");
        node.label = text(member(j, "label", where), where + ".label");
        if (j.contains("contrast_token_id")) { // a difference target's B (optional)
            node.contrastTokenId = integer(j["contrast_token_id"], where + ".contrast_token_id");
            node.contrastToken = text(member(j, "contrast_token", where), where + ".contrast_token");
            node.contrastTokenProb = number(member(j, "contrast_token_prob", where), where + ".contrast_token_prob");
        }
        if (node.layer < -1)
            fail(where + ".layer", "is " + std::to_string(node.layer) + " (below -1)");
        if (node.position < 0)
            fail(where + ".position", "is negative");
        return node;
    }

    // The tensor `name`'s entry, checked to be there and of `dtype`.
    const io::TensorInfo* present(const io::SafetensorsFile& file, const char* name, io::DType dtype) const
    {
        const io::TensorInfo* info = file.find(name);
        if (!info)
            fail("", std::string("no tensor \"") + name + "\"");
        if (info->dtype != dtype)
            fail(std::string("tensor \"") + name + "\"",
                std::string("is ") + io::dtypeName(info->dtype) + ", expected " + io::dtypeName(dtype));
        return info;
    }

    // The tensor `name`: `dtype` (F32 unless said) of `shape`.
    at::Tensor tensor(const io::SafetensorsFile& file, const char* name, const std::vector<int64_t>& shape,
        const std::string& why, io::DType dtype = io::DType::F32) const
    {
        const io::TensorInfo* info = present(file, name, dtype);
        if (info->shape != shape)
            fail(std::string("tensor \"") + name + "\"",
                "is " + shapeText(info->shape) + " but must be " + shapeText(shape) + " (" + why + ")");
        // A copy, not a view of the mapping: the file may be replaced while the graph is open.
        return file.tensor(name).clone();
    }

    // The one-dimensional tensor `name` of `dtype` as a vector, its length read from the file.
    template<typename T>
    std::vector<T> vectorOf(const io::SafetensorsFile& file, const char* name, io::DType dtype) const
    {
        const io::TensorInfo* info = present(file, name, dtype);
        if (info->shape.size() != 1)
            fail(std::string("tensor \"") + name + "\"", "is " + shapeText(info->shape) + ", expected one dimension");
        const at::Tensor t = file.tensor(name).contiguous();
        const T* p = static_cast<const T*>(t.data_ptr());
        return std::vector<T>(p, p + t.numel());
    }

    // The adjacency's sparse rows (version 2): the arrays' lengths must agree with n and with
    // each other; Adjacency checks the offsets and columns.
    Adjacency sparseAdjacency(const io::SafetensorsFile& file, int64_t n) const
    {
        std::vector<int64_t> rowStarts = vectorOf<int64_t>(file, "adjacency.row_starts", io::DType::I64);
        if (static_cast<int64_t>(rowStarts.size()) != n + 1)
            fail("tensor \"adjacency.row_starts\"",
                "has " + std::to_string(rowStarts.size()) + " entries but must have " + std::to_string(n + 1) + " ("
                    + std::to_string(n) + " nodes)");
        std::vector<int32_t> columns = vectorOf<int32_t>(file, "adjacency.columns", io::DType::I32);
        std::vector<float> values = vectorOf<float>(file, "adjacency.values", io::DType::F32);
        if (columns.size() != values.size())
            fail("tensor \"adjacency.values\"",
                "has " + std::to_string(values.size()) + " entries but \"adjacency.columns\" has "
                    + std::to_string(columns.size()));
        try {
            return Adjacency(n, std::move(rowStarts), std::move(columns), std::move(values));
        } catch (const Error& e) {
            fail("", e.what());
        }
        return Adjacency();
    }
};

enum class FileStart { Safetensors, Json, Other };

FileStart sniff(const std::string& path)
{
    requireRegularFile(path); // a FIFO or a device (a link to /dev/zero) is never opened
    std::ifstream in(path, std::ios::binary | std::ios::ate);
    if (!in)
        throw Error("cannot read " + path + ": " + std::strerror(errno));
    const auto size = static_cast<uint64_t>(std::max<std::streamoff>(0, in.tellg()));
    in.seekg(0);
    char head[64] = {};
    in.read(head, sizeof head);
    const auto got = static_cast<size_t>(in.gcount());
    if (got >= 9) {
        uint64_t headerLen = 0;
        for (int i = 7; i >= 0; --i)
            headerLen = (headerLen << 8) | static_cast<unsigned char>(head[i]);
        if (headerLen >= 2 && headerLen <= size - 8 && head[8] == '{')
            return FileStart::Safetensors;
    }
    for (size_t i = 0; i < got; ++i) {
        const char c = head[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
            continue;
        return c == '{' || c == '[' ? FileStart::Json : FileStart::Other;
    }
    return FileStart::Other;
}

} // namespace

bool isGraphFile(const std::string& path)
{
    return sniff(path) == FileStart::Safetensors;
}

void writeGraphFile(const std::string& path, const Graph& graph)
{
    const auto refuse = [&](const std::string& why) { return Error("cannot write " + path + ": " + why); };
    try {
        graph.validate();
    } catch (const Error& e) {
        throw refuse(e.what());
    }
    const Metadata& meta = graph.metadata;
    if (!meta.qParams.is_object() || !meta.extra.is_object())
        throw refuse("the graph's metadata qParams and extra must be JSON objects");
    if (!std::isfinite(meta.nodeThreshold) || !std::isfinite(meta.edgeThreshold))
        throw refuse("the graph's thresholds must be finite");

    json nodes = json::array();
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
        const Node& node = graph.nodes[i];
        if (!std::isfinite(node.activation) || !std::isfinite(node.tokenProb))
            throw refuse("node " + std::to_string(i) + " has an infinite or NaN activation or token probability");
        nodes.push_back({ { "kind", nodeKindName(node.kind) }, { "layer", node.layer }, { "position", node.position },
            { "feature", node.feature }, { "activation", node.activation }, { "token_id", node.tokenId },
            { "token", textJson(node.token) }, { "token_prob", node.tokenProb }, { "label", textJson(node.label) } });
        if (node.contrastTokenId >= 0) {
            nodes.back()["contrast_token_id"] = node.contrastTokenId;
            nodes.back()["contrast_token"] = textJson(node.contrastToken);
            nodes.back()["contrast_token_prob"] = node.contrastTokenProb;
        }
    }
    json promptTokens = json::array();
    for (const std::string& token : meta.promptTokens)
        promptTokens.push_back(textJson(token));
    json transcoders = json::array();
    for (const std::string& name : meta.transcoderList)
        transcoders.push_back(textJson(name));
    json doc = {
        { "format", kFormatName },
        { "version", kGraphFileVersion },
        { "metadata",
            { { "slug", textJson(meta.slug) }, { "prompt", textJson(meta.prompt) }, { "prompt_tokens", promptTokens },
                { "scan", textJson(meta.scan) }, { "transcoder_list", transcoders },
                { "node_threshold", meta.nodeThreshold }, { "edge_threshold", meta.edgeThreshold },
                { "q_params", meta.qParams }, { "extra", meta.extra } } },
        { "nodes", std::move(nodes) },
    };
    if (!meta.basis.empty())
        doc["metadata"]["basis"] = meta.basis;
    std::string text;
    try {
        text = doc.dump();
    } catch (const json::exception& e) {
        throw refuse(
            std::string("the graph's qParams or extra metadata hold text that is not UTF-8 (") + e.what() + ")");
    }

    const int64_t nLogits = graph.ranges().logits.size();
    // The adjacency's arrays, viewed in place (the writer copies them once).
    const Adjacency& a = graph.adjacency;
    const int64_t n = a.size(), nnz = a.nnz();
    io::SafetensorsWriter writer;
    const auto view = [](const void* data, int64_t size, at::ScalarType type) {
        return size > 0 ? at::from_blob(const_cast<void*>(data), { size }, type) : at::zeros({ 0 }, type);
    };
    writer.add("adjacency.row_starts", view(a.rowStarts(), n + 1, at::kLong)); // [n + 1]
    writer.add("adjacency.columns", view(a.columns(), nnz, at::kInt)); // [nnz]
    writer.add("adjacency.values", view(a.values(), nnz, at::kFloat)); // [nnz]
    writer.add("logit_probabilities", view(graph.logitProbabilities.data(), nLogits, at::kFloat)); // [n_logits]
    writer.setMetadata(kGraphFileMetadataKey, text);
    writer.write(path);
}

Graph readGraphFile(const std::string& path)
{
    switch (sniff(path)) {
    case FileStart::Safetensors:
        break;
    case FileStart::Json:
        throw Error(path + " is JSON text (a graph JSON?), not a Circuitscope graph file (" + kGraphFileExtension
            + ", a safetensors file)");
    case FileStart::Other:
        break; // SafetensorsFile::open says what is wrong
    }
    const auto file = io::SafetensorsFile::open(path);
    const Reader reader(path);
    const auto entry = file->metadata().find(kGraphFileMetadataKey);
    if (entry == file->metadata().end())
        reader.fail("",
            std::string("a safetensors file without \"") + kGraphFileMetadataKey
                + "\" metadata, not a Circuitscope graph file");
    const std::string where = std::string("\"") + kGraphFileMetadataKey + "\" metadata";
    json doc;
    try {
        doc = parseJson(entry->second, reader.source() + ": " + where);
    } catch (const json::exception& e) {
        reader.fail(where, std::string("is not JSON (") + e.what() + ")");
    }
    reader.object(doc, where);
    const json& format = reader.member(doc, "format", where);
    if (format != kFormatName)
        reader.fail(where + ".format", "is " + format.dump() + ", expected \"" + kFormatName + "\"");
    const int64_t version = reader.integer(reader.member(doc, "version", where), where + ".version");
    if (version > kGraphFileVersion)
        reader.fail("",
            "written in graph file format version " + std::to_string(version)
                + " by a newer Circuitscope; this one reads version " + std::to_string(kGraphFileVersion));
    if (version < 1)
        reader.fail(where + ".version", std::to_string(version) + " is not a format version");

    Graph graph;
    graph.metadata = reader.metadata(reader.member(doc, "metadata", where));
    const json& nodes = reader.array(reader.member(doc, "nodes", where), "nodes");
    graph.nodes.reserve(nodes.size());
    for (size_t i = 0; i < nodes.size(); ++i)
        graph.nodes.push_back(reader.node(nodes[i], "nodes[" + std::to_string(i) + "]"));

    KindRanges ranges;
    try {
        ranges = graph.ranges(); // the node order
    } catch (const Error& e) {
        reader.fail("", e.what());
    }
    const int64_t n = graph.size();
    if (version == 1) // a dense [n, n] matrix
        graph.adjacency
            = Adjacency::fromDense(reader.tensor(*file, "adjacency", { n, n }, std::to_string(n) + " nodes"));
    else
        graph.adjacency = reader.sparseAdjacency(*file, n);
    const at::Tensor probabilities = reader.tensor(
        *file, "logit_probabilities", { ranges.logits.size() }, std::to_string(ranges.logits.size()) + " logit nodes");
    graph.logitProbabilities.assign(
        probabilities.data_ptr<float>(), probabilities.data_ptr<float>() + probabilities.numel());
    try {
        graph.validate();
    } catch (const Error& e) {
        reader.fail("", e.what());
    }
    return graph;
}

} // namespace cs::graph
