// Frozen layers (Note [frozen layers]): their parameters kept with the buffers and never changed,
// while the layers above them train as a model of those layers alone would on the frozen layers'
// outputs.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "api/keras.h"
#include "core/error.h"
#include "finite_differences.h"
#include "keras_api_fixtures.h"
#include "nn/model_builder.h"
#include "train/config_reader.h"
#include "train/trainer.h"

namespace ddp {
namespace {

// 6 features -> `layers` -> 4 classes, SGD with momentum and decoupled weight decay (a step
// that would move a frozen parameter even where its gradient were zero), 3 epochs of 8 steps.
Config frozen_config(const std::string& layers) {
  YAML::Node root = YAML::Load(R"(
seed: 5
data:
  train: {type: synthetic, samples: 256, features: 6, classes: 4}
model:
  input: [6]
  layers: )" + layers + R"(
loss: sparse_categorical_crossentropy
optimizer: {type: sgd, learning_rate: 0.1, momentum: 0.9, weight_decay: 0.05, rule: keras}
training: {epochs: 3, global_batch_size: 32}
)");
  return parse_config(root, "frozen.yaml");
}

TEST(FrozenLayers, KeepTheirParametersWhileTheRestTrain) {
  const Config config = frozen_config(R"([
    {type: dense, units: 12, activation: relu, trainable: false},
    {type: batch_normalization, trainable: false},
    {type: dense, units: 10, activation: tanh},
    {type: layer_normalization, trainable: false},
    {type: dense, units: 4, activation: softmax}])");
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  Trainer trainer(config, *comm, *backend, load_dataset(config.train_data, 0), std::nullopt);
  const Sequential& model = trainer.model();
  // Trained: the two trained dense layers alone; the frozen ones are buffers, named as parameters.
  EXPECT_EQ(model.param_count(), 12u * 10 + 10 + 10u * 4 + 4);
  std::vector<std::string> frozen;
  for (const ParamEntry& e : model.buffer_entries())
    if (e.frozen) frozen.push_back(e.name);
  EXPECT_EQ(frozen,
            (std::vector<std::string>{"layers.0.weight", "layers.0.bias", "layers.1.weight",
                                      "layers.1.bias", "layers.3.weight", "layers.3.bias"}));
  const std::string summary = model.summary();
  EXPECT_NE(summary.find("layers.1 (BatchNormalization, frozen)"), std::string::npos) << summary;
  EXPECT_NE(summary.find("non-trainable (frozen layers, running statistics)"), std::string::npos)
      << summary;

