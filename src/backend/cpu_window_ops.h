#pragma once
// The CPU backend's window ops and dropout (see ComputeBackend for their contracts): plain loops
// over NHWC images whose innermost loop runs along the channels, contiguous in memory, so the
// compiler vectorizes it.

#include <cstdint>

#include "backend/window2d.h"

namespace ddp::cpu {

void im2col(const float* x, float* cols, int64_t batch, const Window2d& w);
void col2im(const float* cols, float* dx, int64_t batch, const Window2d& w);
void max_pool_forward(const float* x, float* y, int64_t batch, const Window2d& w);
void max_pool_backward(const float* x, const float* y, const float* dy, float* dx, int64_t batch,
                       const Window2d& w);
void avg_pool_forward(const float* x, const float* mask, float* y, int64_t batch, const Window2d& w,
                      bool mean);
void avg_pool_backward(const float* mask, const float* dy, float* dx, int64_t batch,
                       const Window2d& w, bool mean);
void dropout(const float* in, float* out, int64_t rows, int64_t row_size, int64_t steps, float rate,
             uint64_t key, int64_t first_row);

}  // namespace ddp::cpu
