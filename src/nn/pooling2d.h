#pragma once

#include "nn/layer.h"

namespace ddp {

// Keras' MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D and GlobalMaxPooling2D over NHWC
// images (Note [image layout]); a global one is the pooling over a window of the whole image, and
// its output is flat (channels). Keras' MaxPooling1D, AveragePooling1D, GlobalAveragePooling1D and
// GlobalMaxPooling1D over (steps, channels) are these over an image of one row, the windowed ones'
// output (out_steps, channels). GlobalAveragePooling1D takes a padding mask (Note [padding masks]):
// each sample's average is then over its real steps (Keras'; 0 where it has none, where Keras
// divides 0 by 0).
class Pooling2D final : public Layer {
 public:
  enum class Kind {
    kMax,
    kAverage,
    kMax1D,
    kAverage1D,
    kGlobalAverage,
    kGlobalAverage1D,
    kGlobalMax,
    kGlobalMax1D
  };
  Pooling2D(Kind kind, const Window2d& window) : kind_(kind), window_(window) {}

  std::string type_name() const override;
  Shape output_shape() const override;
  void set_input_mask(const float* mask) override { mask_ = mask; }
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 private:
  bool max() const {
    return kind_ == Kind::kMax || kind_ == Kind::kMax1D || kind_ == Kind::kGlobalMax ||
           kind_ == Kind::kGlobalMax1D;
  }
  bool global() const {
    return kind_ != Kind::kMax && kind_ != Kind::kAverage && kind_ != Kind::kMax1D &&
           kind_ != Kind::kAverage1D;
  }
  Kind kind_;
  Window2d window_;
  const float* mask_ = nullptr;  // (batch, steps), or null: every step is real
};

}  // namespace ddp
