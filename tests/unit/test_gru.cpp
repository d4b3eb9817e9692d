// GRU: outputs against PyTorch's documented equations written out in double here, every gradient
// against finite differences, dropout, Keras' initializers, the vector cell against the per-unit
// formulas, and Keras' configs both ways.

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "api/keras_model_config.h"
#include "backend/gru_cell.h"
#include "core/error.h"
#include "finite_differences.h"
#include "nn/gru.h"
#include "recurrent_checks.h"

namespace ddp {
namespace {

struct GruCell {
  using Layer = Gru;
  static constexpr int64_t kGates = 3, kBiasRows = 2;
  static constexpr uint64_t kSeed = 51;

  // PyTorch's nn.GRU equations, in double: every step's h, (batch, steps, units); with h_mask
  // (batch, units), Keras' recurrent dropout: h times the mask in the recurrent product alone.
  static std::vector<double> reference(const RecurrentParams& p, const std::vector<float>& x,
                                       int64_t batch, int64_t steps, int64_t features,
                                       int64_t units, const std::vector<float>& h_mask) {
    std::vector<double> out(static_cast<size_t>(batch * steps * units));
    const auto sigmoid = [](double z) { return 1 / (1 + std::exp(-z)); };
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<double> h(units, 0.0);
      for (int64_t t = 0; t < steps; ++t) {
        std::vector<double> xp(3 * units), hu(3 * units);
        for (int64_t g = 0; g < 3 * units; ++g) {
          xp[g] = p.bias[g];
          hu[g] = p.bias[3 * units + g];
          for (int64_t f = 0; f < features; ++f)
            xp[g] += p.weight_ih[g * features + f] * x[(b * steps + t) * features + f];
          for (int64_t u = 0; u < units; ++u)
            hu[g] +=
                p.weight_hh[g * units + u] * h[u] * (h_mask.empty() ? 1.0f : h_mask[b * units + u]);
        }
        for (int64_t j = 0; j < units; ++j) {
          const double r = sigmoid(xp[j] + hu[j]), z = sigmoid(xp[units + j] + hu[units + j]);
          const double n = std::tanh(xp[2 * units + j] + r * hu[2 * units + j]);
          h[j] = (1 - z) * n + z * h[j];
          out[(b * steps + t) * units + j] = h[j];
        }
      }
    }
    return out;
  }
};

TEST(Gru, StepsAreTheDocumentedEquations) { expect_documented_steps<GruCell>(54); }

TEST(Gru, LastStepGradientsMatchFiniteDifferences) {
  expect_gradients_match<GruCell>(false, false, 55);
}
TEST(Gru, SequenceGradientsMatchFiniteDifferences) {
  expect_gradients_match<GruCell>(true, false, 55);
}
TEST(Gru, BidirectionalGradientsMatchFiniteDifferences) {
  expect_gradients_match<GruCell>(false, true, 55);
  expect_gradients_match<GruCell>(true, true, 55);
}
TEST(Gru, GradientsWithDropoutMatchFiniteDifferences) {
  expect_gradients_match<GruCell>(true, true, 55, 0.3f, 0.4f);
}

// Keras' dropout and recurrent_dropout (the h that z carries on unmasked, as Keras' GRUCell).
TEST(Gru, DropoutMasksTheInputAndTheRecurrentProduct) {
  auto backend = make_cpu_backend();
  expect_dropout_masks_each_step_alike<GruCell>(*backend, 57);
}

// use_bias: false has no bias parameter, and computes the equations with zero biases.
TEST(Gru, WithoutBiasesIsTheEquationsWithZeroBiases) {
  auto backend = make_cpu_backend();
  std::vector<RecurrentParams> p = directions<GruCell>(1, kFeatures, kUnits);
  std::ranges::fill(p[0].bias, 0.0f);
  Gru layer(kSteps, kFeatures, kUnits, false, false);
  ASSERT_EQ(layer.param_specs().size(), 2u);
  std::vector<float*> params = {p[0].weight_ih.data(), p[0].weight_hh.data()};
  std::vector<float*> grads = {p[0].dweight_ih.data(), p[0].dweight_hh.data()};
  layer.bind(params, grads);
  const std::vector<float> x = random_vector(kBatch * kSteps * kFeatures, 58);
  const std::vector<double> expected =
      GruCell::reference(p[0], x, kBatch, kSteps, kFeatures, kUnits, {});
  std::vector<float> y(kBatch * kUnits);
  layer.forward(*backend, x.data(), y.data(), kBatch);
  for (int64_t b = 0; b < kBatch; ++b)
    for (int64_t j = 0; j < kUnits; ++j)
      EXPECT_NEAR(y[b * kUnits + j], expected[(b * kSteps + kSteps - 1) * kUnits + j], 1e-6);
}

// PyTorch's names and shapes; Keras' initializers: Glorot-uniform input weights over 3 units,
// orthonormal columns of weight_hh, both biases zero.
TEST(Gru, NamesAndInitializersAsKeras) {
  const int64_t features = 6, units = 8;
  Gru layer(1, features, units, false, true, true);
  const std::vector<ParamSpec> specs = layer.param_specs();
  ASSERT_EQ(specs.size(), 6u);
  EXPECT_EQ(specs[0].name, "weight_ih_l0");
  EXPECT_EQ(specs[1].name, "weight_hh_l0");
  EXPECT_EQ(specs[2].name, "bias_ih_hh_l0");
  EXPECT_EQ(specs[2].shape, (Shape{2, 3 * units}));
  EXPECT_EQ(specs[5].name, "bias_ih_hh_l0_reverse");
  std::vector<float> weight_ih(3 * units * features), weight_hh(3 * units * units);
  std::vector<float> bias(6 * units, 1.0f);
  std::vector<std::vector<float>> reverse = {weight_ih, weight_hh, bias};
  const std::span<float> params[] = {weight_ih,  weight_hh,  bias,
                                     reverse[0], reverse[1], reverse[2]};
  Rng rng(4);
  layer.init_params(rng, params);
  const float limit = std::sqrt(6.0f / (features + 3 * units));
  for (const float w : weight_ih) EXPECT_LE(std::abs(w), limit);
  for (int64_t a = 0; a < units; ++a)
    for (int64_t b = 0; b < units; ++b) {
      double dot = 0;
      for (int64_t r = 0; r < 3 * units; ++r)
        dot += double{weight_hh[r * units + a]} * weight_hh[r * units + b];
      EXPECT_NEAR(dot, a == b ? 1.0 : 0.0, 1e-6) << "columns " << a << ", " << b;
    }
  for (const float b : bias) EXPECT_EQ(b, 0.0f);
  for (const float b : reverse[2]) EXPECT_EQ(b, 0.0f);
}

// The CPU's vectorized cell against gru_cell.h's per-unit formulas on libm's, over
// pre-activations from -10 to 10 and units that end mid-vector; its rows shared out over threads
// give the same bits.
TEST(Gru, VectorCellMatchesTheUnitFormulasOnAnyThreads) {
  const int64_t batch = 600, units = 37, rows = batch * units, gates = 3 * rows, kept = 4 * rows;
  const std::vector<float> xp = random_vector(gates, 59, -10, 10), hu = random_vector(gates, 60);
  const std::vector<float> h_prev = random_vector(rows, 61), dh = random_vector(rows, 62);
  const std::vector<float> dh_more = random_vector(rows, 63), carry0 = random_vector(rows, 64);
  const auto cell = [&](int threads) {
    auto backend = make_cpu_backend(true, threads);
    std::vector<float> k(kept), h(rows), carry = carry0, dxp(gates), dhu(gates);
    backend->gru_cell_forward(xp.data(), hu.data(), h_prev.data(), k.data(), h.data(), batch,
                              units);
    backend->gru_cell_backward(k.data(), h_prev.data(), dh.data(), dh_more.data(), carry.data(),
                               dxp.data(), dhu.data(), batch, units);
    return std::vector<std::vector<float>>{k, h, carry, dxp, dhu};
  };
  std::vector<float> k(kept), h(rows), carry = carry0, dxp(gates), dhu(gates);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = 0; j < units; ++j) {
      gru_unit_forward(xp.data(), hu.data(), h_prev.data(), k.data(), h.data(), b, j, units);
      gru_unit_backward(k.data(), h_prev.data(), dh.data(), dh_more.data(), carry.data(),
                        dxp.data(), dhu.data(), b, j, units);
    }
  const std::vector<std::vector<float>> vector = cell(1), unit = {k, h, carry, dxp, dhu};
  const char* names[] = {"kept", "h", "carry", "dxp", "dhu"};
  for (size_t v = 0; v < unit.size(); ++v)
    for (size_t i = 0; i < unit[v].size(); ++i)
      EXPECT_NEAR(vector[v][i], unit[v][i], 1e-6) << names[v] << "[" << i << "]";
  EXPECT_EQ(cell(2), vector);
}

