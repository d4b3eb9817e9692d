#include "nn/dense.h"

#include <algorithm>
#include <cmath>

namespace ddp {

const char* activation_name(Activation act) {
  switch (act) {
    case Activation::kRelu:
      return "relu";
    case Activation::kTanh:
      return "tanh";
    case Activation::kSigmoid:
      return "sigmoid";
    case Activation::kElu:
      return "elu";
    case Activation::kSelu:
      return "selu";
    case Activation::kSoftplus:
      return "softplus";
    case Activation::kSoftsign:
      return "softsign";
    case Activation::kGelu:
      return "gelu";
    case Activation::kSilu:
      return "silu";
    case Activation::kRelu6:
      return "relu6";
    case Activation::kHardSigmoid:
      return "hard_sigmoid";
    case Activation::kHardSilu:
      return "hard_silu";
    case Activation::kMish:
      return "mish";
    case Activation::kGeluTanh:
      return "gelu_tanh";
    case Activation::kLinear:
      break;
  }
  return "linear";
}

std::string with_activation(const std::string& name, Activation act) {
  return act == Activation::kLinear ? name : name + "+" + activation_name(act);
}

Dense::Dense(int64_t in, int64_t out, Activation act, bool use_bias, Shape positions)
    : in_(in), out_(out), act_(act), positions_(std::move(positions)), bias_(out, use_bias) {}

Shape Dense::output_shape() const {
  std::vector<int64_t> dims = positions_.dims();
  dims.push_back(out_);
  return Shape(dims);
}

std::string Dense::describe() const { return with_activation("Dense", act_); }

std::vector<ParamSpec> Dense::param_specs() const {
  std::vector<ParamSpec> specs{{"weight", {out_, in_}}};
  if (bias_.trained()) specs.push_back({"bias", {out_}});
  return specs;
}

void Dense::bind(std::span<float* const> params, std::span<float* const> grads) {
  weight_ = params[0];
  weight_grad_ = grads[0];
  if (bias_.trained()) bias_.bind(params[1], grads[1]);
}

// Keras' default: Glorot-uniform weights, zero bias.
void Dense::init_params(Rng& rng, std::span<const std::span<float>> params) const {
  const float limit = std::sqrt(6.0f / static_cast<float>(in_ + out_));
  for (float& w : params[0]) w = rng.uniform(-limit, limit);
  if (bias_.trained()) std::ranges::fill(params[1], 0.0f);
}

void Dense::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  backend.dense_forward(x, weight_, bias_.values(backend), y, rows(batch), in_, out_, act_);
}

void Dense::backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                     int64_t batch, bool accumulate) {
  if (frozen()) {  // Note [frozen layers]: its input gradient alone
    backend.dense_input_grad(weight_, y, dy, dx, rows(batch), in_, out_, act_);
    return;
  }
  // Note [split weight gradients]: the ranks compute the parameter gradients together, after.
  if (WeightGradSplit* split = update_in_backward_ ? update_in_backward_->split() : nullptr) {
    backend.dense_input_grad(weight_, y, dy, dx, rows(batch), in_, out_, act_);
    split->hand_over({weight_, bias_.param(), in_, out_}, x, dy, rows(batch), *update_in_backward_);
    return;
  }
  float* const bias_grad = bias_.grad(backend);
  if (!update_in_backward_ || accumulate) {
    backend.dense_backward(x, weight_, y, dy, dx, weight_grad_, bias_grad, rows(batch), in_, out_,
                           act_, accumulate, nullptr);
    return;
  }
  // Note [update in backward]: the weights block by block, then the bias.
  const GradBlockConsumer update_rows = update_in_backward_->weight_consumer(weight_, in_, 0, out_);
  backend.dense_backward(x, weight_, y, dy, dx, weight_grad_, bias_grad, rows(batch), in_, out_,
                         act_, false, &update_rows);
  if (bias_.trained()) update_in_backward_->update(bias_.param(), bias_.param_grad());
}

void Dense::backward_without_rows(ComputeBackend& /*backend*/) {
  if (WeightGradSplit* split = update_in_backward_ ? update_in_backward_->split() : nullptr)
    split->hand_over({weight_, bias_.param(), in_, out_}, nullptr, nullptr, 0,
                     *update_in_backward_);
}

}  // namespace ddp
