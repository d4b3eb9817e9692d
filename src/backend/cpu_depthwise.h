#pragma once
// The CPU backend's depthwise convolution (Note [depthwise convolution]; ComputeBackend has the
// contracts): loops over NHWC images whose innermost loop runs along the channels, with the
// kernels laid out (taps, channels) so that it reads them contiguously too.

#include <cstdint>

#include "backend/window2d.h"
#include "core/thread_team.h"

namespace ddp::cpu {

// Each sample's output and input gradient alone, on the team's shares of the batch; the kernels'
// gradients (sums over the batch) by one thread, so they are the same bits on any team.
void depthwise_forward(ThreadTeam& team, const float* x, const float* w, float* y, int64_t batch,
                       const Window2d& win);
void depthwise_backward(ThreadTeam& team, const float* x, const float* w, const float* dy,
                        float* dx, float* dw, int64_t batch, const Window2d& win, bool accumulate);

}  // namespace ddp::cpu
