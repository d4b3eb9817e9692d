#include "core/thread_team.h"

#include <xmmintrin.h>

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

namespace ddp {
namespace {

// A team's products come back to back within a step, a few microseconds apart: waiting threads
// poll this long before they sleep, since waking a sleeping thread (on a virtual machine, an idle
// virtual CPU) took longer than the products themselves gain from it. Polling yields the core, so
// with more threads than cores the thread waited for still runs.
constexpr auto kPollFor = std::chrono::microseconds(500);

// Whether this thread is running a team's work item (see run()).
thread_local bool in_work = false;

// Runs a work item with in_work set, so that a run() inside it stays on this thread.
void run_item(const std::function<void(int)>& work, int thread) {
  struct InWork {
    InWork() { in_work = true; }
    ~InWork() { in_work = false; }
  } marked;
  work(thread);
}

template <typename Done>
bool poll(const Done& done) {
  const auto until = std::chrono::steady_clock::now() + kPollFor;
  while (!done()) {
    if (std::chrono::steady_clock::now() > until) return false;
    std::this_thread::yield();
  }
  return true;
}

}  // namespace

ThreadTeam::ThreadTeam(int threads) {
  if (threads < 1)
    throw std::invalid_argument("ThreadTeam: " + std::to_string(threads) + " threads");
  for (int t = 1; t < threads; ++t) workers_.emplace_back([this, t] { serve(t); });
}

ThreadTeam::~ThreadTeam() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_.notify_all();
  for (std::thread& w : workers_) w.join();
}

std::pair<int64_t, int64_t> ThreadTeam::share(int64_t count, int64_t grain, int t, int n) {
  const int64_t grains = (count + grain - 1) / grain;
  const int64_t begin = std::min(count, grains * t / n * grain);
  const int64_t end = std::min(count, grains * (t + 1) / n * grain);
  return {begin, end};
}

void ThreadTeam::run(const std::function<void(int)>& work) {
  if (in_work || workers_.empty()) {
    for (int t = 0; t < size(); ++t) work(t);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    work_ = &work;
    control_ = _mm_getcsr();
    error_ = nullptr;
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_.notify_all();
  std::exception_ptr mine;
  try {
    run_item(work, 0);
  } catch (...) {
    mine = std::current_exception();
  }
  const auto all_done = [this] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!poll(all_done)) {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, all_done);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  work_ = nullptr;
  if (mine) std::rethrow_exception(mine);
  if (error_) std::rethrow_exception(error_);
}

void ThreadTeam::serve(int thread) {
  uint64_t seen = 0;
  while (true) {
    const auto started = [&] { return generation_.load(std::memory_order_acquire) != seen; };
    std::unique_lock<std::mutex> lock(mutex_);
    if (!started()) {
      lock.unlock();
      if (!poll(started)) {
        lock.lock();
        start_.wait(lock, started);
        lock.unlock();
      }
      lock.lock();
    }
    if (stopping_) return;
    seen = generation_.load(std::memory_order_relaxed);
    const std::function<void(int)>& work = *work_;
    _mm_setcsr(control_);
    lock.unlock();
    std::exception_ptr error;
    try {
      run_item(work, thread);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    if (error && !error_) error_ = error;
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) done_.notify_one();
  }
}

}  // namespace ddp
