#include "dist/shared_window.h"

#include <algorithm>
#include <cstring>
#include <exception>

#include "core/error.h"

namespace ddp {

SharedWindow::SharedWindow(MPI_Comm comm, size_t count) : count_(count) {
  mpiCheck(MPI_Comm_dup(comm, &comm_));
  mpiCheck(MPI_Comm_rank(comm_, &rank_));
  mpiCheck(MPI_Comm_size(comm_, &size_));
  // Segments need not be contiguous, so the implementation may page-align each one.
  MPI_Info info = MPI_INFO_NULL;
  mpiCheck(MPI_Info_create(&info));
  mpiCheck(MPI_Info_set(info, "alloc_shared_noncontig", "true"));
  float* mine = nullptr;
  const auto bytes = static_cast<MPI_Aint>(std::max<size_t>(count, 1) * sizeof(float));
  const int status = MPI_Win_allocate_shared(bytes, sizeof(float), info, comm_, &mine, &window_);
  MPI_Info_free(&info);
  mpiCheck(status);
  bases_.resize(static_cast<size_t>(size_));
  for (int r = 0; r < size_; ++r) {
    MPI_Aint size = 0;
    int unit = 0;
    mpiCheck(MPI_Win_shared_query(window_, r, &size, &unit, &bases_[static_cast<size_t>(r)]));
  }
  std::memset(mine, 0, count * sizeof(float));
  // A passive-target epoch for the window's lifetime: MPI_Win_sync then orders the loads and
  // stores of direct access, as MPI's memory model asks for shared windows.
  mpiCheck(MPI_Win_lock_all(MPI_MODE_NOCHECK, window_));
  synchronize();
}

SharedWindow::~SharedWindow() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  // Freeing is collective: a rank unwinding from an error of its own would wait here for peers
  // that never come, instead of reaching the handler that aborts the job.
  if (finalized || std::uncaught_exceptions() > 0) return;
  MPI_Win_unlock_all(window_);
  MPI_Win_free(&window_);
  MPI_Comm_free(&comm_);
}

bool SharedWindow::contains(std::span<const float> data) const {
  const float* mine = bases_[static_cast<size_t>(rank_)];
  return data.data() >= mine && data.data() + data.size() <= mine + count_;
}

void SharedWindow::synchronize() {
  mpiCheck(MPI_Win_sync(window_));
  mpiCheck(MPI_Barrier(comm_));
  mpiCheck(MPI_Win_sync(window_));
}

void SharedWindow::all_reduce_sum(std::span<float> data) {
  const size_t offset = static_cast<size_t>(data.data() - bases_[static_cast<size_t>(rank_)]);
  auto slice_begin = [&](int r) { return offset + data.size() * static_cast<size_t>(r) / size_; };
  synchronize();  // every rank's gradients are final

  // This rank's slice, summed in rank order through a block that stays in L1, then written into
  // every rank's buffer. No rank reads another's slice in the meantime.
  constexpr size_t kBlock = 1024;
  float sum[kBlock];
  const size_t end = slice_begin(rank_ + 1);
  for (size_t i = slice_begin(rank_); i < end; i += kBlock) {
    const size_t n = std::min(kBlock, end - i);
    const float* first = bases_[0] + i;
    for (size_t j = 0; j < n; ++j) sum[j] = first[j];
    for (size_t r = 1; r < bases_.size(); ++r) {
      const float* other = bases_[r] + i;
      for (size_t j = 0; j < n; ++j) sum[j] += other[j];
    }
    for (float* base : bases_) std::memcpy(base + i, sum, n * sizeof(float));
  }
  synchronize();  // every slice is in every buffer
}

}  // namespace ddp
