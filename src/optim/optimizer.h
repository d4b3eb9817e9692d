#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "backend/backend.h"

namespace ddp {

// One buffer of optimizer state, as large as the flat parameter buffer, in backend memory.
struct StateTensor {
  std::string name;  // "m", "v", "velocity"
  std::span<float> data;
};

// Updates the model's whole flat parameter buffer from its flat gradient buffer in one call.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::string name() const = 0;
  // With GradCheck::kFinite, returns false when a gradient was NaN or infinite (see
  // ComputeBackend::sgd_update); true otherwise.
  virtual bool step(std::span<float> params, std::span<const float> grads, float lr,
                    GradCheck check) = 0;

  // What a checkpoint must hold to continue exactly: the state buffers and the step count.
  virtual std::vector<StateTensor> state() = 0;
  int64_t steps_taken() const { return steps_; }
  void set_steps_taken(int64_t steps) { steps_ = steps; }

 protected:
  int64_t steps_ = 0;
};

}  // namespace ddp
