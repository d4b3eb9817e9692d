// The trainer's gradient all-reduce (its GradSync, replicated, on the path training.allreduce
// names) against one raw MPI_Allreduce of the same bytes, reported as nccl-tests does:
// algbw = bytes / time, busbw = algbw * 2 (n - 1) / n. By default the buffer is cut into the
// trainer's default 4 MiB buckets (Note [CPU all-reduce]); --one-bucket sums it as one bucket,
// which is what launch/ddp_scale.py fits its latency + per-byte terms to. --codec times the bf16
// wire's encoding and decoding of each size instead (Note [wire format]), the cost ddp_scale adds
// to bf16 collectives over MPI.
//   mpirun -n 2 build/bench_allreduce [--allreduce mpi] [--wire bf16] [--min-bytes 4096]
//       [--max-bytes 67108864] [--step-factor 4] [--one-bucket] [--overlap] [--no-raw]
//       [--codec] [--json FILE]

#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "comm/grad_sync.h"
#include "comm/mpi_check.h"
#include "comm/mpi_communicator.h"
#include "core/error.h"

namespace {

using namespace ddp;

// Seconds per call of fn over `iterations` calls after a warm-up. With `idle_ms`, each call
// comes after that long without traffic, as in training, where the link idles while the ranks
// compute: a token-bucket link (a cloud VM's, tc's tbf) then starts each call with a full bucket,
// which a back-to-back sweep never does. Only the calls are timed then, and the slowest rank's
// mean is reported, as the barriers around back-to-back calls report the slowest rank.
template <class Fn>
double seconds_per_call(MpiCommunicator& comm, Fn&& fn, int iterations, double idle_ms = 0) {
  fn();  // warm-up
  comm.barrier();
  if (idle_ms > 0) {
    std::chrono::steady_clock::duration calls{};
    for (int i = 0; i < iterations; ++i) {
      // Busy, as a computing rank is: a sleeping one lets an idle VM core halt, and the link
      // relays of netns_cluster.sh then wake late.
      const auto rest_end = std::chrono::steady_clock::now() +
                            std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                std::chrono::duration<double, std::milli>(idle_ms));
      while (std::chrono::steady_clock::now() < rest_end) {
      }
      const auto start = std::chrono::steady_clock::now();
      fn();
      calls += std::chrono::steady_clock::now() - start;
    }
    double seconds = std::chrono::duration<double>(calls).count() / iterations;
    mpiCheck(MPI_Allreduce(MPI_IN_PLACE, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
    return seconds;
  }
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < iterations; ++i) fn();
  comm.barrier();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() /
         iterations;
}

// How many calls of fn fill the time budget: a first call sizes them, agreed over the ranks so
// that every rank runs as many. At least 5: on a congested TCP link a call now and then waits for
// a retransmission.
template <class Fn>
int iterations_for(MpiCommunicator& comm, Fn&& fn, double seconds_per_size, double idle_ms = 0) {
  double first = seconds_per_call(comm, fn, 1) + idle_ms / 1e3;
  comm.all_reduce_sum(std::span<double>(&first, 1));
  return std::clamp(static_cast<int>(seconds_per_size * comm.size() / std::max(first, 1e-9)), 5,
                    2000);
}

struct Options {
  std::string allreduce = "auto";
  std::string wire = "fp32";
  std::string mpi_allreduce = "auto";
  size_t min_bytes = 4096;
  size_t max_bytes = size_t{64} << 20;
  size_t step_factor = 4;
  double seconds_per_size = 0.5;  // bounds the iterations on slow links
  bool one_bucket = false;
  bool overlap = false;
  bool no_raw = false;
  bool codec = false;
  double idle_ms = 0;
  std::string json;
};

AllReduceChoice path_choice(const std::string& name) {
  if (name == "shm") return AllReduceChoice::kSharedMemory;
  if (name == "mpi") return AllReduceChoice::kMpi;
  if (name == "hierarchical") return AllReduceChoice::kHierarchical;
  return AllReduceChoice::kAuto;
}

// What the bf16 codec costs a bucket of `count` floats on every rank: rounded into the wire
// buffer before the collective and widened back after it (wire_codec.cpp's encode and decode).
nlohmann::json codec_row(MpiCommunicator& comm, ComputeBackend& backend, size_t count,
                         double seconds_per_size) {
  DeviceBuffer grads(backend, count), wire(backend, (count + 1) / 2);
  std::fill(grads.span().begin(), grads.span().end(), 1.0f);
  auto* bits = reinterpret_cast<uint16_t*>(wire.data());
  const auto round_trip = [&] {
    backend.to_bf16(grads.data(), bits, count);
    backend.from_bf16(bits, grads.data(), count);
  };
  const int iterations = iterations_for(comm, round_trip, seconds_per_size);
  const double seconds = seconds_per_call(comm, round_trip, iterations);
  if (comm.rank() == 0)
    std::printf("%10zu %10.3f ms to encode and decode\n", count * sizeof(float), seconds * 1e3);
  return {{"bytes", count * sizeof(float)}, {"ms", seconds * 1e3}, {"iterations", iterations}};
}

}  // namespace

