#pragma once
// The CUDA backend's passes over whole flat buffers (see ComputeBackend for their contracts): the
// optimizer updates, the bf16 wire conversion and the finiteness check. Each launches on `stream`
// and returns without waiting.

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "backend/backend.h"

namespace ddp::cuda {

// velocity is read only when hyper.momentum is not zero. Where `nonfinite` (device memory) is not
// null, a NaN or infinite gradient sets it to 1.
void sgd_update(float* params, const float* grads, float* velocity, size_t count, float lr,
                float grad_scale, const SgdHyper& hyper, int* nonfinite, cudaStream_t stream);
// `step` counts from 1 (the bias corrections' exponent); `nonfinite` as for sgd_update.
void adam_update(float* params, const float* grads, float* m, float* v, size_t count, float lr,
                 float grad_scale, int64_t step, const AdamHyper& hyper, int* nonfinite,
                 cudaStream_t stream);
// The CPU's RMSprop (cpu_updates.cpp), either rule; `nonfinite` as for sgd_update.
void rmsprop_update(float* params, const float* grads, ComputeBackend::RmspropState state,
                    size_t count, float lr, float grad_scale, const RmspropHyper& hyper,
                    int* nonfinite, cudaStream_t stream);
// The CPU's adaptive optimizers (cpu_updates.cpp); `nonfinite` as for sgd_update.
void adaptive_update(float* params, const float* grads, ComputeBackend::AdaptiveState state,
                     size_t count, const AdaptiveStep& step, int* nonfinite, cudaStream_t stream);

// average = momentum * average + (1 - momentum) * x (Note [weight average]).
void moving_average(const float* x, float* average, size_t count, float momentum,
                    cudaStream_t stream);

void to_bf16(const float* src, uint16_t* dst, size_t count, cudaStream_t stream);
void from_bf16(const uint16_t* src, float* dst, size_t count, cudaStream_t stream);

// Sets *flag (device memory) to 1 where an element is NaN or infinite; leaves it alone otherwise.
void flag_non_finite(const float* data, size_t count, int* flag, cudaStream_t stream);

}  // namespace ddp::cuda
