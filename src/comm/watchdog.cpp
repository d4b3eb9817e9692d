#include "comm/watchdog.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"

namespace ddp {
namespace {

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

class WatchedCommunicator final : public Communicator {
 public:
  WatchedCommunicator(Communicator& inner, Watchdog& dog) : inner_(inner), dog_(dog) {}
  // Watches, and owns, a communicator split from a watched one.
  WatchedCommunicator(std::unique_ptr<Communicator> owned, Watchdog& dog)
      : owned_(std::move(owned)), inner_(*owned_), dog_(dog) {}
  std::string name() const override { return inner_.name(); }
  int rank() const override { return inner_.rank(); }
  int size() const override { return inner_.size(); }
  int local_rank() const override { return inner_.local_rank(); }
  int local_size() const override { return inner_.local_size(); }
  void all_reduce_sum(std::span<float> data) override {
    auto guard = dog_.enter("all-reduce (float)", data.size());
    inner_.all_reduce_sum(data);
  }
  void all_reduce_sum(std::span<double> data) override {
    auto guard = dog_.enter("all-reduce of metrics (double)", data.size());
    inner_.all_reduce_sum(data);
  }
  MemoryKind memory() const override { return inner_.memory(); }
  std::unique_ptr<SharedBuffer> allocate_shared(size_t count, SharedCopies copies,
                                                std::string& why_not) override {
    auto guard = dog_.enter("shared-memory allocation", count);
    std::unique_ptr<SharedBuffer> buffer = inner_.allocate_shared(count, copies, why_not);
    if (!buffer) return nullptr;
    return std::make_unique<WatchedSharedBuffer>(std::move(buffer), dog_);
  }
  std::unique_ptr<Communicator> split_host() override {
    auto guard = dog_.enter("communicator split (host)", 0);
    return wrap(inner_.split_host());
  }
  std::unique_ptr<Communicator> split(int color, int key) override {
    auto guard = dog_.enter("communicator split", 0);
    return wrap(inner_.split(color, key));
  }
  std::string choose_large_sums(RingChoice choice) override {
    return inner_.choose_large_sums(choice);
  }
  // The wait, not the start, is where a rank blocks; the gradient sync waits on the Work.
  std::unique_ptr<Work> all_reduce_sum_async(std::span<float> data) override {
    return std::make_unique<WatchedWork>(inner_.all_reduce_sum_async(data), dog_, data.size());
  }
  void all_reduce_sum_bf16(std::span<uint16_t> data) override {
    auto guard = dog_.enter("all-reduce (bf16)", data.size());
    inner_.all_reduce_sum_bf16(data);
  }
  std::unique_ptr<Work> all_reduce_sum_bf16_async(std::span<uint16_t> data) override {
    return std::make_unique<WatchedWork>(inner_.all_reduce_sum_bf16_async(data), dog_, data.size());
  }
  int all_reduce_max(int value) override {
    auto guard = dog_.enter("agreement (all-reduce max)", 1);
    return inner_.all_reduce_max(value);
  }
  void reduce_scatter_sum(std::span<float> in, std::span<float> shard,
                          std::span<const int> counts) override {
    auto guard = dog_.enter("reduce-scatter (ZeRO-1)", in.size());
    inner_.reduce_scatter_sum(in, shard, counts);
  }
  void all_gather(std::span<float> data, std::span<const int> counts) override {
    auto guard = dog_.enter("all-gather (ZeRO-1)", data.size());
    inner_.all_gather(data, counts);
  }
  void broadcast_bytes(std::span<std::byte> data, int root) override {
    auto guard = dog_.enter("broadcast", data.size());
    inner_.broadcast_bytes(data, root);
  }
  void barrier() override {
    auto guard = dog_.enter("barrier", 0);
    inner_.barrier();
  }
  [[noreturn]] void abort(int exit_code) override {
    inner_.abort(exit_code);
    std::_Exit(exit_code);  // [[noreturn]] does not carry through a virtual call for GCC
  }

 private:
  // Its reductions wait at barriers for every rank of the host.
  class WatchedSharedBuffer final : public SharedBuffer {
   public:
    WatchedSharedBuffer(std::unique_ptr<SharedBuffer> inner, Watchdog& dog)
        : inner_(std::move(inner)), dog_(dog) {}
    std::span<float> span() override { return inner_->span(); }
    void all_reduce_sum(size_t offset, size_t count, Summands summands) override {
      auto guard = dog_.enter("all-reduce (float, shared memory)", count);
      inner_->all_reduce_sum(offset, count, summands);
    }
    void reduce_scatter_sum(size_t offset, std::span<const int> counts, Summands summands,
                            const PieceFn& consume = {}) override {
      auto guard = dog_.enter("reduce-scatter (shared memory)", total(counts));
      inner_->reduce_scatter_sum(offset, counts, summands, consume);
    }
    void all_gather(size_t offset, std::span<const int> counts,
                    const PieceFn& produce = {}) override {
      auto guard = dog_.enter("all-gather (shared memory)", total(counts));
      inner_->all_gather(offset, counts, produce);
    }
    void publish(size_t begin, size_t count) override { inner_->publish(begin, count); }
    void synchronize() override {
      auto guard = dog_.enter("barrier (shared memory)", 0);
      inner_->synchronize();
    }

