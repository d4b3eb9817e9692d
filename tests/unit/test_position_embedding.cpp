// PositionEmbedding: y = x + the table's row of each step, gradients against central finite
// differences (invariant 4), accumulated table gradients, the mask passed on, and its place in a
// model (its name, KerasHub's Glorot init, the refusal of an input without steps); with the
// transformer encoder through the C++ API: a fit, weights saved and loaded, and Keras' files
// refused by name (KerasHub's layers are not Keras').

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "api/keras.h"
#include "api/keras_model_config.h"
#include "core/error.h"
#include "data/dataset.h"
#include "finite_differences.h"
#include "keras_api_fixtures.h"
#include "nn/model_builder.h"
#include "nn/position_embedding.h"

namespace ddp {
namespace {

constexpr int64_t kSteps = 5, kFeatures = 3, kBatch = 4;

TEST(PositionEmbedding, AddsEachStepsRowAndDifferentiates) {
  auto backend = make_cpu_backend();
  PositionEmbedding layer(kSteps, kFeatures);
  std::vector<float> table = random_vector(kSteps * kFeatures, 1), grad(table.size());
  float* params[] = {table.data()};
  float* grads[] = {grad.data()};
  layer.bind(params, grads);
  std::vector<float> x = random_vector(kBatch * kSteps * kFeatures, 2), y(x.size());
  layer.forward(*backend, x.data(), y.data(), kBatch);
  for (size_t i = 0; i < y.size(); ++i)
    EXPECT_EQ(y[i], x[i] + table[i % table.size()]) << "y[" << i << "]";

  const auto objective = expect_input_gradient_matches(*backend, layer, x, y, kBatch, 3);
  expect_matches_finite_differences(objective, table, grad, "dtable");
  const std::vector<float> once = grad;
  std::vector<float> dy = random_vector(y.size(), 3);
  layer.backward(*backend, x.data(), y.data(), dy.data(), nullptr, kBatch, true);
  for (size_t i = 0; i < grad.size(); ++i) EXPECT_NEAR(grad[i], 2 * once[i], 1e-6) << i;

  const std::vector<float> mask(kBatch * kSteps, 1.0f);
  layer.set_input_mask(mask.data());
  EXPECT_EQ(layer.output_mask(), mask.data());
}

TEST(PositionEmbedding, InModelNamesInitAndRefusal) {
  auto backend = make_cpu_backend();
  LayerSpec embedding{"embedding", 8, "linear", "model.layers.0"};
  embedding.vocabulary = 20;
  const LayerSpec positions{"position_embedding", 0, "linear", "model.layers.1"};
  auto model = build_sequential(*backend, Shape{6}, {embedding, positions});
  const ParamEntry& entry = model->param_entries()[1];
  EXPECT_EQ(entry.name, "layers.1.weight");
  EXPECT_EQ(entry.shape, (Shape{6, 8}));
  model->init_params(3);
  const float limit = std::sqrt(6.0f / 14.0f);
  float largest = 0;
  for (size_t i = 0; i < entry.count; ++i)
    largest = std::max(largest, std::abs(model->params()[entry.offset + i]));
  EXPECT_LE(largest, limit);
  EXPECT_GT(largest, 0.8f * limit);  // uniform over the whole range, not Embedding's 0.05
  try {
    build_sequential(*backend, Shape{6}, {positions});
    ADD_FAILURE() << "a flat input was taken";
  } catch (const ConfigError& e) {
    EXPECT_STREQ(e.what(),
                 "model.layers.1: position_embedding needs an input of (steps, features), an "
                 "embedding's output or a sequence, but gets (6)");
  }
}

TEST(PositionEmbedding, WithATransformerThroughTheKerasApi) {
  const Dataset data = make_synthetic_tokens(128, 6, 20, 3, 4);
  const keras::Arrays arrays{{6}, data.features, data.labels};
  const auto model = [] {
    keras::Sequential m({keras::Embedding(20, 8, /*mask_zero=*/true), keras::PositionEmbedding(),
                         keras::TransformerEncoder(12, 2, 0.1, "gelu", 1e-5, true),
                         keras::GlobalAveragePooling1D(), keras::Dense(3, "softmax")},
                        {6});
    m.compile(keras::Adam(0.01), {YAML::Node("sparse_categorical_crossentropy")}, {"accuracy"});
    return m;
  };
  keras::Sequential trained = model();
  const keras::History history = trained.fit(
      world_of_one(), arrays, {.epochs = 3, .batch_size = 32, .seed = 5, .verbose = false});
  EXPECT_LT(history.epochs.back().loss, history.epochs.front().loss);
  const std::string path = ::testing::TempDir() + "transformer.safetensors";
  trained.save_weights(path);
  keras::Sequential other = model();
  other.fit(world_of_one(), arrays, {.epochs = 1, .batch_size = 32, .seed = 6, .verbose = false});
  other.load_weights(path);
  EXPECT_EQ(other.predict(arrays), trained.predict(arrays));
  std::filesystem::remove(path);

  const nlohmann::json hub = nlohmann::json::parse(
      R"({"class_name": "TransformerEncoder", "config": {"name": "transformer_encoder",
          "intermediate_dim": 64, "num_heads": 4}})");
  EXPECT_EQ(error_of<ConfigError>([&] { keras::keras_layer(hub, "m.keras: layers[2]"); }),
            "m.keras: layers[2] (TransformerEncoder): KerasHub's layers are not read from Keras' "
            "configs; ddp.TransformerEncoder and ddp.PositionEmbedding build it");
  LayerSpec positions{"position_embedding", 0, "linear", "model.layers.1"};
  EXPECT_EQ(error_of<ConfigError>([&] {
              keras::keras_model_config({positions}, Shape{6, 8});
            }),
            "model.layers.1: position_embedding is not written to Keras' configs (KerasHub's "
            "layers are not read or written); save its weights as safetensors");
}

}  // namespace
}  // namespace ddp
