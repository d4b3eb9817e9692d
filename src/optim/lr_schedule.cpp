#include "optim/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace ddp {

float LrSchedule::at(int64_t completed_steps) const {
  const int64_t warmup = spec_.warmup_steps;
  if (completed_steps < warmup)
    return static_cast<float>(spec_.base_lr * static_cast<double>(completed_steps + 1) /
                              static_cast<double>(warmup));
  const int64_t after = completed_steps - warmup;
  if (spec_.type == "step")
    return static_cast<float>(spec_.base_lr *
                              std::pow(spec_.gamma, static_cast<double>(after / spec_.step_size)));
  if (spec_.type == "cosine") {
    const double span = static_cast<double>(std::max<int64_t>(spec_.total_steps - warmup, 1));
    const double progress = std::min(static_cast<double>(after) / span, 1.0);
    return static_cast<float>(spec_.min_lr + (spec_.base_lr - spec_.min_lr) * 0.5 *
                                                 (1 + std::cos(std::numbers::pi * progress)));
  }
  return static_cast<float>(spec_.base_lr);
}

}  // namespace ddp
