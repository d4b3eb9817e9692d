#pragma once
// The communication interface the trainer sees. Buffers are backend memory: host memory for MPI
// with the CPU backend, device memory for NCCL with the CUDA backend.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace ddp {

// A collective in flight (PyTorch c10d's Work). Its buffer must stay untouched until wait().
class Work {
 public:
  virtual ~Work() = default;
  virtual bool test() = 0;  // drives progress; true once complete
  virtual void wait() = 0;
};

// Memory a communicator reduces in place faster than other memory (see allocate_reducible).
class ReducibleBuffer {
 public:
  virtual ~ReducibleBuffer() = default;
  virtual std::span<float> span() = 0;
};

// A collective that was complete when its call returned (one rank; shared-memory reductions).
class CompletedWork final : public Work {
 public:
  bool test() override { return true; }
  void wait() override {}
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual std::string name() const = 0;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // This rank's index among the ranks on its host, and their number (device binding).
  virtual int local_rank() const { return 0; }
  virtual int local_size() const { return 1; }

  // In-place sums over all ranks.
  virtual void all_reduce_sum(std::span<float> data) = 0;
  virtual void all_reduce_sum(std::span<double> data) = 0;
  virtual std::unique_ptr<Work> all_reduce_sum_async(std::span<float> data) = 0;
  // count zero-filled floats (host memory) whose subspans all_reduce_sum reduces without copies,
  // or null where this communicator has no such memory. Collective; see
  // Note [shared-memory all-reduce]. The buffer must be released before the communicator.
  virtual std::unique_ptr<ReducibleBuffer> allocate_reducible(size_t /*count*/) { return nullptr; }
  // Sum of bfloat16 values (see core/bf16.h), each addition rounded back to bfloat16.
  virtual void all_reduce_sum_bf16(std::span<uint16_t> data) = 0;
  virtual std::unique_ptr<Work> all_reduce_sum_bf16_async(std::span<uint16_t> data) = 0;
  virtual int all_reduce_max(int value) = 0;
  // ZeRO-1: rank r receives the sum over ranks of in[offset_r, offset_r + counts[r]), where the
  // offsets are the prefix sums of counts; all_gather is the inverse, in place: every rank's
  // slice of `data` is sent to all.
  virtual void reduce_scatter_sum(std::span<const float> in, std::span<float> shard,
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
