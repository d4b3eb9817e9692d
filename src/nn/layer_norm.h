#pragma once

#include "nn/layer.h"

namespace ddp {

// Keras' LayerNormalization over the last axis (PyTorch's nn.LayerNorm of the last dimension):
// each row of it (a flat sample's features, an image pixel's channels) is normalized by its own
// mean and biased variance, y = gamma * (x - mean) / sqrt(var + epsilon) + beta, in training and
// inference alike; gamma and beta (the last axis's size) are trained. Rows are independent, so N
// ranks normalize what one rank does and no statistics cross ranks. With `rms`, Keras'
// RMSNormalization (PyTorch's nn.RMSNorm): y = gamma * x / sqrt(mean(x^2) + epsilon), no mean
// taken off and no beta.
class LayerNorm final : public MaskPassingLayer {
 public:
  LayerNorm(Shape shape, float epsilon, bool rms = false);

  std::string type_name() const override {
    return rms_ ? "RMSNormalization" : "LayerNormalization";
  }
  Shape output_shape() const override { return shape_; }
  std::vector<ParamSpec> param_specs() const override;  // weight (gamma), bias (beta; not rms)
  void bind(std::span<float* const> params, std::span<float* const> grads) override;
  void init_params(Rng& rng, std::span<const std::span<float>> params) const override;
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 private:
  int64_t rows(int64_t batch) const { return batch * (shape_.numel() / features_); }

  Shape shape_;
  int64_t features_;  // the last axis
  float epsilon_;
  bool rms_;
  float* gamma_ = nullptr;
  float* beta_ = nullptr;  // null with rms, as its gradient
  float* gamma_grad_ = nullptr;
  float* beta_grad_ = nullptr;
  DeviceBuffer stats_;  // (rows, 2): each row's mean (0 with rms) and 1 / sqrt(var + epsilon)
};

}  // namespace ddp
