#include "nn/batch_norm.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace ddp {
namespace {

struct Moments {
  double mean;
  double var;  // biased
};

// Channel c's moments from sums of x and of x (x - shift) over `count` rows (Note [batch
// statistics]): sum (x - mean)^2 = sum x (x - shift) - sum x * (mean - shift), a small correction
// when the shift is near the mean.
Moments moments(std::span<const double> sums, std::span<const float> shift, double count,
                size_t c) {
  const size_t channels = shift.size();
  const double mean = sums[c] / count;
  const double squares = sums[channels + c] - sums[c] * (mean - static_cast<double>(shift[c]));
  return {mean, std::max(squares / count, 0.0)};
}

}  // namespace

BatchNorm::BatchNorm(Shape shape, float momentum, float epsilon, bool sync)
    : shape_(std::move(shape)),
      channels_(shape_[shape_.rank() - 1]),
      momentum_(momentum),
      epsilon_(epsilon),
      sync_(sync),
      mean_(static_cast<size_t>(channels_)),
      inv_std_(static_cast<size_t>(channels_)) {}

std::string BatchNorm::describe() const {
  return sync_ ? "BatchNormalization sync" : "BatchNormalization";
}

std::vector<ParamSpec> BatchNorm::param_specs() const {
  return {{"weight", Shape{channels_}, {}}, {"bias", Shape{channels_}, {}}};
}

std::vector<ParamSpec> BatchNorm::buffer_specs() const {
  return {{"running_mean", Shape{channels_}, {}}, {"running_var", Shape{channels_}, {}}};
}

void BatchNorm::bind(std::span<float* const> params, std::span<float* const> grads) {
  gamma_ = params[0];
  beta_ = params[1];
  gamma_grad_ = grads[0];
  beta_grad_ = grads[1];
}

void BatchNorm::bind_buffers(std::span<float* const> buffers) {
  running_mean_ = buffers[0];
  running_var_ = buffers[1];
}

void BatchNorm::init_params(Rng& /*rng*/, std::span<const std::span<float>> params) const {
  std::fill(params[0].begin(), params[0].end(), 1.0f);
  std::fill(params[1].begin(), params[1].end(), 0.0f);
}

void BatchNorm::init_buffers(std::span<const std::span<float>> buffers) const {
  std::fill(buffers[0].begin(), buffers[0].end(), 0.0f);
  std::fill(buffers[1].begin(), buffers[1].end(), 1.0f);
}

void BatchNorm::sum_over_ranks(std::span<double> values) const {
  if (pass_.sum_over_ranks) pass_.sum_over_ranks(values);
}

void BatchNorm::set_statistics(std::span<const double> sums, std::span<const float> shift,
                               double count) {
  for (size_t c = 0; c < mean_.size(); ++c) {
    const Moments m = moments(sums, shift, count, c);
    mean_[c] = m.mean;
    inv_std_[c] = 1.0 / std::sqrt(m.var + static_cast<double>(epsilon_));
  }
  rows_ = count;
}

void BatchNorm::learn_statistics(ComputeBackend& backend, std::span<const double> local) {
  const auto channels = static_cast<size_t>(channels_);
  std::vector<double> global(local.begin(), local.end());
  sum_over_ranks(global);
  host_.resize(2 * channels);  // running mean, running var: the shift of the sums
  backend.copy_to_host(running_mean_, host_.data(), channels);
  backend.copy_to_host(running_var_, host_.data() + channels, channels);
  const std::span<const float> shift(host_.data(), channels);
  const double local_rows = local[2 * channels];
  if (sync_)
    set_statistics(global, shift, global[2 * channels]);
  else if (local_rows > 0)
    set_statistics(local, shift, local_rows);
  const double keep = momentum_;
  std::vector<float> running(2 * channels);
  for (size_t c = 0; c < channels; ++c) {
    const Moments m = moments(global, shift, global[2 * channels], c);
    running[c] = static_cast<float>(keep * host_[c] + (1 - keep) * m.mean);
    running[channels + c] = static_cast<float>(keep * host_[channels + c] + (1 - keep) * m.var);
  }
  backend.copy_to_device(running.data(), running_mean_, channels);
  backend.copy_to_device(running.data() + channels, running_var_, channels);
}

