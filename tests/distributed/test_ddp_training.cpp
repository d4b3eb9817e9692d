// Invariants 1 and 2 under mpiexec: N ranks train the same model as one rank with the global
// batch, and every rank holds bit-identical parameters, on every all-reduce path
// (Note [all-reduce paths]): each test runs through shared memory, through MPI and hierarchically
// (on one host: one shared-memory group whose cross-host all-reduce has one rank; across hosts,
// tests/multihost runs them).

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "comm/agreement.h"
#include "comm/mpi_communicator.h"
#include "core/error.h"
#include "train/config_reader.h"
#include "train/replica_check.h"
#include "train/trainer.h"

namespace ddp {
namespace {

Config config_with(const std::vector<std::string>& overrides) {
  YAML::Node root = YAML::Load(R"(
seed: 5
data:
  train: {type: synthetic, samples: 640, features: 10, classes: 10}
model:
  input: [10]
  layers:
    - {type: dense, units: 64, activation: relu}
    - {type: dense, units: 64, activation: tanh}
    - {type: dense, units: 10, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: adam, learning_rate: 0.001}
training: {epochs: 1, global_batch_size: 32}
)");
  for (const auto& o : overrides) apply_override(root, o);
  return parse_config(root, "dist.yaml");
}

// The path a multi-rank trainer took, as its log line names it.
void expect_path(const Trainer& trainer, Communicator& comm, const Config& config) {
  if (comm.size() == 1) return;
  const AllReduceChoice path = config.training.grad_sync.path;
  const std::string expected = path == AllReduceChoice::kMpi ? "through mpi"
                               : path == AllReduceChoice::kHierarchical
                                   ? "through shared memory within hosts"
                                   : "through shared memory";
  EXPECT_NE(trainer.grad_sync().describe().find(expected), std::string::npos)
      << trainer.grad_sync().describe();
}

// The parameters, then the running statistics (batch normalization), after `steps` steps.
std::vector<float> train_and_get_params(const Config& config, Communicator& comm, int64_t steps) {
  auto backend = make_cpu_backend();
  Trainer trainer(config, comm, *backend, load_dataset(config.train_data, comm.rank()),
                  std::nullopt);
  expect_path(trainer, comm, config);
  trainer.train_steps(steps);
  std::vector<float> values = trainer.params_to_host();
  const std::vector<float> buffers = trainer.buffers_to_host();
  values.insert(values.end(), buffers.begin(), buffers.end());
  return values;
}

float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

// Parametrized by training.allreduce.
class DdpTraining : public ::testing::TestWithParam<std::string> {
 protected:
  Config config_with(std::vector<std::string> overrides) const {
    overrides.push_back("training.allreduce=" + GetParam());
    return ddp::config_with(overrides);
  }
  // configs/<name> with `overrides`, on this test's path.
  Config example_with(const std::string& name, std::vector<std::string> overrides) const {
    overrides.push_back("training.allreduce=" + GetParam());
    return load_config(std::string(DDP_CONFIGS_DIR) + "/" + name, overrides);
  }
  // The hierarchical path refuses ZeRO-1, naming the combination; true when it did.
  bool refuses_zero1(Communicator& comm) const {
    if (GetParam() != "hierarchical" || comm.size() == 1) return false;
    auto backend = make_cpu_backend();
    const Config config = config_with({"training.zero=1"});
    try {
      Trainer trainer(config, comm, *backend, load_dataset(config.train_data, comm.rank()),
                      std::nullopt);
      ADD_FAILURE() << "hierarchical accepted ZeRO-1";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("training.allreduce: hierarchical, but ZeRO-1"),
                std::string::npos)
          << e.what();
    }
    return true;
  }
};

void expect_identical_to_rank0(Communicator& comm, const std::vector<float>& mine) {
  std::vector<float> reference = mine;
  comm.broadcast(std::span<float>(reference), 0);
  EXPECT_EQ(std::memcmp(mine.data(), reference.data(), mine.size() * sizeof(float)), 0)
      << "rank " << comm.rank() << " drifted from rank 0";
}

TEST_P(DdpTraining, ReplicasBitIdenticalAfterSteps) {
  MpiCommunicator comm;
  const Config config = config_with({"optimizer.type=sgd", "optimizer.momentum=0.9",
                                     "optimizer.nesterov=true", "optimizer.learning_rate=0.05"});
  const std::vector<float> params = train_and_get_params(config, comm, 30);
  expect_identical_to_rank0(comm, params);
}

TEST_P(DdpTraining, GlobalBatchMatchesSingleProcess) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const Config config = config_with({});
  const std::vector<float> distributed = train_and_get_params(config, comm, 20);
  const std::vector<float> single = train_and_get_params(config, *local, 20);
  EXPECT_LE(max_abs_diff(distributed, single), 1e-5f);
  // The runs really moved: the comparison is not between two untouched initializations.
  auto fresh = train_and_get_params(config, *local, 0);
  EXPECT_GT(max_abs_diff(single, fresh), 1e-3f);
}

