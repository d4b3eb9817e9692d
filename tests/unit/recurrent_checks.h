#pragma once
// What the recurrent layers' tests share. A Cell names the layer and what differs between cells:
//   using Layer (Lstm, Gru, SimpleRnn); kGates (gate blocks per unit: 4, 3, 1); kBiasRows (the
//   bias parameter's rows: the GRU's two, the others' one); kSeed (its parameters' first seed);
//   kActivation, where the layer takes one (SimpleRnn);
//   static std::vector<double> reference(const RecurrentParams&, const std::vector<float>& x,
//       int64_t batch, int64_t steps, int64_t features, int64_t units,
//       const std::vector<float>& h_mask): every step's h, (batch, steps, units), by PyTorch's
//       documented equations in double, the h the recurrent product reads times h_mask (batch,
//       units) where it is not empty.

#include <gtest/gtest.h>

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "core/counter_hash.h"
#include "finite_differences.h"

namespace ddp {

// x (batch, steps, width) with its steps in the other order: what a reverse direction reads.
inline std::vector<float> reversed_steps(const std::vector<float>& x, int64_t batch, int64_t steps,
                                         int64_t width) {
  std::vector<float> out(x.size());
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t t = 0; t < steps; ++t)
      for (int64_t f = 0; f < width; ++f)
        out[(b * steps + steps - 1 - t) * width + f] = x[(b * steps + t) * width + f];
  return out;
}

inline constexpr int64_t kBatch = 3, kSteps = 4, kFeatures = 3, kUnits = 5;

// One direction's parameters and gradients, in param_specs()' order, drawn from seeds first,
// first + 1 and first + 2.
struct RecurrentParams {
  std::vector<float> weight_ih, weight_hh, bias;
  std::vector<float> dweight_ih, dweight_hh, dbias;
  RecurrentParams(int64_t gates, int64_t bias_rows, int64_t features, int64_t units, uint64_t first)
      : weight_ih(random_vector(gates * units * features, first, -0.6f, 0.6f)),
        weight_hh(random_vector(gates * units * units, first + 1, -0.6f, 0.6f)),
        bias(random_vector(bias_rows * gates * units, first + 2, -0.5f, 0.5f)),
        dweight_ih(weight_ih.size()),
        dweight_hh(weight_hh.size()),
        dbias(bias.size()) {}
};

// `count` directions' parameters of a Cell, each direction's from seeds 10 further on.
template <typename Cell>
std::vector<RecurrentParams> directions(int64_t count, int64_t features, int64_t units) {
  std::vector<RecurrentParams> out;
  for (int64_t d = 0; d < count; ++d)
    out.emplace_back(Cell::kGates, Cell::kBiasRows, features, units,
                     Cell::kSeed + 10 * static_cast<uint64_t>(d));
  return out;
}

// The Cell's layer of kSteps x kFeatures to kUnits, with its biases.
template <typename Cell>
std::unique_ptr<typename Cell::Layer> make_layer(bool sequences, bool bidirectional, float rate = 0,
                                                 float recurrent_rate = 0) {
  using Layer = typename Cell::Layer;
  if constexpr (requires { Cell::kActivation; })
    return std::make_unique<Layer>(kSteps, kFeatures, kUnits, sequences, true, bidirectional, rate,
                                   recurrent_rate, Cell::kActivation);
  else
    return std::make_unique<Layer>(kSteps, kFeatures, kUnits, sequences, true, bidirectional, rate,
                                   recurrent_rate);
}

// Binds `layer` to the directions' parameters (all three each: a layer with its biases).
template <typename Layer>
void bind(Layer& layer, std::vector<RecurrentParams>& directions) {
  std::vector<float*> params, grads;
  for (RecurrentParams& p : directions) {
    params.insert(params.end(), {p.weight_ih.data(), p.weight_hh.data(), p.bias.data()});
    grads.insert(grads.end(), {p.dweight_ih.data(), p.dweight_hh.data(), p.dbias.data()});
  }
  ASSERT_EQ(layer.param_specs().size(), params.size());
  layer.bind(params, grads);
}

// A padding mask (kBatch, kSteps) of Note [padding masks]: the first sample padded at its end,
// the second anywhere (its first step too), the third not at all.
inline const std::vector<float> kPadding = {1, 1, 0, 0, 0, 1, 0, 1, 1, 1, 1, 1};

