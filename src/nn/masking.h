#pragma once

#include <utility>

#include "nn/layer.h"

namespace ddp {

// Keras' Masking over a sequence (steps, features): a step whose features all equal mask_value is
// padding (Note [padding masks]): its output is zeros, and the mask this layer's output carries is
// 0 there, 1 elsewhere, for the layers above (recurrent layers skip such steps); nothing trained.
// Its input gradient is dy with the padding steps zeroed.
class Masking final : public Layer {
 public:
  Masking(Shape shape, float mask_value) : shape_(std::move(shape)), mask_value_(mask_value) {}

  std::string type_name() const override { return "Masking"; }
  Shape output_shape() const override { return shape_; }
  const float* output_mask() const override { return mask_.data(); }
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override {
    const int64_t steps = batch * shape_[0];
    if (mask_.size() < static_cast<size_t>(steps))
      mask_ = DeviceBuffer(backend, static_cast<size_t>(steps));
    backend.masking_forward(x, mask_value_, mask_.data(), y, steps, shape_[1]);
  }
  void backward(ComputeBackend& backend, const float*, const float*, float* dy, float* dx,
                int64_t batch, bool) override {
    if (dx) backend.masking_backward(mask_.data(), dy, dx, batch * shape_[0], shape_[1]);
  }

 private:
  Shape shape_;  // (steps, features)
  float mask_value_;
  DeviceBuffer mask_;  // (batch, steps)
};

}  // namespace ddp
