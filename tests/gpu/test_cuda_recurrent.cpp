// The LSTM, GRU and SimpleRNN layers on the CUDA backend against the CPU's (the specification):
// their outputs, input gradients and parameter gradients over both return modes, one direction and
// two, with and without padding steps (Note [padding masks]), through copy_matrix, add_to,
// carry_rows, the cell kernels, the activation ops (the SimpleRNN's, tanh from its output, GELU
// from its kept sum) and cuBLAS's products; and the masking op pair.

#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <tuple>

#include "gpu_test_support.h"
#include "nn/gru.h"
#include "nn/lstm.h"
#include "nn/simple_rnn.h"

namespace ddp {
namespace {

// (cell: "lstm", "gru", "simple_rnn" (tanh) or "simple_rnn_gelu", return_sequences, bidirectional,
// padded)
class CudaRecurrent : public ::testing::TestWithParam<std::tuple<std::string, bool, bool, bool>> {};

TEST_P(CudaRecurrent, MatchesTheCpu) {
  const auto [cell, sequences, bidirectional, padded] = GetParam();
  const bool gru = cell == "gru", simple = cell.starts_with("simple_rnn");
  const int64_t ways = bidirectional ? 2 : 1;
  auto cpu = make_cpu_backend(false);
  auto cuda = gpu();
  // Per direction: the gate rows, and the bias's values (the GRU's two biases in one parameter).
  const int64_t batch = 9, steps = 7, features = 5, units = 6,
                gates = (simple ? 1
                         : gru  ? 3
                                : 4) *
                        units;
  const int64_t biases = gru ? 2 * gates : gates;
  const auto x = random_values(batch * steps * features, 1),
             wi = random_values(ways * gates * features, 2),
             wh = random_values(ways * gates * units, 3), b = random_values(ways * biases, 4);
  const int64_t out = batch * (sequences ? steps : 1) * ways * units;
  const auto dy = random_values(out, 5);
  // A padding step in each row but every fourth: at its first step, its last, or between.
  std::vector<float> padding(batch * steps, 1.0f);
  for (int64_t b = 0; b < batch; ++b)
    if (b % 4 != 0) padding[b * steps + (b * 3) % steps] = 0;
  std::vector<std::vector<float>> results[2];
  ComputeBackend* backends[2] = {cpu.get(), cuda.get()};
  for (int k = 0; k < 2; ++k) {
    ComputeBackend& be = *backends[k];
    std::unique_ptr<Layer> layer;
    if (gru)
      layer = std::make_unique<Gru>(steps, features, units, sequences, true, bidirectional);
    else if (simple)
      layer = std::make_unique<SimpleRnn>(
          steps, features, units, sequences, true, bidirectional, 0.0f, 0.0f,
          cell == "simple_rnn" ? Activation::kTanh : Activation::kGelu);
    else
      layer = std::make_unique<Lstm>(steps, features, units, sequences, true, bidirectional);
    Mirror X(be, x), WI(be, wi), WH(be, wh), B(be, b), Y(be, std::vector<float>(out)), DY(be, dy),
        DX(be, std::vector<float>(x.size())), DWI(be, std::vector<float>(wi.size())),
        DWH(be, std::vector<float>(wh.size())), DB(be, std::vector<float>(b.size())),
        M(be, padding);
    layer->set_input_mask(padded ? M.buffer.data() : nullptr);
    std::vector<float*> params, grads;  // each direction's three, in param_specs()' order
    for (int64_t d = 0; d < ways; ++d) {
      params.insert(params.end(),
                    {WI.buffer.data() + d * gates * features, WH.buffer.data() + d * gates * units,
                     B.buffer.data() + d * biases});
      grads.insert(grads.end(),
                   {DWI.buffer.data() + d * gates * features, DWH.buffer.data() + d * gates * units,
                    DB.buffer.data() + d * biases});
    }
    ASSERT_EQ(layer->param_specs().size(), params.size());
    layer->bind(params, grads);
    layer->forward(be, X.buffer.data(), Y.buffer.data(), batch);
    layer->backward(be, X.buffer.data(), Y.buffer.data(), DY.buffer.data(), DX.buffer.data(), batch,
                    false);
    results[k] = {Y.read(), DX.read(), DWI.read(), DWH.read(), DB.read()};
  }
  const char* names[] = {"y", "dx", "dweight_ih", "dweight_hh", "dbias"};
  for (size_t i = 0; i < 5; ++i)
    expect_close(results[0][i], results[1][i], (cell + " " + names[i]).c_str());
}

INSTANTIATE_TEST_SUITE_P(
    CellsReturnSequencesDirectionsAndPadding, CudaRecurrent,
    ::testing::Combine(::testing::Values("lstm", "gru", "simple_rnn", "simple_rnn_gelu"),
                       ::testing::Bool(), ::testing::Bool(), ::testing::Bool()));

// Keras' Masking's op pair: padding steps (every third, and one with a feature equal to the mask
// value alone, which is not padding) found, zeroed and marked exactly as on the CPU.
TEST(CudaMasking, MatchesTheCpu) {
  auto cpu = make_cpu_backend(false);
  auto cuda = gpu();
  const int64_t rows = 1000, width = 5;
  auto x = random_values(rows * width, 6);
  for (int64_t r = 0; r < rows; r += 3) std::fill_n(x.begin() + r * width, width, -1.0f);
  x[width + 2] = -1.0f;
  const auto dy = random_values(rows * width, 7);
  std::vector<std::vector<float>> results[2];
  ComputeBackend* backends[2] = {cpu.get(), cuda.get()};
  for (int k = 0; k < 2; ++k) {
    ComputeBackend& be = *backends[k];
    Mirror X(be, x), DY(be, dy), MASK(be, std::vector<float>(rows)),
        Y(be, std::vector<float>(x.size())), DX(be, std::vector<float>(x.size()));
    be.masking_forward(X.buffer.data(), -1.0f, MASK.buffer.data(), Y.buffer.data(), rows, width);
    be.masking_backward(MASK.buffer.data(), DY.buffer.data(), DX.buffer.data(), rows, width);
    results[k] = {MASK.read(), Y.read(), DX.read()};
  }
  EXPECT_EQ(results[0], results[1]);
  EXPECT_EQ(results[1][0][0], 0.0f);
  EXPECT_EQ(results[1][0][1], 1.0f);
}

}  // namespace
}  // namespace ddp
