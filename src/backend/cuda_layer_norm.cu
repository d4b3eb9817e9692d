#include "backend/cuda_check.h"
#include "backend/cuda_launch.cuh"
#include "backend/cuda_layer_norm.h"

namespace ddp::cuda {
namespace {

// The same arithmetic as the CPU's (cpu_layer_norm.cpp), a row per thread.
__global__ void layer_norm_rows_kernel(const float* x, const float* gamma, const float* beta,
                                       float* y, float* stats, int64_t rows, int64_t cols,
                                       float epsilon) {
  const int64_t r = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (r >= rows) return;
  const float* in = x + r * cols;
  double sum = 0;
  for (int64_t c = 0; c < cols; ++c) sum += in[c];
  const double mean = sum / static_cast<double>(cols);
  double squares = 0;
  for (int64_t c = 0; c < cols; ++c) squares += (in[c] - mean) * (in[c] - mean);
  const auto m = static_cast<float>(mean);
  const auto k = static_cast<float>(1 / sqrt(squares / static_cast<double>(cols) + epsilon));
  stats[2 * r] = m;
  stats[2 * r + 1] = k;
  float* out = y + r * cols;
  for (int64_t c = 0; c < cols; ++c) out[c] = gamma[c] * ((in[c] - m) * k) + beta[c];
}

__global__ void layer_norm_param_grads_kernel(const float* dy, const float* x, const float* stats,
                                              float* dgamma, float* dbeta, int64_t rows,
                                              int64_t cols, bool accumulate) {
  const int64_t c = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (c >= cols) return;
  float g = accumulate ? dgamma[c] : 0, b = accumulate ? dbeta[c] : 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float d = dy[r * cols + c];
    g += d * ((x[r * cols + c] - stats[2 * r]) * stats[2 * r + 1]);
    b += d;
  }
  dgamma[c] = g;
  dbeta[c] = b;
}

__global__ void layer_norm_input_grad_kernel(const float* dy, const float* x, const float* gamma,
                                             const float* stats, float* dx, int64_t rows,
                                             int64_t cols) {
  const int64_t r = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (r >= rows) return;
  const float* d = dy + r * cols;
  const float* in = x + r * cols;
  const float m = stats[2 * r], k = stats[2 * r + 1];
  double g_sum = 0, gx_sum = 0;
  for (int64_t c = 0; c < cols; ++c) {
    const double g = d[c] * gamma[c];
    g_sum += g;
    gx_sum += g * ((in[c] - m) * k);
  }
  const auto g_mean = static_cast<float>(g_sum / static_cast<double>(cols));
  const auto gx_mean = static_cast<float>(gx_sum / static_cast<double>(cols));
  float* out = dx + r * cols;
  for (int64_t c = 0; c < cols; ++c)
    out[c] = k * (d[c] * gamma[c] - g_mean - (in[c] - m) * k * gx_mean);
}

}  // namespace

void layer_norm_forward(const float* x, const float* gamma, const float* beta, float* y,
                        float* stats, int64_t rows, int64_t cols, float epsilon,
                        cudaStream_t stream) {
  layer_norm_rows_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(x, gamma, beta, y, stats, rows,
                                                                    cols, epsilon);
  cudaCheck(cudaGetLastError());
}

// The parameter gradients are queued first: dx may alias dy.
void layer_norm_backward(const float* dy, const float* x, const float* gamma, const float* stats,
                         float* dx, float* dgamma, float* dbeta, int64_t rows, int64_t cols,
                         bool accumulate, cudaStream_t stream) {
  layer_norm_param_grads_kernel<<<blocks_for(cols), kThreads, 0, stream>>>(
      dy, x, stats, dgamma, dbeta, rows, cols, accumulate);
  cudaCheck(cudaGetLastError());
  if (!dx) return;
  layer_norm_input_grad_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(dy, x, gamma, stats, dx,
                                                                          rows, cols);
  cudaCheck(cudaGetLastError());
}

}  // namespace ddp::cuda
