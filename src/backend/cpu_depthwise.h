#pragma once
// The CPU backend's depthwise convolution (Note [depthwise convolution]; ComputeBackend has the
// contracts): loops over NHWC images whose innermost loop runs along the channels, with the
// kernels laid out (taps, channels) so that it reads them contiguously too.

#include <cstdint>

#include "backend/window2d.h"

namespace ddp::cpu {

void depthwise_forward(const float* x, const float* w, float* y, int64_t batch,
                       const Window2d& win);
void depthwise_input_grad(const float* dy, const float* w, float* dx, int64_t batch,
                          const Window2d& win);
void depthwise_weight_grad(const float* x, const float* dy, float* dw, int64_t batch,
                           const Window2d& win, bool accumulate);

}  // namespace ddp::cpu
