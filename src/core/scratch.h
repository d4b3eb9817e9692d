#pragma once
// Per-thread scratch buffers of the CPU kernels.

#include <cstddef>
#include <vector>

namespace ddp {

// `buffer` holding at least `count` floats, its contents unspecified. It keeps its largest size:
// layers of different sizes share one buffer per thread, and a std::vector shrunk and grown again
// zero-fills what it regrows (~1.5% of a W2 step went to that memset).
inline float* scratch(std::vector<float>& buffer, size_t count) {
  if (buffer.size() < count) buffer.resize(count);
  return buffer.data();
}

}  // namespace ddp
