// Gradient synchronization (Note [gradient synchronization]): buckets, every reduction path's
// sums, the bf16 wire and the sharded step, with rank-dependent gradients whose sums are known.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "comm/buckets.h"
#include "comm/grad_sync.h"
#include "comm/mpi_communicator.h"
#include "core/bf16.h"
#include "core/error.h"

namespace ddp {
namespace {

// Note [bucket order]: reverse layer order, whole tensors, contiguous, the same on every rank.
TEST(Buckets, ReverseLayerOrderOfWholeTensors) {
  // Tensors of 128, 16, 256, 16, 64 and 4 floats (three dense layers); a bucket closes once it
  // holds at least 50 floats (200 bytes), so each layer gets its own bucket.
  const std::vector<size_t> offsets = {0, 128, 144, 400, 416, 480};
  const std::vector<Bucket> buckets = cut_buckets(offsets, 484, 200);
  ASSERT_EQ(buckets.size(), 3u);
  EXPECT_EQ(buckets[0].offset, 416u);
  EXPECT_EQ(buckets[0].count, 68u);
  EXPECT_EQ(buckets[1].offset, 144u);
  EXPECT_EQ(buckets[2].offset, 0u);
  for (size_t i = 1; i < buckets.size(); ++i)
    EXPECT_EQ(buckets[i].offset + buckets[i].count, buckets[i - 1].offset) << "not contiguous";
  EXPECT_EQ(cut_buckets(offsets, 484, size_t{1} << 30).size(), 1u);
}

class GradSyncPaths : public ::testing::TestWithParam<AllReduceChoice> {};

// Every element of every bucket is summed, on each path, synchronously and overlapped, and the
// log line names the path that was asked for.
TEST_P(GradSyncPaths, SumsEveryElementAndNamesItsPath) {
  MpiCommunicator comm;
  auto backend = make_cpu_backend();
  const std::vector<size_t> offsets = {0, 128, 144, 400, 416, 480};
  for (bool overlap : {false, true}) {
    GradSyncOptions options;
    options.path = GetParam();
    options.overlap = overlap;
    options.zero = ZeroChoice::kOff;
    options.bucket_bytes = 200;
    auto sync = make_grad_sync(options, comm, *backend, offsets, 484);
    const std::string expected =
        GetParam() == AllReduceChoice::kSharedMemory ? "through shared memory" : "through mpi";
    if (comm.size() > 1) {
      EXPECT_NE(sync->describe().find(expected), std::string::npos) << sync->describe();
    }
    std::span<float> grads = sync->grads();
    ASSERT_EQ(grads.size(), 484u);
    for (size_t i = 0; i < grads.size(); ++i) grads[i] = static_cast<float>(comm.rank() + i);
    for (auto it = offsets.rbegin(); it != offsets.rend(); ++it) sync->ready(*it);
    sync->finish();
    const size_t n = static_cast<size_t>(comm.size());
    for (size_t i = 0; i < grads.size(); ++i)
      ASSERT_EQ(grads[i], static_cast<float>(n * i + n * (n - 1) / 2))
          << i << " overlap " << overlap;
    EXPECT_TRUE(sync->agree_finite(true));
    EXPECT_FALSE(sync->agree_finite(false));
    EXPECT_EQ(sync->shard_grads().size(), grads.size());
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, GradSyncPaths,
                         ::testing::Values(AllReduceChoice::kSharedMemory, AllReduceChoice::kMpi),
                         [](const auto& info) {
                           return info.param == AllReduceChoice::kSharedMemory ? "shm" : "mpi";
                         });

// The shared-memory sums round each summand in registers (round_to_bf16) where the wire encodes
// and decodes (to_bf16, from_bf16): the same bits for every float, ties, NaNs, infinities and the
// largest finite values (which round to infinity) included.
TEST(Bf16, RoundingInRegistersGivesTheWiresBits) {
  auto check = [](uint32_t bits) {
    float x;
    std::memcpy(&x, &bits, sizeof x);
    const float wire = from_bf16(to_bf16(x)), rounded = round_to_bf16(x);
    return std::memcmp(&wire, &rounded, sizeof wire) == 0;
  };
  size_t mismatches = 0;
  for (uint64_t bits = 0; bits <= 0xffffffffu; bits += 65521) mismatches += !check(bits);
  for (uint32_t bits :
       {0x00000000u, 0x80000000u, 0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x7f7fffffu, 0xff7fffffu,
        0x7f800000u, 0xff800000u, 0x7f800001u, 0xffc00000u, 0x7fffffffu, 0x00008000u, 0x00018000u})
    mismatches += !check(bits);
  EXPECT_EQ(mismatches, 0u);
}

// Note [wire format]: with a bf16 wire every path ends with sums that bf16 represents exactly, the
// same on every rank, and close to the exact sums (the hierarchical path relies on the first:
// it does not round again after its all-gather).
TEST(GradSync, Bf16WireSumsAreBf16OnEveryPath) {
  MpiCommunicator comm;
  if (comm.size() == 1) GTEST_SKIP() << "one rank reduces nothing";
  auto backend = make_cpu_backend();
  const std::vector<size_t> offsets = {0, 300, 700};
  for (AllReduceChoice path :
       {AllReduceChoice::kSharedMemory, AllReduceChoice::kMpi, AllReduceChoice::kHierarchical}) {
    GradSyncOptions options;
    options.path = path;
    options.bf16_wire = true;
    options.zero = ZeroChoice::kOff;
    options.bucket_bytes = 1000;
    auto sync = make_grad_sync(options, comm, *backend, offsets, 1001);
    const std::string line = sync->describe();
    EXPECT_NE(line.find("bf16"), std::string::npos) << line;
    // Values bf16 cannot hold (8 bits of mantissa), different on every rank.
    std::span<float> grads = sync->grads();
    for (size_t i = 0; i < grads.size(); ++i)
      grads[i] = 1.0f + 0.001f * static_cast<float>(i) + 0.0003f * static_cast<float>(comm.rank());
    for (auto it = offsets.rbegin(); it != offsets.rend(); ++it) sync->ready(*it);
    sync->finish();
    const auto n = static_cast<float>(comm.size());
    // Every rank's sums side by side, to compare bit for bit.
    std::vector<double> all(grads.size() * static_cast<size_t>(comm.size()), 0.0);
    size_t not_bf16 = 0, far = 0;  // counted, not asserted: every rank must reach the sum below
    for (size_t i = 0; i < grads.size(); ++i) {
      not_bf16 += grads[i] != from_bf16(to_bf16(grads[i]));
      const float exact = n * (1.0f + 0.001f * static_cast<float>(i)) + 0.0003f * n * (n - 1) / 2;
      far += std::abs(grads[i] - exact) > exact * 0.02f;
      all[static_cast<size_t>(comm.rank()) * grads.size() + i] = grads[i];
    }
    EXPECT_EQ(not_bf16, 0u) << line;
    EXPECT_EQ(far, 0u) << line;
    comm.all_reduce_sum(std::span<double>(all));
    for (size_t i = 0; i < all.size(); ++i)
      ASSERT_EQ(all[i], all[i % grads.size()]) << "rank " << i / grads.size() << " " << line;
  }
}

// Note [sharded step]: zero: auto shards the optimizer where the gradients go through shared
// memory as fp32 after backward, and nowhere else; the parameters then live in shared memory, and
// step() leaves every rank's copy holding every rank's update, whether the sums were made in
// finish() (sums_before_step, for nonfinite: skip) or piece by piece inside step().
TEST(GradSync, AutoShardsTheStepOnSharedMemoryOnly) {
  MpiCommunicator comm;
  if (comm.size() == 1) GTEST_SKIP() << "one rank reduces nothing";
  auto backend = make_cpu_backend();
  const std::vector<size_t> offsets = {0, 600, 1000};
  struct Case {
    AllReduceChoice path;
    bool overlap;
    bool sums_before_step;
    bool sharded;
  };
  for (const Case& c : {Case{AllReduceChoice::kSharedMemory, false, false, true},
                        Case{AllReduceChoice::kSharedMemory, false, true, true},
                        Case{AllReduceChoice::kSharedMemory, true, false, false},
                        Case{AllReduceChoice::kMpi, false, false, false}}) {
    GradSyncOptions options;
    options.path = c.path;
    options.overlap = c.overlap;
    options.sums_before_step = c.sums_before_step;
    auto sync = make_grad_sync(options, comm, *backend, offsets, 1001);
    const std::string line = sync->describe();
    EXPECT_EQ(line.find("ZeRO-1") != std::string::npos, c.sharded) << line;
    EXPECT_EQ(line.find("zero: auto") != std::string::npos, c.sharded) << line;
    const Shard shard = sync->shard();
    const auto r = static_cast<size_t>(comm.rank()), n = static_cast<size_t>(comm.size());
    const size_t begin = c.sharded ? 1001 * r / n : 0, end = c.sharded ? 1001 * (r + 1) / n : 1001;
    EXPECT_EQ(shard.offset, begin) << line;
    EXPECT_EQ(shard.count, end - begin) << line;

    // Each rank's gradient i is rank + i; the update writes minus the sum it was given.
    std::span<float> grads = sync->grads();
    for (size_t i = 0; i < grads.size(); ++i) grads[i] = static_cast<float>(comm.rank()) + i;
    sync->finish();
    size_t covered = 0;
    const bool finite = sync->step([&](size_t at, std::span<float> p, std::span<const float> g) {
      EXPECT_EQ(at, covered);
      covered += p.size();
      for (size_t i = 0; i < p.size(); ++i) p[i] = -g[i];
      return true;
    });
    EXPECT_TRUE(finite);
    EXPECT_EQ(covered, shard.count);
    const std::span<float> sums = sync->shard_grads();
    for (size_t i = 0; i < sums.size(); ++i)
      ASSERT_EQ(sums[i], static_cast<float>(n * (begin + i) + n * (n - 1) / 2)) << i << " " << line;
    const std::span<float> params = sync->params();
    for (size_t i = 0; i < params.size(); ++i)
      ASSERT_EQ(params[i], -static_cast<float>(n * i + n * (n - 1) / 2)) << i << " " << line;
    sync->finish();
    const bool refused =
        !sync->step([](size_t, std::span<float>, std::span<const float>) { return false; });
    EXPECT_TRUE(refused) << "an update's verdict was lost";
  }
}

TEST(GradSync, RefusesNcclForHostMemoryNamingTheKey) {
  MpiCommunicator comm;
  auto backend = make_cpu_backend();
  GradSyncOptions options;
  options.config_file = "run.yaml";
  options.path = AllReduceChoice::kNccl;
  const std::vector<size_t> offsets = {0};
  try {
    make_grad_sync(options, comm, *backend, offsets, 10);
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("run.yaml: training.allreduce: nccl, but"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace ddp
