#pragma once
// Copies with non-temporal stores where the destination allows (AVX-512 builds): each cache line
// is written whole without first being read, as a normal store does, and does not displace what
// the cache holds. For data that leaves the cache before anyone reads it: large weight gradients
// written in backward and read after it, parameters copied into another rank's buffer. Call
// _mm_sfence() before another thread or process reads dst.

#include <cstddef>
#include <cstdint>
#include <cstring>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace ddp {

inline void stream_copy(float* dst, const float* src, size_t n) {
  size_t i = 0;
#ifdef __AVX512F__
  for (; i < n && reinterpret_cast<uintptr_t>(dst + i) % 64 != 0; ++i) dst[i] = src[i];
  for (; i + 16 <= n; i += 16) _mm512_stream_ps(dst + i, _mm512_loadu_ps(src + i));
#endif
  if (i < n) std::memcpy(dst + i, src + i, (n - i) * sizeof(float));
}

}  // namespace ddp
