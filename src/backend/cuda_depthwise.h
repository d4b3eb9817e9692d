#pragma once
// The CUDA backend's depthwise convolution (Note [depthwise convolution]; ComputeBackend has the
// contracts), queued on `stream`. Each output element is one thread's sum forward, each input
// element one thread's backward, and each kernel weight's gradient one block's sum in a fixed
// order: no atomics, so reruns are bit-identical.

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/window2d.h"

namespace ddp::cuda {

void depthwise_forward(const float* x, const float* w, float* y, int64_t batch, const Window2d& win,
                       cudaStream_t stream);
void depthwise_backward(const float* x, const float* w, const float* dy, float* dx, float* dw,
                        int64_t batch, const Window2d& win, bool accumulate, cudaStream_t stream);

}  // namespace ddp::cuda
