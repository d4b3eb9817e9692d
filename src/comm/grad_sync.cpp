#include "comm/grad_sync.h"

#include "comm/replicated_sync.h"
#include "comm/split_rows_sync.h"
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
  std::unique_ptr<SharedBuffer> shared =
      host->allocate_shared(count, SharedCopies::kPerRank, why_not);
  if (comm.all_reduce_max(shared ? 0 : 1) != 0) {
    if (why_not.empty()) why_not = "shared memory is short on another host";
    return {};  // every host drops its window alike
  }
  const std::string layout = std::to_string(hosts) + " hosts x " + std::to_string(most) + " ranks";
  return {make_hierarchical_path(std::move(host), std::move(across), std::move(shared), codec()),
          options.path == AllReduceChoice::kAuto ? layout
                                                 : "training.allreduce: hierarchical, " + layout};
}

// zero: auto splits the weight gradients only where the parameters come from memory each step:
// with parameters in cache, both ranks read rows that the other core just wrote, and the window's
// barriers cost more than ZeRO-1's copies (2 ranks, samples/s against ZeRO-1's: W2's 2.1 MB of
// parameters 0.92x, 4.3 MB 0.93x, 8.5 MB 1.03x, W3's 58.8 MB 1.10x;
// benchmarks/results/xeon/split_rows.md).
constexpr size_t kSplitRowsMinBytes = size_t{8} << 20;

// Note [split weight gradients], where the run allows it, or null with the reason in `why_not`.
// Collective; every rank decides from the same options and the same agreed allocations.
std::unique_ptr<GradSync> split_rows(const GradSyncOptions& options, Communicator& comm,
                                     ComputeBackend& backend, size_t count, std::string& why_not) {
  if (options.dense_layers.empty()) {
    why_not = "it needs every parameter in a dense layer over flat inputs";
    return nullptr;
  }
  if (!options.update_as_gradients_come) {
    why_not =
        "it needs an optimizer that may update rows as their gradients come (not with "
        "training.update_in_backward: false, nonfinite: skip, a weight penalty, "
        "optimizer.global_clipnorm or accumulation_steps above 1)";
    return nullptr;
  }
  if (backend.memory() != MemoryKind::kHost || !backend.prefers_update_in_backward()) {
    why_not = "the gradients are in " + backend.name() + " memory";
    return nullptr;
  }
  if (options.path != AllReduceChoice::kAuto && options.path != AllReduceChoice::kSharedMemory) {
    why_not = std::string("it needs shared memory, and training.allreduce is ") +
              choice_name(options.path);
    return nullptr;
  }
  if (options.overlap || options.bf16_wire) {
    why_not = "it sums no gradients (overlap: true and wire_dtype: bf16 do not apply)";
    return nullptr;
  }
  if (options.zero == ZeroChoice::kAuto && count * sizeof(float) < kSplitRowsMinBytes) {
    why_not = "the parameters stay in cache";
    return nullptr;
  }
  std::unique_ptr<SharedBuffer> params = comm.allocate_shared(count, SharedCopies::kOne, why_not);
  if (!params) return nullptr;
  const int64_t rows = comm.size() * options.rows_per_rank;
  std::unique_ptr<SharedBuffer> exchange = comm.allocate_shared(
      SplitRowsSync::exchange_floats(options.dense_layers, rows), SharedCopies::kOne, why_not);
  if (!exchange) return nullptr;
  const std::string description =
      "gradients: split by rows, each of " + std::to_string(comm.size()) +
      " ranks computing and updating its rows over the global batch of " + std::to_string(rows) +
      " through shared memory (one copy of the parameters; zero: " +
      (options.zero == ZeroChoice::kAuto ? "auto" : "rows") + ")";
  return std::make_unique<SplitRowsSync>(comm, backend, std::move(params), std::move(exchange),
                                         options.dense_layers, options.rows_per_rank, description);
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
    if (std::unique_ptr<SharedBuffer> shared =
            comm.allocate_shared(count, SharedCopies::kPerRank, why_not))
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
  if (options.zero == ZeroChoice::kRows || options.zero == ZeroChoice::kAuto) {
    std::string why_not;
    if (std::unique_ptr<GradSync> split = split_rows(options, comm, backend, count, why_not))
      return split;
    if (options.zero == ZeroChoice::kRows) {
      ConfigError error(options.config_file + ": training.zero: rows, but " + why_not);
      error.mark_agreed();  // every rank decided the same from the same facts
      throw error;
    }
  }
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
    shared_params = comm.allocate_shared(count, SharedCopies::kPerRank, why_not);
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
