#pragma once
// Note [threads per rank]: training.threads_per_rank > 1 gives a rank a team of threads that
// split the dense layers' products and the optimizer's updates of large buffers between them
// (CpuBackend), the way one process of PyTorch uses several cores: one rank per socket or node,
// instead of one per core, sums no gradients between the cores of a rank. Each thread computes
// whole output elements (or whole pieces' partial sums, added in a fixed order) with the same
// kernels as one thread would, so results do not depend on the team's size (tested). Split are the
// tiled kernels' products (of 2^20 multiply-adds or more: cpu_dense.cpp), bf16 products (in pieces
// of a size fixed by the shape, Note [bf16 products]), convolutions (pieces of the batch, Note
// [convolutions on threads]), pooling, dropout, activations, batch normalization (its statistics in
// pieces of rows) and large updates; OpenBLAS's products run on one thread (cpu_dense.cpp,
// shared_by_team), as do the loss and softmax. The calling thread works too; the others wait
// between products, polling briefly, then on a condition variable.

#include <algorithm>
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
  // piece(thread, begin, count) for [0, total) cut into pieces of `size` (the last one shorter),
  // the threads taking contiguous shares of the pieces: bounds that do not depend on the team's
  // size, for work whose bits must not either. One piece runs on the calling thread without
  // waking the others.
  template <typename Piece>
  void run_pieces(int64_t total, int64_t size, const Piece& piece) {
    const int64_t pieces = (total + size - 1) / size;
    if (pieces <= 1) {
      if (total > 0) piece(0, int64_t{0}, total);
      return;
    }
    run([&](int t) {
      const auto [first, end] = share(pieces, 1, t, this->size());
      for (int64_t p = first; p < end; ++p) piece(t, p * size, std::min(size, total - p * size));
    });
  }

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
