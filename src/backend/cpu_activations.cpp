#include "backend/cpu_activations.h"

#include <stdexcept>

#include "backend/activation_grad.h"
#include "core/simd.h"

namespace ddp::cpu {

#ifdef DDP_SIMD_TILES
namespace {

using namespace simd;

// log(1 + t) for t in [0, 1]: 2 atanh(s) with s = t / (2 + t) in [0, 1/3], by atanh's series
// s + s^3/3 + ... + s^13/13 (the next term is below 2^-26 of the sum).
Vec log1p_unit(Vec t) {
  const Vec s = div(t, add(broadcast(2), t));
  const Vec s2 = mul(s, s);
  Vec series = broadcast(1.0f / 13);
  for (int k = 11; k >= 1; k -= 2)
    series = fma(series, s2, broadcast(1.0f / static_cast<float>(k)));
  return mul(add(s, s), series);
}

// erfc(z) by Numerical Recipes' erfcc (Press et al., 2nd ed., 6.2), a Chebyshev fit with a
// fractional error below 1.2e-7: erfc(|z|) = t e^(-z^2 + P(t)) with t = 1 / (1 + |z| / 2), and
// erfc(-|z|) = 2 - erfc(|z|).
Vec erfc(Vec z) {
  static constexpr float kP[] = {0.17087277f, -0.82215223f, 1.48851587f, -1.13520398f,
                                 0.27886807f, -0.18628806f, 0.09678418f, 0.37409196f,
                                 1.00002368f, -1.26551223f};
  const Vec a = abs(z);
  const Vec t = div(broadcast(1), fma(a, broadcast(0.5f), broadcast(1)));
  Vec p = broadcast(kP[0]);
  for (size_t i = 1; i < std::size(kP); ++i) p = fma(p, t, broadcast(kP[i]));
  const Vec tail = mul(t, exp(fma(a, sub(zero(), a), p)));
  return select(greater(zero(), z), sub(broadcast(2), tail), tail);
}

Vec relu6(Vec x) { return min(max(zero(), x), broadcast(6)); }
Vec mish_tanh_softplus(Vec x) {  // as activation_grad.h's
  const Vec e = exp(min(x, broadcast(20)));
  const Vec n = mul(e, add(e, broadcast(2)));
  return div(n, add(n, broadcast(2)));
}
// 1 where low < x < high, 0 elsewhere.
Vec inside(Vec x, float low, float high) {
  return select(greater(x, broadcast(low)),
                select(greater(broadcast(high), x), broadcast(1), zero()), zero());
}
Vec normal_cdf(Vec x) { return mul(broadcast(0.5f), erfc(mul(x, broadcast(-kInvSqrt2)))); }
// GELU's tanh form's 0.5 (1 + tanh(u)) = sigmoid(2u), as activation_grad.h's.
Vec gelu_tanh_gate(Vec x) {
  const Vec cubic = fma(mul(broadcast(kGeluCubic), x), mul(x, x), x);
  return sigmoid(mul(broadcast(2 * kSqrt2OverPi), cubic));
}

template <Activation A>
Vec value(Vec x) {
  const Mask positive = greater(x, zero());
  if constexpr (A == Activation::kElu) return select(positive, x, sub(exp(x), broadcast(1)));
  if constexpr (A == Activation::kSelu)
    return mul(broadcast(kSeluScale),
               select(positive, x, mul(broadcast(kSeluAlpha), sub(exp(x), broadcast(1)))));
  // max(0, x) returns x, NaN included (max returns its second operand for a NaN).
  if constexpr (A == Activation::kSoftplus)
    return add(max(zero(), x), log1p_unit(exp(sub(zero(), abs(x)))));
  if constexpr (A == Activation::kSoftsign) return div(x, add(broadcast(1), abs(x)));
  if constexpr (A == Activation::kGelu) return mul(x, normal_cdf(x));
  if constexpr (A == Activation::kSilu) return mul(x, sigmoid(x));
  if constexpr (A == Activation::kRelu6) return relu6(x);
  if constexpr (A == Activation::kHardSigmoid)
    return div(relu6(add(x, broadcast(3))), broadcast(6));
  if constexpr (A == Activation::kHardSilu)
    return mul(x, div(relu6(add(x, broadcast(3))), broadcast(6)));
  if constexpr (A == Activation::kMish) return mul(x, mish_tanh_softplus(x));
  if constexpr (A == Activation::kGeluTanh) return mul(x, gelu_tanh_gate(x));
  return x;
}

template <Activation A>
Vec slope(Vec x) {
  const Mask positive = greater(x, zero());
  if constexpr (A == Activation::kElu) return select(positive, broadcast(1), exp(x));
  if constexpr (A == Activation::kSelu)
    return select(positive, broadcast(kSeluScale), mul(broadcast(kSeluScale * kSeluAlpha), exp(x)));
  if constexpr (A == Activation::kSoftplus) return sigmoid(x);
  if constexpr (A == Activation::kSoftsign) {
    const Vec d = add(broadcast(1), abs(x));
    return div(broadcast(1), mul(d, d));
  }
  if constexpr (A == Activation::kGelu) {  // Phi(x) + x phi(x)
    const Vec density = mul(broadcast(kInvSqrt2Pi), exp(mul(broadcast(-0.5f), mul(x, x))));
    return fma(x, density, normal_cdf(x));
  }
  if constexpr (A == Activation::kSilu) {
    const Vec s = sigmoid(x);
    return mul(s, fma(x, sub(broadcast(1), s), broadcast(1)));
  }
  if constexpr (A == Activation::kRelu6) return inside(x, 0, 6);
  if constexpr (A == Activation::kHardSigmoid) return mul(inside(x, -3, 3), broadcast(1.0f / 6));
  if constexpr (A == Activation::kHardSilu)
    return select(greater(broadcast(-3), x), zero(),
                  select(greater(broadcast(3), x), fma(x, broadcast(1.0f / 3), broadcast(0.5f)),
                         broadcast(1)));
  if constexpr (A == Activation::kMish) {
    const Vec t = mish_tanh_softplus(x);
    return fma(mul(x, sigmoid(x)), sub(broadcast(1), mul(t, t)), t);
  }
  if constexpr (A == Activation::kGeluTanh) {
    const Vec s = gelu_tanh_gate(x);
    const Vec du =
        mul(broadcast(2 * kSqrt2OverPi), fma(mul(broadcast(3 * kGeluCubic), x), x, broadcast(1)));
    return fma(mul(x, mul(s, sub(broadcast(1), s))), du, s);
  }
  return broadcast(1);
}

// f.template operator()<A>() for the activation act, one of those without a fused kernel.
template <typename F>
void with_unfused(Activation act, F&& f) {
  switch (act) {
    case Activation::kElu:
      return f.template operator()<Activation::kElu>();
    case Activation::kSelu:
      return f.template operator()<Activation::kSelu>();
    case Activation::kSoftplus:
      return f.template operator()<Activation::kSoftplus>();
    case Activation::kSoftsign:
      return f.template operator()<Activation::kSoftsign>();
    case Activation::kGelu:
      return f.template operator()<Activation::kGelu>();
    case Activation::kSilu:
      return f.template operator()<Activation::kSilu>();
    case Activation::kRelu6:
      return f.template operator()<Activation::kRelu6>();
    case Activation::kHardSigmoid:
      return f.template operator()<Activation::kHardSigmoid>();
    case Activation::kHardSilu:
      return f.template operator()<Activation::kHardSilu>();
    case Activation::kMish:
      return f.template operator()<Activation::kMish>();
    case Activation::kGeluTanh:
      return f.template operator()<Activation::kGeluTanh>();
    default:
      throw std::logic_error("unfused_activation: a fused kernel takes this activation");
  }
}

// y = f(x) over [0, n), a vector at a time, the last one masked.
template <typename F>
void each_vector(const float* x, float* y, size_t n, F f) {
  for (size_t i = 0; i < n; i += kLanes) {
    const bool whole = n - i >= kLanes;
    const Mask lanes = first_lanes(static_cast<int64_t>(n - i));
    store_edge(y + i, lanes, whole, f(load_edge(x + i, lanes, whole)));
  }
}

}  // namespace

void fused_activation(Activation act, const float* x, float* y, size_t n) {
  switch (act) {
    case Activation::kRelu:
      return each_vector(x, y, n, [](Vec v) { return max(zero(), v); });
    case Activation::kTanh:
      return each_vector(x, y, n, [](Vec v) { return tanh(v); });
    case Activation::kSigmoid:
      return each_vector(x, y, n, [](Vec v) { return sigmoid(v); });
    case Activation::kLinear:
      return each_vector(x, y, n, [](Vec v) { return v; });
    default:
      throw std::logic_error("fused_activation: this activation is a layer of its own");
  }
}

void unfused_activation(Activation act, const float* x, float* y, size_t n) {
  with_unfused(act, [&]<Activation A>() { each_vector(x, y, n, value<A>); });
}

void unfused_activation_grad(Activation act, const float* x, const float* dy, float* dx, size_t n) {
  with_unfused(act, [&]<Activation A>() {
    for (size_t i = 0; i < n; i += kLanes) {
      const bool whole = n - i >= kLanes;
      const Mask lanes = first_lanes(static_cast<int64_t>(n - i));
      const Vec grad =
          mul(load_edge(dy + i, lanes, whole), slope<A>(load_edge(x + i, lanes, whole)));
      store_edge(dx + i, lanes, whole, grad);
    }
  });
}

#else  // no SIMD: libm, element by element

void fused_activation(Activation act, const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = activate(act, x[i]);
}

void unfused_activation(Activation act, const float* x, float* y, size_t n) {
  for (size_t i = 0; i < n; ++i) y[i] = activate(act, x[i]);
}

void unfused_activation_grad(Activation act, const float* x, const float* dy, float* dx, size_t n) {
  for (size_t i = 0; i < n; ++i) dx[i] = dy[i] * activation_slope_at(act, x[i]);
}

#endif

}  // namespace ddp::cpu
