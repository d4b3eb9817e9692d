#pragma once
// The CPU backend's losses that need more than a row at a time of arithmetic (see
// ComputeBackend for their contracts).

#include <cstdint>

#include "backend/backend.h"

namespace ddp::cpu {

LossStats sigmoid_cross_entropy(const float* logits, const float* targets, const float* pos_weight,
                                float* dlogits, float grad_scale, int64_t rows, int64_t cols);

}  // namespace ddp::cpu
