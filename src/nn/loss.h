#pragma once

#include <string>

#include "backend/backend.h"

namespace ddp {

enum class LossKind {
  kSparseCategoricalCrossentropy,  // integer labels, softmax applied inside the loss
  kCategoricalCrossentropy,        // one-hot targets, softmax applied inside the loss
  kMeanSquaredError,               // one-hot targets against the model's output
};

class Loss {
 public:
  explicit Loss(LossKind kind) : kind_(kind) {}

  LossKind kind() const { return kind_; }
  std::string name() const;
  // Cross-entropy takes logits: a model ending in Softmax is trained without that layer.
  bool takes_logits() const { return kind_ != LossKind::kMeanSquaredError; }
  TargetKind target_kind() const {
    return kind_ == LossKind::kSparseCategoricalCrossentropy ? TargetKind::kSparse
                                                             : TargetKind::kDense;
  }
  // output, doutput: (rows, cols); targets: (rows) or (rows, cols) by target_kind().
  // doutput may be null (evaluation).
  LossStats compute(ComputeBackend& backend, const float* output, const float* targets,
                    float* doutput, float grad_scale, int64_t rows, int64_t cols) const;

 private:
  LossKind kind_;
};

}  // namespace ddp
