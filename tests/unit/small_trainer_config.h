#pragma once
// The small model of the epoch-end callbacks' tests (test_early_stopping.cpp,
// test_reduce_lr_on_plateau.cpp): 200 synthetic samples of 10 features and 100 more for
// validation, a 10 -> 16 relu -> 10 softmax MLP, Adam at 0.01, batches of 20 (10 steps an epoch),
// 6 epochs; `overrides` as --set gives them, `file` naming it in errors.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "train/config_reader.h"
#include "train/trainer.h"

namespace ddp::test {

inline Config small_config(const std::vector<std::string>& overrides, const std::string& file) {
  YAML::Node root = YAML::Load(R"(
seed: 42
data:
  train: {type: synthetic, samples: 200, features: 10, classes: 10}
  test: {type: synthetic, samples: 100, features: 10, classes: 10, seed: 9}
model:
  input: [10]
  layers:
    - {type: dense, units: 16, activation: relu}
    - {type: dense, units: 10, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: adam, learning_rate: 0.01}
training: {epochs: 6, global_batch_size: 20}
)");
  for (const auto& o : overrides) apply_override(root, o);
  return parse_config(root, file);
}

// The one-line error (ConfigError, DataError) a trainer of `config` throws on its training data,
// given no validation data, or `none`.
inline std::string trainer_error(const Config& config, const std::string& none = "no error") {
  try {
    auto backend = make_cpu_backend();
    auto comm = make_local_communicator();
    Trainer trainer(config, *comm, *backend, load_dataset(config.train_data, 0), std::nullopt);
  } catch (const Error& e) {
    return e.what();
  }
  return none;
}

// The error of small_config(overrides) or of a trainer of it, or "no ConfigError".
inline std::string small_trainer_error(const std::vector<std::string>& overrides,
                                       const std::string& file) {
  try {
    return trainer_error(small_config(overrides, file), "no ConfigError");
  } catch (const ConfigError& e) {
    return e.what();
  }
}

// Two fitted trainers trained the same model: parameters within 1e-6, the same first epoch's
// loss (within 1e-6) and first metric.
inline void expect_trained_alike(Trainer& a, Trainer& b) {
  const std::vector<float> pa = a.params_to_host(), pb = b.params_to_host();
  ASSERT_EQ(pa.size(), pb.size());
  float largest = 0;
  for (size_t i = 0; i < pa.size(); ++i) largest = std::max(largest, std::abs(pa[i] - pb[i]));
  EXPECT_LT(largest, 1e-6f);
  EXPECT_NEAR(a.epoch_records().at(0).loss, b.epoch_records().at(0).loss, 1e-6);
  EXPECT_DOUBLE_EQ(a.epoch_records().at(0).metrics.at(0).value,
                   b.epoch_records().at(0).metrics.at(0).value);
}

}  // namespace ddp::test
