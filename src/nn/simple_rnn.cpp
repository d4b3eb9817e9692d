#include "nn/simple_rnn.h"

namespace ddp {

SimpleRnn::SimpleRnn(int64_t steps, int64_t features, int64_t units, bool return_sequences,
                     bool use_bias, bool bidirectional, float dropout, float recurrent_dropout,
                     Activation activation)
    : Recurrent(
          {.gates = 1, .kept = derivative_from_output(activation) ? 0 : 1, .recurrent_bias = false},
          steps, features, units, return_sequences, use_bias, bidirectional, dropout,
          recurrent_dropout),
      activation_(activation) {}

void SimpleRnn::cell_forward(ComputeBackend& backend, int d, const float* xp, float* hu,
                             float* kept, int64_t /*before*/, int64_t after, int64_t batch) {
  const int64_t step = batch * units_;
  // The sum lands in the recurrent product's scratch, or where backward finds it.
  float* const sum = derivative_from_output(activation_) ? hu : kept;
  if (sum != hu) backend.copy_matrix(hu, units_, 1, sum, units_, batch, units_);
  backend.add_to(xp, sum, static_cast<size_t>(step));
  backend.activation_forward(activation_, sum, h_slots(d) + after * step,
                             static_cast<size_t>(step));
}

void SimpleRnn::cell_backward(ComputeBackend& backend, int d, const float* kept, int64_t /*before*/,
                              int64_t after, const float* dh, const float* dh_more,
                              float* /*carry: none*/, float* dxp, float* /*dhu: dxp*/,
                              int64_t batch) {
  const int64_t step = batch * units_;
  sum_gradients(backend, dh, dh_more, dxp, batch);
  backend.activation_backward(activation_, kept, h_slots(d) + after * step, dxp, dxp,
                              static_cast<size_t>(step));
}

}  // namespace ddp
