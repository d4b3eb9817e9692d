// Optimizer steps against values worked out by hand (PyTorch's update rules).

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/owned_lines.h"
#include "one_parameter_steps.h"
#include "optim/adam.h"
#include "optim/adaptive_optimizer.h"
#include "optim/lr_schedule.h"
#include "optim/rmsprop.h"
#include "optim/sgd.h"

namespace ddp {
namespace {

float sgd_after(const SgdHyper& hyper, std::initializer_list<float> grads) {
  return after_steps<Sgd>(hyper, grads);
}
float adam_after(const AdamHyper& hyper, std::initializer_list<float> grads) {
  return after_steps<Adam>(hyper, grads);
}
float rmsprop_after(const RmspropHyper& hyper, std::initializer_list<float> grads) {
  return after_steps<Rmsprop>(hyper, grads);
}

TEST(Sgd, PlainStep) { EXPECT_FLOAT_EQ(sgd_after({}, {0.5f}), 0.95f); }

TEST(Sgd, Momentum) {
  // v1 = 0.5, p = 1 - 0.05; v2 = 0.9 * 0.5 + 0.5 = 0.95, p = 0.95 - 0.095.
  EXPECT_FLOAT_EQ(sgd_after({0.9f, 0, false}, {0.5f, 0.5f}), 0.855f);
}

TEST(Sgd, Nesterov) {
  // v1 = 0.5; update g + mu v1 = 0.95.
  EXPECT_FLOAT_EQ(sgd_after({0.9f, 0, true}, {0.5f}), 0.905f);
}

TEST(Sgd, WeightDecay) {
  // g' = 0.5 + 0.1 * 1 = 0.6.
  EXPECT_FLOAT_EQ(sgd_after({0, 0.1f, false}, {0.5f}), 0.94f);
}

TEST(Sgd, KerasRuleKeepsTheRateInsideTheVelocity) {
  // Momentum 0.5, g = 0.5 at rates 0.1 then 0.2. PyTorch: velocity 0.5, then 0.75, times the
  // rate: 1 - 0.05 - 0.15. Keras: velocity 0.05, then 0.025 + 0.1: 1 - 0.05 - 0.125.
  const auto after = [](const SgdHyper& hyper, float g) {
    auto backend = make_cpu_backend();
    Sgd sgd(*backend, 1, hyper);
    float p = 1;
    sgd.step({&p, 1}, {&g, 1}, 0.1f, GradCheck::kNone);
    sgd.step({&p, 1}, {&g, 1}, 0.2f, GradCheck::kNone);
    return p;
  };
  EXPECT_NEAR(after({.momentum = 0.5f}, 0.5f), 0.8, 1e-6);
  EXPECT_NEAR(after({.momentum = 0.5f, .keras_rule = true}, 0.5f), 0.825, 1e-6);
  // Nesterov: Keras' w -= mu v + lr g, 1 - 0.075 - (0.0625 + 0.1).
  EXPECT_NEAR(after({.momentum = 0.5f, .nesterov = true, .keras_rule = true}, 0.5f), 0.7625, 1e-6);
  // A zero gradient and weight decay 0.1: Keras scales the weight by 0.99 and 0.98; PyTorch's L2
  // term enters the velocity, 0.1 then 0.05 + 0.099 at the rates 0.1 and 0.2.
  EXPECT_NEAR(after({.momentum = 0.5f, .weight_decay = 0.1f, .keras_rule = true}, 0), 0.99 * 0.98,
              1e-6);
  EXPECT_NEAR(after({.momentum = 0.5f, .weight_decay = 0.1f}, 0), 0.99 - 0.2 * 0.149, 1e-6);
}

TEST(Adam, TwoBiasCorrectedSteps) {
  auto backend = make_cpu_backend();
  Adam adam(*backend, 1, AdamHyper{});
  float p = 1;
  float g = 0.5f;
  adam.step({&p, 1}, {&g, 1}, 0.1f, GradCheck::kNone);
  // Bias correction makes the first step lr * g / |g|.
  EXPECT_NEAR(p, 0.9, 1e-6);
  g = 0.25f;
  adam.step({&p, 1}, {&g, 1}, 0.1f, GradCheck::kNone);
  // m = 0.07, v = 3.1225e-4; m^ = 0.07 / 0.19, v^ = 3.1225e-4 / 1.999e-3.
  EXPECT_NEAR(p, 0.80678204, 1e-6);
  EXPECT_EQ(adam.steps_taken(), 2);
}

TEST(Adam, KerasRuleAddsEpsilonBeforeTheBiasCorrection) {
  // g = 0.5 at lr 0.1: m = 0.05, v = 2.5e-4. PyTorch: 0.1 / 0.1 x m / (sqrt(v / 0.001) + eps);
  // Keras: 0.1 sqrt(0.001) / 0.1 x m / (sqrt(v) + eps). A large epsilon shows the difference.
  const AdamHyper pytorch{.epsilon = 0.01f};
  EXPECT_NEAR(adam_after(pytorch, {0.5f}), 1 - 0.05 / (0.5 + 0.01), 1e-6);
  AdamHyper keras = pytorch;
  keras.keras_rule = true;
  EXPECT_NEAR(adam_after(keras, {0.5f}), 1 - std::sqrt(0.001) * 0.05 / (std::sqrt(2.5e-4) + 0.01),
              1e-6);
}

TEST(Adam, UpdatesEveryElementOfTheFlatBuffer) {
  auto backend = make_cpu_backend();
  Adam adam(*backend, 3, AdamHyper{});
  std::vector<float> p = {1, 1, 1}, g = {1, -1, 0};
  adam.step(p, g, 0.01f, GradCheck::kNone);
  EXPECT_NEAR(p[0], 0.99, 1e-6);
  EXPECT_NEAR(p[1], 1.01, 1e-6);
  EXPECT_FLOAT_EQ(p[2], 1);
}

TEST(AdamW, DecaysTheWeightOutsideTheMoments) {
  const AdamHyper adamw{.weight_decay = 0.1f, .decoupled_weight_decay = true};
  // torch.optim.AdamW: p *= 1 - lr * wd = 0.99, then Adam's step of the plain gradient (the
  // bias-corrected first step is lr * g / |g| = 0.1, the second 0.09321796: Adam's test above).
  EXPECT_NEAR(adam_after(adamw, {0.5f}), 0.89, 1e-6);
  EXPECT_NEAR(adam_after(adamw, {0.5f, 0.25f}), 0.89 * 0.99 - 0.09321796, 1e-6);
  // A zero gradient leaves the moments at zero: only the decay moves the weight. Adam's L2 puts
  // wd * p into the gradient instead, and its normalized first step is a whole lr.
  EXPECT_NEAR(adam_after(adamw, {0.0f}), 0.99, 1e-6);
  EXPECT_NEAR(adam_after({.weight_decay = 0.1f}, {0.0f}), 0.9, 1e-6);
  EXPECT_EQ(Adam(*make_cpu_backend(), 1, adamw).name(), "adamw");
}

TEST(Rmsprop, EpsilonOutsideTheRootByPyTorchsRuleInsideByKeras) {
  // v = (1 - 0.75) 0.5^2 = 0.0625. PyTorch: 1 - 0.1 x 0.5 / (0.25 + 0.05); Keras: the root of
  // 0.0625 + 0.05.
  const RmspropHyper pytorch{.rho = 0.75f, .epsilon = 0.05f};
  EXPECT_NEAR(rmsprop_after(pytorch, {0.5f}), 1 - 0.05 / 0.3, 1e-6);
  RmspropHyper keras = pytorch;
  keras.keras_rule = true;
  EXPECT_NEAR(rmsprop_after(keras, {0.5f}), 1 - 0.05 / std::sqrt(0.1125), 1e-6);
  // The second step: v = 0.75 x 0.0625 + 0.25 x 0.25^2.
  EXPECT_NEAR(rmsprop_after(pytorch, {0.5f, 0.25f}), 1 - 0.05 / 0.3 - 0.025 / (0.25 + 0.05), 1e-6);
}

TEST(Rmsprop, CenteredSubtractsTheSquaredMeanGradient) {
  // rho 0.5: v = 0.125, mean gradient 0.25, so the denominator is the root of 0.0625.
  EXPECT_NEAR(rmsprop_after({.rho = 0.5f, .centered = true}, {0.5f}), 0.8, 1e-6);
  EXPECT_NEAR(rmsprop_after({.rho = 0.5f}, {0.5f}), 1 - 0.05 / std::sqrt(0.125), 1e-6);
}

TEST(Rmsprop, TheRateInsideKerasMomentumBufferOutsidePyTorchs) {
  // rho 0: each normalized gradient is 1 (epsilon aside). Momentum 0.5, rates 0.1 then 0.2.
  // PyTorch: buffer 1, then 1.5, times the rate: 1 - 0.1 - 0.3. Keras: buffer 0.1, then
  // 0.05 + 0.2: 1 - 0.1 - 0.25.
  const auto after = [](bool keras_rule) {
    auto backend = make_cpu_backend();
    Rmsprop rule(*backend, 1,
                 {.rho = 0, .momentum = 0.5f, .epsilon = 1e-12f, .keras_rule = keras_rule});
    float p = 1, g = 0.5f;
    rule.step({&p, 1}, {&g, 1}, 0.1f, GradCheck::kNone);
    rule.step({&p, 1}, {&g, 1}, 0.2f, GradCheck::kNone);
    return p;
  };
  EXPECT_NEAR(after(false), 0.6, 1e-6);
  EXPECT_NEAR(after(true), 0.65, 1e-6);
}

TEST(Rmsprop, WeightDecayAsL2ByPyTorchsRuleDecoupledByKeras) {
  // A zero gradient: PyTorch's gradient is wd x p = 0.1, normalized to 1 / (1 - 0.75)^0.5 = 2;
  // Keras scales the weight by 1 - lr x wd and its step of a zero gradient is zero.
  EXPECT_NEAR(rmsprop_after({.rho = 0.75f, .weight_decay = 0.1f}, {0.0f}), 0.8, 1e-6);
  EXPECT_NEAR(rmsprop_after({.rho = 0.75f, .weight_decay = 0.1f, .keras_rule = true}, {0.0f}), 0.99,
              1e-6);
}

TEST(Rmsprop, StateHasOnlyTheBuffersItsRuleUses) {
  auto backend = make_cpu_backend();
  const auto names = [&](const RmspropHyper& hyper) {
    std::vector<std::string> out;
    for (const StateTensor& t : Rmsprop(*backend, 4, hyper).state()) out.push_back(t.name);
    return out;
  };
  using Names = std::vector<std::string>;
  EXPECT_EQ(names({}), Names{"square_avg"});
  EXPECT_EQ(names({.momentum = 0.9f, .centered = true}),
            (Names{"square_avg", "momentum_buffer", "grad_avg"}));
  EXPECT_EQ(Rmsprop(*backend, 1, {.keras_rule = true}).name(), "rmsprop_keras");
}

// Note [owned lines]: the updates run in chunks; over several chunks and a ragged tail, every
// element gets the rule once, its state included (two steps).
TEST(Optimizers, EveryElementAcrossChunksGetsTheRuleOfOneElement) {
  auto backend = make_cpu_backend();
  constexpr size_t kCount = 3 * kOwnedChunk + 37;
  std::vector<float> grads(kCount);
  for (size_t i = 0; i < kCount; ++i) grads[i] = 0.01f * static_cast<float>(int(i % 29) - 14);
  const auto check = [&](auto make_optimizer) {
    auto whole = make_optimizer(kCount);
    std::vector<float> params(kCount, 1.0f);
    for (int step = 0; step < 2; ++step) whole.step(params, grads, 0.1f, GradCheck::kNone);
    for (size_t i = 0; i < kCount; ++i) {
      auto one = make_optimizer(1);
      float p = 1.0f;
      for (int step = 0; step < 2; ++step)
        one.step({&p, 1}, {&grads[i], 1}, 0.1f, GradCheck::kNone);
      ASSERT_FLOAT_EQ(params[i], p) << "element " << i;
    }
  };
  check([&](size_t count) { return Sgd(*backend, count, SgdHyper{0.9f, 1e-4f, false}); });
  check([&](size_t count) { return Adam(*backend, count, AdamHyper{}); });
  check([&](size_t count) {
    return Rmsprop(*backend, count, {.momentum = 0.9f, .centered = true, .weight_decay = 0.01f});
  });
  check([&](size_t count) {
    return Rmsprop(*backend, count, {.rho = 0.9f, .momentum = 0.5f, .keras_rule = true});
  });
  using Kind = AdaptiveHyper::Kind;
  for (const Kind kind : {Kind::kAdagrad, Kind::kAdamax, Kind::kNadam, Kind::kLion})
    for (const bool keras_rule : {false, true})
      check([&](size_t count) {
        return AdaptiveOptimizer(*backend, count,
                                 {.kind = kind, .weight_decay = 0.01f, .keras_rule = keras_rule});
      });
}

TEST(LrSchedule, Constant) {
  LrSchedule s({.type = "constant", .base_lr = 0.1});
  EXPECT_FLOAT_EQ(s.at(0), 0.1f);
  EXPECT_FLOAT_EQ(s.at(1000), 0.1f);
}

TEST(LrSchedule, WarmupIsLinear) {
  LrSchedule s({.type = "constant", .base_lr = 0.1, .warmup_steps = 4});
  EXPECT_FLOAT_EQ(s.at(0), 0.025f);
  EXPECT_FLOAT_EQ(s.at(1), 0.05f);
  EXPECT_FLOAT_EQ(s.at(3), 0.1f);
  EXPECT_FLOAT_EQ(s.at(4), 0.1f);
}

TEST(LrSchedule, StepDecay) {
  LrSchedule s({.type = "step", .base_lr = 1, .step_size = 10, .gamma = 0.5});
  EXPECT_FLOAT_EQ(s.at(9), 1.0f);
  EXPECT_FLOAT_EQ(s.at(10), 0.5f);
  EXPECT_FLOAT_EQ(s.at(25), 0.25f);
}

TEST(LrSchedule, CosineWithWarmup) {
  LrSchedule s(
      {.type = "cosine", .base_lr = 1, .warmup_steps = 10, .min_lr = 0.1, .total_steps = 110});
  EXPECT_FLOAT_EQ(s.at(4), 0.5f);
  EXPECT_FLOAT_EQ(s.at(10), 1.0f);
  EXPECT_NEAR(s.at(60), 0.55f, 1e-6);  // halfway: min + (max - min) / 2
  EXPECT_NEAR(s.at(110), 0.1f, 1e-6);
  EXPECT_NEAR(s.at(500), 0.1f, 1e-6);
}

// The Keras schedules' values at these steps come from Keras itself in keras_reference.
TEST(LrSchedule, ExponentialAndInverseTimeDecayWithStaircase) {
  const LrScheduleSpec exponential{
      .type = "exponential", .base_lr = 0.1, .decay_steps = 10, .decay_rate = 0.5};
  EXPECT_FLOAT_EQ(LrSchedule(exponential).at(0), 0.1f);
  EXPECT_FLOAT_EQ(LrSchedule(exponential).at(5), 0.1f * std::sqrt(0.5f));
  EXPECT_FLOAT_EQ(LrSchedule(exponential).at(20), 0.025f);
  LrScheduleSpec staircase = exponential;
  staircase.staircase = true;
  EXPECT_FLOAT_EQ(LrSchedule(staircase).at(19), 0.05f);
  LrScheduleSpec inverse = exponential;
  inverse.type = "inverse_time";
  EXPECT_FLOAT_EQ(LrSchedule(inverse).at(5), 0.08f);  // 0.1 / (1 + 0.5 x 0.5)
  inverse.staircase = true;
  EXPECT_FLOAT_EQ(LrSchedule(inverse).at(15), 0.1f / 1.5f);
}

TEST(LrSchedule, PolynomialDecayStopsAtItsEndRate) {
  const LrScheduleSpec s{
      .type = "polynomial", .base_lr = 0.1, .min_lr = 0.01, .decay_steps = 10, .power = 2};
  EXPECT_FLOAT_EQ(LrSchedule(s).at(5), 0.0325f);  // 0.09 x 0.5^2 + 0.01
  EXPECT_FLOAT_EQ(LrSchedule(s).at(10), 0.01f);
  EXPECT_FLOAT_EQ(LrSchedule(s).at(50), 0.01f);
}

TEST(LrSchedule, PiecewiseConstantChangesAfterEachBoundary) {
  const LrScheduleSpec s{.type = "piecewise_constant",
                         .base_lr = 0.1,
                         .boundaries = {10, 20},
                         .values = {0.1, 0.05, 0.01}};
  const LrSchedule schedule(s);
  EXPECT_FLOAT_EQ(schedule.at(10), 0.1f);  // Keras: values[0] up to and including the boundary
  EXPECT_FLOAT_EQ(schedule.at(11), 0.05f);
  EXPECT_FLOAT_EQ(schedule.at(20), 0.05f);
  EXPECT_FLOAT_EQ(schedule.at(21), 0.01f);
}

TEST(LrSchedule, CosineOverDecayStepsThenItsFloor) {
  // Keras' CosineDecay(0.1, 10, alpha=0.1): the whole run would be 1000 steps.
  const LrScheduleSpec s{
      .type = "cosine", .base_lr = 0.1, .min_lr = 0.01, .decay_steps = 10, .total_steps = 1000};
  EXPECT_FLOAT_EQ(LrSchedule(s).at(5), 0.055f);
  EXPECT_FLOAT_EQ(LrSchedule(s).at(30), 0.01f);
}

}  // namespace
}  // namespace ddp

