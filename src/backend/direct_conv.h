#pragma once
// Note [direct convolution]: a convolution over few input channels (W4's first layer: one
// channel, 3x3, 32 filters) is a product only kernel area x channels deep (9). As im2col + GEMM it
// ran at 9 GFLOP/s on an AMD EPYC (Zen 3) and 20 on a Xeon, a third of W4's step there, and
// oneDNN was no faster (benchmarks/results/conv_onednn.md). These kernels compute it from the
// image itself: the filters lie along the vector lanes, and a tile of output pixels x filter
// vectors is accumulated in registers over the kernel's taps, each tap one broadcast input value
// per pixel against the tap's weights (forward), or one broadcast input value per tap against
// the pixel's output gradient (weight gradient). Each image is first copied with its padding
// (a few KB), so no tap needs a bounds check. The input gradient is not computed here: a first
// layer has none to compute, and elsewhere the caller takes im2col + GEMM.

#include <cstdint>
#include <vector>

#include "backend/backend.h"
#include "backend/window2d.h"

namespace ddp::cpu {

// Inputs with at most this many channels (the fewer, the shallower im2col's product).
inline constexpr int64_t kDirectConvMaxChannels = 4;

// True where this build has the kernels (AVX2 + FMA or AVX-512) and the shape is theirs.
bool direct_conv_applies(const Window2d& w);

// y = conv(x, w) + b, with ReLU applied when relu: x (batch, height, width, channels), w
// (filters, kernel_h, kernel_w, channels), y (batch, out_h, out_w, filters). scratch: reused
// between calls.
void direct_conv_forward(const float* x, const float* w, const float* b, float* y, int64_t batch,
                         const Window2d& win, int64_t filters, bool relu,
                         std::vector<float>& scratch);

// dw (filters, kernel_h, kernel_w, channels) and db (filters) from dy (batch, out_h, out_w,
// filters) = dLoss/dy, y = act(conv(x, w) + b); added to dw and db when accumulate. The
// activation's gradient is taken an image at a time into scratch, which stays in cache: as a
// pass of its own over the batch it wrote and read back W4's 6.4 MB first-layer gradient.
void direct_conv_weight_grad(const float* x, const float* y, const float* dy, Activation act,
                             float* dw, float* db, int64_t batch, const Window2d& win,
                             int64_t filters, bool accumulate, std::vector<float>& scratch);

}  // namespace ddp::cpu
