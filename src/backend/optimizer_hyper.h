#pragma once
// The optimizers' settings as the backends' update kernels take them: SGD, Adam (and AdamW),
// RMSprop, Adagrad, Adamax, NAdam and Lion, each by PyTorch's rule or Keras'.

#include <cstdint>

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

// Adagrad, Adamax, NAdam and Lion (optim/adaptive_optimizer.h), each by PyTorch's rule
// (torch.optim.Adagrad, Adamax, NAdam) or Keras 3's, with its library's defaults
// (train/optimizer_config.cpp). The rules differ in:
// - Adagrad: Keras adds epsilon under the root, sqrt(sum + eps), PyTorch after it, sqrt(sum) + eps;
//   Keras' sum starts at 0.1, PyTorch's at 0 (initial_accumulator);
// - Adamax: Keras adds epsilon to the norm in the step, m / (u + eps), PyTorch to |g| inside the
//   norm's max, u = max(beta2 u, |g| + eps);
// - NAdam: the momentum schedule mu_t = beta1 (1 - 0.5 x 0.96^(t x momentum_decay)), PyTorch's
//   momentum_decay 0.004 where Keras' 0.96^t is a momentum_decay of 1;
// - weight decay: Keras' decoupled (w *= 1 - lr x weight_decay before the step), PyTorch's L2
//   (weight_decay x w added to the gradient).
// Lion (Chen et al. 2023: Keras' Lion and lucidrains' lion-pytorch; PyTorch has none) has one rule,
// its decay decoupled.
struct AdaptiveHyper {
  enum class Kind : uint8_t { kAdagrad, kAdamax, kNadam, kLion };
  Kind kind = Kind::kAdagrad;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float epsilon = 1e-8f;
  float initial_accumulator = 0;  // Adagrad
  float momentum_decay = 0.004f;  // NAdam
  float weight_decay = 0;
  bool keras_rule = false;

  bool decoupled() const { return keras_rule || kind == Kind::kLion; }
  float l2() const { return decoupled() ? 0.0f : weight_decay; }
  float decay(float lr) const { return decoupled() ? 1 - lr * weight_decay : 1.0f; }
};

// One step of an AdaptiveHyper optimizer as the backends apply it, its coefficients worked out from
// the rate and the step count (AdaptiveOptimizer::step_at). For each element, with
// g = gradient x grad_scale + l2 x w:
//   Adagrad  s = (first step ? initial_sum : s) + g^2, w = w decay - rate g / root(s)
//   Adamax   m = beta1 m + (1 - beta1) g, u = max(beta2 u, |g| (+ eps)), w = w decay - rate m / u'
//   NAdam    m, v as Adam's, w = w decay - (grad_rate g + rate m) / (sqrt(v) inv_sqrt_bc2 + eps)
//   Lion     w = w decay - rate sign(beta1 m + (1 - beta1) g), m = beta2 m + (1 - beta2) g
struct AdaptiveStep {
  AdaptiveHyper::Kind kind;
  bool keras_rule;
  float grad_scale, l2, decay;
  float beta1, beta2, epsilon;
  // Adagrad's and Lion's learning rate, Adamax's over 1 - beta1^t, NAdam's factor of the momentum
  // lr mu_(t+1) / (1 - mu_1 ... mu_(t+1)).
  float rate;
  float grad_rate;     // NAdam's factor of the gradient, lr (1 - mu_t) / (1 - mu_1 ... mu_t)
  float inv_sqrt_bc2;  // NAdam's 1 / sqrt(1 - beta2^t)
  // Adagrad's sum at step 1 is initial_sum, not the state's: so that a state of zeros, which a
  // rank's untouched share of it is (Optimizer::prepare_piece), needs no filling in, and a
  // resumed run reads what it restored.
  bool first_step;
  float initial_sum;
};

}  // namespace ddp
