// SimpleRNN: outputs against PyTorch's nn.RNN equations written out in double here (tanh, relu,
// and GELU, whose derivative needs the kept sum), every gradient against finite differences,
// dropout, Keras' initializers, the model builder's layer, and Keras' configs both ways.

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "api/keras_model_config.h"
#include "core/error.h"
#include "finite_differences.h"
#include "nn/model_builder.h"
#include "nn/sequential.h"
#include "nn/simple_rnn.h"
#include "recurrent_checks.h"

namespace ddp {
namespace {

template <Activation A>
struct SimpleRnnCell {
  using Layer = SimpleRnn;
  static constexpr int64_t kGates = 1, kBiasRows = 1;
  static constexpr uint64_t kSeed = 81;
  static constexpr Activation kActivation = A;

  static double act(double z) {
    if (A == Activation::kRelu) return z > 0 ? z : 0;
    if (A == Activation::kGelu) return 0.5 * z * (1 + std::erf(z / std::numbers::sqrt2));
    return std::tanh(z);
  }

  // h' = act(x W_ih^T + b + h W_hh^T) in double: every step's h, (batch, steps, units); with
  // h_mask (batch, units), Keras' recurrent dropout: h times the mask in the recurrent product.
  static std::vector<double> reference(const RecurrentParams& p, const std::vector<float>& x,
                                       int64_t batch, int64_t steps, int64_t features,
                                       int64_t units, const std::vector<float>& h_mask) {
    std::vector<double> out(static_cast<size_t>(batch * steps * units));
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<double> h(units, 0.0), next(units);
      for (int64_t t = 0; t < steps; ++t) {
        for (int64_t j = 0; j < units; ++j) {
          double z = p.bias[j];
          for (int64_t f = 0; f < features; ++f)
            z += p.weight_ih[j * features + f] * x[(b * steps + t) * features + f];
          for (int64_t u = 0; u < units; ++u)
            z +=
                p.weight_hh[j * units + u] * h[u] * (h_mask.empty() ? 1.0f : h_mask[b * units + u]);
          next[j] = act(z);
          out[(b * steps + t) * units + j] = next[j];
        }
        h = next;
      }
    }
    return out;
  }
};
using TanhCell = SimpleRnnCell<Activation::kTanh>;
using ReluCell = SimpleRnnCell<Activation::kRelu>;
using GeluCell = SimpleRnnCell<Activation::kGelu>;

TEST(SimpleRnn, StepsAreTheDocumentedEquations) {
  expect_documented_steps<TanhCell>(84);
  expect_documented_steps<ReluCell>(84);
  expect_documented_steps<GeluCell>(84);
}

TEST(SimpleRnn, LastStepGradientsMatchFiniteDifferences) {
  expect_gradients_match<TanhCell>(false, false, 85);
}
TEST(SimpleRnn, SequenceGradientsMatchFiniteDifferences) {
  expect_gradients_match<TanhCell>(true, false, 85);
}
TEST(SimpleRnn, BidirectionalGradientsMatchFiniteDifferences) {
  expect_gradients_match<TanhCell>(false, true, 85);
  expect_gradients_match<TanhCell>(true, true, 85);
}
TEST(SimpleRnn, GradientsWithDropoutMatchFiniteDifferences) {
  expect_gradients_match<TanhCell>(true, true, 85, 0.3f, 0.4f);
}
// ReLU's derivative from the output; GELU's from the sum the cell keeps for each step.
TEST(SimpleRnn, OtherActivationsGradientsMatchFiniteDifferences) {
  expect_gradients_match<ReluCell>(true, true, 86, 0.3f, 0.4f);
  expect_gradients_match<GeluCell>(true, true, 86, 0.3f, 0.4f);
  expect_gradients_match<GeluCell>(false, false, 87);
}

TEST(SimpleRnn, DropoutMasksTheInputAndTheRecurrentProduct) {
  auto backend = make_cpu_backend();
  expect_dropout_masks_each_step_alike<TanhCell>(*backend, 88);
  expect_dropout_masks_each_step_alike<GeluCell>(*backend, 88);
}

// PyTorch's names and shapes (nn.RNN's bias_hh_l0 is the same sum's other half); Keras'
// initializers: Glorot-uniform input weights, an orthogonal weight_hh, a zero bias.
TEST(SimpleRnn, NamesAndInitializersAsKeras) {
  const int64_t features = 6, units = 8;
  SimpleRnn layer(1, features, units, false, true, true);
  const std::vector<ParamSpec> specs = layer.param_specs();
  ASSERT_EQ(specs.size(), 6u);
  EXPECT_EQ(specs[0].name, "weight_ih_l0");
  EXPECT_EQ(specs[0].shape, (Shape{units, features}));
  EXPECT_EQ(specs[1].name, "weight_hh_l0");
  EXPECT_EQ(specs[1].shape, (Shape{units, units}));
  EXPECT_EQ(specs[2].name, "bias_ih_l0");
  EXPECT_EQ(specs[2].shape, (Shape{units}));
  EXPECT_EQ(specs[5].name, "bias_ih_l0_reverse");
  std::vector<float> weight_ih(units * features), weight_hh(units * units), bias(units, 1.0f);
  std::vector<std::vector<float>> reverse = {weight_ih, weight_hh, bias};
  const std::span<float> params[] = {weight_ih,  weight_hh,  bias,
                                     reverse[0], reverse[1], reverse[2]};
  Rng rng(4);
  layer.init_params(rng, params);
  const float limit = std::sqrt(6.0f / (features + units));
  for (const float w : weight_ih) EXPECT_LE(std::abs(w), limit);
  for (int64_t a = 0; a < units; ++a)
    for (int64_t b = 0; b < units; ++b) {
      double dot = 0;
      for (int64_t r = 0; r < units; ++r)
        dot += double{weight_hh[r * units + a]} * weight_hh[r * units + b];
      EXPECT_NEAR(dot, a == b ? 1.0 : 0.0, 1e-6) << "columns " << a << ", " << b;
    }
  for (const float b : bias) EXPECT_EQ(b, 0.0f);
  for (const float b : reverse[2]) EXPECT_EQ(b, 0.0f);
}

// A simple_rnn applies its activation itself: one layer for any of them (where a dense layer with
// GELU is the linear layer and an activation layer); leaky_relu, a slope the cell does not take,
// is refused by the config (tests/cli).
TEST(SimpleRnn, TheModelBuilderMakesOneLayerForAnyActivation) {
  auto backend = make_cpu_backend();
  for (const char* activation : {"tanh", "relu", "gelu", "linear"}) {
    LayerSpec rnn;
    rnn.type = "simple_rnn";
    rnn.units = 4;
    rnn.activation = activation;
    const auto model = build_sequential(*backend, Shape({5, 3}), {rnn});
    ASSERT_EQ(model->layers().size(), 1u) << activation;
    EXPECT_EQ(model->layers()[0]->type_name(), "SimpleRNN");
    EXPECT_EQ(model->layers()[0]->output_shape(), Shape({4}));
  }
}

// Keras' SimpleRNN config both ways, its activation kept; one Keras does not have refused by name;
// Bidirectional(SimpleRNN) both ways.
TEST(SimpleRnn, KerasConfigsBothWays) {
  LayerSpec rnn;
  rnn.type = "simple_rnn";
  rnn.units = 7;
  rnn.activation = "relu";
  rnn.return_sequences = true;
  const nlohmann::json keras =
      keras::keras_model_config({rnn}, Shape({12, 8}))["config"]["layers"][1];
  EXPECT_EQ(keras["class_name"], "SimpleRNN");
  EXPECT_EQ(keras["config"]["units"], 7);
  EXPECT_EQ(keras["config"]["activation"], "relu");
  EXPECT_FALSE(keras["config"].contains("recurrent_activation"));
  const YAML::Node back = keras::keras_layer(keras, "m.keras").spec->node;
  EXPECT_EQ(back["type"].as<std::string>(), "simple_rnn");
  EXPECT_EQ(back["units"].as<int64_t>(), 7);
  EXPECT_EQ(back["activation"].as<std::string>(), "relu");
  EXPECT_TRUE(back["return_sequences"].as<bool>());
  nlohmann::json unknown = keras;
  unknown["config"]["activation"] = "exponential";
  try {
    keras::keras_layer(unknown, "m.keras: layers[1]");
    ADD_FAILURE() << "activation exponential accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "m.keras: layers[1] (SimpleRNN): activation exponential; ddp-trainer's layers do not "
              "have it");
  }
  rnn.bidirectional = true;
  const nlohmann::json both =
      keras::keras_model_config({rnn}, Shape({12, 8}))["config"]["layers"][1];
  EXPECT_EQ(both["class_name"], "Bidirectional");
  EXPECT_EQ(both["config"]["layer"]["class_name"], "SimpleRNN");
  EXPECT_EQ(both["config"]["layer"]["config"]["name"], "forward_simple_rnn");
  const YAML::Node both_back = keras::keras_layer(both, "m.keras").spec->node;
  EXPECT_EQ(both_back["type"].as<std::string>(), "simple_rnn");
  EXPECT_EQ(both_back["activation"].as<std::string>(), "relu");
  EXPECT_TRUE(both_back["bidirectional"].as<bool>());
}

// Note [padding masks]: padding steps carry the state on, in outputs and gradients (with both
// dropouts too).
TEST(SimpleRnn, PaddingStepsCarryTheState) {
  expect_documented_steps<TanhCell>(89, kPadding.data());
}
TEST(SimpleRnn, GradientsWithPaddingMatchFiniteDifferences) {
  expect_gradients_match<TanhCell>(true, true, 89, 0, 0, kPadding.data());
  expect_gradients_match<TanhCell>(false, false, 89, 0, 0, kPadding.data());
  expect_gradients_match<TanhCell>(true, true, 89, 0.3f, 0.4f, kPadding.data());
}

}  // namespace
}  // namespace ddp
