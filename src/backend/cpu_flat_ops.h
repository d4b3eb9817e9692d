#pragma once
// The CPU backend's elementwise passes over flat buffers (see ComputeBackend for their contracts),
// on the team's shares of the elements: each element is computed as on one thread, so the bits do
// not depend on the number of threads.

#include <cstddef>

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

}  // namespace ddp::cpu
