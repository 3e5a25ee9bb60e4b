// The saved full graph (".csgraph", cs::graph::readGraphFile): a safetensors file whose
// metadata holds the nodes as JSON. The input is the file. A graph it accepts must pass
// Graph::validate and write back out.
#include "fuzz_common.h"

#include <cs/graph.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    const std::string path = cs::fuzz::writeScratch("graph.csgraph", data, size);
    cs::graph::Graph graph;
    try {
        (void)cs::graph::isGraphFile(path);
        graph = cs::graph::readGraphFile(path);
    } catch (const cs::Error& e) {
        cs::fuzz::refused(e);
        return 0;
    }
    graph.validate();
    (void)cs::graph::toJson(graph, cs::graph::keepAll(graph)).dump();
    return 0;
}
