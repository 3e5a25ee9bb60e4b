// A process's membership of a distributed job (cs/distributed.h): c10d's TCP store and its Gloo
// or NCCL backend, a heartbeat that names a lost rank, and the collectives the trainers use.
#include "cs/distributed.h"

#include "cs/error.h"
#include "cs/model.h"

#include <ATen/ATen.h>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#if defined(CS_WITH_CUDA) && defined(USE_C10D_NCCL)
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#define CS_WITH_NCCL 1
#endif

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <sstream>
#include <thread>

#include <unistd.h>

namespace cs::distributed {

namespace {

// How often a rank beats, and how many beats a rank may miss before it counts as lost.
constexpr auto kBeat = std::chrono::milliseconds(500);
constexpr int kMissedBeats = 6;

int64_t envInt(const char* name, std::optional<int64_t> fallback, int64_t lo, int64_t hi)
{
    const char* text = std::getenv(name);
    if (!text || !*text) {
        if (!fallback)
            throw Error(std::string("--distributed needs the environment variable ") + name
                + " (torchrun sets it), or the same as a flag");
        return *fallback;
    }
    char* end = nullptr;
    errno = 0;
    const long long value = std::strtoll(text, &end, 10);
    if (*end != '\0' || errno == ERANGE || value < lo || value > hi)
        throw Error(std::string("the environment variable ") + name + " must be an integer in [" + std::to_string(lo)
            + ", " + std::to_string(hi) + "], not \"" + text + "\"");
    return value;
}

std::string beatKey(int64_t rank)
{
    return "cs/beat/" + std::to_string(rank);
}

} // namespace

Options optionsFromEnvironment()
{
    Options o;
    o.worldSize = envInt("WORLD_SIZE", std::nullopt, 1, 1 << 20);
    o.rank = envInt("RANK", std::nullopt, 0, o.worldSize - 1);
    o.localRank = envInt("LOCAL_RANK", o.rank, 0, o.worldSize - 1);
    o.masterPort = envInt("MASTER_PORT", 29500, 1, 65535);
    if (const char* addr = std::getenv("MASTER_ADDR"); addr && *addr)
        o.masterAddr = addr;
    return o;
}

struct Group::Impl {
    Options options;
    c10::Device device { c10::kCPU };
    c10::intrusive_ptr<c10d::TCPStore> store;
    c10::intrusive_ptr<c10d::Backend> backend;
    std::string backendName;
    int64_t localSize = 1;
    // The heartbeat: its own connection to the store (a TCPStore client is one socket, used by
    // one thread at a time), a counter bumped every beat.
    c10::intrusive_ptr<c10d::TCPStore> beatStore;
    std::thread beat;
    std::mutex mutex;
    std::condition_variable wake;
    bool stopping = false;

    // Why a collective failed, for a person: the ranks whose heartbeat stopped, read twice
    // kMissedBeats beats apart; rank 0's loss shows as a store that no longer answers.
    std::string lost(const std::string& what, const std::exception& cause)
    {
        const std::string detail = model::errorText(cause);
        const int64_t n = options.worldSize;
        std::vector<int64_t> first(static_cast<size_t>(n), -1), second(static_cast<size_t>(n), -1);
        try {
            // A client of its own, with a short timeout: a store that is gone must not hold the
            // message back for the job's whole timeout.
            c10d::TCPStoreOptions quick = storeOptions(false);
            quick.timeout = std::chrono::seconds(5);
            auto client = c10::make_intrusive<c10d::TCPStore>(options.masterAddr, quick);
            auto read = [&](std::vector<int64_t>& into) {
                for (int64_t r = 0; r < n; ++r)
                    into[static_cast<size_t>(r)] = client->add(beatKey(r), 0);
            };
            read(first);
            std::this_thread::sleep_for(kBeat * kMissedBeats);
            read(second);
        } catch (const std::exception&) {
            return what + " failed: rank 0 (which hosts the job's store at " + options.masterAddr + ":"
                + std::to_string(options.masterPort) + ") is lost (" + detail + ")";
        }
        std::string ranks;
        for (int64_t r = 0; r < n; ++r)
            if (r != options.rank && second[static_cast<size_t>(r)] == first[static_cast<size_t>(r)])
                ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
        if (ranks.empty())
            return what + " failed on rank " + std::to_string(options.rank) + " while every rank still beats (" + detail
                + ")";
        return what + " failed: rank " + ranks + " of " + std::to_string(n) + " is lost (its heartbeat stopped; "
            + detail + ")";
    }

