#pragma once

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

namespace ddp {

enum class TailPolicy {
  kDrop,     // skip the last global batch if it would be incomplete
  kPad,      // complete it with samples from the start of the epoch's permutation
  kPartial,  // keep it short (Keras' fit): its samples split over the ranks, some maybe none
};

// Note [global batch order]: each epoch the whole dataset is permuted from (seed, epoch) and cut
// into global batches of world * per_rank_batch samples; step s of rank r takes slice r of global
// batch s. The samples of a step are therefore the same for any world size with the same global
// batch, which is what makes N ranks train the same model as one rank with the global batch, and
// positions are defined in global samples. Every rank runs the same number of steps per epoch.
class DistributedSampler {
 public:
  DistributedSampler(int64_t num_samples, int64_t per_rank_batch, int world_size, int rank,
                     uint64_t seed, bool shuffle, TailPolicy tail);

  int64_t steps_per_epoch() const { return steps_; }
  int64_t per_rank_batch() const { return batch_; }
  void set_epoch(int64_t epoch);
  // This rank's sample indices for `step` of the current epoch (fewer, or none, in a partial last
  // global batch: rank r takes the r-th of world_size contiguous, near-equal parts).
  std::span<const int64_t> indices(int64_t step);
  // Samples of `step` over all ranks: the global batch, or what is left for a partial last one.
  int64_t global_samples(int64_t step) const;
  // The position in the epoch's order (counting from 0, past its end where kPad wraps around) of
  // this rank's first sample in `step`; its others follow.
  int64_t first_position(int64_t step) const { return part(step).first; }

 private:
  // This rank's part of `step`: its first position and its number of samples.
  std::pair<int64_t, int64_t> part(int64_t step) const;

  int64_t num_samples_;
  int64_t batch_;
  int world_size_;
  int rank_;
  uint64_t seed_;
  bool shuffle_;
  int64_t steps_;
  TailPolicy tail_;
  std::vector<int64_t> permutation_;
  std::vector<int64_t> batch_indices_;
};

}  // namespace ddp
