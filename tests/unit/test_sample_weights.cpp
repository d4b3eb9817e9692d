// Note [sample weights]: Keras' sample_weight. Every loss multiplies a row's loss and gradient by
// the row's weight; a sample of weight 0 leaves no trace in training; weight 2 everywhere trains
// as weight 1 at twice the rate; evaluation weighs its loss but not its metrics; weights that do
// not fit the data are a DataError naming it.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "nn/loss.h"
#include "small_trainer_config.h"

namespace ddp {
namespace {

using test::small_config;

TEST(SampleWeights, EveryLossWeighsEachRowsLossAndGradient) {
  auto backend = make_cpu_backend();
  constexpr int64_t kRows = 5, kCols = 4;
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uniform(-3, 3);
  std::vector<float> logits(kRows * kCols), one_hot(kRows * kCols, 0), multi_hot(kRows * kCols);
  std::vector<float> classes(kRows);
  for (float& z : logits) z = uniform(rng);
  for (int64_t r = 0; r < kRows; ++r) {
    classes[r] = static_cast<float>((r * 3) % kCols);
    one_hot[r * kCols + (r * 3) % kCols] = 1;
    for (int64_t c = 0; c < kCols; ++c) multi_hot[r * kCols + c] = static_cast<float>((r + c) % 2);
  }
  const std::vector<float> weights = {0.5f, 2, 0, 1.25f, 3};
  const struct {
    LossKind kind;
    const std::vector<float>& targets;
    int64_t target_width;
  } cases[] = {{LossKind::kSparseCategoricalCrossentropy, classes, 1},
               {LossKind::kCategoricalCrossentropy, one_hot, kCols},
               {LossKind::kMeanSquaredError, one_hot, kCols},
               {LossKind::kBinaryCrossentropy, multi_hot, kCols}};
  for (const auto& c : cases) {
    const Loss loss(c.kind);
    const float scale = 0.125f;
    std::vector<float> weighted(kRows * kCols), alone(kCols);
    const LossStats all = loss.compute(*backend, logits.data(), c.targets.data(), weights.data(),
                                       weighted.data(), scale, kRows, kCols);
    const LossStats unweighted = loss.compute(*backend, logits.data(), c.targets.data(), nullptr,
                                              nullptr, scale, kRows, kCols);
    double expected = 0;
    for (int64_t r = 0; r < kRows; ++r) {
      const LossStats row =
          loss.compute(*backend, logits.data() + r * kCols, c.targets.data() + r * c.target_width,
                       nullptr, alone.data(), scale, 1, kCols);
      expected += weights[r] * row.loss_sum;
      for (int64_t k = 0; k < kCols; ++k)
        EXPECT_NEAR(weighted[r * kCols + k], weights[r] * alone[k], 1e-6f * std::abs(alone[k]))
            << loss.name() << " row " << r << " column " << k;
    }
    EXPECT_NEAR(all.loss_sum, expected, 1e-9 * expected) << loss.name();
    EXPECT_NE(all.loss_sum, unweighted.loss_sum) << loss.name();
    EXPECT_EQ(all.correct, unweighted.correct) << loss.name() << ": metrics are not weighted";
  }
}

// small_config's training and validation sets, trained with plain SGD for one epoch; `weigh`
// edits the training set first.
struct Trained {
  std::vector<float> params;
  double loss, val_loss;
};

template <class Edit>
Trained train_sgd(double learning_rate, Edit weigh) {
  const Config config =
      small_config({"optimizer={type: sgd, learning_rate: " + std::to_string(learning_rate) + "}",
                    "training.epochs=1"},
                   "weights.yaml");
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  Dataset train = load_dataset(config.train_data, 0);
  weigh(train);
  Trainer trainer(config, *comm, *backend, std::move(train), load_dataset(*config.test_data, 0));
  trainer.fit();
  const EpochRecord& epoch = trainer.epoch_records().at(0);
  return {trainer.params_to_host(), epoch.loss, epoch.val_loss.value()};
}

TEST(SampleWeights, DoubleWeightsAreTwiceTheRateAndLossButNotTheValidationLoss) {
  const Trained ones = train_sgd(0.2, [](Dataset&) {});
  const Trained twos = train_sgd(0.1, [](Dataset& d) { d.sample_weights.assign(d.size(), 2); });
  ASSERT_EQ(ones.params.size(), twos.params.size());
  EXPECT_EQ(std::memcmp(ones.params.data(), twos.params.data(), ones.params.size() * 4), 0);
  EXPECT_DOUBLE_EQ(twos.loss, 2 * ones.loss);
  EXPECT_EQ(twos.val_loss, ones.val_loss);
  EXPECT_NE(train_sgd(0.1, [](Dataset&) {}).params, twos.params);  // the weights were in force
}

TEST(SampleWeights, ASampleOfWeightZeroLeavesNoTrace) {
  // Sample 7 weighs 0, the others between 0.5 and 2; then sample 7 is replaced by other values
  // and another label: the same parameters, bit for bit, and the same training loss.
  const auto weigh = [](Dataset& d) {
    d.sample_weights.resize(static_cast<size_t>(d.size()));
    for (size_t i = 0; i < d.sample_weights.size(); ++i)
      d.sample_weights[i] = i == 7 ? 0.0f : 0.5f + static_cast<float>(i % 7) / 4;
  };
  const auto replace_sample_7 = [](Dataset& d) {
    const auto width = static_cast<size_t>(d.sample_shape.numel());
    for (size_t k = 0; k < width; ++k) d.features[7 * width + k] = 5.0f - static_cast<float>(k);
    d.labels[7] = (d.labels[7] + 3) % 10;
  };
  const Trained kept = train_sgd(0.1, weigh);
  const Trained replaced = train_sgd(0.1, [&](Dataset& d) {
    weigh(d);
    replace_sample_7(d);
  });
  ASSERT_EQ(kept.params.size(), replaced.params.size());
  EXPECT_EQ(std::memcmp(kept.params.data(), replaced.params.data(), kept.params.size() * 4), 0);
  EXPECT_EQ(kept.loss, replaced.loss);
  // Weighing 1, the replaced sample changes the training.
  EXPECT_NE(train_sgd(0.1, replace_sample_7).params, train_sgd(0.1, [](Dataset&) {}).params);
}

TEST(SampleWeights, EvaluationWeighsTheLossNotTheMetrics) {
  const Config config = small_config({"training.epochs=1"}, "weights.yaml");
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  Trainer trainer(config, *comm, *backend, load_dataset(config.train_data, 0), std::nullopt);
  trainer.fit();
  const Dataset test = load_dataset(*config.test_data, 0);
  const EvalResult plain = trainer.evaluate(test);
  Dataset halves = test;
  halves.sample_weights.assign(test.size(), 0.5f);
  const EvalResult halved = trainer.evaluate(halves);
  EXPECT_EQ(halved.loss, 0.5 * plain.loss);  // a power of two scales every sum exactly
  ASSERT_EQ(halved.metrics.size(), 1u);
  EXPECT_EQ(halved.metrics[0].value, plain.metrics[0].value);
  // Only sample 3 weighing: its own loss over the set's size.
  Dataset one = test;
  one.sample_weights.assign(test.size(), 0.0f);
  one.sample_weights[3] = 1;
  Dataset sample_3 = test;
  sample_3.features.assign(test.features.begin() + 3 * 10, test.features.begin() + 4 * 10);
  sample_3.labels = {test.labels[3]};
  EXPECT_NEAR(trainer.evaluate(one).loss * static_cast<double>(test.size()),
              trainer.evaluate(sample_3).loss, 1e-6);
}

TEST(SampleWeights, WeightsThatDoNotFitTheDataAreRefused) {
  const Config config = small_config({}, "weights.yaml");
  const auto error = [&](std::vector<float> weights) {
    auto backend = make_cpu_backend();
    auto comm = make_local_communicator();
    Dataset train = load_dataset(config.train_data, 0);
    train.sample_weights = std::move(weights);
    try {
      Trainer trainer(config, *comm, *backend, std::move(train), std::nullopt);
    } catch (const DataError& e) {
      return std::string(e.what());
    }
    return std::string("no DataError");
  };
  EXPECT_EQ(error({1, 2, 3}),
            "data.train (synthetic(200x10)): 3 sample weights for 200 samples: give one weight "
            "per sample");
  std::vector<float> nan(200, 1);
  nan[150] = std::nanf("");
  EXPECT_EQ(error(nan),
            "data.train (synthetic(200x10)): the weight of sample 150 is nan; sample weights must "
            "be finite and >= 0");
}

}  // namespace
}  // namespace ddp
