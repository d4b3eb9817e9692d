#pragma once
// One unit of one step of an LSTM cell (Note [recurrent steps]), which the CPU's loops and the CUDA
// kernels share. A row's gates are four blocks of `units`, in Keras' and PyTorch's order: input
// (i), forget (f), candidate (g), output (o).

#include <cmath>
#include <cstdint>

#include "core/host_device.h"

namespace ddp {

DDP_HOST_DEVICE inline float lstm_sigmoid(float z) { return 1 / (1 + expf(-z)); }

// Row b's unit j: the gates from their pre-activations xp + hu (the input's and the recurrent
// products, (batch, 4 units) each; hu null at the first step, whose h is zero), kept in `gates`
// as i, f, g, o after their activations; c = f c_prev + i g; h = o tanh(c).
DDP_HOST_DEVICE inline void lstm_unit_forward(const float* xp, const float* hu, const float* c_prev,
                                              float* gates, float* c, float* h, int64_t b,
                                              int64_t j, int64_t units) {
  const int64_t row = b * 4 * units + j;
  float z[4];
  for (int k = 0; k < 4; ++k) z[k] = xp[row + k * units] + (hu ? hu[row + k * units] : 0.0f);
  const float i = lstm_sigmoid(z[0]), f = lstm_sigmoid(z[1]), g = tanhf(z[2]);
  const float o = lstm_sigmoid(z[3]);
  const int64_t at = b * units + j;
  const float cell = f * c_prev[at] + i * g;
  gates[row] = i;
  gates[row + units] = f;
  gates[row + 2 * units] = g;
  gates[row + 3 * units] = o;
  c[at] = cell;
  h[at] = o * tanhf(cell);
}

// Its backward: dh (the output's gradient) plus dh_more (the next step's, through its recurrent
// product; either may be null) and dc (the next step's cell gradient, f_next dc_next) give the
// gates' pre-activation gradients in dgates; dc becomes this step's f dc for the step before.
DDP_HOST_DEVICE inline void lstm_unit_backward(const float* gates, const float* c_prev,
                                               const float* c, const float* dh,
                                               const float* dh_more, float* dc, float* dgates,
                                               int64_t b, int64_t j, int64_t units) {
  const int64_t row = b * 4 * units + j;
  const int64_t at = b * units + j;
  const float i = gates[row], f = gates[row + units], g = gates[row + 2 * units];
  const float o = gates[row + 3 * units];
  const float grad_h = (dh ? dh[at] : 0.0f) + (dh_more ? dh_more[at] : 0.0f);
  const float t = tanhf(c[at]);
  const float grad_c = dc[at] + grad_h * o * (1 - t * t);
  dgates[row] = grad_c * g * i * (1 - i);
  dgates[row + units] = grad_c * c_prev[at] * f * (1 - f);
  dgates[row + 2 * units] = grad_c * i * (1 - g * g);
  dgates[row + 3 * units] = grad_h * t * o * (1 - o);
  dc[at] = grad_c * f;
}

}  // namespace ddp
