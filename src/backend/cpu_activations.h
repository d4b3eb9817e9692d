#pragma once
// Note [vectorized activations]: the activations that run as layers of their own (Note [fused
// activations]) on the CPU, forward and backward: ELU, SELU, softplus, softsign, GELU and SiLU.
// Element by element through libm's exp, expm1, log1p and erfc, W2's epoch with GELU in its two
// hidden layers took 1.85x as long as with ReLU (zen4/vectorized_activations_ab.md); a whole SIMD
// vector at a time, all six run at ReLU's speed there. The vectors' functions: simd::exp (2 ulps),
// a series for log(1 + t) and Numerical Recipes' erfc (fractional error below 1.2e-7). The last
// vector of a range is masked, not scalar, so each element's bits do not depend on where a thread's
// share of the range begins (Note [threads per rank]).

#include <cstddef>

#include "backend/backend.h"

namespace ddp::cpu {

// y = act(x) for an activation that dense and convolution kernels apply themselves (ReLU, tanh,
// sigmoid, linear: derivative_from_output; Note [vector tanh and sigmoid]); y may be x.
void fused_activation(Activation act, const float* x, float* y, size_t n);
// y = act(x) for an activation whose derivative needs its input (!derivative_from_output); y may
// be x.
void unfused_activation(Activation act, const float* x, float* y, size_t n);
// dx = dy * act'(x) for such an activation; dx may be dy.
void unfused_activation_grad(Activation act, const float* x, const float* dy, float* dx, size_t n);

}  // namespace ddp::cpu
