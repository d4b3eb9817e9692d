#pragma once
// Which elementwise activation an op applies, and whether a fused kernel can take it.

namespace ddp {

// Keras' elementwise activations of those names (gelu: the exact, erf form; elu: alpha 1;
// hard_sigmoid: Keras 3's relu6(x + 3) / 6, as PyTorch's Hardsigmoid; hard_silu: x times it, as
// PyTorch's Hardswish); gelu_tanh: GELU's tanh approximation, PyTorch's
// GELU(approximate="tanh"), Keras' gelu(x, approximate=True), GPT-2's "gelu_new".
enum class Activation {
  kLinear,
  kRelu,
  kTanh,
  kSigmoid,
  kElu,
  kSelu,
  kSoftplus,
  kSoftsign,
  kGelu,
  kSilu,
  kRelu6,
  kHardSigmoid,
  kHardSilu,
  kMish,
  kGeluTanh
};

// Whether act's derivative is a function of its output, so that a fused kernel, which keeps only
// a layer's output, can take it (Note [fused activations]); the others run as layers of their own,
// whose backward reads the input.
constexpr bool derivative_from_output(Activation act) {
  return act == Activation::kLinear || act == Activation::kRelu || act == Activation::kTanh ||
         act == Activation::kSigmoid;
}

}  // namespace ddp
