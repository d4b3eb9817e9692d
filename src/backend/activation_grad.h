#pragma once
// Activation functions and their gradients, elementwise on the CPU.

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <numbers>
#include <stdexcept>

#include "backend/backend.h"

namespace ddp::cpu {

// SELU's constants (Klambauer et al. 2017), as Keras and PyTorch round them.
inline constexpr float kSeluScale = 1.0507009873554805f;
inline constexpr float kSeluAlpha = 1.6732632423543772f;
inline constexpr float kInvSqrt2 = 1 / std::numbers::sqrt2_v<float>;
inline constexpr float kInvSqrt2Pi = std::numbers::inv_sqrtpi_v<float> * kInvSqrt2;  // N(0,1) at 0
// GELU's tanh form: 0.5 z (1 + tanh(u)) = z sigmoid(2u), u = sqrt(2 / pi) (z + 0.044715 z^3);
// its slope sigmoid(2u) + z sigmoid(2u) (1 - sigmoid(2u)) 2u'.
inline constexpr float kSqrt2OverPi = 2 * kInvSqrt2Pi;
inline constexpr float kGeluCubic = 0.044715f;

// tanh(softplus(z)) = n / (n + 2) with n = e^z (e^z + 2); past z = 20 it is 1 in float (and
// e^2z would overflow).
inline float mish_tanh_softplus(float z) {
  const float e = std::exp(std::min(z, 20.0f));
  const float n = e * (e + 2);
  return n / (n + 2);
}

inline float activate(Activation act, float z) {
  switch (act) {
    case Activation::kRelu:
      return z > 0 ? z : 0;
    case Activation::kTanh:
      return std::tanh(z);
    case Activation::kSigmoid:
      return 1 / (1 + std::exp(-z));
    case Activation::kElu:
      return z > 0 ? z : std::expm1(z);
    case Activation::kSelu:
      return kSeluScale * (z > 0 ? z : kSeluAlpha * std::expm1(z));
    case Activation::kSoftplus:  // log(1 + e^z) without overflow for large z
      return std::max(z, 0.0f) + std::log1p(std::exp(-std::abs(z)));
    case Activation::kSoftsign:
      return z / (1 + std::abs(z));
    case Activation::kGelu:
      return 0.5f * z * std::erfc(-z * kInvSqrt2);  // erfc: no cancellation for z < 0
    case Activation::kSilu:
      return z / (1 + std::exp(-z));
    case Activation::kRelu6:
      return std::min(std::max(z, 0.0f), 6.0f);
    case Activation::kHardSigmoid:
      return std::min(std::max(z + 3, 0.0f), 6.0f) / 6;
    case Activation::kHardSilu:
      return z * (std::min(std::max(z + 3, 0.0f), 6.0f) / 6);
    case Activation::kMish:
      return z * mish_tanh_softplus(z);
    case Activation::kGeluTanh:
      return z * activate(Activation::kSigmoid, 2 * kSqrt2OverPi * (z + kGeluCubic * z * z * z));
    case Activation::kLinear:
      break;
  }
  return z;
}

// act'(x) of the activations whose derivative needs their input (!derivative_from_output).
inline float activation_slope_at(Activation act, float x) {
  switch (act) {
    case Activation::kElu:
      return x > 0 ? 1 : std::exp(x);
    case Activation::kSelu:
      return x > 0 ? kSeluScale : kSeluScale * kSeluAlpha * std::exp(x);
    case Activation::kSoftplus:
      return activate(Activation::kSigmoid, x);
    case Activation::kSoftsign: {
      const float d = 1 + std::abs(x);
      return 1 / (d * d);
    }
    case Activation::kGelu:  // Phi(x) + x phi(x)
      return 0.5f * std::erfc(-x * kInvSqrt2) + x * kInvSqrt2Pi * std::exp(-0.5f * x * x);
    case Activation::kSilu: {
      const float s = activate(Activation::kSigmoid, x);
      return s * (1 + x * (1 - s));
    }
    // The kinks take PyTorch's one-sided slopes: 0 at relu6's 0 and 6 and hard_sigmoid's -3 and 3.
    case Activation::kRelu6:
      return x > 0 && x < 6 ? 1.0f : 0.0f;
    case Activation::kHardSigmoid:
      return x > -3 && x < 3 ? 1.0f / 6 : 0.0f;
    case Activation::kHardSilu:
      return x < -3 ? 0.0f : x < 3 ? x / 3 + 0.5f : 1.0f;
    case Activation::kMish: {  // tanh(sp) + x sigmoid(x) (1 - tanh(sp)^2)
      const float t = mish_tanh_softplus(x);
      return t + x * activate(Activation::kSigmoid, x) * (1 - t * t);
    }
    case Activation::kGeluTanh: {
      const float s =
          activate(Activation::kSigmoid, 2 * kSqrt2OverPi * (x + kGeluCubic * x * x * x));
      return s + x * s * (1 - s) * 2 * kSqrt2OverPi * (1 + 3 * kGeluCubic * x * x);
    }
    default:
      break;
  }
  throw std::logic_error("activation_slope_at: the derivative is read from the output");
}

// Writes dz = dy * act'(z) where act' is expressed through y = act(z) (derivative_from_output);
// dz may be dy.
inline void activation_grad(Activation act, const float* y, const float* dy, float* dz, size_t n) {
  switch (act) {
    case Activation::kRelu:
      // dy read whether or not it is kept: read only where y > 0, GCC vectorized the loop with
      // masked loads, which AMD's cores run as microcode (the loop took 3x as long on Zen 3).
      for (size_t i = 0; i < n; ++i) {
        const float g = dy[i];
        dz[i] = y[i] > 0 ? g : 0.0f;
      }
      return;
    case Activation::kTanh:
      for (size_t i = 0; i < n; ++i) dz[i] = dy[i] * (1 - y[i] * y[i]);
      return;
    case Activation::kSigmoid:
      for (size_t i = 0; i < n; ++i) dz[i] = dy[i] * y[i] * (1 - y[i]);
      return;
    case Activation::kLinear:
      if (dz != dy) std::memmove(dz, dy, n * sizeof(float));
      return;
    default:
      break;
  }
  throw std::logic_error("activation_grad: the derivative needs the activation's input");
}

}  // namespace ddp::cpu