  const std::vector<float> params = trainer.params_to_host();
  const std::vector<float> buffers = trainer.buffers_to_host();
  trainer.fit();
  // Frozen parameters and the frozen BatchNormalization's running statistics, bit for bit.
  EXPECT_EQ(trainer.buffers_to_host(), buffers);
  const std::vector<float> trained = trainer.params_to_host();
  size_t moved = 0;
  for (size_t i = 0; i < params.size(); ++i) moved += trained[i] != params[i];
  EXPECT_GT(moved, params.size() * 9 / 10);
}

// A frozen first layer, relu(x W0 + b0), is a fixed change of the features: the layers above it
// train as the same layers without it would on those features, from the same weights.
TEST(FrozenLayers, TrainTheRestAsAModelOfTheFrozenLayersOutputs) {
  const Config config = frozen_config(R"([
    {type: dense, units: 12, activation: relu, trainable: false},
    {type: dense, units: 10, activation: tanh},
    {type: dense, units: 4, activation: softmax}])");
  const Config head = frozen_config(R"([
    {type: dense, units: 10, activation: tanh},
    {type: dense, units: 4, activation: softmax}])");
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  const Dataset data = load_dataset(config.train_data, 0);
  Trainer trainer(config, *comm, *backend, data, std::nullopt);

  // The frozen layer's outputs, computed here in double from its weights.
  const std::vector<float> frozen = trainer.buffers_to_host();  // W0 (12, 6), then b0
  Dataset features = data;
  const int64_t samples = static_cast<int64_t>(data.labels.size());
  features.sample_shape = Shape{12};
  features.features.assign(static_cast<size_t>(samples * 12), 0.0f);
  for (int64_t s = 0; s < samples; ++s)
    for (int64_t o = 0; o < 12; ++o) {
      double sum = frozen[static_cast<size_t>(12 * 6 + o)];
      for (int64_t i = 0; i < 6; ++i)
        sum += static_cast<double>(frozen[static_cast<size_t>(o * 6 + i)]) *
               data.features[static_cast<size_t>(s * 6 + i)];
      features.features[static_cast<size_t>(s * 12 + o)] = static_cast<float>(std::max(sum, 0.0));
    }
  Config head_config = head;
  head_config.input_shape = std::vector<int64_t>{12};
  Trainer reference(head_config, *comm, *backend, features, std::nullopt);
  // Both trained flat buffers hold the two upper layers, in the same order.
  const std::vector<float> start = trainer.params_to_host();
  ASSERT_EQ(start.size(), reference.params_to_host().size());
  reference.load_params(start, {});

  trainer.fit();
  reference.fit();
  const std::vector<float> ours = trainer.params_to_host();
  const std::vector<float> theirs = reference.params_to_host();
  double worst = 0, moved = 0;
  for (size_t i = 0; i < ours.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(ours[i]) - theirs[i]));
    moved = std::max(moved, std::abs(static_cast<double>(ours[i]) - start[i]));
  }
  EXPECT_LT(worst, 1e-5);
  EXPECT_GT(moved, 0.05);  // they trained
  EXPECT_EQ(trainer.buffers_to_host(), frozen);
}

// Frozen layers above a trained one pass the gradient on (Dense's input gradient alone,
// BatchNormalization in inference mode, LayerNormalization's with parameter gradients discarded):
// the trained parameters' gradients match finite differences through them.
TEST(FrozenLayers, PassTheGradientOnToTrainedLayersBelow) {
  std::vector<LayerSpec> specs = {{"dense", 6, "tanh", "model.layers.0"},
                                  {"dense", 7, "tanh", "model.layers.1"},
                                  {"batch_normalization", 0, "linear", "model.layers.2"},
                                  {"layer_normalization", 0, "linear", "model.layers.3"},
                                  {"dense", 3, "softmax", "model.layers.4"}};
  for (size_t i = 1; i <= 3; ++i) specs[i].trainable = false;
  auto backend = make_cpu_backend();
  auto model = build_sequential(*backend, Shape{5}, specs);
  model->set_output_logits(OutputFunction::kSoftmax);
  model->init_params(3);
  // Frozen values far from the initial ones (unit scales, zero shifts, running variance 1).
  Rng rng(8);
  for (const ParamEntry& e : model->buffer_entries()) {
    const bool variance = e.name.ends_with("running_var");
    for (size_t k = 0; k < e.count; ++k)
      model->buffers()[e.offset + k] = variance ? rng.uniform(0.5, 2) : rng.uniform(-1, 1);
  }
  DeviceBuffer grads(*backend, model->param_count());
  model->bind_grads(grads.span());
  EXPECT_EQ(model->param_count(), 5u * 6 + 6 + 7u * 3 + 3);
  std::vector<float> x(4 * 5);
  for (float& v : x) v = rng.uniform(-1, 1);
  Pass training;
  training.training = true;
  model->set_pass(training);
  expect_model_gradient_matches(*backend, *model, x, {2, 0, 1, 1});
}