namespace ddp {
namespace {

TEST(Backend, AllFiniteFindsNanAndInfinity) {
  auto backend = make_cpu_backend();
  std::vector<float> values(1000, 1.5f);
  values[10] = -0.0f;
  values[11] = 1e-40f;  // denormal: finite
  values[12] = 3e38f;
  EXPECT_TRUE(backend->all_finite(values.data(), values.size()));
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                    -std::numeric_limits<float>::infinity()}) {
    values[999] = bad;
    EXPECT_FALSE(backend->all_finite(values.data(), values.size())) << bad;
    values[999] = 0;
  }
}

// Note [gradient clipping]'s norm, over a body of whole accumulator groups and a tail.
TEST(Backend, SquaredNorm) {
  auto backend = make_cpu_backend();
  std::vector<float> values(37);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i + 1) / 2;
  EXPECT_EQ(backend->squared_norm(values.data(), values.size()), 37.0 * 38 * 75 / 24);
}

// Note [gradient clipping]'s scale: the updates read each gradient times the step's scale (not
// the weight decay's term), as if the gradients had been scaled.
TEST(Optimizers, ReadGradientsTimesTheStepsScale) {
  auto backend = make_cpu_backend();
  Sgd sgd(*backend, 1, SgdHyper{0, 0.1f, false});
  float p = 1, g = 0.5f;
  sgd.begin_step(0.5f);
  sgd.update(0, {&p, 1}, {&g, 1}, 0.1f, GradCheck::kNone);
  EXPECT_FLOAT_EQ(p, 1 - 0.1f * (0.25f + 0.1f));
  // Adam's step does not change when every gradient scales alike; its moments mix two steps with
  // different scales.
  Adam scaled(*backend, 3, AdamHyper{}), prescaled(*backend, 3, AdamHyper{}),
      unscaled(*backend, 3, AdamHyper{});
  std::vector<float> a = {1, 2, 3}, b = a, c = a, grads = {0.3f, -0.7f, 0.01f}, times(3);
  for (const float scale : {0.3f, 0.9f}) {
    for (size_t i = 0; i < 3; ++i) times[i] = grads[i] * scale;
    scaled.begin_step(scale);
    scaled.update(0, a, grads, 0.1f, GradCheck::kNone);
    prescaled.step(b, times, 0.1f, GradCheck::kNone);
    unscaled.step(c, grads, 0.1f, GradCheck::kNone);
  }
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  // RMSprop reads the scaled gradients as well, its weight decay's term unscaled.
  const RmspropHyper hyper{.momentum = 0.5f, .weight_decay = 0.1f};
  Rmsprop rms_scaled(*backend, 3, hyper), rms_prescaled(*backend, 3, hyper);
  a = b = {1, 2, 3};
  for (const float scale : {0.3f, 0.9f}) {
    for (size_t i = 0; i < 3; ++i) times[i] = grads[i] * scale;
    rms_scaled.begin_step(scale);
    rms_scaled.update(0, a, grads, 0.1f, GradCheck::kNone);
    rms_prescaled.step(b, times, 0.1f, GradCheck::kNone);
  }
  EXPECT_EQ(a, b);
}

