#include "optim/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace ddp {

double LrScheduleSpec::peak() const {
  return values.empty() ? base_lr
                        : std::max(base_lr, *std::max_element(values.begin(), values.end()));
}

float LrSchedule::at(int64_t completed_steps) const {
  const LrScheduleSpec& s = spec_;
  const int64_t warmup = s.warmup_steps;
  if (completed_steps < warmup)
    return static_cast<float>(s.base_lr * static_cast<double>(completed_steps + 1) /
                              static_cast<double>(warmup));
  const int64_t after = completed_steps - warmup;
  double rate = s.base_lr;
  if (s.type == "step") {
    rate = s.base_lr * std::pow(s.gamma, static_cast<double>(after / s.step_size));
  } else if (s.type == "cosine") {
    const int64_t span =
        s.decay_steps > 0 ? s.decay_steps : std::max<int64_t>(s.total_steps - warmup, 1);
    const double progress = std::min(static_cast<double>(after) / static_cast<double>(span), 1.0);
    rate = s.min_lr + (s.base_lr - s.min_lr) * 0.5 * (1 + std::cos(std::numbers::pi * progress));
  } else if (s.type == "exponential" || s.type == "inverse_time") {
    double periods = static_cast<double>(after) / static_cast<double>(s.decay_steps);
    if (s.staircase) periods = std::floor(periods);
    rate = s.type == "exponential" ? s.base_lr * std::pow(s.decay_rate, periods)
                                   : s.base_lr / (1 + s.decay_rate * periods);
  } else if (s.type == "polynomial") {
    const double progress =
        static_cast<double>(std::min(after, s.decay_steps)) / static_cast<double>(s.decay_steps);
    rate = (s.base_lr - s.min_lr) * std::pow(1 - progress, s.power) + s.min_lr;
  } else if (s.type == "piecewise_constant") {
    const auto passed = std::lower_bound(s.boundaries.begin(), s.boundaries.end(), after);
    rate = s.values[static_cast<size_t>(passed - s.boundaries.begin())];
  }
  return static_cast<float>(rate);
}

}  // namespace ddp
