#include "cs/safetensors.h"
#include "cs/json_reader.h"

#include "cs/error.h"
#include "io/atomic_file.h"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <set>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace cs::io {

namespace {

// A header larger than this is refused before it is read: real headers are a few MB at most.
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct DTypeRow {
    DType dtype;
    const char* name;
    size_t size;
    c10::ScalarType scalar;
};

constexpr DTypeRow kDTypes[] = {
    { DType::F64, "F64", 8, c10::ScalarType::Double },
    { DType::F32, "F32", 4, c10::ScalarType::Float },
    { DType::F16, "F16", 2, c10::ScalarType::Half },
    { DType::BF16, "BF16", 2, c10::ScalarType::BFloat16 },
    { DType::I64, "I64", 8, c10::ScalarType::Long },
    { DType::I32, "I32", 4, c10::ScalarType::Int },
    { DType::I16, "I16", 2, c10::ScalarType::Short },
    { DType::I8, "I8", 1, c10::ScalarType::Char },
    { DType::U8, "U8", 1, c10::ScalarType::Byte },
    { DType::Bool, "BOOL", 1, c10::ScalarType::Bool },
};

const DTypeRow& row(DType dtype)
{
    for (const auto& r : kDTypes)
        if (r.dtype == dtype)
            return r;
    throw Error("internal: unknown dtype");
}

std::string errnoText()
{
    return std::strerror(errno);
}

} // namespace

DType dtypeFromName(const std::string& name)
{
    for (const auto& r : kDTypes)
        if (name == r.name)
            return r.dtype;
    throw Error(
        "unsupported tensor dtype \"" + name + "\" (supported: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL)");
}

const char* dtypeName(DType dtype)
{
    return row(dtype).name;
}
size_t dtypeSize(DType dtype)
{
    return row(dtype).size;
}
c10::ScalarType toScalarType(DType dtype)
{
    return row(dtype).scalar;
}

DType fromScalarType(c10::ScalarType type)
{
    for (const auto& r : kDTypes)
        if (r.scalar == type)
            return r.dtype;
    throw Error(std::string("cannot store tensors of type ") + c10::toString(type) + " in safetensors");
}

void requireFinite(const at::Tensor& t, const std::string& source, const std::string& name)
{
    if (!at::isFloatingType(t.scalar_type()) || t.numel() == 0)
        return;
    // A sum in double is finite exactly when every value is (float32's largest times any count
    // of elements stays far below double's range), and needs no tensor of flags. In slices, so
    // the conversion to double never needs more than a slice's memory, however large the tensor.
    constexpr int64_t kSlice = int64_t(1) << 22; // elements (32 MiB as double)
    const at::Tensor flat = t.reshape({ -1 });
    int64_t bad = 0;
    for (int64_t start = 0; start < flat.numel(); start += kSlice) {
        const at::Tensor slice = flat.narrow(0, start, std::min(kSlice, flat.numel() - start));
        if (!std::isfinite(slice.sum(at::kDouble).item<double>()))
            bad += slice.numel() - at::isfinite(slice).sum().item<int64_t>();
    }
    if (bad == 0)
        return;
    throw Error(source + ": tensor \"" + name + "\" holds " + std::to_string(bad) + " NaN or infinite value"
        + (bad == 1 ? "" : "s") + " (of " + std::to_string(t.numel())
        + "); the file is corrupt (a header length that is off shifts every tensor)");
}

// The whole file, mapped read-only and private (copy-on-write: a tensor written to in place
// changes only this process's copy, never the file).
class Mapping {
public:
    explicit Mapping(const std::string& path)
    {
        requireRegularFile(path); // a FIFO or a device is never opened
        // Non-blocking: a path swapped for a FIFO since the check is refused below, not waited on.
        int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
            throw Error("cannot open " + path + ": " + errnoText());
        struct stat st { };
        if (::fstat(fd, &st) != 0) {
            std::string why = errnoText();
            ::close(fd);
            throw Error("cannot read " + path + ": " + why);
        }
        if (!S_ISREG(st.st_mode)) {
            ::close(fd);
            throw Error(path + " is not a regular file; refused");
        }
        m_size = static_cast<uint64_t>(st.st_size);
        if (m_size > 0) {
            void* p = ::mmap(nullptr, m_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) {
                std::string why = errnoText();
                ::close(fd);
                throw Error("cannot map " + path + ": " + why);
            }
            m_data = static_cast<uint8_t*>(p);
        }
        ::close(fd);
    }
    ~Mapping()
    {
        if (m_data)
            ::munmap(m_data, m_size);
    }
    Mapping(const Mapping&) = delete;
    Mapping& operator=(const Mapping&) = delete;

    uint8_t* data() const { return m_data; }
    uint64_t size() const { return m_size; }

private:
    uint8_t* m_data = nullptr;
    uint64_t m_size = 0;
};

