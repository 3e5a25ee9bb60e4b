// Token rows from a text corpus and the model activations streamed from them.
#include "cs/json_reader.h"
#include "cs/transcoder_train.h"

#include "cs/error.h"
#include "cs/safetensors.h"
#include "io/atomic_file.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

namespace cs::transcoder {

namespace fs = std::filesystem;

struct TokenRows::File {
    std::string path;
    std::ifstream in;
};

TokenRows::TokenRows(const std::string& path, std::shared_ptr<const model::Tokenizer> tokenizer, int64_t seqLen)
    : m_file(std::make_unique<File>())
    , m_tokenizer(std::move(tokenizer))
    , m_seqLen(seqLen)
{
    if (seqLen < 2)
        throw Error("rows need at least 2 tokens");
    m_file->path = path;
    requireRegularFile(path); // a FIFO or a device (a link to /dev/urandom) would never end
    m_file->in.open(path, std::ios::binary);
    if (!m_file->in)
        throw Error("cannot open corpus " + path);
}

TokenRows::~TokenRows() = default;

void TokenRows::rewind()
{
    m_file->in.clear();
    m_file->in.seekg(0);
    m_rowsRead = 0;
    m_pending.clear();
}

bool TokenRows::nextLine(std::string& line)
{
    while (std::getline(m_file->in, line)) {
        if (!line.empty() && line.back() == '\r')
            line.pop_back();
        if (!line.empty())
            return true;
    }
    return false;
}

at::Tensor TokenRows::next(int64_t n)
{
    const auto bos = m_tokenizer->addsBos() ? m_tokenizer->bosId() : std::optional<int64_t>();
    static const std::vector<int64_t> none;
    const auto newline = m_tokenizer->encode("\n", false);
    std::vector<int64_t> flat;
    int64_t rows = 0;
    std::string line;
    while (rows < n) {
        std::vector<int64_t> row;
        if (bos)
            row.push_back(*bos);
        bool eof = false;
        while (static_cast<int64_t>(row.size()) < m_seqLen) {
            std::vector<int64_t> ids;
            if (!m_pending.empty()) {
                ids.swap(m_pending);
            } else {
                if (!nextLine(line)) {
                    eof = true;
                    break;
                }
                ids = m_tokenizer->encode(line, false);
                if (row.size() > (bos ? 1u : 0u))
                    ids.insert(ids.begin(), newline.begin(), newline.end());
            }
            const size_t room = static_cast<size_t>(m_seqLen) - row.size();
            const bool rowWasEmpty = row.size() == (bos ? 1u : 0u);
            if (ids.size() > room && rowWasEmpty) // a line longer than a row: continue it in the next
                m_pending.assign(ids.begin() + static_cast<std::ptrdiff_t>(room), ids.end());
            row.insert(row.end(), ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(std::min(room, ids.size())));
        }
        if (eof && static_cast<int64_t>(row.size()) < m_seqLen)
            break; // a partial last row is dropped
        flat.insert(flat.end(), row.begin(), row.end());
        ++rows;
    }
    m_rowsRead += rows;
    return at::tensor(flat, at::kLong).reshape({ rows, m_seqLen });
}

namespace {

class ModelActivations : public ActivationSource {
public:
    ModelActivations(std::shared_ptr<const model::Model> model, ModelActivationOptions options)
        : m_model(std::move(model))
        , m_options(std::move(options))
        , m_rows(m_options.corpus, tokenizerOf(*m_model), m_options.seqLen)
    {
        if (m_options.shards < 1 || m_options.shard < 0 || m_options.shard >= m_options.shards)
            throw Error("shard " + std::to_string(m_options.shard) + " of " + std::to_string(m_options.shards)
                + " does not exist");
        if (!m_options.cacheDir.empty())
            openCache();
    }

    std::pair<at::Tensor, at::Tensor> next() override
    {
        // This shard's chunks: shard, shard + shards, ... of the corpus's (the cache is shared).
        const int64_t k = m_position++ * m_options.shards + m_options.shard;
        if (!m_options.cacheDir.empty()) {
            const auto path = chunkPath(m_nChunks > 0 ? k % m_nChunks : k);
            std::error_code ec;
            if (fs::exists(path, ec)) {
                auto file = io::SafetensorsFile::open(path);
                return { file->tensor("input").to(at::kFloat), file->tensor("output").to(at::kFloat) };
            }
        }
        auto [index, chunk] = compute(k);
        if (!m_options.cacheDir.empty()) {
            io::SafetensorsWriter writer;
            writer.add("input", chunk.first.to(at::kHalf));
            writer.add("output", chunk.second.to(at::kHalf));
            writer.write(chunkPath(index));
        }
        return chunk;
    }

    int64_t position() const override { return m_position; }
    void seek(int64_t chunks) override { m_position = chunks; }

private:
    static std::shared_ptr<const model::Tokenizer> tokenizerOf(const model::Model& m)
    {
        // The model keeps its tokenizer for its lifetime; share it without copying.
        return std::shared_ptr<const model::Tokenizer>(std::shared_ptr<const model::Tokenizer>(), &m.tokenizer());
    }

    std::string chunkPath(int64_t k) const
    {
        return (fs::path(m_options.cacheDir) / ("chunk_" + std::to_string(k) + ".safetensors")).string();
    }