TEST_P(DdpTraining, PerRankBatchMatchesSingleProcessWithWorldTimesBatch) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const Config weak = config_with(
      {"training.global_batch_size=~", "training.batch_size_per_rank=8", "training.tail=pad"});
  const Config single = config_with(
      {"training.global_batch_size=" + std::to_string(8 * comm.size()), "training.tail=pad"});
  const std::vector<float> a = train_and_get_params(weak, comm, 25);
  const std::vector<float> b = train_and_get_params(single, *local, 25);
  EXPECT_LE(max_abs_diff(a, b), 1e-5f);
}

// tail: partial: the last global batch of 98 samples keeps 2, so at 4 ranks two ranks contribute
// nothing to that step; the result still equals one process with the same batches.
TEST_P(DdpTraining, PartialLastBatchMatchesSingleProcess) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const Config config = config_with({"data.train.samples=98", "training.tail=partial"});
  const std::vector<float> distributed = train_and_get_params(config, comm, 12);  // 3 epochs
  const std::vector<float> single = train_and_get_params(config, *local, 12);
  EXPECT_LE(max_abs_diff(distributed, single), 1e-5f);
  expect_identical_to_rank0(comm, distributed);
  // The partial steps count: 4 steps an epoch, not 3 (drop) with the last one padded.
  const Config dropped = config_with({"data.train.samples=98"});
  EXPECT_GT(max_abs_diff(single, train_and_get_params(dropped, *local, 12)), 1e-4f);
}

// A convnet with dropout: Note [dropout mask] draws each sample's mask from its position in the
// epoch, so N ranks (and the partial last batch split over them) drop what one rank drops.
TEST_P(DdpTraining, ConvnetWithDropoutMatchesSingleProcess) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const std::string layers =
      "model.layers=[{type: conv2d, filters: 4, kernel_size: 3, padding: same, activation: relu},"
      " {type: max_pooling2d, pool_size: 2}, {type: dropout, rate: 0.3}, {type: flatten},"
      " {type: dense, units: 10, activation: softmax}]";
  const std::vector<std::string> convnet = {"data.train.features=64", "data.train.samples=98",
                                            "model.input=[8, 8, 1]", layers,
                                            "training.tail=partial"};
  const Config config = config_with(convnet);
  const std::vector<float> distributed = train_and_get_params(config, comm, 12);  // 3 epochs
  const std::vector<float> single = train_and_get_params(config, *local, 12);
  EXPECT_LE(max_abs_diff(distributed, single), 1e-5f);
  expect_identical_to_rank0(comm, distributed);
  // Dropout is on: without it the same steps end elsewhere.
  std::vector<std::string> no_dropout = convnet;
  no_dropout[3] =
      layers.substr(0, layers.find("0.3")) + "0" + layers.substr(layers.find("0.3") + 3);
  EXPECT_GT(max_abs_diff(single, train_and_get_params(config_with(no_dropout), *local, 12)), 1e-4f);
}

