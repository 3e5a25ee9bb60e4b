#include "cs/error.h"
#include "cs/json_reader.h"
#include "cs/safetensors.h"
#include "io/atomic_file.h"

#include <nlohmann/json.hpp>

#include <filesystem>

namespace cs::io {

namespace fs = std::filesystem;

Checkpoint Checkpoint::open(const std::string& folder)
{
    Checkpoint ckpt;
    ckpt.m_folder = folder;
    const fs::path dir(folder);
    const fs::path single = dir / "model.safetensors";
    const fs::path index = dir / "model.safetensors.index.json";
    std::error_code ec;
    if (fs::exists(index, ec)) {
        nlohmann::json j;
        try {
            j = parseJson(readFile(index.string(), kMaxConfigFileBytes), index.string());
        } catch (const nlohmann::json::exception& e) {
            throw Error(index.string() + " is not valid JSON: " + e.what());
        }
        if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
            throw Error(index.string() + " has no \"weight_map\" object");
        std::map<std::string, std::shared_ptr<const SafetensorsFile>> shards;
        for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
            if (!it.value().is_string())
                throw Error(index.string() + ": weight_map entry \"" + it.key() + "\" is not a file name");
            const std::string shardName = it.value().get<std::string>();
            // A path cuts a name at its first NUL: "a.safetensors\0x" would open a.safetensors.
            if (const size_t at = shardName.find('\0'); at != std::string::npos)
                throw Error(index.string() + ": weight_map entry \"" + it.key()
                    + "\" names a shard with a NUL byte at byte " + std::to_string(at) + ", which no file name holds");
            if (shardName.find('/') != std::string::npos || shardName.empty() || shardName == "." || shardName == "..")
                throw Error(index.string() + ": shard name \"" + shardName + "\" must be a file in the same folder");
            auto& shard = shards[shardName];
            if (!shard) {
                const fs::path shardPath = dir / shardName;
                if (!fs::exists(shardPath, ec))
                    throw Error(index.string() + " names shard " + shardName + ", which is missing");
                shard = SafetensorsFile::open(shardPath.string());
            }
            if (!shard->contains(it.key()))
                throw Error(index.string() + " places \"" + it.key() + "\" in " + shardName + ", which lacks it");
            ckpt.m_fileOf[it.key()] = shard;
        }
    } else if (fs::exists(single, ec)) {
        auto file = SafetensorsFile::open(single.string());
        for (const auto& t : file->tensors())
            ckpt.m_fileOf[t.name] = file;
    } else {
        if (!fs::is_directory(dir, ec))
            throw Error("model folder " + folder + " does not exist");
        throw Error("no model.safetensors or model.safetensors.index.json in " + folder
            + " (only safetensors checkpoints are read; convert .bin/.pt files with save_pretrained)");
    }
    return ckpt;
}

std::vector<std::string> Checkpoint::names() const
{
    std::vector<std::string> out;
    out.reserve(m_fileOf.size());
    for (const auto& [name, file] : m_fileOf)
        out.push_back(name);
    return out;
}

bool Checkpoint::contains(const std::string& name) const
{
    return m_fileOf.count(name) > 0;
}

const TensorInfo& Checkpoint::info(const std::string& name) const
{
    auto it = m_fileOf.find(name);
    if (it == m_fileOf.end())
        throw Error("the checkpoint in " + m_folder + " has no tensor \"" + name + "\"");
    return *it->second->find(name);
}

at::Tensor Checkpoint::tensor(const std::string& name) const
{
    auto it = m_fileOf.find(name);
    if (it == m_fileOf.end())
        throw Error("the checkpoint in " + m_folder + " has no tensor \"" + name + "\"");
    return it->second->tensor(name);
}

std::string Checkpoint::dominantDType() const
{
    std::map<std::string, size_t> counts;
    for (const auto& [name, file] : m_fileOf)
        ++counts[dtypeName(file->find(name)->dtype)];
    std::string best;
    size_t bestCount = 0;
    for (const auto& [dtype, n] : counts)
        if (n > bestCount) {
            best = dtype;
            bestCount = n;
        }
    return best;
}

} // namespace cs::io
