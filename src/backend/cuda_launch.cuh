#pragma once
// Launch shapes shared by the CUDA kernels: 256 threads per block, at most 65,535 blocks, and
// grid-stride loops for everything longer.

#include <cstdint>

namespace ddp::cuda {

constexpr int kThreads = 256;

inline int blocks_for(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 65535 ? (blocks ? blocks : 1) : 65535);
}

// Grid-stride loops: a thread takes elements start(), start() + stride(), ...
__device__ inline int64_t start() { return blockIdx.x * int64_t{blockDim.x} + threadIdx.x; }
__device__ inline int64_t stride() { return int64_t{blockDim.x} * gridDim.x; }

}  // namespace ddp::cuda
