#include "nn/gru.h"

namespace ddp {

// The cell keeps r, z, n and the recurrent product's n block (backend/gru_cell.h).
Gru::Gru(int64_t steps, int64_t features, int64_t units, bool return_sequences, bool use_bias,
         bool bidirectional, float dropout, float recurrent_dropout)
    : Recurrent({.gates = 3, .kept = 4, .recurrent_bias = true}, steps, features, units,
                return_sequences, use_bias, bidirectional, dropout, recurrent_dropout) {}

void Gru::cell_forward(ComputeBackend& backend, int d, const float* xp, float* hu, float* kept,
                       int64_t before, int64_t after, int64_t batch) {
  const int64_t step = batch * units_;
  backend.gru_cell_forward(xp, hu, h_slots(d) + before * step, kept, h_slots(d) + after * step,
                           batch, units_);
}

void Gru::cell_backward(ComputeBackend& backend, int d, const float* kept, int64_t before,
                        int64_t /*after*/, const float* dh, const float* dh_more, float* carry,
                        float* dxp, float* dhu, int64_t batch) {
  backend.gru_cell_backward(kept, h_slots(d) + before * batch * units_, dh, dh_more, carry, dxp,
                            dhu, batch, units_);
}

}  // namespace ddp
