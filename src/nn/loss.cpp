#include "nn/loss.h"

namespace ddp {

std::string Loss::name() const {
  switch (kind_) {
    case LossKind::kSparseCategoricalCrossentropy:
      return "sparse_categorical_crossentropy";
    case LossKind::kCategoricalCrossentropy:
      return "categorical_crossentropy";
    case LossKind::kBinaryCrossentropy:
      return "binary_crossentropy";
    case LossKind::kMeanSquaredError:
      break;
  }
  return "mean_squared_error";
}

Loss::Loss(LossKind kind, ComputeBackend& backend, const std::vector<float>& pos_weight)
    : kind_(kind) {
  if (pos_weight.empty()) return;
  pos_weight_ = DeviceBuffer(backend, pos_weight.size());
  backend.copy_to_device(pos_weight.data(), pos_weight_.data(), pos_weight.size());
}

OutputFunction Loss::fused_output() const {
  switch (kind_) {
    case LossKind::kBinaryCrossentropy:
      return OutputFunction::kSigmoid;
    case LossKind::kMeanSquaredError:
      return OutputFunction::kNone;
    default:
      break;
  }
  return OutputFunction::kSoftmax;
}

LossStats Loss::compute(ComputeBackend& backend, const float* output, const float* targets,
                        const float* row_weight, float* doutput, float grad_scale, int64_t rows,
                        int64_t cols, Readback readback) const {
  if (kind_ == LossKind::kMeanSquaredError)
    return backend.mean_squared_error(output, targets, row_weight, doutput, grad_scale, rows, cols,
                                      readback);
  if (kind_ == LossKind::kBinaryCrossentropy)
    return backend.sigmoid_cross_entropy(output, targets, row_weight, pos_weight_.data(), doutput,
                                         grad_scale, rows, cols, readback);
  return backend.softmax_cross_entropy(output, targets, row_weight, target_kind(), doutput,
                                       grad_scale, rows, cols, readback);
}

}  // namespace ddp
