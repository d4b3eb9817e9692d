// CPU backend micro-benchmarks: the Dense layers of the W2 (Fashion-MNIST MLP) and W3 (wide MLP)
// workloads, forward and backward, and the fused optimizer updates over a W3-sized buffer.
// Run: build/bench_kernels [--benchmark_filter=...]

#include <benchmark/benchmark.h>

#include "backend/backend.h"
#include "core/rng.h"

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
                            db.data(), b, in, out, Activation::kRelu, false);
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
    backend->adam_update(p.data(), g.data(), m.data(), v.data(), kWideMlpParams, 1e-3f, ++step,
                         AdamHyper{});
  state.SetBytesProcessed(state.iterations() * kWideMlpParams * sizeof(float) * 7);
}

void BM_SgdMomentumUpdate(benchmark::State& state) {
  auto backend = make_cpu_backend();
  auto p = random_buffer(*backend, kWideMlpParams, 1);
  auto g = random_buffer(*backend, kWideMlpParams, 2);
  DeviceBuffer velocity(*backend, kWideMlpParams);
  for (auto _ : state)
    backend->sgd_update(p.data(), g.data(), velocity.data(), kWideMlpParams, 1e-2f,
                        SgdHyper{0.9f, 0, false});
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

BENCHMARK_MAIN();
