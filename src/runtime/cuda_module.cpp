#include "runtime/cuda_module.h"

#include <dlfcn.h>

#include <filesystem>
#include <string>

#include "core/error.h"

namespace ddp {
namespace {

template <class Fn>
Fn symbol(void* handle, const char* name) {
  void* address = dlsym(handle, name);
  if (!address) throw RuntimeError(std::string("CUDA module lacks ") + name + ": " + dlerror());
  return reinterpret_cast<Fn>(address);
}

}  // namespace

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
        symbol<ComputeBackend* (*)(int, int)>(handle, "ddp_cuda_make_backend"),
        symbol<void* (*)(ComputeBackend*)>(handle, "ddp_cuda_stream"),
        symbol<int (*)()>(handle, "ddp_cuda_device_count"),
        symbol<Communicator* (*)(Communicator*, void*, DeviceWorkMonitor*)>(
            handle, "ddp_cuda_make_nccl_communicator"),
    };
  }();
  return module;
}

}  // namespace ddp
