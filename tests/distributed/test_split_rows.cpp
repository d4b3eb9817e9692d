// Note [split weight gradients] under mpiexec: the ranks of one host that compute each dense
// layer's weight gradient together, each its share of the rows over the global batch, train the
// bits one rank trains with that batch (the same sums in the same order), checkpoint every rank's
// rows of the optimizer state, report that work as backward's, and are refused, naming the key,
// where they cannot run.

#include <gtest/gtest.h>

#include <cstring>

#include "backend/tiled_gemm.h"
#include "comm/mpi_communicator.h"
#include "core/error.h"
#include "ddp_training_fixture.h"
#include "train/config_reader.h"
#include "train/trainer.h"

namespace ddp {
namespace {

using dist_test::max_abs_diff;

Config split_config(const std::vector<std::string>& overrides) {
  YAML::Node root = YAML::Load(R"(
seed: 11
data:
  train: {type: synthetic, samples: 640, features: 10, classes: 10}
model:
  layers:
    - {type: dense, units: 64, activation: relu}
    - {type: dense, units: 48, activation: tanh}
    - {type: dense, units: 10, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: sgd, learning_rate: 0.05, momentum: 0.9, nesterov: true}
training: {epochs: 2, global_batch_size: 32, zero: rows}
)");
  for (const std::string& o : overrides) apply_override(root, o);
  return parse_config(root, "split.yaml");
}

std::unique_ptr<Trainer> make_trainer(const Config& config, Communicator& comm,
                                      ComputeBackend& backend) {
  return std::make_unique<Trainer>(config, comm, backend,
                                   load_dataset(config.train_data, comm.rank()), std::nullopt);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// Whether the tiled kernels take every product of `config`'s dense layers (Note [tiled GEMM]:
// small or skinny products, whose sums do not depend on the rows asked for), so that a rank's
// share of the batch (forward, input gradient) or of the weights' rows (weight gradient) gets the
// bits of the whole. Checked at the whole global batch: a share of it is as skinny, or small.
bool tiled_takes_every_product(const Config& config) {
  if (config.training.matmul == MatmulPrecision::kBf16) return false;  // Note [bf16 products]
  const int64_t batch = config.training.batch_size;
  int64_t in = config.train_data.features;
  bool first = true;  // the first layer computes no input gradient
  for (const LayerSpec& layer : config.layers) {
    const int64_t out = layer.units;
    if (!tiled_kernels_take(false, true, batch, out, in) ||
        (!first && !tiled_kernels_take(false, false, batch, in, out)) ||
        !tiled_kernels_take(true, false, out, in, batch))
      return false;
    in = out;
    first = false;
  }
  return true;
}

// Bit for bit where the tiled kernels take every product; a general GEMM may sum another row
// count in another order: builds without AVX2, and the input gradients of AVX2-only builds, which
// go to OpenBLAS (whose Haswell kernels on a Zen 4 did, at 32 and 64 rows).
void expect_one_ranks(const std::vector<float>& split, const std::vector<float>& one_rank,
                      const std::string& what, bool tiled) {
  if (tiled) {
    EXPECT_TRUE(same_bits(split, one_rank)) << what;
  } else {
    EXPECT_LE(max_abs_diff(split, one_rank), 1e-5f) << what;
  }
}

// The parameters after `steps` steps, on `comm`'s ranks.
std::vector<float> trained(const Config& config, Communicator& comm, int64_t steps) {
  auto backend = make_cpu_backend(true, 1, config.training.matmul);
  auto trainer = make_trainer(config, comm, *backend);
  if (comm.size() > 1) {
    EXPECT_NE(trainer->grad_sync().describe().find("split by rows"), std::string::npos)
        << trainer->grad_sync().describe();
  }
  trainer->train_steps(steps);
  return trainer->params_to_host();
}

// SGD with Nesterov momentum and Adam; a partial last batch that leaves ranks without samples
// (98 samples, batches of 32: two at 4 ranks); layers whose weights come from memory (over 4 MB,
// the tiled kernels' blocks fetching the update's next rows), on one thread and on two per rank,
// and at a global batch whose input leaves no room beside it for those rows (160 x 1024 floats:
// blocks of column chunks, Note [weight-gradient chunks]); and plain momentum, which the tiles
// step themselves (Note [update in the tiles]), rank and thread shares of 1100 rows ending
// mid-tile; bf16 products (Note [bf16 products]; within fp32's tolerance, oneDNN's sums not
// being promised the same order for every row count); layers without a bias (Note [no bias]);
// a global batch of 512 rows, whose weight gradients sum pieces of 256 (Note [batches in
// pieces]; smooth, tanh for ReLU: where the products sum in other orders, in AVX2-only builds, one
// ReLU input on the other side of its kink in one of the two runs moved the weights 4e-5 in one
// step, 11 of 12, at 4 ranks); and a frozen layer between trained ones, which hands nothing over
// (Note [frozen layers]).
TEST(SplitRows, TrainOneRanksBitsAtTheGlobalBatch) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"optimizer={type: adam, learning_rate: 0.002}"},
      {"data.train.samples=98", "training.tail=partial"},
      {"data.train.features=1024", "model.layers.0.units=1100", "training.global_batch_size=64"},
      {"data.train.features=1024", "model.layers.0.units=1100", "training.global_batch_size=64",
       "training.threads_per_rank=2"},
      {"data.train.features=1024", "model.layers.0.units=1100", "training.global_batch_size=160",
       "training.threads_per_rank=2"},
      {"optimizer={type: sgd, learning_rate: 0.05, momentum: 0.9}", "data.train.features=1024",
       "model.layers.0.units=1100", "training.global_batch_size=64", "training.threads_per_rank=2"},
      {"training.bf16_matmul=true", "data.train.features=1024", "model.layers.0.units=1100",
       "training.global_batch_size=64"},
      {"model.layers.0.use_bias=false", "model.layers.2.use_bias=false",
       "optimizer={type: adam, learning_rate: 0.002}"},
      {"data.train.samples=6200", "training.global_batch_size=512",
       "model.layers.0.activation=tanh"},
      {"model.layers.1.trainable=false", "data.train.samples=98", "training.tail=partial"}};
  for (const auto& overrides : cases) {
    const Config config = split_config(overrides);
    const std::vector<float> split = trained(config, comm, 12);
    // One rank's plain step, updated after backward, so that a fault of the update in backward
    // (which the split's updates go through) cannot hide in both runs.
    std::vector<std::string> plain = overrides;
    plain.push_back("training.update_in_backward=false");
    const std::vector<float> one_rank = trained(split_config(plain), *local, 12);
    expect_one_ranks(split, one_rank, "case " + std::to_string(&overrides - cases.data()),
                     tiled_takes_every_product(config));
    // The runs moved: not two untouched initializations.
    EXPECT_FALSE(same_bits(one_rank, trained(config, *local, 0)));
  }
}

