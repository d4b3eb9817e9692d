// Multi-label classification and the pieces around it: binary cross-entropy on logits against
// its definition and finite differences (with and without pos_weight), the weight penalty's
// value and gradient, metrics from hand-countable predictions, and multi-hot data.

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "core/error.h"
#include "data/dataset.h"
#include "finite_differences.h"
#include "nn/loss.h"
#include "train/metric_set.h"

namespace ddp {
namespace {

double sigmoid(double z) { return 1 / (1 + std::exp(-z)); }

class BinaryCrossEntropy : public ::testing::TestWithParam<bool> {};

// The definition, -[p t log s(z) + (1 - t) log(1 - s(z))] averaged over labels, in double; the
// gradient against central differences of the batch loss.
TEST_P(BinaryCrossEntropy, MatchesItsDefinitionAndFiniteDifferences) {
  auto backend = make_cpu_backend();
  const bool weighted = GetParam();
  const int64_t rows = 4, cols = 3;
  const std::vector<float> pos_weight =
      weighted ? std::vector<float>{0.5f, 2.0f, 3.0f} : std::vector<float>{};
  const Loss loss(LossKind::kBinaryCrossentropy, *backend, pos_weight);
  std::vector<float> logits = random_vector(rows * cols, 3, -3, 3);
  const std::vector<float> targets = {1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0};
  double expected = 0, correct = 0;
  for (size_t i = 0; i < logits.size(); ++i) {
    const double p = weighted ? pos_weight[i % cols] : 1.0, t = targets[i];
    expected -=
        (p * t * std::log(sigmoid(logits[i])) + (1 - t) * std::log(1 - sigmoid(logits[i]))) / cols;
    correct += (logits[i] > 0) == (t > 0.5);
  }
  std::vector<float> grad(logits.size());
  const float scale = 1.0f / rows;
  const LossStats stats = loss.compute(*backend, logits.data(), targets.data(), nullptr,
                                       grad.data(), scale, rows, cols);
  EXPECT_NEAR(stats.loss_sum, expected, 1e-5);
  EXPECT_EQ(stats.correct, correct);  // elements, Keras' binary_accuracy
  auto objective = [&] {
    return loss.compute(*backend, logits.data(), targets.data(), nullptr, nullptr, scale, rows,
                        cols)
               .loss_sum *
           scale;
  };
  expect_matches_finite_differences(objective, logits, grad, weighted ? "weighted" : "plain");
}

INSTANTIATE_TEST_SUITE_P(PosWeight, BinaryCrossEntropy, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "weighted" : "unweighted"; });

TEST(BinaryCrossEntropyLimits, StableForHugeLogits) {
  auto backend = make_cpu_backend();
  const Loss loss(LossKind::kBinaryCrossentropy);
  const float logits[] = {200, -200, 200, -200};
  const float targets[] = {1, 0, 0, 1};  // right, right, wrong, wrong
  float grad[4];
  const LossStats stats = loss.compute(*backend, logits, targets, nullptr, grad, 1, 1, 4);
  EXPECT_NEAR(stats.loss_sum, 400.0 / 4, 1e-6);
  const float expected[] = {0, 0, 0.25f, -0.25f};  // (sigmoid(z) - t) / cols
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(grad[i], expected[i], 1e-7) << i;
}

TEST(WeightPenalty, ValueAndGradientMatchTheDefinitionAndFiniteDifferences) {
  auto backend = make_cpu_backend();
  std::vector<float> w = random_vector(7, 5);
  const float l1 = 0.3f, l2 = 0.2f;
  double expected = 0;
  for (const float x : w) expected += l1 * std::abs(x) + l2 * x * x;
  const std::vector<float> base = random_vector(7, 6);  // the loss's gradient, added to
  std::vector<float> grad = base;
  EXPECT_NEAR(backend->weight_penalty(w.data(), grad.data(), w.size(), l1, l2), expected, 1e-6);
  std::vector<float> added(w.size());
  for (size_t i = 0; i < w.size(); ++i) added[i] = grad[i] - base[i];
  expect_matches_finite_differences(
      [&] { return backend->weight_penalty(w.data(), nullptr, w.size(), l1, l2); }, w, added,
      "penalty", 1e-3f);
}

// Three samples, three labels: predictions (z > 0) against targets, counted by hand.
//   sample 0: predicted {0, 1}, true {0}    -> label 0 TP, label 1 FP
//   sample 1: predicted {2},    true {1, 2} -> label 2 TP, label 1 FN
//   sample 2: predicted {},     true {0}    -> label 0 FN
// micro: TP 2, FP 1, FN 2: precision 2/3, recall 1/2, F1 4/7. Per label (P, R, F1):
// label 0 (1, 1/2, 2/3), label 1 (0, 0, 0), label 2 (1, 1, 1).
TEST(Metrics, CountsGiveMicroAndMacroPrecisionRecallF1) {
  const std::vector<std::string> names = {"binary_accuracy", "precision",    "recall",  "f1",
                                          "macro_precision", "macro_recall", "macro_f1"};
  const MetricSet metrics(names, LossKind::kBinaryCrossentropy, 3);
  ASSERT_TRUE(metrics.needs_outputs());
  const float logits[] = {2, 1, -1, -3, -1, 4, -2, -1, -0.5f};
  const float targets[] = {1, 0, 0, 0, 1, 1, 1, 0, 0};
  std::vector<double> sums(metrics.sum_count());
  // Two batches (as two ranks would), summed before any division.
  metrics.add(sums, {0, 4}, logits, targets, 1);
  metrics.add(sums, {0, 1}, logits + 3, targets + 3, 2);
  const std::vector<MetricValue> values = metrics.values(sums);
  const double expected[] = {5.0 / 9, 2.0 / 3, 0.5, 4.0 / 7, 2.0 / 3, 0.5, 5.0 / 9};
  ASSERT_EQ(values.size(), names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(values[i].name, names[i]);
    EXPECT_NEAR(values[i].value, expected[i], 1e-12) << names[i];
  }
}

// One class per sample: macro metrics over classes from argmax predictions; MAE for regression.
TEST(Metrics, CategoricalMacroRecallAndMeanAbsoluteError) {
  const MetricSet classes({"accuracy", "macro_recall"}, LossKind::kSparseCategoricalCrossentropy,
                          2);
  const float logits[] = {3, 1, 0, 2, 5, 4};  // argmax 0, 1, 0
  const float labels[] = {0, 0, 0};           // class 0 recall 2/3; class 1 has no samples
  std::vector<double> sums(classes.sum_count());
  classes.add(sums, {0, 2}, logits, labels, 3);
  const std::vector<MetricValue> values = classes.values(sums);
  EXPECT_NEAR(values[0].value, 2.0 / 3, 1e-12);
  EXPECT_NEAR(values[1].value, (2.0 / 3 + 0) / 2, 1e-12);

  const MetricSet regression({"mae"}, LossKind::kMeanSquaredError, 2);
  const float pred[] = {1, 2, 3, 4};
  const float target[] = {0, 2, 5, 4};
  std::vector<double> mae_sums(regression.sum_count());
  regression.add(mae_sums, {}, pred, target, 2);
  EXPECT_NEAR(regression.values(mae_sums)[0].value, 3.0 / 4, 1e-12);
}

// Note [AUC]: Keras' interpolated ROC area over 200 thresholds is the probability that a positive
// label's bin (how many thresholds its probability exceeds) is above a negative one's, a tie
// counting half (the Mann-Whitney statistic of the bins), over every label of every sample; two
// batches summed give one batch's value; a perfect, a reversed and a constant ranking give 1, 0
// and 1/2.
TEST(Metrics, AucIsTheRankStatisticOfKerasThresholdBins) {
  const MetricSet metrics({"auc"}, LossKind::kBinaryCrossentropy, 3);
  ASSERT_TRUE(metrics.needs_outputs());
  Rng rng(6);
  std::vector<float> logits(3 * 300), targets(logits.size());
  for (size_t i = 0; i < logits.size(); ++i) {
    targets[i] = rng.uniform(0, 1) < 0.3 ? 1.0f : 0.0f;
    logits[i] = rng.uniform(-4, 4) + 1.5f * targets[i];
  }
  std::vector<double> sums(metrics.sum_count());
  metrics.add(sums, {}, logits.data(), targets.data(), 120);
  metrics.add(sums, {}, logits.data() + 3 * 120, targets.data() + 3 * 120, 180);
  const auto bin = [](float logit) {  // how many of Keras' thresholds the probability exceeds
    const float p = 1.0f / (1.0f + std::exp(-logit));
    int exceeded = p > static_cast<float>(-1e-7) ? 1 : 0;
    for (int i = 1; i < 199; ++i) exceeded += p > static_cast<float>(i / 199.0);
    return exceeded + (p > static_cast<float>(1 + 1e-7) ? 1 : 0);
  };
  double above = 0, pairs = 0;
  for (size_t i = 0; i < logits.size(); ++i)
    for (size_t j = 0; j < logits.size(); ++j) {
      if (targets[i] != 1.0f || targets[j] != 0.0f) continue;
      const int a = bin(logits[i]), b = bin(logits[j]);
      above += a > b ? 1.0 : a == b ? 0.5 : 0.0;
      pairs += 1;
    }
  const double auc = metrics.values(sums)[0].value;
  EXPECT_NEAR(auc, above / pairs, 1e-12);
  EXPECT_GT(auc, 0.6);  // the positives' logits are higher: far from a coin's 1/2

  const auto auc_of = [&metrics](std::vector<float> z, std::vector<float> t) {
    std::vector<double> s(metrics.sum_count());
    metrics.add(s, {}, z.data(), t.data(), static_cast<int64_t>(z.size() / 3));
    return metrics.values(s)[0].value;
  };
  EXPECT_DOUBLE_EQ(auc_of({-3, 2, -1, 4, -2, 1}, {0, 1, 0, 1, 0, 1}), 1.0);
  EXPECT_NEAR(auc_of({3, -2, 1, -4, 2, -1}, {0, 1, 0, 1, 0, 1}), 0.0, 1e-12);
  EXPECT_NEAR(auc_of({1, 1, 1, 1, 1, 1}, {0, 1, 0, 1, 0, 1}), 0.5, 1e-12);
  EXPECT_NE(metric_mismatch("auc", LossKind::kSparseCategoricalCrossentropy), "");
}

// The rule depends only on the shape, so a test set of another seed is learnable from the
// training set: cli_end_to_end's multilabel_example case reaches a test F1 above 0.9.
TEST(MultiLabelData, SyntheticLabelsAreDeterministicAndBalanced) {
  const Dataset a = make_synthetic_multilabel(400, 6, 3, 1);
  const Dataset b = make_synthetic_multilabel(400, 6, 3, 2);
  ASSERT_EQ(a.size(), 400);
  EXPECT_EQ(a.label_width, 3);
  EXPECT_NE(a.features, b.features);
  for (int64_t j = 0; j < 3; ++j) {
    int64_t set = 0;
    for (int64_t i = 0; i < a.size(); ++i) set += a.labels[static_cast<size_t>(i * 3 + j)];
    EXPECT_GT(set, 100) << "label " << j;
    EXPECT_LT(set, 300) << "label " << j;
  }
  EXPECT_EQ(make_synthetic_multilabel(400, 6, 3, 1).labels, a.labels);
  EXPECT_NO_THROW(a.check_labels(3, TargetLayout::kLabels, true));
}

TEST(MultiLabelData, CsvLabelColumnsAndBinaryLabelChecks) {
  const std::string path = testing::TempDir() + "/multi.csv";
  std::ofstream(path) << "l0,x,l1,y\n1,0.5,0,2\n0,1.5,1,3\n";
  const Dataset data =
      read_csv(path, {.header = true, .label_column = -1, .label_columns = {0, 2}, .scale = 1});
  EXPECT_EQ(data.label_width, 2);
  EXPECT_EQ(data.labels, (std::vector<int32_t>{1, 0, 0, 1}));
  EXPECT_EQ(data.features, (std::vector<float>{0.5f, 2, 1.5f, 3}));
  float features[4], targets[4];
  const int64_t rows[] = {1, 0};
  gather_batch(data, rows, TargetLayout::kLabels, 2, features, targets);
  EXPECT_EQ(std::vector<float>(targets, targets + 4), (std::vector<float>{0, 1, 1, 0}));

  std::ofstream(path) << "a,b,c\n0.5,1,2\n";
  const Dataset two =
      read_csv(path, {.header = true, .label_column = -1, .label_columns = {-2, -1}, .scale = 1});
  try {
    two.check_labels(2, TargetLayout::kLabels, true);
    ADD_FAILURE() << "a label of 2 passed for binary_crossentropy";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("label 2 of sample 0, label column 1 is not 0 or 1"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(two.check_labels(3, TargetLayout::kLabels, false),
               DataError);  // 2 columns, 3 outputs
  EXPECT_THROW(two.check_labels(2, TargetLayout::kClassIndex, false), DataError);
}

}  // namespace
}  // namespace ddp