// Both return modes, one direction and two: the layer's outputs are the equations', the reverse
// direction's the equations over the steps in the other order, each output at the step it read
// (Keras' and PyTorch's). With `padding` (kBatch, kSteps), the layer's input mask (Note [padding
// masks]): each sample's outputs are the equations over its steps that are not padding, a
// direction's state at a padding step the one before it (zero before any other), as Keras' RNN
// layers.
template <typename Cell>
void expect_documented_steps(uint64_t seed, const float* padding = nullptr) {
  auto backend = make_cpu_backend();
  const std::vector<float> x = random_vector(kBatch * kSteps * kFeatures, seed);
  for (const bool bidirectional : {false, true}) {
    std::vector<RecurrentParams> p = directions<Cell>(bidirectional ? 2 : 1, kFeatures, kUnits);
    const int64_t ways = bidirectional ? 2 : 1, width = ways * kUnits;
    // expected[d][(b, t, j)]: direction d's state after reading step t of sample b.
    std::vector<std::vector<double>> expected(static_cast<size_t>(ways),
                                              std::vector<double>(kBatch * kSteps * kUnits, 0.0));
    for (int64_t b = 0; b < kBatch; ++b) {
      std::vector<float> kept;  // the sample's steps that are not padding, in order
      std::vector<int64_t> read;
      for (int64_t t = 0; t < kSteps; ++t)
        if (!padding || padding[b * kSteps + t] != 0) {
          read.push_back(t);
          kept.insert(kept.end(), x.begin() + (b * kSteps + t) * kFeatures,
                      x.begin() + (b * kSteps + t + 1) * kFeatures);
        }
      const auto n = static_cast<int64_t>(read.size());
      for (int64_t d = 0; d < ways; ++d) {
        const std::vector<double> states =
            n == 0 ? std::vector<double>()
                   : Cell::reference(p[d], d == 0 ? kept : reversed_steps(kept, 1, n, kFeatures), 1,
                                     n, kFeatures, kUnits, {});
        for (int64_t t = 0; t < kSteps; ++t) {
          int64_t seen = 0;  // the steps this direction has read by step t that are not padding
          for (const int64_t r : read) seen += d == 0 ? r <= t : r >= t;
          for (int64_t j = 0; j < kUnits && seen > 0; ++j)
            expected[d][(b * kSteps + t) * kUnits + j] = states[(seen - 1) * kUnits + j];
        }
      }
    }
    for (const bool sequences : {false, true}) {
      const auto layer = make_layer<Cell>(sequences, bidirectional);
      EXPECT_EQ(layer->output_shape(), sequences ? (Shape{kSteps, width}) : (Shape{width}));
      layer->set_input_mask(padding);
      EXPECT_EQ(layer->output_mask(), sequences ? padding : nullptr);
      bind(*layer, p);
      std::vector<float> y(kBatch * layer->output_shape().numel());
      layer->forward(*backend, x.data(), y.data(), kBatch);
      for (int64_t d = 0; d < ways; ++d)
        for (int64_t b = 0; b < kBatch; ++b)
          for (int64_t t = sequences ? 0 : kSteps - 1; t < kSteps; ++t)
            for (int64_t j = 0; j < kUnits; ++j) {
              const int64_t column = d * kUnits + j;
              const int64_t at = sequences ? (b * kSteps + t) * width + column : b * width + column;
              const int64_t step = d == 1 && !sequences ? 0 : t;  // the reverse one's last: step 0
              EXPECT_NEAR(y[at], expected[d][(b * kSteps + step) * kUnits + j], 1e-6)
                  << "direction " << d << " sample " << b << " step " << t << " unit " << j;
            }
    }
  }
}

