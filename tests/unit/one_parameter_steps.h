#pragma once
// Optimizer steps of one parameter, for checking update rules against steps worked out by hand.

#include <initializer_list>

#include "backend/backend.h"

namespace ddp {

// One parameter from 1 after a step at lr 0.1 per gradient.
template <class Rule, class Hyper>
float after_steps(const Hyper& hyper, std::initializer_list<float> grads) {
  auto backend = make_cpu_backend();
  Rule rule(*backend, 1, hyper);
  float p = 1;
  for (float g : grads) rule.step({&p, 1}, {&g, 1}, 0.1f, GradCheck::kNone);
  return p;
}

}  // namespace ddp
