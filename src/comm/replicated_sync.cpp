#include "comm/replicated_sync.h"

namespace ddp {

ReplicatedSync::ReplicatedSync(ComputeBackend& backend, std::unique_ptr<AllReducePath> path,
                               std::vector<Bucket> buckets, bool overlap, std::string description)
    : params_(backend, path->grads().size()),
      path_(std::move(path)),
      buckets_(std::move(buckets)),
      overlap_(overlap),
      description_(std::move(description)),
      count_(path_->grads().size()) {}

void ReplicatedSync::start_through(size_t offset) {
  while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].offset >= offset)
    in_flight_.push_back(path_->start_all_reduce(buckets_[next_bucket_++]));
}

void ReplicatedSync::ready(size_t offset) {
  if (!overlap_) return;
  start_through(offset);
  // Non-blocking MPI collectives advance only inside MPI calls: poll between layers.
  for (auto& work : in_flight_) work->test();
}

void ReplicatedSync::finish() {
  // Note [CPU all-reduce]: after backward, blocking collectives one bucket at a time beat
  // non-blocking ones started together.
  if (!overlap_) {
    for (const Bucket& b : buckets_) path_->all_reduce(b);
    return;
  }
  start_through(0);
  for (auto& work : in_flight_) work->wait();
  in_flight_.clear();
  next_bucket_ = 0;
}

}  // namespace ddp