// Note [non-finite check]: the updates report a NaN or infinity anywhere in the gradients they
// read, in the vectorized body and in the tail, for every update rule.
TEST(Optimizers, UpdatesReportNonFiniteGradientsWhenAsked) {
  auto backend = make_cpu_backend();
  constexpr size_t kCount = 1037;  // not a multiple of any vector width
  std::vector<float> params(kCount, 1.0f), grads(kCount, 0.25f);
  const auto updates = [&](GradCheck check) {
    Sgd plain(*backend, kCount, SgdHyper{});
    Sgd momentum(*backend, kCount, SgdHyper{0.9f, 1e-4f, true});
    Adam adam(*backend, kCount, AdamHyper{});
    Rmsprop rmsprop(*backend, kCount, RmspropHyper{.momentum = 0.9f, .centered = true});
    return std::vector<bool>{
        plain.step(params, grads, 0.1f, check), momentum.step(params, grads, 0.1f, check),
        adam.step(params, grads, 0.1f, check), rmsprop.step(params, grads, 0.1f, check)};
  };
  EXPECT_EQ(updates(GradCheck::kFinite), std::vector<bool>(4, true));
  for (const size_t at : {size_t{0}, size_t{500}, kCount - 1}) {
    for (const float bad :
         {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
          -std::numeric_limits<float>::infinity()}) {
      std::fill(params.begin(), params.end(), 1.0f);
      grads[at] = bad;
      EXPECT_EQ(updates(GradCheck::kFinite), std::vector<bool>(4, false)) << bad << " at " << at;
      EXPECT_EQ(updates(GradCheck::kNone), std::vector<bool>(4, true)) << "unchecked";
      EXPECT_FALSE(backend->take_nonfinite()) << "neither update asked to be told later";
      // Note [deferred readback]: the answer comes from the next take_nonfinite(), once.
      EXPECT_EQ(updates(GradCheck::kFiniteLater), std::vector<bool>(4, true));
      EXPECT_TRUE(backend->take_nonfinite()) << bad << " at " << at;
      EXPECT_FALSE(backend->take_nonfinite()) << "taken";
      grads[at] = 0.25f;
    }
  }
  EXPECT_EQ(updates(GradCheck::kFiniteLater), std::vector<bool>(4, true));
  EXPECT_FALSE(backend->take_nonfinite()) << "finite gradients";
}

}  // namespace
}  // namespace ddp
