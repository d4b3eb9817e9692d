#pragma once
// One unit of one step of a GRU cell (Note [recurrent steps]), which the CPU's loops and the CUDA
// kernels share: PyTorch's nn.GRU, Keras' GRU with reset_after (its default). A row's gates are
// three blocks of `units` in PyTorch's order: reset (r), update (z), new (n); Keras' are z, r, h.

#include <cmath>
#include <cstdint>

#include "backend/lstm_cell.h"
#include "core/host_device.h"

namespace ddp {

// Row b's unit j from the input's and the recurrent products xp and hu ((batch, 3 units) each, the
// recurrent one with its own bias): r = sigmoid(xp_r + hu_r), z = sigmoid(xp_z + hu_z),
// n = tanh(xp_n + r hu_n), h = (1 - z) n + z h_prev. `kept` (batch, 4 units) holds r, z, n and hu_n
// for backward.
DDP_HOST_DEVICE inline void gru_unit_forward(const float* xp, const float* hu, const float* h_prev,
                                             float* kept, float* h, int64_t b, int64_t j,
                                             int64_t units) {
  const int64_t row = b * 3 * units + j, at = b * units + j, keep = b * 4 * units + j;
  const float r = lstm_sigmoid(xp[row] + hu[row]);
  const float z = lstm_sigmoid(xp[row + units] + hu[row + units]);
  const float hn = hu[row + 2 * units];
  const float n = tanhf(xp[row + 2 * units] + r * hn);
  kept[keep] = r;
  kept[keep + units] = z;
  kept[keep + 2 * units] = n;
  kept[keep + 3 * units] = hn;
  h[at] = (1 - z) * n + z * h_prev[at];
}

// Its backward: dh (the output's gradient) plus dh_more (the next step's, through its recurrent
// product; either may be null) plus carry (the next step's z dh, its direct path to this h) give
// the pre-activation gradients of the input's products in dxp and of the recurrent ones in dhu
// (the same but n's, which r scales in the recurrent product); carry becomes this step's z dh.
DDP_HOST_DEVICE inline void gru_unit_backward(const float* kept, const float* h_prev,
                                              const float* dh, const float* dh_more, float* carry,
                                              float* dxp, float* dhu, int64_t b, int64_t j,
                                              int64_t units) {
  const int64_t row = b * 3 * units + j, at = b * units + j, keep = b * 4 * units + j;
  const float r = kept[keep], z = kept[keep + units], n = kept[keep + 2 * units];
  const float hn = kept[keep + 3 * units];
  const float grad_h = (dh ? dh[at] : 0.0f) + (dh_more ? dh_more[at] : 0.0f) + carry[at];
  const float dn = grad_h * (1 - z) * (1 - n * n);
  const float dr = dn * hn * r * (1 - r);
  const float dz = grad_h * (h_prev[at] - n) * z * (1 - z);
  dxp[row] = dr;
  dxp[row + units] = dz;
  dxp[row + 2 * units] = dn;
  dhu[row] = dr;
  dhu[row + units] = dz;
  dhu[row + 2 * units] = dn * r;
  carry[at] = grad_h * z;
}

}  // namespace ddp
