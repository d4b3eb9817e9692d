// Note [weight average]: the optimizer's moving average of the parameters (Keras' use_ema) is
// Keras' recurrence over the parameters each step leaves, written into the model every
// ema_overwrite_frequency steps and at the end of fit; its settings are checked by name, and a
// checkpoint without it does not resume a run with it.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "small_trainer_config.h"
#include "train/checkpoint.h"

namespace ddp {
namespace {

constexpr float kMomentum = 0.8f;
constexpr int64_t kSteps = 20;  // two epochs of 10 steps

// SGD with momentum, whose step the weight-gradient tiles apply themselves where no average is
// kept (Note [update in the tiles]; the first layer's 256 x 64 x 20 product is theirs): with one,
// each piece goes through the optimizer's update.
Config sgd_config(const std::vector<std::string>& average = {}) {
  std::vector<std::string> overrides = {
      "data.train.features=64",
      "data.test.features=64",
      "model.input=[64]",
      "model.layers=[{type: dense, units: 256, activation: relu}, {type: dense, units: 10, "
      "activation: softmax}]",
      "optimizer={type: sgd, learning_rate: 0.1, momentum: 0.9}",
      "training.epochs=2"};
  overrides.insert(overrides.end(), average.begin(), average.end());
  return test::small_config(overrides, "ema.yaml");
}

// Keras' average, worked out by hand along the parameters that a run without one takes step by
// step (copied on the first step, then momentum * average + (1 - momentum) * parameters), and
// written into those parameters every `overwrite_every` steps as Keras' ema_overwrite_frequency;
// and the parameters of the last step.
std::pair<std::vector<float>, std::vector<float>> average_by_hand(int64_t overwrite_every) {
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  const Config plain = sgd_config();
  Trainer trainer(plain, *comm, *backend, load_dataset(plain.train_data, 0), std::nullopt);
  std::vector<float> average;
  for (int64_t step = 1; step <= kSteps; ++step) {
    trainer.train_steps(1);
    const std::vector<float> params = trainer.params_to_host();
    if (step == 1) average = params;
    for (size_t i = 0; i < average.size(); ++i)
      average[i] = kMomentum * average[i] + (1 - kMomentum) * params[i];
    if (overwrite_every > 0 && step % overwrite_every == 0)
      trainer.load_params(average, trainer.buffers_to_host());
  }
  return {average, trainer.params_to_host()};
}

TEST(WeightAverage, IsKerasMovingAverageOfEachStepsParameters) {
  for (const int64_t every : {0, 6}) {
    SCOPED_TRACE("ema_overwrite_frequency " + std::to_string(every));
    auto backend = make_cpu_backend();
    auto comm = make_local_communicator();
    const Config config =
        sgd_config({"optimizer.use_ema=true", "optimizer.ema_momentum=0.8",
                    "optimizer.ema_overwrite_frequency=" + std::to_string(every)});
    Trainer trainer(config, *comm, *backend, load_dataset(config.train_data, 0),
                    load_dataset(*config.test_data, 0));
    trainer.fit();
    ASSERT_EQ(trainer.optimizer_steps(), kSteps);
    const std::vector<float> fitted = trainer.params_to_host();
    const auto [expected, last_step] = average_by_hand(every);
    ASSERT_EQ(fitted.size(), expected.size());
    float worst = 0, apart = 0;  // from the average, and the average from the last step's
    for (size_t i = 0; i < fitted.size(); ++i) {
      worst = std::max(worst, std::abs(fitted[i] - expected[i]));
      apart = std::max(apart, std::abs(expected[i] - last_step[i]));
    }
    EXPECT_LT(worst, 1e-6f);
    EXPECT_GT(apart, 1e-3f);
  }
}

// Keras' SwapEMAWeights (optimizer.validate_average): each epoch's validation measures the
// average, and the weights are put back for the next step: the last epoch's val_loss is that of
// the model fit leaves (the average), and training is the same bits as without it.
TEST(WeightAverage, ValidationCanMeasureTheAverage) {
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  std::vector<float> ends[2];
  double last_val_loss[2] = {}, evaluated[2] = {};
  for (const bool swapped : {false, true}) {
    const Config config =
        sgd_config({"optimizer.use_ema=true", "optimizer.ema_momentum=0.8",
                    std::string("optimizer.validate_average=") + (swapped ? "true" : "false")});
    Trainer trainer(config, *comm, *backend, load_dataset(config.train_data, 0),
                    load_dataset(*config.test_data, 0));
    trainer.fit();
    ends[swapped] = trainer.params_to_host();
    last_val_loss[swapped] = *trainer.epoch_records().back().val_loss;
    evaluated[swapped] = trainer.evaluate(*trainer.test_data()).loss;
  }
  EXPECT_EQ(ends[0], ends[1]);
  EXPECT_NEAR(last_val_loss[1], evaluated[1], 1e-12);
  EXPECT_GT(std::abs(last_val_loss[0] - evaluated[0]), 1e-4);  // the weights' differs
}

TEST(WeightAverage, SettingsAreCheckedByName) {
  const auto error = [](const std::vector<std::string>& overrides) {
    try {
      sgd_config(overrides);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no ConfigError");
  };
  EXPECT_EQ(error({"optimizer.ema_momentum=0.9"}),
            "ema.yaml: optimizer.ema_momentum: needs use_ema: true");
  EXPECT_EQ(error({"optimizer.validate_average=true"}),
            "ema.yaml: optimizer.validate_average: needs use_ema: true");
  EXPECT_EQ(error({"optimizer.use_ema=true", "optimizer.ema_momentum=1"}),
            "ema.yaml: optimizer.ema_momentum: must be in [0, 1), got 1");
  EXPECT_EQ(error({"optimizer.use_ema=true", "optimizer.ema_overwrite_frequency=-2"}),
            "ema.yaml: optimizer.ema_overwrite_frequency: must be > 0 (or 0: at the end of "
            "training only)");
}

// The average is optimizer state: a checkpoint without it cannot continue a run that keeps one.
TEST(WeightAverage, ACheckpointWithoutItIsRefused) {
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  const Config plain = sgd_config(), averaged = sgd_config({"optimizer.use_ema=true"});
  Trainer without(plain, *comm, *backend, load_dataset(plain.train_data, 0), std::nullopt);
  without.train_steps(3);
  Trainer with(averaged, *comm, *backend, load_dataset(averaged.train_data, 0), std::nullopt);
  try {
    with.restore(without.capture(), "ckpt.ddpc");
    ADD_FAILURE() << "a checkpoint without the average was taken";
  } catch (const CheckpointError& e) {
    EXPECT_EQ(std::string(e.what()),
              "ckpt.ddpc: optimizer mismatch: checkpoint has 1 state buffer(s), sgd here has 2 "
              "(momentum or use_ema changed?)");
  }
}

}  // namespace
}  // namespace ddp
