// fuzz_make_seeds FOLDER: writes the seeds of the binary and engine-written formats into
// FOLDER/<target>/, as the engine writes them (fuzz/corpus/ holds their output; the JSON and
// YAML seeds there are hand-made or cut from tinyworld's files). Run it again when a format
// changes: build/fuzz/fuzz/fuzz_make_seeds fuzz/corpus
#include "sessionfile.h"
#include "small_graph.h"

#include <cs/features.h>
#include <cs/graph.h>
#include <cs/safetensors.h>

#include <ATen/ATen.h>

#include <cstdio>
#include <filesystem>

namespace fs = std::filesystem;

namespace {

// A store of 2 layers x 4 features holding two cards, a vocabulary and co-activations; as a part
// of a distributed build, its options say which (features::readPart).
void writeStore(const std::string& path, bool asPart = false)
{
    fs::remove(path);
    cs::features::StoreInfo info;
    info.model = "fuzz";
    info.scan = "fuzz/clt";
    info.nLayers = 2;
    info.nFeatures = 4;
    info.contextLength = 3;
    info.tokens = 12;
    info.complete = true;
    if (asPart)
        info.buildOptions = { { "top_k", 1 },
            { "part",
                { { "rank", 1 }, { "ranks", 2 }, { "model_folder", "/m" }, { "transcoder_folder", "/m/clt" } } } };
    auto store = cs::features::FeatureStore::create(path, info);
    std::vector<cs::features::FeatureRecord> records;
    for (int64_t layer = 0; layer < 2; ++layer) {
        cs::features::FeatureRecord r;
        r.layer = layer;
        r.feature = 1 + layer;
        r.tokens = 12;
        r.activeTokens = 2;
        r.actMax = 2.0f;
        r.actMin = 0.5f;
        r.actSum = 2.5;
        r.quantileLevels = { 0.5, 0.9 };
        r.quantileValues = { 1.0f, 1.8f };
        r.histogramEdges = { 0.0f, 1.0f, 2.0f };
        r.histogramCounts = { 1, 1 };
        cs::features::Example e;
        e.context = 0;
        e.tokens = { 0, 3, 4 };
        e.activations = { 0.0f, 0.5f, 2.0f };
        e.position = 2;
        e.activation = 2.0f;
        r.top = { e };
        r.quantiles = { { "Subsample Interval 0", { e } } };
        r.topLogits = { { 4, "t4", 0.5f } };
        r.bottomLogits = { { 3, "t3", -0.5f } };
        r.topInputs = { { 3, "t3", 0.25f } };
        r.label = "a label";
        records.push_back(r);
    }
    store->writeRecords(records, info);
    store->writeVocabulary({ "<bos>", "a", "b", "t3", "t4" });
    cs::features::CoActivationList down { 0, 1, false, 1, { { 1, 2, 2, 1.0, 2.0 } } };
    cs::features::CoActivationList up { 1, 2, true, 1, { { 0, 1, 2, 1.0, 2.0 } } };
    store->writeCoactivations({ down, up });
    store->setLabel(1, 2, "another", "notes");
}

} // namespace

int main(int argc, char** argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: fuzz_make_seeds FOLDER (writes FOLDER/<target>/ seeds)\n");
        return 2;
    }
    const fs::path out(argv[1]);
    try {
        for (const char* target : { "safetensors", "graph_json", "csgraph", "session", "feature_store" })
            fs::create_directories(out / target);

        cs::io::SafetensorsWriter st;
        st.add("f32", at::arange(6, at::kFloat).reshape({ 2, 3 }));
        st.add("bf16", at::ones({ 3 }, at::kBFloat16));
        st.add("f16", at::full({ 2 }, 0.5, at::kHalf));
        st.add("i64", at::arange(2, at::kLong));
        st.add("u8", at::ones({ 1 }, at::kByte));
        st.add("bool", at::ones({ 2 }, at::kBool));
        st.add("scalar", at::ones({}, at::kFloat));
        st.add("empty", at::zeros({ 0, 2 }, at::kFloat));
        st.setMetadata("format", "pt");
        st.write((out / "safetensors" / "dtypes.safetensors").string());

        const cs::graph::Graph graph = cs::fuzz::smallGraph();
        cs::graph::writeJsonFile((out / "graph_json" / "small.json").string(), graph, cs::graph::keepAll(graph));
        cs::graph::writeGraphFile((out / "csgraph" / "small.csgraph").string(), graph);

        cs::app::SessionData session;
        session.model = "tinyworld";
        session.transcoder = "clt";
        session.device = "cpu";
        session.prompt = graph.metadata.prompt;
        session.graph = graph;
        session.state.pinned = { "0_7_1" };
        cs::app::writeSession((out / "session" / "inline.circuitscope.json").string(), session);
        // The same with the graph in a sidecar: its graph_file names "s.csgraph", the sidecar the
        // session target keeps beside its inputs.
        cs::app::SessionWriteOptions sidecar;
        sidecar.sidecarEdgeThreshold = 0;
        const fs::path tmp = fs::temp_directory_path() / "cs-fuzz-seeds";
        fs::create_directories(tmp);
        cs::app::writeSession((tmp / "s.circuitscope.json").string(), session, sidecar);
        fs::copy_file(tmp / "s.circuitscope.json", out / "session" / "sidecar.circuitscope.json",
            fs::copy_options::overwrite_existing);
        fs::remove_all(tmp);

        writeStore((out / "feature_store" / "small.db").string());
        writeStore((out / "feature_store" / "part.db").string(), true);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "fuzz_make_seeds: %s\n", e.what());
        return 1;
    }
    return 0;
}
