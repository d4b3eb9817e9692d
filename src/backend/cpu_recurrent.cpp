#include "backend/cpu_recurrent.h"

#include <algorithm>
#include <cstring>

#include "backend/gru_cell.h"
#include "backend/lstm_cell.h"
#include "core/simd.h"

namespace ddp::cpu {

void copy_matrix(const float* src, int64_t src_row_stride, int64_t src_col_stride, float* dst,
                 int64_t dst_row_stride, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* from = src + r * src_row_stride;
    float* to = dst + r * dst_row_stride;
    if (src_col_stride == 1) {
      std::memcpy(to, from, static_cast<size_t>(cols) * sizeof(float));
      continue;
    }
    for (int64_t c = 0; c < cols; ++c) to[c] = from[c * src_col_stride];
  }
}

void masking_forward_rows(const float* x, float value, float* mask, float* y, int64_t first,
                          int64_t end, int64_t width) {
  for (int64_t r = first; r < end; ++r) {
    const float* row = x + r * width;
    mask[r] = std::all_of(row, row + width, [value](float v) { return v == value; }) ? 0.0f : 1.0f;
  }
  masked_rows(mask, x, y, first, end, width);
}

void masked_rows(const float* mask, const float* dy, float* dx, int64_t first, int64_t end,
                 int64_t width) {
  for (int64_t r = first; r < end; ++r) {
    const auto at = static_cast<size_t>(r * width);
    if (mask[r] != 0)
      std::copy_n(dy + at, width, dx + at);
    else
      std::fill_n(dx + at, width, 0.0f);
  }
}

#ifdef DDP_SIMD_TILES
namespace {

using namespace simd;

// Lanes [j, j + kLanes) of a row's `units`, those past the end left out.
struct Lanes {
  Lanes(int64_t j, int64_t units)
      : mask(first_lanes(std::min<int64_t>(kLanes, units - j))), whole(units - j >= kLanes) {}
  Vec load(const float* p) const { return load_edge(p, mask, whole); }
  void store(float* p, Vec v) const { store_edge(p, mask, whole, v); }
  Mask mask;
  bool whole;
};

}  // namespace

void lstm_forward_rows(const float* xp, const float* hu, const float* c_prev, float* gates,
                       float* c, float* h, int64_t first, int64_t end, int64_t units) {
  for (int64_t b = first; b < end; ++b)
    for (int64_t j = 0; j < units; j += kLanes) {
      const Lanes lanes(j, units);
      const int64_t row = b * 4 * units + j, at = b * units + j;
      Vec act[4];
      for (int k = 0; k < 4; ++k) {
        const Vec z =
            add(lanes.load(xp + row + k * units), hu ? lanes.load(hu + row + k * units) : zero());
        act[k] = k == 2 ? tanh(z) : sigmoid(z);
        lanes.store(gates + row + k * units, act[k]);
      }
      const Vec cell = fma(act[1], lanes.load(c_prev + at), mul(act[0], act[2]));
      lanes.store(c + at, cell);
      lanes.store(h + at, mul(act[3], tanh(cell)));
    }
}

void lstm_backward_rows(const float* gates, const float* c_prev, const float* c, const float* dh,
                        const float* dh_more, float* dc, float* dgates, int64_t first, int64_t end,
                        int64_t units) {
  const Vec one = broadcast(1);
  for (int64_t b = first; b < end; ++b)
    for (int64_t j = 0; j < units; j += kLanes) {
      const Lanes lanes(j, units);
      const int64_t row = b * 4 * units + j, at = b * units + j;
      const Vec i = lanes.load(gates + row), f = lanes.load(gates + row + units);
      const Vec g = lanes.load(gates + row + 2 * units), o = lanes.load(gates + row + 3 * units);
      const Vec grad_h =
          add(dh ? lanes.load(dh + at) : zero(), dh_more ? lanes.load(dh_more + at) : zero());
      const Vec t = tanh(lanes.load(c + at));
      const Vec grad_c = fma(mul(grad_h, o), sub(one, mul(t, t)), lanes.load(dc + at));
      lanes.store(dgates + row, mul(mul(grad_c, g), mul(i, sub(one, i))));
      lanes.store(dgates + row + units,
                  mul(mul(grad_c, lanes.load(c_prev + at)), mul(f, sub(one, f))));
      lanes.store(dgates + row + 2 * units, mul(mul(grad_c, i), sub(one, mul(g, g))));
      lanes.store(dgates + row + 3 * units, mul(mul(grad_h, t), mul(o, sub(one, o))));
      lanes.store(dc + at, mul(grad_c, f));
    }
}

