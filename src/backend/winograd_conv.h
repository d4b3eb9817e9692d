#pragma once
// Note [Winograd convolution]: a 3x3, stride-1 convolution computed as F(2x2, 3x3) (Lavin & Gray,
// "Fast Algorithms for Convolutional Neural Networks", 2016): each 2x2 block of output pixels
// comes from the 4x4 block of input under it. Both are carried to a transformed space where the
// convolution is an elementwise product: y = A^T [(G g G^T) . (B^T d B)] A for the 3x3 filter
// g and the 4x4 input d. Summed over input channels, each of the 16 positions of the transformed
// tile is a matrix product (tiles x channels) x (channels x filters), 16 products that together
// take 2.25x fewer multiplications than the convolution itself (36 for 4 outputs instead of 81).
// The input gradient is the same kind of convolution (the output gradient correlated with the
// flipped filters, channels and filters swapped), and the weight gradient the transpose of the
// forward one: dg = G^T [sum over tiles of (B^T d B) . (A dy A^T)] G.
//
// Why: W4's second convolution (14x14x32 -> 64) was two thirds of its training step on an AMD
// EPYC (Zen 3), with oneDNN's direct kernels at ~55-70% of the FMA peak; oneDNN 2.6 has Winograd
// kernels only for AVX-512. With these kernels that layer went from 7.2 ms forward + 13.9 ms
// backward to 4.4 + 8.7 (per-layer timers in W4's step at batch 64, one rank; the products run
// near the FMA peak, the transforms are most of the rest), and W4 ran 1.23x faster at 1 rank and
// 1.48x at 2 (benchmarks/results/w4_winograd_zen3.md). On AVX-512 the same code runs 16 lanes
// wide; it has not been measured against oneDNN's AVX-512 kernels there. Rounding differs from a
// direct convolution's by a few float ulps of the largest terms (the transforms add and subtract
// neighbouring pixels), far inside the tests' tolerances.

#include <cstdint>
#include <vector>

#include "backend/window2d.h"

namespace ddp::cpu {

// True where this build has the kernels (AVX2 + FMA or AVX-512) and the convolution is theirs:
// a 3x3 kernel at stride 1, channels and filters whole numbers of vectors.
bool winograd_conv_applies(const Window2d& w, int64_t filters);

// y = conv(x, w) + b, with ReLU applied when relu: x (batch, height, width, channels), w
// (filters, 3, 3, channels), y (batch, out_h, out_w, filters). scratch: reused between calls.
void winograd_conv_forward(const float* x, const float* w, const float* b, float* y, int64_t batch,
                           const Window2d& win, int64_t filters, bool relu,
                           std::vector<float>& scratch);

// From dz (batch, out_h, out_w, filters) = dLoss/d(pre-activation): dw and db, added to them when
// accumulate, and dx (batch, height, width, channels) unless it is null.
void winograd_conv_backward(const float* x, const float* w, const float* dz, float* dx, float* dw,
                            float* db, int64_t batch, const Window2d& win, int64_t filters,
                            bool accumulate, std::vector<float>& scratch);

}  // namespace ddp::cpu
