// Note [threads per rank]: a team of threads shares each dense product of a rank, and training
// gives the same bits whatever the team's size.

#include <gtest/gtest.h>
#include <xmmintrin.h>

#include <atomic>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/thread_team.h"
#include "train/config_reader.h"
#include "train/trainer.h"

namespace ddp {
namespace {

TEST(ThreadTeam, RunsEveryThreadOnceWithTheCallersFloatingPointControl) {
  ThreadTeam team(3);
  ASSERT_EQ(team.size(), 3);
  const unsigned saved = _mm_getcsr();
  _mm_setcsr(saved | 0x8040);  // flush denormals to zero, as the CPU backend sets it
  for (int round = 0; round < 50; ++round) {
    std::vector<std::atomic<int>> runs(3);
    std::atomic<int> flushing{0};
    team.run([&](int t) {
      runs[static_cast<size_t>(t)]++;
      if ((_mm_getcsr() & 0x8040) == 0x8040) flushing++;
    });
    for (int t = 0; t < 3; ++t) ASSERT_EQ(runs[static_cast<size_t>(t)], 1) << t;
    ASSERT_EQ(flushing, 3);
  }
  _mm_setcsr(saved);
}

TEST(ThreadTeam, RethrowsAWorkersException) {
  ThreadTeam team(2);
  EXPECT_THROW(team.run([](int t) {
    if (t == 1) throw std::runtime_error("worker failed");
  }),
               std::runtime_error);
  int ran = 0;
  team.run([&](int t) { ran += t == 0; });  // still usable
  EXPECT_EQ(ran, 1);
}

TEST(ThreadTeam, SharesCoverTheItemsInWholeGrains) {
  for (int n : {1, 2, 3, 5}) {
    int64_t next = 0;
    for (int t = 0; t < n; ++t) {
      const auto [begin, end] = ThreadTeam::share(100, 6, t, n);
      EXPECT_EQ(begin, next) << n;
      EXPECT_TRUE(begin % 6 == 0 || begin == 100) << n;
      next = end;
    }
    EXPECT_EQ(next, 100) << n;
  }
  EXPECT_EQ(ThreadTeam::share(100, 6, 0, 2), (std::pair<int64_t, int64_t>{0, 48}));
}

// 1024 -> 100 -> 37 -> 10 at batch 8: the first two products are split over the threads (the
// forward by weight rows, not a multiple of the tile; the input gradient by columns; the weight
// gradient by rows, updated in backward from several threads at once).
Config config(const std::vector<std::string>& overrides) {
  YAML::Node root = YAML::Load(R"(
seed: 9
data:
  train: {type: synthetic, samples: 64, features: 1024, classes: 10}
model:
  layers:
    - {type: dense, units: 100, activation: relu}
    - {type: dense, units: 37, activation: tanh}
    - {type: dense, units: 10, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: adam, learning_rate: 0.01}
training: {epochs: 2, global_batch_size: 8}
)");
  for (const auto& o : overrides) apply_override(root, o);
  return parse_config(root, "threads.yaml");
}

TrainingState train(int threads, const std::vector<std::string>& overrides = {}) {
  auto backend = make_cpu_backend(true, threads);
  auto comm = make_local_communicator();
  const Config c = config(overrides);
  Trainer trainer(c, *comm, *backend, load_dataset(c.train_data, 0), std::nullopt);
  trainer.fit();
  return trainer.capture();
}

TEST(ThreadsPerRank, TrainTheSameBitsAsOneThread) {
  for (const std::vector<std::string>& overrides :
       {std::vector<std::string>{},
        std::vector<std::string>{"training.update_in_backward=false"}}) {
    const TrainingState one = train(1, overrides);
    for (int threads : {2, 3}) {
      const TrainingState many = train(threads, overrides);
      EXPECT_EQ(many.completed_steps, 16);
      EXPECT_EQ(many.params, one.params) << threads << " threads";
      ASSERT_EQ(many.optimizer_state.size(), one.optimizer_state.size());
      for (size_t i = 0; i < one.optimizer_state.size(); ++i)
        EXPECT_EQ(many.optimizer_state[i].second, one.optimizer_state[i].second) << threads;
    }
  }
}

TEST(ThreadsPerRank, TheBackendSaysHowManyAndTheConfigRefusesNone) {
  EXPECT_NE(make_cpu_backend(true, 2)->name().find("dense layers on 2 threads"), std::string::npos);
  EXPECT_EQ(make_cpu_backend(true, 1)->name().find("threads"), std::string::npos);
  EXPECT_EQ(config({"training.threads_per_rank=4"}).training.threads_per_rank, 4);
  try {
    config({"training.threads_per_rank=0"});
    ADD_FAILURE() << "accepted";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("threads.yaml"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("threads_per_rank"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ddp
