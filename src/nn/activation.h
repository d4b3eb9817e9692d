#pragma once

#include "nn/layer.h"

namespace ddp {

// A stand-alone element-wise activation; Dense and Conv2D fuse ReLU, Tanh and Sigmoid when given
// one (Note [fused activations]).
class ActivationLayer final : public MaskPassingLayer {
 public:
  ActivationLayer(Activation act, Shape shape) : act_(act), shape_(std::move(shape)) {}

  std::string type_name() const override;
  OutputFunction output_function() const override {
    return act_ == Activation::kSigmoid ? OutputFunction::kSigmoid : OutputFunction::kNone;
  }
  Shape output_shape() const override { return shape_; }
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 private:
  Activation act_;
  Shape shape_;
};

}  // namespace ddp
