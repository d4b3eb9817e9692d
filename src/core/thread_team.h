#pragma once
// Note [threads per rank]: training.threads_per_rank > 1 gives a rank a team of threads that
// split the dense layers' products and the optimizer's updates of large buffers between them
// (CpuBackend), the way one process of PyTorch uses several cores: one rank per socket or node,
// instead of one per core, sums no gradients between the cores of a rank. Each thread computes
// whole output elements with the same kernels as one thread would, so results do not depend on
// the team's size (tested). Only the tiled kernels' products and bf16 products (in pieces of a
// size fixed by the shape, Note [bf16 products]) are split: OpenBLAS's run on one thread
// (cpu_dense.cpp, shared_by_team). The calling thread works too; the others wait between
// products, polling briefly, then on a condition variable.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace ddp {

class ThreadTeam {
 public:
  explicit ThreadTeam(int threads);  // 1: no threads are started
  ~ThreadTeam();
  ThreadTeam(const ThreadTeam&) = delete;
  ThreadTeam& operator=(const ThreadTeam&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // Runs work(t) for every t in [0, size()), t = 0 on the calling thread, and returns when all
  // have; rethrows the first exception one of them threw. Workers run with the caller's floating-
  // point control (flushing of denormals). Called from within a work item (an optimizer update
  // that a thread's weight-gradient rows trigger), it runs every t on the calling thread: the
  // others are busy with their own items.
  void run(const std::function<void(int thread)>& work);
  // [begin, end) of `count` items for thread t of n: contiguous shares in multiples of `grain`.
  static std::pair<int64_t, int64_t> share(int64_t count, int64_t grain, int t, int n);

 private:
  void serve(int thread);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable start_, done_;
  const std::function<void(int)>* work_ = nullptr;
  std::atomic<uint64_t> generation_{0};  // bumped per run(), under mutex_
  std::atomic<int> pending_{0};          // workers still running this generation
  unsigned control_ = 0;                 // the caller's MXCSR
  bool stopping_ = false;
  std::exception_ptr error_;
};

}  // namespace ddp
