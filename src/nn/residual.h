#pragma once

#include <memory>
#include <string>
#include <vector>

#include "nn/layer_parts.h"
#include "nn/layer_stack.h"

namespace ddp {

// Note [residual blocks]: a residual block (He et al.'s ResNet; Keras' functional
// `layers.Add()([x, block(x)])`, a PyTorch module whose forward returns block(x) + shortcut(x)) is
// one layer of the Sequential model: its layers run from its input, its shortcut's layers too
// (none: the input itself, the identity shortcut), and it outputs the sum of the two, which must
// have the same shape (a strided or widening block takes a projection shortcut, a 1x1 conv2d of
// the block's strides and filters). Backward hands the output's gradient to both branches and
// adds their input gradients. The branches' parameters are the block's, named as a PyTorch module
// whose `layers` and `shortcut` are lists of its parameterized layers ("layers.3.layers.0.weight",
// "layers.3.shortcut.0.weight"), so its state_dict loads as it is. A block is frozen as one
// (Keras' trainable on the block). Its parts take the ranks' collectives (sync batch
// normalization) in one fixed order, block then shortcut, on every rank.
class Residual final : public Layer {
 public:
  Residual(Shape input, std::vector<std::unique_ptr<Layer>> block,
           std::vector<std::unique_ptr<Layer>> shortcut);

  std::string type_name() const override { return "Residual"; }
  std::string describe() const override;
  std::vector<std::pair<std::string, const Layer*>> parts() const override { return parts_.all(); }
  Shape output_shape() const override { return output_; }
  std::vector<ParamSpec> param_specs() const override { return parts_.param_specs(); }
  void bind(std::span<float* const> params, std::span<float* const> grads) override {
    parts_.bind(params, grads);
  }
  void init_params(Rng& rng, std::span<const std::span<float>> params) const override {
    parts_.init_params(rng, params);
  }
  std::vector<ParamSpec> buffer_specs() const override { return parts_.buffer_specs(); }
  void bind_buffers(std::span<float* const> buffers) override { parts_.bind_buffers(buffers); }
  void init_buffers(std::span<const std::span<float>> buffers) const override {
    parts_.init_buffers(buffers);
  }
  void set_pass(const Pass& pass) override { parts_.set_pass(pass); }
  void forward_without_rows(ComputeBackend& backend) override;
  void backward_without_rows(ComputeBackend& backend) override;
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 private:
  Shape input_, output_;
  LayerStack block_, shortcut_;
  LayerParts parts_;
  DeviceBuffer dy_copy_, shortcut_dx_;  // backward's scratch
};

}  // namespace ddp
