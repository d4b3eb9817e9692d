#pragma once

#include <string>

#include "nn/layer.h"

namespace ddp {

// Note [upsampling]: Keras' UpSampling2D (interpolation "nearest", channels last) repeats each
// pixel of (height, width, channels) over a block of size_h x size_w; UpSampling1D repeats each
// step of (steps, channels) `size` times (an image of one row). Forward is the backward of a
// pooling of sums whose windows are those blocks (each value copied into its block), and
// backward is that pooling (each block's gradients summed, in row-major order): the backend's
// average pooling ops with `mean` false, so the CPU and CUDA backends share them with pooling.
class UpSampling2D final : public Layer {
 public:
  // blocks: the pooling over the output, each window one input pixel's block.
  UpSampling2D(const Window2d& blocks, bool one_row) : blocks_(blocks), one_row_(one_row) {}

  std::string type_name() const override { return one_row_ ? "UpSampling1D" : "UpSampling2D"; }
  Shape output_shape() const override;
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 private:
  Window2d blocks_;
  bool one_row_;
};

}  // namespace ddp
