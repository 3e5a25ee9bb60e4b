// Session files (".circuitscope.json", cs::app::readSession in app/session): the input is the
// session. A graph_file key may name "s.csgraph", a small valid sidecar beside it (written once),
// or anything else.
#include "fuzz_common.h"
#include "small_graph.h"

#include "sessionfile.h"

#include <cs/graph.h>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size)
{
    static const bool sidecar = [] {
        cs::graph::writeGraphFile(cs::fuzz::scratchDir() + "/s.csgraph", cs::fuzz::smallGraph());
        return true;
    }();
    (void)sidecar;
    const std::string path = cs::fuzz::writeScratch("s.circuitscope.json", data, size);
    cs::app::SessionData session;
    try {
        session = cs::app::readSession(path);
    } catch (const cs::Error& e) {
        cs::fuzz::refused(e);
        return 0;
    }
    // Accepted: its graph is valid and the session writes back as text.
    session.graph.validate();
    (void)cs::app::sessionJsonText(session);
    return 0;
}
