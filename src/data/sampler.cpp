#include "data/sampler.h"

#include <algorithm>
#include <numeric>
#include <utility>

#include "core/rng.h"

namespace ddp {

DistributedSampler::DistributedSampler(int64_t num_samples, int64_t per_rank_batch, int world_size,
                                       int rank, uint64_t seed, bool shuffle, TailPolicy tail)
    : num_samples_(num_samples),
      batch_(per_rank_batch),
      world_size_(world_size),
      rank_(rank),
      seed_(seed),
      shuffle_(shuffle),
      tail_(tail) {
  const int64_t global = per_rank_batch * world_size;
  steps_ = tail == TailPolicy::kDrop ? num_samples / global : (num_samples + global - 1) / global;
  set_epoch(0);
}

void DistributedSampler::set_epoch(int64_t epoch) {
  permutation_.resize(static_cast<size_t>(num_samples_));
  std::iota(permutation_.begin(), permutation_.end(), int64_t{0});
  if (!shuffle_) return;
  Rng rng(derive_seed(seed_, 1000 + static_cast<uint64_t>(epoch)));
  for (int64_t i = num_samples_ - 1; i > 0; --i)
    std::swap(permutation_[i], permutation_[rng.below(static_cast<uint64_t>(i + 1))]);
}

int64_t DistributedSampler::global_samples(int64_t step) const {
  const int64_t global = batch_ * world_size_;
  if (tail_ != TailPolicy::kPartial) return global;
  return std::min(global, num_samples_ - step * global);
}

std::pair<int64_t, int64_t> DistributedSampler::part(int64_t step) const {
  const int64_t global = batch_ * world_size_;
  const int64_t samples = global_samples(step);
  if (samples == global) return {(step * world_size_ + rank_) * batch_, batch_};
  // The partial last batch: the same samples as on one rank.
  const int64_t start = step * global + samples * rank_ / world_size_;
  return {start, step * global + samples * (rank_ + 1) / world_size_ - start};
}

std::span<const int64_t> DistributedSampler::indices(int64_t step) {
  const auto [start, count] = part(step);
  batch_indices_.resize(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i)
    batch_indices_[i] = permutation_[static_cast<size_t>((start + i) % num_samples_)];
  return batch_indices_;
}

}  // namespace ddp
