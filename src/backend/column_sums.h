#pragma once

#include <cstdint>

namespace ddp::cpu {

// sums[c] += the sum over r < count of rows[r * stride + c], c < width: a bias's gradient from the
// rows of its output gradient (or from some of its columns). The inner loop runs along a row,
// contiguous, so it vectorizes.
inline void add_column_sums(const float* rows, int64_t count, int64_t width, int64_t stride,
                            float* sums) {
  for (int64_t r = 0; r < count; ++r) {
    const float* row = rows + r * stride;
    for (int64_t c = 0; c < width; ++c) sums[c] += row[c];
  }
}

}  // namespace ddp::cpu
