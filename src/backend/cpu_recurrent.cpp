#include "backend/cpu_recurrent.h"

#include <cstring>

#include "backend/lstm_cell.h"

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

}  // namespace ddp::cpu
