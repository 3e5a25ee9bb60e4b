// Graph JSON (circuit-tracer's and Neuronpedia's, cs::graph::readJsonFile): the input is the
// file. A graph it accepts must pass Graph::validate and write back out.
#include "fuzz_common.h"

#include <cs/graph.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string path = cs::fuzz::writeScratch("graph.json", data, size);
    cs::graph::Graph graph;
    try {
        graph = cs::graph::readJsonFile(path);
    } catch (const cs::Error& e) {
        cs::fuzz::refused(e);
        return 0;
    }
    // Accepted: it is a valid graph, and it exports (toJson refuses nothing it can be given).
    graph.validate();
    (void)cs::graph::toJson(graph, cs::graph::keepAll(graph)).dump();
    return 0;
}
