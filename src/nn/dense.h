#pragma once

#include <string>

#include "nn/layer.h"
#include "nn/layer_bias.h"

namespace ddp {

// Fully connected layer with a fused element-wise activation. The weight is stored (out, in),
// PyTorch's nn.Linear layout, so exported weights need no transpose. Without a bias where
// use_bias is false (Note [no bias]). Over an input of more than one axis, (steps, in) say, it
// maps the last axis at each position, as Keras' Dense and PyTorch's nn.Linear do (Keras'
// TimeDistributed(Dense)): the batch's positions are the rows of its products, and a padding
// mask passes through (Note [padding masks]).
class Dense final : public MaskPassingLayer {
 public:
  // `positions`: the input's axes before the last, {} for a flat input.
  Dense(int64_t in, int64_t out, Activation act, bool use_bias = true, Shape positions = {});

  std::string type_name() const override { return "Dense"; }
  std::string describe() const override;
  Shape output_shape() const override;
  std::vector<ParamSpec> param_specs() const override;
  void bind(std::span<float* const> params, std::span<float* const> grads) override;
  void init_params(Rng& rng, std::span<const std::span<float>> params) const override;
  void set_pass(const Pass& pass) override { update_in_backward_ = pass.update_in_backward; }
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;
  void backward_without_rows(ComputeBackend& backend) override;

 private:
  int64_t rows(int64_t batch) const { return batch * positions_.numel(); }
  int64_t in_;
  int64_t out_;
  Activation act_;
  Shape positions_;
  float* weight_ = nullptr;  // (out, in)
  float* weight_grad_ = nullptr;
  LayerBias bias_;  // (out)
  InBackwardUpdate* update_in_backward_ = nullptr;
};

const char* activation_name(Activation act);
// A layer's summary name with its fused activation: "Dense+relu", or `name` alone when linear.
std::string with_activation(const std::string& name, Activation act);

}  // namespace ddp
