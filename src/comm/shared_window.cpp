#include "comm/shared_window.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>

#include "comm/mpi_check.h"
#include "core/bf16.h"
#include "core/stream_copy.h"

namespace ddp {

SharedWindow::SharedWindow(MPI_Comm comm, size_t count, SharedCopies copies)
    : count_(count), copies_(copies) {
  mpiCheck(MPI_Comm_dup(comm, &comm_));
  mpiCheck(MPI_Comm_rank(comm_, &rank_));
  mpiCheck(MPI_Comm_size(comm_, &size_));
  // Segments need not be contiguous, so the implementation may page-align each one.
  MPI_Info info = MPI_INFO_NULL;
  mpiCheck(MPI_Info_create(&info));
  mpiCheck(MPI_Info_set(info, "alloc_shared_noncontig", "true"));
  float* mine = nullptr;
  const bool holds_copy = copies == SharedCopies::kPerRank || rank_ == 0;
  const auto bytes =
      static_cast<MPI_Aint>(holds_copy ? std::max<size_t>(count, 1) * sizeof(float) : 0);
  const int status = MPI_Win_allocate_shared(bytes, sizeof(float), info, comm_, &mine, &window_);
  MPI_Info_free(&info);
  mpiCheck(status);
  bases_.resize(static_cast<size_t>(size_));
  for (int r = 0; r < size_; ++r) {
    MPI_Aint size = 0;
    int unit = 0;
    mpiCheck(MPI_Win_shared_query(window_, r, &size, &unit, &bases_[static_cast<size_t>(r)]));
  }
  if (holds_copy) std::memset(mine, 0, count * sizeof(float));
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

void SharedWindow::synchronize() {
  // A full fence also orders stream_copy's non-temporal stores (x86: mfence).
  std::atomic_thread_fence(std::memory_order_seq_cst);
  mpiCheck(MPI_Win_sync(window_));
  mpiCheck(MPI_Barrier(comm_));
  mpiCheck(MPI_Win_sync(window_));
}

void SharedWindow::sum_slice(size_t begin, size_t end, bool to_all, Summands summands) {
  // Summed in rank order through a block that stays in L1. No rank writes a slice that another
  // rank reads in the meantime.
  constexpr size_t kBlock = 1024;
  float sum[kBlock];
  float* mine = bases_[static_cast<size_t>(rank_)];
  // sum[0, n) = the summands of [i, i + n) over every rank, each read through `summand`.
  const auto add_up = [&](size_t i, size_t n, auto summand) {
    const float* first = bases_[0] + i;
    for (size_t j = 0; j < n; ++j) sum[j] = summand(first[j]);
    for (size_t r = 1; r < bases_.size(); ++r) {
      const float* other = bases_[r] + i;
      for (size_t j = 0; j < n; ++j) sum[j] += summand(other[j]);
    }
  };
  for (size_t i = begin; i < end; i += kBlock) {
    const size_t n = std::min(kBlock, end - i);
    if (summands == Summands::kBf16) {
      add_up(i, n, [](float x) { return round_to_bf16(x); });
      if (to_all)
        for (size_t j = 0; j < n; ++j) sum[j] = round_to_bf16(sum[j]);
    } else {
      add_up(i, n, [](float x) { return x; });
    }
    if (!to_all) {
      std::memcpy(mine + i, sum, n * sizeof(float));
      continue;
    }
    for (float* base : bases_) std::memcpy(base + i, sum, n * sizeof(float));
  }
}

void SharedWindow::all_reduce_sum(size_t offset, size_t count, Summands summands) {
  check_copy_per_rank("all_reduce_sum");
  check_range(offset, count);
  auto slice_begin = [&](int r) { return offset + count * static_cast<size_t>(r) / size_; };
  synchronize();  // every rank's gradients are final
  sum_slice(slice_begin(rank_), slice_begin(rank_ + 1), /*to_all=*/true, summands);
  synchronize();  // every slice is in every buffer
}

size_t SharedWindow::part_begin(size_t offset, std::span<const int> counts, int r) const {
  check_copy_per_rank("a reduce-scatter or all-gather");
  size_t total = 0, begin = offset;
  for (size_t k = 0; k < counts.size(); ++k) {
    if (static_cast<int>(k) < r) begin += static_cast<size_t>(counts[k]);
    total += static_cast<size_t>(counts[k]);
  }
  check_range(offset, total);
  return begin;
}

void SharedWindow::reduce_scatter_sum(size_t offset, std::span<const int> counts, Summands summands,
                                      const PieceFn& consume) {
  const size_t begin = part_begin(offset, counts, rank_);
  const size_t end = begin + static_cast<size_t>(counts[static_cast<size_t>(rank_)]);
  synchronize();  // every rank's gradients are final
  if (!consume) {
    sum_slice(begin, end, /*to_all=*/false, summands);
  } else {
    for (size_t i = begin; i < end; i += kPiece) {
      const size_t n = std::min(kPiece, end - i);
      sum_slice(i, i + n, /*to_all=*/false, summands);
      consume(i, n);
    }
  }
  // Other ranks may still be reading this copy: nobody writes gradients again before all are done.
  synchronize();
}

void SharedWindow::all_gather(size_t offset, std::span<const int> counts, const PieceFn& produce) {
  const size_t begin = part_begin(offset, counts, rank_);
  const size_t end = begin + static_cast<size_t>(counts[static_cast<size_t>(rank_)]);
  synchronize();  // every part is final in its owner's copy and nobody reads the others' any more
  // Each rank pushes its own part into the other copies, piece by piece as it is produced.
  for (size_t i = begin; i < end; i += kPiece) {
    const size_t n = std::min(kPiece, end - i);
    if (produce) produce(i, n);
    publish(i, n);
  }
  synchronize();  // every part is in every copy
}

namespace {
constexpr size_t kStreamedCopyBytes = size_t{32} << 20;
}  // namespace

void SharedWindow::publish(size_t begin, size_t count) {
  check_copy_per_rank("publish");
  check_range(begin, count);
  const float* mine = bases_[static_cast<size_t>(rank_)];
  // Copies larger than the caches are read in the other rank's next forward long after this piece
  // left the cache: written without reading them first (W3, 2 ranks: the sharded step 13.7 ->
  // 12.2 ms). Smaller ones stay in cache for that read (W2's 2 MB slowed down streamed).
  const bool stream = count_ * sizeof(float) > kStreamedCopyBytes;
  for (int r = 0; r < size_; ++r) {
    if (r == rank_) continue;
    float* theirs = bases_[static_cast<size_t>(r)] + begin;
    if (stream) {
      stream_copy(theirs, mine + begin, count);
    } else {
      std::memcpy(theirs, mine + begin, count * sizeof(float));
    }
  }
}

void SharedWindow::check_copy_per_rank(const char* operation) const {
  if (copies_ == SharedCopies::kOne)
    throw std::logic_error(std::string("shared window: ") + operation +
                           " needs a copy per rank; this window has one");
}

void SharedWindow::check_range(size_t offset, size_t count) const {
  if (offset > count_ || count > count_ - offset)
    throw std::logic_error("shared window: [" + std::to_string(offset) + ", +" +
                           std::to_string(count) + ") exceeds its " + std::to_string(count_) +
                           " floats");
}

}  // namespace ddp
