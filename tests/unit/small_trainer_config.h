#pragma once
// The small model of the epoch-end callbacks' tests (test_early_stopping.cpp,
// test_reduce_lr_on_plateau.cpp): 200 synthetic samples of 10 features and 100 more for
// validation, a 10 -> 16 relu -> 10 softmax MLP, Adam at 0.01, batches of 20 (10 steps an epoch),
// 6 epochs; `overrides` as --set gives them, `file` naming it in errors.

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

// The ConfigError of a trainer of small_config(overrides) given no validation data, or
// "no ConfigError".
inline std::string small_trainer_error(const std::vector<std::string>& overrides,
                                       const std::string& file) {
  try {
    const Config c = small_config(overrides, file);
    auto backend = make_cpu_backend();
    auto comm = make_local_communicator();
    Trainer trainer(c, *comm, *backend, load_dataset(c.train_data, 0), std::nullopt);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no ConfigError";
}

}  // namespace ddp::test
