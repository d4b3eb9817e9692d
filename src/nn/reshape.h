#pragma once

#include <string>
#include <utility>

#include "nn/layer.h"

namespace ddp {

// Reinterprets (batch, input shape) as (batch, output shape) of as many elements: Keras' Flatten
// and Reshape. Row-major storage makes it free.
class Reshape final : public Layer {
 public:
  Reshape(Shape output, std::string type) : output_(std::move(output)), type_(std::move(type)) {}

  std::string type_name() const override { return type_; }
  Shape output_shape() const override { return output_; }
  bool aliases_input() const override { return true; }
  void forward(ComputeBackend&, const float*, float*, int64_t) override {}
  void backward(ComputeBackend&, const float*, const float*, float*, float*, int64_t,
                bool) override {}

 private:
  Shape output_;
  std::string type_;  // "Flatten" or "Reshape"
};

}  // namespace ddp
