#pragma once
// The CPU backend's optimizer updates over ranges of its flat buffers (ComputeBackend::sgd_update,
// adam_update, rmsprop_update, adaptive_update), and the finiteness test they and all_finite share.

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "backend/backend.h"
#include "core/thread_team.h"

namespace ddp::cpu {

// NaN and +-inf are the floats whose exponent bits are all ones. An integer OR-reduction of this
// vectorizes; a float one would not (its order is fixed without -ffast-math).
inline uint32_t is_non_finite(float x) {
  constexpr uint32_t kExponent = 0x7f800000u;
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return static_cast<uint32_t>((bits & kExponent) == kExponent);
}

// The sum of data's squares in double: element i goes to accumulator i % 16 and the accumulators
// are added in order, so the bits depend only on the data. A single running sum waits on each add
// (W2's 535,818 gradients: ~0.4 ms a step through weight_penalty's loop, ~0.05 ms so).
double squared_sum(const float* data, size_t count);

// Each update returns whether a gradient it read was non-finite.
uint32_t sgd_range(float* params, const float* grads, float* velocity, size_t count, float lr,
                   float grad_scale, SgdHyper hyper);

// Adam's coefficients of one step (bias corrections folded in): the gradient, times grad_scale,
// gets l2 * param added, the param is scaled by `decay` (AdamW's 1 - lr * weight_decay, else 1)
// before the step.
struct AdamStep {
  float beta1, beta2, step_size, inv_sqrt_bc2, epsilon, grad_scale, l2, decay;
};
AdamStep adam_step(float lr, float grad_scale, int64_t step, const AdamHyper& hyper);
uint32_t adam_range(float* params, const float* grads, float* m, float* v, size_t count,
                    AdamStep c);

// RMSprop by either rule (RmspropHyper); state's buffers offset like params.
uint32_t rmsprop_range(float* params, const float* grads, ComputeBackend::RmspropState state,
                       size_t count, float lr, float grad_scale, RmspropHyper hyper);

// Adagrad, Adamax, NAdam or Lion (AdaptiveStep); state's buffers offset like params.
uint32_t adaptive_range(float* params, const float* grads, ComputeBackend::AdaptiveState state,
                        size_t count, const AdaptiveStep& step);

// The backend's updates over whole buffers: the ranges above on the team's shares of the elements
// (each element computed as on one thread); whether a gradient was non-finite.
uint32_t sgd_update(ThreadTeam& team, float* params, const float* grads, float* velocity,
                    size_t count, float lr, float grad_scale, const SgdHyper& hyper);
uint32_t adam_update(ThreadTeam& team, float* params, const float* grads, float* m, float* v,
                     size_t count, const AdamStep& c);
uint32_t rmsprop_update(ThreadTeam& team, float* params, const float* grads,
                        ComputeBackend::RmspropState state, size_t count, float lr,
                        float grad_scale, const RmspropHyper& hyper);
uint32_t adaptive_update(ThreadTeam& team, float* params, const float* grads,
                         ComputeBackend::AdaptiveState state, size_t count,
                         const AdaptiveStep& step);
// Whether any of data's floats is NaN or infinite.
bool all_finite(const float* data, size_t count);

}  // namespace ddp::cpu
