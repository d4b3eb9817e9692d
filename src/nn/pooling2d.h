#pragma once

#include "nn/layer.h"

namespace ddp {

// Keras' MaxPooling2D, AveragePooling2D and GlobalAveragePooling2D over NHWC images (Note
// [image layout]); the global one is an average over a window of the whole image, and its output
// is flat (channels). Keras' GlobalAveragePooling1D over (steps, channels) is the global one over
// an image of one row.
class Pooling2D final : public Layer {
 public:
  enum class Kind { kMax, kAverage, kGlobalAverage, kGlobalAverage1D };
  Pooling2D(Kind kind, const Window2d& window) : kind_(kind), window_(window) {}

  std::string type_name() const override;
  Shape output_shape() const override;
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 private:
  Kind kind_;
  Window2d window_;
};

}  // namespace ddp