// Keras' GRU config both ways (reset_after, Keras' default, and PyTorch's arithmetic); reset_after
// false (the reset gate on h before its product) refused by name; Bidirectional(GRU) both ways.
TEST(Gru, KerasConfigsBothWays) {
  LayerSpec gru;
  gru.type = "gru";
  gru.units = 7;
  gru.return_sequences = true;
  const nlohmann::json keras =
      keras::keras_model_config({gru}, Shape({12, 8}))["config"]["layers"][1];
  EXPECT_EQ(keras["class_name"], "GRU");
  EXPECT_EQ(keras["config"]["units"], 7);
  EXPECT_EQ(keras["config"]["reset_after"], true);
  EXPECT_FALSE(keras["config"].contains("unit_forget_bias"));
  const YAML::Node back = keras::keras_layer(keras, "m.keras").spec->node;
  EXPECT_EQ(back["type"].as<std::string>(), "gru");
  EXPECT_EQ(back["units"].as<int64_t>(), 7);
  EXPECT_TRUE(back["return_sequences"].as<bool>());
  nlohmann::json before = keras;
  before["config"]["reset_after"] = false;
  try {
    keras::keras_layer(before, "m.keras: layers[1]");
    ADD_FAILURE() << "reset_after false accepted";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "m.keras: layers[1] (GRU): reset_after false; ddp-trainer's layers do not have it");
  }
  gru.bidirectional = true;
  const nlohmann::json both =
      keras::keras_model_config({gru}, Shape({12, 8}))["config"]["layers"][1];
  EXPECT_EQ(both["class_name"], "Bidirectional");
  EXPECT_EQ(both["config"]["layer"]["class_name"], "GRU");
  EXPECT_EQ(both["config"]["layer"]["config"]["name"], "forward_gru");
  const YAML::Node both_back = keras::keras_layer(both, "m.keras").spec->node;
  EXPECT_EQ(both_back["type"].as<std::string>(), "gru");
  EXPECT_TRUE(both_back["bidirectional"].as<bool>());
}

// Note [padding masks]: padding steps carry the state on, in outputs and gradients (with both
// dropouts too).
TEST(Gru, PaddingStepsCarryTheState) { expect_documented_steps<GruCell>(56, kPadding.data()); }
TEST(Gru, GradientsWithPaddingMatchFiniteDifferences) {
  expect_gradients_match<GruCell>(true, true, 56, 0, 0, kPadding.data());
  expect_gradients_match<GruCell>(false, false, 56, 0, 0, kPadding.data());
  expect_gradients_match<GruCell>(true, true, 56, 0.3f, 0.4f, kPadding.data());
}

}  // namespace
}  // namespace ddp
