#include "backend/cuda_check.h"
#include "backend/cuda_embedding.h"
#include "backend/cuda_launch.cuh"

namespace ddp::cuda {
namespace {

__global__ void gather_kernel(const float* ids, const float* table, float* y, int64_t n,
                              int64_t dim) {
  for (int64_t e = start(); e < n; e += stride()) {
    const auto id = static_cast<int64_t>(ids[e / dim]);
    y[e] = table[id * dim + e % dim];
  }
}

__global__ void scatter_add_kernel(const float* ids, const float* dy, float* dtable, int64_t n,
                                   int64_t dim) {
  for (int64_t e = start(); e < n; e += stride()) {
    const auto id = static_cast<int64_t>(ids[e / dim]);
    atomicAdd(dtable + id * dim + e % dim, dy[e]);
  }
}

}  // namespace

void embedding_forward(const float* ids, const float* table, float* y, int64_t count, int64_t dim,
                       cudaStream_t stream) {
  gather_kernel<<<blocks_for(count * dim), kThreads, 0, stream>>>(ids, table, y, count * dim, dim);
  cudaCheck(cudaGetLastError());
}

void embedding_backward(const float* ids, const float* dy, float* dtable, int64_t count,
                        int64_t vocabulary, int64_t dim, bool accumulate, cudaStream_t stream) {
  if (!accumulate)
    cudaCheck(
        cudaMemsetAsync(dtable, 0, static_cast<size_t>(vocabulary * dim) * sizeof(float), stream));
  if (count == 0) return;
  scatter_add_kernel<<<blocks_for(count * dim), kThreads, 0, stream>>>(ids, dy, dtable, count * dim,
                                                                       dim);
  cudaCheck(cudaGetLastError());
}

}  // namespace ddp::cuda
