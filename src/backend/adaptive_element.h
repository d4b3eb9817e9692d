#pragma once
// One element of an adaptive optimizer's step (AdaptiveStep's formulas), which the CPU's loops and
// the CUDA kernel share, the kind and rule compile-time so that each form vectorizes.

#include <cmath>

#include "backend/optimizer_hyper.h"
#include "core/host_device.h"

namespace ddp {

// The weight w after the step with gradient `grad` (before grad_scale and L2), updating the
// element's state: first (Adagrad's sum, the others' first moment) and second (Adamax's norm,
// NAdam's second moment; unused otherwise).
template <AdaptiveHyper::Kind kKind, bool kKeras, bool kFirstStep>
DDP_HOST_DEVICE inline float adaptive_element(float w, float grad, float& first, float& second,
                                              const AdaptiveStep& c) {
  using Kind = AdaptiveHyper::Kind;
  const float g = grad * c.grad_scale + c.l2 * w;
  const float b1 = c.beta1, b2 = c.beta2, eps = c.epsilon;
  float change;
  if constexpr (kKind == Kind::kAdagrad) {
    const float sum = (kFirstStep ? c.initial_sum : first) + g * g;
    first = sum;
    change = c.rate * g / (kKeras ? sqrtf(sum + eps) : sqrtf(sum) + eps);
  } else if constexpr (kKind == Kind::kAdamax) {
    const float m = b1 * first + (1 - b1) * g;
    const float bound = kKeras ? fabsf(g) : fabsf(g) + eps;
    const float decayed = b2 * second;
    const float u = decayed > bound ? decayed : bound;
    first = m;
    second = u;
    change = c.rate * m / (kKeras ? u + eps : u);
  } else if constexpr (kKind == Kind::kNadam) {
    const float m = b1 * first + (1 - b1) * g;
    const float v = b2 * second + (1 - b2) * g * g;
    first = m;
    second = v;
    change = (c.grad_rate * g + c.rate * m) / (sqrtf(v) * c.inv_sqrt_bc2 + eps);
  } else {  // Lion: the sign of the interpolation, then the momentum at beta2
    const float m = first;
    const float direction = b1 * m + (1 - b1) * g;
    change = c.rate * (static_cast<float>(direction > 0) - static_cast<float>(direction < 0));
    first = b2 * m + (1 - b2) * g;
  }
  return w * c.decay - change;
}

// f.template operator()<kind, keras rule, first step>() for the step's form.
template <typename F>
inline auto with_adaptive_form(const AdaptiveStep& c, F&& f) {
  using Kind = AdaptiveHyper::Kind;
  switch (c.kind) {
    case Kind::kAdagrad:
      if (c.first_step)
        return c.keras_rule ? f.template operator()<Kind::kAdagrad, true, true>()
                            : f.template operator()<Kind::kAdagrad, false, true>();
      return c.keras_rule ? f.template operator()<Kind::kAdagrad, true, false>()
                          : f.template operator()<Kind::kAdagrad, false, false>();
    case Kind::kAdamax:
      return c.keras_rule ? f.template operator()<Kind::kAdamax, true, false>()
                          : f.template operator()<Kind::kAdamax, false, false>();
    case Kind::kNadam:
      return f.template operator()<Kind::kNadam, false, false>();
    case Kind::kLion:
      break;
  }
  return f.template operator()<Kind::kLion, false, false>();
}

}  // namespace ddp
