#pragma once
// Copies with non-temporal stores where the destination allows (AVX2 or AVX-512 builds, Note [SIMD
// width]): each cache line
// is written whole without first being read, as a normal store does, and does not displace what
// the cache holds. For data that leaves the cache before anyone reads it: large weight gradients
// written in backward and read after it, parameters copied into another rank's buffer. Call
// _mm_sfence() before another thread or process reads dst.

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/simd.h"

namespace ddp {

inline void stream_copy(float* dst, const float* src, size_t n) {
  size_t i = 0;
#ifdef DDP_SIMD_TILES
  constexpr size_t kLanes = simd::kLanes;
  for (; i < n && reinterpret_cast<uintptr_t>(dst + i) % (kLanes * sizeof(float)) != 0; ++i) {
    dst[i] = src[i];
  }
  for (; i + kLanes <= n; i += kLanes) simd::stream(dst + i, simd::load(src + i));
#endif
  if (i < n) std::memcpy(dst + i, src + i, (n - i) * sizeof(float));
}

}  // namespace ddp
