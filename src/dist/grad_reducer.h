#pragma once

#include <span>
#include <vector>

#include "dist/communicator.h"
#include "nn/sequential.h"

namespace ddp {

struct Bucket {
  size_t offset;  // floats into the flat gradient buffer
  size_t count;
};

// Sums gradients over ranks, one all-reduce per bucket of the flat gradient buffer.
// Synchronously (reduce(), after backward) or overlapped with backward: backward reports each
// layer as its gradients are written (gradients_ready), which starts the all-reduce of every
// bucket that is now complete, and polls the ones in flight (progress); finish() completes them.
// Note [bucket order]: buckets are cut in reverse layer order (the order in which backward
// produces gradients) from whole parameter tensors until each holds at least bucket_bytes, so
// the reduction of the last layers can start first. The layout depends only on the model and
// bucket_bytes, hence is identical on every rank.
class GradReducer {
 public:
  // With a bf16_wire backend (the one holding `grads`), each bucket travels as bfloat16 (half
  // the bytes; the gradients are already scaled to the global mean, so the sums cannot
  // overflow), converted and widened back on that backend.
  GradReducer(Communicator& comm, std::span<float> grads, const std::vector<ParamEntry>& params,
              size_t bucket_bytes, ComputeBackend* bf16_wire = nullptr);
  void reduce();

  // Overlapped use, once per step: gradients_ready(offset) whenever every gradient from `offset`
  // to the end of the buffer is final, then finish() before the optimizer step.
  void gradients_ready(size_t offset);
  void finish();

  // ZeRO-1, bucket by bucket (Open MPI's large-message collectives are slow and allocate
  // full-size temporaries): rank r owns [shard_begin[r], shard_begin[r + 1]) of the buffer.
  // reduce_scatter sums the gradients of this rank's slice into `shard` (its size);
  // all_gather sends every rank's slice of `params` to all, in place.
  void reduce_scatter(std::span<float> shard, const std::vector<size_t>& shard_begin);
  void all_gather(std::span<float> params, const std::vector<size_t>& shard_begin);

  const std::vector<Bucket>& buckets() const { return buckets_; }

 private:
  // Per rank, how much of bucket b falls in its shard.
  std::vector<int> shard_counts(const Bucket& b, const std::vector<size_t>& shard_begin) const;
  std::span<uint16_t> to_wire(const Bucket& b);  // bucket -> bf16 in its stretch of wire_
  void from_wire(const Bucket& b);

  Communicator& comm_;
  std::span<float> grads_;
  std::vector<Bucket> buckets_;
  ComputeBackend* bf16_wire_;
  DeviceBuffer wire_;       // bf16 staging, two per float; bucket b at element b.offset
  size_t next_bucket_ = 0;  // first bucket not yet started this step
  std::vector<std::unique_ptr<Work>> in_flight_;
};

}  // namespace ddp
