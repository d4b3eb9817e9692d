#pragma once
// Note [all-reduce paths]: the flat gradient buffer lives where its path sums it, and the path
// owns it (the model only gets views):
// - shared memory (one host): the buffer is this rank's copy in an MPI shared window, summed in
//   place by reading the other ranks' copies (Note [shared-memory all-reduce]);
// - communicator (MPI across hosts, NCCL on GPUs): plain backend memory, summed by the
//   communicator's collectives, as the wire codec encodes it (Note [wire format]);
// - hierarchical (several hosts, the same number of ranks on each): the host's shared window.
//   Each bucket is cut into one part per local rank; local rank l sums part l over its host
//   (shared memory), all-reduces it with local rank l of every other host (MPI, through the
//   codec), and the host's ranks copy each other's parts: every host link carries 1/local_size
//   of the bucket from each rank, instead of the whole bucket from every rank.
// training.allreduce chooses one (auto picks shared memory when every rank shares a host and
// /dev/shm has room); make_grad_sync logs which and why.

#include <memory>
#include <span>
#include <string>

#include "backend/backend.h"
#include "comm/buckets.h"
#include "comm/communicator.h"
#include "comm/wire_codec.h"

namespace ddp {

class AllReducePath {
 public:
  virtual ~AllReducePath() = default;
  virtual std::string name() const = 0;  // "shared memory", "mpi", "nccl", ...
  virtual std::span<float> grads() = 0;  // the flat gradient buffer, backend memory
  // Sums grads()[b] over ranks in place.
  virtual void all_reduce(const Bucket& b) = 0;
  // The same, started now; done once the returned Work has been waited for.
  virtual std::unique_ptr<Work> start_all_reduce(const Bucket& b) = 0;
  // ZeRO-1, blocking: the sum over ranks of this rank's part of grads()[b], where the bucket is
  // cut into counts[r] floats for rank r, in rank order, lands in `into`, or where in_place(), in
  // that part of grads() itself (`into` unused), handed piece by piece to `consume` when given
  // (SharedBuffer::reduce_scatter_sum; other paths refuse one). fp32 only.
  virtual void reduce_scatter(const Bucket& b, std::span<const int> counts, std::span<float> into,
                              const SharedBuffer::PieceFn& consume = {}) = 0;
  // True for shared memory: reduce-scatter sums in place, and one call over the whole buffer
  // lets every rank sum its own part at the same time (bucket by bucket, the ranks whose shard
  // lies elsewhere would wait).
  virtual bool in_place() const = 0;
};

std::unique_ptr<AllReducePath> make_shared_memory_path(std::unique_ptr<SharedBuffer> buffer,
                                                       std::unique_ptr<WireCodec> codec);
// host: this host's ranks, sharing `buffer`; across: this rank and the ranks with its local rank
// on every other host.
std::unique_ptr<AllReducePath> make_hierarchical_path(std::unique_ptr<Communicator> host,
                                                      std::unique_ptr<Communicator> across,
                                                      std::unique_ptr<SharedBuffer> buffer,
                                                      std::unique_ptr<WireCodec> codec);
std::unique_ptr<AllReducePath> make_communicator_path(Communicator& comm, ComputeBackend& backend,
                                                      size_t count,
                                                      std::unique_ptr<WireCodec> codec);

}  // namespace ddp
