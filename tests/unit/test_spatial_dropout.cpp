// Keras' SpatialDropout1D and SpatialDropout2D: each sample's channels dropped (and the rest
// scaled) at all their steps or pixels alike, about `rate` of them, the same mask for the gradient
// and for a sample wherever a rank's rows split the batch; the model builder's checks and Keras'
// configs both ways.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api/keras_model_config.h"
#include "core/error.h"
#include "finite_differences.h"
#include "nn/dropout.h"
#include "nn/model_builder.h"

namespace ddp {
namespace {

// Over (steps, channels) and (height, width, channels): every column of a sample's channel is
// all zeros or all x / (1 - rate); about `rate` of the columns are zeros.
TEST(SpatialDropout, DropsWholeChannelsAndScalesTheRest) {
  auto backend = make_cpu_backend();
  for (const Shape& shape : {Shape{6, 50}, Shape{2, 3, 50}}) {
    SCOPED_TRACE(shape.str());
    Dropout layer(shape, 0.3f, /*spatial=*/true);
    EXPECT_EQ(layer.type_name(), shape.rank() == 2 ? "SpatialDropout1D" : "SpatialDropout2D");
    const int64_t batch = 40, channels = 50, steps = shape.numel() / channels;
    const std::vector<float> x = random_vector(batch * shape.numel(), 3, 0.5f, 1.5f);
    std::vector<float> y(x.size()), dy(x.size(), 1.0f), dx(x.size());
    layer.set_pass({true, 42, 1000, {}});
    layer.forward(*backend, x.data(), y.data(), batch);
    layer.backward(*backend, x.data(), y.data(), dy.data(), dx.data(), batch, false);
    int dropped = 0;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t c = 0; c < channels; ++c) {
        const auto at = [&](int64_t s) {
          return static_cast<size_t>((b * steps + s) * channels + c);
        };
        const bool gone = y[at(0)] == 0;
        dropped += gone;
        for (int64_t s = 0; s < steps; ++s) {
          ASSERT_FLOAT_EQ(y[at(s)], gone ? 0.0f : x[at(s)] / 0.7f) << b << " " << c << " " << s;
          ASSERT_EQ(dx[at(s)], gone ? 0.0f : 1.0f / 0.7f);
        }
      }
    EXPECT_NEAR(dropped / static_cast<double>(batch * channels), 0.3, 0.04);
    layer.set_pass({});  // inference
    layer.forward(*backend, x.data(), y.data(), batch);
    EXPECT_EQ(y, x);
  }
}

// Note [dropout mask]: rows [0, 20) and [20, 50) of a batch at position 1000 draw the mask of all
// 50 at once, so N ranks drop what one rank does; another key draws another.
TEST(SpatialDropout, MaskDependsOnPositionNotOnHowRowsAreSplit) {
  auto backend = make_cpu_backend();
  const int64_t size = 5 * 16;
  Dropout layer(Shape{5, 16}, 0.5f, /*spatial=*/true);
  const std::vector<float> x(50 * size, 1.0f);
  std::vector<float> whole(x.size()), split(x.size()), other(x.size());
  layer.set_pass({true, 7, 1000, {}});
  layer.forward(*backend, x.data(), whole.data(), 50);
  layer.forward(*backend, x.data(), split.data(), 20);
  layer.set_pass({true, 7, 1020, {}});
  layer.forward(*backend, x.data() + 20 * size, split.data() + 20 * size, 30);
  EXPECT_EQ(whole, split);
  layer.set_pass({true, 8, 1000, {}});
  layer.forward(*backend, x.data(), other.data(), 50);
  EXPECT_NE(whole, other);
}

LayerSpec spec(const std::string& type, int64_t units = 0) {
  LayerSpec s;
  s.type = type;
  s.units = units;
  s.rate = type.starts_with("spatial") ? 0.2f : 0.0f;
  s.vocabulary = 9;
  s.path = "c.yaml: model.layers.1";
  return s;
}

// SpatialDropout1D takes (steps, channels) and passes a padding mask on (Keras' does);
// SpatialDropout2D takes images.
TEST(SpatialDropout, BuilderChecksTheInputAndPassesTheMask) {
  auto backend = make_cpu_backend();
  LayerSpec embedding = spec("embedding", 4);
  embedding.mask_zero = true;
  const auto model = build_sequential(
      *backend, Shape{6}, {embedding, spec("spatial_dropout1d"), spec("gru", 3), spec("dense", 2)});
  EXPECT_EQ(model->layers()[1]->describe(), "SpatialDropout1D 0.2");
  model->init_params(3);
  const std::vector<float> ids = {3, 0, 5, 0, 0, 0, 3, 5, 0, 0, 0, 0};  // the GRU skips the 0s
  const float* out = model->predict(ids.data(), 2);
  EXPECT_EQ(out[0], out[2]);
  EXPECT_EQ(out[1], out[3]);
  try {
    build_sequential(*backend, Shape{6, 4}, {spec("spatial_dropout2d"), spec("flatten")});
    ADD_FAILURE();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "c.yaml: model.layers.1: spatial_dropout2d needs an input of "
              "(height, width, channels), an image, but gets (6, 4)");
  }
}

// Keras' SpatialDropout1D and SpatialDropout2D (channels_last) both ways, their rates kept.
TEST(SpatialDropout, AsKerasSpatialDropout) {
  for (const auto& [type, keras_name] : {std::pair{"spatial_dropout1d", "SpatialDropout1D"},
                                         std::pair{"spatial_dropout2d", "SpatialDropout2D"}}) {
    LayerSpec dropout = spec(type);
    dropout.rate = 0.25f;
    const Shape input = std::string(type) == "spatial_dropout1d" ? Shape{4, 3} : Shape{2, 2, 3};
    const nlohmann::json described = keras::keras_model_config(
        {dropout, spec("flatten"), spec("dense", 2)}, input)["config"]["layers"][1];
    EXPECT_EQ(described["class_name"], keras_name);
    EXPECT_EQ(described["config"]["rate"], 0.25);
    const keras::KerasLayer back = keras::keras_layer(described, "m.keras: layers[1]");
    ASSERT_TRUE(back.spec.has_value());
    EXPECT_EQ(back.spec->node["type"].as<std::string>(), type);
    EXPECT_EQ(back.spec->node["rate"].as<double>(), 0.25);
  }
}

}  // namespace
}  // namespace ddp
