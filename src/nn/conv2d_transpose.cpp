#include "nn/conv2d_transpose.h"

#include <algorithm>
#include <cmath>

#include "nn/conv2d.h"
#include "nn/dense.h"

namespace ddp {

Conv2DTranspose::Conv2DTranspose(const Window2d& view, int64_t channels, Activation act,
                                 bool use_bias, bool one_row)
    : view_(view),
      channels_(channels),
      act_(act),
      one_row_(one_row),
      bias_(view.channels, use_bias),
      no_bias_(view.patch(), false) {}

int64_t Conv2DTranspose::output_length(int64_t in, int64_t kernel, int64_t stride, bool same,
                                       int64_t output_padding) {
  if (output_padding >= 0)
    return (in - 1) * stride + kernel - (same ? kernel / 2 * 2 : 0) + output_padding;
  return in * stride + (same ? 0 : std::max<int64_t>(kernel - stride, 0));
}

std::string Conv2DTranspose::describe() const { return with_activation(type_name(), act_); }

std::vector<ParamSpec> Conv2DTranspose::param_specs() const {
  // PyTorch's nn.ConvTranspose2d weight is (channels, filters, kernel_h, kernel_w),
  // nn.ConvTranspose1d's (channels, filters, kernel).
  const int64_t filters = view_.channels;
  const Shape weight = one_row_ ? Shape{channels_, view_.kernel_w, filters}
                                : Shape{channels_, view_.kernel_h, view_.kernel_w, filters};
  std::vector<ParamSpec> specs{
      {"weight", weight, {channels_, view_.kernel_h, view_.kernel_w, filters}}};
  if (bias_.trained()) specs.push_back({"bias", {filters}});
  return specs;
}

void Conv2DTranspose::bind(std::span<float* const> params, std::span<float* const> grads) {
  weight_ = params[0];
  weight_grad_ = grads[0];
  if (bias_.trained()) bias_.bind(params[1], grads[1]);
}

// Keras' default: Glorot-uniform over its kernel (kernel_h, kernel_w, filters, channels), fan_in
// = kernel area x filters and fan_out = kernel area x channels (their sum is all that counts);
// zero bias.
void Conv2DTranspose::init_params(Rng& rng, std::span<const std::span<float>> params) const {
  const int64_t area = view_.kernel_h * view_.kernel_w;
  const float limit =
      std::sqrt(6.0f / static_cast<float>(area * view_.channels + area * channels_));
  for (float& w : params[0]) w = rng.uniform(-limit, limit);
  if (bias_.trained()) std::ranges::fill(params[1], 0.0f);
}

int64_t Conv2DTranspose::chunk_samples() const {
  return std::max<int64_t>(1, Conv2D::kChunkFloats / (view_.out_pixels() * view_.patch()));
}

void Conv2DTranspose::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  const int64_t patch = view_.patch(), pixels = view_.out_pixels();
  float* cols = sized(backend, cols_, chunk_samples() * pixels * patch);
  float* weight_t = sized(backend, weight_t_, patch * channels_);
  backend.copy_matrix(weight_, 1, patch, weight_t, channels_, patch, channels_);
  const int64_t in = pixels * channels_, out = view_.height * view_.width * view_.channels;
  for (int64_t first = 0; first < batch; first += chunk_samples()) {
    const int64_t n = std::min(chunk_samples(), batch - first);
    // cols (n * pixels, patch) = x's rows (n * pixels, channels) times the weight.
    backend.dense_forward(x + first * in, weight_t, no_bias_.values(backend), cols, n * pixels,
                          channels_, patch, Activation::kLinear);
    backend.col2im(cols, y + first * out, n, view_);
  }
  backend.bias_activation_forward(y, bias_.values(backend), batch * view_.height * view_.width,
                                  view_.channels, act_);
}

void Conv2DTranspose::backward(ComputeBackend& backend, const float* x, const float* y, float* dy,
                               float* dx, int64_t batch, bool accumulate) {
  const int64_t patch = view_.patch(), pixels = view_.out_pixels();
  backend.bias_activation_backward(y, dy, bias_.grad(backend), batch * view_.height * view_.width,
                                   view_.channels, act_, accumulate);
  float* dcols = sized(backend, cols_, chunk_samples() * pixels * patch);
  // The transposed weight's gradient (patch, channels), the chunks after the first adding theirs,
  // and room for it turned back to (channels, patch).
  float* grad_t = sized(backend, weight_t_grad_, 2 * patch * channels_);
  const int64_t in = pixels * channels_, out = view_.height * view_.width * view_.channels;
  for (int64_t first = 0; first < batch; first += chunk_samples()) {
    const int64_t n = std::min(chunk_samples(), batch - first);
    backend.im2col(dy + first * out, dcols, n, view_);
    // The Dense layer's backward: dx (n * pixels, channels) = the windows times the weight.
    backend.dense_backward(x + first * in, weight_t_.data(), dcols, dcols,
                           dx ? dx + first * in : nullptr, grad_t, no_bias_.grad(backend),
                           n * pixels, channels_, patch, Activation::kLinear, first > 0, nullptr);
  }
  float* grad = accumulate ? grad_t + patch * channels_ : weight_grad_;
  backend.copy_matrix(grad_t, 1, channels_, grad, patch, channels_, patch);
  if (accumulate) backend.add_to(grad, weight_grad_, static_cast<size_t>(patch * channels_));
}

}  // namespace ddp
