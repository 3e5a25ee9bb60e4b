// The sharded checkpoint's index (model.safetensors.index.json, cs::io::Checkpoint::open): the
// input is the index; the folder also holds two small valid shards, a.safetensors (tensors "x",
// "y") and b.safetensors ("z"), so an index naming them gets past the shard checks.
#include "fuzz_common.h"

#include <cs/safetensors.h>

#include <ATen/ATen.h>

namespace {

void writeShards()
{
    static const bool done = [] {
        cs::io::SafetensorsWriter a;
        a.add("x", at::arange(4, at::kFloat));
        a.add("y", at::ones({ 2, 2 }, at::kFloat));
        a.write(cs::fuzz::scratchDir() + "/a.safetensors");
        cs::io::SafetensorsWriter b;
        b.add("z", at::zeros({ 3 }, at::kBFloat16));
        b.write(cs::fuzz::scratchDir() + "/b.safetensors");
        return true;
    }();
    (void)done;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    writeShards();
    cs::fuzz::writeScratch("model.safetensors.index.json", data, size);
    try {
        const auto ckpt = cs::io::Checkpoint::open(cs::fuzz::scratchDir());
        for (const auto& name : ckpt.names()) {
            (void)ckpt.info(name);
            (void)ckpt.tensor(name).sum().item<double>();
        }
        (void)ckpt.dominantDType();
    } catch (const cs::Error& e) {
        cs::fuzz::refused(e);
    }
    return 0;
}
