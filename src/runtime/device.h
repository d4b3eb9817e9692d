#pragma once
// Which compute backend a rank uses (training.device: auto, cpu, cuda).
// Note [device binding]: one GPU per rank; a rank's device is its index among the ranks on its
// host (the MPI shared-memory split), never a guess from launcher-specific environment variables.
// With CUDA, both come from the CUDA module (Note [CUDA module]).

#include <memory>
#include <string>

#include "backend/backend.h"
#include "comm/communicator.h"
#include "comm/device_work.h"

namespace ddp {

// Throws ConfigError for `cuda` in a build without CUDA, and RuntimeError naming the host and
// the counts when a host has more ranks than GPUs, or when the CUDA module cannot be loaded.
// precision: the dense layers' products (MatmulPrecision). cpu_threads: the CPU backend's threads
// (Note [threads per rank]); GPUs ignore it.
std::unique_ptr<ComputeBackend> choose_device(const std::string& device, bool flush_denormals,
                                              MatmulPrecision precision, int local_rank,
                                              int local_size, int cpu_threads = 1);

// The communicator for buffers in `backend`'s memory: NCCL for a CUDA backend on several ranks
// (with `host` for host memory), otherwise null (use `host` itself). Collective. Its collectives
// are handed to `monitor` when there is one (Note [device watchdog]). even_for_one_rank builds
// NCCL for a world of one too (a test of the NCCL path).
std::unique_ptr<Communicator> make_device_communicator(Communicator& host, ComputeBackend& backend,
                                                       DeviceWorkMonitor* monitor,
                                                       bool even_for_one_rank = false);

}  // namespace ddp
