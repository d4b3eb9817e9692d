#pragma once
// The CUDA backend's window ops and dropout (see ComputeBackend for their contracts), queued on
// `stream`. Every kernel gathers (one thread per output element, no atomics), so results do not
// depend on scheduling: reruns and resumed runs are bit-identical.

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/window2d.h"

namespace ddp::cuda {

void im2col(const float* x, float* cols, int64_t batch, const Window2d& w, cudaStream_t stream);
void col2im(const float* cols, float* dx, int64_t batch, const Window2d& w, cudaStream_t stream);
void max_pool_forward(const float* x, float* y, int64_t batch, const Window2d& w,
                      cudaStream_t stream);
void max_pool_backward(const float* x, const float* y, const float* dy, float* dx, int64_t batch,
                       const Window2d& w, cudaStream_t stream);
void avg_pool_forward(const float* x, const float* mask, float* y, int64_t batch, const Window2d& w,
                      bool mean, cudaStream_t stream);
void avg_pool_backward(const float* mask, const float* dy, float* dx, int64_t batch,
                       const Window2d& w, bool mean, cudaStream_t stream);
void dropout(const float* in, float* out, int64_t rows, int64_t row_size, int64_t steps, float rate,
             uint64_t key, int64_t first_row, cudaStream_t stream);

}  // namespace ddp::cuda