std::shared_ptr<const SafetensorsFile> SafetensorsFile::open(const std::string& path)
{
    auto file = std::shared_ptr<SafetensorsFile>(new SafetensorsFile());
    file->m_path = path;
    file->m_mapping = std::make_shared<Mapping>(path);
    const uint8_t* bytes = file->m_mapping->data();
    const uint64_t size = file->m_mapping->size();
    auto fail = [&](const std::string& why) { return Error(path + " is not a valid safetensors file: " + why); };

    if (size < 8)
        throw fail("it is " + std::to_string(size) + " bytes long, shorter than the 8-byte header length");
    uint64_t headerLen = 0;
    for (int i = 7; i >= 0; --i)
        headerLen = (headerLen << 8) | bytes[i];
    if (headerLen > kMaxHeaderBytes)
        throw fail("the header claims " + std::to_string(headerLen) + " bytes (more than the 100 MB limit)");
    if (headerLen > size - 8)
        throw fail("the header claims " + std::to_string(headerLen) + " bytes but only " + std::to_string(size - 8)
            + " follow (truncated file?)");
    file->m_dataStart = 8 + headerLen;
    const uint64_t dataSize = size - file->m_dataStart;

    // The format: the header starts with '{' and its JSON may be followed only by spaces (0x20).
    const std::string_view headerText(reinterpret_cast<const char*>(bytes) + 8, headerLen);
    if (headerText.empty() || headerText.front() != '{')
        throw fail("the header does not start with '{'");
    if (const size_t nul = headerText.find('\0'); nul != std::string_view::npos)
        throw fail("the header holds a NUL byte at offset " + std::to_string(nul)
            + " (the format pads the header only with spaces, 0x20)");
    const size_t jsonEnd = headerText.find_last_not_of(' ') + 1;
    if (headerText[jsonEnd - 1] != '}')
        throw fail("the header's JSON object is followed by bytes other than spaces (0x20), the only padding the "
                   "format allows");

    nlohmann::json header;
    std::string duplicate; // a tensor name the header gives twice (JSON parsers keep the last)
    try {
        checkJsonDepth(headerText, path + ": the header");
        header = nlohmann::json::parse(headerText.begin(), headerText.end(),
            [&, seen = std::set<std::string>()](
                int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) mutable {
                if (depth == 1 && event == nlohmann::json::parse_event_t::key && parsed.is_string()
                    && !seen.insert(parsed.get<std::string>()).second && duplicate.empty())
                    duplicate = parsed.get<std::string>();
                return true;
            });
    } catch (const nlohmann::json::exception& e) {
        throw fail(std::string("the header is not JSON (") + e.what() + ")");
    }
    if (!header.is_object())
        throw fail("the header is not a JSON object");
    if (!duplicate.empty())
        throw fail("the header names \"" + duplicate + "\" twice");

    for (auto it = header.begin(); it != header.end(); ++it) {
        const std::string& name = it.key();
        const auto& entry = it.value();
        if (name == "__metadata__") {
            if (!entry.is_object())
                throw fail("__metadata__ is not an object");
            for (auto m = entry.begin(); m != entry.end(); ++m) {
                if (!m.value().is_string())
                    throw fail("__metadata__ value \"" + m.key() + "\" is not a string");
                file->m_metadata[m.key()] = m.value().get<std::string>();
            }
            continue;
        }
        auto bad = [&](const std::string& why) { return fail("tensor \"" + name + "\": " + why); };
        if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape")
            || !entry.contains("data_offsets"))
            throw bad("needs dtype, shape and data_offsets");
        if (!entry["dtype"].is_string())
            throw bad("dtype is not a string");
        TensorInfo info;
        info.name = name;
        try {
            info.dtype = dtypeFromName(entry["dtype"].get<std::string>());
        } catch (const Error& e) {
            throw bad(e.what());
        }
        const auto& shape = entry["shape"];
        const auto& offsets = entry["data_offsets"];
        if (!shape.is_array())
            throw bad("shape is not an array");
        // Element count with overflow checks: a shape may claim absurd sizes.
        uint64_t count = 1;
        for (const auto& dim : shape) {
            if (!dim.is_number_unsigned())
                throw bad("shape holds a value that is not a non-negative integer");
            uint64_t d = dim.get<uint64_t>();
            if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                throw bad("a dimension is too large");
            if (d != 0 && count > std::numeric_limits<uint64_t>::max() / d)
                throw bad("the shape's element count overflows");
            count *= d;
            info.shape.push_back(static_cast<int64_t>(d));
        }
        if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned()
            || !offsets[1].is_number_unsigned())
            throw bad("data_offsets is not [begin, end]");
        info.begin = offsets[0].get<uint64_t>();
        info.end = offsets[1].get<uint64_t>();
        if (info.begin > info.end)
            throw bad("data_offsets begin after they end");
        if (info.end > dataSize)
            throw bad("data_offsets [" + std::to_string(info.begin) + ", " + std::to_string(info.end)
                + ") run past the end of the data (" + std::to_string(dataSize) + " bytes; truncated file?)");
        const uint64_t elemSize = dtypeSize(info.dtype);
        if (count > std::numeric_limits<uint64_t>::max() / elemSize || count * elemSize != info.end - info.begin)
            throw bad("shape and dtype need " + std::to_string(count) + " x " + std::to_string(elemSize)
                + " bytes but data_offsets span " + std::to_string(info.end - info.begin));
        file->m_index[name] = file->m_tensors.size();
        file->m_tensors.push_back(std::move(info));
    }

    // The tensors' bytes tile the data exactly, as the format requires: no two share bytes, no
    // byte between them or after the last belongs to none (which would let a file be two things).
    std::vector<const TensorInfo*> byOffset;
    for (const auto& t : file->m_tensors)
        if (t.end > t.begin)
            byOffset.push_back(&t);
    std::sort(
        byOffset.begin(), byOffset.end(), [](const TensorInfo* a, const TensorInfo* b) { return a->begin < b->begin; });
    uint64_t covered = 0; // the data bytes [0, covered) belong to the tensors so far
    for (size_t i = 0; i < byOffset.size(); ++i) {
        if (byOffset[i]->begin < covered)
            throw fail("tensors \"" + byOffset[i - 1]->name + "\" and \"" + byOffset[i]->name + "\" overlap");
        if (byOffset[i]->begin > covered)
            throw fail("the data bytes [" + std::to_string(covered) + ", " + std::to_string(byOffset[i]->begin)
                + ") before tensor \"" + byOffset[i]->name + "\" belong to no tensor");
        covered = byOffset[i]->end;
    }
    if (covered != dataSize)
        throw fail(std::to_string(dataSize - covered) + (dataSize - covered == 1 ? " byte follows" : " bytes follow")
            + " the last tensor's data (the format allows none)");
    return file;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const
{
    auto it = m_index.find(name);
    return it == m_index.end() ? nullptr : &m_tensors[it->second];
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const
{
    const TensorInfo* info = find(name);
    if (!info)
        throw Error(m_path + " has no tensor \"" + name + "\"");
    const auto options = at::TensorOptions().dtype(toScalarType(info->dtype)).device(at::kCPU);
    if (info->end == info->begin)
        return at::empty(info->shape, options);
    uint8_t* ptr = m_mapping->data() + m_dataStart + info->begin;
    const size_t elemSize = dtypeSize(info->dtype);
    if (reinterpret_cast<uintptr_t>(ptr) % elemSize == 0) {
        auto keepAlive = m_mapping;
        return at::from_blob(
            ptr, info->shape, [keepAlive](void*) {}, options);
    }
    at::Tensor copy = at::empty(info->shape, options);
    std::memcpy(copy.data_ptr(), ptr, info->end - info->begin);
    return copy;
}

void SafetensorsWriter::add(const std::string& name, const at::Tensor& tensor)
{
    if (name.empty() || name == "__metadata__")
        throw Error("invalid tensor name \"" + name + "\"");
    for (const auto& [existing, t] : m_tensors)
        if (existing == name)
            throw Error("tensor \"" + name + "\" added twice");
    fromScalarType(tensor.scalar_type()); // throws for types safetensors cannot hold
    m_tensors.emplace_back(name, tensor.detach().to(at::kCPU).contiguous());
}

void SafetensorsWriter::write(const std::string& path) const
{
    nlohmann::json header = nlohmann::json::object();
    if (!m_metadata.empty())
        header["__metadata__"] = m_metadata;
    uint64_t offset = 0;
    for (const auto& [name, t] : m_tensors) {
        const uint64_t bytes = t.numel() * t.element_size();
        header[name] = { { "dtype", dtypeName(fromScalarType(t.scalar_type())) }, { "shape", t.sizes().vec() },
            { "data_offsets", { offset, offset + bytes } } };
        offset += bytes;
    }
    std::string headerText = header.dump();
    // Pad the header with spaces so the data starts 8-byte aligned (zero-copy loads).
    while ((8 + headerText.size()) % 8 != 0)
        headerText.push_back(' ');

    AtomicFile out(path);
    uint8_t lenBytes[8];
    uint64_t len = headerText.size();
    for (int i = 0; i < 8; ++i)
        lenBytes[i] = static_cast<uint8_t>(len >> (8 * i));
    out.write(lenBytes, 8);
    out.write(headerText.data(), headerText.size());
    for (const auto& [name, t] : m_tensors)
        out.write(t.data_ptr(), t.numel() * t.element_size());
    out.commit();
}

} // namespace cs::io
