#include "backend/cpu_updates.h"

#include <cmath>

#include "backend/adaptive_element.h"
#include "backend/team_shares.h"
#include "core/owned_lines.h"

namespace ddp::cpu {
namespace {

// The updates' loops, their arguments by value: read through a lambda's references, Adam's
// coefficients could change with every store as far as the compiler knew, and its loop ran 3x
// slower unvectorized. Each returns whether a gradient was non-finite. They run in chunks that ask
// for the next chunk's parameter lines ahead (Note [owned lines]).
uint32_t sgd_chunk(float* params, const float* grads, float* velocity, size_t begin, size_t end,
                   float lr, float scale, SgdHyper hyper) {
  const float mu = hyper.momentum;
  const float wd = hyper.weight_decay;
  uint32_t non_finite = 0;
  if (hyper.keras_rule) {  // SgdHyper: the rate inside the velocity, the decay decoupled
    const float decay = hyper.decay(lr);
    for (size_t i = begin; i < end; ++i) {
      non_finite |= is_non_finite(grads[i]);
      const float step = lr * (grads[i] * scale);
      const float v = mu == 0 ? step : mu * velocity[i] + step;
      if (mu != 0) velocity[i] = v;
      params[i] = params[i] * decay - (hyper.nesterov ? mu * v + step : v);
    }
    return non_finite;
  }
  if (mu == 0) {
    for (size_t i = begin; i < end; ++i) {
      non_finite |= is_non_finite(grads[i]);
      params[i] -= lr * (grads[i] * scale + wd * params[i]);
    }
    return non_finite;
  }
  for (size_t i = begin; i < end; ++i) {
    non_finite |= is_non_finite(grads[i]);
    const float g = grads[i] * scale + wd * params[i];
    const float v = mu * velocity[i] + g;
    velocity[i] = v;
    params[i] -= lr * (hyper.nesterov ? g + mu * v : v);
  }
  return non_finite;
}

uint32_t adam_chunk(float* params, const float* grads, float* m, float* v, size_t begin, size_t end,
                    AdamStep c) {
  const float b1 = c.beta1, b2 = c.beta2, eps = c.epsilon, l2 = c.l2, decay = c.decay;
  const float scale = c.grad_scale;
  uint32_t non_finite = 0;
  for (size_t i = begin; i < end; ++i) {
    non_finite |= is_non_finite(grads[i]);
    const float g = grads[i] * scale + l2 * params[i];
    const float mi = b1 * m[i] + (1 - b1) * g;
    const float vi = b2 * v[i] + (1 - b2) * g * g;
    m[i] = mi;
    v[i] = vi;
    // AdamW scales the weight first, as torch.optim.AdamW does (for Adam, decay is 1: exact).
    params[i] = params[i] * decay - c.step_size * mi / (std::sqrt(vi) * c.inv_sqrt_bc2 + eps);
  }
  return non_finite;
}

// One chunk of RMSprop with the hyperparameters' branches taken outside the loop, so that each
// form vectorizes (RmspropHyper has the two rules).
template <bool kCentered, bool kMomentum, bool kKeras>
uint32_t rmsprop_chunk(float* params, const float* grads, ComputeBackend::RmspropState state,
                       size_t begin, size_t end, float lr, float scale, RmspropHyper hyper) {
  const float rho = hyper.rho, eps = hyper.epsilon, mu = hyper.momentum;
  const float l2 = hyper.l2(), decay = hyper.decay(lr);
  float* const square_avg = state.square_avg;
  float* const buffer = state.momentum_buffer;
  float* const grad_avg = state.grad_avg;
  uint32_t non_finite = 0;
  for (size_t i = begin; i < end; ++i) {
    non_finite |= is_non_finite(grads[i]);
    const float g = grads[i] * scale + l2 * params[i];
    const float v = rho * square_avg[i] + (1 - rho) * g * g;
    square_avg[i] = v;
    float d = v;
    if constexpr (kCentered) {
      const float a = rho * grad_avg[i] + (1 - rho) * g;
      grad_avg[i] = a;
      d = v - a * a;
    }
    const float denom = kKeras ? std::sqrt(d + eps) : std::sqrt(d) + eps;
    // Keras' buffer holds steps (the rate inside), PyTorch's normalized gradients.
    const float step = kKeras ? lr * g / denom : g / denom;
    float change = step;
    if constexpr (kMomentum) {
      change = mu * buffer[i] + step;
      buffer[i] = change;
    }
    params[i] = params[i] * decay - (kKeras ? change : lr * change);
  }
  return non_finite;
}

template <bool kCentered, bool kMomentum>
uint32_t rmsprop_rule(float* params, const float* grads, ComputeBackend::RmspropState state,
                      size_t begin, size_t end, float lr, float scale, const RmspropHyper& hyper) {
  return hyper.keras_rule ? rmsprop_chunk<kCentered, kMomentum, true>(params, grads, state, begin,
                                                                      end, lr, scale, hyper)
                          : rmsprop_chunk<kCentered, kMomentum, false>(params, grads, state, begin,
                                                                       end, lr, scale, hyper);
}

// One chunk of an adaptive optimizer; its state's buffers are null where the kind has none.
template <AdaptiveHyper::Kind kKind, bool kKeras, bool kFirstStep>
uint32_t adaptive_chunk(float* params, const float* grads, ComputeBackend::AdaptiveState state,
                        size_t begin, size_t end, AdaptiveStep c) {
  float* const first = state.first;
  float* const second = state.second ? state.second : state.first;  // unread where null
  uint32_t non_finite = 0;
  for (size_t i = begin; i < end; ++i) {
    non_finite |= is_non_finite(grads[i]);
    params[i] =
        adaptive_element<kKind, kKeras, kFirstStep>(params[i], grads[i], first[i], second[i], c);
  }
  return non_finite;
}

}  // namespace

double squared_sum(const float* data, size_t count) {
  constexpr size_t kAccumulators = 16;
  double acc[kAccumulators] = {};
  size_t i = 0;
  for (; i + kAccumulators <= count; i += kAccumulators) {
    for (size_t j = 0; j < kAccumulators; ++j) {
      const double x = data[i + j];
      acc[j] += x * x;
    }
  }
  for (size_t j = 0; i < count; ++i, ++j) acc[j] += static_cast<double>(data[i]) * data[i];
  double sum = 0;
  for (const double a : acc) sum += a;
  return sum;
}

uint32_t sgd_range(float* params, const float* grads, float* velocity, size_t count, float lr,
                   float grad_scale, SgdHyper hyper) {
  return in_chunks_owning_ahead(params, count, [=](size_t begin, size_t end) {
    return sgd_chunk(params, grads, velocity, begin, end, lr, grad_scale, hyper);
  });
}

// Adam's coefficients for step `step` (from 1). A step updates its parameters piece by piece (in
// backward, tensor by tensor: W1's six), and two pow() per piece were 1.4% of W1's step (perf), so
// each thread keeps the last step's (threads may update pieces at once).
AdamStep adam_step(float lr, float grad_scale, int64_t step, const AdamHyper& hyper) {
  thread_local struct {
    float lr = 0, beta1 = 0, beta2 = 0;
    int64_t step = -1;
    float step_size = 0, inv_sqrt_bc2 = 0;
  } last;
  if (last.step != step || last.lr != lr || last.beta1 != hyper.beta1 ||
      last.beta2 != hyper.beta2) {
    const double t = static_cast<double>(step);
    last = {
        .lr = lr,
        .beta1 = hyper.beta1,
        .beta2 = hyper.beta2,
        .step = step,
        .step_size = static_cast<float>(lr / (1 - std::pow(double(hyper.beta1), t))),
        .inv_sqrt_bc2 = static_cast<float>(1 / std::sqrt(1 - std::pow(double(hyper.beta2), t)))};
  }
  return {.beta1 = hyper.beta1,
          .beta2 = hyper.beta2,
          .step_size = last.step_size,
          .inv_sqrt_bc2 = last.inv_sqrt_bc2,
          .epsilon = hyper.epsilon_at(last.inv_sqrt_bc2),
          .grad_scale = grad_scale,
          .l2 = hyper.l2(),
          .decay = hyper.decay(lr)};
}

uint32_t adam_range(float* params, const float* grads, float* m, float* v, size_t count,
                    AdamStep c) {
  return in_chunks_owning_ahead(params, count, [=](size_t begin, size_t end) {
    return adam_chunk(params, grads, m, v, begin, end, c);
  });
}

uint32_t rmsprop_range(float* params, const float* grads, ComputeBackend::RmspropState state,
                       size_t count, float lr, float grad_scale, RmspropHyper hyper) {
  using Chunk = uint32_t (*)(float*, const float*, ComputeBackend::RmspropState, size_t, size_t,
                             float, float, const RmspropHyper&);
  const Chunk chunk =
      hyper.centered
          ? (hyper.momentum != 0 ? rmsprop_rule<true, true> : rmsprop_rule<true, false>)
          : (hyper.momentum != 0 ? rmsprop_rule<false, true> : rmsprop_rule<false, false>);
  return in_chunks_owning_ahead(params, count, [=](size_t begin, size_t end) {
    return chunk(params, grads, state, begin, end, lr, grad_scale, hyper);
  });
}

uint32_t adaptive_range(float* params, const float* grads, ComputeBackend::AdaptiveState state,
                        size_t count, const AdaptiveStep& step) {
  return with_adaptive_form(step, [&]<AdaptiveHyper::Kind kKind, bool kKeras, bool kFirstStep>() {
    return in_chunks_owning_ahead(params, count, [=](size_t begin, size_t end) {
      return adaptive_chunk<kKind, kKeras, kFirstStep>(params, grads, state, begin, end, step);
    });
  });
}

uint32_t sgd_update(ThreadTeam& team, float* params, const float* grads, float* velocity,
                    size_t count, float lr, float grad_scale, const SgdHyper& hyper) {
  return elementwise(team, count, [=](size_t begin, size_t end) {
    return sgd_range(params + begin, grads + begin, velocity + begin, end - begin, lr, grad_scale,
                     hyper);
  });
}

uint32_t adam_update(ThreadTeam& team, float* params, const float* grads, float* m, float* v,
                     size_t count, const AdamStep& c) {
  return elementwise(team, count, [=](size_t begin, size_t end) {
    return adam_range(params + begin, grads + begin, m + begin, v + begin, end - begin, c);
  });
}

namespace {
// A state buffer offset like the parameters of a share; absent buffers stay null.
float* from(float* buffer, size_t begin) { return buffer ? buffer + begin : nullptr; }
}  // namespace

uint32_t rmsprop_update(ThreadTeam& team, float* params, const float* grads,
                        ComputeBackend::RmspropState state, size_t count, float lr,
                        float grad_scale, const RmspropHyper& hyper) {
  return elementwise(team, count, [=](size_t begin, size_t end) {
    return rmsprop_range(params + begin, grads + begin,
                         {from(state.square_avg, begin), from(state.momentum_buffer, begin),
                          from(state.grad_avg, begin)},
                         end - begin, lr, grad_scale, hyper);
  });
}

uint32_t adaptive_update(ThreadTeam& team, float* params, const float* grads,
                         ComputeBackend::AdaptiveState state, size_t count,
                         const AdaptiveStep& step) {
  return elementwise(team, count, [=](size_t begin, size_t end) {
    return adaptive_range(params + begin, grads + begin,
                          {from(state.first, begin), from(state.second, begin)}, end - begin, step);
  });
}

bool all_finite(const float* data, size_t count) {
  uint32_t non_finite = 0;
  for (size_t i = 0; i < count; ++i) non_finite |= is_non_finite(data[i]);
  return non_finite == 0;
}

}  // namespace ddp::cpu
