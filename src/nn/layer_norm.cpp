#include "nn/layer_norm.h"

#include <algorithm>

namespace ddp {

LayerNorm::LayerNorm(Shape shape, float epsilon, bool rms)
    : shape_(std::move(shape)),
      features_(shape_[shape_.rank() - 1]),
      epsilon_(epsilon),
      rms_(rms) {}

std::vector<ParamSpec> LayerNorm::param_specs() const {
  if (rms_) return {{"weight", Shape{features_}, {}}};
  return {{"weight", Shape{features_}, {}}, {"bias", Shape{features_}, {}}};
}

void LayerNorm::bind(std::span<float* const> params, std::span<float* const> grads) {
  gamma_ = params[0];
  gamma_grad_ = grads[0];
  if (rms_) return;
  beta_ = params[1];
  beta_grad_ = grads[1];
}

// Keras' and PyTorch's: gamma ones, beta zeros.
void LayerNorm::init_params(Rng& /*rng*/, std::span<const std::span<float>> params) const {
  std::ranges::fill(params[0], 1.0f);
  if (!rms_) std::ranges::fill(params[1], 0.0f);
}

void LayerNorm::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  backend.layer_norm_forward(x, gamma_, beta_, y, sized(backend, stats_, 2 * rows(batch)),
                             rows(batch), features_, epsilon_, /*center=*/!rms_);
}

void LayerNorm::backward(ComputeBackend& backend, const float* x, const float* /*y*/, float* dy,
                         float* dx, int64_t batch, bool accumulate) {
  backend.layer_norm_backward(dy, x, gamma_, stats_.data(), dx, gamma_grad_, beta_grad_,
                              rows(batch), features_, accumulate, /*center=*/!rms_);
}

}  // namespace ddp