// Note [batch statistics]: synchronized batch normalization normalizes with the global batch's
// statistics, so N ranks train what one rank does, running statistics included; with per-rank
// statistics (the default) the running statistics are still the global batch's on every rank.
// 98 samples in global batches of 32 end with a batch of 2: on 4 ranks two have no rows and
// must still join each layer's sums, in the order the others run them and the buckets
// (overlap). Every rank checks the others' copies after every step (check_replicas_every).
TEST_P(DdpTraining, SyncBatchNormMatchesSingleProcess) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const auto layers = [](const std::string& sync) {
    return "model.layers=[{type: conv2d, filters: 4, kernel_size: 3, padding: same},"
           " {type: batch_normalization, sync: " +
           sync +
           ", momentum: 0.5}, {type: relu},"
           " {type: max_pooling2d, pool_size: 2}, {type: dropout, rate: 0.3}, {type: flatten},"
           " {type: dense, units: 8}, {type: batch_normalization, sync: " +
           sync +
           "},"
           " {type: tanh}, {type: dense, units: 10, activation: softmax}]";
  };
  // SGD: the biases before batch normalization have a gradient of zero but for rounding, which
  // Adam would scale up to whole steps of either sign.
  const std::vector<std::string> convnet = {
      "data.train.features=64",
      "data.train.samples=98",
      "model.input=[8, 8, 1]",
      "training.tail=partial",
      "training.check_replicas_every=1",
      "optimizer={type: sgd, learning_rate: 0.1, momentum: 0.9}"};
  auto with = [&](std::vector<std::string> overrides, const std::string& sync) {
    overrides.insert(overrides.end(), convnet.begin(), convnet.end());
    overrides.push_back(layers(sync));
    return config_with(overrides);
  };
  const Config config = with({}, "true");
  const std::vector<float> distributed = train_and_get_params(config, comm, 12);  // 3 epochs
  const std::vector<float> single = train_and_get_params(config, *local, 12);
  EXPECT_LE(max_abs_diff(distributed, single), 1e-5f);
  expect_identical_to_rank0(comm, distributed);
  const std::vector<float> overlapped = train_and_get_params(
      with({"training.overlap=true", "training.bucket_mb=0.001"}, "true"), comm, 12);
  EXPECT_LE(max_abs_diff(distributed, overlapped), 1e-6f);
  expect_identical_to_rank0(comm, overlapped);
  // Per-rank statistics: identical replicas; another model than one rank's once ranks split it.
  const std::vector<float> per_rank = train_and_get_params(with({}, "false"), comm, 12);
  expect_identical_to_rank0(comm, per_rank);
  if (comm.size() > 1) {
    EXPECT_GT(max_abs_diff(per_rank, single), 1e-4f);
  }
}

// The multi-label example (configs/multilabel_example.yaml) with binary cross-entropy's pos_weight
// and an L2 kernel penalty, which rank 0 alone adds (Note [weight penalty]; on every rank it would
// count N times), trains on N ranks what one rank trains, overlapped or not; 98 samples in global
// batches of 32 leave two of 4 ranks without rows in the last one. The test metrics over 101
// samples (which no world size here divides) are exactly one rank's over the whole set with the
// same parameters (Note [exact metrics]).
TEST_P(DdpTraining, MultiLabelExampleMatchesSingleProcessWithExactMetrics) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const std::vector<std::string> multilabel = {
      "data.train.samples=98",
      "data.test.samples=101",
      "model.layers.0.kernel_regularizer={l2: 0.01}",
      "loss={type: binary_crossentropy, pos_weight: [1, 2, 0.5, 1, 3]}",
      "metrics=[binary_accuracy, f1, macro_f1, precision, macro_recall]",
      "training.tail=partial"};
  const std::string example = "multilabel_example.yaml";
  const Config config = example_with(example, multilabel);
  const std::vector<float> single = train_and_get_params(config, *local, 12);
  auto overlapped = multilabel;
  overlapped.insert(overlapped.end(), {"training.overlap=true", "training.bucket_mb=0.001"});
  for (const Config& c : {config, example_with(example, overlapped)}) {
    const std::vector<float> distributed = train_and_get_params(c, comm, 12);
    EXPECT_LE(max_abs_diff(distributed, single), 1e-5f);
    expect_identical_to_rank0(comm, distributed);
  }
  // The penalty is in force: without it the same steps end elsewhere.
  auto unpenalized = multilabel;
  unpenalized[2] = "model.layers.0.kernel_regularizer={l2: 0}";
  EXPECT_GT(
      max_abs_diff(single, train_and_get_params(example_with(example, unpenalized), *local, 12)),
      1e-4f);

  auto backend = make_cpu_backend();
  const Dataset test = load_dataset(*config.test_data, comm.rank());
  Trainer trainer(config, comm, *backend, load_dataset(config.train_data, comm.rank()), test);
  trainer.train_steps(12);
  const EvalResult mine = trainer.evaluate(test);
  Trainer one(config, *local, *backend, load_dataset(config.train_data, 0), test);
  one.load_params(trainer.params_to_host(), trainer.buffers_to_host());
  const EvalResult reference = one.evaluate(test);
  ASSERT_EQ(mine.metrics.size(), 5u);
  for (size_t i = 0; i < mine.metrics.size(); ++i)
    EXPECT_EQ(mine.metrics[i].value, reference.metrics[i].value) << mine.metrics[i].name;
  EXPECT_NEAR(mine.loss, reference.loss, 1e-6);
}

