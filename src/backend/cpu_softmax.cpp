#include "backend/cpu_softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/simd.h"

namespace ddp::cpu {

#ifdef DDP_SIMD_TILES
ExpRow exp_minus_max(const float* z, int64_t cols, float* exps) {
  using namespace simd;
  constexpr float kLowest = -std::numeric_limits<float>::infinity();
  Vec maxes = broadcast(kLowest);
  for (int64_t c = 0; c < cols; c += kLanes) {
    maxes = max(maxes, load_or(z + c, first_lanes(cols - c), kLowest));
  }
  const float row_max = reduce_max(maxes);
  const Vec shift = broadcast(row_max);
  int64_t argmax = -1;
  Vec sums = zero();
  for (int64_t c = 0; c < cols; c += kLanes) {
    const Mask lanes = first_lanes(cols - c);
    const bool whole = cols - c >= kLanes;
    const Vec logits = load_edge(z + c, lanes, whole);
    if (argmax < 0) {
      const int lane = first_lane(both(equal(logits, shift), lanes));
      if (lane >= 0) argmax = c + lane;
    }
    const Vec e = keep(lanes, exp(sub(logits, shift)));
    store_edge(exps + c, lanes, whole, e);
    sums = add(sums, e);
  }
  return {row_max, std::max<int64_t>(argmax, 0), reduce_add(sums)};
}
#else
ExpRow exp_minus_max(const float* z, int64_t cols, float* exps) {
  // The max by value: exps may be z (an in-place softmax), whose max the loop overwrites.
  const float* top = std::max_element(z, z + cols);
  const float max = *top;
  const int64_t argmax = top - z;
  double sum = 0;
  for (int64_t c = 0; c < cols; ++c) sum += (exps[c] = std::exp(z[c] - max));
  return {max, argmax, sum};
}
#endif

void softmax_rows(const float* x, float* y, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* out = y + r * cols;
    const auto inv_sum = static_cast<float>(1 / exp_minus_max(x + r * cols, cols, out).sum);
    for (int64_t c = 0; c < cols; ++c) out[c] *= inv_sum;
  }
}

void softmax_backward_rows(const float* y, const float* dy, float* dx, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = y + r * cols;
    const float* g = dy + r * cols;
    float dot = 0;
    for (int64_t c = 0; c < cols; ++c) dot += p[c] * g[c];
    float* o = dx + r * cols;
    for (int64_t c = 0; c < cols; ++c) o[c] = p[c] * (g[c] - dot);
  }
}

}  // namespace ddp::cpu
