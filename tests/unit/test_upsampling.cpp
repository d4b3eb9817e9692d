// Keras' UpSampling2D and UpSampling1D (Note [upsampling], Note [bilinear upsampling]): the
// layers by definition and against finite differences, the config's keys and refusals, and
// Keras' configs both ways.

#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "api/keras_model_config.h"
#include "core/error.h"
#include "finite_differences.h"
#include "nn/bilinear_upsampling2d.h"
#include "nn/model_builder.h"
#include "nn/upsampling2d.h"
#include "train/config.h"

namespace ddp {
namespace {

// Note [upsampling]: each output pixel is its block's input pixel, bit for bit (no mean's
// division and product), and the gradients match finite differences (each block's dy summed).
TEST(UpSampling, RepeatsEachPixelOverItsBlockAndSumsTheBlocksGradients) {
  auto backend = make_cpu_backend();
  const int64_t channels = 19, batch = 2, height = 3, width = 4;
  for (const auto& [size_h, size_w, one_row] :
       {std::tuple{2, 2, false}, std::tuple{3, 2, false}, std::tuple{1, 3, true}}) {
    const int64_t rows = one_row ? 1 : height;
    const Window2d blocks = Window2d::make(rows * size_h, width * size_w, channels, size_h, size_w,
                                           size_h, size_w, false);
    UpSampling2D layer(blocks, one_row);
    EXPECT_EQ(layer.output_shape(), one_row ? Shape({width * size_w, channels})
                                            : Shape({height * size_h, width * size_w, channels}));
    std::vector<float> x = random_vector(static_cast<size_t>(batch * rows * width * channels), 41);
    std::vector<float> y(static_cast<size_t>(batch * layer.output_shape().numel()), -1.0f);
    layer.forward(*backend, x.data(), y.data(), batch);
    size_t at = 0;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t h = 0; h < rows * size_h; ++h)
        for (int64_t v = 0; v < width * size_w; ++v)
          for (int64_t c = 0; c < channels; ++c, ++at)
            ASSERT_EQ(y[at], x[static_cast<size_t>(
                                 ((b * rows + h / size_h) * width + v / size_w) * channels + c)])
                << "y[" << at << "], size " << size_h << "x" << size_w;
    expect_input_gradient_matches(*backend, layer, x, y, batch, 12);
  }
}

// Note [bilinear upsampling]: each output pixel against the definition in double (half-pixel
// centres, the edges clamped; PyTorch's and TensorFlow's formula), by axis sizes that scale one
// axis, both and neither; the input gradient against finite differences; each interpolation
// row's weights sum to 1.
TEST(UpSampling, BilinearByDefinitionAndItsGradient) {
  auto backend = make_cpu_backend();
  const int64_t height = 4, width = 5, channels = 3, batch = 2;
  for (const auto& [size_h, size_w] : {std::pair{2, 2}, std::pair{3, 1}, std::pair{1, 4}}) {
    BilinearUpSampling2D layer(Shape{height, width, channels}, size_h, size_w);
    const int64_t out_h = height * size_h, out_w = width * size_w;
    ASSERT_EQ(layer.output_shape(), Shape({out_h, out_w, channels}));
    std::vector<float> x = random_vector(static_cast<size_t>(batch * height * width * channels), 5);
    std::vector<float> y(static_cast<size_t>(batch * out_h * out_w * channels));
    layer.forward(*backend, x.data(), y.data(), batch);
    const auto taps = [](int64_t o, int64_t size, int64_t in) {
      const double src = std::max((o + 0.5) / static_cast<double>(size) - 0.5, 0.0);
      const auto lower = static_cast<int64_t>(src);
      return std::tuple{lower, std::min(lower + 1, in - 1), src - static_cast<double>(lower)};
    };
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t i = 0; i < out_h; ++i)
        for (int64_t j = 0; j < out_w; ++j)
          for (int64_t c = 0; c < channels; ++c) {
            const auto [h0, h1, fh] = taps(i, size_h, height);
            const auto [w0, w1, fw] = taps(j, size_w, width);
            const auto at = [&](int64_t h, int64_t w) {
              return static_cast<double>(
                  x[static_cast<size_t>(((b * height + h) * width + w) * channels + c)]);
            };
            const double want = (1 - fh) * ((1 - fw) * at(h0, w0) + fw * at(h0, w1)) +
                                fh * ((1 - fw) * at(h1, w0) + fw * at(h1, w1));
            ASSERT_NEAR(y[static_cast<size_t>(((b * out_h + i) * out_w + j) * channels + c)], want,
                        1e-6)
                << "y[" << b << ", " << i << ", " << j << ", " << c << "], size " << size_h << "x"
                << size_w;
          }
    expect_input_gradient_matches(*backend, layer, x, y, batch, 13);
  }
  const std::vector<float> a = BilinearUpSampling2D::interpolation(3, 4);
  for (size_t row = 0; row < 12; ++row)
    EXPECT_FLOAT_EQ(a[row * 3] + a[row * 3 + 1] + a[row * 3 + 2], 1.0f) << "row " << row;
}

// The model's layers from YAML (model.input, model.layers) through the config parser and the
// builder; the ConfigError's message, or "" when it builds.
std::string build_error(const std::string& model, std::vector<int64_t>* output = nullptr) {
  try {
    const Config config = parse_model_config(YAML::Load(model), "c.yaml");
    auto backend = make_cpu_backend();
    const auto built = build_sequential(*backend, Shape(*config.input_shape), config.layers);
    if (output) *output = built->layers().back()->output_shape().dims();
    return "";
  } catch (const ConfigError& e) {
    return e.what();
  }
}

