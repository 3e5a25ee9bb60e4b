// A transcoder set's config.yaml (cs::transcoder::TranscoderSet::load: the YAML reader, then what
// the config says read against the files). The input is the config.yaml; beside it lie the files
// of a small valid set of 2 layers in both of circuit-tracer's layouts (layer_{i}.safetensors for
// a per-layer set, W_enc_{i} / W_dec_{i}.safetensors for a cross-layer one), so a config naming
// them gets as far as the weights.
#include "fuzz_common.h"

#include <cs/transcoder.h>

#include <ATen/ATen.h>

#include <filesystem>

namespace {

namespace fs = std::filesystem;
using cs::transcoder::Architecture;

constexpr int64_t kLayers = 2;
constexpr int64_t kModel = 4; // d_model
constexpr int64_t kFeatures = 3;

// Saves a set of this architecture into scratchDir()/name and returns the folder.
std::string saveSet(Architecture architecture, const std::string& name)
{
    cs::transcoder::TranscoderConfig config;
    config.architecture = architecture;
    config.nLayers = kLayers;
    config.dModel = kModel;
    config.nFeatures = kFeatures;
    std::vector<cs::transcoder::LayerWeights> layers;
    for (int64_t layer = 0; layer < kLayers; ++layer) {
        const int64_t nOut = architecture == Architecture::CrossLayer ? kLayers - layer : 1;
        cs::transcoder::LayerWeights w;
        w.encoder = at::full({ kFeatures, kModel }, 0.5f);
        w.encoderBias = at::zeros({ kFeatures });
        w.threshold = at::full({ kFeatures }, 0.1f);
        w.decoder = at::full({ kFeatures, nOut, kModel }, 0.25f);
        w.decoderBias = at::zeros({ kModel });
        layers.push_back(std::move(w));
    }
    const std::string folder = cs::fuzz::scratchDir() + "/" + name;
    cs::transcoder::TranscoderSet::fromWeights(config, std::move(layers))->save(folder);
    return folder;
}

// The folder the inputs go to, with both sets' weight files in it.
const std::string& setFolder()
{
    static const std::string folder = [] {
        const std::string plt = saveSet(Architecture::PerLayer, "plt");
        const std::string clt = saveSet(Architecture::CrossLayer, "clt");
        for (const auto& entry : fs::directory_iterator(clt))
            if (entry.path().extension() == ".safetensors")
                fs::copy_file(entry.path(), fs::path(plt) / entry.path().filename());
        return plt;
    }();
    return folder;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string& folder = setFolder();
    cs::fuzz::writeScratch("plt/config.yaml", data, size);
    cs::transcoder::TranscoderSet::LoadOptions options;
    options.device = "cpu";
    options.modelLayers = kLayers;
    try {
        const auto set = cs::transcoder::TranscoderSet::load(folder, options);
        for (int64_t layer = 0; layer < set->nLayers(); ++layer)
            (void)set->decoder(layer).sum().item<double>();
    } catch (const cs::Error& e) {
        cs::fuzz::refused(e);
    }
    return 0;
}
