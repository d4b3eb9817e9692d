// Note [class weights]: Keras' class_weight through the targets. A training row is its class's
// weight times its one-hot (or smoothed) row; evaluation rows are not weighted. With every class
// weighing 2, SGD trains exactly as with weight 1 at twice the learning rate, reports twice the
// training loss, and the same validation loss; mistakes name loss.class_weight.

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

TEST(ClassWeights, ScaleTheTrainingTargetsRows) {
  const Dataset data = make_synthetic(4, 2, 3, 1);
  const int64_t rows[] = {0, 1, 2, 3};
  const float weights[] = {0.5f, 2, 3};
  float features[8], weighted[12], smoothed[12];
  gather_batch(data, rows, TargetLayout::kOneHot, 3, features, weighted, 0, weights);
  gather_batch(data, rows, TargetLayout::kOneHot, 3, features, smoothed, 0.3f, weights);
  for (int r = 0; r < 4; ++r) {
    const float w = weights[data.labels[r]];
    for (int c = 0; c < 3; ++c) {
      const bool label = c == data.labels[r];
      EXPECT_EQ(weighted[r * 3 + c], label ? w : 0.0f) << r << " " << c;
      EXPECT_FLOAT_EQ(smoothed[r * 3 + c], w * (label ? 0.8f : 0.1f)) << r << " " << c;
    }
  }
}

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

TEST(ClassWeights, DoubleWeightsAreTwiceTheRateAndLossButNotTheValidationLoss) {
  const std::string weighted = "loss={type: sparse_categorical_crossentropy, class_weight: ";
  const Trained ones = train_sgd({weighted + "{0: 1}}", "optimizer.learning_rate=0.2"});
  const Trained twos = train_sgd({weighted + "[2, 2, 2, 2, 2, 2, 2, 2, 2, 2]}"});
  ASSERT_EQ(ones.params.size(), twos.params.size());
  EXPECT_EQ(std::memcmp(ones.params.data(), twos.params.data(), ones.params.size() * 4), 0);
  EXPECT_DOUBLE_EQ(twos.loss, 2 * ones.loss);
  EXPECT_EQ(twos.val_loss, ones.val_loss);
  // Unweighted, the same rate trains elsewhere: the weights were in force.
  EXPECT_NE(train_sgd({}).params, twos.params);
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
  EXPECT_EQ(error("{type: mse, class_weight: [2]}"),
            "w.yaml: loss.class_weight: only the categorical cross-entropies weigh classes "
            "(binary_crossentropy weighs its labels' positives: pos_weight)");
}

}  // namespace
}  // namespace ddp
