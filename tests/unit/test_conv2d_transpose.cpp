// Keras' Conv2DTranspose and Conv1DTranspose (Note [transposed convolution]): the layer against
// its definition in double and finite differences, the config's keys and refusals, Keras'
// configs both ways.

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "api/keras_model_config.h"
#include "core/error.h"
#include "finite_differences.h"
#include "model_from_yaml.h"
#include "nn/model_builder.h"
#include "train/config.h"

namespace ddp {
namespace {

// One conv2d_transpose layer from YAML, over `input` (height, width, channels) or (steps,
// channels), and what it should output.
struct Case {
  std::string layer;
  Shape input, output;
  int64_t kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left;
};

// The transposed convolution by definition, in double: each input pixel (h, w) adds x[h, w, :]
// times the weight (channels, kernel_h, kernel_w, filters) into the output window at (h * stride
// - pad, w * stride - pad); and for the output gradient dz its input, weight and bias gradients.
struct Reference {
  std::vector<double> y, dx, dw, db;
};

Reference by_definition(const Case& c, const std::vector<float>& x, const std::vector<float>& w,
                        const std::vector<float>& b, const std::vector<float>& dz, int64_t batch) {
  const int64_t height = c.input.rank() == 3 ? c.input[0] : 1, width = c.input[c.input.rank() - 2];
  const int64_t channels = c.input.dims().back(), filters = c.output.dims().back();
  const int64_t out_h = c.output.rank() == 3 ? c.output[0] : 1;
  const int64_t out_w = c.output[c.output.rank() - 2];
  Reference r{std::vector<double>(dz.size()), std::vector<double>(x.size()),
              std::vector<double>(w.size()), std::vector<double>(b.size())};
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t p = 0; p < out_h * out_w; ++p)
      for (int64_t f = 0; f < filters; ++f) {
        const auto at = static_cast<size_t>((n * out_h * out_w + p) * filters + f);
        r.y[at] = b[static_cast<size_t>(f)];
        r.db[static_cast<size_t>(f)] += dz[at];
      }
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t h = 0; h < height; ++h)
      for (int64_t v = 0; v < width; ++v)
        for (int64_t i = 0; i < c.kernel_h; ++i)
          for (int64_t j = 0; j < c.kernel_w; ++j) {
            const int64_t oh = h * c.stride_h + i - c.pad_top, ow = v * c.stride_w + j - c.pad_left;
            if (oh < 0 || oh >= out_h || ow < 0 || ow >= out_w) continue;
            for (int64_t ch = 0; ch < channels; ++ch)
              for (int64_t f = 0; f < filters; ++f) {
                const auto xi = static_cast<size_t>(((n * height + h) * width + v) * channels + ch);
                const auto wi =
                    static_cast<size_t>(((ch * c.kernel_h + i) * c.kernel_w + j) * filters + f);
                const auto yi = static_cast<size_t>(((n * out_h + oh) * out_w + ow) * filters + f);
                r.y[yi] += static_cast<double>(x[xi]) * w[wi];
                r.dx[xi] += static_cast<double>(w[wi]) * dz[yi];
                r.dw[wi] += static_cast<double>(x[xi]) * dz[yi];
              }
          }
  return r;
}

void expect_near(const std::vector<float>& got, const std::vector<double>& want, const char* what,
                 const std::string& layer) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i], 1e-4 * (1 + std::abs(want[i])))
        << what << "[" << i << "] of " << layer;
}

