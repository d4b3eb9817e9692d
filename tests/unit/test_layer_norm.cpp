// LayerNormalization: forward against the definition in double, backward against central finite
// differences (invariant 4), accumulated gradients, the bits on a team of threads, and its place in
// a model (names, init, a whole-model gradient).

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "finite_differences.h"
#include "nn/layer_norm.h"
#include "nn/model_builder.h"

namespace ddp {
namespace {

constexpr float kEpsilon = 1e-3f;

// A LayerNorm over `shape` with gamma and beta drawn from `seed` (ones and zeros, its initial
// values, would hide a missing scale or shift).
struct BoundLayerNorm {
  BoundLayerNorm(const Shape& shape, uint64_t seed)
      : layer(shape, kEpsilon),
        features(static_cast<size_t>(shape[shape.rank() - 1])),
        gamma(random_vector(features, seed, 0.5f, 2.0f)),
        beta(random_vector(features, seed + 1)),
        dgamma(features),
        dbeta(features) {
    float* params[] = {gamma.data(), beta.data()};
    float* grads[] = {dgamma.data(), dbeta.data()};
    layer.bind(params, grads);
  }
  LayerNorm layer;
  size_t features;
  std::vector<float> gamma, beta, dgamma, dbeta;
};

// (batch, height, width, channels) images, normalized per pixel, and (batch, features) rows.
class LayerNormTest : public ::testing::TestWithParam<Shape> {};

TEST_P(LayerNormTest, NormalizesEachRowOfTheLastAxis) {
  auto backend = make_cpu_backend();
  const Shape shape = GetParam();
  const int64_t batch = 3;
  BoundLayerNorm ln(shape, 2);
  const std::vector<float> x = random_vector(static_cast<size_t>(batch * shape.numel()), 4, -3, 5);
  std::vector<float> y(x.size());
  ln.layer.forward(*backend, x.data(), y.data(), batch);
  const size_t n = ln.features;
  for (size_t r = 0; r < x.size() / n; ++r) {
    double mean = 0, var = 0;
    for (size_t c = 0; c < n; ++c) mean += x[r * n + c];
    mean /= static_cast<double>(n);
    for (size_t c = 0; c < n; ++c) var += std::pow(x[r * n + c] - mean, 2);
    var /= static_cast<double>(n);
    for (size_t c = 0; c < n; ++c) {
      const double expected =
          ln.gamma[c] * (x[r * n + c] - mean) / std::sqrt(var + kEpsilon) + ln.beta[c];
      EXPECT_NEAR(y[r * n + c], expected, 1e-5) << "row " << r << ", feature " << c;
    }
  }
}

TEST_P(LayerNormTest, GradientsMatchFiniteDifferences) {
  auto backend = make_cpu_backend();
  const Shape shape = GetParam();
  const int64_t batch = 3;
  BoundLayerNorm ln(shape, 3);
  std::vector<float> x = random_vector(static_cast<size_t>(batch * shape.numel()), 7);
  expect_scale_and_shift_gradients(*backend, ln.layer, x, batch, ln.gamma, ln.beta, ln.dgamma,
                                   ln.dbeta);
}

INSTANTIATE_TEST_SUITE_P(Shapes, LayerNormTest, ::testing::Values(Shape{2, 2, 3}, Shape{5}));

// Note [threads per rank]: rows and columns shared out, the same bits as on one thread; centred
// (layer normalization) and not (RMS normalization, no beta).
TEST(LayerNormThreads, TheBitsOfOneThread) {
  auto one = make_cpu_backend(true, 1);
  auto team = make_cpu_backend(true, 2);
  const int64_t rows = 700, cols = 130;  // past the backend's threshold for sharing
  const std::vector<float> x = random_vector(rows * cols, 3, -2, 2),
                           dy = random_vector(rows * cols, 4);
  const std::vector<float> gamma = random_vector(cols, 5, 0.5f, 2), beta = random_vector(cols, 6);
  for (const bool center : {true, false}) {
    std::vector<std::vector<float>> out[2];
    ComputeBackend* backends[] = {one.get(), team.get()};
    for (int k = 0; k < 2; ++k) {
      std::vector<float> y(x.size()), stats(2 * rows), dx(x.size()), dgamma(cols), dbeta(cols);
      backends[k]->layer_norm_forward(x.data(), gamma.data(), center ? beta.data() : nullptr,
                                      y.data(), stats.data(), rows, cols, kEpsilon, center);
      backends[k]->layer_norm_backward(dy.data(), x.data(), gamma.data(), stats.data(), dx.data(),
                                       dgamma.data(), center ? dbeta.data() : nullptr, rows, cols,
                                       false, center);
      out[k] = {y, dx, dgamma, dbeta};
    }
    EXPECT_EQ(out[0], out[1]) << (center ? "layer" : "RMS") << " normalization";
  }
}

// Keras' and PyTorch's initial values (gamma ones, beta zeros) under PyTorch's names, and its
// gradient inside a model.
TEST(LayerNormModel, InitNamesAndWholeModelGradient) {
  auto backend = make_cpu_backend();
  const std::vector<LayerSpec> specs = {{"dense", 4, "linear", "model.layers.0"},
                                        {"layer_normalization", 0, "linear", "model.layers.1"},
                                        {"tanh", 0, "linear", "model.layers.2"},
                                        {"dense", 3, "softmax", "model.layers.3"}};
  auto model = build_sequential(*backend, Shape{3}, specs);
  const auto& e = model->param_entries();
  ASSERT_EQ(e.size(), 6u);
  EXPECT_EQ(e[2].name, "layers.1.weight");
  EXPECT_EQ(e[3].name, "layers.1.bias");
  model->set_output_logits(OutputFunction::kSoftmax);
  model->init_params(5);
  const auto params = model->params();
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(params[e[2].offset + i], 1.0f);
    EXPECT_EQ(params[e[3].offset + i], 0.0f);
  }
  DeviceBuffer grads(*backend, model->param_count());
  model->bind_grads(grads.span());
  expect_model_gradient_matches(*backend, *model, random_vector(4 * 3, 9), {2, 0, 1, 1});
}

}  // namespace
}  // namespace ddp
