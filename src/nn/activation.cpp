#include "nn/activation.h"

namespace ddp {

std::string ActivationLayer::type_name() const {
  switch (act_) {
    case Activation::kRelu:
      return "ReLU";
    case Activation::kTanh:
      return "Tanh";
    case Activation::kSigmoid:
      return "Sigmoid";
    case Activation::kElu:
      return "ELU";
    case Activation::kSelu:
      return "SELU";
    case Activation::kSoftplus:
      return "Softplus";
    case Activation::kSoftsign:
      return "Softsign";
    case Activation::kGelu:
      return "GELU";
    case Activation::kSilu:
      return "SiLU";
    case Activation::kRelu6:
      return "ReLU6";
    case Activation::kHardSigmoid:
      return "HardSigmoid";
    case Activation::kHardSilu:
      return "HardSiLU";
    case Activation::kMish:
      return "Mish";
    case Activation::kGeluTanh:
      return "GELU(tanh)";
    case Activation::kLinear:
      break;
  }
  return "Linear";
}

void ActivationLayer::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  backend.activation_forward(act_, x, y, static_cast<size_t>(batch * shape_.numel()));
}

void ActivationLayer::backward(ComputeBackend& backend, const float* x, const float* y, float* dy,
                               float* dx, int64_t batch, bool /*accumulate*/) {
  if (dx)
    backend.activation_backward(act_, x, y, dy, dx, static_cast<size_t>(batch * shape_.numel()));
}

}  // namespace ddp
