#pragma once
// Note [ZeRO-1]: with training.zero: 1 on several ranks, rank r owns the slice
// [shard_begin[r], shard_begin[r + 1]) of the flat buffers: gradients are reduce-scattered into
// this rank's shard, the optimizer (whose state is shard-sized) updates only that slice, and the
// parameters are all-gathered. Each is one call over the whole buffer, so that every rank's shard
// is in it and every link carries parts both ways at once: called per bucket, a bucket inside one
// rank's shard went to that rank alone while the other direction idled. Through MPI the calls go
// in rounds of a piece of every shard, or around the ring (Note [all-reduce pieces], Note [ring
// all-reduce]). Through shared memory the reduce-scatter's sums stay in place
// (AllReducePath::in_place), and the parameters live in a shared window too (Note [sharded
// step]). Checkpoints gather the full state (gather_shards).
//
// Note [sharded step]: on one host, the step itself is what ZeRO-1 saves most. Replicated, each of
// N ranks streams the whole optimizer pass (W3 with SGD momentum: read gradients, parameters and
// velocity, write parameters and velocity, 5 x 58.8 MB) after an all-reduce that writes every sum
// N times, all ranks on the same memory bus. Sharded, each rank updates 1/N of the parameters
// and copies each piece of 64 KB into the other ranks' windows while it is still in L2, so each
// parameter is computed once and its bytes leave the core N times without being read back.
// Unless the trainer reads the sums before the step (nonfinite: skip), the reduce-scatter waits
// for step() and sums each piece just before updating it, so the sums never go to memory and
// back either. Hence `zero: auto` picks ZeRO-1 when the gradients go through shared memory (fp32,
// after backward); the results are bit-identical to the replicated step's (the same elementwise
// arithmetic on the same sums).

#include <memory>
#include <string>
#include <variant>
#include <vector>

#include "comm/all_reduce_path.h"
#include "comm/grad_sync.h"

namespace ddp {

class Zero1Sync final : public GradSync {
 public:
  // Parameters in host memory shared by every rank (one host), or in this rank's backend memory,
  // all-gathered through the communicator.
  using ParamStorage = std::variant<std::unique_ptr<SharedBuffer>, DeviceBuffer>;
  Zero1Sync(Communicator& comm, ComputeBackend& backend, std::unique_ptr<AllReducePath> path,
            ParamStorage param_storage, std::vector<Bucket> buckets, bool sums_before_step,
            std::string description);

  std::string describe() const override { return description_; }
  const std::vector<Bucket>& buckets() const override { return buckets_; }
  std::span<float> params() override;
  std::span<float> grads() override { return path_->grads(); }
  bool gradients_final_in_backward() const override { return false; }
  void ready(size_t) override {}  // reduce-scattered after backward
  void finish() override;
  bool agree_finite(bool shard_finite) override;  // shards differ: the ranks agree
  double sum_over_shards(double shard_value) override;
  Shard shard() const override;
  std::span<float> shard_grads() override;
  bool step(const ShardUpdate& update) override;
  void gather_shards(std::span<float> full) override;

 private:
  // Per rank, how many floats of [offset, offset + count) fall in its shard.
  std::vector<int> shard_counts(size_t offset, size_t count) const;

  Communicator& comm_;
  ComputeBackend& backend_;
  std::unique_ptr<AllReducePath> path_;
  ParamStorage params_;
  std::vector<Bucket> buckets_;
  std::string description_;
  bool sum_in_step_;                 // Note [sharded step]: the reduce-scatter runs inside step()
  std::vector<size_t> shard_begin_;  // per rank, and the end: world + 1 entries
  DeviceBuffer shard_grads_;         // (this rank's shard), unless the path sums in place
};

}  // namespace ddp
