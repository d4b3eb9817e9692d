#pragma once

#include <mpi.h>

#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"
#include "comm/mpi_piece_queue.h"
#include "comm/ring_all_reduce.h"

namespace ddp {

// Initializes MPI for the lifetime of the object (a process started without mpirun becomes a
// world of size 1) and finalizes it at the end.
class MpiRuntime {
 public:
  MpiRuntime(int* argc, char*** argv);
  ~MpiRuntime();
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;
};

class MpiCommunicator final : public Communicator {
 public:
  // Works on a duplicate of `comm`, with errors returned (and checked) rather than fatal.
  explicit MpiCommunicator(MPI_Comm comm = MPI_COMM_WORLD);
  ~MpiCommunicator() override;

  std::string name() const override { return "mpi"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  void all_reduce_sum(std::span<float> data) override;
  void all_reduce_sum(std::span<double> data) override;
  // Queued in pieces, or whole where it goes around the ring, run one after the other (Note
  // [overlapped pieces]).
  std::unique_ptr<Work> all_reduce_sum_async(std::span<float> data) override;
  // A SharedWindow when every rank runs on this host and /dev/shm has room for it.
  std::unique_ptr<SharedBuffer> allocate_shared(size_t count, SharedCopies copies,
                                                std::string& why_not) override;
  std::unique_ptr<Communicator> split_host() override;
  std::unique_ptr<Communicator> split(int color, int key) override;
  std::string choose_large_sums(RingChoice choice) override;
  void all_reduce_sum_bf16(std::span<uint16_t> data) override;
  std::unique_ptr<Work> all_reduce_sum_bf16_async(std::span<uint16_t> data) override;
  int all_reduce_max(int value) override;
  void reduce_scatter_sum(std::span<float> in, std::span<float> shard,
                          std::span<const int> counts) override;
  void all_gather(std::span<float> data, std::span<const int> counts) override;
  void broadcast_bytes(std::span<std::byte> data, int root) override;
  void barrier() override;
  [[noreturn]] void abort(int exit_code) override;

 private:
  // Collective: empty when /dev/shm holds `bytes`, else why not.
  std::string shared_memory_shortfall(size_t bytes);
  // Collective on first use: every rank makes the same non-blocking calls.
  MpiPieceQueue& piece_queue();
  // Whether a sum of `bytes` goes around the trainer's ring rather than through MPI_Allreduce.
  bool ring_for(size_t bytes) const;
  static std::vector<size_t> ring_parts(std::span<const int> counts);

  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Comm ring_comm_ = MPI_COMM_NULL;  // the ring's point-to-point messages, apart from all else
  RingChoice ring_choice_ = RingChoice::kAuto;
  std::vector<std::byte> ring_staging_;
  MPI_Op bf16_sum_ = MPI_OP_NULL;
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  std::unique_ptr<MpiPieceQueue> pieces_;
};

}  // namespace ddp
