#pragma once
// The CPU backend's products of attention and its key mask (see ComputeBackend::batched_matmul
// and mask_keys): each item's product through Eigen, on strided views of the operands.

#include <cstdint>

#include "backend/backend.h"

namespace ddp::cpu {

// Items [first, end) of ComputeBackend::batched_matmul.
void batched_matmul(int64_t first, int64_t end, int64_t m, int64_t n, int64_t k, float alpha,
                    const ComputeBackend::MatrixOperand& a, const ComputeBackend::MatrixOperand& b,
                    const ComputeBackend::MatrixResult& c, bool accumulate);

void mask_keys(float* scores, const float* key_mask, bool causal, int64_t samples, int64_t rows,
               int64_t steps, float value);

}  // namespace ddp::cpu