// dx and every parameter's gradient of L = sum(y * r) against finite differences, in a training
// pass (with dropout's masks, which the pass fixes, where the rates are not 0; with `padding`, the
// layer's input mask); then backward with `accumulate` adds the same gradients again. x is drawn
// from `seed`, r from seed + 1.
template <typename Cell>
void expect_gradients_match(bool sequences, bool bidirectional, uint64_t seed, float rate = 0,
                            float recurrent_rate = 0, const float* padding = nullptr) {
  auto backend = make_cpu_backend();
  std::vector<RecurrentParams> p = directions<Cell>(bidirectional ? 2 : 1, kFeatures, kUnits);
  const auto layer = make_layer<Cell>(sequences, bidirectional, rate, recurrent_rate);
  layer->set_input_mask(padding);
  bind(*layer, p);
  Pass pass;
  pass.training = true;
  pass.key = 78;
  layer->set_pass(pass);
  std::vector<float> x = random_vector(kBatch * kSteps * kFeatures, seed);
  std::vector<float> y(kBatch * layer->output_shape().numel());
  const auto objective = expect_input_gradient_matches(*backend, *layer, x, y, kBatch, seed + 1);
  for (RecurrentParams& d : p) {
    expect_matches_finite_differences(objective, d.weight_ih, d.dweight_ih, "weight_ih");
    expect_matches_finite_differences(objective, d.weight_hh, d.dweight_hh, "weight_hh");
    expect_matches_finite_differences(objective, d.bias, d.dbias, "bias");
  }
  const std::vector<RecurrentParams> once = p;
  objective();
  std::vector<float> dy = random_vector(y.size(), seed + 1);
  layer->backward(*backend, x.data(), y.data(), dy.data(), nullptr, kBatch, true);
  for (size_t d = 0; d < p.size(); ++d)
    for (const auto& [twice, single] :
         {std::pair{&p[d].dweight_ih, &once[d].dweight_ih},
          std::pair{&p[d].dweight_hh, &once[d].dweight_hh}, std::pair{&p[d].dbias, &once[d].dbias}})
      for (size_t i = 0; i < twice->size(); ++i)
        EXPECT_NEAR((*twice)[i], 2 * (*single)[i], 1e-5) << "accumulated, direction " << d;
}

// Keras' dropout and recurrent_dropout in a training pass: the layer's outputs are the equations
// with x and the h that the recurrent product reads multiplied by masks of the dropout op's (each
// the same at every step), drawn with the layer's keys from its pass's; an inference pass is the
// layer without dropout, bit for bit. Returns the layer (its scratch on `backend`), its parameters
// and x, for more checks.
template <typename Cell>
struct DropoutCase {
  std::unique_ptr<typename Cell::Layer> layer;
  std::vector<RecurrentParams> params;
  std::vector<float> x, y;
};
template <typename Cell>
DropoutCase<Cell> expect_dropout_masks_each_step_alike(ComputeBackend& backend, uint64_t seed) {
  const float rate = 0.3f, recurrent_rate = 0.4f;
  DropoutCase<Cell> c{make_layer<Cell>(true, false, rate, recurrent_rate),
                      directions<Cell>(1, kFeatures, kUnits),
                      random_vector(kBatch * kSteps * kFeatures, seed),
                      std::vector<float>(kBatch * kSteps * kUnits)};
  bind(*c.layer, c.params);
  Pass pass;
  pass.training = true;
  pass.key = 77;
  pass.first_position = 5;
  c.layer->set_pass(pass);
  const auto mask = [&](int64_t width, float r, uint64_t counter) {
    const std::vector<float> ones(kBatch * width, 1.0f);
    std::vector<float> m(ones.size());
    backend.dropout(ones.data(), m.data(), kBatch, width, 1, r, counter_hash(pass.key, counter),
                    pass.first_position);
    return m;
  };
  const std::vector<float> x_mask = mask(kFeatures, rate, 0),
                           h_mask = mask(kUnits, recurrent_rate, 1);
  std::vector<float> masked_x = c.x;
  for (int64_t b = 0; b < kBatch; ++b)
    for (int64_t t = 0; t < kSteps; ++t)
      for (int64_t f = 0; f < kFeatures; ++f)
        masked_x[(b * kSteps + t) * kFeatures + f] *= x_mask[b * kFeatures + f];
  const std::vector<double> expected =
      Cell::reference(c.params[0], masked_x, kBatch, kSteps, kFeatures, kUnits, h_mask);
  c.layer->forward(backend, c.x.data(), c.y.data(), kBatch);
  for (size_t i = 0; i < c.y.size(); ++i) EXPECT_NEAR(c.y[i], expected[i], 1e-6) << i;

  pass.training = false;
  c.layer->set_pass(pass);
  const auto plain = make_layer<Cell>(true, false);
  bind(*plain, c.params);
  std::vector<float> inferred(c.y.size()), without(c.y.size());
  c.layer->forward(backend, c.x.data(), inferred.data(), kBatch);
  plain->forward(backend, c.x.data(), without.data(), kBatch);
  EXPECT_EQ(inferred, without);
  pass.training = true;
  c.layer->set_pass(pass);
  return c;
}

}  // namespace ddp
