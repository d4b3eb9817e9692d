#pragma once

#include <span>
#include <string>

namespace ddp {

// Updates the model's whole flat parameter buffer from its flat gradient buffer in one call.
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  virtual std::string name() const = 0;
  virtual void step(std::span<float> params, std::span<const float> grads, float lr) = 0;
};

}  // namespace ddp
