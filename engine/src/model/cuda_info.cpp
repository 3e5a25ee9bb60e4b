// CUDA device facts for info, bench and the memory check before a model moves to a GPU.
// Compiled with CS_WITH_CUDA when the LibTorch found is CUDA-enabled (its CMake config then
// puts the CUDA toolkit's headers on the include path); without it, there is no CUDA device.
#include "cs/error.h"
#include "cs/model.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <fstream>
#include <limits>
#include <string>

#ifdef CS_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#endif

namespace cs::model {

#ifdef CS_WITH_CUDA
namespace {
void check(cudaError_t status, const char* what)
{
    if (status != cudaSuccess)
        throw Error(std::string(what) + " failed: " + cudaGetErrorString(status));
}
} // namespace

std::pair<std::string, int64_t> cudaDeviceProperties(c10::Device device)
{
    if (!device.is_cuda())
        return { {}, 0 };
    cudaDeviceProp prop {};
    check(cudaGetDeviceProperties(&prop, device.has_index() ? device.index() : 0), "cudaGetDeviceProperties");
    return { prop.name, static_cast<int64_t>(prop.totalGlobalMem) };
}

std::pair<int64_t, int64_t> cudaMemoryInfo(c10::Device device)
{
    if (!device.is_cuda())
        return { 0, 0 };
    c10::cuda::CUDAGuard guard(device.has_index() ? device.index() : 0);
    size_t freeBytes = 0, totalBytes = 0;
    check(cudaMemGetInfo(&freeBytes, &totalBytes), "cudaMemGetInfo");
    return { static_cast<int64_t>(freeBytes), static_cast<int64_t>(totalBytes) };
}

int64_t cudaPeakAllocatedBytes(c10::Device device)
{
    if (!device.is_cuda())
        return 0;
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
    return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
}

void cudaResetPeak(c10::Device device)
{
    if (device.is_cuda())
        c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index() : 0);
}
#else
int64_t cudaPeakAllocatedBytes(c10::Device)
{
    return 0;
}
void cudaResetPeak(c10::Device) { }
std::pair<std::string, int64_t> cudaDeviceProperties(c10::Device)
{
    return { {}, 0 };
}
std::pair<int64_t, int64_t> cudaMemoryInfo(c10::Device)
{
    return { 0, 0 };
}
#endif

namespace {

// The first number in a file such as /proc/meminfo's line or a cgroup's memory.max; -1 when the
// file is missing or holds none ("max": no limit).
int64_t numberIn(const std::string& path, const std::string& key = {})
{
    std::ifstream in(path);
    std::string line;
    while (std::getline(in, line)) {
        if (!key.empty() && line.rfind(key, 0) != 0)
            continue;
        const std::string rest = key.empty() ? line : line.substr(key.size());
        const size_t digit = rest.find_first_of("0123456789");
        if (digit == std::string::npos)
            return -1;
        return std::stoll(rest.substr(digit));
    }
    return -1;
}

int64_t hostAvailableMemory()
{
    const int64_t kib = numberIn("/proc/meminfo", "MemAvailable:");
    int64_t available = kib >= 0 ? kib * 1024 : std::numeric_limits<int64_t>::max();
    // A cgroup's limit (v2: the process's own group from /proc/self/cgroup; v1: the memory
    // controller's) is what a container's process can really have before it is killed.
    std::string group;
    {
        std::ifstream in("/proc/self/cgroup");
        std::string line;
        while (std::getline(in, line))
            if (line.rfind("0::", 0) == 0)
                group = line.substr(3);
    }
    const std::pair<std::string, std::string> files[] = {
        { "/sys/fs/cgroup" + group + "/memory.max", "/sys/fs/cgroup" + group + "/memory.current" },
        { "/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes" },
    };
    for (const auto& [limitFile, usageFile] : files) {
        const int64_t limit = numberIn(limitFile), usage = numberIn(usageFile);
        if (limit > 0 && usage >= 0 && limit < (int64_t(1) << 60))
            available = std::min(available, std::max<int64_t>(0, limit - usage));
    }
    return available == std::numeric_limits<int64_t>::max() ? 0 : available;
}

} // namespace

int64_t availableMemory(c10::Device device)
{
    if (!device.is_cuda())
        return hostAvailableMemory();
#ifdef CS_WITH_CUDA
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
    const auto aggregate = static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE);
    const int64_t cachedUnused = stats.reserved_bytes[aggregate].current - stats.allocated_bytes[aggregate].current;
    return cudaMemoryInfo(device).first + std::max<int64_t>(0, cachedUnused);
#else
    return 0;
#endif
}

void checkFitsOnDevice(c10::Device device, int64_t bytes, const std::string& what)
{
    if (!device.is_cuda())
        return;
    const auto [freeBytes, totalBytes] = cudaMemoryInfo(device);
    // Leave room for activations and LibTorch's own workspace (cuBLAS, the caching allocator).
    const int64_t headroom = int64_t(512) << 20;
    if (bytes + headroom > freeBytes) {
        auto gb = [](int64_t b) { return std::to_string(static_cast<double>(b) / (1 << 30)).substr(0, 5) + " GiB"; };
        throw Error(what + " needs " + gb(bytes) + " on " + device.str() + ", which has " + gb(freeBytes) + " free of "
            + gb(totalBytes) + "; use --device cpu, or a smaller model or transcoder set");
    }
}

std::string errorText(const std::exception& e)
{
    // LibTorch's errors carry a C++ backtrace after the message; a person needs the message.
    if (const auto* c10error = dynamic_cast<const c10::Error*>(&e)) {
        std::string text = c10error->what_without_backtrace();
        if (dynamic_cast<const c10::OutOfMemoryError*>(&e))
            text = "out of memory: " + text;
        return text;
    }
    return e.what();
}

} // namespace cs::model
