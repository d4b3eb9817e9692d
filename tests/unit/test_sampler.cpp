#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

#include "data/sampler.h"

namespace ddp {
namespace {

// All ranks' indices for one epoch, by rank.
std::vector<std::vector<int64_t>> epoch_indices(int64_t n, int64_t batch, int world, int64_t epoch,
                                                TailPolicy tail, int64_t* steps = nullptr) {
  std::vector<std::vector<int64_t>> by_rank(world);
  for (int r = 0; r < world; ++r) {
    DistributedSampler sampler(n, batch, world, r, 7, true, tail);
    sampler.set_epoch(epoch);
    if (steps) *steps = sampler.steps_per_epoch();
    for (int64_t s = 0; s < sampler.steps_per_epoch(); ++s) {
      auto idx = sampler.indices(s);
      by_rank[r].insert(by_rank[r].end(), idx.begin(), idx.end());
    }
  }
  return by_rank;
}

TEST(Sampler, ShardsAreDisjointAndComplete) {
  int64_t steps = 0;
  auto by_rank = epoch_indices(96, 4, 3, 0, TailPolicy::kDrop, &steps);
  EXPECT_EQ(steps, 8);
  std::set<int64_t> seen;
  for (const auto& indices : by_rank) {
    EXPECT_EQ(indices.size(), 32u);
    for (int64_t i : indices) EXPECT_TRUE(seen.insert(i).second) << "sample " << i << " twice";
  }
  EXPECT_EQ(seen.size(), 96u);
  EXPECT_EQ(*seen.rbegin(), 95);
}

TEST(Sampler, DropTailGivesEveryRankTheSameStepCount) {
  int64_t steps = 0;
  auto by_rank = epoch_indices(100, 8, 4, 0, TailPolicy::kDrop, &steps);
  EXPECT_EQ(steps, 3);  // 100 / 32
  for (const auto& indices : by_rank) EXPECT_EQ(indices.size(), 24u);
}

TEST(Sampler, PadTailCoversEverySample) {
  int64_t steps = 0;
  auto by_rank = epoch_indices(100, 8, 4, 0, TailPolicy::kPad, &steps);
  EXPECT_EQ(steps, 4);  // ceil(100 / 32)
  std::set<int64_t> seen;
  for (const auto& indices : by_rank) {
    EXPECT_EQ(indices.size(), 32u);
    seen.insert(indices.begin(), indices.end());
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST(Sampler, ReshuffledEachEpochAndReproducible) {
  auto epoch0 = epoch_indices(64, 8, 2, 0, TailPolicy::kDrop);
  auto epoch1 = epoch_indices(64, 8, 2, 1, TailPolicy::kDrop);
  auto again0 = epoch_indices(64, 8, 2, 0, TailPolicy::kDrop);
  EXPECT_NE(epoch0, epoch1);
  EXPECT_EQ(epoch0, again0);
  std::vector<int64_t> sorted = epoch0[0];
  std::sort(sorted.begin(), sorted.end());
  EXPECT_NE(sorted, epoch0[0]) << "not shuffled";
}

TEST(Sampler, GlobalBatchIsIndependentOfWorldSize) {
  // Note [global batch order]: step s of 4 ranks x 4 covers the samples of step s of 1 rank x 16.
  DistributedSampler single(100, 16, 1, 0, 3, true, TailPolicy::kDrop);
  single.set_epoch(2);
  for (int64_t s = 0; s < single.steps_per_epoch(); ++s) {
    auto expected = single.indices(s);
    std::vector<int64_t> want(expected.begin(), expected.end());
    std::vector<int64_t> got;
    for (int r = 0; r < 4; ++r) {
      DistributedSampler sharded(100, 4, 4, r, 3, true, TailPolicy::kDrop);
      sharded.set_epoch(2);
      auto idx = sharded.indices(s);
      got.insert(got.end(), idx.begin(), idx.end());
    }
    EXPECT_EQ(got, want) << "step " << s;
  }
}

TEST(Sampler, NoShuffleIsSequential) {
  DistributedSampler sampler(10, 2, 2, 1, 0, false, TailPolicy::kDrop);
  auto idx = sampler.indices(1);
  EXPECT_EQ(std::vector<int64_t>(idx.begin(), idx.end()), (std::vector<int64_t>{6, 7}));
}

// tail: partial (Keras' fit): the last global batch keeps the samples that are left, split
// over the ranks in contiguous parts (here 2 samples over 4 ranks: ranks 0 and 2 get none), and
// every sample of the epoch is used exactly once, whatever the world size.
TEST(Sampler, PartialTailUsesEverySampleOnceAndMayLeaveRanksEmpty) {
  const int64_t n = 98, per_rank = 8;
  for (int world : {1, 2, 4}) {
    std::vector<int64_t> seen;
    std::vector<size_t> last_sizes;
    for (int r = 0; r < world; ++r) {
      DistributedSampler sampler(n, per_rank * 4 / world, world, r, 3, true, TailPolicy::kPartial);
      ASSERT_EQ(sampler.steps_per_epoch(), 4);  // ceil(98 / 32)
      EXPECT_EQ(sampler.global_samples(0), 32);
      EXPECT_EQ(sampler.global_samples(3), 2);
      sampler.set_epoch(1);
      for (int64_t step = 0; step < 4; ++step) {
        const auto indices = sampler.indices(step);
        seen.insert(seen.end(), indices.begin(), indices.end());
        if (step == 3) last_sizes.push_back(indices.size());
      }
    }
    std::sort(seen.begin(), seen.end());
    std::vector<int64_t> all(n);
    std::iota(all.begin(), all.end(), 0);
    EXPECT_EQ(seen, all) << "world " << world;
    if (world == 4) {
      EXPECT_EQ(last_sizes, (std::vector<size_t>{0, 1, 0, 1}));
    }
  }
}

}  // namespace
}  // namespace ddp
