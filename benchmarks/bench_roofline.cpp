// The two limits a training step runs into on one core, for the roofline columns of
// benchmarks/compare_pytorch.py: the FMA peak (GFLOP/s of dependent-free fused multiply-adds at
// the widest vector width this build targets) and the streaming bandwidth of a triad over arrays
// the size of W3's parameters (59 MB each, like its optimizer's streams). Prints one JSON object;
// medians of 11 runs after a warm-up, with their min and max.
//   bench_roofline

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include <immintrin.h>

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct Stats {
  double median, min, max;
};

template <class F>
Stats measure(F run) {
  run();  // warm-up: clocks, TLB, caches
  std::vector<double> values;
  for (int i = 0; i < 11; ++i) values.push_back(run());
  std::sort(values.begin(), values.end());
  return {values[values.size() / 2], values.front(), values.back()};
}

#if defined(__AVX512F__)
using Vec = __m512;
constexpr const char* kIsa = "AVX-512";
Vec splat(float x) { return _mm512_set1_ps(x); }
Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
void store(float* out, Vec v) { _mm512_store_ps(out, v); }
#elif defined(__FMA__)
using Vec = __m256;
constexpr const char* kIsa = "AVX2 + FMA";
Vec splat(float x) { return _mm256_set1_ps(x); }
Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
void store(float* out, Vec v) { _mm256_store_ps(out, v); }
#else  // a portable build (-march=x86-64): SSE2's multiply and add, the peak such a build can reach
using Vec = __m128;
constexpr const char* kIsa = "SSE2 (no FMA: multiply + add)";
Vec splat(float x) { return _mm_set1_ps(x); }
Vec fma(Vec a, Vec b, Vec c) { return _mm_add_ps(_mm_mul_ps(a, b), c); }
void store(float* out, Vec v) { _mm_store_ps(out, v); }
#endif
constexpr int kLanes = sizeof(Vec) / sizeof(float);

float sum(Vec v) {
  alignas(64) float lanes[kLanes];
  store(lanes, v);
  float total = 0;
  for (float x : lanes) total += x;
  return total;
}

// 12 independent accumulators: enough to cover the FMA latency (4 cycles) on 2 ports.
double fma_gflops() {
  Vec acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = splat(0.001f * static_cast<float>(i));
  const Vec b = splat(0.9999f), c = splat(0.0001f);
  constexpr long kIterations = 20'000'000;
  const auto start = std::chrono::steady_clock::now();
  for (long i = 0; i < kIterations; ++i) {
#pragma GCC unroll 12
    for (int j = 0; j < 12; ++j) acc[j] = fma(acc[j], b, c);
    __asm__ volatile("");  // no memory clobber: that would spill the accumulators
  }
  const double seconds = seconds_since(start);
  float total = 0;
#pragma GCC unroll 12
  for (int j = 0; j < 12; ++j) total += sum(acc[j]);
  if (total == 42.0f) std::puts("");  // keeps the result alive
  return 2.0 * kLanes * 12 * static_cast<double>(kIterations) / seconds / 1e9;
}

// a = b + s c over three arrays of W3's parameter count; bytes read and written per second.
double triad_gbs(std::vector<float>& a, const std::vector<float>& b, const std::vector<float>& c) {
  const auto start = std::chrono::steady_clock::now();
  const size_t n = a.size();
  float* __restrict out = a.data();
  const float* __restrict x = b.data();
  const float* __restrict y = c.data();
  for (size_t i = 0; i < n; ++i) out[i] = x[i] + 0.5f * y[i];
  return 3.0 * static_cast<double>(n) * sizeof(float) / seconds_since(start) / 1e9;
}

}  // namespace

int main() {
  constexpr size_t kW3Parameters = 14'708'746;
  std::vector<float> a(kW3Parameters, 1.0f), b(kW3Parameters, 2.0f), c(kW3Parameters, 3.0f);
  const Stats flops = measure(fma_gflops);
  const Stats bandwidth = measure([&] { return triad_gbs(a, b, c); });
  std::printf(
      "{\"isa\": \"%s\", \"fma_gflops\": {\"median\": %.1f, \"min\": %.1f, \"max\": %.1f}, "
      "\"triad_gbs\": {\"median\": %.2f, \"min\": %.2f, \"max\": %.2f}, \"triad_mb_per_array\": "
      "%.1f, \"check\": %.1f}\n",
      kIsa, flops.median, flops.min, flops.max, bandwidth.median, bandwidth.min, bandwidth.max,
      static_cast<double>(kW3Parameters) * sizeof(float) / 1e6, static_cast<double>(a[7]));
  return 0;
}