// Keras' output sizes (in * stride, plus max(kernel - stride, 0) for valid) and its padding, a
// convolution's of the output ("same": the odd one after); the output, input gradient, weight
// and bias gradients by definition, through several chunks of windows where a batch's do not fit
// one, and with ReLU fused.
TEST(Conv2DTranspose, OutputsAndGradientsByDefinition) {
  auto backend = make_cpu_backend();
  const std::vector<Case> cases = {
      {"{type: conv2d_transpose, filters: 3, kernel_size: 3, strides: 2}", Shape{4, 5, 2},
       Shape{9, 11, 3}, 3, 3, 2, 2, 0, 0},
      {"{type: conv2d_transpose, filters: 3, kernel_size: 3, strides: 2, padding: same}",
       Shape{4, 5, 2}, Shape{8, 10, 3}, 3, 3, 2, 2, 0, 0},
      {"{type: conv2d_transpose, filters: 2, kernel_size: [4, 5], strides: [2, 1], padding: "
       "same}",
       Shape{3, 4, 3}, Shape{6, 4, 2}, 4, 5, 2, 1, 1, 2},
      {"{type: conv2d_transpose, filters: 2, kernel_size: 2, strides: 3}", Shape{3, 3, 2},
       Shape{9, 9, 2}, 2, 2, 3, 3, 0, 0},
      {"{type: conv2d_transpose, filters: 4, kernel_size: 3, activation: relu, use_bias: false}",
       Shape{3, 3, 2}, Shape{5, 5, 4}, 3, 3, 1, 1, 0, 0},
      {"{type: conv1d_transpose, filters: 3, kernel_size: 3, strides: 2, padding: same}",
       Shape{5, 4}, Shape{10, 3}, 1, 3, 1, 2, 0, 0},
      // Keras' output_padding: (in - 1) * stride + kernel - 2 * (same ? kernel / 2 : 0) + it.
      {"{type: conv2d_transpose, filters: 2, kernel_size: 3, strides: 2, output_padding: 1}",
       Shape{4, 5, 2}, Shape{10, 12, 2}, 3, 3, 2, 2, 0, 0},
      {"{type: conv2d_transpose, filters: 2, kernel_size: 4, strides: 2, padding: same, "
       "output_padding: 1}",
       Shape{4, 5, 2}, Shape{7, 9, 2}, 4, 4, 2, 2, 1, 1},
      {"{type: conv1d_transpose, filters: 2, kernel_size: 3, strides: 3, output_padding: 2}",
       Shape{5, 2}, Shape{17, 2}, 1, 3, 1, 3, 0, 0},
      // 2,500 windows of 576 floats a sample: a batch of 3 goes through in 2 chunks.
      {"{type: conv2d_transpose, filters: 64, kernel_size: 3, padding: same}", Shape{50, 50, 2},
       Shape{50, 50, 64}, 3, 3, 1, 1, 1, 1}};
  for (const Case& c : cases) {
    const int64_t batch = 3;
    auto model = build(*backend, c.input, c.layer);
    Layer& layer = *model->layers()[0];
    ASSERT_EQ(layer.output_shape(), c.output) << c.layer;
    const auto& e = model->param_entries();
    const bool use_bias = e.size() == 2;
    std::vector<float> x = random_vector(static_cast<size_t>(batch * c.input.numel()), 3);
    std::ranges::copy(random_vector(e[0].count, 4), model->params().begin());
    if (use_bias)
      std::ranges::copy(random_vector(e[1].count, 5), model->params().begin() + e[1].offset);
    DeviceBuffer grads(*backend, model->param_count());
    model->bind_grads(grads.span());
    std::vector<float> y(static_cast<size_t>(batch * c.output.numel()));
    layer.forward(*backend, x.data(), y.data(), batch);

    const std::vector<float> w(model->params().begin(), model->params().begin() + e[0].count);
    const std::vector<float> b =
        use_bias ? std::vector<float>(model->params().begin() + e[1].offset, model->params().end())
                 : std::vector<float>(static_cast<size_t>(c.output.dims().back()));
    std::vector<float> dy = random_vector(y.size(), 6), dz = dy;
    const bool relu = c.layer.find("relu") != std::string::npos;
    for (size_t i = 0; i < dz.size(); ++i) dz[i] = relu && y[i] <= 0 ? 0.0f : dy[i];
    Reference want = by_definition(c, x, w, b, dz, batch);
    if (relu) std::ranges::for_each(want.y, [](double& v) { v = std::max(v, 0.0); });
    expect_near(y, want.y, "y", c.layer);

    std::vector<float> dx(x.size());
    layer.backward(*backend, x.data(), y.data(), dy.data(), dx.data(), batch, false);
    expect_near(dx, want.dx, "dx", c.layer);
    expect_near({grads.data(), grads.data() + e[0].count}, want.dw, "dw", c.layer);
    if (use_bias)
      expect_near({grads.data() + e[1].offset, grads.data() + e[1].offset + e[1].count}, want.db,
                  "db", c.layer);

    // Accumulating (gradient accumulation's later micro-batches) adds the same gradients again.
    dy = random_vector(y.size(), 6);
    layer.backward(*backend, x.data(), y.data(), dy.data(), nullptr, batch, true);
    for (double& v : want.dw) v *= 2;
    for (double& v : want.db) v *= 2;
    expect_near({grads.data() + e[0].offset, grads.data() + e[0].offset + e[0].count}, want.dw,
                "accumulated dw", c.layer);
    if (use_bias)
      expect_near({grads.data() + e[1].offset, grads.data() + e[1].offset + e[1].count}, want.db,
                  "accumulated db", c.layer);
  }
}

