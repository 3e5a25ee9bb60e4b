// The safetensors header and tensor table (cs::io::SafetensorsFile): the input is the whole
// file. Every tensor it lists is read and every value touched, as a model load does.
#include "fuzz_common.h"

#include <cs/safetensors.h>

#include <ATen/ATen.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string path = cs::fuzz::writeScratch("model.safetensors", data, size);
    try {
        const auto file = cs::io::SafetensorsFile::open(path);
        for (const auto& info : file->tensors()) {
            const at::Tensor t = file->tensor(info.name);
            if (t.is_floating_point())
                cs::io::requireFinite(t, path, info.name);
            else
                (void)t.sum().item<double>();
        }
    } catch (const cs::Error& e) {
        cs::fuzz::refused(e);
    }
    return 0;
}
