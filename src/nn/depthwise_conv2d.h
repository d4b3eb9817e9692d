#pragma once

#include "nn/layer.h"
#include "nn/layer_bias.h"

namespace ddp {

// Note [depthwise convolution]: Keras' DepthwiseConv2D (depth_multiplier 1, MobileNets' layer)
// convolves each channel of an NHWC image with a kernel of its own, (channels, kernel_h,
// kernel_w) here: PyTorch's nn.Conv2d(channels, channels, kernel, groups=channels) holds the same
// values as (channels, 1, kernel_h, kernel_w), Keras' as (kernel_h, kernel_w, channels, 1). Its
// window is a conv2d's (padding, strides, dilation); the bias and the fused activation are the
// transposed convolution's bias_activation ops. A convolution of channels x (kernel area)
// products a pixel, too few for a GEMM to pay: the backends run their own loops (CPU: along the
// channels, contiguous in NHWC; CUDA: a thread per output or input element, a block per kernel
// weight's gradient).
class DepthwiseConv2D final : public Layer {
 public:
  DepthwiseConv2D(const Window2d& window, Activation act, bool use_bias)
      : window_(window), act_(act), bias_(window.channels, use_bias) {}

  std::string type_name() const override { return "DepthwiseConv2D"; }
  std::string describe() const override;
  Shape output_shape() const override { return {window_.out_h, window_.out_w, window_.channels}; }
  std::vector<ParamSpec> param_specs() const override;
  void bind(std::span<float* const> params, std::span<float* const> grads) override;
  void init_params(Rng& rng, std::span<const std::span<float>> params) const override;
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 private:
  Window2d window_;
  Activation act_;
  float* weight_ = nullptr;  // (channels, kernel_h, kernel_w)
  float* weight_grad_ = nullptr;
  LayerBias bias_;  // (channels)
};

}  // namespace ddp
