// Adagrad, Adamax, NAdam and Lion (AdaptiveHyper) against steps worked out by hand, each rule where
// the two differ.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "one_parameter_steps.h"
#include "optim/adaptive_optimizer.h"

namespace ddp {
namespace {

using Kind = AdaptiveHyper::Kind;

float after(const AdaptiveHyper& hyper, std::initializer_list<float> grads) {
  return after_steps<AdaptiveOptimizer>(hyper, grads);
}

TEST(Adagrad, EpsilonOutsideTheRootByPyTorchsRuleInsideByKeras) {
  // The sum 0.25: PyTorch's step 0.1 x 0.5 / (0.5 + 0.05), Keras' 0.1 x 0.5 / sqrt(0.25 + 0.05).
  const AdaptiveHyper pytorch{.kind = Kind::kAdagrad, .epsilon = 0.05f};
  AdaptiveHyper keras = pytorch;
  keras.keras_rule = true;
  EXPECT_NEAR(after(pytorch, {0.5f}), 0.9090909, 1e-6);
  EXPECT_NEAR(after(keras, {0.5f}), 0.9087129, 1e-6);
}

TEST(Adagrad, TheSumStartsAtTheInitialAccumulatorValue) {
  // 0.75 + 0.25 = 1: a step of 0.05; then 1.25: 0.05 / sqrt(1.25).
  const AdaptiveHyper hyper{
      .kind = Kind::kAdagrad, .epsilon = 1e-12f, .initial_accumulator = 0.75f};
  EXPECT_NEAR(after(hyper, {0.5f}), 0.95, 1e-6);
  EXPECT_NEAR(after(hyper, {0.5f, 0.5f}), 0.9052786, 1e-6);
}

TEST(Adamax, EpsilonInsideTheNormByPyTorchsRuleInTheStepByKeras) {
  // beta2 0.5, so that the decayed norm wins the max at the second step: PyTorch's norm
  // max(0.5 x 0.55, 0.1 + 0.05) = 0.275, Keras' max(0.5 x 0.5, 0.1) + 0.05 = 0.3.
  const AdaptiveHyper pytorch{.kind = Kind::kAdamax, .beta2 = 0.5f, .epsilon = 0.05f};
  AdaptiveHyper keras = pytorch;
  keras.keras_rule = true;
  EXPECT_NEAR(after(pytorch, {0.5f}), 0.9090909, 1e-6);  // 1 x 0.05 / 0.55 both
  EXPECT_NEAR(after(keras, {0.5f}), 0.9090909, 1e-6);
  EXPECT_NEAR(after(pytorch, {0.5f, 0.1f}), 0.8038278, 1e-6);
  EXPECT_NEAR(after(keras, {0.5f, 0.1f}), 0.8125997, 1e-6);
}

TEST(Nadam, MomentumScheduleOfEachRule) {
  // mu_t = 0.9 (1 - 0.5 x 0.96^(t x momentum_decay)); a step (lr (1 - mu_1) / (1 - mu_1) g +
  // lr mu_2 / (1 - mu_1 mu_2) m) / (sqrt(v) / sqrt(1 - beta2)), m = 0.05, v = 0.00025. Keras'
  // schedule is 0.96^t: mu_1 = 0.468, mu_2 = 0.48528.
  const AdaptiveHyper pytorch{.kind = Kind::kNadam, .epsilon = 1e-12f};
  AdaptiveHyper keras = pytorch;
  keras.keras_rule = true;
  keras.momentum_decay = 1;
  EXPECT_NEAR(after(pytorch, {0.5f}), 0.8943548, 1e-6);
  EXPECT_NEAR(after(keras, {0.5f}), 0.8937212, 1e-6);
}

TEST(Lion, StepsByTheSignOfTheInterpolatedMomentum) {
  // Step 1: sign(0.1 x 0.5) = 1, m = 0.005. Step 2: 0.9 x 0.005 + 0.1 x -0.01 > 0 steps down
  // again against the gradient's sign. A zero direction does not move the weight.
  const AdaptiveHyper lion{.kind = Kind::kLion, .beta2 = 0.99f};
  EXPECT_NEAR(after(lion, {0.5f}), 0.9, 1e-6);
  EXPECT_NEAR(after(lion, {0.5f, -0.01f}), 0.8, 1e-6);
  EXPECT_NEAR(after(lion, {0.5f, -0.5f}), 1.0, 1e-6);  // 0.0045 - 0.05 < 0: back up
  EXPECT_EQ(after(lion, {0.0f}), 1.0f);
}

TEST(AdaptiveOptimizers, WeightDecayAsL2ByPyTorchsRuleDecoupledByKerasAndLion) {
  // A zero gradient: PyTorch's gradient is wd x p = 0.1 (Adagrad's step 0.1 x 0.1 / 0.1); Keras
  // and Lion scale the weight by 1 - lr x wd, and their step of a zero gradient is zero.
  EXPECT_NEAR(after({.kind = Kind::kAdagrad, .epsilon = 1e-12f, .weight_decay = 0.1f}, {0.0f}), 0.9,
              1e-6);
  EXPECT_NEAR(after({.kind = Kind::kAdagrad, .weight_decay = 0.1f, .keras_rule = true}, {0.0f}),
              0.99, 1e-6);
  EXPECT_NEAR(after({.kind = Kind::kLion, .weight_decay = 0.1f}, {0.0f}), 0.99, 1e-6);
}

// A run resumed at step k (its state and step count restored into a new optimizer) takes the
// steps the uninterrupted one does, bit for bit: Adagrad's initial sum only at step 1, NAdam's
// product of momentum coefficients worked out again.
TEST(AdaptiveOptimizers, ResumedStepsEqualUninterruptedOnes) {
  auto backend = make_cpu_backend();
  const std::vector<float> grads = {0.3f, -0.2f, 0.05f, 0.4f};
  for (const AdaptiveHyper& hyper :
       {AdaptiveHyper{.kind = Kind::kAdagrad, .initial_accumulator = 0.1f, .keras_rule = true},
        AdaptiveHyper{.kind = Kind::kNadam}, AdaptiveHyper{.kind = Kind::kAdamax},
        AdaptiveHyper{.kind = Kind::kLion}}) {
    for (int stop = 1; stop < 4; ++stop) {
      AdaptiveOptimizer whole(*backend, 1, hyper), first(*backend, 1, hyper);
      float p = 1, q = 1;
      for (int step = 0; step < 4; ++step) {
        float g = grads[step];
        whole.step({&p, 1}, {&g, 1}, 0.1f, GradCheck::kNone);
        if (step < stop) first.step({&q, 1}, {&g, 1}, 0.1f, GradCheck::kNone);
      }
      AdaptiveOptimizer resumed(*backend, 1, hyper);
      for (size_t t = 0; t < first.state().size(); ++t)
        resumed.state()[t].data[0] = first.state()[t].data[0];
      resumed.set_steps_taken(first.steps_taken());
      for (int step = stop; step < 4; ++step) {
        float g = grads[step];
        resumed.step({&q, 1}, {&g, 1}, 0.1f, GradCheck::kNone);
      }
      EXPECT_EQ(p, q) << resumed.name() << " resumed after step " << stop;
    }
  }
}

TEST(AdaptiveOptimizers, NamesAndStateArePyTorchs) {
  auto backend = make_cpu_backend();
  const auto described = [&](const AdaptiveHyper& hyper) {
    AdaptiveOptimizer optimizer(*backend, 2, hyper);
    std::string out = optimizer.name() + ":";
    for (const StateTensor& t : optimizer.state()) out += " " + t.name;
    return out;
  };
  EXPECT_EQ(described({.kind = Kind::kAdagrad}), "adagrad: sum");
  EXPECT_EQ(described({.kind = Kind::kAdamax, .keras_rule = true}),
            "adamax_keras: exp_avg exp_inf");
  EXPECT_EQ(described({.kind = Kind::kNadam}), "nadam: exp_avg exp_avg_sq");
  EXPECT_EQ(described({.kind = Kind::kLion, .keras_rule = true}), "lion: exp_avg");
}

}  // namespace
}  // namespace ddp