// A checkpoint gathers every rank's rows of the optimizer state: it is the one-rank run's state,
// bit for bit (tiled kernels), and resuming from it replicated (zero: 0) continues as the split run
// does.
TEST(SplitRows, CheckpointsHoldEveryRanksRowsOfTheOptimizerState) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  auto backend = make_cpu_backend();
  const Config adam = split_config({"optimizer={type: adam, learning_rate: 0.002}"});
  auto split = make_trainer(adam, comm, *backend);
  auto one_rank = make_trainer(adam, *local, *backend);
  split->train_steps(7);
  one_rank->train_steps(7);
  const TrainingState state = split->capture();
  const TrainingState expected = one_rank->capture();
  ASSERT_EQ(state.optimizer_state.size(), 2u);  // m and v, the whole model's
  for (size_t i = 0; i < 2; ++i)
    expect_one_ranks(state.optimizer_state[i].second, expected.optimizer_state[i].second,
                     state.optimizer_state[i].first, tiled_takes_every_product(adam));
  expect_one_ranks(state.params, expected.params, "parameters", tiled_takes_every_product(adam));

  auto replicated = make_trainer(
      split_config({"optimizer={type: adam, learning_rate: 0.002}", "training.zero=0"}), comm,
      *backend);
  replicated->restore(decode_checkpoint(encode_checkpoint(state), "split"), "split");
  replicated->train_steps(8);
  split->train_steps(8);
  // The replicated sums round in another order.
  EXPECT_LE(max_abs_diff(replicated->params_to_host(), split->params_to_host()), 1e-5f);
}

// nonfinite: stop with split rows: each rank checks the gradients of its own rows as it updates
// them, and every rank reaches the verdict of all (an overflow in rows another rank owns too).
TEST(SplitRows, NonFiniteGradientsStopEveryRankAlike) {
  MpiCommunicator comm;
  auto backend = make_cpu_backend();
  auto trainer =
      make_trainer(split_config({"optimizer.learning_rate=1e30", "model.layers.1.activation=relu"}),
                   comm, *backend);
  try {
    trainer->train_steps(20);
    ADD_FAILURE() << "trained on";
  } catch (const RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("non-finite gradients at step"), std::string::npos)
        << e.what();
  }
}

// The weight gradients that finish() computes are backward's time, not communication's, in the
// phases that ddp_bench and TensorBoard report (a rank without samples computes its rows too).
TEST(SplitRows, WeightGradientsCountAsBackwardNotCommunication) {
  MpiCommunicator comm;
  auto backend = make_cpu_backend();
  for (const char* tail : {"training.tail=drop", "training.tail=partial"}) {
    auto split = make_trainer(split_config({"data.train.samples=98", tail}), comm, *backend);
    split->train_steps(8);
    const double computed = split->grad_sync().compute_seconds();
    const PhaseTimes& phases = split->phase_times();
    EXPECT_GT(computed, 0) << tail;
    EXPECT_GE(phases.backward, computed) << tail;
    EXPECT_GE(phases.comm, 0) << tail;
  }
  auto zero1 = make_trainer(split_config({"training.zero=1"}), comm, *backend);
  zero1->train_steps(2);
  EXPECT_EQ(zero1->grad_sync().compute_seconds(), 0);
}

// zero: rows where it cannot run is a one-line error on every rank naming the key and why;
// zero: auto then takes ZeRO-1 (or replicates) instead.
TEST(SplitRows, RefusedWhereItCannotRunAndAutoFallsBack) {
  MpiCommunicator comm;
  auto backend = make_cpu_backend();
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"training.nonfinite=skip", "an optimizer that may update rows as their gradients come"},
      {"training.accumulation_steps=2", "an optimizer that may update rows"},
      {"training.allreduce=mpi", "training.allreduce is mpi"},
      {"model.layers=[{type: dense, units: 8}, {type: batch_normalization}, {type: dense, "
       "units: 10}]",
       "every parameter in a dense layer"}};
  for (const auto& [override, why] : cases) {
    try {
      make_trainer(split_config({override}), comm, *backend);
      ADD_FAILURE() << override << ": accepted";
    } catch (const ConfigError& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find("split.yaml: training.zero: rows, but"), std::string::npos) << message;
      EXPECT_NE(message.find(why), std::string::npos) << message;
    }
    auto fallback = make_trainer(split_config({override, "training.zero=auto"}), comm, *backend);
    EXPECT_EQ(fallback->grad_sync().describe().find("split by rows"), std::string::npos)
        << override << ": " << fallback->grad_sync().describe();
  }
}

}  // namespace
}  // namespace ddp