    void openCache()
    {
        fs::create_directories(m_options.cacheDir);
        std::error_code ec;
        const auto size = fs::file_size(m_options.corpus, ec);
        nlohmann::json manifest = {
            { "model", fs::weakly_canonical(m_model->folder().empty() ? "." : m_model->folder()).string() },
            { "corpus", fs::weakly_canonical(m_options.corpus).string() },
            { "corpus_bytes", ec ? 0 : static_cast<int64_t>(size) },
            { "input_hook", model::hookName(m_options.inputHook) },
            { "output_hook", model::hookName(m_options.outputHook) },
            { "seq_len", m_options.seqLen },
            { "rows_per_chunk", m_options.rowsPerChunk },
        };
        const auto path = (fs::path(m_options.cacheDir) / "manifest.json").string();
        if (fs::exists(path, ec)) {
            nlohmann::json existing;
            try {
                existing = parseJson(io::readFile(path, kMaxConfigFileBytes), path);
            } catch (const nlohmann::json::exception&) {
                throw Error(path + " is not an activation cache manifest");
            }
            if (existing != manifest)
                throw Error("the activation cache " + m_options.cacheDir
                    + " was made for another model, corpus or hooks; use another folder or delete it");
            const auto countPath = (fs::path(m_options.cacheDir) / "chunks.json").string();
            if (fs::exists(countPath, ec)) {
                try {
                    m_nChunks = parseJson(io::readFile(countPath, kMaxConfigFileBytes), countPath)
                                    .at("chunks")
                                    .get<int64_t>();
                } catch (const nlohmann::json::exception&) {
                    throw Error(countPath + " is damaged; delete the activation cache " + m_options.cacheDir);
                }
            }
            return;
        }
        io::writeFileAtomically(path, manifest.dump(2) + "\n");
    }

    // Chunk k: rows [k * rowsPerChunk, (k + 1) * rowsPerChunk) of the corpus; past its last
    // full chunk, chunk k is chunk k mod (the number of full chunks). Returns that index too.
    std::pair<int64_t, std::pair<at::Tensor, at::Tensor>> compute(int64_t k)
    {
        const int64_t perChunk = m_options.rowsPerChunk;
        for (;;) {
            const int64_t index = m_nChunks > 0 ? k % m_nChunks : k;
            const int64_t first = index * perChunk;
            if (m_rows.rowsRead() > first)
                m_rows.rewind();
            bool ended = false;
            while (!ended && m_rows.rowsRead() < first)
                ended = m_rows.next(std::min<int64_t>(first - m_rows.rowsRead(), 1024)).size(0) == 0;
            std::vector<at::Tensor> ins, outs;
            int64_t got = 0;
            while (!ended && got < perChunk) {
                at::Tensor ids = m_rows.next(std::min(m_options.batchRows, perChunk - got));
                if (ids.size(0) == 0) {
                    ended = true;
                    break;
                }
                auto pair = run(ids);
                got += ids.size(0);
                ins.push_back(pair.first);
                outs.push_back(pair.second);
            }
            if (!ended)
                return { index, { at::cat(ins, 1), at::cat(outs, 1) } };
            if (index == 0 && got > 0) { // a corpus smaller than one chunk is one short chunk
                m_nChunks = 1;
                saveChunkCount();
                return { 0, { at::cat(ins, 1), at::cat(outs, 1) } };
            }
            // The corpus ended inside this chunk: now its length is known.
            m_nChunks = (m_rows.rowsRead()) / perChunk;
            if (m_nChunks == 0)
                throw Error("corpus " + m_options.corpus + " holds fewer than " + std::to_string(perChunk) + " rows of "
                    + std::to_string(m_options.seqLen) + " tokens");
            saveChunkCount();
        }
    }

    void saveChunkCount()
    {
        if (!m_options.cacheDir.empty())
            io::writeFileAtomically((fs::path(m_options.cacheDir) / "chunks.json").string(),
                nlohmann::json({ { "chunks", m_nChunks } }).dump() + "\n");
    }

    // [n_layers, rows * (seq_len - 1), d_model] at both hooks; the BOS position is left out.
    std::pair<at::Tensor, at::Tensor> run(const at::Tensor& ids)
    {
        const int64_t nLayers = m_model->config().nLayers;
        std::vector<at::Tensor> in(static_cast<size_t>(nLayers)), out(static_cast<size_t>(nLayers));
        model::ForwardOptions fo;
        fo.hook = [&](int64_t layer, model::Hook hook, at::Tensor& value) {
            if (hook == m_options.inputHook)
                in[static_cast<size_t>(layer)] = value.narrow(1, 1, value.size(1) - 1).flatten(0, 1).to(at::kCPU);
            if (hook == m_options.outputHook)
                out[static_cast<size_t>(layer)] = value.narrow(1, 1, value.size(1) - 1).flatten(0, 1).to(at::kCPU);
        };
        at::NoGradGuard noGrad;
        m_model->forward(ids.to(m_model->device()), fo);
        return { at::stack(in), at::stack(out) };
    }

    std::shared_ptr<const model::Model> m_model;
    ModelActivationOptions m_options;
    TokenRows m_rows;
    int64_t m_position = 0;
    int64_t m_nChunks = 0; // full chunks in the corpus, once its end was seen
};

} // namespace

std::unique_ptr<ActivationSource> modelActivations(
    std::shared_ptr<const model::Model> model, const ModelActivationOptions& options)
{
    if (!model->hasTokenizer())
        throw Error("the model folder has no tokenizer.json; activations need one to read the corpus");
    return std::make_unique<ModelActivations>(std::move(model), options);
}

} // namespace cs::transcoder
