#include "backend/cpu_layer_norm.h"

#include "backend/layer_norm_row.h"

namespace ddp::cpu {

void layer_norm_rows(const float* x, const float* gamma, const float* beta, float* y, float* stats,
                     int64_t rows, int64_t cols, float epsilon, bool center) {
  for (int64_t r = 0; r < rows; ++r)
    layer_norm_row(x + r * cols, gamma, beta, y + r * cols, stats + 2 * r, cols, epsilon, center);
}

void layer_norm_input_grad(const float* dy, const float* x, const float* gamma, const float* stats,
                           float* dx, int64_t rows, int64_t cols, bool center) {
  for (int64_t r = 0; r < rows; ++r)
    layer_norm_row_grad(dy + r * cols, x + r * cols, gamma, stats + 2 * r, dx + r * cols, cols,
                        center);
}

void layer_norm_param_grads(const float* dy, const float* x, const float* stats, float* dgamma,
                            float* dbeta, int64_t rows, int64_t cols, int64_t c0, int64_t c1,
                            bool accumulate) {
  if (!accumulate)
    for (int64_t c = c0; c < c1; ++c) {
      dgamma[c] = 0;
      if (dbeta) dbeta[c] = 0;
    }
  for (int64_t r = 0; r < rows; ++r) {
    const float* d = dy + r * cols;
    const float* in = x + r * cols;
    const float m = stats[2 * r], k = stats[2 * r + 1];
    for (int64_t c = c0; c < c1; ++c) {
      dgamma[c] += d[c] * ((in[c] - m) * k);
      if (dbeta) dbeta[c] += d[c];
    }
  }
}

}  // namespace ddp::cpu
