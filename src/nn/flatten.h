#pragma once

#include "nn/layer.h"

namespace ddp {

// Reinterprets (batch, d1, d2, ...) as (batch, d1*d2*...); row-major storage makes it free.
class Flatten final : public Layer {
 public:
  explicit Flatten(const Shape& input) : output_({input.numel()}) {}

  std::string type_name() const override { return "Flatten"; }
  Shape output_shape() const override { return output_; }
  bool aliases_input() const override { return true; }
  void forward(ComputeBackend&, const float*, float*, int64_t) override {}
  void backward(ComputeBackend&, const float*, const float*, float*, float*, int64_t,
                bool) override {}

 private:
  Shape output_;
};

}  // namespace ddp
