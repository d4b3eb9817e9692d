#include "backend/cuda_check.h"
#include "backend/cuda_launch.cuh"
#include "backend/cuda_recurrent.h"
#include "backend/gru_cell.h"
#include "backend/lstm_cell.h"

namespace ddp::cuda {
namespace {

__global__ void copy_matrix_kernel(const float* src, int64_t src_row_stride, int64_t src_col_stride,
                                   float* dst, int64_t dst_row_stride, int64_t rows, int64_t cols) {
  for (int64_t e = start(); e < rows * cols; e += stride()) {
    const int64_t r = e / cols, c = e % cols;
    dst[r * dst_row_stride + c] = src[r * src_row_stride + c * src_col_stride];
  }
}

__global__ void add_kernel(const float* x, float* y, int64_t n) {
  for (int64_t e = start(); e < n; e += stride()) y[e] += x[e];
}

__global__ void carry_rows_kernel(const float* mask, const float* from, float* to, int64_t rows,
                                  int64_t width) {
  for (int64_t e = start(); e < rows * width; e += stride())
    if (mask[e / width] == 0) to[e] = from[e];
}

// Element e: key e % steps of the query at step e / steps % steps (its row's, e / steps, within
// the sample's rows).
__global__ void mask_keys_kernel(float* scores, const float* key_mask, bool causal, int64_t samples,
                                 int64_t rows, int64_t steps, float value) {
  for (int64_t e = start(); e < samples * rows * steps; e += stride()) {
    const int64_t key = e % steps;
    if ((key_mask && key_mask[e / (rows * steps) * steps + key] == 0) ||
        (causal && key > e / steps % steps))
      scores[e] = value;
  }
}

// One thread per row: its mask, then its values.
__global__ void masking_forward_kernel(const float* x, float value, float* mask, float* y,
                                       int64_t rows, int64_t width) {
  for (int64_t r = start(); r < rows; r += stride()) {
    bool real = false;
    for (int64_t c = 0; c < width; ++c) real = real || x[r * width + c] != value;
    mask[r] = real ? 1.0f : 0.0f;
    for (int64_t c = 0; c < width; ++c) y[r * width + c] = real ? x[r * width + c] : 0.0f;
  }
}

__global__ void masked_rows_kernel(const float* mask, const float* dy, float* dx, int64_t rows,
                                   int64_t width) {
  for (int64_t e = start(); e < rows * width; e += stride())
    dx[e] = mask[e / width] != 0 ? dy[e] : 0.0f;
}

__global__ void lstm_forward_kernel(const float* xp, const float* hu, const float* c_prev,
                                    float* gates, float* c, float* h, int64_t batch,
                                    int64_t units) {
  for (int64_t e = start(); e < batch * units; e += stride())
    lstm_unit_forward(xp, hu, c_prev, gates, c, h, e / units, e % units, units);
}

__global__ void lstm_backward_kernel(const float* gates, const float* c_prev, const float* c,
                                     const float* dh, const float* dh_more, float* dc,
                                     float* dgates, int64_t batch, int64_t units) {
  for (int64_t e = start(); e < batch * units; e += stride())
    lstm_unit_backward(gates, c_prev, c, dh, dh_more, dc, dgates, e / units, e % units, units);
}

__global__ void gru_forward_kernel(const float* xp, const float* hu, const float* h_prev,
                                   float* kept, float* h, int64_t batch, int64_t units) {
  for (int64_t e = start(); e < batch * units; e += stride())
    gru_unit_forward(xp, hu, h_prev, kept, h, e / units, e % units, units);
}

__global__ void gru_backward_kernel(const float* kept, const float* h_prev, const float* dh,
                                    const float* dh_more, float* carry, float* dxp, float* dhu,
                                    int64_t batch, int64_t units) {
  for (int64_t e = start(); e < batch * units; e += stride())
    gru_unit_backward(kept, h_prev, dh, dh_more, carry, dxp, dhu, e / units, e % units, units);
}

}  // namespace

void copy_matrix(const float* src, int64_t src_row_stride, int64_t src_col_stride, float* dst,
                 int64_t dst_row_stride, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows * cols == 0) return;
  copy_matrix_kernel<<<blocks_for(rows * cols), kThreads, 0, stream>>>(
      src, src_row_stride, src_col_stride, dst, dst_row_stride, rows, cols);
  cudaCheck(cudaGetLastError());
}

