#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstring>

#include "backend/cuda_check.h"

namespace ddp::cuda {

// Note [pinned staging]: host data reaches the device through two page-locked slots. The host
// copies into a slot and queues an asynchronous DMA on the compute stream, then returns: gathering
// the next batch overlaps the GPU's backward and optimizer work of this one. (A copy from pageable
// memory would first wait for the stream to drain.) A slot is refilled only after its previous
// DMA has completed, so the caller's buffer is free as soon as the call returns, as on the CPU.
class PinnedStaging {
 public:
  PinnedStaging() {
    for (Slot& slot : slots_)
      cudaCheck(cudaEventCreateWithFlags(&slot.copied, cudaEventDisableTiming));
  }
  ~PinnedStaging() {
    for (Slot& slot : slots_) {
      cudaEventSynchronize(slot.copied);
      cudaEventDestroy(slot.copied);
      if (slot.host) cudaFreeHost(slot.host);
    }
  }
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;

  void copy_to_device(const float* host, float* device, size_t count, cudaStream_t stream) {
    const size_t bytes = count * sizeof(float);
    if (bytes > kMaxSlotBytes) {  // parameters and checkpoints: rare, so no pinned copy of them
      cudaCheck(cudaMemcpyAsync(device, host, bytes, cudaMemcpyHostToDevice, stream));
      return;
    }
    Slot& slot = slots_[next_];
    next_ = (next_ + 1) % kSlots;
    cudaCheck(cudaEventSynchronize(slot.copied));  // a never-recorded event is complete
    if (slot.capacity < bytes) {
      if (slot.host) cudaCheck(cudaFreeHost(slot.host));
      slot.host = nullptr;
      cudaCheck(cudaMallocHost(&slot.host, bytes));
      slot.capacity = bytes;
    }
    std::memcpy(slot.host, host, bytes);
    cudaCheck(cudaMemcpyAsync(device, slot.host, bytes, cudaMemcpyHostToDevice, stream));
    cudaCheck(cudaEventRecord(slot.copied, stream));
  }

 private:
  static constexpr int kSlots = 2;
  static constexpr size_t kMaxSlotBytes = 64 << 20;
  struct Slot {
    void* host = nullptr;
    size_t capacity = 0;
    cudaEvent_t copied = nullptr;
  };
  Slot slots_[kSlots];
  int next_ = 0;
};

}  // namespace ddp::cuda
