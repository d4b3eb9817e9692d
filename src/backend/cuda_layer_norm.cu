#include "backend/cuda_check.h"
#include "backend/cuda_launch.cuh"
#include "backend/cuda_layer_norm.h"
#include "backend/layer_norm_row.h"

namespace ddp::cuda {
namespace {

// The CPU's arithmetic (layer_norm_row.h), a row per thread.
__global__ void layer_norm_rows_kernel(const float* x, const float* gamma, const float* beta,
                                       float* y, float* stats, int64_t rows, int64_t cols,
                                       float epsilon, bool center) {
  const int64_t r = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (r < rows)
    layer_norm_row(x + r * cols, gamma, beta, y + r * cols, stats + 2 * r, cols, epsilon, center);
}

__global__ void layer_norm_param_grads_kernel(const float* dy, const float* x, const float* stats,
                                              float* dgamma, float* dbeta, int64_t rows,
                                              int64_t cols, bool accumulate) {
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (c >= cols) return;
  float g = accumulate ? dgamma[c] : 0, b = accumulate && dbeta ? dbeta[c] : 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float d = dy[r * cols + c];
    g += d * ((x[r * cols + c] - stats[2 * r]) * stats[2 * r + 1]);
    b += d;
  }
  dgamma[c] = g;
  if (dbeta) dbeta[c] = b;  // null: RMS normalization's, none
}

__global__ void layer_norm_input_grad_kernel(const float* dy, const float* x, const float* gamma,
                                             const float* stats, float* dx, int64_t rows,
                                             int64_t cols, bool center) {
  const int64_t r = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (r < rows)
    layer_norm_row_grad(dy + r * cols, x + r * cols, gamma, stats + 2 * r, dx + r * cols, cols,
                        center);
}

}  // namespace

void layer_norm_forward(const float* x, const float* gamma, const float* beta, float* y,
                        float* stats, int64_t rows, int64_t cols, float epsilon, bool center,
                        cudaStream_t stream) {
  layer_norm_rows_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(x, gamma, beta, y, stats, rows,
                                                                    cols, epsilon, center);
  cudaCheck(cudaGetLastError());
}

// The parameter gradients are queued first: dx may alias dy.
void layer_norm_backward(const float* dy, const float* x, const float* gamma, const float* stats,
                         float* dx, float* dgamma, float* dbeta, int64_t rows, int64_t cols,
                         bool accumulate, bool center, cudaStream_t stream) {
  layer_norm_param_grads_kernel<<<blocks_for(cols), kThreads, 0, stream>>>(
      dy, x, stats, dgamma, dbeta, rows, cols, accumulate);
  cudaCheck(cudaGetLastError());
  if (!dx) return;
  layer_norm_input_grad_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(dy, x, gamma, stats, dx,
                                                                          rows, cols, center);
  cudaCheck(cudaGetLastError());
}

}  // namespace ddp::cuda
