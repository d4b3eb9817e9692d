#pragma once
// The tagging model of test_targets_per_position.cpp and test_masked_positions.cpp.

#include <string>
#include <vector>

#include "small_trainer_config.h"

namespace ddp::test {

inline constexpr int64_t kTaggedSteps = 5, kTagClasses = 3;

// Texts of kTaggedSteps tokens below 12, a tag per token (make_synthetic_tags), through an
// embedding and `middle`, then a softmax layer at each step; plain SGD over batches of 16, in file
// order; `padded`: texts of 2 to kTaggedSteps tokens padded with id 0, under mask_zero.
inline Config tagging_config(const std::string& middle,
                             const std::vector<std::string>& overrides = {}, bool padded = false) {
  const std::string texts = std::string("features: 5, vocabulary: 12, classes: 3, per_step: true") +
                            (padded ? ", min_length: 2" : "");
  std::vector<std::string> all = {
      "data.train={type: synthetic, samples: 64, " + texts + "}",
      "data.test={type: synthetic, samples: 40, " + texts + ", seed: 4}",
      "model.input=[5]",
      "model.layers=[{type: embedding, input_dim: 12, output_dim: 6, mask_zero: " +
          std::string(padded ? "true" : "false") + "}, " + middle +
          "{type: dense, units: 3, activation: softmax}]",
      "optimizer={type: sgd, learning_rate: 0.5}",
      "training.global_batch_size=16",
      "training.shuffle=false",
      "training.epochs=1"};
  all.insert(all.end(), overrides.begin(), overrides.end());
  return small_config(all, "tags.yaml");
}

}  // namespace ddp::test
