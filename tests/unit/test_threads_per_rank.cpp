// Note [threads per rank]: a team of threads shares each dense product of a rank, and training
// gives the same bits whatever the team's size.

#include <gtest/gtest.h>
#include <xmmintrin.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/error.h"
#include "core/thread_team.h"
#include "finite_differences.h"
#include "nn/dense.h"
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

TEST(ThreadTeam, ARunInsideAWorkItemRunsEveryShareOnThatThread) {
  ThreadTeam team(2);
  std::mutex mutex;
  std::vector<std::pair<int, int>> inner;  // (outer t, inner t)
  std::vector<std::thread::id> inner_threads(2), outer_threads(2);
  team.run([&](int outer) {
    outer_threads[static_cast<size_t>(outer)] = std::this_thread::get_id();
    team.run([&](int t) {
      std::lock_guard<std::mutex> lock(mutex);
      inner.emplace_back(outer, t);
      if (std::this_thread::get_id() != outer_threads[static_cast<size_t>(outer)])
        ADD_FAILURE() << "inner share " << t << " of item " << outer << " left its thread";
    });
  });
  std::sort(inner.begin(), inner.end());
  EXPECT_EQ(inner, (std::vector<std::pair<int, int>>{{0, 0}, {0, 1}, {1, 0}, {1, 1}}));
  int ran = 0;
  team.run([&](int t) { ran += t == 0; });  // the team works as before afterwards
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

// 1024 -> 100 -> 400 -> 10 at batch 32: the first two products are split over the threads (the
// forward by weight rows, not a multiple of the tile; the weight gradient by rows, updated in
// backward from several threads at once). The second layer's input gradient is large enough for
// OpenBLAS where the tiled kernels leave it to OpenBLAS (AVX2): split over the threads, OpenBLAS
// rounded differently per share and, called from two threads at once, raced on its buffers.
Config config(const std::vector<std::string>& overrides) {
  YAML::Node root = YAML::Load(R"(
seed: 9
data:
  train: {type: synthetic, samples: 256, features: 1024, classes: 10}
model:
  layers:
    - {type: dense, units: 100, activation: relu}
    - {type: dense, units: 400, activation: tanh}
    - {type: dense, units: 10, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: adam, learning_rate: 0.01}
training: {epochs: 2, global_batch_size: 32}
)");
  for (const auto& o : overrides) apply_override(root, o);
  return parse_config(root, "threads.yaml");
}

// 64 -> 1100 -> 1000 -> 10: the second layer's 4.4 MB of weights are more than stay in cache, so
// threads share its input gradient by columns (not a whole number of the kernels' column grain).
const std::vector<std::string> kWideModel = {"data.train.features=64", "model.layers.0.units=1100",
                                             "model.layers.1.units=1000"};

TrainingState train(int threads, const std::vector<std::string>& overrides = {},
                    MatmulPrecision precision = MatmulPrecision::kFloat32) {
  auto backend = make_cpu_backend(true, threads, precision);
  auto comm = make_local_communicator();
  const Config c = config(overrides);
  Trainer trainer(c, *comm, *backend, load_dataset(c.train_data, 0), std::nullopt);
  trainer.fit();
  return trainer.capture();
}

// Batches of 600 rows: Note [batches in pieces] (256, 256 and 88 rows), the weight gradients
// summed over the pieces into blocks for the update in backward, into the stored gradient after
// it, and added to it over two accumulated micro-batches of 600.
const std::vector<std::string> kBatchesInPieces = {
    "data.train.samples=1200", "training.global_batch_size=600", "training.epochs=8"};

std::vector<std::string> with(std::vector<std::string> overrides,
                              const std::vector<std::string>& more) {
  overrides.insert(overrides.end(), more.begin(), more.end());
  return overrides;
}

TEST(ThreadsPerRank, TrainTheSameBitsAsOneThread) {
  // Updated after backward, the whole buffer (146,910 parameters) is one update, split over the
  // threads.
  for (const std::vector<std::string>& overrides :
       {std::vector<std::string>{}, std::vector<std::string>{"training.update_in_backward=false"},
        std::vector<std::string>{"training.update_in_backward=false", "optimizer.type=sgd",
                                 "optimizer.momentum=0.9"},
        kBatchesInPieces, with(kBatchesInPieces, {"training.update_in_backward=false"}),
        with(kBatchesInPieces, {"training.accumulation_steps=2", "training.epochs=16"})}) {
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

// Note [batches in pieces]: a dense layer's products at 600 rows, in pieces, are the products
// (against sums in double) and the same bits on 1 and 3 threads, weight gradient stored and
// added to (accumulate).
TEST(ThreadsPerRank, BatchesInPiecesAreTheProductsOnAnyTeam) {
  const int64_t batch = 600, in = 300, out = 200;
  const std::vector<float> x = random_vector(batch * in, 1), w = random_vector(out * in, 2),
                           b = random_vector(out, 3), r = random_vector(batch * out, 4);
  struct Results {
    std::vector<float> y, dx, dw, db;
  };
  const auto run = [&](int threads) {
    auto backend = make_cpu_backend(true, threads);
    Dense layer(in, out, Activation::kLinear);
    std::vector<float> weight = w, bias = b, dw(w.size(), 1.0f), db(b.size());
    float* params[] = {weight.data(), bias.data()};
    float* grads[] = {dw.data(), db.data()};
    layer.bind(params, grads);
    Results results{std::vector<float>(batch * out), std::vector<float>(x.size()), {}, {}};
    layer.forward(*backend, x.data(), results.y.data(), batch);
    std::vector<float> dy = r;
    layer.backward(*backend, x.data(), results.y.data(), dy.data(), results.dx.data(), batch,
                   /*accumulate=*/true);
    results.dw = dw;
    results.db = db;
    return results;
  };
  const Results one = run(1), three = run(3);
  EXPECT_EQ(three.y, one.y);
  EXPECT_EQ(three.dx, one.dx);
  EXPECT_EQ(three.dw, one.dw);
  EXPECT_EQ(three.db, one.db);
  for (int64_t i = 0; i < batch; i += 7)
    for (int64_t o = 0; o < out; o += 3) {
      double y = b[o], dw = 1;  // dw was 1 before the accumulating backward
      for (int64_t k = 0; k < in; ++k) y += double{x[i * in + k]} * w[o * in + k];
      for (int64_t row = 0; row < batch; ++row)
        dw += double{r[row * out + o]} * x[row * in + i % in];
      ASSERT_NEAR(one.y[i * out + o], y, 1e-4) << "y row " << i;
      ASSERT_NEAR(one.dw[o * in + i % in], dw, 1e-3) << "dw row " << o;
    }
  for (int64_t i = 0; i < batch; i += 7)
    for (int64_t k = 0; k < in; k += 5) {
      double dx = 0;
      for (int64_t o = 0; o < out; ++o) dx += double{r[i * out + o]} * w[o * in + k];
      ASSERT_NEAR(one.dx[i * in + k], dx, 1e-4) << "dx row " << i;
    }
}

TEST(ThreadsPerRank, TrainTheSameBitsAsOneThreadWithWeightsTooLargeForCache) {
  const TrainingState one = train(1, kWideModel);
  for (int threads : {2, 3}) {
    const TrainingState many = train(threads, kWideModel);
    EXPECT_EQ(many.completed_steps, 16);
    EXPECT_EQ(many.params, one.params) << threads << " threads";
  }
}

// bf16 products split into pieces fixed by the shape (Note [bf16 products]): the wide model's
// layers in 5 and 4 pieces, its weight gradients in blocks handed to the update from each thread.
TEST(ThreadsPerRank, TrainTheSameBitsAsOneThreadWithBf16Products) {
  std::vector<std::string> overrides = kWideModel;
  overrides.push_back("training.bf16_matmul=true");
  const TrainingState one = train(1, overrides, MatmulPrecision::kBf16),
                      fp32 = train(1, kWideModel);
  EXPECT_NE(one.params, fp32.params);  // the products did round their operands
  for (int threads : {2, 3}) {
    const TrainingState many = train(threads, overrides, MatmulPrecision::kBf16);
    EXPECT_EQ(many.completed_steps, 16);
    EXPECT_EQ(many.params, one.params) << threads << " threads";
  }
}

// Note [convolutions on threads]: a convnet whose batch of 40 is 3 pieces (16, 16, 8) of every
// kernel: the direct kernels (1 channel), Winograd's (16 -> 16, 3x3 at stride 1; where the build
// has them), oneDNN's (16 channels at stride 2, where built with it); batch normalization (its
// statistics over 10,240 rows in 3 pieces), a ReLU layer, max and average pooling and dropout on
// the threads' shares of the batch; fp32 and bf16 products.
TEST(ThreadsPerRank, AConvnetTrainsTheSameBitsAsOneThread) {
  const std::vector<std::string> convnet = {
      "data.train.features=256", "model.input=[16, 16, 1]",
      "model.layers=[{type: conv2d, filters: 16, kernel_size: 3, padding: same},"
      " {type: batch_normalization}, {type: relu},"
      " {type: conv2d, filters: 16, kernel_size: 3, padding: same, activation: relu},"
      " {type: max_pooling2d, pool_size: 2},"
      " {type: conv2d, filters: 8, kernel_size: 3, strides: 2, padding: same, activation: tanh},"
      " {type: average_pooling2d, pool_size: 2}, {type: flatten}, {type: dropout, rate: 0.25},"
      " {type: dense, units: 10, activation: softmax}]",
      "training.global_batch_size=40"};
  for (const bool bf16 : {false, true}) {
    std::vector<std::string> overrides = convnet;
    if (bf16) overrides.push_back("training.bf16_matmul=true");
    const MatmulPrecision precision = bf16 ? MatmulPrecision::kBf16 : MatmulPrecision::kFloat32;
    const TrainingState one = train(1, overrides, precision);
    EXPECT_EQ(one.completed_steps, 12);  // 6 batches of 40 an epoch
    for (int threads : {2, 3}) {
      const TrainingState many = train(threads, overrides, precision);
      EXPECT_EQ(many.params, one.params) << threads << " threads" << (bf16 ? ", bf16" : "");
    }
  }
}

// An update split over threads finds a non-finite gradient in whichever thread's share it lies.
TEST(ThreadsPerRank, ASplitUpdateFindsANonFiniteGradientInAnyShare) {
  auto backend = make_cpu_backend(true, 3);
  constexpr size_t kCount = size_t{1} << 18;
  std::vector<float> p(kCount, 0.5f), g(kCount, 0.25f), m(kCount), v(kCount);
  for (size_t bad : {size_t{0}, kCount / 2, kCount - 1}) {
    g[bad] = std::numeric_limits<float>::quiet_NaN();
    EXPECT_FALSE(backend->adam_update(p.data(), g.data(), m.data(), v.data(), kCount, 1e-3f, 1, 1,
                                      AdamHyper{}, GradCheck::kFinite))
        << bad;
    EXPECT_FALSE(backend->sgd_update(p.data(), g.data(), v.data(), kCount, 1e-3f, 1, SgdHyper{0.9f},
                                     GradCheck::kFinite))
        << bad;
    g[bad] = 0.25f;
  }
  EXPECT_TRUE(backend->adam_update(p.data(), g.data(), m.data(), v.data(), kCount, 1e-3f, 1, 1,
                                   AdamHyper{}, GradCheck::kFinite));
}

TEST(ThreadsPerRank, TheBackendSaysHowManyAndTheConfigRefusesNone) {
  EXPECT_NE(make_cpu_backend(true, 2)->name().find("dense layers and convolutions on 2 threads"),
            std::string::npos);
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
