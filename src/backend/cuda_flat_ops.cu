#include <cmath>

#include "backend/adaptive_element.h"
#include "backend/cuda_check.h"
#include "backend/cuda_flat_ops.h"
#include "backend/cuda_launch.cuh"

namespace ddp::cuda {
namespace {

// The updates check the gradients they read where `nonfinite` is not null: a NaN or infinity sets
// it to 1 (Note [non-finite check]), with no pass of its own over the gradients.
__global__ void sgd_kernel(float* p, const float* g, float* v, size_t n, float lr, float scale,
                           float mu, float wd, bool nesterov, bool keras_rule, float decay,
                           int* nonfinite) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    if (nonfinite && !isfinite(g[i])) *nonfinite = 1;
    if (keras_rule) {  // SgdHyper: the rate inside the velocity, the decay decoupled
      const float step = lr * (g[i] * scale);
      const float vel = v ? mu * v[i] + step : step;
      if (v) v[i] = vel;
      p[i] = p[i] * decay - (nesterov ? mu * vel + step : vel);
      continue;
    }
    const float grad = g[i] * scale + wd * p[i];
    if (!v) {
      p[i] -= lr * grad;
      continue;
    }
    const float vel = mu * v[i] + grad;
    v[i] = vel;
    p[i] -= lr * (nesterov ? grad + mu * vel : vel);
  }
}

// The CPU's rule (cpu_updates.cpp): l2 added to the gradient, or AdamW's decay of the weight.
__global__ void adam_kernel(float* p, const float* g, float* m, float* v, size_t n, float step_size,
                            float inv_sqrt_bc2, float b1, float b2, float eps, float scale,
                            float l2, float decay, int* nonfinite) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    if (nonfinite && !isfinite(g[i])) *nonfinite = 1;
    const float grad = g[i] * scale + l2 * p[i];
    const float mi = b1 * m[i] + (1 - b1) * grad;
    const float vi = b2 * v[i] + (1 - b2) * grad * grad;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] * decay - step_size * mi / (sqrtf(vi) * inv_sqrt_bc2 + eps);
  }
}

// The CPU's RMSprop (cpu_updates.cpp); buffer and grad_avg are null where the rule has none.
__global__ void rmsprop_kernel(float* p, const float* g, float* square_avg, float* buffer,
                               float* grad_avg, size_t n, float lr, float scale, RmspropHyper hyper,
                               float l2, float decay, int* nonfinite) {
  const float rho = hyper.rho, eps = hyper.epsilon;
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    if (nonfinite && !isfinite(g[i])) *nonfinite = 1;
    const float grad = g[i] * scale + l2 * p[i];
    const float v = rho * square_avg[i] + (1 - rho) * grad * grad;
    square_avg[i] = v;
    float d = v;
    if (grad_avg) {
      const float a = rho * grad_avg[i] + (1 - rho) * grad;
      grad_avg[i] = a;
      d = v - a * a;
    }
    const float denom = hyper.keras_rule ? sqrtf(d + eps) : sqrtf(d) + eps;
    float change = hyper.keras_rule ? lr * grad / denom : grad / denom;
    if (buffer) {
      change = hyper.momentum * buffer[i] + change;
      buffer[i] = change;
    }
    p[i] = p[i] * decay - (hyper.keras_rule ? change : lr * change);
  }
}

// The CPU's adaptive optimizers (adaptive_element.h); second is null for Adagrad and Lion.
template <AdaptiveHyper::Kind kKind, bool kKeras, bool kFirstStep>
__global__ void adaptive_kernel(float* p, const float* g, float* first, float* second, size_t n,
                                AdaptiveStep c, int* nonfinite) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    if (nonfinite && !isfinite(g[i])) *nonfinite = 1;
    float unused = 0;
    p[i] = adaptive_element<kKind, kKeras, kFirstStep>(p[i], g[i], first[i],
                                                       second ? second[i] : unused, c);
  }
}

__global__ void moving_average_kernel(const float* x, float* average, size_t n, float momentum,
                                      float rest) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    average[i] = momentum * average[i] + rest * x[i];
}

// The rounding of core/bf16.h, bit for bit, so that both backends put the same bytes on the wire.
__global__ void to_bf16_kernel(const float* src, uint16_t* dst, size_t n) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n;
       i += size_t(gridDim.x) * blockDim.x) {
    uint32_t bits = __float_as_uint(src[i]);
    if ((bits & 0x7fffffffu) > 0x7f800000u) {
      dst[i] = 0x7fc0;
      continue;
    }
    bits += 0x7fffu + ((bits >> 16) & 1u);
    dst[i] = static_cast<uint16_t>(bits >> 16);
  }
}

