// Collectives with rank-dependent inputs whose results are known in closed form.

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <stdexcept>

#include "comm/agreement.h"
#include "comm/mpi_communicator.h"
#include "comm/mpi_piece_queue.h"
#include "comm/ring_all_reduce.h"
#include "core/bf16.h"
#include "core/error.h"

namespace ddp {
namespace {

// Note [all-reduce pieces]: 512 KB per rank, never less than 2 ranks' 1 MB, within MPI's int count.
TEST(AllReducePieces, GrowWithTheRanksSoThatMessagesStayHalfAMegabyte) {
  EXPECT_EQ(all_reduce_piece_bytes(1), size_t{1} << 20);
  EXPECT_EQ(all_reduce_piece_bytes(2), size_t{1} << 20);
  EXPECT_EQ(all_reduce_piece_bytes(3), size_t{3} << 19);
  EXPECT_EQ(all_reduce_piece_bytes(4), size_t{2} << 20);
  EXPECT_EQ(all_reduce_piece_bytes(512), size_t{256} << 20);
  EXPECT_EQ(all_reduce_piece_bytes(1 << 20), size_t{1} << 30);
}

// Buffers of two and a half pieces and a few elements (Note [all-reduce pieces]): every piece,
// the tail included, is summed once. Element i holds rank + i: its sum is n i + n (n-1) / 2.
template <class T>
void expect_rank_plus_index_summed(MpiCommunicator& comm, size_t tail) {
  const int n = comm.size();
  std::vector<T> data(all_reduce_piece_bytes(n) * 5 / 2 / sizeof(T) + tail);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<T>(comm.rank() + i);
  comm.all_reduce_sum(std::span<T>(data));
  for (size_t i = 0; i < data.size(); ++i)
    ASSERT_EQ(data[i], static_cast<T>(n * i + n * (n - 1) / 2)) << i;
}

TEST(MpiCommunicator, AllReduceSumInPieces) {
  MpiCommunicator comm;
  expect_rank_plus_index_summed<float>(comm, 7);
  expect_rank_plus_index_summed<double>(comm, 3);
  // Small integers: exact in bfloat16, so the sum is too.
  const int n = comm.size();
  std::vector<uint16_t> narrow(all_reduce_piece_bytes(n) * 5 / 2 / sizeof(uint16_t) + 5);
  for (size_t i = 0; i < narrow.size(); ++i)
    narrow[i] = to_bf16(static_cast<float>(comm.rank() + i % 7));
  comm.all_reduce_sum_bf16(std::span<uint16_t>(narrow));
  for (size_t i = 0; i < narrow.size(); ++i)
    ASSERT_EQ(from_bf16(narrow[i]), static_cast<float>(n * (i % 7) + n * (n - 1) / 2)) << i;
}

// Note [ring all-reduce]: sums of every size around the ring (empty, fewer elements than ranks,
// one segment, and enough segments that the window of posted receives wraps several times), for
// both element types; small integers, so every sum is exact. Then values whose sums round
// differently in each summation order: every rank must still hold rank 0's bytes.
TEST(RingAllReduce, SumsExactlyAndLeavesEveryRankTheSameBytes) {
  MpiCommunicator comm;
  const int n = comm.size();
  const std::string chosen = comm.choose_large_sums(RingChoice::kRing);
  if (n > 1) {
    EXPECT_NE(chosen.find("ring"), std::string::npos) << chosen;
  }
  const size_t segment = kRingSegmentBytes / sizeof(float);
  std::vector<std::byte> staging;  // reused, as the communicator reuses its own
  for (const size_t count : {size_t{0}, size_t{1}, static_cast<size_t>(n) * segment - 1,
                             static_cast<size_t>(n) * segment + 3, 40 * segment + 17}) {
    std::vector<float> data(count);
    for (size_t i = 0; i < count; ++i) data[i] = static_cast<float>(comm.rank() + i % 7);
    ring_all_reduce(data.data(), count,
                    RingElement{MPI_FLOAT, sizeof(float),
                                [](const void* in, void* inout, size_t m) {
                                  for (size_t i = 0; i < m; ++i)
                                    static_cast<float*>(inout)[i] +=
                                        static_cast<const float*>(in)[i];
                                }},
                    MPI_COMM_WORLD, staging);
    for (size_t i = 0; i < count; ++i)
      ASSERT_EQ(data[i], static_cast<float>(n * (i % 7) + n * (n - 1) / 2)) << count << " " << i;
  }
  // Through the communicator, as the gradient sync calls it.
  std::vector<uint16_t> narrow(40 * segment + 5);
  for (size_t i = 0; i < narrow.size(); ++i)
    narrow[i] = to_bf16(static_cast<float>(comm.rank() + i % 7));
  comm.all_reduce_sum_bf16(std::span<uint16_t>(narrow));
  for (size_t i = 0; i < narrow.size(); ++i)
    ASSERT_EQ(from_bf16(narrow[i]), static_cast<float>(n * (i % 7) + n * (n - 1) / 2)) << i;
  std::vector<float> inexact(20 * segment + 11);
  for (size_t i = 0; i < inexact.size(); ++i)
    inexact[i] = std::sin(static_cast<float>(i) * 0.37f + static_cast<float>(comm.rank())) * 1e3f +
                 1e-4f * static_cast<float>(i % 13);
  comm.all_reduce_sum(std::span<float>(inexact));
  std::vector<float> reference = inexact;
  comm.broadcast(std::span<float>(reference), 0);
  EXPECT_EQ(std::memcmp(inexact.data(), reference.data(), inexact.size() * sizeof(float)), 0)
      << "rank " << comm.rank();
}

std::string choice_name(const ::testing::TestParamInfo<RingChoice>& info) {
  return info.param == RingChoice::kRing ? "ring" : "library";
}

// Note [overlapped pieces]: buckets queued together (MPI_Iallreduce pieces, or rings behind each
// other and behind a piece too small for the ring), moved on by test() with blocking collectives
// in between (as backward's layers poll them), then waited for out of order; the sums are exact
// and every rank holds the same bytes.
class AsyncSums : public ::testing::TestWithParam<RingChoice> {};

TEST_P(AsyncSums, QueuedBesideBlockingCallsSumExactly) {
  MpiCommunicator comm;
  const int n = comm.size();
  const int base = n * (n - 1) / 2;
  comm.choose_large_sums(GetParam());
  const size_t segment = kRingSegmentBytes / sizeof(float);
  std::vector<float> first(n * segment * 3 + 7);
  std::vector<float> small(10);  // below a segment per rank: MPI_Iallreduce
  std::vector<uint16_t> narrow(40 * segment + 5);
  std::vector<float> inexact(20 * segment + 11);
  for (size_t i = 0; i < first.size(); ++i) first[i] = static_cast<float>(comm.rank() + i % 11);
  for (size_t i = 0; i < small.size(); ++i) small[i] = static_cast<float>(comm.rank() * i);
  for (size_t i = 0; i < narrow.size(); ++i)
    narrow[i] = to_bf16(static_cast<float>(comm.rank() + i % 7));
  for (size_t i = 0; i < inexact.size(); ++i)
    inexact[i] = std::sin(static_cast<float>(i) * 0.37f + static_cast<float>(comm.rank())) * 1e3f;
  std::vector<std::unique_ptr<Work>> works;
  works.push_back(comm.all_reduce_sum_async(std::span<float>(first)));
  works.push_back(comm.all_reduce_sum_async(std::span<float>(small)));
  works.push_back(comm.all_reduce_sum_bf16_async(std::span<uint16_t>(narrow)));
  works.push_back(comm.all_reduce_sum_async(std::span<float>(inexact)));
  for (int round = 0; round < 20; ++round) {
    for (auto& work : works) work->test();
    ASSERT_EQ(comm.all_reduce_max(comm.rank() + round), n - 1 + round);
  }
  works[2]->wait();
  EXPECT_TRUE(works[0]->test());
  for (auto& work : works) work->wait();
  for (size_t i = 0; i < first.size(); ++i)
    ASSERT_EQ(first[i], static_cast<float>(n * (i % 11) + base)) << i;
  for (size_t i = 0; i < small.size(); ++i) ASSERT_EQ(small[i], static_cast<float>(base * i)) << i;
  for (size_t i = 0; i < narrow.size(); ++i)
    ASSERT_EQ(from_bf16(narrow[i]), static_cast<float>(n * (i % 7) + base)) << i;
  std::vector<float> reference = inexact;
  comm.broadcast(std::span<float>(reference), 0);
  EXPECT_EQ(std::memcmp(inexact.data(), reference.data(), inexact.size() * sizeof(float)), 0)
      << "rank " << comm.rank();
}

INSTANTIATE_TEST_SUITE_P(MpiCommunicator, AsyncSums,
                         ::testing::Values(RingChoice::kLibrary, RingChoice::kRing), choice_name);

// The sharded step's collectives in rounds of 512 KB per part (Note [all-reduce pieces]), and as
// the ring's two halves (Note [ring all-reduce]): uneven parts of several rounds or segments each,
// one of them empty with 3+ ranks.
class ShardCollectives : public ::testing::TestWithParam<RingChoice> {};

TEST_P(ShardCollectives, ReduceScatterAndAllGatherUnevenParts) {
  MpiCommunicator comm;
  comm.choose_large_sums(GetParam());
  const int n = comm.size();
  std::vector<int> counts(n);
  for (int r = 0; r < n; ++r) counts[r] = r == n - 1 && n > 2 ? 0 : 300000 + 70001 * r;
  std::vector<int> offsets(n + 1);
  for (int r = 0; r < n; ++r) offsets[r + 1] = offsets[r] + counts[r];
  std::vector<float> in(offsets[n]);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<float>(comm.rank() + i % 1000);
  std::vector<float> shard(counts[comm.rank()], -1.0f);
  comm.reduce_scatter_sum(in, shard, counts);
  for (size_t k = 0; k < shard.size(); ++k)
    ASSERT_EQ(shard[k],
              static_cast<float>(n * ((offsets[comm.rank()] + k) % 1000) + n * (n - 1) / 2))
        << k;
  std::vector<float> data(offsets[n], -1.0f);
  for (int k = 0; k < counts[comm.rank()]; ++k)
    data[offsets[comm.rank()] + k] = static_cast<float>(comm.rank() * 100 + k % 97);
  comm.all_gather(data, counts);
  for (int r = 0; r < n; ++r)
    for (int k = 0; k < counts[r]; ++k)
      ASSERT_EQ(data[offsets[r] + k], static_cast<float>(r * 100 + k % 97)) << r << " " << k;
}

INSTANTIATE_TEST_SUITE_P(MpiCommunicator, ShardCollectives,
                         ::testing::Values(RingChoice::kLibrary, RingChoice::kRing), choice_name);

TEST(MpiCommunicator, AllReduceSumDoubleAndMax) {
  MpiCommunicator comm;
  const int n = comm.size();
  double values[2] = {1.0, static_cast<double>(comm.rank())};
  comm.all_reduce_sum(std::span<double>(values));
  EXPECT_EQ(values[0], n);
  EXPECT_EQ(values[1], n * (n - 1) / 2.0);
  EXPECT_EQ(comm.all_reduce_max(comm.rank() * 10), (n - 1) * 10);
}

TEST(MpiCommunicator, BroadcastFromAnyRoot) {
  MpiCommunicator comm;
  for (int root = 0; root < comm.size(); ++root) {
    std::vector<float> data(17, static_cast<float>(comm.rank()));
    comm.broadcast(std::span<float>(data), root);
    for (float v : data) ASSERT_EQ(v, root);
  }
}

// Note [shared-memory all-reduce]: stretches at any offset, including ones shorter than the
// number of ranks (empty slices), sum exactly and leave every rank with the same bits.
TEST(SharedBuffer, AllReduceSumsAnyStretch) {
  MpiCommunicator comm;
  const int n = comm.size();
  std::string why_not;
  auto buffer = comm.allocate_shared(5000, SharedCopies::kPerRank, why_not);
  ASSERT_NE(buffer, nullptr) << "every rank of this test runs on one host: " << why_not;
  std::span<float> all = buffer->span();
  ASSERT_EQ(all.size(), 5000u);
  for (float v : all) ASSERT_EQ(v, 0.0f) << "not zero-filled";
  const size_t pieces[][2] = {{0, 1}, {1, 2}, {3, 997}, {1000, 4000}};  // offset, count
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<float>(comm.rank() + i % 101);
  for (const auto& piece : pieces) buffer->all_reduce_sum(piece[0], piece[1], Summands::kAsStored);
  for (size_t i = 0; i < all.size(); ++i)
    ASSERT_EQ(all[i], static_cast<float>(n * (i % 101) + n * (n - 1) / 2)) << i;

  // Rounding depends on the summation order: whoever summed an element, every rank holds its
  // bits. Rank 0's copy, broadcast, must match everyone's.
  for (size_t i = 0; i < all.size(); ++i) all[i] = 0.1f * static_cast<float>(comm.rank() + 1) / 3;
  buffer->all_reduce_sum(0, all.size(), Summands::kAsStored);
  std::vector<float> reference(all.begin(), all.end());
  comm.broadcast(std::span<float>(reference), 0);
  ASSERT_EQ(0, std::memcmp(reference.data(), all.data(), all.size() * sizeof(float)));

  // More than /dev/shm holds: no buffer and a reason, on every rank, not a failure.
  EXPECT_EQ(comm.allocate_shared(size_t{1} << 40, SharedCopies::kPerRank, why_not), nullptr);
  EXPECT_NE(why_not.find("/dev/shm"), std::string::npos) << why_not;
}

// Note [split weight gradients]: one copy that every rank reads and writes in place. Each rank
// writes its own stretch; after synchronize() every rank sees every stretch. The sums, which read
// a copy per rank, refuse it.
TEST(SharedBuffer, OneCopyIsTheSameMemoryOnEveryRank) {
  MpiCommunicator comm;
  const int n = comm.size();
  std::string why_not;
  auto buffer = comm.allocate_shared(10 * static_cast<size_t>(n), SharedCopies::kOne, why_not);
  ASSERT_NE(buffer, nullptr) << why_not;
  std::span<float> all = buffer->span();
  ASSERT_EQ(all.size(), 10u * static_cast<size_t>(n));
  for (float v : all) ASSERT_EQ(v, 0.0f) << "not zero-filled";
  buffer->synchronize();  // nobody writes before every rank has checked the zeros
  for (size_t i = 0; i < 10; ++i)
    all[10 * static_cast<size_t>(comm.rank()) + i] = 1.0f + comm.rank();
  buffer->synchronize();
  for (size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], 1.0f + static_cast<float>(i / 10)) << i;
  EXPECT_THROW(buffer->all_reduce_sum(0, all.size(), Summands::kAsStored), std::logic_error);
  EXPECT_THROW(buffer->publish(0, 1), std::logic_error);
}

// ZeRO-1 through shared memory: uneven parts (one empty), each summed into its owner's copy only.
TEST(SharedBuffer, ReduceScatterSumsEachRanksPartIntoItsOwnCopy) {
  MpiCommunicator comm;
  const int n = comm.size();
  std::string why_not;
  auto buffer = comm.allocate_shared(100, SharedCopies::kPerRank, why_not);
  ASSERT_NE(buffer, nullptr) << why_not;
  std::span<float> all = buffer->span();
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<float>((comm.rank() + 1) * i);
  std::vector<int> counts(static_cast<size_t>(n));
  for (int r = 0; r < n; ++r) counts[static_cast<size_t>(r)] = r == 0 ? 0 : 7 * r;
  const size_t offset = 5;
  buffer->reduce_scatter_sum(offset, counts, Summands::kAsStored);
  size_t begin = offset;
  for (int r = 0; r < comm.rank(); ++r)
    begin += static_cast<size_t>(counts[static_cast<size_t>(r)]);
  const size_t end = begin + static_cast<size_t>(counts[static_cast<size_t>(comm.rank())]);
  const float rank_sum = static_cast<float>(n * (n + 1) / 2);
  for (size_t i = 0; i < all.size(); ++i) {
    const float mine = static_cast<float>((comm.rank() + 1) * i);  // untouched elsewhere
    ASSERT_EQ(all[i], i >= begin && i < end ? rank_sum * static_cast<float>(i) : mine) << i;
  }
}

TEST(RunAgreed, OneFailingRankStopsEveryRank) {
  MpiCommunicator comm;
  const int failing = comm.size() - 1;
  auto fail_on_last_rank = [&] {
    if (comm.rank() == failing) throw DataError("shard.csv: broken");
  };
  if (comm.rank() == failing) {
    EXPECT_THROW(run_agreed(comm, fail_on_last_rank), DataError);
  } else {
    try {
      run_agreed(comm, fail_on_last_rank);
      ADD_FAILURE() << "run_agreed returned on rank " << comm.rank();
    } catch (const PeerError& e) {
      EXPECT_EQ(e.code(), ExitCode::kData);
    }
  }
  EXPECT_NO_THROW(run_agreed(comm, [] {}));
}

// The error is printed once: by the lowest rank among those that failed with the worst code.
TEST(RunAgreed, OneRankReportsTheWorstError) {
  MpiCommunicator comm;
  auto reporter_of = [&](auto fail) {
    try {
      run_agreed(comm, fail);
    } catch (const PeerError&) {
      return -2;  // quiet: did not fail itself
    } catch (const Error& e) {
      return e.reporter();
    }
    return -3;
  };
  // Every rank fails alike: rank 0 reports.
  EXPECT_EQ(reporter_of([] { throw ConfigError("run.yaml: training.epochs: must be > 0"); }), 0);
  if (comm.size() == 1) return;
  // Rank 0 has a config error (exit 2), the odd ranks a data error (3): rank 1 reports.
  const int expected = comm.rank() % 2 == 1 ? 1 : (comm.rank() == 0 ? 1 : -2);
  EXPECT_EQ(reporter_of([&] {
              if (comm.rank() % 2 == 1) throw DataError("shard.csv: broken");
              if (comm.rank() == 0) throw ConfigError("run.yaml: bad");
            }),
            expected)
      << "rank " << comm.rank();
}

}  // namespace
}  // namespace ddp
