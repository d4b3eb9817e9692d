#pragma once

#include <cstdint>
#include <string>

namespace ddp {

struct LrScheduleSpec {
  std::string type = "constant";  // constant, step, cosine
  double base_lr = 1e-3;
  int64_t warmup_steps = 0;  // linear ramp from base_lr / warmup_steps to base_lr, any type
  int64_t step_size = 1;     // step: multiply by gamma every step_size steps after warm-up
  double gamma = 0.1;
  double min_lr = 0;        // cosine: value reached at total_steps
  int64_t total_steps = 1;  // cosine: length of the whole run
};

class LrSchedule {
 public:
  explicit LrSchedule(const LrScheduleSpec& spec) : spec_(spec) {}
  // Learning rate of the optimizer step that follows `completed_steps` earlier steps.
  float at(int64_t completed_steps) const;

 private:
  LrScheduleSpec spec_;
};

}  // namespace ddp