void gru_forward_rows(const float* xp, const float* hu, const float* h_prev, float* kept, float* h,
                      int64_t first, int64_t end, int64_t units) {
  const Vec one = broadcast(1);
  for (int64_t b = first; b < end; ++b)
    for (int64_t j = 0; j < units; j += kLanes) {
      const Lanes lanes(j, units);
      const int64_t row = b * 3 * units + j, at = b * units + j, keep = b * 4 * units + j;
      const Vec r = sigmoid(add(lanes.load(xp + row), lanes.load(hu + row)));
      const Vec z = sigmoid(add(lanes.load(xp + row + units), lanes.load(hu + row + units)));
      const Vec hn = lanes.load(hu + row + 2 * units);
      const Vec n = tanh(fma(r, hn, lanes.load(xp + row + 2 * units)));
      lanes.store(kept + keep, r);
      lanes.store(kept + keep + units, z);
      lanes.store(kept + keep + 2 * units, n);
      lanes.store(kept + keep + 3 * units, hn);
      lanes.store(h + at, fma(z, lanes.load(h_prev + at), mul(sub(one, z), n)));
    }
}

void gru_backward_rows(const float* kept, const float* h_prev, const float* dh,
                       const float* dh_more, float* carry, float* dxp, float* dhu, int64_t first,
                       int64_t end, int64_t units) {
  const Vec one = broadcast(1);
  for (int64_t b = first; b < end; ++b)
    for (int64_t j = 0; j < units; j += kLanes) {
      const Lanes lanes(j, units);
      const int64_t row = b * 3 * units + j, at = b * units + j, keep = b * 4 * units + j;
      const Vec r = lanes.load(kept + keep), z = lanes.load(kept + keep + units);
      const Vec n = lanes.load(kept + keep + 2 * units), hn = lanes.load(kept + keep + 3 * units);
      const Vec grad_h =
          add(add(dh ? lanes.load(dh + at) : zero(), dh_more ? lanes.load(dh_more + at) : zero()),
              lanes.load(carry + at));
      const Vec dn = mul(mul(grad_h, sub(one, z)), sub(one, mul(n, n)));
      const Vec dr = mul(mul(dn, hn), mul(r, sub(one, r)));
      const Vec dz = mul(mul(grad_h, sub(lanes.load(h_prev + at), n)), mul(z, sub(one, z)));
      lanes.store(dxp + row, dr);
      lanes.store(dxp + row + units, dz);
      lanes.store(dxp + row + 2 * units, dn);
      lanes.store(dhu + row, dr);
      lanes.store(dhu + row + units, dz);
      lanes.store(dhu + row + 2 * units, mul(dn, r));
      lanes.store(carry + at, mul(grad_h, z));
    }
}

#else  // one unit at a time, as the CUDA kernels

void lstm_forward_rows(const float* xp, const float* hu, const float* c_prev, float* gates,
                       float* c, float* h, int64_t first, int64_t end, int64_t units) {
  for (int64_t b = first; b < end; ++b)
    for (int64_t j = 0; j < units; ++j) lstm_unit_forward(xp, hu, c_prev, gates, c, h, b, j, units);
}

void lstm_backward_rows(const float* gates, const float* c_prev, const float* c, const float* dh,
                        const float* dh_more, float* dc, float* dgates, int64_t first, int64_t end,
                        int64_t units) {
  for (int64_t b = first; b < end; ++b)
    for (int64_t j = 0; j < units; ++j)
      lstm_unit_backward(gates, c_prev, c, dh, dh_more, dc, dgates, b, j, units);
}

void gru_forward_rows(const float* xp, const float* hu, const float* h_prev, float* kept, float* h,
                      int64_t first, int64_t end, int64_t units) {
  for (int64_t b = first; b < end; ++b)
    for (int64_t j = 0; j < units; ++j) gru_unit_forward(xp, hu, h_prev, kept, h, b, j, units);
}

void gru_backward_rows(const float* kept, const float* h_prev, const float* dh,
                       const float* dh_more, float* carry, float* dxp, float* dhu, int64_t first,
                       int64_t end, int64_t units) {
  for (int64_t b = first; b < end; ++b)
    for (int64_t j = 0; j < units; ++j)
      gru_unit_backward(kept, h_prev, dh, dh_more, carry, dxp, dhu, b, j, units);
}

#endif

}  // namespace ddp::cpu
