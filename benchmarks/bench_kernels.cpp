// CPU backend micro-benchmarks: the Dense layers of the W2 (Fashion-MNIST MLP) and W3 (wide MLP)
// workloads, the convolutions of W4 (the Fashion-MNIST convnet) and batch normalization on W4's
// shapes, forward and backward, and the fused optimizer updates over a W3-sized buffer. GFLOP/s
// counts the multiply-adds of the products (2 flops each), not im2col's copies. Run:
// build/bench_kernels [--benchmark_filter=...]

#include <benchmark/benchmark.h>

#include "backend/backend.h"
#include "core/rng.h"
#include "nn/batch_norm.h"
#include "nn/conv2d.h"

namespace {

using namespace ddp;

DeviceBuffer random_buffer(ComputeBackend& backend, size_t count, uint64_t seed) {
  DeviceBuffer buffer(backend, count);
  Rng rng(seed);
  for (float& x : buffer.span()) x = rng.uniform(-1, 1);
  return buffer;
}

// Arguments: batch, in, out.
void BM_DenseForward(benchmark::State& state) {
  auto backend = make_cpu_backend();
  const int64_t b = state.range(0), in = state.range(1), out = state.range(2);
  auto x = random_buffer(*backend, b * in, 1);
  auto w = random_buffer(*backend, out * in, 2);
  auto bias = random_buffer(*backend, out, 3);
  DeviceBuffer y(*backend, b * out);
  for (auto _ : state) {
    backend->dense_forward(x.data(), w.data(), bias.data(), y.data(), b, in, out,
                           Activation::kRelu);
    benchmark::DoNotOptimize(y.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(2.0 * b * in * out * state.iterations() / 1e9,
                                                 benchmark::Counter::kIsRate);
}

void BM_DenseBackward(benchmark::State& state) {
  auto backend = make_cpu_backend();
  const int64_t b = state.range(0), in = state.range(1), out = state.range(2);
  auto x = random_buffer(*backend, b * in, 1);
  auto w = random_buffer(*backend, out * in, 2);
  auto y = random_buffer(*backend, b * out, 3);
  auto dy = random_buffer(*backend, b * out, 4);
  DeviceBuffer dx(*backend, b * in), dw(*backend, out * in), db(*backend, out);
  for (auto _ : state) {
    backend->dense_backward(x.data(), w.data(), y.data(), dy.data(), dx.data(), dw.data(),
                            db.data(), b, in, out, Activation::kRelu, false, nullptr);
    benchmark::DoNotOptimize(dw.data());
  }
  state.counters["GFLOP/s"] = benchmark::Counter(4.0 * b * in * out * state.iterations() / 1e9,
                                                 benchmark::Counter::kIsRate);
}

constexpr size_t kWideMlpParams = 14'714'890;

void BM_AdamUpdate(benchmark::State& state) {
  auto backend = make_cpu_backend();
  auto p = random_buffer(*backend, kWideMlpParams, 1);
  auto g = random_buffer(*backend, kWideMlpParams, 2);
  DeviceBuffer m(*backend, kWideMlpParams), v(*backend, kWideMlpParams);
  int64_t step = 0;
  for (auto _ : state)
    backend->adam_update(p.data(), g.data(), m.data(), v.data(), kWideMlpParams, 1e-3f, 1, ++step,
                         AdamHyper{}, GradCheck::kFinite);
  state.SetBytesProcessed(state.iterations() * kWideMlpParams * sizeof(float) * 7);
}

void BM_SgdMomentumUpdate(benchmark::State& state) {
  auto backend = make_cpu_backend();
  auto p = random_buffer(*backend, kWideMlpParams, 1);
  auto g = random_buffer(*backend, kWideMlpParams, 2);
  DeviceBuffer velocity(*backend, kWideMlpParams);
  for (auto _ : state)
    backend->sgd_update(p.data(), g.data(), velocity.data(), kWideMlpParams, 1e-2f, 1,
                        SgdHyper{0.9f, 0, false}, GradCheck::kFinite);
  state.SetBytesProcessed(state.iterations() * kWideMlpParams * sizeof(float) * 5);
}

}  // namespace

// W1: 10 -> 64 -> 64 -> 10 at batch 32 (Note [small GEMM]).
BENCHMARK(BM_DenseForward)->Args({32, 10, 64})->Args({32, 64, 64})->Args({32, 64, 10});
BENCHMARK(BM_DenseBackward)->Args({32, 10, 64})->Args({32, 64, 64})->Args({32, 64, 10});
// W2: 784 -> 512 -> 256 -> 10 at batch 128.
BENCHMARK(BM_DenseForward)->Args({128, 784, 512})->Args({128, 512, 256})->Args({128, 256, 10});
BENCHMARK(BM_DenseBackward)->Args({128, 784, 512})->Args({128, 512, 256})->Args({128, 256, 10});
// W3: 1024 -> 4 x 2048 -> 10 at batch 64.
BENCHMARK(BM_DenseForward)->Args({64, 1024, 2048})->Args({64, 2048, 2048})->Args({64, 2048, 10});
BENCHMARK(BM_DenseBackward)->Args({64, 1024, 2048})->Args({64, 2048, 2048})->Args({64, 2048, 10});
BENCHMARK(BM_AdamUpdate);
BENCHMARK(BM_SgdMomentumUpdate);

// Arguments: batch, height (= width), channels, filters, whether backward computes the input
// gradient (W4's first layer does not); 3x3 kernels, padding same, relu. A training pass, as in a
// step: backward reuses the forward's windows.
void BM_Conv2D(benchmark::State& state, bool backward) {
  auto backend = make_cpu_backend();
  const int64_t b = state.range(0), hw = state.range(1), c = state.range(2), f = state.range(3);
  const bool input_grad = state.range(4) != 0;
  const Window2d w = Window2d::make(hw, hw, c, 3, 3, 1, 1, true);
  Conv2D conv(w, f, Activation::kRelu);
  auto weight = random_buffer(*backend, f * w.patch(), 1);
  auto bias = random_buffer(*backend, f, 2);
  DeviceBuffer dweight(*backend, f * w.patch()), dbias(*backend, f);
  float* params[] = {weight.data(), bias.data()};
  float* grads[] = {dweight.data(), dbias.data()};
  conv.bind(params, grads);
  conv.set_pass({true, 0, 0, {}});
  auto x = random_buffer(*backend, b * hw * hw * c, 3);
  DeviceBuffer y(*backend, b * w.out_pixels() * f), dx(*backend, b * hw * hw * c);
  auto dy = random_buffer(*backend, b * w.out_pixels() * f, 4);
  for (auto _ : state) {
    conv.forward(*backend, x.data(), y.data(), b);
    if (backward)
      conv.backward(*backend, x.data(), y.data(), dy.data(), input_grad ? dx.data() : nullptr, b,
                    false);
    benchmark::DoNotOptimize(y.data());
  }
  // forward; dW (and dx)
  const double products = backward ? (input_grad ? 3.0 : 2.0) : 1.0;
  state.counters["GFLOP/s"] = benchmark::Counter(
      products * 2.0 * b * w.out_pixels() * f * w.patch() * state.iterations() / 1e9,
      benchmark::Counter::kIsRate);
}

BENCHMARK_CAPTURE(BM_Conv2D, forward, false)->Args({64, 28, 1, 32, 0})->Args({64, 14, 32, 64, 1});
BENCHMARK_CAPTURE(BM_Conv2D, forward_and_backward, true)
    ->Args({64, 28, 1, 32, 0})
    ->Args({64, 14, 32, 64, 1});

// Arguments: batch, height (= width), channels. A training pass of batch normalization (the
// layer, host bookkeeping included); GB/s counts the tensors' bytes each op must move: forward
// reads x twice (sums, normalization) and writes y, backward reads dy and x twice and writes dx.
void BM_BatchNorm(benchmark::State& state, bool backward) {
  auto backend = make_cpu_backend();
  const int64_t b = state.range(0), hw = state.range(1), c = state.range(2);
  BatchNorm bn(Shape{hw, hw, c}, 0.99f, 1e-3f, false);
  auto gamma = random_buffer(*backend, c, 1);
  auto beta = random_buffer(*backend, c, 2);
  DeviceBuffer dgamma(*backend, c), dbeta(*backend, c), mean(*backend, c), var(*backend, c);
  float* params[] = {gamma.data(), beta.data()};
  float* grads[] = {dgamma.data(), dbeta.data()};
  float* buffers[] = {mean.data(), var.data()};
  bn.bind(params, grads);
  bn.bind_buffers(buffers);
  bn.set_pass({true, 0, 0, {}});
  const int64_t n = b * hw * hw * c;
  auto x = random_buffer(*backend, n, 3);
  auto dy = random_buffer(*backend, n, 4);
  DeviceBuffer y(*backend, n), dx(*backend, n);
  for (auto _ : state) {
    bn.forward(*backend, x.data(), y.data(), b);
    if (backward) bn.backward(*backend, x.data(), y.data(), dy.data(), dx.data(), b, false);
    benchmark::DoNotOptimize(y.data());
  }
  const double tensors = backward ? 3.0 + 5.0 : 3.0;
  state.counters["GB/s"] =
      benchmark::Counter(tensors * 4.0 * n * state.iterations() / 1e9, benchmark::Counter::kIsRate);
}

BENCHMARK_CAPTURE(BM_BatchNorm, forward, false)->Args({64, 28, 32})->Args({64, 14, 64});
BENCHMARK_CAPTURE(BM_BatchNorm, forward_and_backward, true)->Args({64, 28, 32})->Args({64, 14, 64});

BENCHMARK_MAIN();
