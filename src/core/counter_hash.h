#pragma once
// A counter-based random stream: element n of stream `key` is a hash of (key, n), so any element
// can be drawn alone, on any rank or device, in any order. Dropout masks use it (Note [dropout
// mask]). Host and CUDA code share these functions.

#include <cstdint>

#include "core/host_device.h"

namespace ddp {

// SplitMix64's finalizer over the key-scrambled counter: consecutive counters give independent
// looking 64-bit values.
DDP_HOST_DEVICE inline uint64_t counter_hash(uint64_t key, uint64_t counter) {
  uint64_t z = key + (counter + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// True when dropout at `rate` drops element `counter`: its hash, as a uniform value in [0, 1)
// with 24 bits, falls below the rate.
DDP_HOST_DEVICE inline bool dropout_drops(uint64_t key, uint64_t counter, float rate) {
  return static_cast<float>(counter_hash(key, counter) >> 40) * 0x1.0p-24f < rate;
}

// dropout_drops in integers, which a compiler vectorizes: the hash's top 24 bits h are exact in a
// float and scaling by 2^-24 is exact, so h * 2^-24 < rate exactly when h < rate * 2^24, that is
// when h < ceil(rate * 2^24), this threshold.
inline uint64_t dropout_threshold(float rate) {
  return static_cast<uint64_t>(__builtin_ceilf(rate * 0x1.0p24f));
}
inline bool dropout_drops_below(uint64_t key, uint64_t counter, uint64_t threshold) {
  return (counter_hash(key, counter) >> 40) < threshold;
}

}  // namespace ddp
