// The Sequential model end to end (flat buffers, fused softmax, whole-model gradients) and the
// single-process trainer.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "finite_differences.h"
#include "nn/model_builder.h"
#include "nn/torch_layout.h"
#include "train/config_reader.h"
#include "train/trainer.h"

namespace ddp {
namespace {

std::vector<LayerSpec> mlp_specs() {
  return {{"flatten", 0, "linear", "model.layers.0"},
          {"dense", 6, "tanh", "model.layers.1"},
          {"dense", 5, "sigmoid", "model.layers.2"},
          {"dense", 3, "softmax", "model.layers.3"}};
}

TEST(Sequential, FlatBufferLayoutAndSummary) {
  auto backend = make_cpu_backend();
  auto model = build_sequential(*backend, Shape{2, 2}, mlp_specs());
  // (4*6 + 6) + (6*5 + 5) + (5*3 + 3)
  EXPECT_EQ(model->param_count(), 30u + 35u + 18u);
  const auto& entries = model->param_entries();
  ASSERT_EQ(entries.size(), 6u);
  EXPECT_EQ(entries[0].name, "layers.0.weight");  // Flatten has no parameters
  EXPECT_EQ(entries[5].name, "layers.2.bias");
  EXPECT_EQ(entries[0].shape, (Shape{6, 4}));
  size_t expected_offset = 0;
  for (const ParamEntry& e : entries) {
    EXPECT_EQ(e.offset, expected_offset);
    expected_offset += e.count;
  }
  const std::string summary = model->summary();
  EXPECT_NE(summary.find("layers.2 (Dense)"), std::string::npos) << summary;
  EXPECT_NE(summary.find(" (Softmax)"), std::string::npos) << summary;
  EXPECT_NE(summary.find("Total params: 83"), std::string::npos) << summary;
}

// Note [PyTorch layout]: a (3, 2, 2) image through a 1x1 conv of 4 filters, then flattened into
// a Dense layer: PyTorch sees the conv weight as (4, 2, 1, 1) and the Dense weight's inputs in
// (c, h, w) order.
TEST(Sequential, ConvAndFlattenedDenseWeightsConvertToPyTorchLayout) {
  auto backend = make_cpu_backend();
  LayerSpec conv{"conv2d", 4, "relu", "model.layers.0"};
  conv.window = {1, 1};
  auto model = build_sequential(*backend, Shape{3, 2, 2},
                                {conv,
                                 {"flatten", 0, "linear", "model.layers.1"},
                                 {"dense", 5, "linear", "model.layers.2"},
                                 {"dense", 2, "linear", "model.layers.3"}});
  const auto& e = model->param_entries();
  ASSERT_EQ(e.size(), 6u);
  EXPECT_EQ(torch_shape(e[0]), (Shape{4, 2, 1, 1}));
  EXPECT_EQ(torch_shape(e[2]), (Shape{5, 24}));
  EXPECT_EQ(e[2].hwc, (std::array<int64_t, 4>{5, 3, 2, 4}));
  EXPECT_EQ(e[4].hwc, (std::array<int64_t, 4>{}));  // the second Dense reads a flat input
  std::vector<float> ours(e[2].count);
  for (size_t i = 0; i < ours.size(); ++i) ours[i] = static_cast<float>(i);
  const std::vector<float> theirs = to_torch_layout(e[2], ours);
  // Row 1, pixel (h 2, w 1), channel 3: ours at ((1*3 + 2)*2 + 1)*4 + 3, PyTorch's at
  // ((1*4 + 3)*3 + 2)*2 + 1.
  EXPECT_EQ(theirs[((1 * 4 + 3) * 3 + 2) * 2 + 1], ours[((1 * 3 + 2) * 2 + 1) * 4 + 3]);
  EXPECT_EQ(from_torch_layout(e[2], theirs), ours);
  EXPECT_NE(theirs, ours);
}

TEST(Sequential, GlorotUniformInitIsSeededAndBounded) {
  auto backend = make_cpu_backend();
  auto a = build_sequential(*backend, Shape{4}, {{"dense", 6, "relu", "l0"}});
  auto b = build_sequential(*backend, Shape{4}, {{"dense", 6, "relu", "l0"}});
  a->init_params(5);
  b->init_params(5);
  const auto pa = a->params();
  EXPECT_TRUE(std::equal(pa.begin(), pa.end(), b->params().begin()));
  const float limit = std::sqrt(6.0f / 10);
  for (size_t i = 0; i < 24; ++i) EXPECT_LE(std::abs(pa[i]), limit);
  for (size_t i = 24; i < 30; ++i) EXPECT_EQ(pa[i], 0) << "bias must start at zero";
}

TEST(Sequential, WholeModelGradientMatchesFiniteDifferences) {
  auto backend = make_cpu_backend();
  auto model = build_sequential(*backend, Shape{2, 2}, mlp_specs());
  model->set_output_logits(
      OutputFunction::kSoftmax);  // cross-entropy applies the final softmax itself
  model->init_params(11);
  DeviceBuffer grads(*backend, model->param_count());
  model->bind_grads(grads.span());
  Rng rng(4);
  std::vector<float> x(3 * 4);
  for (float& v : x) v = rng.uniform(-1, 1);
  expect_model_gradient_matches(*backend, *model, x, {2, 0, 1});
}

// Note [fused activations]: a dense or conv2d layer whose activation's derivative needs its input
// (and leaky ReLU, whose slope they do not take) is the linear layer and an activation layer of its
// own: the same parameter names as written, the same outputs as the two layers written out, and
// whole-model gradients that match finite differences.
TEST(Sequential, UnfusedActivationsAreLayersOfTheirOwn) {
  auto backend = make_cpu_backend();
  LayerSpec conv{"conv2d", 2, "gelu", "model.layers.0"};
  conv.window = {2, 2};
  const std::vector<LayerSpec> written = {conv,
                                          {"flatten", 0, "linear", "model.layers.1"},
                                          {"dense", 5, "silu", "model.layers.2"},
                                          {"dense", 4, "elu", "model.layers.3"},
                                          {"dense", 4, "leaky_relu", "model.layers.4"},
                                          {"dense", 3, "softmax", "model.layers.5"}};
  LayerSpec leaky{"leaky_relu", 0, "linear", "l8"};
  leaky.negative_slope = 0.2f;  // Keras' activation="leaky_relu"
  LayerSpec linear_conv = conv;
  linear_conv.activation = "linear";
  const std::vector<LayerSpec> spelled_out = {linear_conv,
                                              {"gelu", 0, "linear", "l1"},
                                              {"flatten", 0, "linear", "l2"},
                                              {"dense", 5, "linear", "l3"},
                                              {"silu", 0, "linear", "l4"},
                                              {"dense", 4, "linear", "l5"},
                                              {"elu", 0, "linear", "l6"},
                                              {"dense", 4, "linear", "l7"},
                                              leaky,
                                              {"dense", 3, "softmax", "l9"}};
  auto model = build_sequential(*backend, Shape{3, 3, 2}, written);
  auto reference = build_sequential(*backend, Shape{3, 3, 2}, spelled_out);
  EXPECT_EQ(model->layers().size(), reference->layers().size());
  ASSERT_EQ(model->param_entries().size(), 10u);
  EXPECT_EQ(model->param_entries()[2].name, "layers.1.weight");
  const std::string summary = model->summary();
  for (const char* layer : {"(GELU)", "(SiLU)", "(ELU)", "(LeakyReLU)"})
    EXPECT_NE(summary.find(layer), std::string::npos) << layer << " in\n" << summary;
  // Seed 2: no pre-activation of the leaky ReLU within a step (1e-2) of its kink, across which
  // finite differences mean nothing (seeds 1, 5 and 6 put one there).
  model->init_params(2);
  reference->init_params(2);
  std::vector<float> x(2 * 18);
  Rng rng(5);
  for (float& v : x) v = rng.uniform(-1, 1);
  const float* ours = model->predict(x.data(), 2);
  const std::vector<float> probs(ours, ours + 6);
  const float* theirs = reference->predict(x.data(), 2);
  EXPECT_EQ(probs, std::vector<float>(theirs, theirs + 6));

  model->set_output_logits(OutputFunction::kSoftmax);
  DeviceBuffer grads(*backend, model->param_count());
  model->bind_grads(grads.span());
  expect_model_gradient_matches(*backend, *model, x, {2, 0});
}

TEST(Sequential, PredictAppliesTheFinalSoftmax) {
  auto backend = make_cpu_backend();
  auto model = build_sequential(*backend, Shape{4}, {{"dense", 3, "softmax", "l0"}});
  model->set_output_logits(OutputFunction::kSoftmax);
  model->init_params(1);
  const float x[] = {1, 2, 3, 4};
  const float* probs = model->predict(x, 1);
  EXPECT_NEAR(probs[0] + probs[1] + probs[2], 1.0, 1e-6);
}

// Dense over an input of several axes maps the last one at each position (Keras' Dense, PyTorch's
// nn.Linear): (3, 2) through Dense(4, gelu) gives (3, 4), each row what the flat layer gives that
// row; its gradients, through a flatten and a softmax dense, against finite differences.
TEST(ModelBuilder, DenseMapsTheLastAxisAtEachPosition) {
  auto backend = make_cpu_backend();
  auto model = build_sequential(*backend, Shape{3, 2}, {{"dense", 4, "gelu", "model.layers.0"}});
  auto flat = build_sequential(*backend, Shape{2}, {{"dense", 4, "gelu", "model.layers.0"}});
  EXPECT_EQ(model->layers().back()->output_shape(), (Shape{3, 4}));
  EXPECT_NE(model->summary().find("(None, 3, 4)"), std::string::npos) << model->summary();
  model->init_params(4);
  ASSERT_EQ(model->param_count(), flat->param_count());
  std::ranges::copy(model->params(), flat->params().begin());
  const std::vector<float> x = random_vector(2 * 3 * 2, 5);  // 2 samples
  const float* out = model->predict(x.data(), 2);
  const std::vector<float> y(out, out + 24);
  const float* rows = flat->predict(x.data(), 6);  // the 6 positions as samples
  EXPECT_EQ(y, std::vector<float>(rows, rows + 24));

  auto trained = build_sequential(*backend, Shape{3, 2},
                                  {{"dense", 4, "tanh", "model.layers.0"},
                                   {"flatten", 0, "linear", "l1"},
                                   {"dense", 3, "softmax", "model.layers.2"}});
  trained->set_output_logits(OutputFunction::kSoftmax);
  trained->init_params(6);
  DeviceBuffer grads(*backend, trained->param_count());
  trained->bind_grads(grads.span());
  expect_model_gradient_matches(*backend, *trained, random_vector(4 * 6, 7), {2, 0, 1, 1});
}

Config small_config(const std::vector<std::string>& overrides = {}) {
  YAML::Node root = YAML::Load(R"(
seed: 9
data:
  train: {type: synthetic, samples: 256, features: 6, classes: 4}
model:
  layers:
    - {type: dense, units: 128, activation: relu}
    - {type: dense, units: 4, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: adam, learning_rate: 0.01}
training: {epochs: 150, global_batch_size: 32}
)");
  for (const auto& o : overrides) apply_override(root, o);
  return parse_config(root, "small.yaml");
}

TEST(Trainer, LearnsTheTrainingSet) {
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  const Config config = small_config();
  Trainer trainer(config, *comm, *backend, load_dataset(config.train_data, 0), std::nullopt);
  const Dataset train = load_dataset(config.train_data, 0);
  const EvalResult before = trainer.evaluate(train);
  trainer.fit();
  const EvalResult after = trainer.evaluate(train);
  // Random labels can only be memorized: a working backward pass gets far above chance (0.25).
  EXPECT_LT(after.loss, before.loss * 0.6);
  ASSERT_EQ(after.metrics.size(), 1u);
  EXPECT_EQ(after.metrics[0].name, "accuracy");
  EXPECT_GT(after.metrics[0].value, 0.7);
  EXPECT_EQ(trainer.completed_steps(), 150 * 8);
}

template <class E>
std::string trainer_error(const std::vector<std::string>& overrides, Dataset data) {
  auto backend = make_cpu_backend();
  auto comm = make_local_communicator();
  try {
    Trainer(small_config(overrides), *comm, *backend, std::move(data), std::nullopt);
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(Trainer, InputShapeMismatchNamesKey) {
  const std::string message =
      trainer_error<ConfigError>({"model.input=[7]"}, make_synthetic(256, 6, 4, 1));
  EXPECT_NE(
      message.find("small.yaml: model.input: (7) holds 7 values per sample, but the samples of"),
      std::string::npos)
      << message;
}

TEST(Trainer, FewerSamplesThanOneGlobalBatch) {
  const std::string message = trainer_error<DataError>({}, make_synthetic(20, 6, 4, 1));
  EXPECT_NE(message.find("20 samples are fewer than one global batch of 32"), std::string::npos)
      << message;
}

TEST(Trainer, LabelBeyondModelOutputs) {
  const std::string message = trainer_error<DataError>({}, make_synthetic(256, 6, 9, 1));
  EXPECT_NE(message.find("is outside [0, 4)"), std::string::npos) << message;
}

}  // namespace
}  // namespace ddp
