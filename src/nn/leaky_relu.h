#pragma once

#include <utility>

#include "nn/layer.h"

namespace ddp {

// Keras' LeakyReLU: y = x where x > 0, negative_slope * x elsewhere (negative_slope >= 0, so y > 0
// exactly where x > 0 and backward reads the output), nothing trained.
class LeakyRelu final : public MaskPassingLayer {
 public:
  LeakyRelu(Shape shape, float negative_slope)
      : shape_(std::move(shape)), negative_slope_(negative_slope) {}

  std::string type_name() const override { return "LeakyReLU"; }
  Shape output_shape() const override { return shape_; }
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override {
    backend.leaky_scale(x, x, y, count(batch), negative_slope_);
  }
  void backward(ComputeBackend& backend, const float*, const float* y, float* dy, float* dx,
                int64_t batch, bool) override {
    if (dx) backend.leaky_scale(y, dy, dx, count(batch), negative_slope_);
  }

 private:
  size_t count(int64_t batch) const { return static_cast<size_t>(batch * shape_.numel()); }
  Shape shape_;
  float negative_slope_;
};

}  // namespace ddp
