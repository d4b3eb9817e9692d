#include "backend/cpu_layer_norm.h"

#include <cmath>

namespace ddp::cpu {

void layer_norm_rows(const float* x, const float* gamma, const float* beta, float* y, float* stats,
                     int64_t rows, int64_t cols, float epsilon) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x + r * cols;
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c) sum += in[c];
    const double mean = sum / static_cast<double>(cols);
    double squares = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double d = in[c] - mean;
      squares += d * d;
    }
    const auto m = static_cast<float>(mean);
    const auto k = static_cast<float>(1 / std::sqrt(squares / static_cast<double>(cols) + epsilon));
    stats[2 * r] = m;
    stats[2 * r + 1] = k;
    float* out = y + r * cols;
    for (int64_t c = 0; c < cols; ++c) out[c] = gamma[c] * ((in[c] - m) * k) + beta[c];
  }
}

// dx = inv_std * (g - mean(g) - x_hat * mean(g x_hat)) with g = dy * gamma, x_hat the normalized x.
void layer_norm_input_grad(const float* dy, const float* x, const float* gamma, const float* stats,
                           float* dx, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* d = dy + r * cols;
    const float* in = x + r * cols;
    const float m = stats[2 * r], k = stats[2 * r + 1];
    double g_sum = 0, gx_sum = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const double g = d[c] * gamma[c];
      g_sum += g;
      gx_sum += g * ((in[c] - m) * k);
    }
    const auto g_mean = static_cast<float>(g_sum / static_cast<double>(cols));
    const auto gx_mean = static_cast<float>(gx_sum / static_cast<double>(cols));
    float* out = dx + r * cols;
    for (int64_t c = 0; c < cols; ++c)
      out[c] = k * (d[c] * gamma[c] - g_mean - (in[c] - m) * k * gx_mean);
  }
}

void layer_norm_param_grads(const float* dy, const float* x, const float* stats, float* dgamma,
                            float* dbeta, int64_t rows, int64_t cols, int64_t c0, int64_t c1,
                            bool accumulate) {
  if (!accumulate)
    for (int64_t c = c0; c < c1; ++c) dgamma[c] = dbeta[c] = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const float* d = dy + r * cols;
    const float* in = x + r * cols;
    const float m = stats[2 * r], k = stats[2 * r + 1];
    for (int64_t c = c0; c < c1; ++c) {
      dgamma[c] += d[c] * ((in[c] - m) * k);
      dbeta[c] += d[c];
    }
  }
}

}  // namespace ddp::cpu
