#pragma once
// Per-thread scratch buffers of the CPU kernels.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ddp {

// `buffer` holding at least `count` floats from a 64-byte boundary, its contents unspecified. It
// keeps its largest size: layers of different sizes share one buffer per thread, and a std::vector
// shrunk and grown again zero-fills what it regrows (~1.5% of a W2 step went to that memset).
//
// Note [aligned scratch]: the tiles load the packed panels kept here in whole vectors, and a
// std::vector's storage is only 16-byte aligned (glibc puts a large one 16 bytes into its pages),
// so every AVX-512 load of a panel straddled two cache lines. On the Xeon the 6 x 4 forward tile
// ran 0.85-0.9x as fast that way; W2 and W3 ran 1.03-1.08x as fast once the scratch started on a
// line (benchmarks/results/xeon/aligned_scratch.md).
inline float* scratch(std::vector<float>& buffer, size_t count) {
  constexpr size_t kLineFloats = 64 / sizeof(float);
  if (buffer.size() < count + kLineFloats - 1) buffer.resize(count + kLineFloats - 1);
  const auto address = reinterpret_cast<std::uintptr_t>(buffer.data());
  return buffer.data() + (kLineFloats - address / sizeof(float) % kLineFloats) % kLineFloats;
}

}  // namespace ddp