   private:
    std::unique_ptr<SharedBuffer> inner_;
    Watchdog& dog_;
  };

  class WatchedWork final : public Work {
   public:
    WatchedWork(std::unique_ptr<Work> inner, Watchdog& dog, size_t elements)
        : inner_(std::move(inner)), dog_(dog), elements_(elements) {}
    bool test() override { return inner_->test(); }
    void wait() override {
      auto guard = dog_.enter("all-reduce (float, overlapped)", elements_);
      inner_->wait();
    }

   private:
    std::unique_ptr<Work> inner_;
    Watchdog& dog_;
    size_t elements_;
  };

  std::unique_ptr<Communicator> wrap(std::unique_ptr<Communicator> part) {
    if (!part) return nullptr;
    return std::make_unique<WatchedCommunicator>(std::move(part), dog_);
  }
  static size_t total(std::span<const int> counts) {
    size_t sum = 0;
    for (int c : counts) sum += static_cast<size_t>(c);
    return sum;
  }

  std::unique_ptr<Communicator> owned_;  // null unless split from a watched communicator
  Communicator& inner_;
  Watchdog& dog_;
};

}  // namespace

Watchdog::Watchdog(double timeout_seconds, std::string who, Expiry expiry, std::string hosts)
    : timeout_(timeout_seconds),
      who_(std::move(who)),
      hosts_(std::move(hosts)),
      expiry_(std::move(expiry)),
      thread_([this] { watch(); }) {}

Watchdog::~Watchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  stop_signal_.notify_all();
  thread_.join();
}

Watchdog::Guard Watchdog::enter(const char* what, size_t elements) {
  what_.store(what, std::memory_order_relaxed);
  elements_.store(elements, std::memory_order_relaxed);
  entered_ns_.store(now_ns(), std::memory_order_release);
  return Guard(this);
}

Watchdog::Guard::~Guard() {
  if (dog_) dog_->entered_ns_.store(0, std::memory_order_release);
}

void Watchdog::track(const void* owner, const char* what, size_t elements,
                     std::function<DeviceWorkState(std::string& error)> poll,
                     std::function<void()> abort) {
  std::lock_guard<std::mutex> lock(tracked_mutex_);
  tracked_.push_back({owner, what, elements, step_.load(std::memory_order_relaxed), now_ns(),
                      std::move(poll), std::move(abort)});
}

void Watchdog::forget(const void* owner) {
  std::lock_guard<std::mutex> lock(tracked_mutex_);
  std::erase_if(tracked_, [owner](const Tracked& t) { return t.owner == owner; });
}

void Watchdog::expire(const std::string& reason) {
  const std::string line = hosts_.empty() ? reason : reason + "; the job's hosts: " + hosts_;
  if (expiry_) return expiry_(line);
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
  std::_Exit(static_cast<int>(ExitCode::kRuntime));
}

bool Watchdog::check_guarded() {
  const int64_t entered = entered_ns_.load(std::memory_order_acquire);
  const double timeout = timeout_.load(std::memory_order_relaxed);
  if (entered == 0 || timeout <= 0) return false;
  const double waited = static_cast<double>(now_ns() - entered) * 1e-9;
  if (waited < timeout) return false;
  char line[512];
  std::snprintf(line, sizeof line,
                "%sddp_train: error: watchdog: step %lld has been in %s of %zu elements for "
                "%.1f s (training.collective_timeout_s: %g); another rank has died or stalled",
                who_.c_str(), static_cast<long long>(step_.load()), what_.load(), elements_.load(),
                waited, timeout);
  expire(line);
  return true;
}

bool Watchdog::check_tracked() {
  const double timeout = timeout_.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(tracked_mutex_);
  for (auto it = tracked_.begin(); it != tracked_.end();) {
    std::string error;
    const DeviceWorkState state = it->poll(error);
    if (state == DeviceWorkState::kDone) {
      it = tracked_.erase(it);
      continue;
    }
    const double waited = static_cast<double>(now_ns() - it->started_ns) * 1e-9;
    char line[768];
    if (state == DeviceWorkState::kFailed) {
      std::snprintf(line, sizeof line,
                    "%sddp_train: error: watchdog: step %lld: %s of %zu elements failed on the "
                    "device: %s; communicator aborted",
                    who_.c_str(), static_cast<long long>(it->step), it->what, it->elements,
                    error.c_str());
    } else if (timeout > 0 && waited >= timeout) {
      std::snprintf(line, sizeof line,
                    "%sddp_train: error: watchdog: step %lld: %s of %zu elements has not "
                    "completed on the device after %.1f s (training.collective_timeout_s: %g); "
                    "another rank has died or stalled; communicator aborted",
                    who_.c_str(), static_cast<long long>(it->step), it->what, it->elements, waited,
                    timeout);
    } else {
      ++it;
      continue;
    }
    // The collective will never finish: abort it, or the exit would wait for the device.
    it->abort();
    expire(line);
    return true;
  }
  return false;
}

void Watchdog::watch() {
  const auto poll = std::chrono::milliseconds(100);
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_signal_.wait_for(lock, poll, [this] { return stopping_; }))
    if (check_guarded() || check_tracked()) return;
}

std::unique_ptr<Communicator> watched(Communicator& inner, Watchdog& watchdog) {
  return std::make_unique<WatchedCommunicator>(inner, watchdog);
}

}  // namespace ddp
