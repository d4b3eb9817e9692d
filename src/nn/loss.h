#pragma once

#include <string>
#include <vector>

#include "backend/backend.h"
#include "nn/layer.h"

namespace ddp {

enum class LossKind {
  kSparseCategoricalCrossentropy,  // integer labels, softmax applied inside the loss
  kCategoricalCrossentropy,        // one-hot targets, softmax applied inside the loss
  kMeanSquaredError,               // one-hot targets against the model's output
  kBinaryCrossentropy,             // multi-hot targets, sigmoid applied inside the loss
};

class Loss {
 public:
  explicit Loss(LossKind kind) : kind_(kind) {}
  // binary_crossentropy with a weight per label for its positive targets (PyTorch's pos_weight):
  // copied into `backend` memory.
  Loss(LossKind kind, ComputeBackend& backend, const std::vector<float>& pos_weight);

  LossKind kind() const { return kind_; }
  std::string name() const;
  // The output function the loss applies itself, fused (softmax for the categorical
  // cross-entropies, sigmoid for binary_crossentropy), so that the model is trained on logits
  // without its last layer when that layer applies it; none for mean_squared_error.
  OutputFunction fused_output() const;
  int64_t pos_weight_count() const { return static_cast<int64_t>(pos_weight_.size()); }
  TargetKind target_kind() const {
    return kind_ == LossKind::kSparseCategoricalCrossentropy ? TargetKind::kSparse
                                                             : TargetKind::kDense;
  }
  // output, doutput: (rows, cols); targets: (rows) or (rows, cols) by target_kind(); row_weight:
  // (rows) (Keras' sample_weight) or null. doutput may be null (evaluation). Readback and the
  // weights as for ComputeBackend's losses.
  LossStats compute(ComputeBackend& backend, const float* output, const float* targets,
                    const float* row_weight, float* doutput, float grad_scale, int64_t rows,
                    int64_t cols, Readback readback = Readback::kNow) const;

 private:
  LossKind kind_;
  DeviceBuffer pos_weight_;  // (labels), or empty: 1 for every label
};

}  // namespace ddp
