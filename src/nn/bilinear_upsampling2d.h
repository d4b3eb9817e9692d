#pragma once

#include <string>
#include <vector>

#include "nn/layer.h"

namespace ddp {

// Note [bilinear upsampling]: Keras' UpSampling2D(interpolation="bilinear") (TensorFlow's
// resize with half-pixel centres, as PyTorch's nn.Upsample(mode="bilinear", align_corners=False)):
// output pixel o of an axis scaled by s reads the input at src = max((o + 0.5) / s - 0.5, 0),
// (1 - f) of pixel floor(src) and f of the next (the last pixel where there is none), f = src -
// floor(src). That is linear and separable: the output is A_h X A_w^T for each channel, A_h
// (out_h, height) and A_w (out_w, width) the interpolation matrices, so forward is two batched
// products (the rows of each sample, then the columns of each output row) and backward the same
// two with the matrices transposed, on the backend's batched_matmul: every backend, each item
// computed alone (no bits depend on threads). The matrices are dense: each row has two weights,
// so an axis of n pixels costs ~n / 2 times the multiply-adds of the two that count; for the
// images of these models (up to ~64 pixels a side) that is a few percent of the convolutions
// around it.
class BilinearUpSampling2D final : public Layer {
 public:
  // An input of (height, width, channels), each axis scaled by its size.
  BilinearUpSampling2D(const Shape& input, int64_t size_h, int64_t size_w);

  std::string type_name() const override { return "UpSampling2D"; }
  std::string describe() const override { return "UpSampling2D+bilinear"; }
  Shape output_shape() const override { return {out_h_, out_w_, channels_}; }
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

  // The interpolation matrix (out, in) of an axis of `in` pixels scaled by `size`, row-major.
  static std::vector<float> interpolation(int64_t in, int64_t size);

 private:
  void upload(ComputeBackend& backend);  // the matrices, into backend memory once

  int64_t height_, width_, channels_, out_h_, out_w_;
  std::vector<float> along_h_host_, along_w_host_;
  DeviceBuffer along_h_, along_w_;  // (out_h, height), (out_w, width)
  DeviceBuffer rows_done_;          // (batch, out_h, width, channels): the first product's
};

}  // namespace ddp
