// Invariants 1 and 2 under mpiexec: N ranks train the same model as one rank with the global
// batch, and every rank holds bit-identical parameters, on every all-reduce path
// (Note [all-reduce paths]): each test runs through shared memory, through MPI and hierarchically
// (on one host: one shared-memory group whose cross-host all-reduce has one rank; across hosts,
// tests/multihost runs them).

#include <gtest/gtest.h>

#include "comm/agreement.h"
#include "ddp_training_fixture.h"
#include "train/replica_check.h"

namespace ddp {
namespace {

using namespace dist_test;
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

// Invariant 1 for each update rule (Keras' rules, RMSprop with all of its state, the adaptive
// optimizers: Adagrad's initial sum in every shard), with the
// state replicated and, where the path has it, sharded by ZeRO-1 (each rank updates its share).
TEST_P(DdpTraining, EveryUpdateRuleMatchesSingleProcess) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const bool sharded = !refuses_zero1(comm);
  for (const std::string optimizer :
       {"{type: rmsprop, rule: keras, momentum: 0.5, centered: true, weight_decay: 0.01}",
        "{type: sgd, rule: keras, learning_rate: 0.05, momentum: 0.9, nesterov: true, "
        "weight_decay: 0.01}",
        "{type: adam, rule: keras, weight_decay: 0.01}",
        "{type: adagrad, rule: keras, weight_decay: 0.01}", "{type: adamax, weight_decay: 0.01}",
        "{type: nadam, weight_decay: 0.01}", "{type: lion, learning_rate: 0.0001}",
        // Note [weight average]: kept per shard, gathered into the parameters every 7 steps.
        "{type: adam, use_ema: true, ema_momentum: 0.7, ema_overwrite_frequency: 7}"}) {
    for (const std::string zero : {"0", "1"}) {
      if (zero == "1" && !sharded) continue;
      const Config config = config_with({"optimizer=" + optimizer, "training.zero=" + zero});
      const std::vector<float> distributed = train_and_get_params(config, comm, 20);
      EXPECT_LE(max_abs_diff(distributed, train_and_get_params(config, *local, 20)), 1e-5f)
          << optimizer << ", zero " << zero;
      expect_identical_to_rank0(comm, distributed);
    }
  }
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

// Note [gradient clipping]: the norm is the summed gradients', so N ranks clip as one rank does
// at the global batch, replicated and with ZeRO-1 (each shard's squares summed over ranks).
TEST_P(DdpTraining, ClippedGlobalNormMatchesSingleProcess) {
  MpiCommunicator comm;
  auto local = make_local_communicator();
  const auto sgd_with = [&](std::vector<std::string> overrides) {
    for (const char* o :
         {"optimizer.type=sgd", "optimizer.learning_rate=0.5", "optimizer.momentum=0.9"})
      overrides.push_back(o);
    return config_with(overrides);
  };
  const std::string clip = "optimizer.global_clipnorm=0.1";
  const std::vector<float> single = train_and_get_params(sgd_with({clip}), *local, 20);
  const std::vector<float> replicated =
      train_and_get_params(sgd_with({clip, "training.zero=0"}), comm, 20);
  EXPECT_LE(max_abs_diff(replicated, single), 1e-5f);
  expect_identical_to_rank0(comm, replicated);
  if (!refuses_zero1(comm)) {
    const std::vector<float> sharded =
        train_and_get_params(sgd_with({clip, "training.zero=1"}), comm, 20);
    EXPECT_LE(max_abs_diff(sharded, single), 1e-5f);
    expect_identical_to_rank0(comm, sharded);
  }
  // The bound bites: unclipped, the same steps train another model.
  EXPECT_GT(max_abs_diff(single, train_and_get_params(sgd_with({}), *local, 20)), 1e-2f);
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
