// LSTM: outputs against a reference written out in double here, every gradient against finite
// differences, Keras' initializers, backward after another input's forward, the same bits on any
// number of threads, and Keras' configs both ways.

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "api/keras_model_config.h"
#include "backend/lstm_cell.h"
#include "core/counter_hash.h"
#include "core/error.h"
#include "finite_differences.h"
#include "nn/lstm.h"
#include "recurrent_checks.h"

namespace ddp {
namespace {

struct LstmCell {
  using Layer = Lstm;
  static constexpr int64_t kGates = 4, kBiasRows = 1;
  static constexpr uint64_t kSeed = 11;

  // PyTorch's documented equations, in double: every step's h, (batch, steps, units); with h_mask
  // (batch, units), Keras' recurrent dropout: h times the mask in the recurrent product.
  static std::vector<double> reference(const RecurrentParams& p, const std::vector<float>& x,
                                       int64_t batch, int64_t steps, int64_t features,
                                       int64_t units, const std::vector<float>& h_mask) {
    std::vector<double> out(static_cast<size_t>(batch * steps * units));
    const auto sigmoid = [](double z) { return 1 / (1 + std::exp(-z)); };
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<double> h(units, 0.0), c(units, 0.0);
      for (int64_t t = 0; t < steps; ++t) {
        std::vector<double> z(4 * units);
        for (int64_t g = 0; g < 4 * units; ++g) {
          z[g] = p.bias[g];
          for (int64_t f = 0; f < features; ++f)
            z[g] += p.weight_ih[g * features + f] * x[(b * steps + t) * features + f];
          for (int64_t u = 0; u < units; ++u)
            z[g] +=
                p.weight_hh[g * units + u] * h[u] * (h_mask.empty() ? 1.0f : h_mask[b * units + u]);
        }
        for (int64_t j = 0; j < units; ++j) {
          const double i = sigmoid(z[j]), f = sigmoid(z[units + j]);
          const double g = std::tanh(z[2 * units + j]), o = sigmoid(z[3 * units + j]);
          c[j] = f * c[j] + i * g;
          h[j] = o * std::tanh(c[j]);
          out[(b * steps + t) * units + j] = h[j];
        }
      }
    }
    return out;
  }
};

TEST(Lstm, StepsAreTheDocumentedEquations) { expect_documented_steps<LstmCell>(14); }

TEST(Lstm, LastStepGradientsMatchFiniteDifferences) {
  expect_gradients_match<LstmCell>(false, false, 15);
}
TEST(Lstm, SequenceGradientsMatchFiniteDifferences) {
  expect_gradients_match<LstmCell>(true, false, 15);
}
TEST(Lstm, BidirectionalGradientsMatchFiniteDifferences) {
  expect_gradients_match<LstmCell>(false, true, 15);
  expect_gradients_match<LstmCell>(true, true, 15);
}

// Keras' dropout and recurrent_dropout in a training pass: the equations with x and the h before
// each step multiplied by masks of the dropout op's (each the same at every step), drawn with the
// layer's keys from its pass's; every gradient against finite differences with the masks fixed;
// an inference pass is the layer without dropout, bit for bit.
TEST(Lstm, DropoutMasksEachStepAlikeInTraining) {
  auto backend = make_cpu_backend();
  DropoutCase<LstmCell> c = expect_dropout_masks_each_step_alike<LstmCell>(*backend, 40);
  const auto objective = expect_input_gradient_matches(*backend, *c.layer, c.x, c.y, kBatch, 41);
  RecurrentParams& p = c.params[0];
  expect_matches_finite_differences(objective, p.weight_ih, p.dweight_ih, "weight_ih");
  expect_matches_finite_differences(objective, p.weight_hh, p.dweight_hh, "weight_hh");
}

// Backward reads what forward kept for its input: after another input's forward it runs the
// steps again rather than differentiate the other input's.
TEST(Lstm, BackwardAfterAnotherInputsForward) {
  auto backend = make_cpu_backend();
  std::vector<RecurrentParams> p = directions<LstmCell>(2, kFeatures, kUnits);
  Lstm layer(kSteps, kFeatures, kUnits, false, true, true);
  bind(layer, p);
  const std::vector<float> x = random_vector(kBatch * kSteps * kFeatures, 17);
  const std::vector<float> other = random_vector(kBatch * kSteps * kFeatures, 18);
  std::vector<float> y(kBatch * 2 * kUnits), dx(x.size()), dx_after_other(x.size());
  const auto gradients = [&](const std::vector<float>& forwarded, std::vector<float>& into) {
    layer.forward(*backend, forwarded.data(), y.data(), kBatch);
    std::vector<float> dy = random_vector(y.size(), 19);
    layer.backward(*backend, x.data(), y.data(), dy.data(), into.data(), kBatch, false);
    std::vector<float> all = into;
    for (const RecurrentParams& d : p)
      all.insert(all.end(), d.dweight_hh.begin(), d.dweight_hh.end());
    return all;
  };
  EXPECT_EQ(gradients(x, dx), gradients(other, dx_after_other));
}

// Keras' initializers: Glorot-uniform input weights, orthonormal columns of weight_hh (Keras'
// orthogonal recurrent kernel is its transpose), the forget gate's bias 1 and the others' 0.
TEST(Lstm, InitializesAsKeras) {
  const int64_t features = 6, units = 8;
  Lstm layer(1, features, units, false, true);
  std::vector<float> weight_ih(4 * units * features), weight_hh(4 * units * units), bias(4 * units);
  const std::span<float> params[] = {weight_ih, weight_hh, bias};
  Rng rng(3);
  layer.init_params(rng, params);
  const float limit = std::sqrt(6.0f / (features + 4 * units));
  for (const float w : weight_ih) EXPECT_LE(std::abs(w), limit);
  for (int64_t a = 0; a < units; ++a)
    for (int64_t b = 0; b < units; ++b) {
      double dot = 0;
      for (int64_t r = 0; r < 4 * units; ++r)
        dot += double{weight_hh[r * units + a]} * weight_hh[r * units + b];
      EXPECT_NEAR(dot, a == b ? 1.0 : 0.0, 1e-6) << "columns " << a << ", " << b;
    }
  for (int64_t g = 0; g < 4 * units; ++g)
    EXPECT_EQ(bias[g], g >= units && g < 2 * units ? 1.0f : 0.0f) << "bias " << g;
}

// Note [threads per rank]: the cell's rows shared out, each computed as on one thread.
TEST(Lstm, CellBitsDoNotDependOnTheThreads) {
  const int64_t batch = 600, units = 32, rows = batch * units, gates = 4 * rows;
  const std::vector<float> xp = random_vector(gates, 20, -3, 3), hu = random_vector(gates, 21);
  const std::vector<float> c_prev = random_vector(rows, 22), dh = random_vector(rows, 23);
  const auto run = [&](int threads) {
    auto backend = make_cpu_backend(true, threads);
    std::vector<float> kept(gates), c(rows), h(rows), dc = random_vector(rows, 24), dg(gates);
    backend->lstm_cell_forward(xp.data(), hu.data(), c_prev.data(), kept.data(), c.data(), h.data(),
                               batch, units);
    backend->lstm_cell_backward(kept.data(), c_prev.data(), c.data(), dh.data(), h.data(),
                                dc.data(), dg.data(), batch, units);
    for (const auto* v : {&c, &h, &dc, &dg}) kept.insert(kept.end(), v->begin(), v->end());
    return kept;
  };
  EXPECT_EQ(run(1), run(2));
}

// The CPU's vectorized cell (its own sigmoid and tanh) against lstm_cell.h's per-unit formulas on
// libm's, over pre-activations from -12 to 12 and units that end mid-vector.
TEST(Lstm, VectorCellMatchesTheUnitFormulas) {
  const int64_t batch = 5, units = 37, rows = batch * units, gates = 4 * rows;
  const std::vector<float> xp = random_vector(gates, 25, -10, 10), hu = random_vector(gates, 26);
  const std::vector<float> c_prev = random_vector(rows, 27, -3, 3), dh = random_vector(rows, 28);
  const std::vector<float> dh_more = random_vector(rows, 29), dc0 = random_vector(rows, 30);
  auto backend = make_cpu_backend();
  std::vector<float> kept(gates), c(rows), h(rows), dc = dc0, dg(gates);
  backend->lstm_cell_forward(xp.data(), hu.data(), c_prev.data(), kept.data(), c.data(), h.data(),
                             batch, units);
  backend->lstm_cell_backward(kept.data(), c_prev.data(), c.data(), dh.data(), dh_more.data(),
                              dc.data(), dg.data(), batch, units);
  std::vector<float> unit_kept(gates), unit_c(rows), unit_h(rows), unit_dc = dc0, unit_dg(gates);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t j = 0; j < units; ++j) {
      lstm_unit_forward(xp.data(), hu.data(), c_prev.data(), unit_kept.data(), unit_c.data(),
                        unit_h.data(), b, j, units);
      lstm_unit_backward(unit_kept.data(), c_prev.data(), unit_c.data(), dh.data(), dh_more.data(),
                         unit_dc.data(), unit_dg.data(), b, j, units);
    }
  const auto expect_near = [](const std::vector<float>& a, const std::vector<float>& b,
                              const char* what) {
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-6) << what << "[" << i << "]";
  };
  expect_near(kept, unit_kept, "gates");
  expect_near(c, unit_c, "c");
  expect_near(h, unit_h, "h");
  expect_near(dc, unit_dc, "dc");
  expect_near(dg, unit_dg, "dgates");
}

