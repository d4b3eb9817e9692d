// Note [class weights]: Keras' class_weight as the training batch's row weights, for the
// cross-entropies, binary_crossentropy with one label and mean_squared_error on class labels;
// evaluation is not weighted. With every class weighing 2, SGD trains exactly as with weight 1 at
// twice the learning rate, reports twice the training loss, and the same validation loss; mistakes
// name loss.class_weight.

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "small_trainer_config.h"
#include "train/targets.h"

namespace ddp {
namespace {

using test::small_config;
using test::small_trainer_error;

// Trained for `steps` with plain SGD: the parameters, the training loss of the first epoch and
// the validation loss after it.
struct Trained {
  std::vector<float> params;
  double loss, val_loss;
};

Trained train_sgd(const std::vector<std::string>& overrides) {
  std::vector<std::string> all = {"optimizer={type: sgd, learning_rate: 0.1}", "training.epochs=1"};
  all.insert(all.end(), overrides.begin(), overrides.end());
  const Config config = small_config(all, "weights.yaml");
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  Trainer trainer(config, *comm, *backend, load_dataset(config.train_data, 0),
                  load_dataset(*config.test_data, 0));
  trainer.fit();
  const EpochRecord& epoch = trainer.epoch_records().at(0);
  return {trainer.params_to_host(), epoch.loss, epoch.val_loss.value()};
}

// Every class at weight 2 for `loss` (its other keys `keys`, `overrides` beside them).
void expect_double_weights_are_twice_the_rate(const std::string& loss, const std::string& keys,
                                              int64_t classes,
                                              std::vector<std::string> overrides = {}) {
  std::string twos = "{0: 2";
  for (int64_t c = 1; c < classes; ++c) twos += ", " + std::to_string(c) + ": 2";
  std::vector<std::string> ones_set = overrides, twos_set = overrides;
  ones_set.push_back("loss={type: " + loss + keys + "}");
  ones_set.push_back("optimizer.learning_rate=0.2");
  twos_set.push_back("loss={type: " + loss + keys + ", class_weight: " + twos + "}}");
  const Trained ones = train_sgd(ones_set), weighted = train_sgd(twos_set);
  ASSERT_EQ(ones.params.size(), weighted.params.size()) << loss;
  EXPECT_EQ(std::memcmp(ones.params.data(), weighted.params.data(), ones.params.size() * 4), 0)
      << loss;
  EXPECT_DOUBLE_EQ(weighted.loss, 2 * ones.loss) << loss;
  EXPECT_EQ(weighted.val_loss, ones.val_loss) << loss;
  // At the same rate unweighted, training goes elsewhere: the weights were in force.
  ones_set[ones_set.size() - 1] = "optimizer.learning_rate=0.1";
  EXPECT_NE(train_sgd(ones_set).params, weighted.params) << loss;
}

TEST(ClassWeights, DoubleWeightsAreTwiceTheRateAndLossButNotTheValidationLoss) {
  expect_double_weights_are_twice_the_rate("sparse_categorical_crossentropy", "", 10);
  expect_double_weights_are_twice_the_rate("categorical_crossentropy", ", label_smoothing: 0.1",
                                           10);
  expect_double_weights_are_twice_the_rate("mean_squared_error", "", 10);
  // Keras' binary class_weight: one 0/1 label per sample (here 1 for classes >= 5) and one output.
  const std::string binary = "{type: synthetic, samples: 200, features: 10, labels: 1}";
  expect_double_weights_are_twice_the_rate(
      "binary_crossentropy", "", 2,
      {"data.train=" + binary, "data.test=" + binary,
       "model.layers=[{type: dense, units: 16, activation: relu}, {type: dense, units: 1, "
       "activation: sigmoid}]",
       "metrics=[binary_accuracy]"});
}

TEST(ClassWeights, MistakesNameTheKey) {
  const auto error = [](const std::string& loss) {
    return small_trainer_error({"loss=" + loss}, "w.yaml");
  };
  EXPECT_EQ(error("{type: sparse_categorical_crossentropy, class_weight: {10: 2}}"),
            "w.yaml: loss.class_weight: class 10 is not an output of a model with 10 outputs");
  EXPECT_EQ(error("{type: categorical_crossentropy, class_weight: [1, 0]}"),
            "w.yaml: loss.class_weight: weights must be finite and > 0, got 0 for class 1");
  EXPECT_EQ(error("{type: sparse_categorical_crossentropy, class_weight: {x: 2}}"),
            "w.yaml: loss.class_weight.x: a class is an integer, got 'x'");
  const auto data_error = [](const std::vector<std::string>& overrides) {
    return small_trainer_error(overrides, "w.yaml");
  };
  EXPECT_EQ(data_error({"data.train={type: synthetic, samples: 200, features: 10, targets: 10}",
                        "loss={type: mse, class_weight: [2]}", "metrics=[mae]"}),
            "w.yaml: loss.class_weight: data.train (synthetic regression(200x10, 10 targets)) "
            "holds real-valued targets: no class to weigh");
  EXPECT_EQ(data_error({"data.train={type: synthetic, samples: 200, features: 10, labels: 10}",
                        "loss={type: binary_crossentropy, class_weight: [2]}",
                        "model.layers=[{type: dense, units: 10, activation: sigmoid}]",
                        "metrics=[binary_accuracy]"}),
            "w.yaml: loss.class_weight: data.train (synthetic multi-label(200x10, 10 labels)) "
            "holds 10 labels per sample: no one class to weigh (binary_crossentropy weighs its "
            "labels' positives: pos_weight)");
  EXPECT_EQ(data_error({"data.train={type: synthetic, samples: 200, features: 10, labels: 1}",
                        "data.test={type: synthetic, samples: 20, features: 10, labels: 1}",
                        "loss={type: binary_crossentropy, class_weight: {2: 3}}",
                        "model.layers=[{type: dense, units: 1, activation: sigmoid}]",
                        "metrics=[binary_accuracy]"}),
            "w.yaml: loss.class_weight: class 2 is not a label of binary_crossentropy with one "
            "output (0 or 1)");
}

}  // namespace
}  // namespace ddp
