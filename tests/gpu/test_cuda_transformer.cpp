// The transformer encoder on the CUDA backend against the CPU's (the specification): outputs,
// input gradients and every parameter gradient, post- and pre-normalization, with and without
// padding steps, causal or not (Note [self-attention]), through batched_matmul (cuBLAS's strided
// batches over the heads' views), mask_keys, softmax, layer normalization, the dense ops and
// dropout's masks.

#include <gtest/gtest.h>

#include <tuple>
#include <vector>

#include "gpu_test_support.h"
#include "nn/transformer_encoder.h"

namespace ddp {
namespace {

// (normalize_first, padded, dropout, causal)
class CudaTransformer : public ::testing::TestWithParam<std::tuple<bool, bool, float, bool>> {};

TEST_P(CudaTransformer, MatchesTheCpu) {
  const auto [normalize_first, padded, dropout, causal] = GetParam();
  auto cpu = make_cpu_backend(false);
  auto cuda = gpu();
  const int64_t batch = 5, steps = 7, dim = 12, heads = 3, inner = 20;
  // A padding step in each sample but the first: its last steps, one more each.
  std::vector<float> padding(batch * steps, 1.0f);
  for (int64_t b = 1; b < batch; ++b)
    for (int64_t t = steps - b; t < steps; ++t) padding[b * steps + t] = 0;
  const auto x = random_values(batch * steps * dim, 1), dy = random_values(x.size(), 2);
  std::vector<std::vector<float>> results[2];
  ComputeBackend* backends[2] = {cpu.get(), cuda.get()};
  for (int k = 0; k < 2; ++k) {
    ComputeBackend& be = *backends[k];
    TransformerEncoder layer(steps, dim, heads, inner, Activation::kGelu, dropout, 1e-5f,
                             normalize_first, causal);
    std::vector<Mirror> params, grads;
    params.reserve(12);
    grads.reserve(12);
    std::vector<float*> p, g;
    uint64_t seed = 3;
    for (const ParamSpec& spec : layer.param_specs()) {
      const auto n = static_cast<size_t>(spec.shape.numel());
      params.emplace_back(be, random_values(n, seed++, -0.5f, 0.5f));
      grads.emplace_back(be, std::vector<float>(n));
      p.push_back(params.back().buffer.data());
      g.push_back(grads.back().buffer.data());
    }
    layer.bind(p, g);
    Mirror X(be, x), DY(be, dy), M(be, padding), Y(be, std::vector<float>(x.size())),
        DX(be, std::vector<float>(x.size()));
    layer.set_input_mask(padded ? M.buffer.data() : nullptr);
    Pass pass;
    pass.training = true;
    pass.key = 21;
    layer.set_pass(pass);
    layer.forward(be, X.buffer.data(), Y.buffer.data(), batch);
    layer.backward(be, X.buffer.data(), Y.buffer.data(), DY.buffer.data(), DX.buffer.data(), batch,
                   false);
    results[k] = {Y.read(), DX.read()};
    for (const Mirror& grad : grads) results[k].push_back(grad.read());
  }
  for (size_t i = 0; i < results[0].size(); ++i)
    expect_close(results[0][i], results[1][i], i == 0 ? "y" : i == 1 ? "dx" : "parameter grad");
}

INSTANTIATE_TEST_SUITE_P(NormalizationPaddingDropoutCausal, CudaTransformer,
                         ::testing::Combine(::testing::Bool(), ::testing::Bool(),
                                            ::testing::Values(0.0f, 0.2f), ::testing::Bool()));

}  // namespace
}  // namespace ddp
