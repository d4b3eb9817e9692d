#pragma once
// The CUDA backend's batch normalization ops (see ComputeBackend for their contracts), queued on
// `stream`. channel_sums adds fixed row blocks in a fixed order (no atomics), so its sums do not
// depend on scheduling: reruns and resumed runs are bit-identical.

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/cuda_scratch.h"

namespace ddp::cuda {

void channel_sums(const float* a, const float* b, const float* shift, double* host_sums,
                  int64_t rows, int64_t channels, DeviceDoubles& scratch, cudaStream_t stream);
void batch_norm_forward(const float* x, float* y, const float* coeffs, int64_t rows,
                        int64_t channels, cudaStream_t stream);
void batch_norm_backward(const float* dy, const float* x, float* dx, const float* coeffs,
                         int64_t rows, int64_t channels, cudaStream_t stream);

}  // namespace ddp::cuda
