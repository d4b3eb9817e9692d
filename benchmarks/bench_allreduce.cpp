// The trainer's gradient all-reduce (its GradSync with the default options: 4 MiB buckets, see
// Note [CPU all-reduce], and the path training.allreduce: auto picks) against one raw MPI_Allreduce
// of the same bytes, 4 KB ... 64 MB, reported as nccl-tests does: algbw = bytes / time, busbw =
// algbw * 2 (n - 1) / n.
//   mpirun -n 2 build/bench_allreduce [--json FILE]

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "comm/grad_sync.h"
#include "comm/mpi_check.h"
#include "comm/mpi_communicator.h"
#include "core/error.h"

namespace {

using namespace ddp;

template <class Fn>
double seconds_per_call(MpiCommunicator& comm, Fn&& fn, int iterations) {
  fn();  // warm-up
  comm.barrier();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) fn();
  comm.barrier();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
         iterations;
}

}  // namespace

int main(int argc, char** argv) {
  MpiRuntime runtime(&argc, &argv);
  MpiCommunicator comm;
  const std::string json_path = argc > 2 && std::string(argv[1]) == "--json" ? argv[2] : "";
  const int n = comm.size();
  const std::unique_ptr<ComputeBackend> backend = make_cpu_backend();
  const double bus_factor = n > 1 ? 2.0 * (n - 1) / n : 1.0;
  nlohmann::json rows = nlohmann::json::array();
  if (comm.rank() == 0)
    std::printf("%10s %12s %12s %12s %12s %8s\n", "bytes", "raw algbw", "raw busbw", "ours algbw",
                "ours busbw", "ratio");
  for (size_t bytes = 4096; bytes <= (size_t{64} << 20); bytes *= 4) {
    const size_t count = bytes / sizeof(float);
    std::vector<float> data(count, 1.0f);
    // Our path reduces the trainer's gradient memory, which its GradSync owns (shared memory on
    // one host, Note [shared-memory all-reduce]); raw MPI gets plain memory, as a user's buffer
    // would be. The buffer is laid out like a model's: tensors of up to 4 MB each.
    std::vector<size_t> tensor_offsets;
    for (size_t offset = 0; offset < count; offset += size_t{1} << 20)
      tensor_offsets.push_back(offset);
    // Replicated: under the sharded step (zero: auto's choice on one host) finish() sums nothing
    // and the reduce-scatter runs inside step() (Note [sharded step]).
    GradSyncOptions options;
    options.zero = ZeroChoice::kOff;
    const std::unique_ptr<GradSync> sync =
        make_grad_sync(options, comm, *backend, tensor_offsets, count);
    std::span<float> grads = sync->grads();
    std::fill(grads.begin(), grads.end(), 1.0f);
    const int iterations = static_cast<int>(std::max<size_t>(5, (size_t{256} << 20) / bytes / 4));
    const double raw = seconds_per_call(
        comm,
        [&] {
          mpiCheck(MPI_Allreduce(MPI_IN_PLACE, data.data(), static_cast<int>(count), MPI_FLOAT,
                                 MPI_SUM, MPI_COMM_WORLD));
        },
        iterations);
    const double ours = seconds_per_call(
        comm, [&] { sync->finish(); }, iterations);
    const double raw_alg = bytes / raw / 1e9, ours_alg = bytes / ours / 1e9;
    if (comm.rank() == 0) {
      std::printf("%10zu %9.2f GB/s %9.2f GB/s %9.2f GB/s %9.2f GB/s %8.2f\n", bytes, raw_alg,
                  raw_alg * bus_factor, ours_alg, ours_alg * bus_factor, raw / ours);
      rows.push_back({{"bytes", bytes},
                      {"raw_busbw_gbs", raw_alg * bus_factor},
                      {"ours_busbw_gbs", ours_alg * bus_factor},
                      {"ratio", raw / ours},
                      {"buckets", sync->buckets().size()}});
    }
  }
  if (comm.rank() == 0 && !json_path.empty())
    std::ofstream(json_path) << nlohmann::json{{"world_size", n}, {"rows", rows}}.dump(2) << "\n";
  return 0;
}
