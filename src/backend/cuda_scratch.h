#pragma once
// Device scratch of doubles for reductions whose partial sums the host adds in a fixed order,
// kept by the backend between calls and grown as needed.

#include <cuda_runtime.h>

#include <cstddef>

#include "backend/cuda_check.h"

namespace ddp::cuda {

class DeviceDoubles {
 public:
  DeviceDoubles() = default;
  DeviceDoubles(const DeviceDoubles&) = delete;
  DeviceDoubles& operator=(const DeviceDoubles&) = delete;
  ~DeviceDoubles() { cudaFree(data_); }

  double* reserve(size_t count) {
    if (count > count_) {
      cudaFree(data_);
      data_ = nullptr;
      cudaCheck(cudaMalloc(&data_, count * sizeof(double)));
      count_ = count;
    }
    return data_;
  }

 private:
  double* data_ = nullptr;
  size_t count_ = 0;
};

}  // namespace ddp::cuda
