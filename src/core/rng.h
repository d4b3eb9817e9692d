#pragma once
// A small deterministic generator: the same seed gives the same stream with every compiler and
// standard library, which std::uniform_*_distribution does not promise. Data synthesis, weight
// initialization and the sampler's shuffles all depend on that.

#include <cstdint>

namespace ddp {

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}

  // SplitMix64 (Steele, Lea, Flood 2014).
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }

  // Uniform in [0, 1) with 24 random bits: every value is exactly representable as a float.
  float uniform() { return static_cast<float>(next() >> 40) * 0x1.0p-24f; }

  float uniform(float low, float high) { return low + (high - low) * uniform(); }

  // Uniform in [0, n) without modulo bias (Lemire's multiply-shift with rejection).
  uint64_t below(uint64_t n) {
    unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < n) {
      const uint64_t threshold = -n % n;
      while (low < threshold) {
        m = static_cast<unsigned __int128>(next()) * n;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

 private:
  uint64_t state_;
};

// Derives independent seeds for separate purposes (data, init, shuffle of epoch e) from one seed.
inline uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  Rng rng(seed ^ (stream * 0xD1B54A32D192ED03ULL));
  return rng.next();
}

}  // namespace ddp