TEST_P(DdpTraining, OverlappedAllReduceMatchesSynchronous) {
  MpiCommunicator comm;
  // Small buckets so that several all-reduces are in flight during backward.
  const Config sync = config_with({"training.bucket_mb=0.01"});
  const Config overlapped = config_with({"training.bucket_mb=0.01", "training.overlap=true"});
  const std::vector<float> a = train_and_get_params(sync, comm, 20);
  const std::vector<float> b = train_and_get_params(overlapped, comm, 20);
  EXPECT_LE(max_abs_diff(a, b), 1e-6f);
  expect_identical_to_rank0(comm, b);
}

TEST_P(DdpTraining, AccumulatedMicroBatchesMatchOneLargerBatch) {
  MpiCommunicator comm;
  // Note [accumulation]: 4 micro-batches of 8 per step are the samples of one batch of 32.
  const int64_t micro = 2 * comm.size();
  const Config accumulated = config_with(
      {"training.global_batch_size=" + std::to_string(micro), "training.accumulation_steps=4"});
  const Config large = config_with({"training.global_batch_size=" + std::to_string(4 * micro)});
  const std::vector<float> a = train_and_get_params(accumulated, comm, 20);
  const std::vector<float> b = train_and_get_params(large, comm, 20);
  EXPECT_LE(max_abs_diff(a, b), 1e-6f);
  expect_identical_to_rank0(comm, a);
}

TEST_P(DdpTraining, Bf16WireStaysCloseToFp32AndIdenticalAcrossRanks) {
  MpiCommunicator comm;
  const Config fp32 = config_with({});
  const Config bf16 = config_with({"training.wire_dtype=bf16"});
  const Config overlapped =
      config_with({"training.wire_dtype=bf16", "training.overlap=true", "training.bucket_mb=0.01"});
  const std::vector<float> a = train_and_get_params(fp32, comm, 20);
  const std::vector<float> b = train_and_get_params(bf16, comm, 20);
  expect_identical_to_rank0(comm, b);
  // Started during backward, bucket by bucket (MPI may then sum ranks in another order).
  const std::vector<float> c = train_and_get_params(overlapped, comm, 20);
  EXPECT_LE(max_abs_diff(a, c), 5e-3f);
  expect_identical_to_rank0(comm, c);
  // bf16 keeps 8 bits of mantissa: each gradient is off by at most 2^-8 relative. Adam's
  // update is normalized, so 20 steps of lr 1e-3 move a parameter by at most 0.02; the rounding
  // must cost well under that (near-zero gradients, whose sign it can flip, dominate the error).
  if (comm.size() > 1) {
    EXPECT_GT(max_abs_diff(a, b), 0.0f) << "bf16 path not taken";
  }
  EXPECT_LE(max_abs_diff(a, b), 5e-3f);
}

TEST_P(DdpTraining, Zero1MatchesReplicatedOptimizerState) {
  MpiCommunicator comm;
  if (refuses_zero1(comm)) return;
  const std::vector<float> plain = train_and_get_params(config_with({"training.zero=0"}), comm, 20);
  // One bucket, and buckets of ~1,300 floats whose boundaries cut through the shards.
  for (const char* buckets : {"training.bucket_mb=4", "training.bucket_mb=0.005"}) {
    const std::vector<float> sharded =
        train_and_get_params(config_with({"training.zero=1", buckets}), comm, 20);
    EXPECT_LE(max_abs_diff(plain, sharded), 1e-6f) << buckets;
    expect_identical_to_rank0(comm, sharded);
  }
}

TEST_P(DdpTraining, Zero1CheckpointsHoldTheFullStateAndResumeWithoutSharding) {
  MpiCommunicator comm;
  if (refuses_zero1(comm)) return;
  auto backend = make_cpu_backend();
  const Config plain = config_with({"training.zero=0"});
  const Config sharded = config_with({"training.zero=1"});
  auto make = [&](const Config& c) {
    return std::make_unique<Trainer>(c, comm, *backend, load_dataset(c.train_data, comm.rank()),
                                     std::nullopt);
  };
  auto reference = make(plain);
  reference->train_steps(10);
  auto zero = make(sharded);
  zero->train_steps(10);
  const TrainingState full = zero->capture();
  const TrainingState expected = reference->capture();
  ASSERT_EQ(full.optimizer_state.size(), 2u);  // Adam's m and v, each the whole model's size
  for (size_t i = 0; i < 2; ++i) {
    ASSERT_EQ(full.optimizer_state[i].second.size(), zero->model().param_count());
    EXPECT_LE(max_abs_diff(full.optimizer_state[i].second, expected.optimizer_state[i].second),
              1e-6f);
  }
  auto resumed = make(plain);
  resumed->restore(decode_checkpoint(encode_checkpoint(full), "zero"), "zero");
  resumed->train_steps(10);
  reference->train_steps(10);
  EXPECT_LE(max_abs_diff(resumed->params_to_host(), reference->params_to_host()), 1e-6f);
}

