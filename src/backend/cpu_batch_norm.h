#pragma once
// The CPU backend's batch normalization ops (see ComputeBackend for their contracts): rows outer,
// channels inner and contiguous, so the compiler vectorizes along the channels.

#include <cstdint>

namespace ddp::cpu {

void channel_sums(const float* a, const float* b, const float* shift, double* host_sums,
                  int64_t rows, int64_t channels);
void batch_norm_forward(const float* x, float* y, const float* coeffs, int64_t rows,
                        int64_t channels);
void batch_norm_backward(const float* dy, const float* x, float* dx, const float* coeffs,
                         int64_t rows, int64_t channels);

}  // namespace ddp::cpu
