// Note [targets per position]: sparse_categorical_crossentropy over an output of several axes
// takes a class per position. The loss and accuracy are means over every position (checked
// against the model's own predictions), a sample's weight weighs each of its positions, the
// gradient is the mean's (a batch of texts trains as the same tokens taken one text each), and
// what does not go with such targets is refused naming the key.

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "tagging_config.h"

namespace ddp {
namespace {

using test::tagging_config;
constexpr int64_t kSteps = test::kTaggedSteps, kClasses = test::kTagClasses;

struct Fitted {
  std::unique_ptr<ComputeBackend> backend = make_cpu_backend();
  std::unique_ptr<Communicator> comm = make_local_communicator();
  Config config;
  Dataset test;
  std::unique_ptr<Trainer> trainer;

  explicit Fitted(Config c) : config(std::move(c)), test(load_dataset(*config.test_data, 0)) {
    trainer = std::make_unique<Trainer>(config, *comm, *backend, load_dataset(config.train_data, 0),
                                        std::nullopt);
    trainer->fit();
  }
};

// The evaluated loss and accuracy of a model trained by `config` are the means over every
// position of its own predictions, with and without sample weights; the loss's targets one-hot
// rows smoothed by `smoothing` (0: the class's probability alone).
void expect_means_over_every_position(const Config& config, double smoothing) {
  Fitted fitted(config);
  Dataset& test = fitted.test;
  ASSERT_EQ(test.label_width, kSteps);
  const std::vector<float> probabilities = fitted.trainer->predict(test);
  ASSERT_EQ(probabilities.size(), static_cast<size_t>(test.size() * kSteps * kClasses));
  test.sample_weights.resize(static_cast<size_t>(test.size()));
  double loss = 0, weighted = 0, correct = 0;
  for (int64_t i = 0; i < test.size(); ++i) {
    test.sample_weights[i] = 0.25f * static_cast<float>(i % 5);
    for (int64_t t = 0; t < kSteps; ++t) {
      const float* p = probabilities.data() + (i * kSteps + t) * kClasses;
      const int32_t label = test.labels[i * kSteps + t];
      double step = 0;
      for (int64_t c = 0; c < kClasses; ++c)
        step -= ((c == label ? 1 - smoothing : 0) + smoothing / kClasses) *
                std::log(static_cast<double>(p[c]));
      loss += step;
      weighted += test.sample_weights[i] * step;
      correct += std::max_element(p, p + kClasses) - p == label;
    }
  }
  const double positions = static_cast<double>(test.size() * kSteps);
  Dataset unweighted = test;
  unweighted.sample_weights.clear();
  const EvalResult plain = fitted.trainer->evaluate(unweighted);
  EXPECT_NEAR(plain.loss, loss / positions, 1e-5 * plain.loss);
  ASSERT_EQ(plain.metrics.size(), 1u);
  EXPECT_EQ(plain.metrics[0].name, "accuracy");
  EXPECT_DOUBLE_EQ(plain.metrics[0].value, correct / positions);
  // Weighted: each sample's weight on each of its positions, over the positions' count.
  EXPECT_NEAR(fitted.trainer->evaluate(test).loss, weighted / positions, 1e-5 * plain.loss);
}

const std::string kSteps8 = "{type: lstm, units: 8, return_sequences: true}, ";

TEST(TargetsPerPosition, LossAndAccuracyAreMeansOverEveryPosition) {
  expect_means_over_every_position(tagging_config(kSteps8), 0);
}

// categorical_crossentropy makes each position's class one-hot, smoothed as Keras smooths them
// over the last axis's classes.
TEST(TargetsPerPosition, OneHotPerPositionSmoothedOverItsClasses) {
  expect_means_over_every_position(
      tagging_config(kSteps8, {"loss={type: categorical_crossentropy, label_smoothing: 0.2}"}),
      0.2);
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  const Config sparse = tagging_config(kSteps8);
  const Config one_hot = tagging_config(kSteps8, {"loss=categorical_crossentropy"});
  Trainer a(sparse, *comm, *backend, load_dataset(sparse.train_data, 0), std::nullopt);
  a.fit();
  Trainer b(one_hot, *comm, *backend, load_dataset(one_hot.train_data, 0), std::nullopt);
  b.fit();
  test::expect_trained_alike(a, b);  // unsmoothed: the sparse loss's sums and gradients
}

// Without context (a dense layer at each step), a batch of texts is the same tokens as a batch
// of one-token texts: the same loss and the same gradient, hence the same SGD step.
TEST(TargetsPerPosition, TextsTrainAsTheirTokensOneByOne) {
  const Config texts = tagging_config("{type: dense, units: 7, activation: tanh}, ",
                                      {"training.global_batch_size=64"});
  Config tokens = tagging_config("{type: dense, units: 7, activation: tanh}, ",
                                 {"training.global_batch_size=320", "model.input=[1]"});
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  Dataset data = load_dataset(texts.train_data, 0);
  Dataset split = data;  // each token a sample of its own, with its tag
  split.sample_shape = Shape({1});
  split.label_width = 1;
  Trainer whole(texts, *comm, *backend, std::move(data), std::nullopt);
  whole.fit();
  Trainer one_by_one(tokens, *comm, *backend, std::move(split), std::nullopt);
  one_by_one.fit();
  test::expect_trained_alike(whole, one_by_one);
}

TEST(TargetsPerPosition, WhatDoesNotGoWithThemIsRefusedByName) {
  const std::string steps = "{type: lstm, units: 4, return_sequences: true}, ";
  EXPECT_EQ(test::trainer_error(tagging_config(
                steps, {"loss={type: sparse_categorical_crossentropy, class_weight: {0: 2}}"})),
            "tags.yaml: loss.class_weight: data.train (synthetic tags(64x5, vocabulary 12)) holds "
            "5 labels per sample: no one class to weigh (binary_crossentropy weighs its labels' "
            "positives: pos_weight)");
  // One tag per text for an output of 5 steps; 5 tags a text for an output of one row.
  EXPECT_EQ(test::trainer_error(tagging_config(
                steps, {"data.train={type: synthetic, samples: 64, features: 5, vocabulary: 12, "
                        "classes: 3}"})),
            "data.train (synthetic tokens(64x5, vocabulary 12)): 1 label column(s) per sample, "
            "but the model's output has 5 positions (steps) of 3 classes: a class per position");
  EXPECT_EQ(test::trainer_error(tagging_config("{type: lstm, units: 4}, ")),
            "data.train (synthetic tags(64x5, vocabulary 12)): 5 label columns per sample, but "
            "the loss takes one class per sample (multi-label data needs binary_crossentropy or "
            "mean_squared_error; a class per step, a model whose output keeps the steps)");
}

}  // namespace
}  // namespace ddp