TEST_P(DdpTraining, ReplicaCheckCatchesDrift) {
  MpiCommunicator comm;
  if (comm.size() == 1) GTEST_SKIP() << "drift needs at least two ranks";
  auto backend = make_cpu_backend();
  const Config config = config_with({});
  Trainer trainer(config, comm, *backend, load_dataset(config.train_data, comm.rank()),
                  std::nullopt);
  trainer.train_steps(3);
  EXPECT_NO_THROW(check_replicas(comm, *backend, trainer.model(), 3));
  const ParamEntry& target = trainer.model().param_entries()[2];  // layers.1.weight
  if (comm.rank() == comm.size() - 1) trainer.model().params()[target.offset + 5] += 1e-6f;
  try {
    check_replicas(comm, *backend, trainer.model(), 3);
    ADD_FAILURE() << "drift not detected";
  } catch (const RuntimeError& e) {
    EXPECT_NE(
        std::string(e.what()).find("after step 3: layers.1.weight differs from rank 0 on 1 of"),
        std::string::npos)
        << e.what();
  }
}

TEST_P(DdpTraining, IndivisibleGlobalBatchFailsOnEveryRank) {
  MpiCommunicator comm;
  if (comm.size() == 1) GTEST_SKIP() << "every batch divides over one rank";
  auto backend = make_cpu_backend();
  const Config config =
      config_with({"training.global_batch_size=" + std::to_string(3 * comm.size() + 1)});
  try {
    Trainer trainer(config, comm, *backend, load_dataset(config.train_data, comm.rank()),
                    std::nullopt);
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("does not split evenly over"), std::string::npos);
  }
}

// Note [ring all-reduce]: the MPI path with the trainer's ring (which auto uses between hosts),
// layers wide enough (1 MB of gradients) that the bucket goes around it; after backward,
// overlapped with it in buckets of 256 KB and more (Note [overlapped pieces]), and ZeRO-1's
// reduce-scatter and all-gather as the ring's two halves.
class RingTraining : public ::testing::TestWithParam<const char*> {};

TEST_P(RingTraining, TrainsLikeOneProcessWithBitIdenticalReplicas) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const Config config =
      config_with({"training.allreduce=mpi", "training.mpi_allreduce=ring", "training.zero=0",
                   "model.layers.0.units=512", "model.layers.1.units=512", GetParam(),
                   "training.bucket_mb=0.3"});
  auto backend = make_cpu_backend();
  Trainer trainer(config, comm, *backend, load_dataset(config.train_data, comm.rank()),
                  std::nullopt);
  if (comm.size() > 1) {
    const std::string described = trainer.grad_sync().describe();
    EXPECT_NE(described.find("ring"), std::string::npos) << described;
    EXPECT_EQ(described.find("ZeRO-1") != std::string::npos,
              std::string(GetParam()) == "training.zero=1")
        << described;
  }
  trainer.train_steps(20);
  const std::vector<float> distributed = trainer.params_to_host();
  expect_identical_to_rank0(comm, distributed);
  const std::vector<float> single = train_and_get_params(config, *local, 20);
  EXPECT_LE(max_abs_diff(distributed, single), 1e-5f);
  EXPECT_GT(max_abs_diff(single, train_and_get_params(config, *local, 0)), 1e-3f);
}

INSTANTIATE_TEST_SUITE_P(Ring, RingTraining,
                         ::testing::Values("training.overlap=false", "training.overlap=true",
                                           "training.zero=1"),
                         [](const auto& info) {
                           const std::string setting = info.param;
                           return setting == "training.zero=1"         ? "zero1"
                                  : setting == "training.overlap=true" ? "overlapped"
                                                                       : "after_backward";
                         });

INSTANTIATE_TEST_SUITE_P(Paths, DdpTraining, ::testing::Values("shm", "mpi", "hierarchical"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ddp
