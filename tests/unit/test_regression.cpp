// Regression: real-valued targets (Dataset::values) trained with mean_squared_error through the
// C++ API in a world of one. One full-batch SGD step is the analytic one, worked out here in
// doubles; a linear model fits a linear function; mistakes name the loss, the metric or the arrays.

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "api/keras.h"
#include "core/error.h"
#include "core/rng.h"
#include "keras_api_fixtures.h"

namespace ddp {
namespace {

constexpr int64_t kIn = 3, kOut = 2;

// n samples of kIn features uniform in [-1, 1), and targets y = A x + c (kOut per sample).
keras::Arrays linear_data(int64_t n, uint64_t seed) {
  static const double a[kOut][kIn] = {{1.5, -2.0, 0.5}, {0.25, 1.0, -0.75}};
  static const double c[kOut] = {0.25, -1.0};
  Rng rng(seed);
  keras::Arrays out{{kIn}, {}, {}};
  for (int64_t i = 0; i < n; ++i) {
    double x[kIn];
    for (double& v : x) {
      v = rng.uniform(-1, 1);
      out.features.push_back(static_cast<float>(v));
    }
    for (int o = 0; o < kOut; ++o) {
      double y = c[o];
      for (int k = 0; k < kIn; ++k) y += a[o][k] * x[k];
      out.targets.push_back(static_cast<float>(y));
    }
  }
  return out;
}

keras::Sequential linear_model(const keras::Spec& optimizer) {
  keras::Sequential model({keras::Dense(kOut)}, {kIn});
  model.compile(optimizer, "mean_squared_error");
  return model;
}

// Keras' mean squared error is the mean over the outputs and then the samples: d loss / d
// output = 2 (output - target) / (n kOut). One step on the whole set from weights set here.
TEST(Regression, OneFullBatchStepIsTheAnalyticMseStep) {
  const int64_t n = 16;
  const keras::Arrays data = linear_data(n, 3);
  const std::vector<float> w0 = {0.1f, -0.2f, 0.3f, 0.4f, 0.5f, -0.6f}, b0 = {0.05f, -0.05f};
  const double lr = 0.1;
  keras::Sequential model = linear_model(keras::SGD(lr));
  model.set_weights(
      {{"layers.0.weight", Shape{kOut, kIn}, w0}, {"layers.0.bias", Shape{kOut}, b0}});
  const keras::History history =
      model.fit(world_of_one(), data, {.epochs = 1, .batch_size = n, .verbose = false});

  std::vector<double> dw(w0.size(), 0), db(b0.size(), 0);
  double loss = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int o = 0; o < kOut; ++o) {
      double out = b0[o];
      for (int k = 0; k < kIn; ++k) out += double{w0[o * kIn + k]} * data.features[i * kIn + k];
      const double err = out - data.targets[i * kOut + o];
      loss += err * err / (n * kOut);
      const double g = 2 * err / (n * kOut);
      db[o] += g;
      for (int k = 0; k < kIn; ++k) dw[o * kIn + k] += g * data.features[i * kIn + k];
    }
  ASSERT_EQ(history.epochs.size(), 1u);
  EXPECT_NEAR(history.epochs[0].loss, loss, 1e-6 * loss);
  const std::vector<NamedTensor> after = model.get_weights();
  for (size_t j = 0; j < w0.size(); ++j)
    EXPECT_NEAR(after[0].values[j], w0[j] - lr * dw[j], 1e-6) << j;
  for (size_t o = 0; o < b0.size(); ++o)
    EXPECT_NEAR(after[1].values[o], b0[o] - lr * db[o], 1e-6) << o;
}

TEST(Regression, ALinearModelFitsALinearFunction) {
  keras::Sequential model = linear_model(keras::SGD(0.2));
  const keras::History history =
      model.fit(world_of_one(), linear_data(256, 5),
                {.epochs = 60, .batch_size = 32, .verbose = false}, linear_data(64, 6));
  const ddp::EpochRecord& last = history.epochs.back();
  EXPECT_LT(last.loss, 1e-8);
  ASSERT_TRUE(last.val_loss.has_value());
  EXPECT_LT(*last.val_loss, 1e-8);
  ASSERT_EQ(last.metrics.size(), 1u);  // mae, mean_squared_error's default metric
  EXPECT_EQ(last.metrics[0].name, "mae");
  EXPECT_LT(last.metrics[0].value, 1e-4);
  const std::vector<NamedTensor> w = model.get_weights();
  EXPECT_NEAR(w[0].values[1], -2.0, 1e-4);
  EXPECT_NEAR(w[0].values[5], -0.75, 1e-4);
  EXPECT_NEAR(w[1].values[1], -1.0, 1e-4);
  const std::vector<float> out = model.predict({{kIn}, {1, 0, 0}, {}});
  ASSERT_EQ(out.size(), 2u);
  EXPECT_NEAR(out[0], 1.75, 1e-4);
  EXPECT_NEAR(out[1], -0.75, 1e-4);
}

TEST(Regression, MistakesNameTheLossTheMetricOrTheArrays) {
  const keras::FitOptions quiet{.batch_size = 8, .verbose = false};
  keras::Sequential classifier({keras::Dense(kOut, "softmax")}, {kIn});
  classifier.compile(keras::SGD(0.1), "sparse_categorical_crossentropy");
  EXPECT_EQ(
      error_of<ConfigError>([&] { classifier.fit(world_of_one(), linear_data(8, 1), quiet); }),
      "Sequential: loss: Sequential: training arrays holds real-valued targets (regression), "
      "which need mean_squared_error; class labels must be integers");
  keras::Sequential with_accuracy({keras::Dense(kOut)}, {kIn});
  with_accuracy.compile(keras::SGD(0.1), "mean_squared_error", {"accuracy"});
  EXPECT_EQ(
      error_of<ConfigError>([&] { with_accuracy.fit(world_of_one(), linear_data(8, 1), quiet); }),
      "Sequential: metrics: accuracy counts classes, but Sequential: training arrays holds "
      "real-valued targets (regression): use mae");
  keras::Sequential model = linear_model(keras::SGD(0.1));
  keras::Arrays both = linear_data(8, 1);
  both.labels.assign(8, 0);
  EXPECT_EQ(error_of<DataError>([&] { model.fit(world_of_one(), both, quiet); }),
            "Sequential: training arrays: labels and targets both given: class labels or "
            "real-valued targets, not both");
  keras::Arrays ragged = linear_data(8, 1);
  ragged.targets.pop_back();
  EXPECT_EQ(error_of<DataError>([&] { model.fit(world_of_one(), ragged, quiet); }),
            "Sequential: training arrays: 15 targets for 8 samples of 3 features: not the same "
            "number of targets for every sample");
  keras::Arrays infinite = linear_data(8, 1);
  infinite.targets[3] = INFINITY;
  EXPECT_EQ(error_of<DataError>([&] { model.fit(world_of_one(), infinite, quiet); }),
            "Sequential: training arrays: target 3 is not finite");
  keras::Arrays classes{{kIn}, linear_data(8, 1).features, std::vector<int32_t>(8, 1)};
  EXPECT_EQ(
      error_of<DataError>([&] { model.fit(world_of_one(), linear_data(8, 1), quiet, classes); }),
      "Sequential: validation arrays: integer labels, where the training set has "
      "real-valued targets");
}

}  // namespace
}  // namespace ddp
