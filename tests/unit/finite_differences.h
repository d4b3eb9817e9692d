#pragma once
// Central finite differences against analytic gradients, shared by the gradient tests.

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <span>
#include <vector>

#include "core/rng.h"
#include "nn/layer.h"
#include "nn/loss.h"
#include "nn/sequential.h"

namespace ddp {

inline std::vector<float> random_vector(size_t n, uint64_t seed, float low = -1, float high = 1) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = rng.uniform(low, high);
  return v;
}

// Binds `layer` (Dense, Conv2D) to `weight` and `bias` and their gradients, or to `weight` alone
// where it has no bias parameter (Note [no bias]).
inline void bind_weight_and_bias(Layer& layer, std::vector<float>& weight, std::vector<float>& bias,
                                 std::vector<float>& dw, std::vector<float>& db, bool use_bias) {
  float* params[] = {weight.data(), bias.data()};
  float* grads[] = {dw.data(), db.data()};
  const size_t count = use_bias ? 2 : 1;
  EXPECT_EQ(layer.param_specs().size(), count);
  layer.bind(std::span(params, count), std::span(grads, count));
}

// Compares `analytic` with central differences of `objective` with respect to `values`.
inline void expect_matches_finite_differences(const std::function<double()>& objective,
                                              std::span<float> values,
                                              const std::vector<float>& analytic, const char* what,
                                              float h = 1e-2f) {
  ASSERT_EQ(values.size(), analytic.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const float saved = values[i];
    values[i] = saved + h;
    const double plus = objective();
    values[i] = saved - h;
    const double minus = objective();
    values[i] = saved;
    const double numeric = (plus - minus) / (2.0 * h);
    EXPECT_NEAR(analytic[i], numeric, 2e-3 + 1e-2 * std::abs(numeric)) << what << "[" << i << "]";
  }
}

// L = sum(y * r) for a random r, so dL/dy = r.
inline double weighted_sum(const std::vector<float>& y, const std::vector<float>& r) {
  double sum = 0;
  for (size_t i = 0; i < y.size(); ++i) sum += static_cast<double>(y[i]) * r[i];
  return sum;
}

// Checks the layer's dx against central differences of L = sum(layer(x) * r), r drawn from
// `seed`; y (batch, output shape) receives the layer's output. Returns L, of x and the layer's
// parameters as they are when it is called, for checks of the parameter gradients.
inline std::function<double()> expect_input_gradient_matches(ComputeBackend& backend, Layer& layer,
                                                             std::vector<float>& x,
                                                             std::vector<float>& y, int64_t batch,
                                                             uint64_t seed) {
  auto objective = [&backend, &layer, &x, &y, batch, r = random_vector(y.size(), seed)] {
    layer.forward(backend, x.data(), y.data(), batch);
    return weighted_sum(y, r);
  };
  objective();
  std::vector<float> dy = random_vector(y.size(), seed), dx(x.size());
  layer.backward(backend, x.data(), y.data(), dy.data(), dx.data(), batch, false);
  expect_matches_finite_differences(objective, x, dx, "dx");
  return objective;
}

// A normalization layer's gradients: dx and those of its per-feature gamma and beta (bound to
// dgamma and dbeta) against central differences of L = sum(layer(x) * r), r drawn from seed 8;
// then a second backward with `accumulate` must add the same parameter gradients again.
inline void expect_scale_and_shift_gradients(ComputeBackend& backend, Layer& layer,
                                             std::vector<float>& x, int64_t batch,
                                             std::vector<float>& gamma, std::vector<float>& beta,
                                             const std::vector<float>& dgamma,
                                             const std::vector<float>& dbeta) {
  std::vector<float> y(x.size());
  const auto objective = expect_input_gradient_matches(backend, layer, x, y, batch, 8);
  expect_matches_finite_differences(objective, gamma, dgamma, "dgamma");
  expect_matches_finite_differences(objective, beta, dbeta, "dbeta");

  const std::vector<float> once_gamma = dgamma, once_beta = dbeta;
  objective();
  std::vector<float> dy = random_vector(y.size(), 8);
  layer.backward(backend, x.data(), y.data(), dy.data(), nullptr, batch, true);
  for (size_t c = 0; c < dgamma.size(); ++c) {
    EXPECT_NEAR(dgamma[c], 2 * once_gamma[c], 1e-5) << "accumulated dgamma[" << c << "]";
    EXPECT_NEAR(dbeta[c], 2 * once_beta[c], 1e-5) << "accumulated dbeta[" << c << "]";
  }
}

// Checks every parameter gradient of `model` (bound gradients, logits for a fused softmax) against
// central differences of the sparse cross-entropy summed over the batch x (batch, inputs).
inline void expect_model_gradient_matches(ComputeBackend& backend, Sequential& model,
                                          const std::vector<float>& x,
                                          const std::vector<float>& labels) {
  const auto batch = static_cast<int64_t>(labels.size());
  const int64_t cols = model.output_cols();
  const Loss loss(LossKind::kSparseCategoricalCrossentropy);
  auto objective = [&] {
    const float* out = model.forward(x.data(), batch);
    return loss.compute(backend, out, labels.data(), nullptr, nullptr, 1, batch, cols).loss_sum;
  };
  const float* out = model.forward(x.data(), batch);
  loss.compute(backend, out, labels.data(), nullptr, model.output_grad(), 1, batch, cols);
  model.backward(batch);
  const std::vector<float> analytic(model.grads().begin(), model.grads().end());
  expect_matches_finite_differences(objective, model.params(), analytic, "param");
}

}  // namespace ddp
