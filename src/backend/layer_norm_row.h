#pragma once
// One row of layer normalization (ComputeBackend::layer_norm_forward), forward and input
// gradient: the CPU backend's loops and the CUDA kernels share this arithmetic, so the two differ
// only where the compilers contract operations differently.

#include <cmath>
#include <cstdint>

#include "core/host_device.h"

namespace ddp {

// out = gamma * (in - mean) * inv_std + beta over one row of `cols`; stats = (mean, inv_std).
// Not `center`ed: the mean taken as 0 and no beta (RMS normalization).
DDP_HOST_DEVICE inline void layer_norm_row(const float* in, const float* gamma, const float* beta,
                                           float* out, float* stats, int64_t cols, float epsilon,
                                           bool center) {
  double sum = 0;
  if (center)
    for (int64_t c = 0; c < cols; ++c) sum += in[c];
  const double mean = sum / static_cast<double>(cols);
  double squares = 0;
  for (int64_t c = 0; c < cols; ++c) squares += (in[c] - mean) * (in[c] - mean);
  const auto m = static_cast<float>(mean);
  const auto k = static_cast<float>(1 / sqrt(squares / static_cast<double>(cols) + epsilon));
  stats[0] = m;
  stats[1] = k;
  for (int64_t c = 0; c < cols; ++c) out[c] = gamma[c] * ((in[c] - m) * k) + (center ? beta[c] : 0);
}

// The row's dx = inv_std * (g - mean(g) - x_hat * mean(g x_hat)) with g = dy * gamma and x_hat
// the normalized input, without the mean(g) term where not `center`ed (no mean was taken off);
// out may be dy.
DDP_HOST_DEVICE inline void layer_norm_row_grad(const float* dy, const float* in,
                                                const float* gamma, const float* stats, float* out,
                                                int64_t cols, bool center) {
  const float m = stats[0], k = stats[1];
  double g_sum = 0, gx_sum = 0;
  for (int64_t c = 0; c < cols; ++c) {
    const double g = dy[c] * gamma[c];
    g_sum += g;
    gx_sum += g * ((in[c] - m) * k);
  }
  const auto g_mean = center ? static_cast<float>(g_sum / static_cast<double>(cols)) : 0.0f;
  const auto gx_mean = static_cast<float>(gx_sum / static_cast<double>(cols));
  for (int64_t c = 0; c < cols; ++c)
    out[c] = k * (dy[c] * gamma[c] - g_mean - (in[c] - m) * k * gx_mean);
}

}  // namespace ddp