// The gradients inside a model against finite differences (a fused tanh, whose derivative is
// smooth: some pixels would lie within the differences' step of ReLU's kink; the test above has
// ReLU; then a transposed layer of one row after a reshape), and the input gradient of the layer
// alone.
TEST(Conv2DTranspose, GradientsMatchFiniteDifferences) {
  expect_softmax_model_gradient_matches(
      Shape{2, 3, 2},
      "{type: conv2d_transpose, filters: 3, kernel_size: 3, strides: 2, padding: "
      "same, activation: tanh}, {type: reshape, target_shape: [24, 3]}, {type: "
      "conv1d_transpose, filters: 2, kernel_size: 2, strides: 2}, {type: flatten}, "
      "{type: dense, units: 3, activation: softmax}");

  auto backend = make_cpu_backend();
  auto alone = build(*backend, Shape{3, 2, 2},
                     "{type: conv2d_transpose, filters: 2, kernel_size: [2, 3], strides: [1, 2], "
                     "activation: tanh}");
  alone->init_params(3);
  DeviceBuffer alone_grads(*backend, alone->param_count());
  alone->bind_grads(alone_grads.span());
  std::vector<float> x = random_vector(2 * 12, 11);
  std::vector<float> y(static_cast<size_t>(2 * alone->layers()[0]->output_shape().numel()));
  expect_input_gradient_matches(*backend, *alone->layers()[0], x, y, 2, 12);
}

// Note [threads per rank]: a rank's threads share the layer's products, bias and activation, and
// the results are the bits of one thread.
TEST(Conv2DTranspose, TheBitsOfOneThreadOnAnyTeam) {
  const int64_t batch = 20;
  const Shape input{9, 7, 5};
  const std::vector<float> x = random_vector(static_cast<size_t>(batch * input.numel()), 21);
  std::vector<std::vector<float>> results[2];
  for (int k = 0; k < 2; ++k) {
    auto backend = make_cpu_backend(true, k == 0 ? 1 : 3);
    auto model = build(*backend, input,
                       "{type: conv2d_transpose, filters: 6, kernel_size: 3, strides: 2, "
                       "padding: same, activation: relu}");
    std::ranges::copy(random_vector(model->param_count(), 22), model->params().begin());
    DeviceBuffer grads(*backend, model->param_count());
    model->bind_grads(grads.span());
    Layer& layer = *model->layers()[0];
    std::vector<float> y(static_cast<size_t>(batch * layer.output_shape().numel()));
    std::vector<float> dy = random_vector(y.size(), 23), dx(x.size());
    layer.forward(*backend, x.data(), y.data(), batch);
    layer.backward(*backend, x.data(), y.data(), dy.data(), dx.data(), batch, false);
    results[k] = {y, dx, {grads.data(), grads.data() + grads.size()}};
  }
  EXPECT_EQ(results[0][0], results[1][0]) << "y";
  EXPECT_EQ(results[0][1], results[1][1]) << "dx";
  EXPECT_EQ(results[0][2], results[1][2]) << "weight and bias gradients";
}