    // The job's store: rank 0 serves it, and every rank's first connection counts itself in
    // (waitWorkers) so that rank 0 waits for all; later connections (the heartbeat's, the loss
    // check's) are plain clients.
    c10d::TCPStoreOptions storeOptions(bool server, bool counted = false) const
    {
        c10d::TCPStoreOptions so;
        so.port = static_cast<uint16_t>(options.masterPort);
        so.isServer = server;
        so.numWorkers = counted ? std::optional<size_t>(static_cast<size_t>(options.worldSize)) : std::nullopt;
        so.waitWorkers = counted;
        so.timeout = options.timeout;
        return so;
    }

    template<class F> void guarded(const std::string& what, F&& run)
    {
        try {
            run();
        } catch (const Error&) {
            throw;
        } catch (const std::exception& e) {
            throw Error(lost(what, e));
        }
    }
};

Group::Group()
    : m(std::make_unique<Impl>())
{
}

Group::~Group()
{
    {
        std::lock_guard<std::mutex> lock(m->mutex);
        m->stopping = true;
    }
    m->wake.notify_all();
    if (m->beat.joinable())
        m->beat.join();
}

std::shared_ptr<Group> Group::join(const Options& options, c10::Device device)
{
    if (options.worldSize < 1 || options.rank < 0 || options.rank >= options.worldSize)
        throw Error("rank " + std::to_string(options.rank) + " is not in a job of " + std::to_string(options.worldSize)
            + " ranks");
    if (options.masterPort < 1 || options.masterPort > 65535)
        throw Error("the master port must be in [1, 65535], not " + std::to_string(options.masterPort));
    if (options.masterAddr.empty())
        throw Error("the master address is empty");
    std::string backend = options.backend;
    if (backend == "auto")
        backend = device.is_cuda() ? "nccl" : "gloo";
    if (backend != "gloo" && backend != "nccl")
        throw Error("the distributed backend must be gloo, nccl or auto, not \"" + backend + "\"");
    if (backend == "nccl" && !device.is_cuda())
        throw Error("the nccl backend needs a GPU; use gloo for CPUs");

    std::shared_ptr<Group> g(new Group());
    Impl& m = *g->m;
    m.options = options;
    m.device = device;
    m.backendName = backend;
    try {
        m.store = c10::make_intrusive<c10d::TCPStore>(options.masterAddr, m.storeOptions(options.rank == 0, true));
        m.beatStore = c10::make_intrusive<c10d::TCPStore>(options.masterAddr, m.storeOptions(false));
        if (backend == "gloo") {
            auto go = c10d::ProcessGroupGloo::Options::create(options.timeout);
            // GLOO_SOCKET_IFNAME picks the interface as it does for PyTorch; a job on the loopback
            // address stays on it; else the interface of this machine's hostname.
            const char* ifname = std::getenv("GLOO_SOCKET_IFNAME");
            const bool loopback = options.masterAddr.rfind("127.", 0) == 0 || options.masterAddr == "localhost";
            go->devices.push_back(ifname && *ifname ? c10d::ProcessGroupGloo::createDeviceForInterface(ifname)
                    : loopback                      ? c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1")
                                                    : c10d::ProcessGroupGloo::createDefaultDevice());
            m.backend = c10::make_intrusive<c10d::ProcessGroupGloo>(
                m.store, static_cast<int>(options.rank), static_cast<int>(options.worldSize), go);
        } else {
#ifdef CS_WITH_NCCL
            auto no = c10d::ProcessGroupNCCL::Options::create();
            no->timeout = options.timeout;
            m.backend = c10::make_intrusive<c10d::ProcessGroupNCCL>(
                m.store, static_cast<int>(options.rank), static_cast<int>(options.worldSize), no);
#else
            throw Error("this build has no NCCL (its LibTorch is not CUDA-enabled); use gloo");
#endif
        }
    } catch (const Error&) {
        throw;
    } catch (const std::exception& e) {
        throw Error("rank " + std::to_string(options.rank) + " could not join the job at " + options.masterAddr + ":"
            + std::to_string(options.masterPort) + " within " + std::to_string(options.timeout.count() / 1000)
            + " s: " + model::errorText(e));
    }
    // Which ranks share this machine: each states its host name in the store.
    try {
        char host[256] = {};
        ::gethostname(host, sizeof host - 1);
        const std::string name(host);
        m.store->set("cs/host/" + std::to_string(options.rank), std::vector<uint8_t>(name.begin(), name.end()));
        m.localSize = 0;
        for (int64_t r = 0; r < options.worldSize; ++r)
            m.localSize += m.store->get_to_str("cs/host/" + std::to_string(r)) == name;
    } catch (const std::exception& e) {
        throw Error("rank " + std::to_string(options.rank) + " could not join the job: " + model::errorText(e));
    }
    // The heartbeat starts once every rank has joined; it stops quietly when the store goes.
    m.beat = std::thread([&m] {
        try {
            for (;;) {
                m.beatStore->add(beatKey(m.options.rank), 1);
                std::unique_lock<std::mutex> lock(m.mutex);
                if (m.wake.wait_for(lock, kBeat, [&m] { return m.stopping; }))
                    return;
            }
        } catch (const std::exception&) {
        }
    });
    return g;
}

int64_t Group::rank() const
{
    return m->options.rank;
}

int64_t Group::size() const
{
    return m->options.worldSize;
}

std::string Group::backendName() const
{
    return m->backendName;
}

int64_t Group::localSize() const
{
    return m->localSize;
}

namespace {

// The tensors end to end in one flat tensor on `device`: Gloo's collectives take one tensor per
// device, not a list, and one collective is cheaper than many.
std::vector<at::Tensor> flatten(const std::vector<at::Tensor>& tensors, c10::Device device)
{
    std::vector<at::Tensor> parts;
    for (const auto& t : tensors)
        parts.push_back(t.detach().reshape({ -1 }).to(device));
    return { at::cat(parts) };
}

// Back from the flat tensor into the tensors, in place.
void unflatten(const at::Tensor& flat, std::vector<at::Tensor>& tensors)
{
    int64_t offset = 0;
    for (auto& t : tensors) {
        t.detach().copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
        offset += t.numel();
    }
}

} // namespace

void Group::allReduce(std::vector<at::Tensor>& tensors, ReduceOp op)
{
    if (tensors.empty() || m->options.worldSize == 1)
        return;
    std::vector<at::Tensor> flat = flatten(tensors, m->device);
    c10d::AllreduceOptions ao;
    ao.reduceOp = op == ReduceOp::Sum ? c10d::ReduceOp::SUM : c10d::ReduceOp::MAX;
    m->guarded("an all-reduce", [&] { m->backend->allreduce(flat, ao)->wait(); });
    unflatten(flat[0], tensors);
}

void Group::broadcast(std::vector<at::Tensor>& tensors, int64_t root)
{
    if (tensors.empty() || m->options.worldSize == 1)
        return;
    std::vector<at::Tensor> flat = flatten(tensors, m->device);
    c10d::BroadcastOptions bo;
    bo.rootRank = root;
    m->guarded("a broadcast", [&] { m->backend->broadcast(flat, bo)->wait(); });
    unflatten(flat[0], tensors);
}

namespace {

// Rank r's flat tensor back into the shapes of `like`, on the CPU.
std::vector<at::Tensor> split(const at::Tensor& flat, const std::vector<at::Tensor>& like)
{
    std::vector<at::Tensor> out;
    int64_t offset = 0;
    for (const auto& t : like) {
        out.push_back(flat.narrow(0, offset, t.numel()).view(t.sizes()).to(t.device()));
        offset += t.numel();
    }
    return out;
}

} // namespace

std::vector<std::vector<at::Tensor>> Group::allGather(const std::vector<at::Tensor>& tensors)
{
    if (m->options.worldSize == 1 || tensors.empty())
        return { tensors };
    std::vector<at::Tensor> flat = flatten(tensors, m->device);
    std::vector<std::vector<at::Tensor>> received(1);
    for (int64_t r = 0; r < m->options.worldSize; ++r)
        received[0].push_back(at::empty_like(flat[0]));
    m->guarded("an all-gather", [&] { m->backend->allgather(received, flat)->wait(); });
    std::vector<std::vector<at::Tensor>> out;
    for (const auto& part : received[0])
        out.push_back(split(part, tensors));
    return out;
}

std::vector<std::vector<at::Tensor>> Group::gather(const std::vector<at::Tensor>& tensors, int64_t root)
{
    if (m->options.worldSize == 1)
        return { tensors };
    if (tensors.empty())
        return std::vector<std::vector<at::Tensor>>(m->options.rank == root ? m->options.worldSize : 0);
    std::vector<at::Tensor> flat = flatten(tensors, m->device);
    std::vector<std::vector<at::Tensor>> received;
    if (m->options.rank == root) {
        received.resize(1);
        for (int64_t r = 0; r < m->options.worldSize; ++r)
            received[0].push_back(at::empty_like(flat[0]));
    }
    c10d::GatherOptions go;
    go.rootRank = root;
    m->guarded("a gather", [&] { m->backend->gather(received, flat, go)->wait(); });
    std::vector<std::vector<at::Tensor>> out;
    if (m->options.rank == root)
        for (const auto& part : received[0])
            out.push_back(split(part, tensors));
    return out;
}

void Group::barrier()
{
    if (m->options.worldSize == 1)
        return;
    m->guarded("a barrier", [&] { m->backend->barrier()->wait(); });
}

void Group::checkSame(const std::string& what, const std::string& text)
{
    if (m->options.worldSize == 1)
        return;
    const std::string prefix = "cs/check/" + what + "/";
    std::vector<std::string> texts;
    m->guarded("comparing " + what, [&] {
        m->store->set(prefix + std::to_string(m->options.rank), std::vector<uint8_t>(text.begin(), text.end()));
        for (int64_t r = 0; r < m->options.worldSize; ++r)
            texts.push_back(m->store->get_to_str(prefix + std::to_string(r)));
    });
    for (int64_t r = 1; r < m->options.worldSize; ++r) {
        if (texts[static_cast<size_t>(r)] == texts[0])
            continue;
        std::istringstream a(texts[0]), b(texts[static_cast<size_t>(r)]);
        std::string lineA, lineB;
        while (true) {
            const bool moreA = static_cast<bool>(std::getline(a, lineA));
            const bool moreB = static_cast<bool>(std::getline(b, lineB));
            if (!moreA)
                lineA = "(nothing)";
            if (!moreB)
                lineB = "(nothing)";
            if (lineA != lineB || (!moreA && !moreB))
                break;
        }
        throw Error("rank " + std::to_string(r) + " was started with other " + what + " than rank 0: \"" + lineB
            + "\" where rank 0 has \"" + lineA + "\"; start every rank with the same command");
    }
}

} // namespace cs::distributed
