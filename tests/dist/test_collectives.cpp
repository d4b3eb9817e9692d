// Collectives with rank-dependent inputs whose results are known in closed form.

#include <gtest/gtest.h>

#include <cstring>

#include "dist/agreement.h"
#include "dist/grad_reducer.h"
#include "dist/mpi_communicator.h"
#include "nn/model_builder.h"

namespace ddp {
namespace {

TEST(MpiCommunicator, AllReduceSumFloat) {
  MpiCommunicator comm;
  const int n = comm.size();
  std::vector<float> data(1000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<float>(comm.rank() + i);
  comm.all_reduce_sum(std::span<float>(data));
  for (size_t i = 0; i < data.size(); ++i)
    ASSERT_EQ(data[i], static_cast<float>(n * i + n * (n - 1) / 2)) << i;
}

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

// Note [shared-memory all-reduce]: subspans at any offset, including ones shorter than the
// number of ranks (empty slices), sum exactly and leave every rank with the same bits.
TEST(MpiCommunicator, ReducibleBufferSumsAnySubspan) {
  MpiCommunicator comm;
  const int n = comm.size();
  auto buffer = comm.allocate_reducible(5000);
  ASSERT_NE(buffer, nullptr) << "every rank of this test runs on one host";
  std::span<float> all = buffer->span();
  ASSERT_EQ(all.size(), 5000u);
  for (float v : all) ASSERT_EQ(v, 0.0f) << "not zero-filled";
  const size_t pieces[][2] = {{0, 1}, {1, 2}, {3, 997}, {1000, 4000}};  // offset, count
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<float>(comm.rank() + i % 101);
  for (const auto& piece : pieces) comm.all_reduce_sum(all.subspan(piece[0], piece[1]));
  for (size_t i = 0; i < all.size(); ++i)
    ASSERT_EQ(all[i], static_cast<float>(n * (i % 101) + n * (n - 1) / 2)) << i;

  // Rounding depends on the summation order: whoever summed an element, every rank holds its
  // bits. Rank 0's copy, broadcast, must match everyone's.
  for (size_t i = 0; i < all.size(); ++i) all[i] = 0.1f * static_cast<float>(comm.rank() + 1) / 3;
  comm.all_reduce_sum(all);
  std::vector<float> reference(all.begin(), all.end());
  comm.broadcast(std::span<float>(reference), 0);
  ASSERT_EQ(0, std::memcmp(reference.data(), all.data(), all.size() * sizeof(float)));

  // More than /dev/shm holds: plain memory instead (null), on every rank, not a failure.
  EXPECT_EQ(comm.allocate_reducible(size_t{1} << 40), nullptr);

  // Other memory still goes through MPI, asynchronously too.
  std::vector<float> plain(10, 1.0f);
  comm.all_reduce_sum_async(std::span<float>(plain))->wait();
  for (float v : plain) ASSERT_EQ(v, static_cast<float>(n));
}

TEST(GradReducer, BucketsInReverseLayerOrderAndSumsEveryElement) {
  MpiCommunicator comm;
  auto backend = make_cpu_backend();
  auto model = build_sequential(
      *backend, Shape{8},
      {{"dense", 16, "relu", "l0"}, {"dense", 16, "relu", "l1"}, {"dense", 4, "linear", "l2"}});
  // Layers of 144, 272 and 68 floats; a bucket closes once it holds at least 50 floats (200
  // bytes) of whole tensors, so each layer gets its own bucket.
  GradReducer reducer(comm, model->grads(), model->param_entries(), 200);
  const auto& buckets = reducer.buckets();
  ASSERT_EQ(buckets.size(), 3u);
  EXPECT_EQ(buckets.front().count, 68u);
  EXPECT_EQ(buckets.front().offset + buckets.front().count, model->param_count());
  EXPECT_EQ(buckets.back().offset, 0u);
  for (size_t i = 1; i < buckets.size(); ++i)
    EXPECT_EQ(buckets[i].offset + buckets[i].count, buckets[i - 1].offset) << "not contiguous";

  // Every rank must have the same layout.
  std::vector<uint64_t> layout;
  for (const Bucket& b : buckets) layout.insert(layout.end(), {b.offset, b.count});
  std::vector<uint64_t> reference = layout;
  comm.broadcast(std::span<uint64_t>(reference), 0);
  EXPECT_EQ(layout, reference);

  auto grads = model->grads();
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = static_cast<float>(comm.rank() + i);
  reducer.reduce();
  const size_t n = static_cast<size_t>(comm.size());
  for (size_t i = 0; i < grads.size(); ++i)
    ASSERT_EQ(grads[i], static_cast<float>(n * i + n * (n - 1) / 2)) << i;
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

}  // namespace
}  // namespace ddp
