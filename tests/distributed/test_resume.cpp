// Invariant 3 under mpiexec: stopping and resuming from a checkpoint gives bit-identical results
// to never stopping, for SGD with momentum, Adam, RMSprop and NAdam (with a weight average), at
// epoch ends and in the middle of an epoch,
// through shared memory (sums, or weight gradients split by rows) and through MPI.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "comm/mpi_communicator.h"
#include "core/error.h"
#include "train/config_reader.h"
#include "train/trainer.h"

namespace ddp {
namespace {

Config resume_config(const std::string& optimizer, const std::string& allreduce = "auto",
                     const std::vector<std::string>& overrides = {}) {
  YAML::Node root = YAML::Load(R"(
seed: 21
data:
  train: {type: synthetic, samples: 200, features: 10, classes: 5}
model:
  layers:
    - {type: dense, units: 32, activation: relu}
    - {type: dense, units: 5, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: adam, learning_rate: 0.01}
training: {epochs: 4, global_batch_size: 16, tail: pad}
)");
  if (optimizer == "sgd") {
    root["optimizer"] = YAML::Load("{type: sgd, learning_rate: 0.05, momentum: 0.9}");
  } else if (optimizer == "rmsprop") {
    // All three of its state buffers, and Keras' rule, whose momentum buffer holds the rates.
    root["optimizer"] = YAML::Load("{type: rmsprop, rule: keras, momentum: 0.5, centered: true}");
  } else if (optimizer == "nadam") {
    // Its product of momentum coefficients, worked out again from the step count; and Note
    // [weight average]: the average (sharded like the moments) resumes, is written into the
    // parameters every 10 steps and at the end of fit.
    root["optimizer"] =
        YAML::Load("{type: nadam, use_ema: true, ema_momentum: 0.8, ema_overwrite_frequency: 10}");
  }
  root["optimizer"]["schedule"] = YAML::Load("{type: cosine, warmup_steps: 5}");
  root["training"]["allreduce"] = allreduce;
  for (const std::string& o : overrides) apply_override(root, o);
  return parse_config(root, optimizer + ".yaml");
}

struct Outcome {
  std::vector<float> params;
  TrainingState state;
};

Outcome run(const Config& config, Communicator& comm, int64_t stop_after,
            const std::vector<std::byte>* resume_from) {
  auto backend = make_cpu_backend(true, 1, config.training.matmul);
  Trainer trainer(config, comm, *backend, load_dataset(config.train_data, comm.rank()),
                  std::nullopt);
  if (resume_from) trainer.restore(decode_checkpoint(*resume_from, "memory"), "memory");
  trainer.fit(stop_after);
  return {trainer.params_to_host(), trainer.capture()};
}

// The uninterrupted run, and the run stopped after `stop_at` steps and resumed from its
// checkpoint; their parameters must be bit-identical.
std::pair<Outcome, Outcome> straight_and_resumed(const Config& config, Communicator& comm,
                                                 int64_t stop_at) {
  Outcome straight = run(config, comm, -1, nullptr);
  const Outcome first = run(config, comm, stop_at, nullptr);
  EXPECT_EQ(first.state.completed_steps, stop_at);
  const std::vector<std::byte> bytes = encode_checkpoint(first.state);
  Outcome resumed = run(config, comm, -1, &bytes);
  EXPECT_EQ(resumed.params.size(), straight.params.size());
  EXPECT_EQ(std::memcmp(resumed.params.data(), straight.params.data(),
                        std::min(resumed.params.size(), straight.params.size()) * sizeof(float)),
            0)
      << "resumed run differs from the uninterrupted one";
  return {std::move(straight), std::move(resumed)};
}

class Resume : public ::testing::TestWithParam<std::tuple<std::string, int64_t, std::string>> {};

TEST_P(Resume, BitIdenticalToAnUninterruptedRun) {
  MpiCommunicator comm;
  const auto& [optimizer, stop_at, allreduce] = GetParam();
  // shm_rows: Note [split weight gradients], which zero: auto leaves to larger models.
  const Config config = allreduce == "shm_rows"
                            ? resume_config(optimizer, "shm", {"training.zero=rows"})
                            : resume_config(optimizer, allreduce);
  const auto [straight, resumed] = straight_and_resumed(config, comm, stop_at);
  ASSERT_EQ(resumed.state.optimizer_state.size(), straight.state.optimizer_state.size());
  for (size_t i = 0; i < straight.state.optimizer_state.size(); ++i)
    EXPECT_EQ(resumed.state.optimizer_state[i].second, straight.state.optimizer_state[i].second);
  EXPECT_EQ(resumed.state.optimizer_steps, straight.state.optimizer_steps);
  EXPECT_EQ(resumed.state.completed_steps, 4 * 13);  // ceil(200 / 16) steps per epoch
}

// 26 steps: the end of epoch 2 of 4; 33: in the middle of epoch 3.
INSTANTIATE_TEST_SUITE_P(Optimizers, Resume,
                         ::testing::Combine(::testing::Values("sgd", "adam", "rmsprop", "nadam"),
                                            ::testing::Values(26, 33),
                                            ::testing::Values("shm", "shm_rows", "mpi",
                                                              "hierarchical")),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_stop_at_" +
                                  std::to_string(std::get<1>(info.param)) + "_" +
                                  std::get<2>(info.param);
                         });

// Note [dropout mask]: the masks come from (seed, epoch, position), which a checkpoint restores,
// so stopping in the middle of an epoch changes nothing.
TEST(Resume, ConvnetWithDropoutBitIdenticalInTheMiddleOfAnEpoch) {
  MpiCommunicator comm;
  const Config config = resume_config(
      "adam", "auto",
      {"data.train.features=64", "model.input=[8, 8, 1]",
       "model.layers=[{type: conv2d, filters: 3, kernel_size: 3, activation: relu},"
       " {type: average_pooling2d, pool_size: 2}, {type: dropout, rate: 0.4}, {type: flatten},"
       " {type: dense, units: 5, activation: softmax}]"});
  straight_and_resumed(config, comm, 33);
}

// A recurrent layer's dropout and recurrent dropout masks come from the pass's key and the
// samples' positions, as the dropout layer's: a bidirectional LSTM, GRU or SimpleRNN over 8 steps
// of 8 features resumes too.
TEST(Resume, RecurrentWithDropoutBitIdenticalInTheMiddleOfAnEpoch) {
  MpiCommunicator comm;
  for (const std::string type : {"lstm", "gru", "simple_rnn"}) {
    const Config config = resume_config(
        "adam", "auto",
        {"data.train.features=64", "model.input=[8, 8]",
         "model.layers=[{type: " + type + ", units: 6, bidirectional: true, dropout: 0.3," +
             " recurrent_dropout: 0.2}, {type: dense, units: 5, activation: softmax}]"});
    straight_and_resumed(config, comm, 33);
  }
}

// A transformer encoder's three dropouts and its attention's (Note [self-attention]) with learned
// positions over 8 steps of 8 features: the masks come from the key and the positions too.
TEST(Resume, TransformerWithDropoutBitIdenticalInTheMiddleOfAnEpoch) {
  MpiCommunicator comm;
  const Config config = resume_config(
      "adam", "auto",
      {"data.train.features=64", "model.input=[8, 8]",
       "model.layers=[{type: position_embedding}, {type: transformer_encoder, num_heads: 2,"
       " intermediate_dim: 12, dropout: 0.3}, {type: global_average_pooling1d},"
       " {type: dense, units: 5, activation: softmax}]"});
  straight_and_resumed(config, comm, 33);
}

// Note [augmentation]: the draws come from (seed, epoch, position), which a checkpoint restores.
TEST(Resume, AugmentedConvnetBitIdenticalInTheMiddleOfAnEpoch) {
  MpiCommunicator comm;
  const Config config = resume_config(
      "adam", "auto",
      {"data.train.features=64", "model.input=[8, 8, 1]",
       "model.layers=[{type: conv2d, filters: 3, kernel_size: 3, activation: relu},"
       " {type: flatten}, {type: dense, units: 5, activation: softmax}]",
       "data.train.augment={random_flip: horizontal, random_translation: [0.25, 0.25],"
       " random_rotation: [-0.05, 0.1], random_zoom: {height_factor: 0.1, width_factor: [-0.2, 0]},"
       " interpolation: nearest, fill_mode: constant, fill_value: 0.5}"});
  straight_and_resumed(config, comm, 33);
}

// Regression (real-valued targets, mean_squared_error): the same sampler and state as any run.
TEST(Resume, RegressionBitIdenticalInTheMiddleOfAnEpoch) {
  MpiCommunicator comm;
  const Config config =
      resume_config("adam", "auto",
                    {"data.train={type: synthetic, samples: 200, features: 10, targets: 3}",
                     "model.layers.1={type: dense, units: 3}", "loss=mean_squared_error"});
  straight_and_resumed(config, comm, 33);
}

// Note [bf16 products]: the resumed run converts its restored weights as the uninterrupted one
// converts its own, so bf16 products resume bit for bit too.
TEST(Resume, Bf16ProductsBitIdenticalInTheMiddleOfAnEpoch) {
  MpiCommunicator comm;
  const Config config = resume_config("adam", "auto", {"training.bf16_matmul=true"});
  const auto [straight, resumed] = straight_and_resumed(config, comm, 33);
  // The bf16 products are in force: fp32 products train other weights.
  const Config fp32 = resume_config("adam", "auto");
  EXPECT_NE(run(fp32, comm, -1, nullptr).params, straight.params);
}

// Note [batch statistics]: the running statistics are state a checkpoint must carry; training
// normalizes with batch statistics, so without them the parameters alone would still agree.
TEST(Resume, BatchNormRunningStatisticsBitIdenticalInTheMiddleOfAnEpoch) {
  MpiCommunicator comm;
  for (const std::string sync : {"false", "true"}) {
    const Config config = resume_config("adam", "auto",
                                        {"data.train.features=64", "model.input=[8, 8, 1]",
                                         "model.layers=[{type: conv2d, filters: 3, kernel_size: 3},"
                                         " {type: batch_normalization, momentum: 0.8, sync: " +
                                             sync +
                                             "}, {type: relu},"
                                             " {type: average_pooling2d, pool_size: 2}, {type: "
                                             "dropout, rate: 0.4}, {type: flatten},"
                                             " {type: dense, units: 5, activation: softmax}]"});
    const auto [straight, resumed] = straight_and_resumed(config, comm, 33);
    ASSERT_EQ(straight.state.buffers.size(), 6u) << "sync: " << sync;
    EXPECT_EQ(resumed.state.buffers, straight.state.buffers) << "sync: " << sync;
  }
}

// Note [residual blocks]: a block's batch normalization statistics are the model's buffers and
// its dropout's masks its own, so a resumed ResNet goes on as if never stopped.
TEST(Resume, ResidualBlocksBitIdenticalInTheMiddleOfAnEpoch) {
  MpiCommunicator comm;
  const Config config = resume_config(
      "adam", "auto",
      {"data.train.features=64", "model.input=[8, 8, 1]",
       "model.layers=[{type: conv2d, filters: 3, kernel_size: 3, activation: relu},"
       " {type: residual, layers: [{type: conv2d, filters: 3, kernel_size: 3, padding: same},"
       " {type: batch_normalization, momentum: 0.8}, {type: relu}, {type: dropout, rate: 0.4}],"
       " shortcut: [{type: batch_normalization, momentum: 0.7}]}, {type: flatten},"
       " {type: dense, units: 5, activation: softmax}]"});
  const auto [straight, resumed] = straight_and_resumed(config, comm, 33);
  ASSERT_EQ(straight.state.buffers.size(), 12u);
  EXPECT_EQ(resumed.state.buffers, straight.state.buffers);
}

// Note [frozen layers]: a frozen convolution and batch normalization travel with the buffers;
// resumed, they stay as they were and the rest trains on as if never stopped. A checkpoint of the
// same layers unfrozen is another model, refused naming the tensor.
TEST(Resume, FrozenLayersBitIdenticalInTheMiddleOfAnEpoch) {
  MpiCommunicator comm;
  const auto convnet = [](const std::string& trainable) {
    return resume_config("adam", "auto",
                         {"data.train.features=64", "model.input=[8, 8, 1]",
                          "model.layers=[{type: conv2d, filters: 3, kernel_size: 3, trainable: " +
                              trainable + "}, {type: batch_normalization, trainable: " + trainable +
                              "}, {type: relu}, {type: flatten},"
                              " {type: dense, units: 5, activation: softmax}]"});
  };
  const auto [straight, resumed] = straight_and_resumed(convnet("false"), comm, 33);
  ASSERT_EQ(straight.state.buffers.size(), 3u * 9 + 3 + 4 * 3);
  EXPECT_EQ(resumed.state.buffers, run(convnet("false"), comm, 0, nullptr).state.buffers);
  auto backend = make_cpu_backend();
  const Config trained = convnet("true");
  Trainer trainer(trained, comm, *backend, load_dataset(trained.train_data, comm.rank()),
                  std::nullopt);
  try {
    trainer.restore(straight.state, "ck.ddpc");
    ADD_FAILURE();
  } catch (const CheckpointError& e) {
    EXPECT_NE(
        std::string(e.what()).find("ck.ddpc: model mismatch: layers.0.weight is frozen in the "
                                   "checkpoint (trainable: false) but trained here"),
        std::string::npos)
        << e.what();
  }
}

// Note [early stopping]: its state and the best epoch's weights and running statistics travel in
// checkpoints. Only the first epoch is the best (no later one improves the loss by 100), so
// patience 2 stops after the third of 4 epochs and the run ends with the first epoch's weights.
// Stopped before there is a best (step 5), after it (18) and while waiting (33), the resumed run
// stops after the same epoch and ends with the same bits on every rank.
TEST(Resume, EarlyStoppingStopsWhereTheUninterruptedRunDoes) {
  MpiCommunicator comm;
  const std::vector<std::string> model = {
      "data.train.features=64", "model.input=[8, 8, 1]",
      "model.layers=[{type: conv2d, filters: 3, kernel_size: 3}, {type: batch_normalization},"
      " {type: relu}, {type: flatten}, {type: dense, units: 5, activation: softmax}]"};
  std::vector<std::string> early = model;
  for (const std::string o :
       {"monitor=loss", "patience=2", "min_delta=100", "restore_best_weights=true"})
    early.push_back("training.early_stopping." + o);
  const Config config = resume_config("adam", "auto", early);
  for (const int64_t stop_at : {5, 18, 33}) {
    const auto [straight, resumed] = straight_and_resumed(config, comm, stop_at);
    EXPECT_EQ(straight.state.completed_steps, 3 * 13) << "stopped after the third epoch";
    EXPECT_EQ(resumed.state.completed_steps, 3 * 13) << stop_at;
    EXPECT_EQ(resumed.state.callbacks, straight.state.callbacks) << stop_at;
    EXPECT_EQ(resumed.state.buffers, straight.state.buffers) << stop_at;
  }
  // The restored weights are the first epoch's, not the third's.
  const Outcome first_epoch = run(resume_config("adam", "auto", model), comm, 13, nullptr);
  const Outcome third_epoch = run(resume_config("adam", "auto", model), comm, 39, nullptr);
  const Outcome stopped = run(config, comm, -1, nullptr);
  EXPECT_EQ(stopped.params, first_epoch.params);
  EXPECT_EQ(stopped.state.buffers, first_epoch.state.buffers);
  EXPECT_NE(stopped.params, third_epoch.params);
}

// Note [reduce on plateau]: its state travels in checkpoints. No epoch after the first improves
// the loss by 100, so with patience 1 the rate halves after epochs 2, 3 and 4; stopped before the
// first reduction (step 18) and after it (33), the resumed run lowers the rate at the same epochs
// and ends with the same bits on every rank.
TEST(Resume, ReduceLrOnPlateauBitIdenticalToAnUninterruptedRun) {
  MpiCommunicator comm;
  std::vector<std::string> plateau;
  for (const std::string o :
       {"type=reduce_on_plateau", "monitor=loss", "patience=1", "factor=0.5", "min_delta=100"})
    plateau.push_back("optimizer.schedule." + o);
  const Config config = resume_config("sgd", "auto", plateau);
  for (const int64_t stop_at : {18, 33}) {
    const auto [straight, resumed] = straight_and_resumed(config, comm, stop_at);
    EXPECT_EQ(resumed.state.callbacks, straight.state.callbacks) << stop_at;
    EXPECT_NE(straight.state.callbacks.at("reduce_lr_on_plateau").find("\"lr\":0.00625"),
              std::string::npos)
        << straight.state.callbacks.at("reduce_lr_on_plateau");
  }
}

TEST(Resume, RefusesAnotherArchitectureNamingTheTensor) {
  MpiCommunicator comm;
  const Config config = resume_config("adam");
  const Outcome first = run(config, comm, 3, nullptr);
  Config wider = config;
  wider.layers[0].units = 48;
  auto backend = make_cpu_backend();
  Trainer trainer(wider, comm, *backend, load_dataset(wider.train_data, comm.rank()), std::nullopt);
  try {
    trainer.restore(first.state, "ck.ddpc");
    ADD_FAILURE();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find(
                  "ck.ddpc: model mismatch at layers.0.weight: expected shape (48, 10), "
                  "checkpoint has layers.0.weight (32, 10)"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace ddp
