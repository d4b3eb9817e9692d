#pragma once
// The CPU backend's losses that need more than a row at a time of arithmetic (see
// ComputeBackend for their contracts).

#include <cstddef>
#include <cstdint>

#include "backend/backend.h"

namespace ddp::cpu {

LossStats sigmoid_cross_entropy(const float* logits, const float* targets, const float* pos_weight,
                                float* dlogits, float grad_scale, int64_t rows, int64_t cols);

double weight_penalty(const float* weights, float* grads, size_t count, float l1, float l2);

}  // namespace ddp::cpu
