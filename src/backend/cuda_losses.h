#pragma once
// The CUDA backend's losses and weight penalty (see ComputeBackend for their contracts): for the
// losses, one thread per row writes that row's loss and correct count, which the backend sums on
// the host in row order.

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backend/cuda_scratch.h"

namespace ddp::cuda {

void softmax_cross_entropy(const float* logits, const float* targets, const float* row_weight,
                           bool sparse, float* dlogits, float grad_scale, int64_t rows,
                           int64_t cols, double* row_loss, double* row_correct,
                           cudaStream_t stream);
void mean_squared_error(const float* pred, const float* targets, const float* row_weight,
                        float* dpred, float grad_scale, int64_t rows, int64_t cols,
                        double* row_loss, double* row_correct, cudaStream_t stream);
void sigmoid_cross_entropy(const float* logits, const float* targets, const float* row_weight,
                           const float* pos_weight, float* dlogits, float grad_scale, int64_t rows,
                           int64_t cols, double* row_loss, double* row_correct,
                           cudaStream_t stream);

double weight_penalty(const float* weights, float* grads, size_t count, float l1, float l2,
                      DeviceDoubles& scratch, cudaStream_t stream);

}  // namespace ddp::cuda
