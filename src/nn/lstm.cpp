#include "nn/lstm.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

namespace ddp {

Lstm::Lstm(int64_t steps, int64_t features, int64_t units, bool return_sequences, bool use_bias)
    : steps_(steps),
      features_(features),
      units_(units),
      return_sequences_(return_sequences),
      bias_(4 * units, use_bias),
      no_bias_gates_(4 * units, false),
      no_bias_units_(units, false) {}

std::vector<ParamSpec> Lstm::param_specs() const {
  std::vector<ParamSpec> specs{{"weight_ih_l0", Shape{4 * units_, features_}, {}},
                               {"weight_hh_l0", Shape{4 * units_, units_}, {}}};
  if (bias_.trained()) specs.push_back({"bias_ih_l0", Shape{4 * units_}, {}});
  return specs;
}

void Lstm::bind(std::span<float* const> params, std::span<float* const> grads) {
  weight_ih_ = params[0];
  weight_hh_ = params[1];
  weight_ih_grad_ = grads[0];
  weight_hh_grad_ = grads[1];
  if (bias_.trained()) bias_.bind(params[2], grads[2]);
}

namespace {

// Keras' Orthogonal initializer for the recurrent kernel (units, 4 units): the Q of a QR
// factorization of a normal (4 units, units) matrix, signed so that R's diagonal is positive, is
// what Gram-Schmidt makes of its columns; Keras' kernel is its transpose, weight_hh_l0 Q itself.
void orthogonal_columns(Rng& rng, std::span<float> out, int64_t rows, int64_t cols) {
  std::vector<double> q(static_cast<size_t>(rows * cols));  // column-major
  for (double& v : q) {  // Box-Muller: 1 - uniform() is in (0, 1]
    const double radius = std::sqrt(-2.0 * std::log(1.0 - rng.uniform()));
    v = radius * std::cos(2 * std::numbers::pi * rng.uniform());
  }
  for (int64_t j = 0; j < cols; ++j) {
    double* column = q.data() + j * rows;
    for (int64_t k = 0; k < j; ++k) {
      const double* earlier = q.data() + k * rows;
      double dot = 0;
      for (int64_t r = 0; r < rows; ++r) dot += earlier[r] * column[r];
      for (int64_t r = 0; r < rows; ++r) column[r] -= dot * earlier[r];
    }
    double norm = 0;
    for (int64_t r = 0; r < rows; ++r) norm += column[r] * column[r];
    norm = std::sqrt(norm);
    for (int64_t r = 0; r < rows; ++r) column[r] /= norm;
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < cols; ++j)
      out[static_cast<size_t>(r * cols + j)] =
          static_cast<float>(q[static_cast<size_t>(j * rows + r)]);
}

}  // namespace

void Lstm::init_params(Rng& rng, std::span<const std::span<float>> params) const {
  const float limit = std::sqrt(6.0f / static_cast<float>(features_ + 4 * units_));
  for (float& w : params[0]) w = rng.uniform(-limit, limit);
  orthogonal_columns(rng, params[1], 4 * units_, units_);
  if (!bias_.trained()) return;
  std::ranges::fill(params[2], 0.0f);  // Keras' unit_forget_bias: the forget gate's starts at 1
  std::fill(params[2].begin() + units_, params[2].begin() + 2 * units_, 1.0f);
}

float* Lstm::sized(ComputeBackend& backend, DeviceBuffer& buffer, int64_t count) {
  if (buffer.size() < static_cast<size_t>(count))
    buffer = DeviceBuffer(backend, static_cast<size_t>(count));
  return buffer.data();
}

void Lstm::reorder(ComputeBackend& backend, const float* from, float* to, int64_t batch,
                   int64_t width, bool back) const {
  for (int64_t t = 0; t < steps_; ++t) {
    if (back)
      backend.copy_matrix(from + t * batch * width, width, 1, to + t * width, steps_ * width, batch,
                          width);
    else
      backend.copy_matrix(from + t * width, steps_ * width, 1, to + t * batch * width, width, batch,
                          width);
  }
}

void Lstm::run_steps(ComputeBackend& backend, const float* x, int64_t batch) {
  const int64_t rows = steps_ * batch, gates = 4 * units_, step = batch * units_;
  float* const x_steps = sized(backend, x_steps_, rows * features_);
  reorder(backend, x, x_steps, batch, features_, false);
  float* const input_products = sized(backend, input_products_, rows * gates);
  backend.dense_forward(x_steps, weight_ih_, bias_.values(backend), input_products, rows, features_,
                        gates, Activation::kLinear);
  float* const h = sized(backend, h_, rows * units_ + step);
  float* const c = sized(backend, c_, rows * units_ + step);
  float* const kept_gates = sized(backend, gates_, rows * gates);
  float* const recurrent = sized(backend, recurrent_, batch * gates);
  backend.fill_zero(h, static_cast<size_t>(step));
  backend.fill_zero(c, static_cast<size_t>(step));
  for (int64_t t = 0; t < steps_; ++t) {
    // h is zero before the first step: no recurrent product.
    if (t > 0)
      backend.dense_forward(h + t * step, weight_hh_, no_bias_gates_.values(backend), recurrent,
                            batch, units_, gates, Activation::kLinear);
    backend.lstm_cell_forward(input_products + t * batch * gates, t > 0 ? recurrent : nullptr,
                              c + t * step, kept_gates + t * batch * gates, c + (t + 1) * step,
                              h + (t + 1) * step, batch, units_);
  }
  steps_of_ = x;
  steps_batch_ = batch;
}

void Lstm::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  run_steps(backend, x, batch);
  const float* const after_first = h_.data() + batch * units_;  // h after each step
  if (return_sequences_)
    reorder(backend, after_first, y, batch, units_, true);
  else
    backend.copy_matrix(after_first + (steps_ - 1) * batch * units_, 0, 1, y, 0, 1, batch * units_);
}

