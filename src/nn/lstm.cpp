#include "nn/lstm.h"

#include <algorithm>

namespace ddp {

Lstm::Lstm(int64_t steps, int64_t features, int64_t units, bool return_sequences, bool use_bias,
           bool bidirectional, float dropout, float recurrent_dropout)
    : Recurrent({.gates = 4, .kept = 4, .recurrent_bias = false}, steps, features, units,
                return_sequences, use_bias, bidirectional, dropout, recurrent_dropout),
      c_(static_cast<size_t>(directions())) {}

void Lstm::init_input_bias(std::span<float> bias) const {
  std::fill(bias.begin() + units_, bias.begin() + 2 * units_, 1.0f);
}

void Lstm::start_steps(ComputeBackend& backend, int d, int64_t start, int64_t batch) {
  const int64_t step = batch * units_;
  float* const c = sized(backend, c_[static_cast<size_t>(d)], (steps_ + 1) * step);
  backend.fill_zero(c + start * step, static_cast<size_t>(step));
}

void Lstm::carry_state(ComputeBackend& backend, int d, const float* mask_t, int64_t before,
                       int64_t after, int64_t batch) {
  const int64_t step = batch * units_;
  float* const c = c_[static_cast<size_t>(d)].data();
  backend.carry_rows(mask_t, c + before * step, c + after * step, batch, units_);
}

void Lstm::cell_forward(ComputeBackend& backend, int d, const float* xp, float* hu, float* kept,
                        int64_t before, int64_t after, int64_t batch) {
  const int64_t step = batch * units_;
  float* const c = c_[static_cast<size_t>(d)].data();
  backend.lstm_cell_forward(xp, hu, c + before * step, kept, c + after * step,
                            h_slots(d) + after * step, batch, units_);
}

void Lstm::cell_backward(ComputeBackend& backend, int d, const float* kept, int64_t before,
                         int64_t after, const float* dh, const float* dh_more, float* carry,
                         float* dxp, float* /*dhu: dxp*/, int64_t batch) {
  const int64_t step = batch * units_;
  const float* const c = c_[static_cast<size_t>(d)].data();
  backend.lstm_cell_backward(kept, c + before * step, c + after * step, dh, dh_more, carry, dxp,
                             batch, units_);
}

}  // namespace ddp
