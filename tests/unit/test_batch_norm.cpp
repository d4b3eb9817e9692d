// BatchNormalization: forward against double-precision definitions (training and inference),
// the running statistics' update, backward against central finite differences (invariant 4), and
// its place in a model (buffers, names, summary, a whole-model gradient).

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "finite_differences.h"
#include "nn/batch_norm.h"
#include "nn/loss.h"
#include "nn/model_builder.h"

namespace ddp {
namespace {

constexpr float kMomentum = 0.9f;
constexpr float kEpsilon = 1e-3f;

// A BatchNorm layer over `shape` with gamma, beta and running statistics drawn from `seed` (the
// identity would hide a missing scale, shift or statistic).
struct BoundBatchNorm {
  BoundBatchNorm(const Shape& shape, uint64_t seed)
      : layer(shape, kMomentum, kEpsilon, /*sync=*/false),
        channels(static_cast<size_t>(shape[shape.rank() - 1])),
        gamma(random_vector(channels, seed, 0.5f, 2.0f)),
        beta(random_vector(channels, seed + 1)),
        running_mean(random_vector(channels, seed + 2)),
        running_var(random_vector(channels, seed + 3, 0.5f, 2.0f)),
        dgamma(channels),
        dbeta(channels) {
    float* params[] = {gamma.data(), beta.data()};
    float* grads[] = {dgamma.data(), dbeta.data()};
    float* buffers[] = {running_mean.data(), running_var.data()};
    layer.bind(params, grads);
    layer.bind_buffers(buffers);
  }
  BatchNorm layer;
  size_t channels;
  std::vector<float> gamma, beta, running_mean, running_var, dgamma, dbeta;
};

struct ChannelMoments {
  std::vector<double> mean, var;  // biased variance
};

ChannelMoments moments_by_definition(const std::vector<float>& x, size_t channels) {
  const size_t rows = x.size() / channels;
  ChannelMoments m{std::vector<double>(channels), std::vector<double>(channels)};
  for (size_t c = 0; c < channels; ++c) {
    for (size_t r = 0; r < rows; ++r) m.mean[c] += x[r * channels + c];
    m.mean[c] /= static_cast<double>(rows);
    for (size_t r = 0; r < rows; ++r) m.var[c] += std::pow(x[r * channels + c] - m.mean[c], 2);
    m.var[c] /= static_cast<double>(rows);
  }
  return m;
}

// (batch, height, width, channels) images and (batch, features) rows.
class BatchNormTest : public ::testing::TestWithParam<Shape> {};

TEST_P(BatchNormTest, TrainingNormalizesWithTheBatchAndMovesTheRunningStatistics) {
  auto backend = make_cpu_backend();
  const Shape shape = GetParam();
  const int64_t batch = 3;
  BoundBatchNorm bn(shape, 1);
  // An offset far from the running mean: the sums' shift must not cost the variance its digits.
  std::vector<float> x = random_vector(static_cast<size_t>(batch * shape.numel()), 5, 99, 101);
  std::vector<float> y(x.size());
  const std::vector<float> old_mean = bn.running_mean, old_var = bn.running_var;
  bn.layer.set_pass({true, 0, 0, {}});
  bn.layer.forward(*backend, x.data(), y.data(), batch);

  const ChannelMoments m = moments_by_definition(x, bn.channels);
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t c = i % bn.channels;
    const double expected =
        bn.gamma[c] * (x[i] - m.mean[c]) / std::sqrt(m.var[c] + kEpsilon) + bn.beta[c];
    EXPECT_NEAR(y[i], expected, 2e-4) << "y[" << i << "]";
  }
  for (size_t c = 0; c < bn.channels; ++c) {
    EXPECT_NEAR(bn.running_mean[c], kMomentum * old_mean[c] + (1 - kMomentum) * m.mean[c], 1e-4)
        << "running_mean[" << c << "]";
    EXPECT_NEAR(bn.running_var[c], kMomentum * old_var[c] + (1 - kMomentum) * m.var[c], 1e-5)
        << "running_var[" << c << "]";
  }
}

TEST_P(BatchNormTest, InferenceNormalizesWithTheRunningStatisticsAndChangesNothing) {
  auto backend = make_cpu_backend();
  const Shape shape = GetParam();
  const int64_t batch = 2;
  BoundBatchNorm bn(shape, 2);
  const std::vector<float> x = random_vector(static_cast<size_t>(batch * shape.numel()), 6);
  std::vector<float> y(x.size());
  const std::vector<float> mean = bn.running_mean, var = bn.running_var;
  bn.layer.forward(*backend, x.data(), y.data(), batch);
  for (size_t i = 0; i < x.size(); ++i) {
    const size_t c = i % bn.channels;
    const double expected =
        bn.gamma[c] * (x[i] - mean[c]) / std::sqrt(var[c] + double{kEpsilon}) + bn.beta[c];
    EXPECT_NEAR(y[i], expected, 1e-5) << "y[" << i << "]";
  }
  EXPECT_EQ(bn.running_mean, mean);
  EXPECT_EQ(bn.running_var, var);
}

TEST_P(BatchNormTest, TrainingGradientsMatchFiniteDifferences) {
  auto backend = make_cpu_backend();
  const Shape shape = GetParam();
  const int64_t batch = 3;
  BoundBatchNorm bn(shape, 3);
  std::vector<float> x = random_vector(static_cast<size_t>(batch * shape.numel()), 7);
  bn.layer.set_pass({true, 0, 0, {}});
  expect_scale_and_shift_gradients(*backend, bn.layer, x, batch, bn.gamma, bn.beta, bn.dgamma,
                                   bn.dbeta);
}

INSTANTIATE_TEST_SUITE_P(Shapes, BatchNormTest,
                         ::testing::Values(Shape{2, 3, 4}, Shape{5}, Shape{3, 3, 1}),
                         [](const ::testing::TestParamInfo<Shape>& info) {
                           std::string name;
                           for (const int64_t d : info.param.dims()) {
                             if (!name.empty()) name += 'x';
                             name += std::to_string(d);
                           }
                           return name;
                         });

// The CPU backend sums a batch's statistics in pieces of rows (10,000 rows: 3 pieces of 4,096 and
// the rest) on a rank's threads (Note [threads per rank]): every row counted once, on any team.
TEST(BatchNormStatistics, ChannelSumsOverPiecesOfRowsOnAnyTeam) {
  const int64_t rows = 10000, channels = 5;
  const std::vector<float> a = random_vector(rows * channels, 1),
                           b = random_vector(rows * channels, 2),
                           shift = random_vector(channels, 3);
  std::vector<double> want(2 * channels, 0.0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < channels; ++c) {
      want[c] += a[r * channels + c];
      want[channels + c] += double(a[r * channels + c]) * (double(b[r * channels + c]) - shift[c]);
    }
  for (const int threads : {1, 3}) {
    auto backend = make_cpu_backend(false, threads);
    std::vector<double> got(2 * channels, -1.0);
    backend->channel_sums(a.data(), b.data(), shift.data(), got.data(), rows, channels);
    for (int64_t i = 0; i < 2 * channels; ++i)
      EXPECT_NEAR(got[i], want[i], 1e-9 * (1 + std::fabs(want[i]))) << i << ", " << threads;
  }
}

TEST(BatchNormModel, RunningStatisticsAreNamedBuffersBesideTheParameters) {
  auto backend = make_cpu_backend();
  const std::vector<LayerSpec> specs = {{"conv2d", 3, "linear", "model.layers.0", {1, 1}},
                                        {"batch_normalization", 0, "linear", "model.layers.1"},
                                        {"relu", 0, "linear", "model.layers.2"},
                                        {"flatten", 0, "linear", "model.layers.3"},
                                        {"dense", 2, "softmax", "model.layers.4"}};
  auto model = build_sequential(*backend, Shape{2, 2, 2}, specs);
  // conv (3*1*1*2 + 3), batch norm (3 + 3), dense (2*12 + 2)
  EXPECT_EQ(model->param_count(), 9u + 6u + 26u);
  ASSERT_EQ(model->buffer_entries().size(), 2u);
  EXPECT_EQ(model->buffer_entries()[0].name, "layers.1.running_mean");
  EXPECT_EQ(model->buffer_entries()[1].name, "layers.1.running_var");
  EXPECT_EQ(model->param_entries()[2].name, "layers.1.weight");
  EXPECT_EQ(model->param_entries()[4].name, "layers.2.weight");  // the dense layer
  const std::string summary = model->summary();
  EXPECT_NE(summary.find("Total params: 47"), std::string::npos) << summary;
  EXPECT_NE(summary.find("41 trainable, 6 non-trainable"), std::string::npos) << summary;

  model->init_params(3);
  const std::vector<float> buffers(model->buffers().begin(), model->buffers().end());
  EXPECT_EQ(buffers, (std::vector<float>{0, 0, 0, 1, 1, 1}));  // mean 0, variance 1 (Keras)
}

TEST(BatchNormModel, WholeModelGradientMatchesFiniteDifferencesInTraining) {
  auto backend = make_cpu_backend();
  const std::vector<LayerSpec> specs = {{"dense", 4, "linear", "model.layers.0"},
                                        {"batch_normalization", 0, "linear", "model.layers.1"},
                                        {"tanh", 0, "linear", "model.layers.2"},
                                        {"dense", 3, "softmax", "model.layers.3"}};
  auto model = build_sequential(*backend, Shape{3}, specs);
  model->set_output_logits(OutputFunction::kSoftmax);
  model->init_params(5);
  DeviceBuffer grads(*backend, model->param_count());
  model->bind_grads(grads.span());
  model->set_pass({true, 0, 0, {}});
  expect_model_gradient_matches(*backend, *model, random_vector(4 * 3, 9), {2, 0, 1, 1});
}

}  // namespace
}  // namespace ddp
