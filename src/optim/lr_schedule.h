#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ddp {

// The learning rate as a function of the step, after an optional linear warm-up. The decays are
// Keras' LearningRateSchedules (keras.optimizers.schedules), which PyTorch's schedulers match
// where they overlap (step: StepLR, piecewise_constant: MultiStepLR, polynomial: PolynomialLR).
struct LrScheduleSpec {
  // constant, step, cosine, exponential, inverse_time, polynomial, piecewise_constant
  std::string type = "constant";
  double base_lr = 1e-3;
  int64_t warmup_steps = 0;  // linear ramp from base_lr / warmup_steps to base_lr, any type
  int64_t step_size = 1;     // step: multiply by gamma every step_size steps after warm-up
  double gamma = 0.1;
  // cosine and polynomial: the rate reached after decay_steps (cosine: 0 stands for the whole
  // run after warm-up) and kept.
  double min_lr = 0;
  int64_t decay_steps = 0;
  // exponential: base_lr * decay_rate^(t / decay_steps); inverse_time: base_lr / (1 + decay_rate
  // * t / decay_steps); with staircase, t / decay_steps rounded down.
  double decay_rate = 0.5;
  bool staircase = false;
  double power = 1;  // polynomial: (base_lr - min_lr) (1 - t / decay_steps)^power + min_lr
  // piecewise_constant: values[0] up to and including step boundaries[0], then values[1] up to
  // boundaries[1], ..., values.back() after the last boundary (values[0] is base_lr).
  std::vector<int64_t> boundaries = {};
  std::vector<double> values = {};
  int64_t total_steps = 1;  // the whole run (cosine without decay_steps)

  // The largest rate the schedule gives.
  double peak() const;
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
