#pragma once
// One check per CUDA, cuBLAS and NCCL call: a failure throws RuntimeError naming the call, the
// error, file, line and (through the message prefix the caller's tool adds) the rank.

#include <string>

namespace ddp {

[[noreturn]] void throw_gpu_error(const char* library, const std::string& what, const char* call,
                                  const char* file, int line);

}  // namespace ddp

#define cudaCheck(call)                                                                           \
  do {                                                                                            \
    const cudaError_t ddp_status_ = (call);                                                       \
    if (ddp_status_ != cudaSuccess)                                                               \
      ::ddp::throw_gpu_error("CUDA", cudaGetErrorString(ddp_status_), #call, __FILE__, __LINE__); \
  } while (0)

#define cublasCheck(call)                                                                   \
  do {                                                                                      \
    const cublasStatus_t ddp_status_ = (call);                                              \
    if (ddp_status_ != CUBLAS_STATUS_SUCCESS)                                               \
      ::ddp::throw_gpu_error("cuBLAS", cublasGetStatusString(ddp_status_), #call, __FILE__, \
                             __LINE__);                                                     \
  } while (0)

#define ncclCheck(call)                                                                           \
  do {                                                                                            \
    const ncclResult_t ddp_status_ = (call);                                                      \
    if (ddp_status_ != ncclSuccess)                                                               \
      ::ddp::throw_gpu_error("NCCL", ncclGetErrorString(ddp_status_), #call, __FILE__, __LINE__); \
  } while (0)
