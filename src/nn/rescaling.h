#pragma once

#include <utility>

#include "nn/layer.h"

namespace ddp {

// Keras' Rescaling: y = x * scale + offset elementwise (pixels 0-255 to [0, 1] with scale 1/255,
// say), nothing trained; its input gradient is scale * dy.
class Rescaling final : public Layer {
 public:
  Rescaling(Shape shape, float scale, float offset)
      : shape_(std::move(shape)), scale_(scale), offset_(offset) {}

  std::string type_name() const override { return "Rescaling"; }
  Shape output_shape() const override { return shape_; }
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override {
    backend.scale_shift(x, y, count(batch), scale_, offset_);
  }
  void backward(ComputeBackend& backend, const float*, const float*, float* dy, float* dx,
                int64_t batch, bool) override {
    if (dx) backend.scale_shift(dy, dx, count(batch), scale_, 0);
  }

 private:
  size_t count(int64_t batch) const { return static_cast<size_t>(batch * shape_.numel()); }
  Shape shape_;
  float scale_;
  float offset_;
};

}  // namespace ddp
