#include "backend/device.h"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>

#include "core/error.h"

namespace ddp {
namespace {

#ifdef DDP_HAVE_CUDA
struct CudaModule {
  ComputeBackend* (*make_backend)(int device, bool tf32);
  void* (*stream)(ComputeBackend* backend);
  int (*device_count)();
  Communicator* (*make_nccl)(Communicator* host, void* stream);
};

template <class Fn>
Fn symbol(void* handle, const char* name) {
  void* address = dlsym(handle, name);
  if (!address) throw RuntimeError(std::string("CUDA module lacks ") + name + ": " + dlerror());
  return reinterpret_cast<Fn>(address);
}

// Next to the executable (an installed tree), else where the build put it.
const CudaModule& cuda_module() {
  static const CudaModule module = [] {
    std::error_code ec;
    const auto beside =
        std::filesystem::read_symlink("/proc/self/exe", ec).parent_path() / "libddp_cuda.so";
    const std::string path =
        !ec && std::filesystem::exists(beside) ? beside.string() : std::string(DDP_CUDA_MODULE);
    void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) throw RuntimeError("cannot load the CUDA backend " + path + ": " + dlerror());
    return CudaModule{
        symbol<ComputeBackend* (*)(int, bool)>(handle, "ddp_cuda_make_backend"),
        symbol<void* (*)(ComputeBackend*)>(handle, "ddp_cuda_stream"),
        symbol<int (*)()>(handle, "ddp_cuda_device_count"),
        symbol<Communicator* (*)(Communicator*, void*)>(handle, "ddp_cuda_make_nccl_communicator"),
    };
  }();
  return module;
}
#endif

}  // namespace

std::unique_ptr<ComputeBackend> choose_device(const std::string& device, bool flush_denormals,
                                              bool tf32, int local_rank, int local_size) {
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
      return std::unique_ptr<ComputeBackend>(cuda_module().make_backend(local_rank, tf32));
    }
  }
#else
  (void)tf32;
  (void)local_rank;
  (void)local_size;
  if (device == "cuda")
    throw ConfigError(
        "training.device: cuda, but this build has no CUDA backend (nvcc was not "
        "found when it was configured)");
#endif
  return make_cpu_backend(flush_denormals);
}

std::unique_ptr<Communicator> make_device_communicator(Communicator& host, ComputeBackend& backend,
                                                       bool even_for_one_rank) {
#ifdef DDP_HAVE_CUDA
  if ((host.size() > 1 || even_for_one_rank) && backend.name().rfind("cuda", 0) == 0) {
    const CudaModule& module = cuda_module();
    return std::unique_ptr<Communicator>(module.make_nccl(&host, module.stream(&backend)));
  }
#else
  (void)host;
  (void)backend;
  (void)even_for_one_rank;
#endif
  return nullptr;
}

}  // namespace ddp