// The C++ API as Keras: freezing a built model's layer takes a compile() (a fresh optimizer for
// the weights now trained), and the next fit trains on from the last weights with the layer as
// it was; unfrozen after another compile(), it trains again.
TEST(FrozenLayers, ApiFreezesForTheFitAfterTheNextCompile) {
  const Dataset data = make_synthetic(128, 6, 4, 3);
  const keras::FitOptions one{.epochs = 1, .batch_size = 32, .seed = 5, .verbose = false};
  keras::Sequential model = small_model();  // 6 -> 16 relu -> 4 softmax
  model.fit(world_of_one(), arrays_of(data), one);
  model.set_trainable(0, false);
  EXPECT_FALSE(model.trainable(0));
  EXPECT_TRUE(model.trainable(1));
  EXPECT_EQ(error_of<ConfigError>([&] { model.fit(world_of_one(), arrays_of(data), one); }),
            "Sequential: fit: layers were frozen or unfrozen (trainable) since the last fit; "
            "compile() again first, as Keras needs, for an optimizer of the weights now trained");
  const auto by_name = [](const std::vector<NamedTensor>& weights, const std::string& name) {
    for (const NamedTensor& t : weights)
      if (t.name == name) return t.values;
    ADD_FAILURE() << "no " << name;
    return std::vector<float>{};
  };
  model.compile(keras::Adam(0.01), "sparse_categorical_crossentropy", {"accuracy"});
  const std::vector<NamedTensor> before = model.get_weights();
  model.fit(world_of_one(), arrays_of(data), one);
  std::vector<NamedTensor> after = model.get_weights();
  // In the model's order, as a PyTorch state_dict, whichever layers are frozen.
  const auto names = [](const std::vector<NamedTensor>& weights) {
    std::vector<std::string> out;
    for (const NamedTensor& t : weights) out.push_back(t.name);
    return out;
  };
  EXPECT_EQ(names(after), (std::vector<std::string>{"layers.0.weight", "layers.0.bias",
                                                    "layers.1.weight", "layers.1.bias"}));
  EXPECT_EQ(by_name(after, "layers.0.weight"), by_name(before, "layers.0.weight"));
  EXPECT_EQ(by_name(after, "layers.0.bias"), by_name(before, "layers.0.bias"));
  EXPECT_NE(by_name(after, "layers.1.weight"), by_name(before, "layers.1.weight"));
  EXPECT_NE(model.summary().find("(Dense+relu, frozen)"), std::string::npos);
  model.set_trainable(0, true);
  model.compile(keras::Adam(0.01), "sparse_categorical_crossentropy", {"accuracy"});
  model.fit(world_of_one(), arrays_of(data), one);
  EXPECT_NE(by_name(model.get_weights(), "layers.0.weight"), by_name(after, "layers.0.weight"));
  EXPECT_EQ(error_of<ConfigError>([&] { model.set_trainable(2, false); }),
            "Sequential: layers[2].trainable: the model has 2 layers");
  // Made frozen (Keras' Dense(..., trainable=False)): the model frozen through set_trainable.
  keras::Sequential made({keras::frozen(keras::Dense(16, "relu")), keras::Dense(4, "softmax")},
                         {6});
  made.compile(keras::Adam(0.01), "sparse_categorical_crossentropy", {"accuracy"});
  made.fit(world_of_one(), arrays_of(data), one);
  keras::Sequential set = small_model();
  set.set_trainable(0, false);
  set.fit(world_of_one(), arrays_of(data), one);
  EXPECT_EQ(values_of(made.get_weights()), values_of(set.get_weights()));
  EXPECT_EQ(error_of<ConfigError>([] { keras::frozen(keras::Dropout(0.5)); }),
            "frozen: a dropout layer has no parameters to freeze");
}

std::string config_error(const std::string& layers) {
  try {
    frozen_config(layers);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}

TEST(FrozenLayers, ConfigRefusesNothingToTrainAndLayersWithNothingToFreeze) {
  EXPECT_NE(config_error(R"([
      {type: dense, units: 12, activation: relu, trainable: false},
      {type: dropout, rate: 0.5},
      {type: dense, units: 4, activation: softmax, trainable: false}])")
                .find("frozen.yaml: model.layers: every layer with parameters is frozen "
                      "(trainable: false)"),
            std::string::npos);
  EXPECT_NE(config_error(R"([
      {type: dense, units: 12, activation: relu},
      {type: dropout, rate: 0.5, trainable: false},
      {type: dense, units: 4, activation: softmax}])")
                .find("frozen.yaml: model.layers.1.trainable: dropout has no parameters to freeze"),
            std::string::npos);
}

}  // namespace
}  // namespace ddp
