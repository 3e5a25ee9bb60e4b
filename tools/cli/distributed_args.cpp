// --distributed and its flags (commands.h): joining the job a process is a rank of.
#include "commands.h"

#include "cs/distributed.h"
#include "cs/error.h"
#include "cs/model.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

namespace cs::cli {

Job joinJob(const Args& args, const std::string& device)
{
    Job job;
    job.device = device;
    const bool asked = args.flag("distributed");
    for (const char* flag :
        { "rank", "world-size", "local-rank", "master-addr", "master-port", "dist-backend", "dist-timeout" })
        if (args.has(flag) && !asked)
            throw Error(std::string("--") + flag + " belongs to a distributed job: add --distributed");
    if (!asked)
        return job;
    // torchrun's environment first, flags over it; without the environment, the flags alone.
    distributed::Options o;
    if (std::getenv("WORLD_SIZE") && std::getenv("RANK"))
        o = distributed::optionsFromEnvironment();
    else if (!args.has("rank") || !args.has("world-size"))
        throw Error(
            "--distributed needs torchrun's RANK and WORLD_SIZE in the environment, or --rank and --world-size");
    o.worldSize = args.intOr("world-size", o.worldSize);
    o.rank = args.intOr("rank", o.rank);
    o.localRank = args.intOr("local-rank", args.has("rank") && !args.has("local-rank") ? o.rank : o.localRank);
    o.masterAddr = args.valueOr("master-addr", o.masterAddr);
    o.masterPort = args.intOr("master-port", o.masterPort);
    o.backend = args.valueOr("dist-backend", o.backend);
    const double seconds = args.doubleOr("dist-timeout", static_cast<double>(o.timeout.count()) / 1000.0);
    if (!(seconds > 0) || seconds > 7 * 24 * 3600.0)
        throw Error("--dist-timeout must be a positive number of seconds (at most a week)");
    o.timeout = std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000));
    // One GPU a process: this machine's rank picks it.
    c10::Device d = model::resolveDevice(device);
    if (d.is_cuda() && !d.has_index())
        job.device = "cuda:" + std::to_string(o.localRank);
    job.group = distributed::Group::join(o, model::resolveDevice(job.device));
    // The ranks on one machine share its cores: each computes on its share, unless CS_THREADS or
    // OMP_NUM_THREADS says otherwise (LibTorch's threads spin while they wait, so two ranks with
    // every core each ran 6x slower than one rank on this 2-core machine).
    model::initThreads();
    const char* omp = std::getenv("OMP_NUM_THREADS");
    if (!std::getenv("CS_THREADS")) {
        const int cores = static_cast<int>(std::thread::hardware_concurrency());
        const int share = omp && std::atoi(omp) > 0
            ? std::atoi(omp)
            : std::max(1, cores / static_cast<int>(std::max<int64_t>(1, job.group->localSize())));
        at::set_num_threads(share);
    }
    return job;
}

std::string fileFingerprint(const std::string& path)
{
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec)
        return path + ": missing";
    // FNV-1a over the first and the last MiB and the size: enough to tell two corpora or two
    // checkpoints apart without reading gigabytes.
    uint64_t hash = 1469598103934665603ull;
    std::ifstream in(path, std::ios::binary);
    std::vector<char> block(1 << 20);
    for (const std::streamoff at :
        { std::streamoff(0), std::max<std::streamoff>(0, std::streamoff(size) - (1 << 20)) }) {
        in.clear();
        in.seekg(at);
        in.read(block.data(), static_cast<std::streamsize>(block.size()));
        for (std::streamsize i = 0; i < in.gcount(); ++i)
            hash = (hash ^ static_cast<unsigned char>(block[static_cast<size_t>(i)])) * 1099511628211ull;
    }
    char text[64];
    std::snprintf(text, sizeof text, "%llu bytes, %016llx", static_cast<unsigned long long>(size),
        static_cast<unsigned long long>(hash));
    return text;
}

} // namespace cs::cli
