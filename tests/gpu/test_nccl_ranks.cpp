// NCCL across ranks, one GPU each, under mpiexec -n 2: collectives with rank-dependent inputs and
// closed-form results, and data-parallel training on GPUs equal to one GPU with the global batch.
// Needs a GPU per rank on the host: with fewer, every rank reports the test skipped (exit 77),
// never passed.

#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "comm/mpi_communicator.h"
#include "core/bf16.h"
#include "runtime/cuda_module.h"
#include "runtime/device.h"
#include "train/config_reader.h"
#include "train/trainer.h"

namespace ddp {
namespace {

struct Gpus {
  MpiCommunicator host;
  std::unique_ptr<ComputeBackend> backend =
      choose_device("cuda", false, MatmulPrecision::kFloat32, host.local_rank(), host.local_size());
  std::unique_ptr<Communicator> nccl = make_device_communicator(host, *backend, nullptr);

  std::vector<float> read(const DeviceBuffer& buffer) {
    std::vector<float> out(buffer.size());
    backend->copy_to_host(buffer.data(), out.data(), out.size());
    return out;
  }
  DeviceBuffer upload(const std::vector<float>& values) {
    DeviceBuffer buffer(*backend, values.size());
    backend->copy_to_device(values.data(), buffer.data(), values.size());
    return buffer;
  }
};

TEST(NcclRanks, AllReduceSumsRankDependentValues) {
  Gpus g;
  ASSERT_NE(g.nccl, nullptr);
  const int n = g.host.size(), r = g.host.rank();
  std::vector<float> values(1000);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(r) + i - 500.0f;
  DeviceBuffer data = g.upload(values);
  g.nccl->all_reduce_sum(data.span());
  const std::vector<float> sum = g.read(data);
  for (size_t i = 0; i < sum.size(); ++i)
    ASSERT_EQ(sum[i], n * (static_cast<float>(i) - 500.0f) + n * (n - 1) / 2.0f) << i;

  // Asynchronous, then ReLU on the compute stream after wait(): it must see the sums, whose signs
  // differ from every rank's own input.
  std::vector<float> signs(64);
  for (size_t i = 0; i < signs.size(); ++i)
    signs[i] = (i % 2 ? 1.0f : -1.0f) * static_cast<float>(r == 0 ? 3 * n : -1);
  DeviceBuffer mixed = g.upload(signs);
  auto work = g.nccl->all_reduce_sum_async(mixed.span());
  work->wait();
  g.backend->activation_forward(Activation::kRelu, mixed.data(), mixed.data(), signs.size());
  const std::vector<float> relu = g.read(mixed);
  const float total = static_cast<float>(3 * n - (n - 1));  // rank 0's 3n, the others' -1 each
  for (size_t i = 0; i < relu.size(); ++i) ASSERT_EQ(relu[i], i % 2 ? total : 0.0f) << i;
}

TEST(NcclRanks, Bf16AndZero1Collectives) {
  Gpus g;
  const int n = g.host.size(), r = g.host.rank();
  // bf16: small integers are exact, so the sum is too.
  std::vector<float> pair(1);
  const uint16_t bits[2] = {static_cast<uint16_t>(0x3f80 + (r << 7)), 0xc000};  // 1 * 2^r, -2
  std::memcpy(pair.data(), bits, sizeof bits);
  DeviceBuffer wire = g.upload(pair);
  g.nccl->all_reduce_sum_bf16({reinterpret_cast<uint16_t*>(wire.data()), 2});
  const float back = g.read(wire)[0];
  uint16_t sums[2];
  std::memcpy(sums, &back, sizeof sums);
  EXPECT_EQ(from_bf16(sums[0]), static_cast<float>((1 << n) - 1));
  EXPECT_EQ(from_bf16(sums[1]), -2.0f * n);

  // Uneven shards: rank k owns k + 1 floats.
  std::vector<int> counts;
  size_t total = 0;
  for (int k = 0; k < n; ++k) counts.push_back(k + 1), total += static_cast<size_t>(k + 1);
  std::vector<float> in(total);
  for (size_t i = 0; i < total; ++i) in[i] = static_cast<float>((r + 1) * (i + 1));
  DeviceBuffer full = g.upload(in), shard(*g.backend, static_cast<size_t>(r + 1));
  g.nccl->reduce_scatter_sum(full.span(), shard.span(), counts);
  const size_t begin = static_cast<size_t>(r * (r + 1) / 2);
  const std::vector<float> mine = g.read(shard);
  for (size_t i = 0; i < mine.size(); ++i)
    ASSERT_EQ(mine[i], static_cast<float>(n * (n + 1) / 2 * (begin + i + 1))) << i;
  // All-gather: each rank contributes -(its rank + 1) in its slice.
  std::vector<float> slices(total, 0.0f);
  for (size_t i = begin; i < begin + static_cast<size_t>(r + 1); ++i)
    slices[i] = -static_cast<float>(r + 1);
  DeviceBuffer gathered = g.upload(slices);
  g.nccl->all_gather(gathered.span(), counts);
  const std::vector<float> all = g.read(gathered);
  size_t at = 0;
  for (int k = 0; k < n; ++k)
    for (int j = 0; j <= k; ++j, ++at) ASSERT_EQ(all[at], -static_cast<float>(k + 1)) << at;
}

Config gpu_config(const std::string& extra) {
  YAML::Node root = YAML::Load(R"(
seed: 9
data:
  train: {type: synthetic, samples: 512, features: 20, classes: 5}
model:
  layers:
    - {type: dense, units: 64, activation: relu}
    - {type: dense, units: 5, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: adam, learning_rate: 0.01}
training: {epochs: 1, global_batch_size: 64, device: cuda, bucket_mb: 0.005}
)");
  if (!extra.empty()) apply_override(root, extra);
  return parse_config(root, "gpu.yaml");
}

// Invariant 1 on GPUs: N ranks through NCCL (replicated, overlapped, ZeRO-1) train the same model
// as one GPU with the global batch.
TEST(NcclRanks, RanksTrainTheSameModelAsOneGpu) {
  Gpus g;
  auto local = make_local_communicator();
  auto train = [&](Communicator& comm, const Config& config) {
    Trainer trainer(config, comm, *g.backend, load_dataset(config.train_data, comm.rank()),
                    std::nullopt);
    trainer.train_steps(6);
    return trainer.params_to_host();
  };
  const std::vector<float> single = train(*local, gpu_config(""));
  for (const std::string extra : {"", "training.overlap=true", "training.zero=1"}) {
    const std::vector<float> ranks = train(*g.nccl, gpu_config(extra));
    ASSERT_EQ(ranks.size(), single.size());
    float worst = 0;
    for (size_t i = 0; i < ranks.size(); ++i)
      worst = std::max(worst, std::abs(ranks[i] - single[i]));
    EXPECT_LE(worst, 1e-5f) << extra;
    std::vector<float> reference = ranks;
    g.host.broadcast(std::span<float>(reference), 0);
    EXPECT_EQ(reference, ranks) << "replicas differ: " << extra;
  }
}

}  // namespace
}  // namespace ddp

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  // Every rank needs its own GPU; ranks of one host share the count, so all decide alike.
  int gpus = std::filesystem::exists("/dev/nvidiactl") ? ddp::cuda_module().device_count() : 0;
  MPI_Allreduce(MPI_IN_PLACE, &gpus, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (size < 2 || gpus < size) {
    if (rank == 0)
      std::printf("SKIPPED: %d rank(s), %d GPU(s) visible; needs at least 2 ranks, one GPU each\n",
                  size, gpus);
    MPI_Finalize();
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  int failed = RUN_ALL_TESTS() != 0 ? 1 : 0;
  MPI_Allreduce(MPI_IN_PLACE, &failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  MPI_Finalize();
  return failed;
}
