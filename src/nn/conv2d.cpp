#include "nn/conv2d.h"

#include <algorithm>
#include <cmath>

#include "nn/dense.h"

namespace ddp {

Conv2D::Conv2D(const Window2d& window, int64_t filters, Activation act, bool use_bias, bool one_row)
    : window_(window), filters_(filters), act_(act), one_row_(one_row), bias_(filters, use_bias) {}

std::string Conv2D::describe() const { return with_activation(type_name(), act_); }

std::vector<ParamSpec> Conv2D::param_specs() const {
  // PyTorch's nn.Conv2d weight is (filters, channels, kernel_h, kernel_w), nn.Conv1d's (filters,
  // channels, kernel): the same order of values, with the one row's axis left out.
  const Shape weight = one_row_
                           ? Shape{filters_, window_.kernel_w, window_.channels}
                           : Shape{filters_, window_.kernel_h, window_.kernel_w, window_.channels};
  std::vector<ParamSpec> specs{
      {"weight", weight, {filters_, window_.kernel_h, window_.kernel_w, window_.channels}}};
  if (bias_.trained()) specs.push_back({"bias", {filters_}});
  return specs;
}

void Conv2D::bind(std::span<float* const> params, std::span<float* const> grads) {
  weight_ = params[0];
  weight_grad_ = grads[0];
  if (bias_.trained()) bias_.bind(params[1], grads[1]);
}

// Keras' default: Glorot-uniform over fan_in = kernel area x input channels and fan_out =
// kernel area x filters; zero bias.
void Conv2D::init_params(Rng& rng, std::span<const std::span<float>> params) const {
  const int64_t area = window_.kernel_h * window_.kernel_w;
  const float limit =
      std::sqrt(6.0f / static_cast<float>(area * window_.channels + area * filters_));
  for (float& w : params[0]) w = rng.uniform(-limit, limit);
  if (bias_.trained()) std::ranges::fill(params[1], 0.0f);
}

int64_t Conv2D::chunk_samples() const {
  return std::max<int64_t>(1, kChunkFloats / (window_.out_pixels() * window_.patch()));
}

float* Conv2D::scratch(ComputeBackend& backend, DeviceBuffer& buffer) {
  const auto count = static_cast<size_t>(chunk_samples() * window_.out_pixels() * window_.patch());
  if (buffer.size() < count) buffer = DeviceBuffer(backend, count);
  return buffer.data();
}

void Conv2D::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  windows_of_ = nullptr;
  const float* const bias = bias_.values(backend);
  if (backend.conv2d_forward(x, weight_, bias, y, batch, window_, filters_, act_)) return;
  float* cols = scratch(backend, cols_);
  const int64_t in = window_.height * window_.width * window_.channels;
  const int64_t out = window_.out_pixels() * filters_;
  for (int64_t first = 0; first < batch; first += chunk_samples()) {
    const int64_t n = std::min(chunk_samples(), batch - first);
    backend.im2col(x + first * in, cols, n, window_);
    backend.dense_forward(cols, weight_, bias, y + first * out, n * window_.out_pixels(),
                          window_.patch(), filters_, act_);
  }
  const bool kept = training_ && batch <= chunk_samples();
  windows_of_ = kept ? x : nullptr;
  windows_batch_ = kept ? batch : 0;
}

void Conv2D::backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                      int64_t batch, bool accumulate) {
  float* const bias_grad = bias_.grad(backend);
  if (backend.conv2d_backward(x, weight_, y, dy, dx, weight_grad_, bias_grad, batch, window_,
                              filters_, act_, accumulate))
    return;
  float* cols = scratch(backend, cols_);
  float* dcols = dx ? scratch(backend, dcols_) : nullptr;
  const int64_t in = window_.height * window_.width * window_.channels;
  const int64_t out = window_.out_pixels() * filters_;
  for (int64_t first = 0; first < batch; first += chunk_samples()) {
    const int64_t n = std::min(chunk_samples(), batch - first);
    if (x != windows_of_ || batch != windows_batch_)
      backend.im2col(x + first * in, cols, n, window_);
    // Chunks after the first add their parameter gradients to the first's.
    backend.dense_backward(cols, weight_, y + first * out, dy + first * out, dcols, weight_grad_,
                           bias_grad, n * window_.out_pixels(), window_.patch(), filters_, act_,
                           accumulate || first > 0, nullptr);
    if (dx) backend.col2im(dcols, dx + first * in, n, window_);
  }
  windows_of_ = nullptr;  // used once: the next backward follows another forward
}

}  // namespace ddp
