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
  // Keras' padding: "valid" (none: out = (in - kernel) / stride + 1) or "same" (out = ceil(in /
  // stride), the padding split evenly with the odd one after). Leaves out_h/out_w <= 0 when the
  // kernel does not fit.
  static Window2d make(int64_t height, int64_t width, int64_t channels, int64_t kernel_h,
                       int64_t kernel_w, int64_t stride_h, int64_t stride_w, bool same);
  DDP_HOST_DEVICE int64_t patch() const { return kernel_h * kernel_w * channels; }
  DDP_HOST_DEVICE int64_t out_pixels() const { return out_h * out_w; }
};

}  // namespace ddp