TEST(UpSampling, ConfigKeysAndRefusals) {
  std::vector<int64_t> output;
  EXPECT_EQ(
      build_error("{model: {input: [3, 4, 2], layers: [{type: up_sampling2d, size: [2, 3]}]}}",
                  &output),
      "");
  EXPECT_EQ(output, (std::vector<int64_t>{6, 12, 2}));
  EXPECT_EQ(build_error("{model: {input: [3, 4, 2], layers: [{type: up_sampling2d}]}}", &output),
            "");
  EXPECT_EQ(output, (std::vector<int64_t>{6, 8, 2}));  // Keras' default size 2
  EXPECT_EQ(
      build_error("{model: {input: [5, 2], layers: [{type: up_sampling1d, size: 3}]}}", &output),
      "");
  EXPECT_EQ(output, (std::vector<int64_t>{15, 2}));
  EXPECT_EQ(build_error("{model: {input: [3, 4, 2], layers: [{type: up_sampling2d, size: [2, 3], "
                        "interpolation: bilinear}]}}",
                        &output),
            "");
  EXPECT_EQ(output, (std::vector<int64_t>{6, 12, 2}));
  EXPECT_NE(build_error("{model: {input: [3, 4, 2], layers: [{type: up_sampling2d, "
                        "interpolation: bicubic}]}}")
                .find("model.layers.0.interpolation"),
            std::string::npos);
  EXPECT_NE(build_error("{model: {input: [5, 2], layers: [{type: up_sampling1d, "
                        "interpolation: bilinear}]}}")
                .find("model.layers.0.interpolation"),
            std::string::npos);
  EXPECT_EQ(build_error("{model: {input: [5, 2], layers: [{type: up_sampling2d, interpolation: "
                        "bilinear}]}}"),
            "c.yaml: model.layers.0: up_sampling2d needs an input of (height, width, channels), "
            "an image, but gets (5, 2)");
  EXPECT_NE(build_error("{model: {input: [3, 4, 2], layers: [{type: up_sampling2d, size: 0}]}}")
                .find("model.layers.0.size"),
            std::string::npos);
  EXPECT_EQ(build_error("{model: {input: [5, 2], layers: [{type: up_sampling2d}]}}"),
            "c.yaml: model.layers.0: up_sampling2d needs an input of (height, width, channels), "
            "an image, but gets (5, 2)");
  EXPECT_NE(build_error("{model: {input: [6], layers: [{type: embedding, input_dim: 9, output_dim: "
                        "4, mask_zero: true}, {type: up_sampling1d}]}}")
                .find("up_sampling1d after c.yaml: model.layers.0 (mask_zero)"),
            std::string::npos);
}

LayerSpec upsampling(const std::string& type, std::array<int64_t, 2> size) {
  LayerSpec s;
  s.type = type;
  s.window = size;
  s.path = "c.yaml: model.layers.0";
  return s;
}

// Keras' UpSampling2D (channels_last, nearest or bilinear) and UpSampling1D both ways, their sizes
// and interpolations kept; other interpolations refused naming the key.
TEST(UpSampling, AsKerasUpSampling) {
  const nlohmann::json two = keras::keras_model_config({upsampling("up_sampling2d", {2, 3})},
                                                       Shape{3, 4, 2})["config"]["layers"][1];
  EXPECT_EQ(two["class_name"], "UpSampling2D");
  EXPECT_EQ(two["config"]["size"], nlohmann::json::array({2, 3}));
  EXPECT_EQ(two["config"]["interpolation"], "nearest");
  const YAML::Node two_back = keras::keras_layer(two, "m.keras: layers[1]").spec->node;
  EXPECT_EQ(two_back["type"].as<std::string>(), "up_sampling2d");
  EXPECT_EQ(two_back["size"].as<std::vector<int64_t>>(), (std::vector<int64_t>{2, 3}));
  const nlohmann::json one = keras::keras_model_config({upsampling("up_sampling1d", {1, 3})},
                                                       Shape{5, 2})["config"]["layers"][1];
  EXPECT_EQ(one["class_name"], "UpSampling1D");
  EXPECT_EQ(one["config"]["size"], 3);
  EXPECT_EQ(keras::keras_layer(one, "m.keras: layers[1]").spec->node["size"].as<int64_t>(), 3);

  LayerSpec bilinear = upsampling("up_sampling2d", {2, 2});
  bilinear.bilinear = true;
  const nlohmann::json smooth =
      keras::keras_model_config({bilinear}, Shape{3, 4, 2})["config"]["layers"][1];
  EXPECT_EQ(smooth["config"]["interpolation"], "bilinear");
  EXPECT_EQ(keras::keras_layer(smooth, "m.keras: layers[1]")
                .spec->node["interpolation"]
                .as<std::string>(),
            "bilinear");

  nlohmann::json bicubic = two;
  bicubic["config"]["interpolation"] = "bicubic";
  YAML::Node root(YAML::NodeType::Map);
  root["model"]["input"] = std::vector<int64_t>{3, 4, 2};
  root["model"]["layers"].push_back(keras::keras_layer(bicubic, "m.keras: layers[1]").spec->node);
  try {
    parse_model_config(root, "m.keras");
    ADD_FAILURE() << "bicubic taken";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("interpolation"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ddp
