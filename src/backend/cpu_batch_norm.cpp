#include "backend/cpu_batch_norm.h"

#include <algorithm>

namespace ddp::cpu {

// Doubles, so that sums over a whole batch of images (rows = batch * height * width, 50,176 for
// 64 Fashion-MNIST images) keep the variance's small difference of large terms exact enough.
void channel_sums(const float* a, const float* b, const float* shift, double* host_sums,
                  int64_t rows, int64_t channels) {
  double* sum = host_sums;                 // (channels)
  double* product = host_sums + channels;  // (channels)
  std::fill(host_sums, host_sums + 2 * channels, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* ar = a + r * channels;
    const float* br = b + r * channels;
    for (int64_t c = 0; c < channels; ++c) {
      const double value = ar[c];
      sum[c] += value;
      product[c] += value * (static_cast<double>(br[c]) - static_cast<double>(shift[c]));
    }
  }
}

void channel_sums_on(ThreadTeam& team, std::vector<double>& partial_sums, const float* a,
                     const float* b, const float* shift, double* host_sums, int64_t rows,
                     int64_t channels) {
  constexpr int64_t kPieceRows = 4096;
  const int64_t pieces = (rows + kPieceRows - 1) / kPieceRows;
  if (pieces <= 1) return channel_sums(a, b, shift, host_sums, rows, channels);
  partial_sums.resize(static_cast<size_t>(pieces * 2 * channels));
  team.run_pieces(rows, kPieceRows, [&](int, int64_t first, int64_t count) {
    channel_sums(a + first * channels, b + first * channels, shift,
                 partial_sums.data() + first / kPieceRows * 2 * channels, count, channels);
  });
  for (int64_t i = 0; i < 2 * channels; ++i) {
    double sum = 0;
    for (int64_t p = 0; p < pieces; ++p) sum += partial_sums[p * 2 * channels + i];
    host_sums[i] = sum;
  }
}

void batch_norm_forward(const float* x, float* y, const float* coeffs, int64_t rows,
                        int64_t channels) {
  const float* scale = coeffs;
  const float* offset = coeffs + channels;
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * channels;
    float* yr = y + r * channels;
    for (int64_t c = 0; c < channels; ++c) yr[c] = xr[c] * scale[c] + offset[c];
  }
}

void batch_norm_backward(const float* dy, const float* x, float* dx, const float* coeffs,
                         int64_t rows, int64_t channels) {
  const float* k_dy = coeffs;
  const float* k_x = coeffs + channels;
  const float* k_1 = coeffs + 2 * channels;
  for (int64_t r = 0; r < rows; ++r) {
    const float* dyr = dy + r * channels;
    const float* xr = x + r * channels;
    float* dxr = dx + r * channels;
    for (int64_t c = 0; c < channels; ++c) dxr[c] = dyr[c] * k_dy[c] + xr[c] * k_x[c] + k_1[c];
  }
}

}  // namespace ddp::cpu
