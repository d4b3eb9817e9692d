#pragma once
// Note [device watchdog]: a device collective (NCCL) never blocks the host that issues it; a rank
// whose peer died blocks later, in whatever waits for the GPU, where no guard around a host call
// would see it. So the device communicator hands every collective it enqueues to a monitor (the
// Watchdog), whose thread polls it: done, still pending, or failed (NCCL's asynchronous error).
// Pending past training.collective_timeout_s, or failed, ends the job: the communicator is
// aborted (ncclCommAbort, as PyTorch's NCCL watchdog does) and the process exits naming the step
// and the collective. Header-only, so the CUDA module can call it across the dlopen boundary.

#include <cstddef>
#include <functional>
#include <string>

namespace ddp {

enum class DeviceWorkState { kPending, kDone, kFailed };

class DeviceWorkMonitor {
 public:
  virtual ~DeviceWorkMonitor() = default;
  // `poll` reports the collective's state and, when it failed, why (in `error`); `abort` ends
  // the communicator's outstanding work. Both are called from the monitor's own thread until the
  // collective is done or `owner` (the communicator) calls forget().
  virtual void track(const void* owner, const char* what, size_t elements,
                     std::function<DeviceWorkState(std::string& error)> poll,
                     std::function<void()> abort) = 0;
  // Drops every collective of `owner`; returns once no poll of them is running.
  virtual void forget(const void* owner) = 0;
};

}  // namespace ddp