// The Keras layer config of an lstm layer of 7 units.
nlohmann::json keras_lstm(bool sequences, bool bidirectional) {
  LayerSpec lstm;
  lstm.type = "lstm";
  lstm.units = 7;
  lstm.return_sequences = sequences;
  lstm.bidirectional = bidirectional;
  return keras::keras_model_config({lstm}, Shape({12, 8}))["config"]["layers"][1];
}

// Keras' LSTM config both ways, its dropout rates included; what changes its arithmetic (other
// activations, reversed or stateful sequences, returned states) is refused by name.
TEST(Lstm, KerasConfigsBothWays) {
  const nlohmann::json keras = keras_lstm(true, false);
  EXPECT_EQ(keras["class_name"], "LSTM");
  EXPECT_EQ(keras["config"]["units"], 7);
  EXPECT_EQ(keras["config"]["return_sequences"], true);
  const YAML::Node back = keras::keras_layer(keras, "m.keras").spec->node;
  EXPECT_EQ(back["type"].as<std::string>(), "lstm");
  EXPECT_EQ(back["units"].as<int64_t>(), 7);
  EXPECT_TRUE(back["return_sequences"].as<bool>());
  EXPECT_TRUE(back["use_bias"].as<bool>());
  nlohmann::json dropping = keras;  // Keras' dropout rates, read and written back
  dropping["config"]["dropout"] = 0.25;
  dropping["config"]["recurrent_dropout"] = 0.5;
  const YAML::Node dropped = keras::keras_layer(dropping, "m.keras").spec->node;
  EXPECT_EQ(dropped["dropout"].as<double>(), 0.25);
  EXPECT_EQ(dropped["recurrent_dropout"].as<double>(), 0.5);
  for (const auto& [key, value] : {std::pair<const char*, nlohmann::json>{"go_backwards", true},
                                   {"return_state", true},
                                   {"recurrent_activation", "hard_sigmoid"},
                                   {"stateful", true}}) {
    nlohmann::json changed = keras;
    changed["config"][key] = value;
    try {
      keras::keras_layer(changed, "m.keras: layers[1]");
      ADD_FAILURE() << key;
    } catch (const ConfigError& e) {
      EXPECT_EQ(std::string(e.what()), "m.keras: layers[1] (LSTM): " + std::string(key) + " " +
                                           value.dump() + "; ddp-trainer's layers do not have it");
    }
  }
}

