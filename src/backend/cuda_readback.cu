#include "backend/cuda_check.h"
#include "backend/cuda_launch.cuh"
#include "backend/cuda_readback.h"

namespace ddp::cuda {
namespace {

// One block: each thread sums its rows in order, then a fixed tree, so a batch's sums do not
// depend on scheduling.
__global__ void add_row_sums_kernel(const double* row_loss, const double* row_correct, int64_t rows,
                                    double* sums) {
  __shared__ double loss[kThreads], correct[kThreads];
  double l = 0, c = 0;
  for (int64_t r = threadIdx.x; r < rows; r += kThreads) {
    l += row_loss[r];
    c += row_correct[r];
  }
  loss[threadIdx.x] = l;
  correct[threadIdx.x] = c;
  __syncthreads();
  for (int half = kThreads / 2; half > 0; half /= 2) {
    if (static_cast<int>(threadIdx.x) < half) {
      loss[threadIdx.x] += loss[threadIdx.x + half];
      correct[threadIdx.x] += correct[threadIdx.x + half];
    }
    __syncthreads();
  }
  if (threadIdx.x == 0) {
    sums[0] += loss[0];
    sums[1] += correct[0];
  }
}

}  // namespace

DeviceReadback::DeviceReadback() {
  cudaCheck(cudaMalloc(&sums_, 2 * sizeof(double)));
  cudaCheck(cudaMemset(sums_, 0, 2 * sizeof(double)));
  cudaCheck(cudaMalloc(&flag_, sizeof(int)));
  cudaCheck(cudaMemset(flag_, 0, sizeof(int)));
  cudaCheck(cudaMallocHost(&host_sums_, 2 * sizeof(double)));
  cudaCheck(cudaMallocHost(&host_flag_, sizeof(int)));
  cudaCheck(cudaEventCreateWithFlags(&sums_copied_, cudaEventDisableTiming));
  cudaCheck(cudaEventCreateWithFlags(&flag_copied_, cudaEventDisableTiming));
}

DeviceReadback::~DeviceReadback() {
  cudaEventDestroy(sums_copied_);
  cudaEventDestroy(flag_copied_);
  cudaFreeHost(host_sums_);
  cudaFreeHost(host_flag_);
  cudaFree(sums_);
  cudaFree(flag_);
}

void DeviceReadback::hold_loss(const double* row_loss, const double* row_correct, int64_t rows,
                               cudaStream_t stream) {
  add_row_sums_kernel<<<1, kThreads, 0, stream>>>(row_loss, row_correct, rows, sums_);
  cudaCheck(cudaGetLastError());
  cudaCheck(cudaMemcpyAsync(host_sums_, sums_, 2 * sizeof(double), cudaMemcpyDeviceToHost, stream));
  cudaCheck(cudaEventRecord(sums_copied_, stream));
  sums_held_ = true;
}

void DeviceReadback::flag_queued(cudaStream_t stream) {
  cudaCheck(cudaMemcpyAsync(host_flag_, flag_, sizeof(int), cudaMemcpyDeviceToHost, stream));
  cudaCheck(cudaEventRecord(flag_copied_, stream));
  flag_held_ = true;
}

LossStats DeviceReadback::take_loss_stats(cudaStream_t stream) {
  if (!sums_held_) return {};
  cudaCheck(cudaEventSynchronize(sums_copied_));
  const LossStats stats{.loss_sum = host_sums_[0], .correct = host_sums_[1]};
  cudaCheck(cudaMemsetAsync(sums_, 0, 2 * sizeof(double), stream));
  sums_held_ = false;
  return stats;
}

bool DeviceReadback::take_nonfinite(cudaStream_t stream) {
  if (!flag_held_) return false;
  cudaCheck(cudaEventSynchronize(flag_copied_));
  const bool seen = *host_flag_ != 0;
  cudaCheck(cudaMemsetAsync(flag_, 0, sizeof(int), stream));
  flag_held_ = false;
  return seen;
}

}  // namespace ddp::cuda
