#include "comm/zero1_sync.h"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace ddp {

Zero1Sync::Zero1Sync(Communicator& comm, ComputeBackend& backend,
                     std::unique_ptr<AllReducePath> path, ParamStorage param_storage,
                     std::vector<Bucket> buckets, bool sums_before_step, std::string description)
    : comm_(comm),
      backend_(backend),
      path_(std::move(path)),
      params_(std::move(param_storage)),
      buckets_(std::move(buckets)),
      description_(std::move(description)),
      sum_in_step_(!sums_before_step && path_->in_place() &&
                   std::holds_alternative<std::unique_ptr<SharedBuffer>>(params_)) {
  const size_t n = path_->grads().size();
  const auto world = static_cast<size_t>(comm_.size());
  for (size_t r = 0; r <= world; ++r) shard_begin_.push_back(n * r / world);
  if (!path_->in_place()) shard_grads_ = DeviceBuffer(backend_, shard().count);
  if (params().size() != n)
    throw std::logic_error("Zero1Sync: " + std::to_string(params().size()) + " parameters for " +
                           std::to_string(n) + " gradients");
}

std::span<float> Zero1Sync::params() {
  if (auto* shared = std::get_if<std::unique_ptr<SharedBuffer>>(&params_)) return (*shared)->span();
  return std::get<DeviceBuffer>(params_).span();
}

std::span<float> Zero1Sync::shard_grads() {
  if (!path_->in_place()) return shard_grads_.span();
  const Shard mine = shard();
  return grads().subspan(mine.offset, mine.count);
}

Shard Zero1Sync::shard() const {
  const auto me = static_cast<size_t>(comm_.rank());
  return {shard_begin_[me], shard_begin_[me + 1] - shard_begin_[me]};
}

std::vector<int> Zero1Sync::shard_counts(size_t offset, size_t count) const {
  std::vector<int> counts(static_cast<size_t>(comm_.size()));
  for (size_t r = 0; r < counts.size(); ++r) {
    const size_t lo = std::max(offset, shard_begin_[r]);
    const size_t hi = std::min(offset + count, shard_begin_[r + 1]);
    counts[r] = hi > lo ? static_cast<int>(hi - lo) : 0;
  }
  return counts;
}

void Zero1Sync::finish() {
  if (sum_in_step_) return;
  const size_t n = grads().size();
  path_->reduce_scatter({0, n}, shard_counts(0, n), shard_grads());
}

bool Zero1Sync::agree_finite(bool shard_finite) {
  return comm_.all_reduce_max(shard_finite ? 0 : 1) == 0;
}

// Each rank's value in a slot of its own: every slot's sum over ranks is that value exactly, and
// every rank adds the slots in rank order, so all get the same bits (an all-reduce of the values
// themselves may add them in another order on each rank).
double Zero1Sync::sum_over_shards(double shard_value) {
  std::vector<double> slots(static_cast<size_t>(comm_.size()), 0.0);
  slots[static_cast<size_t>(comm_.rank())] = shard_value;
  comm_.all_reduce_sum(std::span<double>(slots));
  double sum = 0;
  for (const double slot : slots) sum += slot;
  return sum;
}

bool Zero1Sync::step(const ShardUpdate& update) {
  const Shard mine = shard();
  const std::span<float> sums = shard_grads();
  bool finite = true;
  const auto produce = [&](size_t begin, size_t count) {
    const size_t at = begin - mine.offset;
    finite = update(at, params().subspan(begin, count), sums.subspan(at, count)) && finite;
  };
  const std::vector<int> counts = shard_counts(0, params().size());
  if (sum_in_step_) {
    SharedBuffer& shared = *std::get<std::unique_ptr<SharedBuffer>>(params_);
    path_->reduce_scatter({0, params().size()}, counts, {}, [&](size_t begin, size_t count) {
      produce(begin, count);
      shared.publish(begin, count);
    });
    shared.synchronize();  // every rank's part is in every copy
    return finite;
  }
  if (auto* shared = std::get_if<std::unique_ptr<SharedBuffer>>(&params_)) {
    (*shared)->all_gather(0, counts, produce);
    return finite;
  }
  produce(mine.offset, mine.count);
  comm_.all_gather(params(), counts);
  return finite;
}

void Zero1Sync::gather_shards(std::span<float> full) {
  comm_.all_gather(full, shard_counts(0, full.size()));
}

}  // namespace ddp
