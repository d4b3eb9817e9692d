#pragma once
// The CUDA backend's layer normalization (see ComputeBackend::layer_norm_forward), queued on
// `stream`: one thread per row for the rows' sums, one per column for the parameter gradients.

#include <cuda_runtime.h>

#include <cstdint>

namespace ddp::cuda {

void layer_norm_forward(const float* x, const float* gamma, const float* beta, float* y,
                        float* stats, int64_t rows, int64_t cols, float epsilon, bool center,
                        cudaStream_t stream);
void layer_norm_backward(const float* dy, const float* x, const float* gamma, const float* stats,
                         float* dx, float* dgamma, float* dbeta, int64_t rows, int64_t cols,
                         bool accumulate, bool center, cudaStream_t stream);

}  // namespace ddp::cuda
