#pragma once
// The CUDA backend's Embedding (see ComputeBackend::embedding_forward and embedding_backward).
// Each launches on `stream` and returns without waiting.

#include <cuda_runtime.h>

#include <cstdint>

namespace ddp::cuda {

void embedding_forward(const float* ids, const float* table, float* y, int64_t count, int64_t dim,
                       cudaStream_t stream);
// The rows are added with atomics, in no fixed order: a rank's table gradient may differ in its
// last bits from run to run (the ranks' sum, and so the replicas, stay identical).
void embedding_backward(const float* ids, const float* dy, float* dtable, int64_t count,
                        int64_t vocabulary, int64_t dim, bool accumulate, cudaStream_t stream);

}  // namespace ddp::cuda