__global__ void from_bf16_kernel(const uint16_t* src, float* dst, size_t n) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    dst[i] = __uint_as_float(static_cast<uint32_t>(src[i]) << 16);
}

__global__ void non_finite_kernel(const float* data, size_t n, int* flag) {
  for (size_t i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x)
    if (!isfinite(data[i])) *flag = 1;
}

}  // namespace

void sgd_update(float* params, const float* grads, float* velocity, size_t count, float lr,
                float grad_scale, const SgdHyper& hyper, int* nonfinite, cudaStream_t stream) {
  sgd_kernel<<<blocks_for(count), kThreads, 0, stream>>>(
      params, grads, hyper.momentum != 0 ? velocity : nullptr, count, lr, grad_scale,
      hyper.momentum, hyper.weight_decay, hyper.nesterov, hyper.keras_rule, hyper.decay(lr),
      nonfinite);
  cudaCheck(cudaGetLastError());
}

void adam_update(float* params, const float* grads, float* m, float* v, size_t count, float lr,
                 float grad_scale, int64_t step, const AdamHyper& hyper, int* nonfinite,
                 cudaStream_t stream) {
  const double t = static_cast<double>(step);
  const auto step_size = static_cast<float>(lr / (1 - std::pow(double(hyper.beta1), t)));
  const auto inv_sqrt_bc2 = static_cast<float>(1 / std::sqrt(1 - std::pow(double(hyper.beta2), t)));
  adam_kernel<<<blocks_for(count), kThreads, 0, stream>>>(
      params, grads, m, v, count, step_size, inv_sqrt_bc2, hyper.beta1, hyper.beta2,
      hyper.epsilon_at(inv_sqrt_bc2), grad_scale, hyper.l2(), hyper.decay(lr), nonfinite);
  cudaCheck(cudaGetLastError());
}

void rmsprop_update(float* params, const float* grads, ComputeBackend::RmspropState state,
                    size_t count, float lr, float grad_scale, const RmspropHyper& hyper,
                    int* nonfinite, cudaStream_t stream) {
  rmsprop_kernel<<<blocks_for(count), kThreads, 0, stream>>>(
      params, grads, state.square_avg, hyper.momentum != 0 ? state.momentum_buffer : nullptr,
      hyper.centered ? state.grad_avg : nullptr, count, lr, grad_scale, hyper, hyper.l2(),
      hyper.decay(lr), nonfinite);
  cudaCheck(cudaGetLastError());
}

void adaptive_update(float* params, const float* grads, ComputeBackend::AdaptiveState state,
                     size_t count, const AdaptiveStep& step, int* nonfinite, cudaStream_t stream) {
  with_adaptive_form(step, [&]<AdaptiveHyper::Kind kKind, bool kKeras, bool kFirstStep>() {
    adaptive_kernel<kKind, kKeras, kFirstStep><<<blocks_for(count), kThreads, 0, stream>>>(
        params, grads, state.first, state.second, count, step, nonfinite);
  });
  cudaCheck(cudaGetLastError());
}

void moving_average(const float* x, float* average, size_t count, float momentum,
                    cudaStream_t stream) {
  moving_average_kernel<<<blocks_for(count), kThreads, 0, stream>>>(x, average, count, momentum,
                                                                    1 - momentum);
  cudaCheck(cudaGetLastError());
}

void to_bf16(const float* src, uint16_t* dst, size_t count, cudaStream_t stream) {
  to_bf16_kernel<<<blocks_for(count), kThreads, 0, stream>>>(src, dst, count);
  cudaCheck(cudaGetLastError());
}

void from_bf16(const uint16_t* src, float* dst, size_t count, cudaStream_t stream) {
  from_bf16_kernel<<<blocks_for(count), kThreads, 0, stream>>>(src, dst, count);
  cudaCheck(cudaGetLastError());
}

void flag_non_finite(const float* data, size_t count, int* flag, cudaStream_t stream) {
  non_finite_kernel<<<blocks_for(count), kThreads, 0, stream>>>(data, count, flag);
  cudaCheck(cudaGetLastError());
}

}  // namespace ddp::cuda
