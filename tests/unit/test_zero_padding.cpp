// Keras' ZeroPadding2D and ZeroPadding1D (Note [zero padding]) by definition and against finite
// differences, their config keys and refusals, Keras' configs both ways; and a normalization's
// Keras axis counted from the batch's (ResNet50's BatchNormalization(axis=3)).

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <vector>

#include "api/keras_model_config.h"
#include "core/error.h"
#include "finite_differences.h"
#include "model_from_yaml.h"

namespace ddp {
namespace {

struct Padded {
  std::string input, layer;
  int64_t height, width, channels;
  std::array<int64_t, 4> pads;  // top, bottom, left, right
};

// Each output pixel is the input pixel under it or zero, bit for bit; the input gradient is the
// output gradient's pixels over the input (against finite differences too).
TEST(ZeroPadding, PadsByDefinitionAndCropsTheGradient) {
  const Padded cases[] = {
      {"[3, 4, 5]", "{type: zero_padding2d, padding: [[1, 2], [0, 3]]}", 3, 4, 5, {1, 2, 0, 3}},
      {"[3, 4, 5]", "{type: zero_padding2d, padding: [2, 1]}", 3, 4, 5, {2, 2, 1, 1}},
      {"[3, 4, 5]", "{type: zero_padding2d}", 3, 4, 5, {1, 1, 1, 1}},  // Keras' default
      {"[6, 3]", "{type: zero_padding1d, padding: [2, 0]}", 1, 6, 3, {0, 0, 2, 0}},
      {"[6, 3]", "{type: zero_padding1d, padding: 3}", 1, 6, 3, {0, 0, 3, 3}}};
  auto backend = make_cpu_backend();
  const int64_t batch = 2;
  for (const Padded& c : cases) {
    auto model = build(*backend, Shape(YAML::Load(c.input).as<std::vector<int64_t>>()), c.layer);
    Layer& layer = *model->layers()[0];
    const auto [top, bottom, left, right] = c.pads;
    const int64_t out_h = c.height + top + bottom, out_w = c.width + left + right;
    EXPECT_EQ(layer.output_shape().numel(), out_h * out_w * c.channels) << c.layer;
    auto x = random_vector(static_cast<size_t>(batch * c.height * c.width * c.channels), 4);
    std::vector<float> y(static_cast<size_t>(batch * out_h * out_w * c.channels), -1.0f);
    layer.forward(*backend, x.data(), y.data(), batch);
    auto dy = random_vector(y.size(), 5);
    std::vector<float> dx(x.size(), -1.0f);
    const std::vector<float> given = dy;
    layer.backward(*backend, x.data(), y.data(), dy.data(), dx.data(), batch, false);
    size_t at = 0;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t h = 0; h < out_h; ++h)
        for (int64_t w = 0; w < out_w; ++w)
          for (int64_t ch = 0; ch < c.channels; ++ch, ++at) {
            const int64_t ih = h - top, iw = w - left;
            const bool inside = ih >= 0 && ih < c.height && iw >= 0 && iw < c.width;
            const size_t from =
                static_cast<size_t>(((b * c.height + ih) * c.width + iw) * c.channels + ch);
            ASSERT_EQ(y[at], inside ? x[from] : 0.0f) << c.layer << " y[" << at << "]";
            if (!inside) continue;
            ASSERT_EQ(dx[from], given[at]) << c.layer << " dx[" << from << "]";
          }
    expect_input_gradient_matches(*backend, layer, x, y, batch, 12);
  }
}

std::string model_error(const std::string& input, const std::string& layers) {
  return build_error(Shape(YAML::Load(input).as<std::vector<int64_t>>()), layers);
}

TEST(ZeroPadding, ConfigRefusals) {
  EXPECT_EQ(model_error("[3, 4, 2]", "{type: zero_padding2d, padding: -1}"),
            "c.yaml: model.layers.0.padding: must be >= 0, got -1");
  EXPECT_EQ(model_error("[3, 4, 2]", "{type: zero_padding2d, padding: [[1, 2], [3, -4]]}"),
            "c.yaml: model.layers.0.padding: must be >= 0, got -4");
  EXPECT_EQ(model_error("[3, 4, 2]", "{type: zero_padding2d, padding: [[1, 2, 3], [3, 4]]}"),
            "c.yaml: model.layers.0.padding: expected one integer, [rows, columns] or [[top, "
            "bottom], [left, right]]");
  EXPECT_NE(model_error("[3, 4, 2]", "{type: zero_padding2d, padding: [1, 2, 3]}")
                .find("model.layers.0.padding: expected one integer or a list of two"),
            std::string::npos);
  // ZeroPadding1D takes no pair of pairs: its steps are one axis.
  EXPECT_NE(model_error("[6, 2]", "{type: zero_padding1d, padding: [[1, 2], [3, 4]]}")
                .find("model.layers.0.padding"),
            std::string::npos);
  EXPECT_EQ(model_error("[6, 2]", "{type: zero_padding2d}"),
            "c.yaml: model.layers.0: zero_padding2d needs an input of (height, width, channels), "
            "an image, but gets (6, 2)");
  EXPECT_EQ(model_error("[3, 4, 2]", "{type: zero_padding2d, pading: 1}").find("pading") !=
                std::string::npos,
            true);
}

// Keras' ZeroPadding2D (channels_last) and ZeroPadding1D both ways: the sides kept, and Keras'
// integer and pair forms read.
TEST(ZeroPadding, AsKerasZeroPadding) {
  const Config config = model_config(Shape{3, 4, 2},
                                     "{type: zero_padding2d, padding: [[1, 2], [0, 3]]}, "
                                     "{type: reshape, target_shape: [42, 2]}, "
                                     "{type: zero_padding1d, padding: [2, 0]}");
  const nlohmann::json keras = keras::keras_model_config(config.layers, Shape{3, 4, 2});
  const nlohmann::json& two = keras["config"]["layers"][1];
  EXPECT_EQ(two["class_name"], "ZeroPadding2D");
  EXPECT_EQ(two["config"]["padding"], nlohmann::json::parse("[[1, 2], [0, 3]]"));
  EXPECT_EQ(two["config"]["data_format"], "channels_last");
  EXPECT_EQ(keras["config"]["layers"][3]["config"]["padding"], nlohmann::json::parse("[2, 0]"));
  const keras::KerasModel back = keras::keras_model_from_config(keras, "m.keras", false);
  ASSERT_EQ(back.layers.size(), 3u);
  EXPECT_EQ(back.layers[0].node["padding"].as<std::vector<std::vector<int64_t>>>(),
            (std::vector<std::vector<int64_t>>{{1, 2}, {0, 3}}));
  EXPECT_EQ(back.layers[2].node["padding"].as<std::vector<int64_t>>(),
            (std::vector<int64_t>{2, 0}));
  nlohmann::json one = two;
  one["config"]["padding"] = 3;  // Keras' int: every side
  EXPECT_EQ(keras::keras_layer(one, "m.keras: layers[1]")
                .spec->node["padding"]
                .as<std::vector<int64_t>>(),
            (std::vector<int64_t>{3, 3}));
  one["config"]["data_format"] = "channels_first";
  EXPECT_THROW(keras::keras_layer(one, "m.keras: layers[1]"), ConfigError);
}

// Keras' axis of a normalization counted from the batch's: the input's last is the only one.
TEST(ZeroPadding, NormalizationAxisCountedFromTheBatch) {
  EXPECT_EQ(model_error("[3, 4, 2]", "{type: batch_normalization, axis: 3}"), "");
  EXPECT_EQ(model_error("[3, 4, 2]", "{type: layer_normalization, axis: -1}"), "");
  EXPECT_EQ(model_error("[3, 4, 2]", "{type: batch_normalization, axis: 2}"),
            "c.yaml: model.layers.0.axis: 2 of an input (3, 4, 2) (and the batch's axis 0) is not "
            "its last axis, 3 (or -1), over which batch_normalization normalizes");
  EXPECT_EQ(model_error("[3, 4, 2]", "{type: rms_normalization, axis: 0}"),
            "c.yaml: model.layers.0.axis: normalizes over the last axis: -1, or its number "
            "counting the batch's 0, not 0");
  nlohmann::json norm = {{"class_name", "BatchNormalization"}, {"config", {{"axis", {3}}}}};
  EXPECT_EQ(keras::keras_layer(norm, "m.keras: layers[1]").spec->node["axis"].as<int64_t>(), 3);
  norm["config"]["axis"] = -2;
  EXPECT_THROW(keras::keras_layer(norm, "m.keras: layers[1]"), ConfigError);
}

}  // namespace
}  // namespace ddp
