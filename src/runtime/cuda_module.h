#pragma once
// Note [CUDA module]: the CUDA backend and the NCCL communicator live in libddp_cuda.so, which is
// loaded only when a GPU is used: linked into every process, cuBLAS and NCCL cost ~200 MB of
// resident memory and a noticeable start-up even for CPU runs. Only builds with CUDA
// (DDP_HAVE_CUDA) have it.

#include "backend/backend.h"
#include "comm/communicator.h"
#include "comm/device_work.h"

namespace ddp {

// The module's entry points (extern "C" in cuda_backend.cu and nccl_communicator.cpp).
struct CudaModule {
  ComputeBackend* (*make_backend)(int device, int precision);  // a MatmulPrecision
  void* (*stream)(ComputeBackend* backend);                    // the backend's compute stream
  int (*device_count)();
  Communicator* (*make_nccl)(Communicator* host, void* stream, DeviceWorkMonitor* monitor);
};

// Loads the module on first use: next to the executable (an installed tree), else where the
// build put it. Throws RuntimeError naming the file and dlerror().
const CudaModule& cuda_module();

}  // namespace ddp
