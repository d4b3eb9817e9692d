#include "nn/loss.h"

namespace ddp {

std::string Loss::name() const {
  switch (kind_) {
    case LossKind::kSparseCategoricalCrossentropy:
      return "sparse_categorical_crossentropy";
    case LossKind::kCategoricalCrossentropy:
      return "categorical_crossentropy";
    case LossKind::kMeanSquaredError:
      break;
  }
  return "mean_squared_error";
}

LossStats Loss::compute(ComputeBackend& backend, const float* output, const float* targets,
                        float* doutput, float grad_scale, int64_t rows, int64_t cols) const {
  if (kind_ == LossKind::kMeanSquaredError)
    return backend.mean_squared_error(output, targets, doutput, grad_scale, rows, cols);
  return backend.softmax_cross_entropy(output, targets, target_kind(), doutput, grad_scale, rows,
                                       cols);
}

}  // namespace ddp
