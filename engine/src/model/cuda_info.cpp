// CUDA device facts for info, bench and the memory check before a model moves to a GPU.
// Compiled with CS_WITH_CUDA when the LibTorch found is CUDA-enabled (its CMake config then
// puts the CUDA toolkit's headers on the include path); without it, there is no CUDA device.
#include "cs/error.h"
#include "cs/model.h"

#include <c10/util/Exception.h>

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
