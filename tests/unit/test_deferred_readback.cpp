// Note [deferred readback]: a training step reads its loss sums after queuing backward and update,
// and its non-finite verdict a step later. What must not change: the losses and metrics reported,
// the step a non-finite error names, and that nothing reads parameters from a step whose verdict
// is still open (no checkpoint, no evaluation of them).

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "core/error.h"
#include "nn/loss.h"
#include "train/config_reader.h"
#include "train/trainer.h"

namespace ddp {
namespace {

// Two deferred losses add up to what take_loss_stats() returns, once; the calls return zeros.
TEST(DeferredReadback, LossSumsAddUpUntilTaken) {
  auto backend = make_cpu_backend();
  const std::vector<float> logits = {2, -1, 0.5f, -3, 1, 0.25f, 0.1f, 0.2f, -0.3f};
  const std::vector<float> labels = {0, 1, 2};
  std::vector<float> grad(logits.size());
  const Loss loss(LossKind::kSparseCategoricalCrossentropy);
  const LossStats now = loss.compute(*backend, logits.data(), labels.data(), nullptr, grad.data(),
                                     1, 3, 3, Readback::kNow);
  ASSERT_GT(now.loss_sum, 0);
  ASSERT_EQ(now.correct, 2);  // the first two rows' argmaxes are their labels
  for (int i = 0; i < 2; ++i) {
    const LossStats later = loss.compute(*backend, logits.data(), labels.data(), nullptr,
                                         grad.data(), 1, 3, 3, Readback::kLater);
    EXPECT_EQ(later.loss_sum, 0);
    EXPECT_EQ(later.correct, 0);
  }
  const LossStats taken = backend->take_loss_stats();
  EXPECT_DOUBLE_EQ(taken.loss_sum, 2 * now.loss_sum);
  EXPECT_EQ(taken.correct, 2 * now.correct);
  EXPECT_EQ(backend->take_loss_stats().loss_sum, 0) << "taken already";
}

Config config(const std::vector<std::string>& overrides) {
  YAML::Node root = YAML::Load(R"(
seed: 9
data:
  train: {type: synthetic, samples: 96, features: 12, classes: 4}
model:
  layers:
    - {type: dense, units: 16, activation: relu}
    - {type: dense, units: 4, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: adam, learning_rate: 0.01}
training: {epochs: 3, global_batch_size: 8}
)");
  for (const auto& o : overrides) apply_override(root, o);
  return parse_config(root, "deferred_readback.yaml");
}

// A NaN written into the parameters before step `poisoned + 1` makes that step's gradients NaN.
// Returns the error's message ("" if none) and the steps at which checkpoints were taken.
struct StoppedRun {
  std::string error;
  std::vector<int64_t> checkpoints;
};

StoppedRun run_poisoned(int64_t poisoned, const std::vector<std::string>& overrides,
                        int64_t checkpoint_every_steps) {
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  const Config c = config(overrides);
  Trainer trainer(c, *comm, *backend, load_dataset(c.train_data, 0), std::nullopt);
  StoppedRun run;
  trainer.set_checkpointing(
      CheckpointConfig{
          .every_steps = checkpoint_every_steps, .every_epochs = 0, .keep = 2, .dir = ""},
      [&](Trainer& t) { run.checkpoints.push_back(t.completed_steps()); });
  trainer.set_step_observer([&](int64_t step) {
    if (step != poisoned) return;
    std::vector<float> params = trainer.params_to_host();
    params[3] = std::numeric_limits<float>::quiet_NaN();
    trainer.load_params(params, trainer.buffers_to_host());
  });
  try {
    trainer.fit();
  } catch (const RuntimeError& e) {
    run.error = e.what();
  }
  return run;
}

// The error names the step whose gradients were NaN, though the trainer learns it a step later,
// whether the step is inside an epoch (12 steps each here) or the epoch's last.
TEST(DeferredReadback, NonFiniteStopNamesTheStepThatProducedIt) {
  for (const int64_t poisoned : {int64_t{4}, int64_t{11}, int64_t{23}}) {
    const StoppedRun run = run_poisoned(poisoned, {}, 0);
    EXPECT_NE(run.error.find("non-finite gradients at step " + std::to_string(poisoned + 1) +
                             " (epoch " + std::to_string(poisoned / 12 + 1) + ","),
              std::string::npos)
        << "poisoned before step " << poisoned + 1 << ": " << run.error;
  }
}

// No checkpoint holds the parameters of a step whose gradients were not finite: the verdict is
// settled before the checkpoint is taken.
TEST(DeferredReadback, NoCheckpointAfterANonFiniteStep) {
  const StoppedRun run = run_poisoned(6, {}, 1);
  EXPECT_NE(run.error.find("non-finite gradients at step 7 "), std::string::npos) << run.error;
  ASSERT_FALSE(run.checkpoints.empty());
  EXPECT_EQ(run.checkpoints.back(), 6);
}

}  // namespace
}  // namespace ddp
