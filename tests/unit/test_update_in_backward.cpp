// Note [update in backward]: parameters updated during backward, from gradient blocks still in
// cache, are bit-identical to an update after backward, and the trainer uses it only where nothing
// can come between a gradient and its update.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "train/config_reader.h"
#include "train/trainer.h"

namespace ddp {
namespace {

// Dense layers of three kinds for the CPU's kernels: 1024 -> 100 is a skinny product whose weight
// gradient comes in blocks of 32 rows with a tail of 4 (with plain momentum, the tiles step it:
// Note [update in the tiles]); 100 -> 37 a small product, handed over whole; a convolution takes
// no part (its gradients are updated after backward).
Config config(const std::string& optimizer, const std::vector<std::string>& overrides) {
  YAML::Node root = YAML::Load(R"(
seed: 5
data:
  train: {type: synthetic, samples: 64, features: 1024, classes: 10}
model:
  input: [32, 32, 1]
  layers:
    - {type: conv2d, filters: 1, kernel_size: 3, padding: same, activation: relu}
    - {type: flatten}
    - {type: dense, units: 100, activation: relu}
    - {type: dense, units: 37, activation: tanh}
    - {type: dense, units: 10, activation: softmax}
loss: sparse_categorical_crossentropy
training: {epochs: 2, global_batch_size: 8}
)");
  root["optimizer"] = YAML::Load(optimizer);
  for (const auto& o : overrides) apply_override(root, o);
  return parse_config(root, "update_in_backward.yaml");
}

struct TrainedRun {
  bool updated_in_backward;
  TrainingState state;
};

TrainedRun train(const std::string& optimizer, const std::vector<std::string>& overrides,
                 bool fit = true) {
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  const Config c = config(optimizer, overrides);
  Trainer trainer(c, *comm, *backend, load_dataset(c.train_data, 0), std::nullopt);
  if (fit) trainer.fit();
  return {trainer.updates_in_backward(), trainer.capture()};
}

class UpdateInBackward : public ::testing::TestWithParam<std::string> {};

void expect_bits_of_the_update_after_backward(const std::string& optimizer,
                                              const std::vector<std::string>& overrides,
                                              int64_t steps) {
  std::vector<std::string> after_overrides = overrides;
  after_overrides.push_back("training.update_in_backward=false");
  const TrainedRun during = train(optimizer, overrides);
  const TrainedRun after = train(optimizer, after_overrides);
  ASSERT_TRUE(during.updated_in_backward);
  ASSERT_FALSE(after.updated_in_backward);
  EXPECT_EQ(during.state.completed_steps, steps);
  EXPECT_EQ(during.state.optimizer_steps, after.state.optimizer_steps);
  // Bitwise (EXPECT_EQ on floats): the same update over the same gradient bits.
  EXPECT_EQ(during.state.params, after.state.params);
  ASSERT_EQ(during.state.optimizer_state.size(), after.state.optimizer_state.size());
  for (size_t i = 0; i < during.state.optimizer_state.size(); ++i) {
    EXPECT_EQ(during.state.optimizer_state[i].first, after.state.optimizer_state[i].first);
    EXPECT_EQ(during.state.optimizer_state[i].second, after.state.optimizer_state[i].second)
        << during.state.optimizer_state[i].first;
  }
  // Training moved the parameters (an update that did nothing would match too).
  const TrainedRun untrained = train(optimizer, overrides, /*fit=*/false);
  EXPECT_NE(during.state.params, untrained.state.params);
}

TEST_P(UpdateInBackward, BitIdenticalToTheUpdateAfterBackward) {
  expect_bits_of_the_update_after_backward(GetParam(), {}, 16);
}

// Note [weight-gradient chunks]: 1024 -> 1100 has 4.5 MB of weights (from memory, so the tiles
// fetch the update's next rows) and at a batch of 160 a 640 KB input, so its gradient comes in
// blocks of two column chunks, each row's updated in two pieces; with plain momentum the tiles
// step it themselves (Note [update in the tiles]).
TEST_P(UpdateInBackward, BitIdenticalWhereTheBlocksAreColumnChunks) {
  expect_bits_of_the_update_after_backward(
      GetParam(),
      {"model.layers.2.units=1100", "training.global_batch_size=160", "data.train.samples=320",
       "training.epochs=1"},
      2);
}

INSTANTIATE_TEST_SUITE_P(Optimizers, UpdateInBackward,
                         ::testing::Values("{type: sgd, learning_rate: 0.05}",
                                           "{type: sgd, learning_rate: 0.05, momentum: 0.9}",
                                           "{type: sgd, learning_rate: 0.05, momentum: 0.9, "
                                           "nesterov: true, weight_decay: 0.01}",
                                           "{type: adam, learning_rate: 0.01}",
                                           "{type: rmsprop, rule: keras, momentum: 0.5, "
                                           "centered: true, weight_decay: 0.01}",
                                           "{type: adagrad, rule: keras}", "{type: nadam}",
                                           "{type: lion, weight_decay: 0.1}"));

TEST(UpdateInBackwardChoice, OnlyWhereNothingComesBetweenAGradientAndItsUpdate) {
  const std::string sgd = "{type: sgd, learning_rate: 0.05, momentum: 0.9}";
  const auto used = [&](const std::vector<std::string>& overrides) {
    auto backend = make_cpu_backend();
    auto comm = make_local_communicator();
    const Config c = config(sgd, overrides);
    return Trainer(c, *comm, *backend, load_dataset(c.train_data, 0), std::nullopt)
        .updates_in_backward();
  };
  EXPECT_TRUE(used({}));
  EXPECT_FALSE(used({"training.nonfinite=skip"}));  // a skipped step leaves parameters untouched
  EXPECT_FALSE(used({"training.accumulation_steps=2"}));                 // gradients add up
  EXPECT_FALSE(used({"model.layers.2.kernel_regularizer={l2: 0.01}"}));  // added after backward
  EXPECT_FALSE(used({"training.update_in_backward=false"}));
}

// The benchmarks' roofline takes the update's time out of backward's
// (benchmarks/compare_report.py): it must be counted where the update runs inside backward, and
// only there.
TEST(BackwardProfile, UpdatesCountedAsAPartOfBackwardOnlyWhereTheyRunThere) {
  const auto phases = [](const std::vector<std::string>& overrides, bool timed) {
    auto backend = make_cpu_backend();
    auto comm = make_local_communicator();
    const Config c = config("{type: sgd, learning_rate: 0.05, momentum: 0.9}", overrides);
    Trainer trainer(c, *comm, *backend, load_dataset(c.train_data, 0), std::nullopt);
    if (timed) trainer.profile_backward();
    trainer.fit();
    return trainer.phase_times();
  };
  const PhaseTimes untimed = phases({}, /*timed=*/false);
  EXPECT_EQ(untimed.backward_update, 0);
  EXPECT_TRUE(untimed.ready_offsets.empty());  // ddp_scale's profile: also only where asked
  const PhaseTimes during = phases({}, true);
  EXPECT_GT(during.backward_update, 0);
  EXPECT_LT(during.backward_update, during.backward);
  ASSERT_FALSE(during.ready_offsets.empty());
  EXPECT_GT(during.ready_after_backward_start.back(), 0);
  const PhaseTimes after = phases({"training.update_in_backward=false"}, true);
  EXPECT_EQ(after.backward_update, 0);
  EXPECT_GT(after.optimizer, 0);
}

}  // namespace
}  // namespace ddp
