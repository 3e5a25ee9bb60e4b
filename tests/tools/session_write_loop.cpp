// A child process for tst_crash_consistency: writes a session again and again through the
// app's real writer, and prints "gen N" (flushed) after generation N is on disk, so a parent
// that SIGKILLs it at a random moment knows which generations were complete.
//
//   session_write_loop save PATH [--sidecar] [--count N]
//       writeSession(PATH) in a loop. A PATH that exists is read first (readSession, checked
//       like a generation below) and the loop goes on from its generation + 1. --sidecar puts
//       the graph in a ".csgraph" sidecar (SessionWriteOptions::sidecarEdgeThreshold 0).
//   session_write_loop autosave FOLDER --start G [--count N]
//       a SessionAutosave in FOLDER (start(), then saveNow() on its worker thread and
//       waitForSave(), the timer's path), prints "autosave PATH" after start(), then writes
//       generations G, G + 1, ...
//
// Generation g is cs::test::sessionOf(g) (session_generation.h; the test checks with it).
// --count stops after N generations (the parent's uninterrupted timing run). Exit 2 on an error.
#include "autosave.h"
#include "session_generation.h"
#include "sessionfile.h"

#include <cs/error.h>

#include <QCoreApplication>
#include <QFileInfo>

#include <cstdio>
#include <cstring>
#include <string>

using cs::app::SessionData;

namespace {

void say(const std::string& line)
{
    std::fputs((line + "\n").c_str(), stdout);
    std::fflush(stdout);
}

int fail(const std::string& why)
{
    std::fprintf(stderr, "session_write_loop: %s\n", why.c_str());
    return 2;
}

} // namespace

int main(int argc, char** argv)
{
    QCoreApplication app(argc, argv); // the autosave's pid, QStandardPaths
    if (argc < 3 || (std::strcmp(argv[1], "save") != 0 && std::strcmp(argv[1], "autosave") != 0))
        return fail("usage: session_write_loop save PATH [--sidecar] [--count N] | autosave FOLDER --start G");
    const std::string mode = argv[1], target = argv[2];
    bool sidecar = false;
    int64_t count = -1, start = 0;
    for (int i = 3; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--sidecar")
            sidecar = true;
        else if (arg == "--count" && i + 1 < argc)
            count = std::stoll(argv[++i]);
        else if (arg == "--start" && i + 1 < argc)
            start = std::stoll(argv[++i]);
        else
            return fail("unknown argument " + arg);
    }
    try {
        cs::app::SessionWriteOptions options;
        options.sidecarEdgeThreshold = sidecar ? 0 : 2'000'000;
        if (mode == "save") {
            if (QFileInfo::exists(QString::fromStdString(target))) {
                const SessionData was = cs::app::readSession(target);
                const int64_t g = was.extra.at("generation").get<int64_t>();
                if (const std::string why = cs::test::differsFromGeneration(was, g); !why.empty())
                    return fail(target + " is not generation " + std::to_string(g) + ": " + why);
                start = g + 1;
            }
            for (int64_t g = start; count < 0 || g < start + count; ++g) {
                cs::app::writeSession(target, cs::test::sessionOf(g), options);
                say("gen " + std::to_string(g));
            }
            return 0;
        }
        cs::app::SessionAutosave autosave;
        autosave.setFolder(QString::fromStdString(target));
        autosave.setInterval(0); // no timer: saveNow() below is what the timer calls
        autosave.start();
        say("autosave " + autosave.autosavePath().toStdString());
        for (int64_t g = start; count < 0 || g < start + count; ++g) {
            autosave.setSnapshot([g] { return cs::test::sessionOf(g); });
            autosave.saveNow();
            if (!autosave.waitForSave())
                return fail("the autosave did not finish");
            if (!autosave.lastError().isEmpty())
                return fail(autosave.lastError().toStdString());
            say("gen " + std::to_string(g));
        }
        autosave.finish();
        return 0;
    } catch (const std::exception& e) {
        return fail(e.what());
    }
}
