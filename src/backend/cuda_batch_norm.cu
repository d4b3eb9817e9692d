#include "backend/cuda_batch_norm.h"
#include "backend/cuda_check.h"
#include "backend/cuda_launch.cuh"

namespace ddp::cuda {
namespace {

constexpr int kChannelTile = 32;  // threads of a block along the channels (coalesced reads)
constexpr int kRowLanes = 8;      // threads of a block along the rows
constexpr int kRowBlocks = 64;    // blocks along the rows: partial sums per channel

// Block (x, y) sums rows y * kRowLanes + lane, stepping by kRowBlocks * kRowLanes, of channels
// [x * kChannelTile, ...): partial (kRowBlocks, 2, channels).
__global__ void channel_partial_sums_kernel(const float* a, const float* b, const float* shift,
                                            double* partial, int64_t rows, int64_t channels) {
  __shared__ double lanes[2][kRowLanes][kChannelTile];
  const int64_t c = blockIdx.x * int64_t{kChannelTile} + threadIdx.x;
  double sum = 0, product = 0;
  if (c < channels) {
    const double s = shift[c];
    for (int64_t r = blockIdx.y * int64_t{kRowLanes} + threadIdx.y; r < rows;
         r += int64_t{gridDim.y} * kRowLanes) {
      const double value = a[r * channels + c];
      sum += value;
      product += value * (static_cast<double>(b[r * channels + c]) - s);
    }
  }
  lanes[0][threadIdx.y][threadIdx.x] = sum;
  lanes[1][threadIdx.y][threadIdx.x] = product;
  __syncthreads();
  if (threadIdx.y != 0 || c >= channels) return;
  for (int lane = 1; lane < kRowLanes; ++lane) {
    sum += lanes[0][lane][threadIdx.x];
    product += lanes[1][lane][threadIdx.x];
  }
  double* out = partial + blockIdx.y * 2 * channels;
  out[c] = sum;
  out[channels + c] = product;
}

// One thread per value: the row blocks' partials, in block order.
__global__ void channel_total_kernel(double* partial, int64_t values, int blocks) {
  for (int64_t i = start(); i < values; i += stride()) {
    double total = partial[i];
    for (int block = 1; block < blocks; ++block) total += partial[block * values + i];
    partial[i] = total;
  }
}

__global__ void batch_norm_forward_kernel(const float* x, float* y, const float* coeffs, int64_t n,
                                          int64_t channels) {
  for (int64_t i = start(); i < n; i += stride()) {
    const int64_t c = i % channels;
    y[i] = x[i] * coeffs[c] + coeffs[channels + c];
  }
}

__global__ void batch_norm_backward_kernel(const float* dy, const float* x, float* dx,
                                           const float* coeffs, int64_t n, int64_t channels) {
  for (int64_t i = start(); i < n; i += stride()) {
    const int64_t c = i % channels;
    dx[i] = dy[i] * coeffs[c] + x[i] * coeffs[channels + c] + coeffs[2 * channels + c];
  }
}

}  // namespace

void channel_sums(const float* a, const float* b, const float* shift, double* host_sums,
                  int64_t rows, int64_t channels, DeviceDoubles& scratch, cudaStream_t stream) {
  const int64_t values = 2 * channels;
  double* partial = scratch.reserve(static_cast<size_t>(kRowBlocks * values));
  const dim3 grid(static_cast<unsigned>((channels + kChannelTile - 1) / kChannelTile), kRowBlocks);
  channel_partial_sums_kernel<<<grid, dim3(kChannelTile, kRowLanes), 0, stream>>>(
      a, b, shift, partial, rows, channels);
  cudaCheck(cudaGetLastError());
  channel_total_kernel<<<blocks_for(values), kThreads, 0, stream>>>(partial, values, kRowBlocks);
  cudaCheck(cudaGetLastError());
  cudaCheck(cudaMemcpyAsync(host_sums, partial, static_cast<size_t>(values) * sizeof(double),
                            cudaMemcpyDeviceToHost, stream));
  cudaCheck(cudaStreamSynchronize(stream));
}

void batch_norm_forward(const float* x, float* y, const float* coeffs, int64_t rows,
                        int64_t channels, cudaStream_t stream) {
  batch_norm_forward_kernel<<<blocks_for(rows * channels), kThreads, 0, stream>>>(
      x, y, coeffs, rows * channels, channels);
  cudaCheck(cudaGetLastError());
}

void batch_norm_backward(const float* dy, const float* x, float* dx, const float* coeffs,
                         int64_t rows, int64_t channels, cudaStream_t stream) {
  batch_norm_backward_kernel<<<blocks_for(rows * channels), kThreads, 0, stream>>>(
      dy, x, dx, coeffs, rows * channels, channels);
  cudaCheck(cudaGetLastError());
}

}  // namespace ddp::cuda
