// Checkpoint write time for the Fashion-MNIST MLP (784-512-256-10 with Adam: 535,818 parameters,
// 6.4 MB of arrays), against writing and fsyncing the same number of bytes raw: the checkpoint
// should cost about the bytes, not more.
// Run: build/bench_checkpoint [--benchmark_filter=...]   (writes under $TMPDIR or /tmp)

#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <filesystem>

#include "train/checkpoint.h"

namespace {

using namespace ddp;

constexpr size_t kFashionMlpParams = 784 * 512 + 512 + 512 * 256 + 256 + 256 * 10 + 10;

TrainingState fashion_mlp_state() {
  TrainingState s;
  s.batch_mode = "per_rank";
  s.optimizer = "adam";
  s.signature = {{"layers.0.weight", Shape{512, 784}}, {"layers.0.bias", Shape{512}},
                 {"layers.1.weight", Shape{256, 512}}, {"layers.1.bias", Shape{256}},
                 {"layers.2.weight", Shape{10, 256}},  {"layers.2.bias", Shape{10}}};
  s.params.assign(kFashionMlpParams, 0.25f);
  s.optimizer_state = {{"m", std::vector<float>(kFashionMlpParams, 0.5f)},
                       {"v", std::vector<float>(kFashionMlpParams, 0.125f)}};
  return s;
}

std::string scratch_dir() {
  const auto dir = std::filesystem::temp_directory_path() / "ddp_bench_checkpoint";
  std::filesystem::create_directories(dir);
  return dir.string();
}

void BM_CheckpointEncode(benchmark::State& state) {
  const TrainingState s = fashion_mlp_state();
  size_t bytes = 0;
  for (auto _ : state) {
    const auto encoded = encode_checkpoint(s);
    bytes = encoded.size();
    benchmark::DoNotOptimize(encoded.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
}

void BM_CheckpointSave(benchmark::State& state) {
  const TrainingState s = fashion_mlp_state();
  CheckpointDir dir(scratch_dir() + "/ckpts", 2);
  for (auto _ : state) dir.save(s);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * encode_checkpoint(s).size()));
}

void BM_RawWriteFsync(benchmark::State& state) {
  const std::vector<char> bytes(encode_checkpoint(fashion_mlp_state()).size(), 'x');
  const std::string path = scratch_dir() + "/raw.bin";
  for (auto _ : state) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || ::write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()) ||
        ::fsync(fd) != 0 || ::close(fd) != 0) {
      state.SkipWithError("raw write failed");
      break;
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes.size()));
}

}  // namespace

BENCHMARK(BM_CheckpointEncode)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CheckpointSave)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_RawWriteFsync)->Unit(benchmark::kMillisecond)->UseRealTime();

BENCHMARK_MAIN();
