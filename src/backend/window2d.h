#pragma once

#include <cstdint>

#include "core/host_device.h"

namespace ddp {

// Note [image layout]: images are NHWC, (batch, height, width, channels), as in Keras; a sample
// is one row of height * width * channels floats. A window op (convolution, pooling) slides a
// kernel_h x kernel_w window with the given strides over the input, which is padded with
// pad_top/pad_left rows/columns before it (and as many after as the output size needs).
struct Window2d {
  int64_t height = 0, width = 0, channels = 0;  // input, per sample
  int64_t kernel_h = 1, kernel_w = 1;
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_top = 0, pad_left = 0;
  int64_t out_h = 0, out_w = 0;
  // Note [dilated convolution]: Keras' dilation_rate (PyTorch's dilation) spreads a kernel's
  // taps `dilation` pixels apart, so that it spans (kernel - 1) * dilation + 1 of them with as
  // many weights; padding and output sizes follow from that span as from a kernel that size
  // (Keras' and TensorFlow's rule), and Keras' Conv1D padding "causal" puts all of the span's
  // padding before the first step. Dilated windows take im2col + GEMM alone (their taps are not
  // runs of the image: im2col copies each tap's channels, col2im adds them back, and CUDA's
  // col2im skips the outputs whose taps fall between an input pixel); the Winograd, direct and
  // oneDNN kernels are for undilated ones. As in Keras, a dilated convolution moves by 1.
  int64_t dilation_h = 1, dilation_w = 1;
  // Keras' padding: "valid" (none: out = (in - span) / stride + 1) or "same" (out = ceil(in /
  // stride), the padding split evenly with the odd one after), the span that of the dilated
  // kernel. Leaves out_h/out_w <= 0 when the kernel does not fit.
  static Window2d make(int64_t height, int64_t width, int64_t channels, int64_t kernel_h,
                       int64_t kernel_w, int64_t stride_h, int64_t stride_w, bool same,
                       int64_t dilation_h = 1, int64_t dilation_w = 1);
  // Keras' Conv1D padding "causal" over a row of `width` steps: all of the span's padding before
  // the first step, so that output t sees steps up to t alone.
  static Window2d causal(int64_t width, int64_t channels, int64_t kernel, int64_t stride,
                         int64_t dilation);
  DDP_HOST_DEVICE bool dilated() const { return dilation_h > 1 || dilation_w > 1; }
  DDP_HOST_DEVICE int64_t span_h() const { return (kernel_h - 1) * dilation_h + 1; }
  DDP_HOST_DEVICE int64_t span_w() const { return (kernel_w - 1) * dilation_w + 1; }
  DDP_HOST_DEVICE int64_t patch() const { return kernel_h * kernel_w * channels; }
  DDP_HOST_DEVICE int64_t out_pixels() const { return out_h * out_w; }
};

}  // namespace ddp
