#include "optim/adaptive_optimizer.h"

#include <cmath>

namespace ddp {
namespace {

using Kind = AdaptiveHyper::Kind;

bool has_second_moment(Kind kind) { return kind == Kind::kAdamax || kind == Kind::kNadam; }

// NAdam's momentum coefficient of step t (from 1): beta1 (1 - 0.5 x 0.96^(t x momentum_decay)).
double nadam_momentum(const AdaptiveHyper& h, int64_t t) {
  return h.beta1 * (1 - 0.5 * std::pow(0.96, static_cast<double>(t) * h.momentum_decay));
}

}  // namespace

double nadam_momentum_product(const AdaptiveHyper& hyper, int64_t steps) {
  double product = 1;
  for (int64_t t = 1; t <= steps; ++t) product *= nadam_momentum(hyper, t);
  return product;
}

std::string adaptive_name(Kind kind) {
  switch (kind) {
    case Kind::kAdagrad:
      return "adagrad";
    case Kind::kAdamax:
      return "adamax";
    case Kind::kNadam:
      return "nadam";
    case Kind::kLion:
      break;
  }
  return "lion";
}

AdaptiveOptimizer::AdaptiveOptimizer(ComputeBackend& backend, size_t count,
                                     const AdaptiveHyper& hyper)
    : Optimizer(backend, count),
      hyper_(hyper),
      first_(backend, count),
      second_(has_second_moment(hyper.kind) ? DeviceBuffer(backend, count) : DeviceBuffer()) {}

std::string AdaptiveOptimizer::name() const {
  const bool one_rule = hyper_.kind == Kind::kLion;
  return adaptive_name(hyper_.kind) + (hyper_.keras_rule && !one_rule ? "_keras" : "");
}

void AdaptiveOptimizer::began_step() {
  if (hyper_.kind != Kind::kNadam) return;
  // One factor a step; the whole product where the step count was set (a restored run).
  momentum_product_ = product_steps_ + 1 == steps_
                          ? momentum_product_ * nadam_momentum(hyper_, steps_)
                          : nadam_momentum_product(hyper_, steps_);
  product_steps_ = steps_;
}

AdaptiveStep AdaptiveOptimizer::step_at(float lr) {
  const double t = static_cast<double>(steps_);
  AdaptiveStep c = {.kind = hyper_.kind,
                    .keras_rule = hyper_.keras_rule,
                    .grad_scale = grad_scale_,
                    .l2 = hyper_.l2(),
                    .decay = hyper_.decay(lr),
                    .beta1 = hyper_.beta1,
                    .beta2 = hyper_.beta2,
                    .epsilon = hyper_.epsilon,
                    .rate = lr,
                    .grad_rate = 0,
                    .inv_sqrt_bc2 = 1,
                    .first_step = steps_ == 1,
                    .initial_sum = hyper_.initial_accumulator};
  if (hyper_.kind == Kind::kAdamax) {
    c.rate = static_cast<float>(lr / (1 - std::pow(double(hyper_.beta1), t)));
  } else if (hyper_.kind == Kind::kNadam) {
    const double product = momentum_product_;
    const double mu = nadam_momentum(hyper_, steps_);
    const double mu_next = nadam_momentum(hyper_, steps_ + 1);
    c.grad_rate = static_cast<float>(lr * (1 - mu) / (1 - product));
    c.rate = static_cast<float>(lr * mu_next / (1 - product * mu_next));
    c.inv_sqrt_bc2 = static_cast<float>(1 / std::sqrt(1 - std::pow(double(hyper_.beta2), t)));
  }
  return c;
}

bool AdaptiveOptimizer::update_piece(size_t state_offset, std::span<float> params,
                                     std::span<const float> grads, float lr, GradCheck check) {
  const auto at = [state_offset](DeviceBuffer& buffer) {
    return buffer.size() == 0 ? nullptr : buffer.data() + state_offset;
  };
  return backend_.adaptive_update(params.data(), grads.data(), {at(first_), at(second_)},
                                  params.size(), step_at(lr), check);
}

std::vector<StateTensor> AdaptiveOptimizer::own_state() {
  switch (hyper_.kind) {
    case Kind::kAdagrad:
      return {{"sum", first_.span()}};
    case Kind::kAdamax:
      return {{"exp_avg", first_.span()}, {"exp_inf", second_.span()}};
    case Kind::kNadam:
      return {{"exp_avg", first_.span()}, {"exp_avg_sq", second_.span()}};
    case Kind::kLion:
      break;
  }
  return {{"exp_avg", first_.span()}};
}

}  // namespace ddp
