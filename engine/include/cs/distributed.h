#pragma once
// Jobs over several processes (docs/ARCHITECTURE.md §5.3): LibTorch's own distributed runtime,
// c10d, with Gloo between CPUs and NCCL between GPUs, joined the way PyTorch jobs are launched
// (torchrun's RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT). Rank 0 hosts the job's
// TCP store; every rank keeps a heartbeat there, so that when a collective fails the survivors
// can name the rank that was lost instead of hanging or reporting a socket error.

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cs::distributed {

struct Options {
    int64_t rank = 0;
    int64_t worldSize = 1;
    int64_t localRank = 0; // the rank among this machine's processes (picks the GPU)
    std::string masterAddr = "127.0.0.1"; // rank 0's address: it hosts the store
    int64_t masterPort = 29500;
    std::string backend = "auto"; // gloo, nccl; auto: nccl for a GPU, gloo otherwise
    // How long joining and one collective may take before the job is declared broken.
    std::chrono::milliseconds timeout { std::chrono::minutes(5) };
};

// Options from torchrun's environment variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
// MASTER_PORT; LOCAL_RANK defaults to RANK, MASTER_ADDR to 127.0.0.1, MASTER_PORT to 29500).
// Throws cs::Error naming a variable that is missing or out of range.
Options optionsFromEnvironment();

enum class ReduceOp { Sum, Max };

// One process's membership of a job. Every rank calls the collectives in the same order. A
// collective that fails (a rank died, a timeout) throws cs::Error naming the lost rank when the
// heartbeats tell it.
class Group {
public:
    // Joins the job: rank 0 hosts the store and waits for the others; throws cs::Error when the
    // job is not complete within the timeout, or for bad options.
    static std::shared_ptr<Group> join(const Options& options, c10::Device device);
    ~Group();
    Group(const Group&) = delete;
    Group& operator=(const Group&) = delete;

    int64_t rank() const;
    int64_t size() const;
    std::string backendName() const; // "gloo" or "nccl"
    // The ranks on this machine (those whose host name is this one's), this one included: they
    // share its cores.
    int64_t localSize() const;

    // In place on every rank: the element-wise sum or maximum over the ranks. The tensors may
    // differ in shape; they must have one dtype and be on the group's device.
    void allReduce(std::vector<at::Tensor>& tensors, ReduceOp op = ReduceOp::Sum);
    // In place: root's values on every rank.
    void broadcast(std::vector<at::Tensor>& tensors, int64_t root = 0);
    // Every rank's `tensors` (one dtype; every rank the same shapes), on every rank: result[r] is
    // rank r's list, in the shapes given.
    std::vector<std::vector<at::Tensor>> allGather(const std::vector<at::Tensor>& tensors);
    // The same on `root` alone, for what one rank writes; the other ranks get an empty list.
    std::vector<std::vector<at::Tensor>> gather(const std::vector<at::Tensor>& tensors, int64_t root = 0);
    void barrier();
    // Every rank states `text` for `what` (a model's config, a corpus, the options); when they
    // are not all equal, every rank throws the same cs::Error naming the first rank that
    // differs from rank 0 and its first differing line.
    void checkSame(const std::string& what, const std::string& text);

private:
    Group();
    struct Impl;
    std::unique_ptr<Impl> m;
};

} // namespace cs::distributed
