#include "nn/recurrent.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <vector>

#include "core/counter_hash.h"

namespace ddp {

Recurrent::Recurrent(Cell cell, int64_t steps, int64_t features, int64_t units,
                     bool return_sequences, bool use_bias, bool bidirectional, float dropout,
                     float recurrent_dropout)
    : steps_(steps),
      features_(features),
      units_(units),
      cell_(cell),
      return_sequences_(return_sequences),
      bidirectional_(bidirectional),
      dropout_(dropout),
      recurrent_dropout_(recurrent_dropout),
      no_bias_units_(units, false) {
  for (int d = 0; d < directions(); ++d)
    directions_.emplace_back(cell.gates * units, use_bias, cell.recurrent_bias);
}

Shape Recurrent::output_shape() const {
  const int64_t width = directions() * units_;
  return return_sequences_ ? Shape{steps_, width} : Shape{width};
}

std::vector<ParamSpec> Recurrent::param_specs() const {
  std::vector<ParamSpec> specs;
  const int64_t gates = cell_.gates * units_;
  for (int d = 0; d < directions(); ++d) {
    const std::string suffix = d == 1 ? "_l0_reverse" : "_l0";
    specs.push_back({"weight_ih" + suffix, Shape{gates, features_}, {}});
    specs.push_back({"weight_hh" + suffix, Shape{gates, units_}, {}});
    if (!directions_[d].bias.trained()) continue;
    if (cell_.recurrent_bias)
      specs.push_back({"bias_ih_hh" + suffix, Shape{2, gates}, {}});
    else
      specs.push_back({"bias_ih" + suffix, Shape{gates}, {}});
  }
  return specs;
}

void Recurrent::bind(std::span<float* const> params, std::span<float* const> grads) {
  const int64_t gates = cell_.gates * units_;
  size_t at = 0;
  for (Direction& dir : directions_) {
    dir.weight_ih = params[at];
    dir.weight_ih_grad = grads[at++];
    dir.weight_hh = params[at];
    dir.weight_hh_grad = grads[at++];
    if (!dir.bias.trained()) continue;
    dir.bias.bind(params[at], grads[at]);
    if (cell_.recurrent_bias) dir.recurrent_bias.bind(params[at] + gates, grads[at] + gates);
    ++at;
  }
}

namespace {

// Keras' Orthogonal initializer for the recurrent kernel (units, gates units): the Q of a QR
// factorization of a normal (gates units, units) matrix, signed so that R's diagonal is positive,
// is what Gram-Schmidt makes of its columns; Keras' kernel is its transpose, weight_hh_l0 Q itself.
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

void Recurrent::init_params(Rng& rng, std::span<const std::span<float>> params) const {
  const int64_t gates = cell_.gates * units_;
  const float limit = std::sqrt(6.0f / static_cast<float>(features_ + gates));
  size_t at = 0;
  for (const Direction& dir : directions_) {
    for (float& w : params[at++]) w = rng.uniform(-limit, limit);
    orthogonal_columns(rng, params[at++], gates, units_);
    if (!dir.bias.trained()) continue;
    const std::span<float> biases = params[at++];
    std::ranges::fill(biases, 0.0f);
    init_input_bias(biases.first(static_cast<size_t>(gates)));
  }
}

void Recurrent::reorder(ComputeBackend& backend, const float* from, float* to, int64_t batch,
                        int64_t width, int64_t stride, int64_t column, bool back) const {
  for (int64_t t = 0; t < steps_; ++t) {
    if (back)
      backend.copy_matrix(from + t * batch * width, width, 1, to + t * stride + column,
                          steps_ * stride, batch, width);
    else
      backend.copy_matrix(from + t * stride + column, steps_ * stride, 1, to + t * batch * width,
                          width, batch, width);
  }
}

void Recurrent::sum_gradients(ComputeBackend& backend, const float* dh, const float* dh_more,
                              float* out, int64_t batch) const {
  backend.copy_matrix(dh ? dh : dh_more, units_, 1, out, units_, batch, units_);
  if (dh && dh_more) backend.add_to(dh_more, out, static_cast<size_t>(batch * units_));
}

uint64_t Recurrent::input_key(int d) const { return counter_hash(pass_.key, 2 * d); }
uint64_t Recurrent::recurrent_key(int d) const { return counter_hash(pass_.key, 2 * d + 1); }

void Recurrent::mask_steps(ComputeBackend& backend, const float* from, float* to, int64_t batch,
                           int64_t width, float rate, uint64_t key) const {
  for (int64_t t = 0; t < steps_; ++t)
    backend.dropout(from + t * batch * width, to + t * batch * width, batch, width, 1, rate, key,
                    pass_.first_position);
}

void Recurrent::run_steps(ComputeBackend& backend, int d, int64_t batch) {
  Direction& dir = directions_[static_cast<size_t>(d)];
  const bool reverse = d == 1;
  const int64_t rows = steps_ * batch, gates = cell_.gates * units_, step = batch * units_;
  const int64_t kept = cell_.kept * units_;
  dir.inputs = x_steps_.data();
  if (input_rate() > 0) {
    float* const masked = sized(backend, dir.x_masked, rows * features_);
    mask_steps(backend, x_steps_.data(), masked, batch, features_, input_rate(), input_key(d));
    dir.inputs = masked;
  }
  float* const input_products = sized(backend, dir.input_products, rows * gates);
  backend.dense_forward(dir.inputs, dir.weight_ih, dir.bias.values(backend), input_products, rows,
                        features_, gates, Activation::kLinear);
  float* const h_masked =
      recurrent_rate() > 0 ? sized(backend, dir.h_masked, rows * units_) : nullptr;
  float* const h = sized(backend, dir.h, rows * units_ + step);
  float* const kept_steps = sized(backend, dir.kept, rows * kept);
  float* const recurrent = sized(backend, recurrent_, batch * gates);
  const int64_t start = reverse ? steps_ : 0;  // the zero slot
  backend.fill_zero(h + start * step, static_cast<size_t>(step));
  start_steps(backend, d, start, batch);
  for (int64_t i = 0; i < steps_; ++i) {
    const int64_t t = reverse ? steps_ - 1 - i : i;
    const int64_t before = reverse ? t + 1 : t, after = reverse ? t : t + 1;
    // The recurrent product reads h after its dropout, kept by step for backward. The first
    // step's h is zero: its product is the recurrent bias alone.
    const float* h_before = h + before * step;
    if (h_masked) {
      backend.dropout(h_before, h_masked + t * step, batch, units_, 1, recurrent_rate(),
                      recurrent_key(d), pass_.first_position);
      h_before = h_masked + t * step;
    }
    backend.dense_forward(h_before, dir.weight_hh, dir.recurrent_bias.values(backend), recurrent,
                          batch, units_, gates, Activation::kLinear);
    cell_forward(backend, d, input_products + t * batch * gates, recurrent,
                 kept_steps + t * batch * kept, before, after, batch);
    if (steps_mask_) {  // padding rows keep the state before the step
      const float* const mask_t = steps_mask_ + t * batch;
      backend.carry_rows(mask_t, h + before * step, h + after * step, batch, units_);
      carry_state(backend, d, mask_t, before, after, batch);
    }
  }
}

void Recurrent::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  reorder(backend, x, sized(backend, x_steps_, steps_ * batch * features_), batch, features_,
          features_, 0, false);
  steps_mask_ = nullptr;
  if (mask_) {  // time-major, as the steps: (steps, batch)
    float* const mask_steps = sized(backend, mask_steps_, steps_ * batch);
    backend.copy_matrix(mask_, 1, steps_, mask_steps, batch, steps_, batch);
    steps_mask_ = mask_steps;
  }
  const int64_t width = directions() * units_, step = batch * units_;
  for (int d = 0; d < directions(); ++d) {
    run_steps(backend, d, batch);
    const float* const h = directions_[static_cast<size_t>(d)].h.data();
    if (return_sequences_)  // each step's h after it: slots 1.. forward, 0.. reverse
      reorder(backend, h + (d == 1 ? 0 : step), y, batch, units_, width, d * units_, true);
    else  // the last step's: slot `steps` forward, 0 reverse
      backend.copy_matrix(h + (d == 1 ? 0 : steps_ * step), units_, 1, y + d * units_, width, batch,
                          units_);
  }
  steps_of_ = x;
  steps_batch_ = batch;
}

void Recurrent::backward_steps(ComputeBackend& backend, int d, const float* dy, int64_t batch,
                               bool accumulate, bool input_grad) {
  Direction& dir = directions_[static_cast<size_t>(d)];
  const bool reverse = d == 1;
  const int64_t rows = steps_ * batch, gates = cell_.gates * units_, step = batch * units_;
  const int64_t kept = cell_.kept * units_, width = directions() * units_;
  float* const dxp = sized(backend, dxp_, rows * gates);
  float* const dhu = cell_.recurrent_bias ? sized(backend, dhu_, rows * gates) : dxp;
  float* const dh = sized(backend, dh_, step);
  float* const carry = sized(backend, carry_, step);
  backend.fill_zero(carry, static_cast<size_t>(step));
  // This direction's dy, time-major: every step's, or the last step's alone.
  float* const dy_steps = sized(backend, dy_steps_, return_sequences_ ? rows * units_ : step);
  if (return_sequences_)
    reorder(backend, dy, dy_steps, batch, units_, width, d * units_, false);
  else
    backend.copy_matrix(dy + d * units_, width, 1, dy_steps, units_, batch, units_);
  float* const weight_hh_t = sized(backend, weight_hh_t_, gates * units_);
  backend.copy_matrix(dir.weight_hh, 1, units_, weight_hh_t, gates, units_, gates);
  for (int64_t i = steps_ - 1; i >= 0; --i) {  // back from the direction's last step
    const int64_t t = reverse ? steps_ - 1 - i : i;
    const int64_t before = reverse ? t + 1 : t, after = reverse ? t : t + 1;
    const float* const dh_out =
        return_sequences_ ? dy_steps + t * step : (i == steps_ - 1 ? dy_steps : nullptr);
    float* const dhu_t = dhu + t * batch * gates;
    const float* const dh_more = i < steps_ - 1 ? dh : nullptr;
    const float* const mask_t = steps_mask_ ? steps_mask_ + t * batch : nullptr;
    float* const through = mask_t ? sized(backend, through_, step) : nullptr;
    if (mask_t) {  // h's gradient past a padding step, and the cell's carry before it
      sum_gradients(backend, dh_out, dh_more, through, batch);
      backend.copy_matrix(carry, units_, 1, sized(backend, carried_, step), units_, batch, units_);
    }
    cell_backward(backend, d, dir.kept.data() + t * batch * kept, before, after, dh_out, dh_more,
                  carry, dxp + t * batch * gates, dhu_t, batch);
    if (mask_t) {  // padding rows: no gradient into the step's products, the carry passed on
      const float* const zeros = sized(backend, zero_rows_, batch * gates);
      backend.carry_rows(mask_t, zeros, dxp + t * batch * gates, batch, gates);
      if (dhu_t != dxp + t * batch * gates) backend.carry_rows(mask_t, zeros, dhu_t, batch, gates);
      backend.carry_rows(mask_t, carried_.data(), carry, batch, units_);
    }
    // dh for the step before: dhu W_hh, as the product with W_hh's transpose (units, gates
    // units), through the recurrent dropout's mask; a padding row's passes through whole.
    if (i == 0) continue;
    backend.dense_forward(dhu_t, weight_hh_t, no_bias_units_.values(backend), dh, batch, gates,
                          units_, Activation::kLinear);
    if (recurrent_rate() > 0)
      backend.dropout(dh, dh, batch, units_, 1, recurrent_rate(), recurrent_key(d),
                      pass_.first_position);
    if (mask_t) backend.carry_rows(mask_t, through, dh, batch, units_);
  }
  // The weight gradients over all steps at once: against the h before each step as the recurrent
  // products read them (the `steps` slots from the first forward, from the second reverse, or
  // after their dropout) and against the inputs.
  const float* const h = dir.h.data();
  const float* const h_before =
      recurrent_rate() > 0 ? dir.h_masked.data() : h + (reverse ? step : 0);
  backend.dense_backward(h_before, dir.weight_hh, dhu, dhu, nullptr, dir.weight_hh_grad,
                         dir.recurrent_bias.grad(backend), rows, units_, gates, Activation::kLinear,
                         accumulate, nullptr);
  float* const dx_steps = input_grad ? sized(backend, dir.dx_steps, rows * features_) : nullptr;
  backend.dense_backward(dir.inputs, dir.weight_ih, dxp, dxp, dx_steps, dir.weight_ih_grad,
                         dir.bias.grad(backend), rows, features_, gates, Activation::kLinear,
                         accumulate, nullptr);
  if (dx_steps && input_rate() > 0)
    mask_steps(backend, dx_steps, dx_steps, batch, features_, input_rate(), input_key(d));
}

void Recurrent::backward(ComputeBackend& backend, const float* x, const float* /*y*/, float* dy,
                         float* dx, int64_t batch, bool accumulate) {
  // Backward reads what forward kept for its input; after another input's forward (or none), the
  // steps run again into a scratch output.
  if (x != steps_of_ || batch != steps_batch_) {
    DeviceBuffer output(backend, static_cast<size_t>(batch * output_shape().numel()));
    forward(backend, x, output.data(), batch);
  }
  for (int d = 0; d < directions(); ++d)
    backward_steps(backend, d, dy, batch, accumulate, dx != nullptr);
  if (!dx) return;
  float* const dx_steps = directions_[0].dx_steps.data();
  const auto count = static_cast<size_t>(steps_ * batch * features_);
  if (bidirectional_) backend.add_to(directions_[1].dx_steps.data(), dx_steps, count);
  reorder(backend, dx_steps, dx, batch, features_, features_, 0, true);
}

}  // namespace ddp
