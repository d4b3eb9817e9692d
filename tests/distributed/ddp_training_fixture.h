#pragma once
// What the multi-rank training tests share (test_ddp_training.cpp, test_ddp_models.cpp,
// test_split_rows.cpp): a small MLP's config, training a copy for some steps, and the
// comparisons that invariants 1 and 2 are checked with.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "core/error.h"
#include "train/config_reader.h"
#include "train/trainer.h"

namespace ddp::dist_test {

inline Config config_with(const std::vector<std::string>& overrides) {
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
inline void expect_path(const Trainer& trainer, Communicator& comm, const Config& config) {
  if (comm.size() == 1) return;
  const AllReduceChoice path = config.training.grad_sync.path;
  const std::string expected = path == AllReduceChoice::kMpi ? "through mpi"
                               : path == AllReduceChoice::kHierarchical
                                   ? "through shared memory within hosts"
                                   : "through shared memory";
  EXPECT_NE(trainer.grad_sync().describe().find(expected), std::string::npos)
      << trainer.grad_sync().describe();
}

// Edits a training set after it is loaded (sample weights, say).
using DataEdit = std::function<void(Dataset&)>;

// The parameters, then the running statistics (batch normalization), after `steps` steps.
inline std::vector<float> train_and_get_params(const Config& config, Communicator& comm,
                                               int64_t steps, const DataEdit& edit = {}) {
  auto backend = make_cpu_backend(true, 1, config.training.matmul);
  Dataset data = load_dataset(config.train_data, comm.rank());
  if (edit) edit(data);
  Trainer trainer(config, comm, *backend, std::move(data), std::nullopt);
  expect_path(trainer, comm, config);
  trainer.train_steps(steps);
  std::vector<float> values = trainer.params_to_host();
  const std::vector<float> buffers = trainer.buffers_to_host();
  values.insert(values.end(), buffers.begin(), buffers.end());
  return values;
}

inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
  float worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
  return worst;
}

// Parametrized by training.allreduce.
class DdpTraining : public ::testing::TestWithParam<std::string> {
 protected:
  Config config_with(std::vector<std::string> overrides) const {
    overrides.push_back("training.allreduce=" + GetParam());
    return dist_test::config_with(overrides);
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

inline void expect_identical_to_rank0(Communicator& comm, const std::vector<float>& mine) {
  std::vector<float> reference = mine;
  comm.broadcast(std::span<float>(reference), 0);
  EXPECT_EQ(std::memcmp(mine.data(), reference.data(), mine.size() * sizeof(float)), 0)
      << "rank " << comm.rank() << " drifted from rank 0";
}

// Invariants 1 and 2 over `steps` steps of `config`: this job's ranks end within 1e-5 of one
// process, bit-identical to rank 0, and the steps moved the weights.
inline void expect_trains_as_one_process(const Config& config, Communicator& comm, int steps,
                                         const DataEdit& edit = {}) {
  auto local = make_local_communicator();
  const std::vector<float> distributed = train_and_get_params(config, comm, steps, edit);
  const std::vector<float> single = train_and_get_params(config, *local, steps, edit);
  EXPECT_LE(max_abs_diff(distributed, single), 1e-5f);
  expect_identical_to_rank0(comm, distributed);
  EXPECT_GT(max_abs_diff(single, train_and_get_params(config, *local, 0)), 1e-3f);
}

}  // namespace ddp::dist_test
