#include "dist/grad_reducer.h"

#include <algorithm>

namespace ddp {

GradReducer::GradReducer(Communicator& comm, std::span<float> grads,
                         const std::vector<ParamEntry>& params, size_t bucket_bytes,
                         ComputeBackend* bf16_wire)
    : comm_(comm), grads_(grads), bf16_wire_(bf16_wire) {
  size_t end = grads.size();
  size_t start = end;
  for (auto it = params.rbegin(); it != params.rend(); ++it) {
    start = it->offset;
    if ((end - start) * sizeof(float) >= bucket_bytes) {
      buckets_.push_back({start, end - start});
      end = start;
    }
  }
  if (end > 0) buckets_.push_back({0, end});
  // Every bucket its own stretch of wire_: overlapped buckets are in flight at the same time.
  if (bf16_wire_) wire_ = DeviceBuffer(*bf16_wire_, (grads.size() + 1) / 2);
}

void GradReducer::reduce() {
  if (comm_.size() == 1) return;
  for (const Bucket& b : buckets_) {
    const std::span<float> bucket = grads_.subspan(b.offset, b.count);
    if (!bf16_wire_) {
      comm_.all_reduce_sum(bucket);
      continue;
    }
    const std::span<uint16_t> wire = to_wire(b);
    comm_.all_reduce_sum_bf16(wire);
    from_wire(b);
  }
}

std::span<uint16_t> GradReducer::to_wire(const Bucket& b) {
  uint16_t* wire = reinterpret_cast<uint16_t*>(wire_.data()) + b.offset;
  bf16_wire_->to_bf16(grads_.data() + b.offset, wire, b.count);
  return {wire, b.count};
}

void GradReducer::from_wire(const Bucket& b) {
  const uint16_t* wire = reinterpret_cast<const uint16_t*>(wire_.data()) + b.offset;
  bf16_wire_->from_bf16(wire, grads_.data() + b.offset, b.count);
}

std::vector<int> GradReducer::shard_counts(const Bucket& b,
                                           const std::vector<size_t>& shard_begin) const {
  std::vector<int> counts(static_cast<size_t>(comm_.size()));
  for (size_t r = 0; r < counts.size(); ++r) {
    const size_t lo = std::max(b.offset, shard_begin[r]);
    const size_t hi = std::min(b.offset + b.count, shard_begin[r + 1]);
    counts[r] = hi > lo ? static_cast<int>(hi - lo) : 0;
  }
  return counts;
}

void GradReducer::reduce_scatter(std::span<float> shard, const std::vector<size_t>& shard_begin) {
  const auto me = static_cast<size_t>(comm_.rank());
  for (const Bucket& b : buckets_) {
    const std::vector<int> counts = shard_counts(b, shard_begin);
    const size_t into = std::max(b.offset, shard_begin[me]) - shard_begin[me];
    comm_.reduce_scatter_sum(grads_.subspan(b.offset, b.count),
                             shard.subspan(counts[me] ? into : 0, counts[me]), counts);
  }
}

void GradReducer::all_gather(std::span<float> params, const std::vector<size_t>& shard_begin) {
  for (const Bucket& b : buckets_)
    comm_.all_gather(params.subspan(b.offset, b.count), shard_counts(b, shard_begin));
}

void GradReducer::gradients_ready(size_t offset) {
  if (comm_.size() == 1) return;
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].offset >= offset) {
    const Bucket& b = buckets_[next_bucket_++];
    in_flight_.push_back(bf16_wire_
                             ? comm_.all_reduce_sum_bf16_async(to_wire(b))
                             : comm_.all_reduce_sum_async(grads_.subspan(b.offset, b.count)));
  }
  // Non-blocking collectives advance only inside MPI calls: poll between layers.
  for (auto& work : in_flight_) work->test();
}

void GradReducer::finish() {
  if (comm_.size() == 1) return;
  gradients_ready(0);
  for (auto& work : in_flight_) work->wait();
  in_flight_.clear();
  if (bf16_wire_)
    for (const Bucket& b : buckets_) from_wire(b);
  next_bucket_ = 0;
}

}  // namespace ddp
