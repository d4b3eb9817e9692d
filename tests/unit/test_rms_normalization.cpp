// RMSNormalization (Keras', PyTorch's nn.RMSNorm): forward against the definition in double,
// backward against central finite differences (invariant 4), accumulated gradients, its place in
// a model (names, init, config defaults, a whole-model gradient) and Keras' config both ways; the
// bits on a team of threads are test_layer_norm.cpp's (the kernels are layer normalization's).

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "api/keras_model_config.h"
#include "finite_differences.h"
#include "nn/layer_norm.h"
#include "nn/model_builder.h"
#include "train/config.h"

namespace ddp {
namespace {

constexpr float kEpsilon = 1e-3f;

// (batch, height, width, channels) images, normalized per pixel, and (batch, features) rows; the
// scale drawn at random (its initial ones would hide a missing scale).
class RmsNormTest : public ::testing::TestWithParam<Shape> {};

TEST_P(RmsNormTest, ForwardIsTheDefinitionAndGradientsMatchFiniteDifferences) {
  auto backend = make_cpu_backend();
  const Shape shape = GetParam();
  const int64_t batch = 3;
  LayerNorm layer(shape, kEpsilon, /*rms=*/true);
  EXPECT_EQ(layer.type_name(), "RMSNormalization");
  ASSERT_EQ(layer.param_specs().size(), 1u);  // a scale, no shift
  const auto n = static_cast<size_t>(shape[shape.rank() - 1]);
  std::vector<float> gamma = random_vector(n, 2, 0.5f, 2.0f), dgamma(n);
  float* params[] = {gamma.data()};
  float* grads[] = {dgamma.data()};
  layer.bind(params, grads);
  // Off-centre rows: a mean taken off (layer normalization's) would show.
  std::vector<float> x = random_vector(static_cast<size_t>(batch * shape.numel()), 4, -1, 3);
  std::vector<float> y(x.size());
  layer.forward(*backend, x.data(), y.data(), batch);
  for (size_t r = 0; r < x.size() / n; ++r) {
    double squares = 0;
    for (size_t c = 0; c < n; ++c) squares += std::pow(x[r * n + c], 2);
    const double rms = std::sqrt(squares / static_cast<double>(n) + kEpsilon);
    for (size_t c = 0; c < n; ++c)
      EXPECT_NEAR(y[r * n + c], gamma[c] * x[r * n + c] / rms, 1e-5) << "row " << r << ", " << c;
  }

  const auto objective = expect_input_gradient_matches(*backend, layer, x, y, batch, 8);
  expect_matches_finite_differences(objective, gamma, dgamma, "dgamma");
  const std::vector<float> once = dgamma;
  objective();
  std::vector<float> dy = random_vector(y.size(), 8);
  layer.backward(*backend, x.data(), y.data(), dy.data(), nullptr, batch, /*accumulate=*/true);
  for (size_t c = 0; c < n; ++c)
    EXPECT_NEAR(dgamma[c], 2 * once[c], 1e-5) << "accumulated dgamma[" << c << "]";
}

INSTANTIATE_TEST_SUITE_P(Shapes, RmsNormTest, ::testing::Values(Shape{2, 2, 3}, Shape{5}));

// From a config: Keras' default epsilon (1e-6), PyTorch's name for the scale (nn.RMSNorm's
// weight), ones at first, and the gradient inside a model; Keras' RMSNormalization both ways.
TEST(RmsNormModel, ConfigNamesInitWholeModelGradientAndKeras) {
  const Config config = parse_model_config(
      YAML::Load("{model: {input: [3], layers: [{type: dense, units: 4}, {type: "
                 "rms_normalization}, {type: tanh}, {type: dense, units: 3, activation: "
                 "softmax}]}}"),
      "c.yaml");
  EXPECT_EQ(config.layers[1].epsilon, 1e-6f);
  auto backend = make_cpu_backend();
  auto model = build_sequential(*backend, Shape{3}, config.layers);
  const auto& e = model->param_entries();
  ASSERT_EQ(e.size(), 5u);  // the dense layers' weights and biases, and the scale alone
  EXPECT_EQ(e[2].name, "layers.1.weight");
  model->set_output_logits(OutputFunction::kSoftmax);
  model->init_params(5);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(model->params()[e[2].offset + i], 1.0f);
  DeviceBuffer grads(*backend, model->param_count());
  model->bind_grads(grads.span());
  expect_model_gradient_matches(*backend, *model, random_vector(4 * 3, 9), {2, 0, 1, 1});

  const nlohmann::json keras =
      keras::keras_model_config(config.layers, Shape{3})["config"]["layers"][2];
  EXPECT_EQ(keras["class_name"], "RMSNormalization");
  EXPECT_EQ(keras["config"]["axis"], -1);
  const YAML::Node back = keras::keras_layer(keras, "m.keras: layers[2]").spec->node;
  EXPECT_EQ(back["type"].as<std::string>(), "rms_normalization");
  EXPECT_NEAR(back["epsilon"].as<double>(), 1e-6, 1e-12);
}

}  // namespace
}  // namespace ddp