void add_to(const float* x, float* y, size_t count, cudaStream_t stream) {
  if (count == 0) return;
  const auto n = static_cast<int64_t>(count);
  add_kernel<<<blocks_for(n), kThreads, 0, stream>>>(x, y, n);
  cudaCheck(cudaGetLastError());
}

void carry_rows(const float* mask, const float* from, float* to, int64_t rows, int64_t width,
                cudaStream_t stream) {
  if (rows * width == 0) return;
  carry_rows_kernel<<<blocks_for(rows * width), kThreads, 0, stream>>>(mask, from, to, rows, width);
  cudaCheck(cudaGetLastError());
}

void mask_keys(float* scores, const float* key_mask, bool causal, int64_t samples, int64_t rows,
               int64_t steps, float value, cudaStream_t stream) {
  if (samples * rows * steps == 0) return;
  mask_keys_kernel<<<blocks_for(samples * rows * steps), kThreads, 0, stream>>>(
      scores, key_mask, causal, samples, rows, steps, value);
  cudaCheck(cudaGetLastError());
}

void masking_forward(const float* x, float value, float* mask, float* y, int64_t rows,
                     int64_t width, cudaStream_t stream) {
  if (rows == 0) return;
  masking_forward_kernel<<<blocks_for(rows), kThreads, 0, stream>>>(x, value, mask, y, rows, width);
  cudaCheck(cudaGetLastError());
}

void masking_backward(const float* mask, const float* dy, float* dx, int64_t rows, int64_t width,
                      cudaStream_t stream) {
  if (rows * width == 0) return;
  masked_rows_kernel<<<blocks_for(rows * width), kThreads, 0, stream>>>(mask, dy, dx, rows, width);
  cudaCheck(cudaGetLastError());
}

void lstm_cell_forward(const float* xp, const float* hu, const float* c_prev, float* gates,
                       float* c, float* h, int64_t batch, int64_t units, cudaStream_t stream) {
  if (batch * units == 0) return;
  lstm_forward_kernel<<<blocks_for(batch * units), kThreads, 0, stream>>>(xp, hu, c_prev, gates, c,
                                                                          h, batch, units);
  cudaCheck(cudaGetLastError());
}

void lstm_cell_backward(const float* gates, const float* c_prev, const float* c, const float* dh,
                        const float* dh_more, float* dc, float* dgates, int64_t batch,
                        int64_t units, cudaStream_t stream) {
  if (batch * units == 0) return;
  lstm_backward_kernel<<<blocks_for(batch * units), kThreads, 0, stream>>>(
      gates, c_prev, c, dh, dh_more, dc, dgates, batch, units);
  cudaCheck(cudaGetLastError());
}

void gru_cell_forward(const float* xp, const float* hu, const float* h_prev, float* kept, float* h,
                      int64_t batch, int64_t units, cudaStream_t stream) {
  if (batch * units == 0) return;
  gru_forward_kernel<<<blocks_for(batch * units), kThreads, 0, stream>>>(xp, hu, h_prev, kept, h,
                                                                         batch, units);
  cudaCheck(cudaGetLastError());
}

void gru_cell_backward(const float* kept, const float* h_prev, const float* dh,
                       const float* dh_more, float* carry, float* dxp, float* dhu, int64_t batch,
                       int64_t units, cudaStream_t stream) {
  if (batch * units == 0) return;
  gru_backward_kernel<<<blocks_for(batch * units), kThreads, 0, stream>>>(
      kept, h_prev, dh, dh_more, carry, dxp, dhu, batch, units);
  cudaCheck(cudaGetLastError());
}

}  // namespace ddp::cuda
