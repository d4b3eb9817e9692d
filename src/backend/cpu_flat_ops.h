#pragma once
// The CPU backend's elementwise passes over flat buffers (see ComputeBackend for their contracts),
// on the team's shares of the elements: each element is computed as on one thread, so the bits do
// not depend on the number of threads.

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "backend/activation_grad.h"
#include "backend/column_sums.h"
#include "backend/cpu_activations.h"
#include "backend/team_shares.h"
#include "core/thread_team.h"

namespace ddp::cpu {

inline void leaky_scale(ThreadTeam& team, const float* sign, const float* values, float* out,
                        size_t count, float slope) {
  split_elements(team, count, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) {
      const float v = values[i];  // read whichever is kept, so that the loop vectorizes
      out[i] = sign[i] > 0 ? v : slope * v;
    }
  });
}

inline void scale_shift(ThreadTeam& team, const float* x, float* y, size_t count, float scale,
                        float shift) {
  split_elements(team, count, [&](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) y[i] = x[i] * scale + shift;
  });
}

inline void add_to(ThreadTeam& team, const float* x, float* y, size_t count) {
  split_elements(team, count, [=](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) y[i] += x[i];
  });
}

// Keras' formula as it writes it (its optimizers' use_ema), the same coefficients in float.
inline void moving_average(ThreadTeam& team, const float* x, float* average, size_t count,
                           float momentum) {
  const float rest = 1 - momentum;
  split_elements(team, count, [=](size_t begin, size_t end) {
    for (size_t i = begin; i < end; ++i) average[i] = momentum * average[i] + rest * x[i];
  });
}

// ComputeBackend::bias_activation_forward and bias_activation_backward. The bias's gradient sums
// the rows on one thread, in row order, so that its bits do not depend on the team's size.
inline void bias_activation(ThreadTeam& team, float* y, const float* b, int64_t rows, int64_t cols,
                            Activation act) {
  by_rows(team, rows, cols, [&](int64_t first, int64_t n) {
    for (int64_t r = first; r < first + n; ++r)
      for (int64_t c = 0; c < cols; ++c) y[r * cols + c] += b[c];
    fused_activation(act, y + first * cols, y + first * cols, static_cast<size_t>(n * cols));
  });
}

inline void bias_activation_grad(ThreadTeam& team, const float* y, float* dy, float* db,
                                 int64_t rows, int64_t cols, Activation act, bool accumulate) {
  split_elements(team, static_cast<size_t>(rows * cols), [&](size_t begin, size_t end) {
    activation_grad(act, y + begin, dy + begin, dy + begin, end - begin);
  });
  if (!accumulate) std::fill(db, db + cols, 0.0f);
  add_column_sums(dy, rows, cols, cols, db);
}

}  // namespace ddp::cpu
