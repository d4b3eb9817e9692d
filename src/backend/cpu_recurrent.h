#pragma once
// The CPU's pieces of recurrent layers (ComputeBackend::copy_matrix, masking and the LSTM's and
// GRU's cell ops): each over rows [first, end) of the batch, so that threads can share them.

#include <cstdint>

namespace ddp::cpu {

void copy_matrix(const float* src, int64_t src_row_stride, int64_t src_col_stride, float* dst,
                 int64_t dst_row_stride, int64_t rows, int64_t cols);

// ComputeBackend::masking_forward's rows [first, end), and its backward's: dx is dy with the rows
// of mask 0 zeroed.
void masking_forward_rows(const float* x, float value, float* mask, float* y, int64_t first,
                          int64_t end, int64_t width);
void masked_rows(const float* mask, const float* dy, float* dx, int64_t first, int64_t end,
                 int64_t width);

void lstm_forward_rows(const float* xp, const float* hu, const float* c_prev, float* gates,
                       float* c, float* h, int64_t first, int64_t end, int64_t units);
void lstm_backward_rows(const float* gates, const float* c_prev, const float* c, const float* dh,
                        const float* dh_more, float* dc, float* dgates, int64_t first, int64_t end,
                        int64_t units);
void gru_forward_rows(const float* xp, const float* hu, const float* h_prev, float* kept, float* h,
                      int64_t first, int64_t end, int64_t units);
void gru_backward_rows(const float* kept, const float* h_prev, const float* dh,
                       const float* dh_more, float* carry, float* dxp, float* dhu, int64_t first,
                       int64_t end, int64_t units);

}  // namespace ddp::cpu
