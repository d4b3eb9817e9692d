// Keras' Masking (Note [padding masks]): padding steps found, zeroed and marked as worked out by
// hand, the same bits on a team of threads, recurrent layers above it skipping those steps, where
// the model builder lets its mask go, and Keras' config both ways.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "api/keras_model_config.h"
#include "core/error.h"
#include "finite_differences.h"
#include "nn/masking.h"
#include "nn/model_builder.h"
#include "nn/sequential.h"

namespace ddp {
namespace {

// A step is padding where all its features equal mask_value (one equal feature is not enough).
TEST(Masking, ZeroesAndMarksTheStepsOfMaskValueAlone) {
  auto backend = make_cpu_backend();
  Masking masking(Shape{3, 2}, -1.0f);
  EXPECT_EQ(masking.type_name(), "Masking");
  EXPECT_EQ(masking.output_shape(), (Shape{3, 2}));
  const std::vector<float> x = {1, 2, -1, -1, -1, 5, -1, -1, -1, -1, 0, 0};  // (2, steps 3, 2)
  std::vector<float> y(12), dy = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, dx(12, 99.0f);
  masking.forward(*backend, x.data(), y.data(), 2);
  EXPECT_EQ(y, (std::vector<float>{1, 2, 0, 0, -1, 5, 0, 0, 0, 0, 0, 0}));
  const std::vector<float> mask(masking.output_mask(), masking.output_mask() + 6);
  EXPECT_EQ(mask, (std::vector<float>{1, 0, 1, 0, 0, 1}));
  masking.backward(*backend, x.data(), y.data(), dy.data(), dx.data(), 2, false);
  EXPECT_EQ(dx, (std::vector<float>{1, 2, 0, 0, 5, 6, 0, 0, 0, 0, 11, 12}));
}

// Note [threads per rank]: each share of rows reads and writes its own rows of x, the mask and y.
TEST(Masking, BitsDoNotDependOnTheThreads) {
  const int64_t rows = 20000, width = 8;
  std::vector<float> x = random_vector(rows * width, 7);
  for (int64_t r = 0; r < rows; r += 3) std::fill_n(x.begin() + r * width, width, 0.0f);
  const std::vector<float> dy = random_vector(rows * width, 8);
  const auto run = [&](int threads) {
    auto backend = make_cpu_backend(true, threads);
    std::vector<float> mask(rows), y(x.size()), dx(x.size());
    backend->masking_forward(x.data(), 0.0f, mask.data(), y.data(), rows, width);
    backend->masking_backward(mask.data(), dy.data(), dx.data(), rows, width);
    y.insert(y.end(), mask.begin(), mask.end());
    y.insert(y.end(), dx.begin(), dx.end());
    return y;
  };
  const std::vector<float> one = run(1);
  EXPECT_EQ(one, run(2));
  EXPECT_EQ(one[rows * width], 0.0f);      // row 0's mask: padding
  EXPECT_EQ(one[rows * width + 1], 1.0f);  // row 1's: real
}

LayerSpec spec(const std::string& type, int64_t units, bool sequences, int index) {
  LayerSpec s;
  s.type = type;
  s.units = units;
  s.return_sequences = sequences;
  s.activation = type == "dense" ? "tanh" : type == "simple_rnn" ? "tanh" : "linear";
  s.path = "c.yaml: model.layers." + std::to_string(index);
  return s;
}

// Recurrent layers above skip its padding steps, through a dense layer at each step and its GELU
// (a layer of its own) between: [a, pad, b, pad] and [pad, a, b, pad] read as [a, b, pad, pad];
// without the masking layer, they do not.
TEST(Masking, RecurrentLayersAboveSkipItsPaddingSteps) {
  auto backend = make_cpu_backend();
  for (const bool masked : {true, false}) {
    SCOPED_TRACE(masked ? "masking" : "no masking");
    LayerSpec per_step = spec("dense", 5, false, 1);
    per_step.activation = "gelu";
    std::vector<LayerSpec> specs = {per_step, spec("gru", 4, true, 2), spec("lstm", 3, false, 3),
                                    spec("dense", 2, false, 4)};
    if (masked) specs.insert(specs.begin(), spec("masking", 0, false, 0));
    auto model = build_sequential(*backend, Shape{4, 2}, specs);
    model->init_params(13);
    const std::vector<float> a = {0.5f, -1}, b = {2, 0.25f}, pad = {0, 0};
    std::vector<float> x;
    for (const auto* step : {&a, &b, &pad, &pad, &a, &pad, &b, &pad, &pad, &a, &b, &pad})
      x.insert(x.end(), step->begin(), step->end());
    const float* out = model->predict(x.data(), 3);
    const std::vector<float> y(out, out + 6);
    EXPECT_EQ(y[0] == y[2] && y[1] == y[3] && y[0] == y[4] && y[1] == y[5], masked);
  }
}

TEST(Masking, ItsMaskGoesOnlyWhereItIsTaken) {
  auto backend = make_cpu_backend();
  const auto refusal = [&](const Shape& input, const std::vector<LayerSpec>& specs) {
    try {
      const std::string origin = build_sequential(*backend, input, specs)->output_mask_origin();
      // A mask that reaches the output is the loss's to take or refuse (Note [masked positions]).
      return "accepted" + (origin.empty() ? "" : ", its mask at the output from " + origin);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
  };
  EXPECT_EQ(refusal(Shape{5, 3},
                    {spec("masking", 0, false, 0), spec("dropout", 0, false, 1),
                     spec("global_average_pooling1d", 0, false, 2), spec("dense", 2, false, 3)}),
            "accepted");
  EXPECT_EQ(
      refusal(Shape{5, 3}, {spec("masking", 0, false, 0), spec("flatten", 0, false, 1),
                            spec("dense", 2, false, 2)}),
      "c.yaml: model.layers.1: flatten after c.yaml: model.layers.0 (masking): the padding "
      "mask reaches it, and only recurrent layers, global_average_pooling1d, transformer_encoder, "
      "position_embedding and layers of one step at a time (dense, dropout, activations, "
      "layer_normalization, rms_normalization) take masks here");
  EXPECT_EQ(refusal(Shape{5, 3}, {spec("masking", 0, false, 0), spec("lstm", 3, true, 1)}),
            "accepted, its mask at the output from c.yaml: model.layers.0");
  EXPECT_EQ(refusal(Shape{15}, {spec("masking", 0, false, 0), spec("dense", 2, false, 1)}),
            "c.yaml: model.layers.0: masking needs an input of (steps, features), a sequence, but "
            "gets (15)");
}

// Keras' Masking both ways, its mask_value kept.
TEST(Masking, AsKerasMasking) {
  LayerSpec masking = spec("masking", 0, false, 0);
  masking.mask_value = -2.5f;
  const nlohmann::json described = keras::keras_model_config({masking, spec("lstm", 3, false, 1)},
                                                             Shape({4, 2}))["config"]["layers"][1];
  EXPECT_EQ(described["class_name"], "Masking");
  EXPECT_EQ(described["config"]["mask_value"], -2.5);
  const keras::KerasLayer back = keras::keras_layer(described, "m.keras: layers[1]");
  ASSERT_TRUE(back.spec.has_value());
  EXPECT_EQ(back.spec->node["type"].as<std::string>(), "masking");
  EXPECT_EQ(back.spec->node["mask_value"].as<double>(), -2.5);
}

}  // namespace
}  // namespace ddp
