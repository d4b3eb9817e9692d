#pragma once
// Note [vectorized softmax]: the exponentials of softmax and of softmax cross-entropy, a row at a
// time. One libm expf per logit, std::max_element and std::log took 10% of the seed workload's
// step (W1: 32 rows of 10 classes; perf on an AMD EPYC Zen 4); a row of up to 16 (AVX-512) or 8
// (AVX2) logits is one vector here, with simd::exp's polynomial in place of libm's.

#include <cstdint>

namespace ddp::cpu {

struct ExpRow {
  float max;       // the row's largest logit
  int64_t argmax;  // its first index (0 if none equals the max, as a NaN can make it)
  double sum;      // of the exps
};

// exps[c] = e^(z[c] - max) for c < cols, z one row (cols), exps (cols); exps may be z.
ExpRow exp_minus_max(const float* z, int64_t cols, float* exps);

// Row-wise softmax of x (rows, cols) into y (rows, cols).
void softmax_rows(const float* x, float* y, int64_t rows, int64_t cols);
// Its input gradient dx = y * (dy - sum(y * dy)) per row, from its output y.
void softmax_backward_rows(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols);

}  // namespace ddp::cpu
