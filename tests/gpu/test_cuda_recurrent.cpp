// The LSTM layer on the CUDA backend against the CPU's (the specification): its outputs, input
// gradient and parameter gradients over both return modes, one direction and two, through
// copy_matrix, add_to, the cell kernels and cuBLAS's products.

#include <gtest/gtest.h>

#include <tuple>

#include "gpu_test_support.h"
#include "nn/lstm.h"

namespace ddp {
namespace {

// (return_sequences, bidirectional)
class CudaLstm : public ::testing::TestWithParam<std::tuple<bool, bool>> {};

TEST_P(CudaLstm, MatchesTheCpu) {
  const auto [sequences, bidirectional] = GetParam();
  const int64_t ways = bidirectional ? 2 : 1;
  auto cpu = make_cpu_backend(false);
  auto cuda = gpu();
  const int64_t batch = 9, steps = 7, features = 5, units = 6, gates = 4 * units;
  const auto x = random_values(batch * steps * features, 1),
             wi = random_values(gates * features, 2), wh = random_values(gates * units, 3),
             b = random_values(gates, 4);
  const int64_t out = batch * (sequences ? steps : 1) * units;
  const auto dy = random_values(out, 5);
  std::vector<std::vector<float>> results[2];
  ComputeBackend* backends[2] = {cpu.get(), cuda.get()};
  for (int k = 0; k < 2; ++k) {
    ComputeBackend& be = *backends[k];
    Lstm layer(steps, features, units, sequences, true, bidirectional);
    Mirror X(be, x), WI(be, wi), WH(be, wh), B(be, b), Y(be, std::vector<float>(out)), DY(be, dy),
        DX(be, std::vector<float>(x.size())), DWI(be, std::vector<float>(wi.size())),
        DWH(be, std::vector<float>(wh.size())), DB(be, std::vector<float>(b.size()));
    std::vector<float*> params, grads;  // each direction's three, in param_specs()' order
    for (int64_t d = 0; d < ways; ++d) {
      params.insert(params.end(),
                    {WI.buffer.data() + d * gates * features, WH.buffer.data() + d * gates * units,
                     B.buffer.data() + d * gates});
      grads.insert(grads.end(),
                   {DWI.buffer.data() + d * gates * features, DWH.buffer.data() + d * gates * units,
                    DB.buffer.data() + d * gates});
    }
    layer.bind(params, grads);
    layer.forward(be, X.buffer.data(), Y.buffer.data(), batch);
    layer.backward(be, X.buffer.data(), Y.buffer.data(), DY.buffer.data(), DX.buffer.data(), batch,
                   false);
    results[k] = {Y.read(), DX.read(), DWI.read(), DWH.read(), DB.read()};
  }
  const char* names[] = {"lstm y", "lstm dx", "lstm dweight_ih", "lstm dweight_hh", "lstm dbias"};
  for (size_t i = 0; i < 5; ++i) expect_close(results[0][i], results[1][i], names[i]);
}

INSTANTIATE_TEST_SUITE_P(ReturnSequencesAndDirections, CudaLstm,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool()));

}  // namespace
}  // namespace ddp
