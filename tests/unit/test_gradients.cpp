// Invariant 4: every analytic gradient matches central finite differences.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <span>
#include <vector>

#include "core/rng.h"
#include "finite_differences.h"
#include "nn/activation.h"
#include "nn/dense.h"
#include "nn/leaky_relu.h"
#include "nn/loss.h"
#include "nn/rescaling.h"
#include "nn/softmax.h"

namespace ddp {
namespace {

// A Dense layer bound to parameters drawn from `seed` and zeroed gradients; without a bias
// parameter (Note [no bias]) `b` is zeros that the layer is not given.
struct BoundDense {
  BoundDense(int64_t in, int64_t out, Activation act, uint64_t seed, bool use_bias)
      : layer(in, out, act, use_bias),
        w(random_vector(out * in, seed)),
        b(use_bias ? random_vector(out, seed + 1) : std::vector<float>(out)),
        dw(w.size()),
        db(b.size()) {
    bind_weight_and_bias(layer, w, b, dw, db, use_bias);
  }
  Dense layer;
  std::vector<float> w, b, dw, db;
};

class DenseGradient : public ::testing::TestWithParam<Activation> {};

TEST_P(DenseGradient, MatchesFiniteDifferences) {
  auto backend = make_cpu_backend();
  const int64_t batch = 4, in = 5, out = 3;
  for (const bool use_bias : {true, false}) {
    BoundDense dense(in, out, GetParam(), 1, use_bias);
    // Inputs whose pre-activations stay clear of ReLU's kink with the bias and without.
    std::vector<float> x = random_vector(batch * in, use_bias ? 13 : 101);
    const std::vector<float> r = random_vector(batch * out, 4);
    std::vector<float> y(batch * out);

    auto objective = [&] {
      dense.layer.forward(*backend, x.data(), y.data(), batch);
      return weighted_sum(y, r);
    };
    objective();
    // Finite differences are meaningless across ReLU's kink: a smaller step, and no
    // pre-activation within reach of it (one perturbation moves a pre-activation by at most
    // h * max(|x|, |w|, 1)).
    const float h = GetParam() == Activation::kRelu ? 1e-3f : 1e-2f;
    if (GetParam() == Activation::kRelu) {
      BoundDense linear(in, out, Activation::kLinear, 1, use_bias);
      std::vector<float> z(batch * out);
      linear.layer.forward(*backend, x.data(), z.data(), batch);
      for (float v : z) ASSERT_GT(std::abs(v), 5 * h) << "test data too close to the ReLU kink";
    }
    std::vector<float> dy = r, dx(x.size());
    dense.layer.backward(*backend, x.data(), y.data(), dy.data(), dx.data(), batch, false);

    expect_matches_finite_differences(objective, x, dx, "dx", h);
    expect_matches_finite_differences(objective, dense.w, dense.dw, "dw", h);
    if (use_bias) expect_matches_finite_differences(objective, dense.b, dense.db, "db", h);
  }
}

INSTANTIATE_TEST_SUITE_P(Activations, DenseGradient,
                         ::testing::Values(Activation::kLinear, Activation::kRelu,
                                           Activation::kTanh, Activation::kSigmoid));

// Note [no bias]: a Dense layer without a bias computes x W^T (a bias of zeros that nothing
// moves), also after a backward (whose bias gradient it keeps nowhere); on the batch of 130 rows
// the tiled kernels split into whole and partial tiles.
TEST(DenseWithoutBias, IsTheProductAlone) {
  auto backend = make_cpu_backend();
  const int64_t batch = 130, in = 7, out = 5;
  BoundDense dense(in, out, Activation::kLinear, 1, false);
  const std::vector<float> x = random_vector(batch * in, 13);
  std::vector<float> y(batch * out), dy = random_vector(batch * out, 4), dx(x.size());
  for (int pass = 0; pass < 2; ++pass) {
    dense.layer.forward(*backend, x.data(), y.data(), batch);
    for (int64_t row = 0; row < batch; ++row)
      for (int64_t o = 0; o < out; ++o) {
        double z = 0;
        for (int64_t i = 0; i < in; ++i) z += double{dense.w[o * in + i]} * x[row * in + i];
        ASSERT_NEAR(y[row * out + o], z, 1e-5) << "pass " << pass << ", row " << row;
      }
    dense.layer.backward(*backend, x.data(), y.data(), dy.data(), dx.data(), batch, false);
  }
}

class ActivationGradient : public ::testing::TestWithParam<Activation> {};

TEST_P(ActivationGradient, MatchesFiniteDifferences) {
  auto backend = make_cpu_backend();
  const int64_t batch = 3;
  ActivationLayer layer(GetParam(), Shape{4});
  // Magnitudes in [0.1, 2] keep ReLU inputs away from its kink.
  std::vector<float> x = random_vector(batch * 4, 5, 0.1f, 2.0f);
  for (size_t i = 0; i < x.size(); i += 2) x[i] = -x[i];
  std::vector<float> y(x.size());
  expect_input_gradient_matches(*backend, layer, x, y, batch, 6);
}

INSTANTIATE_TEST_SUITE_P(Activations, ActivationGradient,
                         ::testing::Values(Activation::kRelu, Activation::kTanh,
                                           Activation::kSigmoid, Activation::kElu,
                                           Activation::kSelu, Activation::kSoftplus,
                                           Activation::kSoftsign, Activation::kGelu,
                                           Activation::kSilu, Activation::kRelu6,
                                           Activation::kHardSigmoid, Activation::kHardSilu,
                                           Activation::kMish, Activation::kGeluTanh));

TEST(LeakyReluGradient, MatchesFiniteDifferences) {
  auto backend = make_cpu_backend();
  const int64_t batch = 3;
  LeakyRelu layer(Shape{4}, 0.3f);
  std::vector<float> x = random_vector(batch * 4, 5, 0.1f, 2.0f);  // clear of the kink
  for (size_t i = 0; i < x.size(); i += 2) x[i] = -x[i];
  std::vector<float> y(x.size());
  layer.forward(*backend, x.data(), y.data(), batch);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(y[i], x[i] > 0 ? x[i] : 0.3f * x[i]);
  expect_input_gradient_matches(*backend, layer, x, y, batch, 6);
}

// Note [vectorized activations]: each element's value and gradient are the same bits whether its
// range is whole or split where a thread's share would begin (the last vector of each is masked).
TEST(Activations, BitsDoNotDependOnWhereARangeBegins) {
  auto backend = make_cpu_backend();
  const std::vector<float> x = random_vector(37, 9, -4, 4), dy = random_vector(37, 10);
  for (const Activation act :
       {Activation::kRelu, Activation::kTanh, Activation::kSigmoid, Activation::kElu,
        Activation::kSelu, Activation::kSoftplus, Activation::kSoftsign, Activation::kGelu,
        Activation::kSilu, Activation::kRelu6, Activation::kHardSigmoid, Activation::kHardSilu,
        Activation::kMish, Activation::kGeluTanh}) {
    std::vector<float> whole(37), split(37), whole_dx(37), split_dx(37);
    backend->activation_forward(act, x.data(), whole.data(), 37);
    backend->activation_backward(act, x.data(), whole.data(), dy.data(), whole_dx.data(), 37);
    for (const auto& [begin, end] : {std::pair<size_t, size_t>{0, 5}, {5, 37}}) {
      backend->activation_forward(act, x.data() + begin, split.data() + begin, end - begin);
      backend->activation_backward(act, x.data() + begin, split.data() + begin, dy.data() + begin,
                                   split_dx.data() + begin, end - begin);
    }
    EXPECT_EQ(whole, split) << static_cast<int>(act);
    EXPECT_EQ(whole_dx, split_dx) << static_cast<int>(act);
  }
}

// The activations' definitions (Keras' and PyTorch's), in double, from -30 to 30: each float
// result within 2 ulps' worth of the double's, softplus without overflow or loss at the ends.
TEST(Activations, MatchTheirDefinitions) {
  auto backend = make_cpu_backend();
  const double kSeluScale = 1.0507009873554805, kSeluAlpha = 1.6732632423543772;
  const std::vector<std::pair<Activation, std::function<double(double)>>> definitions = {
      {Activation::kRelu, [](double z) { return std::max(z, 0.0); }},
      {Activation::kTanh, [](double z) { return std::tanh(z); }},
      {Activation::kSigmoid, [](double z) { return 1 / (1 + std::exp(-z)); }},
      {Activation::kElu, [](double z) { return z > 0 ? z : std::exp(z) - 1; }},
      {Activation::kSelu,
       [&](double z) { return kSeluScale * (z > 0 ? z : kSeluAlpha * (std::exp(z) - 1)); }},
      {Activation::kSoftplus, [](double z) { return std::log1p(std::exp(z)); }},
      {Activation::kSoftsign, [](double z) { return z / (1 + std::abs(z)); }},
      {Activation::kGelu, [](double z) { return 0.5 * z * std::erfc(-z / std::sqrt(2.0)); }},
      {Activation::kSilu, [](double z) { return z / (1 + std::exp(-z)); }},
      {Activation::kRelu6, [](double z) { return std::min(std::max(z, 0.0), 6.0); }},
      {Activation::kHardSigmoid, [](double z) { return std::clamp(z / 6 + 0.5, 0.0, 1.0); }},
      {Activation::kHardSilu, [](double z) { return z * std::clamp(z / 6 + 0.5, 0.0, 1.0); }},
      {Activation::kMish, [](double z) { return z * std::tanh(std::log1p(std::exp(z))); }},
      {Activation::kGeluTanh, [](double z) {
         return 0.5 * z * (1 + std::tanh(std::sqrt(2 / M_PI) * (z + 0.044715 * z * z * z)));
       }}};
  std::vector<float> x;
  for (float z = -30; z <= 30; z += 0.25f) x.push_back(z);
  std::vector<float> y(x.size());
  for (const auto& [act, definition] : definitions) {
    ActivationLayer layer(act, Shape{static_cast<int64_t>(x.size())});
    layer.forward(*backend, x.data(), y.data(), 1);
    for (size_t i = 0; i < x.size(); ++i) {
      const double expected = definition(x[i]);
      EXPECT_NEAR(y[i], expected, 2.5e-7 * std::max(1.0, std::abs(expected)))
          << layer.type_name() << " at " << x[i];
    }
  }
}

TEST(SoftmaxGradient, MatchesFiniteDifferences) {
  auto backend = make_cpu_backend();
  const int64_t batch = 3, classes = 5;
  Softmax layer(Shape{classes});
  std::vector<float> x = random_vector(batch * classes, 7, -2, 2);
  const std::vector<float> r = random_vector(x.size(), 8);
  std::vector<float> y(x.size());
  auto objective = [&] {
    layer.forward(*backend, x.data(), y.data(), batch);
    return weighted_sum(y, r);
  };
  objective();
  for (int64_t row = 0; row < batch; ++row) {
    double sum = 0;
    for (int64_t c = 0; c < classes; ++c) sum += y[row * classes + c];
    EXPECT_NEAR(sum, 1.0, 1e-6);
  }
  std::vector<float> dy = r, dx(x.size());
  layer.backward(*backend, x.data(), y.data(), dy.data(), dx.data(), batch, false);
  expect_matches_finite_differences(objective, x, dx, "dx");
}

// Keras' Rescaling: y = 0.5 x - 0.25, and its input gradient 0.5 dy.
TEST(RescalingGradient, MatchesFiniteDifferences) {
  auto backend = make_cpu_backend();
  const int64_t batch = 3;
  Rescaling layer(Shape{2, 3}, 0.5f, -0.25f);
  std::vector<float> x = random_vector(batch * 6, 9, -2, 2);
  std::vector<float> y(x.size());
  layer.forward(*backend, x.data(), y.data(), batch);
  EXPECT_EQ(y[4], x[4] * 0.5f - 0.25f);
  expect_input_gradient_matches(*backend, layer, x, y, batch, 10);
}

struct LossCase {
  LossKind kind;
  const char* name;
};

class LossGradient : public ::testing::TestWithParam<LossCase> {};

TEST_P(LossGradient, MatchesFiniteDifferences) {
  auto backend = make_cpu_backend();
  const Loss loss(GetParam().kind);
  const int64_t rows = 4, cols = 6;
  std::vector<float> output = random_vector(rows * cols, 9, -2, 2);
  std::vector<float> targets;
  if (loss.target_kind() == TargetKind::kSparse) {
    targets = {0, 5, 2, 3};
  } else {
    targets.assign(rows * cols, 0);
    const int labels[] = {1, 0, 4, 5};
    for (int64_t r = 0; r < rows; ++r) targets[r * cols + labels[r]] = 1;
  }
  const float scale = 1.0f / rows;
  auto objective = [&] {
    return loss.compute(*backend, output.data(), targets.data(), nullptr, nullptr, scale, rows,
                        cols)
               .loss_sum *
           scale;
  };
  std::vector<float> grad(output.size());
  const LossStats stats = loss.compute(*backend, output.data(), targets.data(), nullptr,
                                       grad.data(), scale, rows, cols);
  EXPECT_GT(stats.loss_sum, 0);
  expect_matches_finite_differences(objective, output, grad, GetParam().name);
}

INSTANTIATE_TEST_SUITE_P(
    Losses, LossGradient,
    ::testing::Values(LossCase{LossKind::kSparseCategoricalCrossentropy, "sparse_ce"},
                      LossCase{LossKind::kCategoricalCrossentropy, "categorical_ce"},
                      LossCase{LossKind::kMeanSquaredError, "mse"}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(CrossEntropy, ValueAndAccuracyMatchHandComputation) {
  auto backend = make_cpu_backend();
  // Row 0: logits (0, ln 3): p = (1/4, 3/4), label 1 -> loss -ln(3/4), correct.
  // Row 1: logits (0, 0): p = (1/2, 1/2), label 0 -> loss ln 2; argmax ties pick class 0: correct.
  const float logits[] = {0, std::log(3.0f), 0, 0};
  const float labels[] = {1, 0};
  const LossStats stats = Loss(LossKind::kSparseCategoricalCrossentropy)
                              .compute(*backend, logits, labels, nullptr, nullptr, 1, 2, 2);
  EXPECT_NEAR(stats.loss_sum, -std::log(0.75) + std::log(2.0), 1e-6);
  EXPECT_EQ(stats.correct, 2);
}

TEST(CrossEntropy, StableForHugeLogits) {
  auto backend = make_cpu_backend();
  const float logits[] = {1000, -1000, 0};
  const float label[] = {1};
  float grad[3];
  const LossStats stats = Loss(LossKind::kSparseCategoricalCrossentropy)
                              .compute(*backend, logits, label, nullptr, grad, 1, 1, 3);
  EXPECT_NEAR(stats.loss_sum, 2000, 1e-3);
  EXPECT_NEAR(grad[0], 1, 1e-6);
  EXPECT_NEAR(grad[1], -1, 1e-6);
  EXPECT_TRUE(std::isfinite(grad[2]));
}

TEST(MeanSquaredError, MatchesKerasDefinition) {
  auto backend = make_cpu_backend();
  const float pred[] = {1, 2, 3, 4};
  const float target[] = {0, 0, 3, 2};
  // Keras: mean over the last axis: row 0 (1 + 4) / 2 = 2.5, row 1 (0 + 4) / 2 = 2.
  const LossStats stats =
      Loss(LossKind::kMeanSquaredError).compute(*backend, pred, target, nullptr, nullptr, 1, 2, 2);
  EXPECT_DOUBLE_EQ(stats.loss_sum, 4.5);
}

}  // namespace
}  // namespace ddp
