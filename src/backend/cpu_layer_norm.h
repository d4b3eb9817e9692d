#pragma once
// The CPU backend's layer normalization (see ComputeBackend::layer_norm_forward): rows outer,
// features inner and contiguous. Each row's sums are in double; the parameter gradients are sums
// over the rows in their order, column by column, so a share of the columns or rows on another
// thread computes the same bits (Note [threads per rank]).

#include <cstdint>

namespace ddp::cpu {

void layer_norm_rows(const float* x, const float* gamma, const float* beta, float* y, float* stats,
                     int64_t rows, int64_t cols, float epsilon, bool center);
// dx of `rows` rows; dx may alias dy.
void layer_norm_input_grad(const float* dy, const float* x, const float* gamma, const float* stats,
                           float* dx, int64_t rows, int64_t cols, bool center);
// Columns [c0, c1) of dgamma and dbeta (null: RMS normalization's, none) over all `rows` rows.
void layer_norm_param_grads(const float* dy, const float* x, const float* stats, float* dgamma,
                            float* dbeta, int64_t rows, int64_t cols, int64_t c0, int64_t c1,
                            bool accumulate);

}  // namespace ddp::cpu
