#include "comm/grad_sync.h"

#include "comm/replicated_sync.h"
#include "comm/zero1_sync.h"
#include "core/error.h"

namespace ddp {
namespace {

const char* choice_name(AllReduceChoice choice) {
  switch (choice) {
    case AllReduceChoice::kAuto:
      return "auto";
    case AllReduceChoice::kSharedMemory:
      return "shm";
    case AllReduceChoice::kMpi:
      return "mpi";
    case AllReduceChoice::kHierarchical:
      return "hierarchical";
    case AllReduceChoice::kNccl:
      return "nccl";
  }
  return "?";
}

// The path and the reason it was taken, for the log.
struct ChosenPath {
  std::unique_ptr<AllReducePath> path;
  std::string why;
};

ConfigError refusal(const GradSyncOptions& options, const std::string& why) {
  ConfigError error(options.config_file + ": training.allreduce: " + choice_name(options.path) +
                    ", but " + why);
  error.mark_agreed();  // every rank decided the same from the same facts
  return error;
}

// The choice must fit the memory the gradients live in, whatever the world size.
void check_choice(const GradSyncOptions& options, const ComputeBackend& backend) {
  const AllReduceChoice choice = options.path;
  const bool on_gpu = backend.memory() == MemoryKind::kDevice;
  if (choice == AllReduceChoice::kNccl && !on_gpu)
    throw refusal(options, "NCCL reduces GPU memory and this run trains on the CPU");
  if ((choice == AllReduceChoice::kSharedMemory || choice == AllReduceChoice::kMpi ||
       choice == AllReduceChoice::kHierarchical) &&
      on_gpu)
    throw refusal(options, "this run trains on " + backend.name() +
                               ", whose gradients NCCL reduces: use auto or nccl");
}

// The hierarchical path, or none with the reason in `why_not`. Collective; every decision rests on
// values all ranks agree on, so every rank returns alike.
template <class MakeCodec>
ChosenPath hierarchical(const GradSyncOptions& options, Communicator& comm, size_t count,
                        const MakeCodec& codec, std::string& why_not) {
  const int most = comm.all_reduce_max(comm.local_size());
  const int fewest = -comm.all_reduce_max(-comm.local_size());
  const int hosts = comm.size() / most;
  if (most != fewest) {
    why_not = "hosts run " + std::to_string(fewest) + " to " + std::to_string(most) +
              " ranks each; hierarchical needs the same number on every host";
    return {};
  }
  if (most == 1 && options.path == AllReduceChoice::kAuto) {
    why_not = "one rank on each of " + std::to_string(hosts) + " hosts";
    return {};
  }
  if (options.zero == ZeroChoice::kOn) {
    why_not = "ZeRO-1 reduce-scatters over all ranks at once (use mpi)";
    return {};
  }
  std::unique_ptr<Communicator> host = comm.split_host();
  if (!host) {
    why_not = "the " + comm.name() + " communicator cannot be split by host";
    return {};
  }
  std::unique_ptr<Communicator> across = comm.split(host->rank(), comm.rank());
  std::unique_ptr<SharedBuffer> shared = host->allocate_shared(count, why_not);
  if (comm.all_reduce_max(shared ? 0 : 1) != 0) {
    if (why_not.empty()) why_not = "shared memory is short on another host";
    return {};  // every host drops its window alike
  }
  const std::string layout = std::to_string(hosts) + " hosts x " + std::to_string(most) + " ranks";
  return {make_hierarchical_path(std::move(host), std::move(across), std::move(shared), codec()),
          options.path == AllReduceChoice::kAuto ? layout
                                                 : "training.allreduce: hierarchical, " + layout};
}

ChosenPath choose_path(const GradSyncOptions& options, Communicator& comm, ComputeBackend& backend,
                       size_t count) {
  const AllReduceChoice choice = options.path;
  const auto codec = [&] {
    return make_wire_codec(options.bf16_wire ? WireDtype::kBf16 : WireDtype::kFp32, backend, count);
  };
  if (comm.memory() != backend.memory())
    throw RuntimeError("gradient sync: the " + comm.name() +
                       " communicator reduces other memory than the " + backend.name() +
                       " backend allocates");
  if (backend.memory() == MemoryKind::kDevice)
    return {make_communicator_path(comm, backend, count, codec()), "gradients on GPUs"};

  if (choice == AllReduceChoice::kMpi)
    return {make_communicator_path(comm, backend, count, codec()), "training.allreduce: mpi"};
  std::string why_not;
  const bool one_host = comm.local_size() == comm.size();
  if (choice == AllReduceChoice::kSharedMemory || (choice == AllReduceChoice::kAuto && one_host)) {
    if (std::unique_ptr<SharedBuffer> shared = comm.allocate_shared(count, why_not))
      return {make_shared_memory_path(std::move(shared), codec()),
              choice == AllReduceChoice::kAuto
                  ? "all " + std::to_string(comm.size()) + " ranks on one host"
                  : "training.allreduce: shm"};
    if (choice == AllReduceChoice::kSharedMemory) throw refusal(options, why_not);
  }
  if (choice == AllReduceChoice::kHierarchical || (choice == AllReduceChoice::kAuto && !one_host)) {
    if (ChosenPath chosen = hierarchical(options, comm, count, codec, why_not); chosen.path)
      return chosen;
    if (choice == AllReduceChoice::kHierarchical) throw refusal(options, why_not);
  }
  return {make_communicator_path(comm, backend, count, codec()), why_not};
}
}  // namespace

std::unique_ptr<GradSync> make_grad_sync(const GradSyncOptions& options, Communicator& comm,
                                         ComputeBackend& backend,
                                         std::span<const size_t> tensor_offsets, size_t count) {
  check_choice(options, backend);
  if (comm.size() == 1)
    return std::make_unique<ReplicatedSync>(
        backend,
        make_communicator_path(comm, backend, count,
                               make_wire_codec(WireDtype::kFp32, backend, count)),
        std::vector<Bucket>{}, false, "gradients: one rank, nothing to reduce");
  // Before choose_path: the hierarchical path's communicators inherit the choice when split.
  const std::string large_sums = comm.choose_large_sums(options.large_sums);
  ChosenPath chosen = choose_path(options, comm, backend, count);
  std::vector<Bucket> buckets = cut_buckets(tensor_offsets, count, options.bucket_bytes);
  // Note [sharded step]: ZeRO-1 by default where the parameters can share the gradients' host
  // memory; every rank decides from the same path and the same agreed allocation (allocate_shared
  // agrees on /dev/shm's room).
  const bool eligible = options.zero == ZeroChoice::kOn || (options.zero == ZeroChoice::kAuto &&
                                                            !options.overlap && !options.bf16_wire);
  std::unique_ptr<SharedBuffer> shared_params;
  if (eligible && chosen.path->in_place()) {
    std::string why_not;
    shared_params = comm.allocate_shared(count, why_not);
  }
  const bool zero1 = options.zero == ZeroChoice::kOn || (eligible && shared_params != nullptr);
  const std::string zero_why = zero1 && options.zero == ZeroChoice::kAuto ? ", zero: auto" : "";
  const std::string strategy = zero1             ? "ZeRO-1 (reduce-scatter, sharded optimizer)"
                               : options.overlap ? "replicated, overlapped with backward"
                                                 : "replicated, after backward";
  // Through MPI the ring serves the all-reduce, overlapped or not, and ZeRO-1's collectives.
  const bool ring_sums = !chosen.path->in_place();
  const std::string description = "gradients: " + strategy + ", " + std::to_string(buckets.size()) +
                                  " bucket(s), " + (options.bf16_wire ? "bf16" : "fp32") +
                                  " through " + chosen.path->name() + " (" + chosen.why + zero_why +
                                  ")" + (ring_sums && !large_sums.empty() ? ", " + large_sums : "");
  if (zero1) {
    Zero1Sync::ParamStorage params = DeviceBuffer(backend, count);
    if (shared_params) params = std::move(shared_params);
    return std::make_unique<Zero1Sync>(comm, backend, std::move(chosen.path), std::move(params),
                                       std::move(buckets), options.sums_before_step, description);
  }
  return std::make_unique<ReplicatedSync>(backend, std::move(chosen.path), std::move(buckets),
                                          options.overlap, description);
}

}  // namespace ddp
