#pragma once

#include "nn/layer.h"

namespace ddp {

// Softmax over the last dimension. When a model ending in Softmax is trained with a cross-entropy
// loss, the model stops before this layer and the loss applies the fused, stable softmax.
class Softmax final : public MaskPassingLayer {
 public:
  explicit Softmax(Shape shape) : shape_(std::move(shape)) {}

  std::string type_name() const override { return "Softmax"; }
  OutputFunction output_function() const override { return OutputFunction::kSoftmax; }
  Shape output_shape() const override { return shape_; }
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 private:
  int64_t rows(int64_t batch) const { return batch * shape_.numel() / cols(); }
  int64_t cols() const { return shape_[shape_.rank() - 1]; }
  Shape shape_;
};

}  // namespace ddp
