#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "comm/device_work.h"

namespace ddp {

// Ends the process when one collective has been in progress for longer than the timeout: a rank
// that died or stalled would otherwise leave every other rank waiting forever. It prints one line
// naming the rank, the step and the collective, then exits without MPI_Abort (which may not be
// called from a second thread); mpirun then ends the rest of the job. Host collectives are
// guarded by enter(); device collectives are tracked (Note [device watchdog]).
class Watchdog final : public DeviceWorkMonitor {
 public:
  // What ends the job, given the line to print; the default prints it to stderr and exits with
  // ExitCode::kRuntime. Tests pass one that records the line and returns, which stops the watch.
  using Expiry = std::function<void(const std::string& line)>;
  // A timeout of 0 disables the watchdog until set_timeout(). `who` prefixes its line; `hosts`
  // (describe_hosts(), empty on one host) ends it, so that the line tells which hosts the job
  // spans and launch/ddp_run.sh can name the ones that fell silent.
  Watchdog(double timeout_seconds, std::string who, Expiry expiry = {}, std::string hosts = {});
  ~Watchdog() override;
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

  void set_step(int64_t step) { step_.store(step, std::memory_order_relaxed); }
  void set_timeout(double seconds) { timeout_.store(seconds, std::memory_order_relaxed); }

  // Marks the calling thread as inside `what` until the returned guard is destroyed.
  class Guard {
   public:
    explicit Guard(Watchdog* dog) : dog_(dog) {}
    Guard(Guard&& other) noexcept : dog_(other.dog_) { other.dog_ = nullptr; }
    Guard(const Guard&) = delete;
    Guard& operator=(const Guard&) = delete;
    ~Guard();

   private:
    Watchdog* dog_;
  };
  Guard enter(const char* what, size_t elements);

  void track(const void* owner, const char* what, size_t elements,
             std::function<DeviceWorkState(std::string& error)> poll,
             std::function<void()> abort) override;
  void forget(const void* owner) override;

 private:
  struct Tracked {
    const void* owner;
    const char* what;
    size_t elements;
    int64_t step;
    int64_t started_ns;
    std::function<DeviceWorkState(std::string&)> poll;
    std::function<void()> abort;
  };
  void watch();
  // True when the watch ended the job (or, with a test's expiry, stopped).
  bool check_guarded();
  bool check_tracked();
  // Ends the job with `reason` and the hosts the job spans.
  void expire(const std::string& reason);

  std::atomic<double> timeout_;
  std::string who_;
  std::string hosts_;
  std::atomic<int64_t> step_{0};
  std::atomic<int64_t> entered_ns_{0};  // 0: not in a collective
  std::atomic<const char*> what_{""};
  std::atomic<size_t> elements_{0};
  Expiry expiry_;
  std::mutex tracked_mutex_;
  std::vector<Tracked> tracked_;  // device collectives not yet seen complete
  std::mutex mutex_;
  std::condition_variable stop_signal_;
  bool stopping_ = false;
  std::thread thread_;
};

// A Communicator whose every collective runs under a Watchdog guard.
std::unique_ptr<Communicator> watched(Communicator& inner, Watchdog& watchdog);

}  // namespace ddp
