#pragma once
// What the GPU tests share: the CUDA backend, random inputs, host vectors mirrored on a backend,
// and the comparison of a CUDA result with the CPU's (the specification).

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "backend/backend.h"
#include "core/rng.h"
#include "runtime/device.h"

namespace ddp {

inline std::unique_ptr<ComputeBackend> gpu(MatmulPrecision precision = MatmulPrecision::kFloat32) {
  return choose_device("cuda", false, precision, 0, 1);
}

inline std::vector<float> random_values(size_t n, uint64_t seed, float low = -1, float high = 1) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = rng.uniform(low, high);
  return v;
}

// A host vector mirrored on a backend.
struct Mirror {
  Mirror(ComputeBackend& backend, const std::vector<float>& host)
      : backend(backend), buffer(backend, host.size()) {
    backend.copy_to_device(host.data(), buffer.data(), host.size());
  }
  std::vector<float> read() const {
    std::vector<float> host(buffer.size());
    backend.copy_to_host(buffer.data(), host.data(), host.size());
    return host;
  }
  ComputeBackend& backend;
  DeviceBuffer buffer;
};

inline void expect_close(const std::vector<float>& expected, const std::vector<float>& actual,
                         const char* what, float tolerance = 1e-5f) {
  ASSERT_EQ(expected.size(), actual.size());
  float scale = 1e-6f;
  for (float v : expected) scale = std::max(scale, std::abs(v));
  for (size_t i = 0; i < expected.size(); ++i)
    ASSERT_LE(std::abs(expected[i] - actual[i]), tolerance * scale) << what << "[" << i << "]";
}

}  // namespace ddp