void BatchNorm::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  const auto channels = static_cast<size_t>(channels_);
  const int64_t rows = batch * (shape_.numel() / channels_);
  if (coeffs_.size() == 0) {
    coeffs_ = DeviceBuffer(backend, 3 * channels);
    shift_ = DeviceBuffer(backend, channels);
  }
  if (pass_.training) {
    std::vector<double> local(2 * channels + 1);
    backend.channel_sums(x, x, running_mean_, local.data(), rows, channels_);
    local[2 * channels] = static_cast<double>(rows);
    learn_statistics(backend, local);
  } else {
    host_.resize(2 * channels);
    backend.copy_to_host(running_mean_, host_.data(), channels);
    backend.copy_to_host(running_var_, host_.data() + channels, channels);
    for (size_t c = 0; c < channels; ++c) {
      mean_[c] = host_[c];
      inv_std_[c] = 1.0 / std::sqrt(static_cast<double>(host_[channels + c]) + epsilon_);
    }
  }
  // y = x * scale + offset with scale = gamma / std, offset = beta - mean * scale.
  gamma_values_.resize(channels);
  host_.resize(2 * channels);
  backend.copy_to_host(gamma_, gamma_values_.data(), channels);
  backend.copy_to_host(beta_, host_.data() + channels, channels);
  for (size_t c = 0; c < channels; ++c) {
    const double scale = gamma_values_[c] * inv_std_[c];
    host_[c] = static_cast<float>(scale);
    host_[channels + c] = static_cast<float>(host_[channels + c] - mean_[c] * scale);
  }
  backend.copy_to_device(host_.data(), coeffs_.data(), 2 * channels);
  backend.batch_norm_forward(x, y, coeffs_.data(), rows, channels_);
}

void BatchNorm::forward_without_rows(ComputeBackend& backend) {
  if (pass_.training) learn_statistics(backend, std::vector<double>(2 * mean_.size() + 1, 0.0));
}

// With xhat = (x - mean) / std: dbeta = sum dy, dgamma = sum dy xhat over this rank's rows, and
// dx = gamma / std * (dy - sum(dy) / M - xhat * sum(dy xhat) / M) over the M rows normalized
// together (the global batch's when sync), as dx = dy * k0 + x * k1 + k2 per channel.
void BatchNorm::backward(ComputeBackend& backend, const float* x, const float* /*y*/, float* dy,
                         float* dx, int64_t batch, bool accumulate) {
  const auto channels = static_cast<size_t>(channels_);
  const int64_t rows = batch * (shape_.numel() / channels_);
  host_.resize(3 * channels);
  if (frozen()) {  // Note [frozen layers]: y = x * scale + offset, so dx = dy * scale
    if (!dx) return;
    std::fill(host_.begin(), host_.end(), 0.0f);
    for (size_t c = 0; c < channels; ++c)
      host_[c] = static_cast<float>(gamma_values_[c] * inv_std_[c]);
    backend.copy_to_device(host_.data(), coeffs_.data(), 3 * channels);
    backend.batch_norm_backward(dy, x, dx, coeffs_.data(), rows, channels_);
    return;
  }
  if (!pass_.training)
    throw std::logic_error("BatchNorm::backward needs a training forward (batch statistics)");
  for (size_t c = 0; c < channels; ++c) host_[c] = static_cast<float>(mean_[c]);
  backend.copy_to_device(host_.data(), shift_.data(), channels);
  std::vector<double> sums(2 * channels);  // sum dy, sum dy (x - mean)
  backend.channel_sums(dy, x, shift_.data(), sums.data(), rows, channels_);

  std::vector<float> grads(2 * channels, 0.0f);  // dgamma, dbeta
  if (accumulate) {
    backend.copy_to_host(gamma_grad_, grads.data(), channels);
    backend.copy_to_host(beta_grad_, grads.data() + channels, channels);
  }
  for (size_t c = 0; c < channels; ++c) {
    grads[c] += static_cast<float>(sums[channels + c] * inv_std_[c]);
    grads[channels + c] += static_cast<float>(sums[c]);
  }
  backend.copy_to_device(grads.data(), gamma_grad_, channels);
  backend.copy_to_device(grads.data() + channels, beta_grad_, channels);

  if (sync_) sum_over_ranks(sums);
  if (!dx) return;
  for (size_t c = 0; c < channels; ++c) {
    const double k0 = gamma_values_[c] * inv_std_[c];
    const double k1 = -k0 * inv_std_[c] * inv_std_[c] * sums[channels + c] / rows_;
    host_[c] = static_cast<float>(k0);
    host_[channels + c] = static_cast<float>(k1);
    host_[2 * channels + c] = static_cast<float>(-k0 * sums[c] / rows_ - k1 * mean_[c]);
  }
  backend.copy_to_device(host_.data(), coeffs_.data(), 3 * channels);
  backend.batch_norm_backward(dy, x, dx, coeffs_.data(), rows, channels_);
}

void BatchNorm::backward_without_rows(ComputeBackend& /*backend*/) {
  if (!sync_ || frozen()) return;  // a frozen layer sums nothing over the ranks
  std::vector<double> zeros(2 * mean_.size(), 0.0);
  sum_over_ranks(zeros);
}

}  // namespace ddp
