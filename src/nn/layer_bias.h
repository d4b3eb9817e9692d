#pragma once
// Note [no bias]: a dense or convolution layer built with `use_bias: false` (Keras' use_bias=False,
// PyTorch's bias=False, the usual layer before batch normalization, whose mean subtraction would
// cancel a bias) has no bias parameter: nothing in the flat buffer, the checkpoints or the exported
// weights, and nothing for the optimizer to move. (With a bias there, its true gradient is zero
// and Adam turns the rounding noise of that zero into steps of the full learning rate.) Every
// backend's kernels take a bias and its gradient, so such a layer hands them a bias of zeros that
// nothing writes and a gradient buffer that nothing reads, allocated on first use: the cost of
// adding zeros and summing one gradient nobody keeps, against a kernel variant per backend.

#include <cstdint>
#include <span>

#include "backend/backend.h"

namespace ddp {

class LayerBias {
 public:
  LayerBias(int64_t count, bool trained) : count_(count), trained_(trained) {}

  bool trained() const { return trained_; }
  // For a trained bias: its pieces of the flat parameter and gradient buffers.
  void bind(float* values, float* grad) {
    values_ = values;
    grad_ = grad;
  }
  // What the kernels read and write: the parameter and its gradient, or the stand-ins.
  const float* values(ComputeBackend& backend) {
    if (trained_) return values_;
    allocate_stand_ins(backend);
    return zeros_.data();
  }
  float* grad(ComputeBackend& backend) {
    if (trained_) return grad_;
    allocate_stand_ins(backend);
    return grad_sink_.data();
  }
  // The parameter and its gradient, for an update or a weight-gradient split; empty untrained.
  std::span<float> param() const { return {values_, trained_ ? static_cast<size_t>(count_) : 0}; }
  std::span<const float> param_grad() const {
    return {grad_, trained_ ? static_cast<size_t>(count_) : 0};
  }

 private:
  void allocate_stand_ins(ComputeBackend& backend) {
    if (zeros_.size() != 0) return;
    zeros_ = DeviceBuffer(backend, static_cast<size_t>(count_));  // allocate() zero-fills
    grad_sink_ = DeviceBuffer(backend, static_cast<size_t>(count_));
  }

  int64_t count_;
  bool trained_;
  float* values_ = nullptr;  // (count): trained only
  float* grad_ = nullptr;
  DeviceBuffer zeros_;      // (count): untrained only, never written
  DeviceBuffer grad_sink_;  // (count): untrained only, never read
};

}  // namespace ddp
