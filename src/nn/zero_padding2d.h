#pragma once

#include <string>

#include "nn/layer.h"

namespace ddp {

// Note [zero padding]: Keras' ZeroPadding2D adds rows of zeros above and below an image
// (height, width, channels) and columns of zeros left and right of it; ZeroPadding1D adds steps of
// zeros before and after (steps, channels), an image of one row. Forward is a pooling of sums
// over 1x1 windows with the padding as the window's padding (each output pixel the input pixel
// under it, or none: zero), and backward the backward of that pooling (each input pixel's
// gradient the output's above it): the backend's average pooling ops with `mean` false, as
// Note [upsampling] uses them, so the CPU and CUDA backends need no kernel of their own.
class ZeroPadding2D final : public Layer {
 public:
  ZeroPadding2D(const Window2d& padded, bool one_row) : padded_(padded), one_row_(one_row) {}

  std::string type_name() const override { return one_row_ ? "ZeroPadding1D" : "ZeroPadding2D"; }
  Shape output_shape() const override;
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 private:
  Window2d padded_;
  bool one_row_;
};

}  // namespace ddp
