#include "backend/window2d.h"

namespace ddp {

Window2d Window2d::make(int64_t height, int64_t width, int64_t channels, int64_t kernel_h,
                        int64_t kernel_w, int64_t stride_h, int64_t stride_w, bool same,
                        int64_t dilation_h, int64_t dilation_w) {
  Window2d w;
  w.dilation_h = dilation_h;
  w.dilation_w = dilation_w;
  w.height = height;
  w.width = width;
  w.channels = channels;
  w.kernel_h = kernel_h;
  w.kernel_w = kernel_w;
  w.stride_h = stride_h;
  w.stride_w = stride_w;
  if (same) {
    w.out_h = (height + stride_h - 1) / stride_h;
    w.out_w = (width + stride_w - 1) / stride_w;
    // TensorFlow's rule: total padding (out - 1) * stride + kernel - in, the smaller half first.
    const int64_t pad_h = (w.out_h - 1) * stride_h + w.span_h() - height;
    const int64_t pad_w = (w.out_w - 1) * stride_w + w.span_w() - width;
    w.pad_top = pad_h > 0 ? pad_h / 2 : 0;
    w.pad_left = pad_w > 0 ? pad_w / 2 : 0;
  } else {
    w.out_h = height >= w.span_h() ? (height - w.span_h()) / stride_h + 1 : 0;
    w.out_w = width >= w.span_w() ? (width - w.span_w()) / stride_w + 1 : 0;
  }
  return w;
}

Window2d Window2d::causal(int64_t width, int64_t channels, int64_t kernel, int64_t stride,
                          int64_t dilation) {
  Window2d w = make(1, width, channels, 1, kernel, 1, stride, false, 1, dilation);
  w.pad_left = w.span_w() - 1;
  w.out_w = (width - 1) / stride + 1;
  return w;
}

}  // namespace ddp
