// Dilated convolutions and Keras' causal padding (Note [dilated convolution]): conv2d and conv1d
// against the convolution by definition in double, finite differences, the config's refusals and
// Keras' configs both ways.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api/keras.h"
#include "api/keras_model_config.h"
#include "conv_by_definition.h"
#include "core/error.h"
#include "finite_differences.h"
#include "keras_api_fixtures.h"
#include "model_from_yaml.h"

namespace ddp {
namespace {

// One convolution layer (NHWC, or (steps, channels) as a row) and where its taps fall: output
// (oh, ow)'s tap (i, j) reads input (oh * stride - top + i * dh, ow * stride - left + j * dw).
struct Case {
  std::string input, layer;
  int64_t height, width, channels, filters, kernel_h, kernel_w, stride, dh, dw, top, left;
  int64_t out_h, out_w;
};

TEST(DilatedConvolution, OutputsAndGradientsByDefinition) {
  const Case cases[] = {
      // 9x8, kernel 3x2 dilated (2, 3): spans 5x4; same: padding 2 top, 1 left (the odd one after)
      {"[9, 8, 3]",
       "{type: conv2d, filters: 4, kernel_size: [3, 2], dilation_rate: [2, 3], padding: same}", 9,
       8, 3, 4, 3, 2, 1, 2, 3, 2, 1, 9, 8},
      // valid: 9 - 5 + 1 = 5 rows, 8 - 4 + 1 = 5 columns
      {"[9, 8, 3]", "{type: conv2d, filters: 2, kernel_size: [3, 2], dilation_rate: [2, 3]}", 9, 8,
       3, 2, 3, 2, 1, 2, 3, 0, 0, 5, 5},
      // causal: (3 - 1) * 2 = 4 steps of padding before the first, as many outputs as steps
      {"[11, 4]", "{type: conv1d, filters: 3, kernel_size: 3, dilation_rate: 2, padding: causal}",
       1, 11, 4, 3, 1, 3, 1, 1, 2, 0, 4, 1, 11},
      // causal at stride 2: 2 steps of padding, ceil(11 / 2) outputs
      {"[11, 4]", "{type: conv1d, filters: 3, kernel_size: 3, strides: 2, padding: causal}", 1, 11,
       4, 3, 1, 3, 2, 1, 1, 0, 2, 1, 6}};
  auto backend = make_cpu_backend();
  const int64_t batch = 2;
  for (const Case& c : cases) {
    auto model = build(*backend, Shape(YAML::Load(c.input).as<std::vector<int64_t>>()), c.layer);
    Layer& layer = *model->layers()[0];
    ASSERT_EQ(layer.output_shape().numel(), c.out_h * c.out_w * c.filters) << c.layer;
    const auto x = random_vector(static_cast<size_t>(batch * c.height * c.width * c.channels), 1);
    const auto params = random_vector(model->param_count(), 2);
    std::ranges::copy(params, model->params().begin());
    DeviceBuffer grads(*backend, model->param_count());
    model->bind_grads(grads.span());
    std::vector<float> y(static_cast<size_t>(batch * c.out_h * c.out_w * c.filters));
    const auto dy = random_vector(y.size(), 3);
    std::vector<float> d = dy, dx(x.size());
    layer.forward(*backend, x.data(), y.data(), batch);
    layer.backward(*backend, x.data(), y.data(), d.data(), dx.data(), batch, false);
    // By definition, in double; weights (filters, kernel_h, kernel_w, channels), then the bias.
    std::vector<double> want_y(y.size()), want_dx(x.size()), want_dw(params.size());
    const size_t bias = params.size() - static_cast<size_t>(c.filters);
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t oh = 0; oh < c.out_h; ++oh)
        for (int64_t ow = 0; ow < c.out_w; ++ow)
          for (int64_t f = 0; f < c.filters; ++f) {
            const auto out =
                static_cast<size_t>(((n * c.out_h + oh) * c.out_w + ow) * c.filters + f);
            want_y[out] = params[bias + static_cast<size_t>(f)];
            want_dw[bias + static_cast<size_t>(f)] += dy[out];
            for (int64_t i = 0; i < c.kernel_h; ++i)
              for (int64_t j = 0; j < c.kernel_w; ++j) {
                const int64_t h = oh * c.stride - c.top + i * c.dh;
                const int64_t v = ow * c.stride - c.left + j * c.dw;
                if (h < 0 || h >= c.height || v < 0 || v >= c.width) continue;
                for (int64_t ch = 0; ch < c.channels; ++ch) {
                  const auto xi =
                      static_cast<size_t>(((n * c.height + h) * c.width + v) * c.channels + ch);
                  const auto wi = static_cast<size_t>(
                      ((f * c.kernel_h + i) * c.kernel_w + j) * c.channels + ch);
                  want_y[out] += static_cast<double>(params[wi]) * x[xi];
                  want_dx[xi] += static_cast<double>(params[wi]) * dy[out];
                  want_dw[wi] += static_cast<double>(x[xi]) * dy[out];
                }
              }
          }
    const std::vector<float> got_dw(grads.data(), grads.data() + grads.size());
    expect_near_definition(y, want_y, "y of " + c.layer);
    expect_near_definition(dx, want_dx, "dx of " + c.layer);
    expect_near_definition(got_dw, want_dw, "dw of " + c.layer);
  }
}

TEST(DilatedConvolution, GradientsMatchFiniteDifferences) {
  expect_softmax_model_gradient_matches(
      Shape{6, 5, 2},
      "{type: conv2d, filters: 3, kernel_size: 2, dilation_rate: [2, 1], padding: "
      "same, activation: tanh}, {type: reshape, target_shape: [30, 3]}, {type: "
      "conv1d, filters: 2, kernel_size: 3, dilation_rate: 4, padding: causal, "
      "activation: tanh}, {type: flatten}, {type: dense, units: 3, activation: "
      "softmax}");
}

TEST(DilatedConvolution, ConfigRefusals) {
  EXPECT_EQ(build_error(Shape{8, 8, 1},
                        "{type: conv2d, filters: 2, kernel_size: 3, strides: 2, dilation_rate: 2}"),
            "c.yaml: model.layers.0.dilation_rate: a dilated convolution takes strides of 1 (as "
            "Keras' does), got strides 2x2");
  EXPECT_NE(
      build_error(Shape{8, 8, 1}, "{type: conv2d, filters: 2, kernel_size: 3, padding: causal}")
          .find("model.layers.0.padding"),
      std::string::npos);
  EXPECT_NE(build_error(Shape{8, 8, 1},
                        "{type: conv2d_transpose, filters: 2, kernel_size: 3, dilation_rate: 2}")
                .find("model.layers.0.dilation_rate"),
            std::string::npos);
  EXPECT_NE(
      build_error(Shape{8, 8, 1}, "{type: conv2d, filters: 2, kernel_size: 3, dilation_rate: 0}")
          .find("model.layers.0.dilation_rate"),
      std::string::npos);
  EXPECT_EQ(
      build_error(Shape{5, 1}, "{type: conv1d, filters: 2, kernel_size: 3, dilation_rate: 3}"),
      "c.yaml: model.layers.0: a kernel of 7 (dilated) does not fit the 5 steps with padding "
      "valid (the output would be empty); use a smaller kernel or padding: same");
  EXPECT_EQ(build_error(Shape{4, 9, 1},
                        "{type: conv2d, filters: 2, kernel_size: 3, dilation_rate: [2, 1]}"),
            "c.yaml: model.layers.0: a 5x3 window (dilated) does not fit the 4x9 input with "
            "padding valid (the output would be empty); use a smaller window or padding: same");
}

// The C++ API's keras::Conv1D and keras::Conv2D take dilation_rate, Conv1D padding "causal".
TEST(DilatedConvolution, InTheCppApi) {
  keras::Sequential model(
      {keras::Conv1D(3, 2, 1, "relu", "causal", true, 3), keras::Reshape({3, 4, 3}),
       keras::Conv2D(2, 2, "linear", "same", true, 2)},
      {12, 4});
  model.build(world_of_one());
  EXPECT_NE(model.summary().find("(None, 12, 3)"), std::string::npos) << model.summary();
  EXPECT_NE(model.summary().find("(None, 3, 4, 2)"), std::string::npos) << model.summary();
  const Config config = model_config(
      Shape{12, 4},
      "{type: conv1d, filters: 3, kernel_size: 2, activation: relu, padding: causal, "
      "dilation_rate: 3}, {type: reshape, target_shape: [3, 4, 3]}, {type: conv2d, filters: 2, "
      "kernel_size: 2, padding: same, dilation_rate: 2}");
  auto backend = make_cpu_backend();
  auto built = build_sequential(*backend, Shape{12, 4}, config.layers);
  const std::vector<float> x = random_vector(2 * 48, 4);
  const std::vector<float> weights = values_of(model.get_weights_in_own_layout());
  std::ranges::copy(weights, built->params().begin());
  const float* y = built->predict(x.data(), 2);
  EXPECT_EQ(model.predict({{12, 4}, x, {}}), std::vector<float>(y, y + 2 * 24));
}

// Keras' dilation_rate and padding "causal" both ways.
TEST(DilatedConvolution, AsKerasConfigs) {
  const Config config = model_config(
      Shape{12, 4},
      "{type: conv1d, filters: 3, kernel_size: 3, dilation_rate: 2, padding: causal}, "
      "{type: reshape, target_shape: [3, 4, 3]}, "
      "{type: conv2d, filters: 2, kernel_size: 2, dilation_rate: [1, 2], padding: same}");
  const nlohmann::json keras = keras::keras_model_config(config.layers, Shape{12, 4}, std::nullopt);
  const nlohmann::json& conv1d = keras["config"]["layers"][1]["config"];
  EXPECT_EQ(conv1d["padding"], "causal");
  EXPECT_EQ(conv1d["dilation_rate"], nlohmann::json::array({2}));
  EXPECT_EQ(keras["config"]["layers"][3]["config"]["dilation_rate"], nlohmann::json::array({1, 2}));
  const keras::KerasModel back = keras::keras_model_from_config(keras, "m.keras", false);
  ASSERT_EQ(back.layers.size(), 3u);
  EXPECT_EQ(back.layers[0].node["padding"].as<std::string>(), "causal");
  EXPECT_EQ(back.layers[0].node["dilation_rate"].as<int64_t>(), 2);
  EXPECT_EQ(back.layers[2].node["dilation_rate"].as<std::vector<int64_t>>(),
            (std::vector<int64_t>{1, 2}));
}

}  // namespace
}  // namespace ddp
