#pragma once
// What the recurrent layers' tests share.

#include <cstdint>
#include <vector>

namespace ddp {

// x (batch, steps, width) with its steps in the other order: what a reverse direction reads.
inline std::vector<float> reversed_steps(const std::vector<float>& x, int64_t batch, int64_t steps,
                                         int64_t width) {
  std::vector<float> out(x.size());
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < steps; ++t)
      for (int64_t f = 0; f < width; ++f)
        out[(b * steps + steps - 1 - t) * width + f] = x[(b * steps + t) * width + f];
  return out;
}

}  // namespace ddp