int main(int argc, char** argv) {
  MpiRuntime runtime(&argc, &argv);
  MpiCommunicator comm;
  CLI::App app{"bench_allreduce: the trainer's gradient all-reduce against raw MPI_Allreduce"};
  Options o;
  app.add_option("--allreduce", o.allreduce, "Path, as training.allreduce")
      ->check(CLI::IsMember({"auto", "shm", "mpi", "hierarchical"}));
  app.add_option("--wire", o.wire, "Wire format, as training.wire_dtype")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  app.add_option("--min-bytes", o.min_bytes, "Smallest size")->check(CLI::Range(4, 1 << 30));
  app.add_option("--max-bytes", o.max_bytes, "Largest size")->check(CLI::Range(4, 1 << 30));
  app.add_option("--step-factor", o.step_factor, "Each size this many times the last")
      ->check(CLI::Range(2, 16));
  app.add_option("--seconds-per-size", o.seconds_per_size, "Time budget per size (estimated)")
      ->check(CLI::PositiveNumber);
  app.add_flag("--one-bucket", o.one_bucket, "Sum each size as one bucket");
  app.add_option("--mpi-allreduce", o.mpi_allreduce, "As training.mpi_allreduce")
      ->check(CLI::IsMember({"auto", "ring", "library"}));
  app.add_flag("--overlap", o.overlap,
               "As training.overlap: true (non-blocking collectives, started together)");
  app.add_flag("--no-raw", o.no_raw, "Skip the raw MPI_Allreduce");
  app.add_flag("--codec", o.codec,
               "Time the bf16 wire's encoding and decoding of each size instead (no all-reduce)");
  app.add_option("--idle-ms", o.idle_ms,
                 "Keep the link idle this long before each timed call of ours (spinning, as "
                 "training computes)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--json", o.json, "Also write the rows to this file (rank 0)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return comm.rank() == 0 ? app.exit(e) : 2;
  }
  const int n = comm.size();
  const std::unique_ptr<ComputeBackend> backend = make_cpu_backend();
  const double bus_factor = n > 1 ? 2.0 * (n - 1) / n : 1.0;
  nlohmann::json rows = nlohmann::json::array();
  if (comm.rank() == 0 && !o.codec)
    std::printf("%10s %10s %12s %12s %10s %12s %8s\n", "bytes", "raw ms", "raw busbw", "ours ms",
                "ours algbw", "ours busbw", "ratio");
  try {
    for (size_t bytes = o.min_bytes; bytes <= o.max_bytes; bytes *= o.step_factor) {
      const size_t count = bytes / sizeof(float);
      if (o.codec) {
        rows.push_back(codec_row(comm, *backend, count, o.seconds_per_size));
        continue;
      }
      std::vector<float> data(count, 1.0f);
      // Our path reduces the trainer's gradient memory, which its GradSync owns (shared memory on
      // one host, Note [shared-memory all-reduce]); raw MPI gets plain memory, as a user's buffer
      // would be. The buffer is laid out like a model's: tensors of up to 4 MB each.
      std::vector<size_t> tensor_offsets;
      for (size_t offset = 0; offset < count; offset += size_t{1} << 20)
        tensor_offsets.push_back(offset);
      GradSyncOptions options;
      options.path = path_choice(o.allreduce);
      options.bf16_wire = o.wire == "bf16";
      options.overlap = o.overlap;
      options.large_sums = o.mpi_allreduce == "ring"      ? RingChoice::kRing
                           : o.mpi_allreduce == "library" ? RingChoice::kLibrary
                                                          : RingChoice::kAuto;
      // Replicated: under the sharded step finish() sums nothing and the reduce-scatter runs
      // inside step() (Note [sharded step]).
      options.zero = ZeroChoice::kOff;
      if (o.one_bucket) options.bucket_bytes = bytes;
      const std::unique_ptr<GradSync> sync =
          make_grad_sync(options, comm, *backend, tensor_offsets, count);
      std::span<float> grads = sync->grads();
      std::fill(grads.begin(), grads.end(), 1.0f);
      const int iterations = iterations_for(
          comm, [&] { sync->finish(); }, o.seconds_per_size, o.idle_ms);
      const double raw =
          o.no_raw
              ? 0.0
              : seconds_per_call(
                    comm,
                    [&] {
                      mpiCheck(MPI_Allreduce(MPI_IN_PLACE, data.data(), static_cast<int>(count),
                                             MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD));
                    },
                    iterations);
      const double ours = seconds_per_call(
          comm, [&] { sync->finish(); }, iterations, o.idle_ms);
      const double ours_alg = bytes / ours / 1e9;
      if (comm.rank() == 0) {
        const double raw_bus = o.no_raw ? 0.0 : bytes / raw / 1e9 * bus_factor;
        std::printf("%10zu %10.3f %7.2f GB/s %12.3f %5.2f GB/s %7.2f GB/s %8.2f\n", bytes,
                    raw * 1e3, raw_bus, ours * 1e3, ours_alg, ours_alg * bus_factor,
                    o.no_raw ? 0.0 : raw / ours);
        rows.push_back({{"bytes", bytes},
                        {"ms", ours * 1e3},
                        {"raw_ms", raw * 1e3},
                        {"raw_busbw_gbs", raw_bus},
                        {"ours_busbw_gbs", ours_alg * bus_factor},
                        {"ratio", o.no_raw ? 0.0 : raw / ours},
                        {"iterations", iterations},
                        {"idle_ms", o.idle_ms},
                        {"buckets", sync->buckets().size()},
                        {"path", sync->describe()}});
      }
    }
  } catch (const Error& e) {
    std::fprintf(stderr, "bench_allreduce: error: %s\n", e.what());
    comm.abort(static_cast<int>(e.code()));
  }
  if (comm.rank() == 0 && !o.json.empty()) {
    std::ofstream out(o.json);
    out << nlohmann::json{{"world_size", n},
                          {"allreduce", o.allreduce},
                          {"wire", o.wire},
                          {"rows", rows}}
               .dump(2)
        << "\n";
    if (!out) std::fprintf(stderr, "bench_allreduce: %s: cannot write\n", o.json.c_str());
  }
  return 0;
}
