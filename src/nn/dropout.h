#pragma once

#include "nn/layer.h"

namespace ddp {

// Keras' Dropout: in training, each element is zeroed with probability `rate` and the rest are
// scaled by 1 / (1 - rate); in inference it passes the input through. Keras' SpatialDropout1D and
// SpatialDropout2D (`spatial`) drop whole channels instead: a sample's mask is one per channel
// (the last axis), shared by all its steps or pixels.
//
// Note [dropout mask]: whether element e of the sample at position p (in the epoch's sample
// order) is dropped is a hash of (seed, epoch, layer, p * row size + e) (core/counter_hash.h),
// never of the rank or of a generator's state: N ranks draw the masks one rank would for the
// same global batch, and a resumed run draws the masks the uninterrupted run drew.
class Dropout final : public MaskPassingLayer {
 public:
  Dropout(Shape shape, float rate, bool spatial = false)
      : shape_(std::move(shape)), rate_(rate), spatial_(spatial) {}

  std::string type_name() const override;
  std::string describe() const override;
  Shape output_shape() const override { return shape_; }
  void set_pass(const Pass& pass) override { pass_ = pass; }
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 private:
  // Applies the pass's mask (training) or copies (inference).
  void apply(ComputeBackend& backend, const float* in, float* out, int64_t batch);

  Shape shape_;
  float rate_;
  bool spatial_;
  Pass pass_;
};

}  // namespace ddp
