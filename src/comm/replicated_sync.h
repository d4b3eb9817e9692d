#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/all_reduce_path.h"
#include "comm/grad_sync.h"

namespace ddp {

// Every rank keeps the whole optimizer state; gradients are all-reduced bucket by bucket
// (Note [bucket order]): after backward, or overlapped with it, starting each bucket once
// backward has written its last gradient and polling the ones in flight between layers.
class ReplicatedSync final : public GradSync {
 public:
  ReplicatedSync(ComputeBackend& backend, std::unique_ptr<AllReducePath> path,
                 std::vector<Bucket> buckets, bool overlap, std::string description);

  std::string describe() const override { return description_; }
  const std::vector<Bucket>& buckets() const override { return buckets_; }
  std::span<float> params() override { return params_.span(); }
  std::span<float> grads() override { return path_->grads(); }
  // make_grad_sync gives one rank no buckets.
  bool gradients_final_in_backward() const override { return buckets_.empty(); }
  void ready(size_t offset) override;
  void finish() override;
  // Replicas hold bit-identical sums, so every rank reaches the same verdict on its own.
  bool agree_finite(bool shard_finite) override { return shard_finite; }
  double sum_over_shards(double shard_value) override { return shard_value; }  // one shard
  Shard shard() const override { return {0, count_}; }
  std::span<float> shard_grads() override { return grads(); }
  bool step(const ShardUpdate& update) override { return update(0, params(), grads()); }
  void gather_shards(std::span<float>) override {}

 private:
  void start_through(size_t offset);  // starts every bucket at or after `offset`

  DeviceBuffer params_;
  std::unique_ptr<AllReducePath> path_;
  std::vector<Bucket> buckets_;
  bool overlap_;
  std::string description_;
  size_t count_;
  size_t next_bucket_ = 0;  // first bucket not yet started this step
  std::vector<std::unique_ptr<Work>> in_flight_;
};

}  // namespace ddp
