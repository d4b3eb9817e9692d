#pragma once
// Note [shared-memory all-reduce]: when every rank runs on one host, the gradient buffer lives in
// an MPI shared-memory window, so ranks read each other's gradients directly. After a barrier
// (all gradients final), rank r sums slice r of a bucket over all ranks' buffers, in rank order,
// and writes the sum into every rank's buffer; a second barrier ends the reduction. Per rank that
// reads and writes the bucket's bytes once, where MPI_Allreduce over the shared-memory transport
// copies them in and out of its queues several times: W3's 58.8 MB took 6.5-7.5 ms against
// 17-18 ms at 2 ranks here. Each element is computed by one rank and copied to the rest, so
// replicas stay bit-identical; with two ranks the sum is also the same as MPI's. ZeRO-1's
// reduce-scatter is the first half of it: each rank sums its own part into its own copy only.

#include <mpi.h>

#include <span>
#include <vector>

#include "comm/communicator.h"

namespace ddp {

class SharedWindow final : public SharedBuffer {
 public:
  // Collective over `comm`, whose ranks must share one host: count zero-filled floats per rank,
  // or in one copy that every rank maps. Works on its own duplicate of `comm`, so it may outlive
  // the communicator it came from.
  SharedWindow(MPI_Comm comm, size_t count, SharedCopies copies);
  ~SharedWindow() override;  // collective as well
  SharedWindow(const SharedWindow&) = delete;
  SharedWindow& operator=(const SharedWindow&) = delete;

  std::span<float> span() override {
    return {bases_[copies_ == SharedCopies::kOne ? 0 : static_cast<size_t>(rank_)], count_};
  }
  void all_reduce_sum(size_t offset, size_t count, Summands summands) override;
  void reduce_scatter_sum(size_t offset, std::span<const int> counts, Summands summands,
                          const PieceFn& consume = {}) override;
  void all_gather(size_t offset, std::span<const int> counts, const PieceFn& produce = {}) override;
  void publish(size_t begin, size_t count) override;
  void synchronize() override;

 private:
  // Pieces of 64 KB: an optimizer step on one touches three or four such arrays, which stay in L2
  // while the piece is summed, updated and copied out.
  static constexpr size_t kPiece = 16384;
  // Sums [begin, end) over every rank's copy, in rank order, into this rank's copy or (to_all,
  // the sums rounded as the summands are) into every rank's.
  void sum_slice(size_t begin, size_t end, bool to_all, Summands summands);
  void check_range(size_t offset, size_t count) const;    // logic_error past the window's end
  void check_copy_per_rank(const char* operation) const;  // logic_error for one shared copy
  // Where rank r's part of [offset, offset + sum(counts)) begins; checks the whole range.
  size_t part_begin(size_t offset, std::span<const int> counts, int r) const;

  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Win window_ = MPI_WIN_NULL;
  int rank_ = 0;
  int size_ = 1;
  size_t count_ = 0;
  SharedCopies copies_;
  std::vector<float*> bases_;  // every rank's buffer (kOne: only rank 0 has one), mapped here
};

}  // namespace ddp