void Lstm::backward(ComputeBackend& backend, const float* x, const float* /*y*/, float* dy,
                    float* dx, int64_t batch, bool accumulate) {
  if (x != steps_of_ || batch != steps_batch_) run_steps(backend, x, batch);
  const int64_t rows = steps_ * batch, gates = 4 * units_, step = batch * units_;
  float* const dgates = sized(backend, dgates_, rows * gates);
  float* const dh = sized(backend, dh_, step);
  float* const dc = sized(backend, dc_, step);
  backend.fill_zero(dc, static_cast<size_t>(step));
  float* const dy_steps = return_sequences_ ? sized(backend, dy_steps_, rows * units_) : nullptr;
  if (dy_steps) reorder(backend, dy, dy_steps, batch, units_, false);
  float* const weight_hh_t = sized(backend, weight_hh_t_, gates * units_);
  backend.copy_matrix(weight_hh_, 1, units_, weight_hh_t, gates, units_, gates);
  const float* const h = h_.data();
  const float* const c = c_.data();
  for (int64_t t = steps_ - 1; t >= 0; --t) {
    const float* const dh_out =
        return_sequences_ ? dy_steps + t * step : (t == steps_ - 1 ? dy : nullptr);
    float* const dgates_t = dgates + t * batch * gates;
    backend.lstm_cell_backward(gates_.data() + t * batch * gates, c + t * step, c + (t + 1) * step,
                               dh_out, t < steps_ - 1 ? dh : nullptr, dc, dgates_t, batch, units_);
    // dh for the step before: dgates W_hh, as the product with W_hh's transpose (units, 4 units).
    if (t > 0)
      backend.dense_forward(dgates_t, weight_hh_t, no_bias_units_.values(backend), dh, batch, gates,
                            units_, Activation::kLinear);
  }
  // The weight gradients over all steps at once: against the h before each step (the first
  // `steps` of h_) and against the inputs.
  backend.dense_backward(h, weight_hh_, dgates, dgates, nullptr, weight_hh_grad_,
                         no_bias_gates_.grad(backend), rows, units_, gates, Activation::kLinear,
                         accumulate, nullptr);
  float* const dx_steps = dx ? sized(backend, dx_steps_, rows * features_) : nullptr;
  backend.dense_backward(x_steps_.data(), weight_ih_, dgates, dgates, dx_steps, weight_ih_grad_,
                         bias_.grad(backend), rows, features_, gates, Activation::kLinear,
                         accumulate, nullptr);
  if (dx) reorder(backend, dx_steps, dx, batch, features_, true);
}

}  // namespace ddp