// Keras' Bidirectional of an LSTM both ways: the wrapped LSTM's settings, merge_mode concat; a
// backward layer unlike the forward one, other merge modes and other wrapped layers refused.
TEST(Lstm, KerasBidirectionalConfigsBothWays) {
  const nlohmann::json keras = keras_lstm(false, true);
  EXPECT_EQ(keras["class_name"], "Bidirectional");
  EXPECT_EQ(keras["config"]["merge_mode"], "concat");
  EXPECT_EQ(keras["config"]["layer"]["class_name"], "LSTM");
  EXPECT_EQ(keras["config"]["layer"]["config"]["units"], 7);
  const YAML::Node back = keras::keras_layer(keras, "m.keras").spec->node;
  EXPECT_EQ(back["type"].as<std::string>(), "lstm");
  EXPECT_EQ(back["units"].as<int64_t>(), 7);
  EXPECT_TRUE(back["bidirectional"].as<bool>());
  nlohmann::json with_backward = keras;
  with_backward["config"]["backward_layer"] = keras["config"]["layer"];
  with_backward["config"]["backward_layer"]["config"]["go_backwards"] = true;
  EXPECT_TRUE(keras::keras_layer(with_backward, "m.keras").spec->node["bidirectional"].as<bool>());
  const auto refusal = [](const nlohmann::json& config) {
    try {
      keras::keras_layer(config, "m.keras: layers[1]");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  nlohmann::json other_units = with_backward;
  other_units["config"]["backward_layer"]["config"]["units"] = 3;
  EXPECT_EQ(refusal(other_units),
            "m.keras: layers[1] (Bidirectional): backward_layer unlike its "
            "layer; ddp-trainer's layers do not have it");
  nlohmann::json summed = keras;
  summed["config"]["merge_mode"] = "sum";
  EXPECT_EQ(refusal(summed),
            "m.keras: layers[1] (Bidirectional): merge_mode \"sum\"; "
            "ddp-trainer's layers do not have it");
  nlohmann::json generic = keras;  // Keras' RNN of a cell of the user's
  generic["config"]["layer"]["class_name"] = "RNN";
  EXPECT_EQ(refusal(generic),
            "m.keras: layers[1] (Bidirectional): layer RNN (an LSTM, GRU or SimpleRNN only); "
            "ddp-trainer's layers do not have it");
  nlohmann::json mixed = keras;  // a GRU reading the steps back of an LSTM reading them forward
  mixed["config"]["backward_layer"] = keras["config"]["layer"];
  mixed["config"]["backward_layer"]["class_name"] = "GRU";
  EXPECT_EQ(refusal(mixed),
            "m.keras: layers[1] (Bidirectional): backward_layer unlike its layer; "
            "ddp-trainer's layers do not have it");
}

// Note [padding masks]: padding steps carry the state on, in outputs and gradients (with both
// dropouts too).
TEST(Lstm, PaddingStepsCarryTheState) { expect_documented_steps<LstmCell>(31, kPadding.data()); }
TEST(Lstm, GradientsWithPaddingMatchFiniteDifferences) {
  expect_gradients_match<LstmCell>(true, true, 31, 0, 0, kPadding.data());
  expect_gradients_match<LstmCell>(false, false, 31, 0, 0, kPadding.data());
  expect_gradients_match<LstmCell>(true, true, 31, 0.3f, 0.4f, kPadding.data());
}

}  // namespace
}  // namespace ddp
