#include "nn/depthwise_conv2d.h"

#include <algorithm>
#include <cmath>

#include "nn/dense.h"

namespace ddp {

std::string DepthwiseConv2D::describe() const { return with_activation(type_name(), act_); }

std::vector<ParamSpec> DepthwiseConv2D::param_specs() const {
  const int64_t c = window_.channels, kh = window_.kernel_h, kw = window_.kernel_w;
  // Note [PyTorch layout]: (channels, kh, kw, 1) reordered is PyTorch's (channels, 1, kh, kw).
  std::vector<ParamSpec> specs{{"weight", {c, kh, kw, 1}, {c, kh, kw, 1}}};
  if (bias_.trained()) specs.push_back({"bias", {c}});
  return specs;
}

void DepthwiseConv2D::bind(std::span<float* const> params, std::span<float* const> grads) {
  weight_ = params[0];
  weight_grad_ = grads[0];
  if (bias_.trained()) bias_.bind(params[1], grads[1]);
}

// Keras' default: Glorot-uniform over its kernel (kh, kw, channels, 1), fan_in = kernel area x
// channels and fan_out = kernel area; zero bias.
void DepthwiseConv2D::init_params(Rng& rng, std::span<const std::span<float>> params) const {
  const int64_t area = window_.kernel_h * window_.kernel_w;
  const float limit = std::sqrt(6.0f / static_cast<float>(area * window_.channels + area));
  for (float& w : params[0]) w = rng.uniform(-limit, limit);
  if (bias_.trained()) std::ranges::fill(params[1], 0.0f);
}

void DepthwiseConv2D::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  backend.depthwise_forward(x, weight_, y, batch, window_);
  backend.bias_activation_forward(y, bias_.values(backend), batch * window_.out_pixels(),
                                  window_.channels, act_);
}

void DepthwiseConv2D::backward(ComputeBackend& backend, const float* x, const float* y, float* dy,
                               float* dx, int64_t batch, bool accumulate) {
  backend.bias_activation_backward(y, dy, bias_.grad(backend), batch * window_.out_pixels(),
                                   window_.channels, act_, accumulate);
  backend.depthwise_backward(x, weight_, dy, dx, weight_grad_, batch, window_, accumulate);
}

}  // namespace ddp
