#pragma once
// The CPU backend's losses and the weight penalty (see ComputeBackend for their contracts).

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backend/backend.h"

namespace ddp::cpu {

// `exps` is scratch, kept by the caller between calls.
LossStats softmax_cross_entropy(const float* logits, const float* targets, const float* row_weight,
                                TargetKind kind, float* dlogits, float grad_scale, int64_t rows,
                                int64_t cols, std::vector<float>& exps);
LossStats mean_squared_error(const float* pred, const float* targets, const float* row_weight,
                             float* dpred, float grad_scale, int64_t rows, int64_t cols);
LossStats sigmoid_cross_entropy(const float* logits, const float* targets, const float* row_weight,
                                const float* pos_weight, float* dlogits, float grad_scale,
                                int64_t rows, int64_t cols);

double weight_penalty(const float* weights, float* grads, size_t count, float l1, float l2);

}  // namespace ddp::cpu
