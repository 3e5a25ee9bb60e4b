#pragma once
// safetensors: an 8-byte little-endian header length N, N bytes of JSON header
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}},
// then raw little-endian tensor data. Files are memory-mapped; every offset, shape and
// byte count is checked against the file before any tensor is touched.

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace cs::io {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, Bool };

// "F32", "BF16", ... as safetensors spells them; throws cs::Error for an unknown name.
DType dtypeFromName(const std::string& name);
const char* dtypeName(DType dtype);
size_t dtypeSize(DType dtype);
c10::ScalarType toScalarType(DType dtype);
DType fromScalarType(c10::ScalarType type);

// Throws cs::Error "{source}: tensor \"{name}\" holds N NaN or infinite values ..." unless every
// value of the floating-point tensor `t` is finite. A weight file read with a header length one
// byte off (every tensor shifted) or otherwise corrupt loads as NaN or huge values that would only
// show as NaN logits; every weight is checked once at load. One pass, no copy of the tensor.
void requireFinite(const at::Tensor& t, const std::string& source, const std::string& name);

struct TensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
    uint64_t begin = 0; // byte offsets relative to the start of the data section
    uint64_t end = 0;
};

class Mapping; // a read-only view of a whole file (mmap), shared by the tensors made from it

class SafetensorsFile {
public:
    // Opens and validates a file; throws cs::Error naming the file and the problem.
    static std::shared_ptr<const SafetensorsFile> open(const std::string& path);

    const std::string& path() const { return m_path; }
    const std::vector<TensorInfo>& tensors() const { return m_tensors; }
    const std::map<std::string, std::string>& metadata() const { return m_metadata; }
    const TensorInfo* find(const std::string& name) const;
    bool contains(const std::string& name) const { return find(name) != nullptr; }

    // A CPU tensor of the stored dtype and shape. Zero-copy over the mapping when the data is
    // aligned (the mapping stays alive while the tensor does), copied otherwise.
    at::Tensor tensor(const std::string& name) const;

private:
    std::string m_path;
    std::shared_ptr<Mapping> m_mapping;
    uint64_t m_dataStart = 0;
    std::vector<TensorInfo> m_tensors;
    std::map<std::string, size_t> m_index;
    std::map<std::string, std::string> m_metadata;
};

// Collects tensors and writes them as one safetensors file, atomically (a temporary file in
// the same folder, then rename), so a failed write never leaves a partial file behind.
class SafetensorsWriter {
public:
    void add(const std::string& name, const at::Tensor& tensor);
    void setMetadata(const std::string& key, const std::string& value) { m_metadata[key] = value; }
    void write(const std::string& path) const;

private:
    std::vector<std::pair<std::string, at::Tensor>> m_tensors;
    std::map<std::string, std::string> m_metadata;
};

// A model's weights: one `model.safetensors`, or the shards named by
// `model.safetensors.index.json` ({"weight_map": {"name": "file"}}), opened lazily.
class Checkpoint {
public:
    static Checkpoint open(const std::string& folder);

    std::vector<std::string> names() const;
    bool contains(const std::string& name) const;
    const TensorInfo& info(const std::string& name) const; // throws cs::Error if missing
    at::Tensor tensor(const std::string& name) const; // throws cs::Error if missing
    // The stored dtype most tensors share ("F32", "BF16", ...).
    std::string dominantDType() const;

private:
    std::string m_folder;
    std::map<std::string, std::shared_ptr<const SafetensorsFile>> m_fileOf;
};

} // namespace cs::io
