#pragma once
// What the recurrent layers' tests share. A Cell names the layer and its test parameters:
//   using Layer (Lstm, Gru); using Params (one direction's parameters and gradients);
//   static std::vector<Params> directions(int64_t count, int64_t features, int64_t units);
//   static void bind(Layer&, std::vector<Params>&);
//   static std::vector<double> reference(const Params&, const std::vector<float>& x, int64_t batch,
//       int64_t steps, int64_t features, int64_t units, const std::vector<float>& h_mask): every
//       step's h, (batch, steps, units), by PyTorch's documented equations in double, the h the
//       recurrent product reads times h_mask (batch, units) where it is not empty.

#include <gtest/gtest.h>

#include <cstdint>
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

// Both return modes, one direction and two: the layer's outputs are the equations', the reverse
// direction's the equations over the steps in the other order, each output at the step it read
// (Keras' and PyTorch's).
template <typename Cell>
void expect_documented_steps(uint64_t seed) {
  auto backend = make_cpu_backend();
  const std::vector<float> x = random_vector(kBatch * kSteps * kFeatures, seed);
  for (const bool bidirectional : {false, true}) {
    std::vector<typename Cell::Params> p =
        Cell::directions(bidirectional ? 2 : 1, kFeatures, kUnits);
    std::vector<std::vector<double>> expected = {
        Cell::reference(p[0], x, kBatch, kSteps, kFeatures, kUnits, {})};
    if (bidirectional)
      expected.push_back(Cell::reference(p[1], reversed_steps(x, kBatch, kSteps, kFeatures), kBatch,
                                         kSteps, kFeatures, kUnits, {}));
    const int64_t width = static_cast<int64_t>(p.size()) * kUnits;
    for (const bool sequences : {false, true}) {
      typename Cell::Layer layer(kSteps, kFeatures, kUnits, sequences, true, bidirectional);
      EXPECT_EQ(layer.output_shape(), sequences ? (Shape{kSteps, width}) : (Shape{width}));
      Cell::bind(layer, p);
      std::vector<float> y(kBatch * layer.output_shape().numel());
      layer.forward(*backend, x.data(), y.data(), kBatch);
      for (size_t d = 0; d < p.size(); ++d)
        for (int64_t b = 0; b < kBatch; ++b)
          for (int64_t t = sequences ? 0 : kSteps - 1; t < kSteps; ++t)
            for (int64_t j = 0; j < kUnits; ++j) {
              const int64_t column = static_cast<int64_t>(d) * kUnits + j;
              const int64_t at = sequences ? (b * kSteps + t) * width + column : b * width + column;
              const int64_t read = d == 1 && sequences ? kSteps - 1 - t : t;
              EXPECT_NEAR(y[at], expected[d][(b * kSteps + read) * kUnits + j], 1e-6)
                  << "direction " << d << " sample " << b << " step " << t << " unit " << j;
            }
    }
  }
}

// Keras' dropout and recurrent_dropout in a training pass: the layer's outputs are the equations
// with x and the h that the recurrent product reads multiplied by masks of the dropout op's (each
// the same at every step), drawn with the layer's keys from its pass's; an inference pass is the
// layer without dropout, bit for bit. Returns the layer (its scratch on `backend`), its parameters
// and x, for more checks.
template <typename Cell>
struct DropoutCase {
  std::unique_ptr<typename Cell::Layer> layer;
  std::vector<typename Cell::Params> params;
  std::vector<float> x, y;
};
template <typename Cell>
DropoutCase<Cell> expect_dropout_masks_each_step_alike(ComputeBackend& backend, uint64_t seed) {
  const float rate = 0.3f, recurrent_rate = 0.4f;
  DropoutCase<Cell> c{std::make_unique<typename Cell::Layer>(kSteps, kFeatures, kUnits, true, true,
                                                             false, rate, recurrent_rate),
                      Cell::directions(1, kFeatures, kUnits),
                      random_vector(kBatch * kSteps * kFeatures, seed),
                      std::vector<float>(kBatch * kSteps * kUnits)};
  Cell::bind(*c.layer, c.params);
  Pass pass;
  pass.training = true;
  pass.key = 77;
  pass.first_position = 5;
  c.layer->set_pass(pass);
  const auto mask = [&](int64_t width, float r, uint64_t counter) {
    const std::vector<float> ones(kBatch * width, 1.0f);
    std::vector<float> m(ones.size());
    backend.dropout(ones.data(), m.data(), kBatch, width, r, counter_hash(pass.key, counter),
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
  typename Cell::Layer plain(kSteps, kFeatures, kUnits, true, true);
  Cell::bind(plain, c.params);
  std::vector<float> inferred(c.y.size()), without(c.y.size());
  c.layer->forward(backend, c.x.data(), inferred.data(), kBatch);
  plain.forward(backend, c.x.data(), without.data(), kBatch);
  EXPECT_EQ(inferred, without);
  pass.training = true;
  c.layer->set_pass(pass);
  return c;
}

}  // namespace ddp
