// Keras' DepthwiseConv2D (Note [depthwise convolution]): the layer against its definition in
// double (padding, strides, dilation, rectangular kernels, no bias), finite differences inside a
// model, the same bits on 1 and 3 threads, accumulated gradients, the config's refusals and
// Keras' configs both ways.

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "api/keras.h"
#include "api/keras_model_config.h"
#include "conv_by_definition.h"
#include "core/error.h"
#include "finite_differences.h"
#include "model_from_yaml.h"

namespace ddp {
namespace {

// A layer and where its taps fall: output (oh, ow)'s tap (i, j) reads input (oh * stride - top +
// i * dh, ow * stride - left + j * dw) of its own channel.
struct Case {
  std::string layer;
  int64_t kernel_h, kernel_w, stride, dh, dw, top, left, out_h, out_w;
  bool bias;
};

TEST(DepthwiseConvolution, OutputsAndGradientsByDefinition) {
  const int64_t height = 7, width = 6, channels = 5, batch = 2;
  const Case cases[] = {
      // same, 3x3: one pixel of padding each side
      {"{type: depthwise_conv2d, kernel_size: 3, padding: same}", 3, 3, 1, 1, 1, 1, 1, 7, 6, true},
      // valid, 3x2 at stride 2: (7 - 3) / 2 + 1 rows, (6 - 2) / 2 + 1 columns
      {"{type: depthwise_conv2d, kernel_size: [3, 2], strides: 2, use_bias: false}", 3, 2, 2, 1, 1,
       0, 0, 3, 3, false},
      // same at stride 2 (MobileNets' downsampling): 7 rows -> 4, padding 1 above and 1 below;
      // 6 columns -> 3, padding 1, the odd one after (none left)
      {"{type: depthwise_conv2d, kernel_size: 3, strides: 2, padding: same}", 3, 3, 2, 1, 1, 1, 0,
       4, 3, true},
      // dilated (2, 3), same: spans 5x7, padding 2 top, 3 left
      {"{type: depthwise_conv2d, kernel_size: 3, dilation_rate: [2, 3], padding: same}", 3, 3, 1, 2,
       3, 2, 3, 7, 6, true}};
  auto backend = make_cpu_backend();
  for (const Case& c : cases) {
    auto model = build(*backend, Shape{height, width, channels}, c.layer);
    Layer& layer = *model->layers()[0];
    ASSERT_EQ(layer.output_shape(), (Shape{c.out_h, c.out_w, channels})) << c.layer;
    const auto x = random_vector(static_cast<size_t>(batch * height * width * channels), 1);
    const auto params = random_vector(model->param_count(), 2);
    ASSERT_EQ(params.size(), static_cast<size_t>(channels * (c.kernel_h * c.kernel_w + c.bias)));
    std::ranges::copy(params, model->params().begin());
    DeviceBuffer grads(*backend, model->param_count());
    model->bind_grads(grads.span());
    std::vector<float> y(static_cast<size_t>(batch * c.out_h * c.out_w * channels));
    const auto dy = random_vector(y.size(), 3);
    std::vector<float> d = dy, dx(x.size());
    layer.forward(*backend, x.data(), y.data(), batch);
    layer.backward(*backend, x.data(), y.data(), d.data(), dx.data(), batch, false);
    // By definition, in double: weights (channels, kernel_h, kernel_w), then the bias.
    std::vector<double> want_y(y.size()), want_dx(x.size()), want_dw(params.size());
    const size_t bias = static_cast<size_t>(channels * c.kernel_h * c.kernel_w);
    for (int64_t n = 0; n < batch; ++n)
      for (int64_t oh = 0; oh < c.out_h; ++oh)
        for (int64_t ow = 0; ow < c.out_w; ++ow)
          for (int64_t ch = 0; ch < channels; ++ch) {
            const auto out =
                static_cast<size_t>(((n * c.out_h + oh) * c.out_w + ow) * channels + ch);
            if (c.bias) {
              want_y[out] = params[bias + static_cast<size_t>(ch)];
              want_dw[bias + static_cast<size_t>(ch)] += dy[out];
            }
            for (int64_t i = 0; i < c.kernel_h; ++i)
              for (int64_t j = 0; j < c.kernel_w; ++j) {
                const int64_t h = oh * c.stride - c.top + i * c.dh;
                const int64_t v = ow * c.stride - c.left + j * c.dw;
                if (h < 0 || h >= height || v < 0 || v >= width) continue;
                const auto xi = static_cast<size_t>(((n * height + h) * width + v) * channels + ch);
                const auto wi = static_cast<size_t>((ch * c.kernel_h + i) * c.kernel_w + j);
                want_y[out] += static_cast<double>(params[wi]) * x[xi];
                want_dx[xi] += static_cast<double>(params[wi]) * dy[out];
                want_dw[wi] += static_cast<double>(x[xi]) * dy[out];
              }
          }
    const std::vector<float> got_dw(grads.data(), grads.data() + grads.size());
    expect_near_definition(y, want_y, "y of " + c.layer);
    expect_near_definition(dx, want_dx, "dx of " + c.layer);
    expect_near_definition(got_dw, want_dw, "dw of " + c.layer);
    // Accumulated: a second backward adds the same gradients.
    d = dy;
    layer.backward(*backend, x.data(), y.data(), d.data(), nullptr, batch, true);
    for (size_t i = 0; i < got_dw.size(); ++i)
      ASSERT_NEAR(grads.data()[i], 2 * want_dw[i], 2e-4 * (1 + std::abs(want_dw[i])))
          << "accumulated dw[" << i << "] of " << c.layer;
  }
}

// MobileNet's block: a 1x1 expansion, a depthwise 3x3 (relu6 fused; strided), a 1x1 projection.
TEST(DepthwiseConvolution, GradientsMatchFiniteDifferences) {
  expect_softmax_model_gradient_matches(
      Shape{6, 5, 2},
      "{type: conv2d, filters: 4, kernel_size: 1, activation: tanh}, "
      "{type: depthwise_conv2d, kernel_size: 3, strides: 2, padding: same, "
      "activation: tanh}, {type: depthwise_conv2d, kernel_size: [2, 1], "
      "dilation_rate: [2, 1], use_bias: false}, {type: flatten}, {type: dense, "
      "units: 3, activation: softmax}");
}

// The kernels' gradients are sums over the batch by one thread: the same bits on any team.
TEST(DepthwiseConvolution, SameBitsOnOneAndThreeThreads) {
  std::vector<std::vector<float>> results;
  for (const int threads : {1, 3}) {
    auto backend = make_cpu_backend(true, threads);
    auto model = build(*backend, Shape{9, 8, 6},
                       "{type: depthwise_conv2d, kernel_size: 3, padding: same, activation: relu}");
    Layer& layer = *model->layers()[0];
    const int64_t batch = 7;
    const auto x = random_vector(static_cast<size_t>(batch * 9 * 8 * 6), 4);
    std::ranges::copy(random_vector(model->param_count(), 5), model->params().begin());
    DeviceBuffer grads(*backend, model->param_count());
    model->bind_grads(grads.span());
    std::vector<float> y(x.size()), dx(x.size());
    auto dy = random_vector(y.size(), 6);
    layer.forward(*backend, x.data(), y.data(), batch);
    layer.backward(*backend, x.data(), y.data(), dy.data(), dx.data(), batch, false);
    y.insert(y.end(), dx.begin(), dx.end());
    y.insert(y.end(), grads.data(), grads.data() + grads.size());
    results.push_back(y);
  }
  EXPECT_EQ(results[0], results[1]);
}

TEST(DepthwiseConvolution, ConfigRefusals) {
  EXPECT_EQ(build_error(Shape{8, 8, 3},
                        "{type: depthwise_conv2d, kernel_size: 3, "
                        "depth_multiplier: 2}"),
            "c.yaml: model.layers.0.depth_multiplier: 1 alone (a kernel for each channel, "
            "MobileNets'), got 2");
  EXPECT_EQ(build_error(Shape{8, 8, 3},
                        "{type: depthwise_conv2d, kernel_size: 3, strides: 2, "
                        "dilation_rate: 2}"),
            "c.yaml: model.layers.0.dilation_rate: a dilated convolution takes strides of 1 (as "
            "Keras' does), got strides 2x2");
  EXPECT_NE(build_error(Shape{8, 3}, "{type: depthwise_conv2d, kernel_size: 3}")
                .find("depthwise_conv2d needs an image input"),
            std::string::npos);
  EXPECT_NE(build_error(Shape{2, 2, 3}, "{type: depthwise_conv2d, kernel_size: 3}")
                .find("does not fit the 2x2 input"),
            std::string::npos);
  EXPECT_NE(build_error(Shape{8, 8, 3}, "{type: depthwise_conv2d, kernel_size: 3, filters: 4}")
                .find("model.layers.0.filters"),
            std::string::npos);
  EXPECT_NE(build_error(Shape{8, 8, 3},
                        "{type: depthwise_conv2d, kernel_size: [3000000, "
                        "3000000], padding: same}")
                .find("kernels take the model past"),
            std::string::npos);
}

// Keras' DepthwiseConv2D both ways: its settings kept, depthwise_regularizer as the kernel's
// penalty; keras::DepthwiseConv2D is the config's layer.
TEST(DepthwiseConvolution, AsKerasDepthwiseConv2D) {
  const Config config = model_config(
      Shape{8, 8, 3},
      "{type: depthwise_conv2d, kernel_size: [3, 2], strides: 2, padding: same, activation: "
      "relu6, use_bias: false, kernel_regularizer: {l2: 0.5}}");
  const nlohmann::json keras = keras::keras_model_config(config.layers, Shape{8, 8, 3});
  const nlohmann::json& layer = keras["config"]["layers"][1];
  EXPECT_EQ(layer["class_name"], "DepthwiseConv2D");
  EXPECT_EQ(layer["config"]["kernel_size"], nlohmann::json::array({3, 2}));
  EXPECT_EQ(layer["config"]["strides"], nlohmann::json::array({2, 2}));
  EXPECT_EQ(layer["config"]["depth_multiplier"], 1);
  EXPECT_EQ(layer["config"]["activation"], "relu6");
  EXPECT_FALSE(layer["config"]["use_bias"].get<bool>());
  EXPECT_EQ(layer["config"]["depthwise_regularizer"]["config"]["l2"], 0.5);
  EXPECT_FALSE(layer["config"].contains("kernel_regularizer"));
  const keras::KerasModel back = keras::keras_model_from_config(keras, "m.keras", false);
  ASSERT_EQ(back.layers.size(), 1u);
  const YAML::Node spec = back.layers[0].node;
  EXPECT_EQ(spec["type"].as<std::string>(), "depthwise_conv2d");
  EXPECT_EQ(spec["kernel_size"].as<std::vector<int64_t>>(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(spec["kernel_regularizer"]["l2"].as<double>(), 0.5);
  nlohmann::json multiplied = layer;
  multiplied["config"]["depth_multiplier"] = 2;
  YAML::Node root(YAML::NodeType::Map);
  root["model"]["input"] = std::vector<int64_t>{8, 8, 3};
  root["model"]["layers"].push_back(
      keras::keras_layer(multiplied, "m.keras: layers[1]").spec->node);
  EXPECT_THROW(parse_model_config(root, "m.keras"), ConfigError);
  multiplied["config"]["depthwise_constraint"] = {{"class_name", "NonNeg"}};
  EXPECT_THROW(keras::keras_layer(multiplied, "m.keras: layers[1]"), ConfigError);

  auto backend = make_cpu_backend();
  const auto api =
      build_sequential(*backend, Shape{8, 8, 3},
                       parse_model_config(
                           [] {
                             YAML::Node r(YAML::NodeType::Map);
                             r["model"]["input"] = std::vector<int64_t>{8, 8, 3};
                             r["model"]["layers"].push_back(
                                 keras::DepthwiseConv2D(3, 2, "same", "relu", false, 1).node);
                             return r;
                           }(),
                           "api")
                           .layers);
  EXPECT_EQ(api->layers()[0]->output_shape(), (Shape{4, 4, 3}));
  EXPECT_EQ(api->param_count(), 27u);  // 3 kernels of 3x3, no bias
}

}  // namespace
}  // namespace ddp