TEST(Conv2DTranspose, ConfigRefusals) {
  EXPECT_EQ(build_error(Shape{6, 2}, "{type: conv2d_transpose, filters: 2, kernel_size: 3}"),
            "c.yaml: model.layers.0: conv2d_transpose needs an input of (height, width, "
            "channels), an image, but gets (6, 2)");
  EXPECT_EQ(build_error(Shape{3, 3, 2}, "{type: conv1d_transpose, filters: 2, kernel_size: 3}"),
            "c.yaml: model.layers.0: conv1d_transpose needs an input of (steps, channels) but "
            "gets (3, 3, 2)");
  EXPECT_NE(build_error(Shape{3, 3, 2}, "{type: conv2d_transpose, kernel_size: 3}").find("filters"),
            std::string::npos);
  EXPECT_EQ(build_error(Shape{3, 3, 2},
                        "{type: conv2d_transpose, filters: 2, kernel_size: 3, "
                        "strides: [2, 3], output_padding: [1, 3]}"),
            "c.yaml: model.layers.0.output_padding: must be >= 0 and below the stride 3, got 3");
  EXPECT_EQ(build_error(Shape{3, 3, 2},
                        "{type: conv2d_transpose, filters: 2, kernel_size: 2, "
                        "strides: 2, padding: same, output_padding: 0}"),
            "c.yaml: model.layers.0.output_padding: the output of 4x4 does not convolve back to "
            "the input's size with padding same and this kernel (Keras refuses it too); use "
            "another output_padding");
  EXPECT_NE(build_error(Shape{3, 3, 2},
                        "{type: conv2d, filters: 2, kernel_size: 3, "
                        "output_padding: 1}")
                .find("model.layers.0.output_padding"),
            std::string::npos);
  EXPECT_NE(build_error(Shape{3, 3, 2},
                        "{type: conv2d_transpose, filters: 2, kernel_size: 3, "
                        "strides: 0}")
                .find("model.layers.0.strides"),
            std::string::npos);
  EXPECT_NE(build_error(Shape{6},
                        "{type: embedding, input_dim: 9, output_dim: 4, mask_zero: true}, "
                        "{type: conv1d_transpose, filters: 2, kernel_size: 2}")
                .find("conv1d_transpose after c.yaml: model.layers.0 (mask_zero)"),
            std::string::npos);
}

// Keras' Conv2DTranspose and Conv1DTranspose both ways, output_padding where set; a dilation
// refused naming the setting.
TEST(Conv2DTranspose, AsKerasConv2DTranspose) {
  const Config config = parse_model_config(
      YAML::Load("{model: {input: [4, 5, 2], layers: [{type: conv2d_transpose, filters: 3, "
                 "kernel_size: [3, 2], strides: [2, 1], padding: same, activation: relu, "
                 "use_bias: false}, {type: reshape, target_shape: [40, 3]}, {type: "
                 "conv1d_transpose, filters: 2, kernel_size: 4, strides: 3, output_padding: 2}]}}"),
      "c.yaml");
  const nlohmann::json layers =
      keras::keras_model_config(config.layers, Shape{4, 5, 2})["config"]["layers"];
  const nlohmann::json& two = layers[1];
  EXPECT_EQ(two["class_name"], "Conv2DTranspose");
  EXPECT_EQ(two["config"]["kernel_size"], nlohmann::json::array({3, 2}));
  EXPECT_EQ(two["config"]["strides"], nlohmann::json::array({2, 1}));
  EXPECT_EQ(two["config"]["padding"], "same");
  EXPECT_EQ(two["config"]["use_bias"], false);
  EXPECT_EQ(layers[3]["class_name"], "Conv1DTranspose");
  EXPECT_EQ(layers[3]["config"]["strides"], nlohmann::json::array({3}));
  EXPECT_EQ(layers[3]["config"]["output_padding"], nlohmann::json::array({2}));
  EXPECT_FALSE(two["config"].contains("output_padding"));  // Keras' None

  const YAML::Node two_back = keras::keras_layer(two, "m.keras: layers[1]").spec->node;
  EXPECT_EQ(two_back["type"].as<std::string>(), "conv2d_transpose");
  EXPECT_EQ(two_back["kernel_size"].as<std::vector<int64_t>>(), (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(two_back["activation"].as<std::string>(), "relu");
  const YAML::Node one_back = keras::keras_layer(layers[3], "m.keras: layers[3]").spec->node;
  EXPECT_EQ(one_back["type"].as<std::string>(), "conv1d_transpose");
  EXPECT_EQ(one_back["kernel_size"].as<int64_t>(), 4);
  EXPECT_EQ(one_back["strides"].as<int64_t>(), 3);
  EXPECT_EQ(one_back["output_padding"].as<int64_t>(), 2);

  nlohmann::json padded = two;
  padded["config"]["output_padding"] = nlohmann::json::array({1, 0});
  EXPECT_EQ(keras::keras_layer(padded, "m.keras: layers[1]")
                .spec->node["output_padding"]
                .as<std::vector<int64_t>>(),
            (std::vector<int64_t>{1, 0}));
  nlohmann::json dilated = two;
  dilated["config"]["dilation_rate"] = nlohmann::json::array({2, 2});
  try {
    keras::keras_layer(dilated, "m.keras: layers[1]");
    ADD_FAILURE() << "dilation_rate taken";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("dilation_rate"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ddp
