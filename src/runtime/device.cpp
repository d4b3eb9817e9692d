#include "runtime/device.h"

#include <unistd.h>

#include <filesystem>

#include "core/error.h"
#ifdef DDP_HAVE_CUDA
#include "runtime/cuda_module.h"
#endif

namespace ddp {

std::unique_ptr<ComputeBackend> choose_device(const std::string& device, bool flush_denormals,
                                              MatmulPrecision precision, int local_rank,
                                              int local_size, int cpu_threads) {
#ifdef DDP_HAVE_CUDA
  // Without the NVIDIA driver's device node there is no GPU, and nothing needs loading.
  const bool driver = std::filesystem::exists("/dev/nvidiactl");
  if (device == "cuda" || (device == "auto" && driver)) {
    const int gpus = driver ? cuda_module().device_count() : 0;
    if (gpus > 0 || device == "cuda") {
      if (gpus == 0) throw RuntimeError("training.device: cuda, but no CUDA device is visible");
      if (local_size > gpus) {
        char host[256] = "?";
        gethostname(host, sizeof host);
        throw RuntimeError(std::string("host ") + host + " runs " + std::to_string(local_size) +
                           " ranks but has " + std::to_string(gpus) +
                           " visible GPU(s): start one rank per GPU");
      }
      return std::unique_ptr<ComputeBackend>(
          cuda_module().make_backend(local_rank, static_cast<int>(precision)));
    }
  }
#else
  (void)local_rank;
  (void)local_size;
  if (device == "cuda")
    throw ConfigError(
        "training.device: cuda, but this build has no CUDA backend (nvcc was not "
        "found when it was configured)");
#endif
  return make_cpu_backend(flush_denormals, cpu_threads, precision);
}

std::unique_ptr<Communicator> make_device_communicator(Communicator& host, ComputeBackend& backend,
                                                       DeviceWorkMonitor* monitor,
                                                       bool even_for_one_rank) {
#ifdef DDP_HAVE_CUDA
  if ((host.size() > 1 || even_for_one_rank) && backend.memory() == MemoryKind::kDevice) {
    const CudaModule& module = cuda_module();
    return std::unique_ptr<Communicator>(module.make_nccl(&host, module.stream(&backend), monitor));
  }
#else
  (void)host;
  (void)backend;
  (void)monitor;
  (void)even_for_one_rank;
#endif
  return nullptr;
}

}  // namespace ddp
