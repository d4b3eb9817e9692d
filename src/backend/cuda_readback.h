#pragma once
// Note [deferred readback] on a device: a deferred result stays in device memory, is copied into
// page-locked host memory in stream order right behind the work that made it, and is read with a
// wait on an event recorded after that copy, which covers that work and nothing queued later.

#include <cuda_runtime.h>

#include <cstdint>

#include "backend/backend.h"

namespace ddp::cuda {

class DeviceReadback {
 public:
  DeviceReadback();
  ~DeviceReadback();
  DeviceReadback(const DeviceReadback&) = delete;
  DeviceReadback& operator=(const DeviceReadback&) = delete;

  // Behind a loss kernel with Readback::kLater: adds its per-row losses and correct counts
  // (device memory, `rows` each) to the held sums, in a fixed order.
  void hold_loss(const double* row_loss, const double* row_correct, int64_t rows,
                 cudaStream_t stream);
  // The flag an update with GradCheck::kFiniteLater sets on a NaN or infinity; after such an
  // update, flag_queued() queues its copy to the host.
  int* nonfinite_flag() const { return flag_; }
  void flag_queued(cudaStream_t stream);

  // Wait for the held results, return them and start afresh (the reset queued on `stream`).
  LossStats take_loss_stats(cudaStream_t stream);
  bool take_nonfinite(cudaStream_t stream);

 private:
  double* sums_ = nullptr;       // device: loss, correct
  int* flag_ = nullptr;          // device
  double* host_sums_ = nullptr;  // page-locked, so that the copies do not wait for the stream
  int* host_flag_ = nullptr;
  cudaEvent_t sums_copied_ = nullptr, flag_copied_ = nullptr;
  bool sums_held_ = false, flag_held_ = false;
};

}  // namespace ddp::cuda
