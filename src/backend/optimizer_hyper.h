#pragma once
// The optimizers' settings as the backends' update kernels take them: SGD, Adam (and AdamW) and
// RMSprop, each by PyTorch's rule or Keras'.

namespace ddp {

struct SgdHyper {
  float momentum = 0;
  float weight_decay = 0;
  bool nesterov = false;
  // Keras' rule: the rate inside the velocity (v = momentum v + lr g; w -= v, Nesterov's
  // w -= momentum v + lr g), where PyTorch's multiplies it by the rate of the step (the same while
  // the rate is constant; under a schedule Keras' velocity carries the earlier rates), and the
  // weight decay decoupled (PyTorch's adds weight_decay * w to the gradient).
  bool keras_rule = false;

  float l2() const { return keras_rule ? 0.0f : weight_decay; }
  float decay(float lr) const { return keras_rule ? 1 - lr * weight_decay : 1.0f; }
};

struct AdamHyper {
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-8f;
  float weight_decay = 0;
  // AdamW (torch.optim.AdamW): each step first scales the weights by 1 - lr * weight_decay,
  // outside the moments; otherwise weight_decay is L2 added to the gradient (torch.optim.Adam).
  bool decoupled_weight_decay = false;
  // Keras' rule: epsilon added to the root of the second moment before its bias correction
  // (Keras' "epsilon hat"), where PyTorch adds it after: Keras' step is PyTorch's with epsilon
  // times 1 / sqrt(1 - beta2^t), 32x epsilon at the first step with beta2 0.999.
  bool keras_rule = false;

  // What both backends' update kernels apply: the L2 coefficient added to the gradient, and the
  // factor the weights are scaled by before the step at learning rate lr (1 for Adam: exact).
  float l2() const { return decoupled_weight_decay ? 0.0f : weight_decay; }
  float decay(float lr) const { return decoupled_weight_decay ? 1 - lr * weight_decay : 1.0f; }
  // The epsilon PyTorch's form of the step adds at step t, given 1 / sqrt(1 - beta2^t).
  float epsilon_at(float inv_sqrt_bc2) const {
    return keras_rule ? epsilon * inv_sqrt_bc2 : epsilon;
  }
};

// RMSprop, by PyTorch's rule (torch.optim.RMSprop, rho its alpha) or by Keras 3's. They differ
// in three places, so that one rule cannot stand in for the other: Keras adds epsilon under the
// square root (sqrt(v + eps), PyTorch sqrt(v) + eps: at Keras' 1e-7 the floor of the denominator
// is 3.2e-4, not 1e-7), multiplies the learning rate into the momentum buffer (PyTorch outside
// it, the same only while the rate is constant) and decays the weights decoupled (PyTorch adds
// weight_decay * w to the gradient).
struct RmspropHyper {
  float rho = 0.99f;
  float momentum = 0;
  float epsilon = 1e-8f;
  bool centered = false;  // the square average less the squared mean gradient
  float weight_decay = 0;
  bool keras_rule = false;

  float l2() const { return keras_rule ? 0.0f : weight_decay; }
  float decay(float lr) const { return keras_rule ? 1 - lr * weight_decay : 1.0f; }
};

}  // namespace ddp
