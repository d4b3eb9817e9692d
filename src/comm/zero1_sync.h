#pragma once
// Note [ZeRO-1]: with training.zero: 1 on several ranks, rank r owns the slice
// [shard_begin[r], shard_begin[r + 1]) of the flat buffers: gradients are reduce-scattered into
// this rank's shard, the optimizer (whose state is shard-sized) updates only that slice, and the
// parameters are all-gathered, bucket by bucket (Open MPI's large-message collectives are slow and
// allocate full-size temporaries). Through shared memory the reduce-scatter is one call over the
// whole buffer and its sums stay in place (AllReducePath::in_place). Checkpoints gather the full
// state (gather_shards).

#include <memory>
#include <string>
#include <vector>

#include "comm/all_reduce_path.h"
#include "comm/grad_sync.h"

namespace ddp {

class Zero1Sync final : public GradSync {
 public:
  Zero1Sync(Communicator& comm, ComputeBackend& backend, std::unique_ptr<AllReducePath> path,
            std::vector<Bucket> buckets, std::string description);

  std::string describe() const override { return description_; }
  const std::vector<Bucket>& buckets() const override { return buckets_; }
  std::span<float> grads() override { return path_->grads(); }
  void ready(size_t) override {}  // reduce-scattered after backward
  void finish() override;
  bool agree_finite(bool shard_finite) override;  // shards differ: the ranks agree
  Shard shard() const override;
  std::span<float> shard_grads() override;
  void after_step(std::span<float> params) override;
  void gather_shards(std::span<float> full) override;

 private:
  // Per rank, how many floats of [offset, offset + count) fall in its shard.
  std::vector<int> shard_counts(size_t offset, size_t count) const;

  Communicator& comm_;
  ComputeBackend& backend_;
  std::unique_ptr<AllReducePath> path_;
  std::vector<Bucket> buckets_;
  std::string description_;
  std::vector<size_t> shard_begin_;  // per rank, and the end: world + 1 entries
  DeviceBuffer shard_grads_;         // (this rank's shard), unless the path sums in place
};

}  // namespace ddp
