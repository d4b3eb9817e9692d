#pragma once
// The CUDA backend's pieces of recurrent layers (see ComputeBackend::copy_matrix, add_to,
// carry_rows, masking, mask_keys and the LSTM's and GRU's cell ops). Each launches on `stream` and
// returns without waiting.

#include <cuda_runtime.h>

#include <cstdint>

namespace ddp::cuda {

void copy_matrix(const float* src, int64_t src_row_stride, int64_t src_col_stride, float* dst,
                 int64_t dst_row_stride, int64_t rows, int64_t cols, cudaStream_t stream);
void add_to(const float* x, float* y, size_t count, cudaStream_t stream);
void mask_keys(float* scores, const float* key_mask, bool causal, int64_t samples, int64_t rows,
               int64_t steps, float value, cudaStream_t stream);
void carry_rows(const float* mask, const float* from, float* to, int64_t rows, int64_t width,
                cudaStream_t stream);
void masking_forward(const float* x, float value, float* mask, float* y, int64_t rows,
                     int64_t width, cudaStream_t stream);
void masking_backward(const float* mask, const float* dy, float* dx, int64_t rows, int64_t width,
                      cudaStream_t stream);
void lstm_cell_forward(const float* xp, const float* hu, const float* c_prev, float* gates,
                       float* c, float* h, int64_t batch, int64_t units, cudaStream_t stream);
void lstm_cell_backward(const float* gates, const float* c_prev, const float* c, const float* dh,
                        const float* dh_more, float* dc, float* dgates, int64_t batch,
                        int64_t units, cudaStream_t stream);
void gru_cell_forward(const float* xp, const float* hu, const float* h_prev, float* kept, float* h,
                      int64_t batch, int64_t units, cudaStream_t stream);
void gru_cell_backward(const float* kept, const float* h_prev, const float* dh,
                       const float* dh_more, float* carry, float* dxp, float* dhu, int64_t batch,
                       int64_t units, cudaStream_t stream);

}  // namespace ddp::cuda
