#pragma once
// The communication interface the trainer sees. Buffers are backend memory: host memory for MPI
// with the CPU backend, device memory for NCCL with the CUDA backend.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "core/memory_kind.h"

namespace ddp {

// A collective in flight (PyTorch c10d's Work). Its buffer must stay untouched until wait().
class Work {
 public:
  virtual ~Work() = default;
  virtual bool test() = 0;  // drives progress; true once complete
  virtual void wait() = 0;
};

// Host memory that every rank of one host maps (Note [shared-memory all-reduce]): the ranks sum
// stretches of it by reading each other's copies, without messages. Collective calls take the same
// arguments on every rank.
// What the shared-memory sums add up (Note [wire format]): every rank's values as they are, or each
// rounded to bf16 as it is read, and all_reduce_sum's sums rounded again: what a bf16 wire would
// carry, without passes of their own over the buffer.
enum class Summands { kAsStored, kBf16 };
// How many copies of the buffer the ranks share: one each (the sums above read every rank's), or
// one that every rank reads and writes in place (Note [split weight gradients]), where only
// span() and synchronize() apply.
enum class SharedCopies { kPerRank, kOne };

class SharedBuffer {
 public:
  virtual ~SharedBuffer() = default;
  virtual std::span<float> span() = 0;  // this rank's copy (or the one copy), zero-filled at first
  // A stretch [begin, begin + count) of span(), handed to whoever produces or consumes it.
  using PieceFn = std::function<void(size_t begin, size_t count)>;
  // Collective, in place: span()[offset, offset + count) becomes its sum over ranks on every rank.
  virtual void all_reduce_sum(size_t offset, size_t count, Summands summands) = 0;
  // Collective (ZeRO-1): [offset, offset + sum(counts)) is cut into one part per rank, counts[r]
  // floats for rank r in rank order; each rank's part becomes its sum over ranks, in that rank's
  // copy only (with Summands::kBf16, of rounded values, the sum itself not rounded). With
  // `consume`, the part is summed piece by piece and each piece handed to consume(begin, count)
  // at once, while it is in cache (Note [sharded step]).
  virtual void reduce_scatter_sum(size_t offset, std::span<const int> counts, Summands summands,
                                  const PieceFn& consume = {}) = 0;
  // Collective, the inverse: with the same parts, every rank's part is copied from its own copy
  // into every rank's copy. With `produce`, each rank first computes its part piece by piece:
  // produce(begin, count) writes span()[begin, begin + count), and each piece is copied out while
  // it is still in cache (Note [sharded step]).
  virtual void all_gather(size_t offset, std::span<const int> counts,
                          const PieceFn& produce = {}) = 0;
  // Not collective: copies span()[begin, begin + count) into every other rank's copy. The caller
  // makes sure nobody uses that stretch of the other copies until a synchronize() that follows.
  virtual void publish(size_t begin, size_t count) = 0;
  // Collective: every rank's writes so far are visible to all before any rank goes on.
  virtual void synchronize() = 0;
};

// A collective that was complete when its call returned (one rank; shared-memory reductions).
class CompletedWork final : public Work {
 public:
  bool test() override { return true; }
  void wait() override {}
};

// training.mpi_allreduce: how MPI sums buffers of at least a segment per rank. auto: the ring where
// the communicator's ranks span hosts, else the library's MPI_Allreduce in pieces (Note [ring
// all-reduce], Note [all-reduce pieces]).
enum class RingChoice { kAuto, kRing, kLibrary };

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // This rank's index among the ranks on its host, and their number (device binding).
  virtual int local_rank() const { return 0; }
  virtual int local_size() const { return 1; }

  // Where the buffers of the float collectives live.
  virtual MemoryKind memory() const { return MemoryKind::kHost; }

  // In-place sums over all ranks.
  virtual void all_reduce_sum(std::span<float> data) = 0;
  virtual void all_reduce_sum(std::span<double> data) = 0;
  virtual std::unique_ptr<Work> all_reduce_sum_async(std::span<float> data) = 0;
  // Collective: count floats of shared memory per rank or in one copy, or null with the reason in
  // `why_not` (ranks on several hosts, too little room in /dev/shm, ...). Every rank gets the same
  // answer. The buffer may outlive the communicator.
  virtual std::unique_ptr<SharedBuffer> allocate_shared(size_t count, SharedCopies copies,
                                                        std::string& why_not) = 0;
  // Collective: the ranks of this host, and the ranks that passed the same `color`, ordered by
  // `key`; null where this communicator cannot split (then no hierarchical path).
  virtual std::unique_ptr<Communicator> split_host() { return nullptr; }
  virtual std::unique_ptr<Communicator> split(int /*color*/, int /*key*/) { return nullptr; }
  // Chooses the algorithm of large sums here and in the communicators split from this one; returns
  // it in words for the log ("" where there is no choice).
  virtual std::string choose_large_sums(RingChoice /*choice*/) { return ""; }
  // Sum of bfloat16 values (see core/bf16.h), each addition rounded back to bfloat16.
  virtual void all_reduce_sum_bf16(std::span<uint16_t> data) = 0;
  virtual std::unique_ptr<Work> all_reduce_sum_bf16_async(std::span<uint16_t> data) = 0;
  virtual int all_reduce_max(int value) = 0;
  // ZeRO-1: rank r receives the sum over ranks of in[offset_r, offset_r + counts[r]), where the
  // offsets are the prefix sums of counts; `in` is left with unspecified values (the ring sums in
  // place). all_gather is the inverse, in place: every rank's slice of `data` is sent to all.
  virtual void reduce_scatter_sum(std::span<float> in, std::span<float> shard,
                                  std::span<const int> counts) = 0;
  virtual void all_gather(std::span<float> data, std::span<const int> counts) = 0;
  virtual void broadcast_bytes(std::span<std::byte> data, int root) = 0;
  virtual void barrier() = 0;
  // Ends every process of the job with `exit_code`; used when one rank fails alone, so that no
  // other rank waits forever in a collective.
  [[noreturn]] virtual void abort(int exit_code) = 0;

  template <class T>
  void broadcast(std::span<T> data, int root) {
    broadcast_bytes(std::as_writable_bytes(data), root);
  }
};

// World size 1 without MPI: what a process that owns all the data talks to.
std::unique_ptr<Communicator> make_local_communicator();

}  // namespace ddp
