// The CUDA backend against the CPU backend (the specification) on random inputs, one training
// step on both, and NCCL with a world of one. Needs a GPU: without one the binary says so and
// exits 77, which CTest reports as skipped, never as passed.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>

#include "gpu_test_support.h"
#include "optim/adaptive_optimizer.h"
#include "runtime/device.h"
#include "train/config_reader.h"
#include "train/trainer.h"

namespace ddp {
namespace {

// Dense forward and backward on both backends, every output compared within `tolerance`. The CPU
// multiplies bf16 operands where the GPU does, and fp32 otherwise.
void expect_dense_matches_cpu(Activation act, MatmulPrecision precision, float tolerance) {
  auto cpu = make_cpu_backend(
      false, 1, precision == MatmulPrecision::kBf16 ? precision : MatmulPrecision::kFloat32);
  auto cuda = gpu(precision);
  const int64_t batch = 37, in = 53, out = 29;
  const auto x = random_values(batch * in, 1), w = random_values(out * in, 2),
             b = random_values(out, 3), dy = random_values(batch * out, 4),
             dw0 = random_values(out * in, 5), db0 = random_values(out, 6);
  for (bool accumulate : {false, true}) {
    std::vector<std::vector<float>> results[2];
    ComputeBackend* backends[2] = {cpu.get(), cuda.get()};
    for (int k = 0; k < 2; ++k) {
      ComputeBackend& be = *backends[k];
      Mirror X(be, x), W(be, w), B(be, b), Y(be, std::vector<float>(batch * out)), DY(be, dy),
          DX(be, std::vector<float>(batch * in)), DW(be, dw0), DB(be, db0);
      be.dense_forward(X.buffer.data(), W.buffer.data(), B.buffer.data(), Y.buffer.data(), batch,
                       in, out, act);
      be.dense_backward(X.buffer.data(), W.buffer.data(), Y.buffer.data(), DY.buffer.data(),
                        DX.buffer.data(), DW.buffer.data(), DB.buffer.data(), batch, in, out, act,
                        accumulate, nullptr);
      results[k] = {Y.read(), DX.read(), DW.read(), DB.read()};
    }
    const char* names[4] = {"dense y", "dense dx", "dense dw", "dense db"};
    for (size_t i = 0; i < 4; ++i) expect_close(results[0][i], results[1][i], names[i], tolerance);
  }
}

class CudaVsCpu : public ::testing::TestWithParam<Activation> {};

TEST_P(CudaVsCpu, DenseForwardAndBackward) {
  expect_dense_matches_cpu(GetParam(), MatmulPrecision::kFloat32, 1e-5f);
}

// TF32 keeps 10 of float's 23 mantissa bits, so each product is off by up to 2^-10 of |a||b|, and
// sums whose terms cancel are off by more than that share of the result: on an H200 the largest
// difference was 1.01e-3 of the largest output (tanh's forward). A wrong product is off by O(1).
TEST_P(CudaVsCpu, DenseWithTf32WithinItsTolerance) {
  expect_dense_matches_cpu(GetParam(), MatmulPrecision::kTf32, 4e-3f);
}

// Note [bf16 products]: both backends round the operands to bfloat16 and sum exact products in
// fp32, so they differ by the order of the sums only; plain fp32 products on one side would differ
// by ~2^-9 of |a||b| a term.
TEST_P(CudaVsCpu, DenseWithBf16OperandsMatchesTheCpus) {
  expect_dense_matches_cpu(GetParam(), MatmulPrecision::kBf16, 1e-5f);
}

INSTANTIATE_TEST_SUITE_P(Activations, CudaVsCpu,
                         ::testing::Values(Activation::kLinear, Activation::kRelu,
                                           Activation::kTanh, Activation::kSigmoid));

TEST(CudaVsCpuOps, SoftmaxLossesOptimizersAndChecks) {
  auto cpu = make_cpu_backend(false);
  auto cuda = gpu();
  const int64_t rows = 41, cols = 10;
  const auto logits = random_values(rows * cols, 7, -3, 3);
  std::vector<float> sparse(rows), dense(rows * cols, 0);
  const auto row_weights = random_values(rows, 10, 0, 3);  // Keras' sample_weight
  for (int64_t r = 0; r < rows; ++r) {
    // Every seventh sparse target ignored, as a padding step's is (Note [masked positions]).
    sparse[r] = r % 7 == 3 ? kIgnoredTarget : static_cast<float>(r % cols);
    dense[r * cols + r % cols] = 1;
  }
  ComputeBackend* backends[2] = {cpu.get(), cuda.get()};
  std::vector<std::vector<float>> out[2];
  LossStats stats[2][4], deferred[2];
  double squares[2] = {};
  for (int k = 0; k < 2; ++k) {
    ComputeBackend& be = *backends[k];
    Mirror Z(be, logits), S(be, sparse), T(be, dense), G(be, std::vector<float>(rows * cols)),
        P(be, std::vector<float>(rows * cols)), DX(be, std::vector<float>(rows * cols)),
        W(be, row_weights);
    stats[k][0] = be.softmax_cross_entropy(Z.buffer.data(), S.buffer.data(), W.buffer.data(),
                                           TargetKind::kSparse, G.buffer.data(), 0.5f, rows, cols,
                                           Readback::kNow);
    out[k].push_back(G.read());
    stats[k][1] =
        be.softmax_cross_entropy(Z.buffer.data(), T.buffer.data(), nullptr, TargetKind::kDense,
                                 G.buffer.data(), 0.5f, rows, cols, Readback::kNow);
    out[k].push_back(G.read());
    stats[k][2] = be.mean_squared_error(Z.buffer.data(), T.buffer.data(), W.buffer.data(),
                                        G.buffer.data(), 0.5f, rows, cols, Readback::kNow);
    out[k].push_back(G.read());
    stats[k][3] =
        be.sigmoid_cross_entropy(Z.buffer.data(), T.buffer.data(), W.buffer.data(), nullptr,
                                 G.buffer.data(), 0.5f, rows, cols, Readback::kNow);
    // Note [deferred readback]: deferred losses return zeros and add up until taken, once.
    for (int i = 0; i < 2; ++i)
      EXPECT_EQ(be.softmax_cross_entropy(Z.buffer.data(), S.buffer.data(), W.buffer.data(),
                                         TargetKind::kSparse, G.buffer.data(), 0.5f, rows, cols,
                                         Readback::kLater)
                    .loss_sum,
                0);
    deferred[k] = be.take_loss_stats();
    EXPECT_EQ(be.take_loss_stats().loss_sum, 0) << "taken already";
    out[k].push_back(G.read());
    be.softmax_forward(Z.buffer.data(), P.buffer.data(), rows, cols);
    out[k].push_back(P.read());
    be.softmax_backward(P.buffer.data(), Z.buffer.data(), DX.buffer.data(), rows, cols);
    out[k].push_back(DX.read());
    // Tanh's derivative from its output; the others' (Note [fused activations]) from the input.
    for (const Activation act : {Activation::kTanh, Activation::kElu, Activation::kSelu,
                                 Activation::kSoftplus, Activation::kSoftsign, Activation::kGelu,
                                 Activation::kSilu, Activation::kRelu6, Activation::kHardSigmoid,
                                 Activation::kHardSilu, Activation::kMish, Activation::kGeluTanh}) {
      be.activation_forward(act, Z.buffer.data(), P.buffer.data(), rows * cols);
      out[k].push_back(P.read());
      be.activation_backward(act, Z.buffer.data(), P.buffer.data(), Z.buffer.data(),
                             DX.buffer.data(), rows * cols);
      out[k].push_back(DX.read());
    }
    be.scale_shift(Z.buffer.data(), P.buffer.data(), rows * cols, 0.5f, -0.25f);  // Rescaling
    out[k].push_back(P.read());
    be.moving_average(Z.buffer.data(), P.buffer.data(), rows * cols,
                      0.9f);  // Note [weight average]
    out[k].push_back(P.read());
    be.leaky_scale(Z.buffer.data(), Z.buffer.data(), P.buffer.data(), rows * cols, 0.3f);
    out[k].push_back(P.read());
    be.leaky_scale(P.buffer.data(), Z.buffer.data(), DX.buffer.data(), rows * cols, 0.3f);
    out[k].push_back(DX.read());
    // Layer normalization of the logits' rows: output, statistics, dx and the parameter gradients.
    Mirror GAMMA(be, random_values(cols, 11, 0.5f, 2)), BETA(be, random_values(cols, 12, -1, 1)),
        STATS(be, std::vector<float>(2 * rows)), DG(be, std::vector<float>(cols)),
        DB(be, std::vector<float>(cols));
    be.layer_norm_forward(Z.buffer.data(), GAMMA.buffer.data(), BETA.buffer.data(), P.buffer.data(),
                          STATS.buffer.data(), rows, cols, 1e-3f, true);
    be.layer_norm_backward(P.buffer.data(), Z.buffer.data(), GAMMA.buffer.data(),  // dy: y
                           STATS.buffer.data(), DX.buffer.data(), DG.buffer.data(),
                           DB.buffer.data(), rows, cols, false, true);
    for (Mirror* m : {&P, &STATS, &DX, &DG, &DB}) out[k].push_back(m->read());
    // And RMS normalization: not centered, no beta.
    be.layer_norm_forward(Z.buffer.data(), GAMMA.buffer.data(), nullptr, P.buffer.data(),
                          STATS.buffer.data(), rows, cols, 1e-6f, false);
    be.layer_norm_backward(P.buffer.data(), Z.buffer.data(), GAMMA.buffer.data(),
                           STATS.buffer.data(), DX.buffer.data(), DG.buffer.data(), nullptr, rows,
                           cols, false, false);
    for (Mirror* m : {&P, &STATS, &DX, &DG}) out[k].push_back(m->read());
    // Embedding: rows gathered by id (repeated ids among them), the table's gradient added to.
    std::vector<float> ids(64);
    for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<float>((i * 5) % 13);
    Mirror IDS(be, ids), TABLE(be, random_values(13 * 6, 13, -1, 1)),
        EMB(be, std::vector<float>(64 * 6)), EDY(be, random_values(64 * 6, 14, -1, 1)),
        DTABLE(be, random_values(13 * 6, 15, -1, 1));
    be.embedding_forward(IDS.buffer.data(), TABLE.buffer.data(), EMB.buffer.data(), 64, 6);
    be.embedding_backward(IDS.buffer.data(), EDY.buffer.data(), DTABLE.buffer.data(), 64, 13, 6,
                          true);
    for (Mirror* m : {&EMB, &DTABLE}) out[k].push_back(m->read());

    const auto params = random_values(1000, 8), grads = random_values(1000, 9);
    Mirror PA(be, params), GA(be, grads), M(be, std::vector<float>(1000)),
        V(be, std::vector<float>(1000)), VEL(be, std::vector<float>(1000));
    for (int64_t step = 1; step <= 3; ++step)
      be.adam_update(PA.buffer.data(), GA.buffer.data(), M.buffer.data(), V.buffer.data(), 1000,
                     1e-2f, 1, step, AdamHyper{0.9f, 0.999f, 1e-8f, 0.01f}, GradCheck::kNone);
    EXPECT_TRUE(be.sgd_update(PA.buffer.data(), GA.buffer.data(), VEL.buffer.data(), 1000, 0.1f, 1,
                              SgdHyper{0.9f, 1e-3f, true}, GradCheck::kFinite));
    // AdamW's decay, and Note [gradient clipping]'s norm and scale.
    be.adam_update(PA.buffer.data(), GA.buffer.data(), M.buffer.data(), V.buffer.data(), 1000,
                   1e-2f, 0.375f, 4, AdamHyper{0.9f, 0.999f, 1e-8f, 0.1f, true}, GradCheck::kNone);
    EXPECT_TRUE(be.sgd_update(PA.buffer.data(), GA.buffer.data(), VEL.buffer.data(), 1000, 0.1f,
                              0.375f, SgdHyper{0.9f, 1e-3f, false}, GradCheck::kFinite));
    // SGD and RMSprop by Keras' rules too; RMSprop with all three state buffers.
    EXPECT_TRUE(be.sgd_update(
        PA.buffer.data(), GA.buffer.data(), VEL.buffer.data(), 1000, 0.05f, 1,
        SgdHyper{.momentum = 0.9f, .weight_decay = 1e-3f, .nesterov = true, .keras_rule = true},
        GradCheck::kFinite));
    Mirror SQ(be, std::vector<float>(1000)), BUF(be, std::vector<float>(1000)),
        GAV(be, std::vector<float>(1000));
    for (const bool keras_rule : {false, true})
      for (int step = 0; step < 2; ++step)
        EXPECT_TRUE(be.rmsprop_update(PA.buffer.data(), GA.buffer.data(),
                                      {SQ.buffer.data(), BUF.buffer.data(), GAV.buffer.data()},
                                      1000, 1e-3f, 0.5f,
                                      RmspropHyper{.momentum = 0.9f,
                                                   .centered = true,
                                                   .weight_decay = 0.01f,
                                                   .keras_rule = keras_rule},
                                      GradCheck::kFinite));
    for (Mirror* state : {&SQ, &BUF, &GAV}) out[k].push_back(state->read());
    // The adaptive optimizers, each kind and rule, through their optimizer objects.
    using Kind = AdaptiveHyper::Kind;
    for (const Kind kind : {Kind::kAdagrad, Kind::kAdamax, Kind::kNadam, Kind::kLion})
      for (const bool keras_rule : {false, true}) {
        AdaptiveOptimizer optimizer(be, 1000,
                                    {.kind = kind,
                                     .initial_accumulator = 0.1f,
                                     .weight_decay = 0.01f,
                                     .keras_rule = keras_rule});
        for (int step = 0; step < 2; ++step)
          EXPECT_TRUE(optimizer.step({PA.buffer.data(), 1000}, {GA.buffer.data(), 1000}, 1e-3f,
                                     GradCheck::kFinite));
        for (const StateTensor& t : optimizer.state()) {
          std::vector<float> host(t.data.size());
          be.copy_to_host(t.data.data(), host.data(), host.size());
          out[k].push_back(host);
        }
      }
    out[k].push_back(PA.read());
    squares[k] = be.squared_norm(GA.buffer.data(), 1000);
    EXPECT_TRUE(be.all_finite(PA.buffer.data(), 1000));
    std::vector<float> bad = params;
    bad[500] = std::nanf("");
    Mirror BAD(be, bad);
    EXPECT_FALSE(be.all_finite(BAD.buffer.data(), 1000));
    // The update checks what it reads: at once, or (kFiniteLater) at the next take_nonfinite().
    EXPECT_FALSE(be.sgd_update(PA.buffer.data(), BAD.buffer.data(), VEL.buffer.data(), 1000, 0.1f,
                               1, SgdHyper{0.9f, 0, false}, GradCheck::kFinite));
    EXPECT_TRUE(be.adam_update(PA.buffer.data(), GA.buffer.data(), M.buffer.data(), V.buffer.data(),
                               1000, 1e-2f, 1, 4, AdamHyper{}, GradCheck::kFiniteLater));
    EXPECT_FALSE(be.take_nonfinite()) << "finite gradients";
    EXPECT_TRUE(be.adam_update(PA.buffer.data(), BAD.buffer.data(), M.buffer.data(),
                               V.buffer.data(), 1000, 1e-2f, 1, 5, AdamHyper{},
                               GradCheck::kFiniteLater));
    EXPECT_TRUE(be.take_nonfinite());
    EXPECT_FALSE(be.take_nonfinite()) << "taken already";
  }
  for (size_t i = 0; i < out[0].size(); ++i) expect_close(out[0][i], out[1][i], "op output");
  EXPECT_NEAR(squares[0], squares[1], 1e-9 * squares[0]);
  EXPECT_GT(squares[0], 0);
  for (int l = 0; l < 4; ++l) {
    EXPECT_NEAR(stats[0][l].loss_sum, stats[1][l].loss_sum, 1e-4 * std::abs(stats[0][l].loss_sum));
    EXPECT_EQ(stats[0][l].correct, stats[1][l].correct);
  }
  for (int k = 0; k < 2; ++k) {
    EXPECT_NEAR(deferred[k].loss_sum, 2 * stats[k][0].loss_sum, 1e-9 * stats[k][0].loss_sum) << k;
    EXPECT_EQ(deferred[k].correct, 2 * stats[k][0].correct) << k;
  }
}

TEST(CudaTraining, OneStepMatchesTheCpu) {
  YAML::Node root = YAML::Load(R"(
seed: 3
data:
  train: {type: synthetic, samples: 256, features: 20, classes: 5}
model:
  layers:
    - {type: dense, units: 64, activation: relu}
    - {type: dense, units: 5, activation: softmax}
loss: sparse_categorical_crossentropy
optimizer: {type: adam, learning_rate: 0.01}
training: {epochs: 1, global_batch_size: 32, flush_denormals: false}
)");
  std::vector<float> params[2];
  auto comm = make_local_communicator();
  for (int k = 0; k < 2; ++k) {
    root["training"]["device"] = k == 0 ? "cpu" : "cuda";
    const Config config = parse_config(root, "gpu.yaml");
    auto backend = choose_device(config.training.device, false, config.training.matmul, 0, 1);
    Trainer trainer(config, *comm, *backend, load_dataset(config.train_data, 0), std::nullopt);
    trainer.train_steps(3);
    params[k] = trainer.params_to_host();
  }
  expect_close(params[0], params[1], "parameters after 3 steps", 1e-4f);
}

// Both backends must put the same bytes on the wire: rounding ties, NaN, infinities, denormals.
TEST(CudaVsCpuOps, Bf16ConversionsAreBitIdentical) {
  auto cpu = make_cpu_backend(false);
  auto cuda = gpu();
  std::vector<float> values = random_values(4096, 11, -1e3f, 1e3f);
  values.insert(values.end(),
                {0.0f, -0.0f, 1.0f + 0x1p-8f, 1.0f + 0x1p-7f + 0x1p-8f, 1e-40f,
                 std::numeric_limits<float>::infinity(), std::numeric_limits<float>::quiet_NaN()});
  if (values.size() % 2) values.push_back(3.0f);  // whole floats of bf16 pairs in the buffers
  std::vector<uint16_t> expected(values.size());
  cpu->to_bf16(values.data(), expected.data(), values.size());
  Mirror source(*cuda, values), wire(*cuda, std::vector<float>(values.size() / 2));
  auto* wire_bits = reinterpret_cast<uint16_t*>(wire.buffer.data());
  cuda->to_bf16(source.buffer.data(), wire_bits, values.size());
  const std::vector<float> wire_host = wire.read();
  std::vector<uint16_t> actual(values.size());
  std::memcpy(actual.data(), wire_host.data(), actual.size() * sizeof(uint16_t));
  ASSERT_EQ(expected, actual);

  std::vector<float> widened_cpu(values.size());
  cpu->from_bf16(expected.data(), widened_cpu.data(), values.size());
  cuda->from_bf16(wire_bits, source.buffer.data(), values.size());
  const std::vector<float> widened_gpu = source.read();
  ASSERT_EQ(0, std::memcmp(widened_cpu.data(), widened_gpu.data(), values.size() * sizeof(float)));
}

// Note [pinned staging]: the caller's buffer is reusable as soon as copy_to_device returns, even
// while earlier copies through the same slots are still in flight.
TEST(CudaStaging, BackToBackCopiesKeepTheirOwnData) {
  auto cuda = gpu();
  std::vector<float> host(1000);
  std::vector<DeviceBuffer> targets;
  for (int i = 0; i < 7; ++i) {
    std::fill(host.begin(), host.end(), static_cast<float>(i));
    targets.emplace_back(*cuda, host.size());
    cuda->copy_to_device(host.data(), targets.back().data(), host.size());
  }
  for (int i = 0; i < 7; ++i) {
    std::vector<float> back(host.size());
    cuda->copy_to_host(targets[i].data(), back.data(), back.size());
    ASSERT_EQ(back, std::vector<float>(host.size(), static_cast<float>(i))) << "copy " << i;
  }
}

// fill_zero (a rank without samples zeroes its gradients): only its range, after what the stream
// ran before it.
TEST(CudaStaging, FillZeroClearsItsRangeInStreamOrder) {
  auto cuda = gpu();
  const std::vector<float> host = random_values(1000, 7);
  DeviceBuffer buffer(*cuda, host.size());
  cuda->copy_to_device(host.data(), buffer.data(), host.size());
  cuda->fill_zero(buffer.data() + 100, 700);
  std::vector<float> back(host.size());
  cuda->copy_to_host(buffer.data(), back.data(), back.size());
  for (size_t i = 0; i < host.size(); ++i)
    ASSERT_EQ(back[i], i >= 100 && i < 800 ? 0.0f : host[i]) << "element " << i;
}

// A world of one sums nothing, so what can fail here is where results land and in which order
// the streams run them (Note [NCCL streams]): every input below has negative values, and the
// collectives write into other buffers or read what a preceding kernel produced.
TEST(CudaNccl, OneRankCollectivesLandInTheirBuffersInStreamOrder) {
  auto cuda = gpu();
  auto host = make_local_communicator();
  auto nccl = make_device_communicator(*host, *cuda, nullptr, /*even_for_one_rank=*/true);
  ASSERT_NE(nccl, nullptr);
  EXPECT_EQ(nccl->name(), "nccl");
  EXPECT_EQ(nccl->memory(), MemoryKind::kDevice);

  // A few milliseconds of GEMM keep the compute stream busy, then ReLU rewrites `data` in place.
  // The reduce-scatter on the communication stream must wait for both: a collective that ran
  // early would copy the negative values into the shard.
  const int64_t n = 4096;
  Mirror x(*cuda, random_values(static_cast<size_t>(n * n), 1)),
      w(*cuda, random_values(static_cast<size_t>(n * n), 2)), bias(*cuda, std::vector<float>(n)),
      y(*cuda, std::vector<float>(n * n));
  Mirror data(*cuda, {-1, 2, -3, 4.5f}), shard(*cuda, {7, 7, 7, 7});
  for (int i = 0; i < 4; ++i)
    cuda->dense_forward(x.buffer.data(), w.buffer.data(), bias.buffer.data(), y.buffer.data(), n, n,
                        n, Activation::kLinear);
  cuda->activation_forward(Activation::kRelu, data.buffer.data(), data.buffer.data(), 4);
  const int counts[] = {4};
  nccl->reduce_scatter_sum(data.buffer.span(), shard.buffer.span(), counts);
  EXPECT_EQ(shard.read(), (std::vector<float>{0, 2, 0, 4.5f}));

  // The asynchronous all-reduce: the compute stream's ReLU after wait() sees its result; the
  // values before it are the identity of one rank.
  Mirror signs(*cuda, {-5, 6, -7, 8});
  auto work = nccl->all_reduce_sum_async(signs.buffer.span());
  work->wait();
  cuda->activation_forward(Activation::kRelu, signs.buffer.data(), signs.buffer.data(), 4);
  EXPECT_EQ(signs.read(), (std::vector<float>{0, 6, 0, 8}));
  EXPECT_TRUE(work->test());

  // ZeRO-1's gather with one slice leaves the data intact.
  nccl->all_gather(shard.buffer.span(), counts);
  EXPECT_EQ(shard.read(), (std::vector<float>{0, 2, 0, 4.5f}));
  // bf16 on the wire: a world of one returns the same bits, sign included.
  Mirror bf16_pair(*cuda, {0.0f});
  const uint16_t bits[2] = {0x3f80, 0xc000};  // 1.0, -2.0
  cuda->copy_to_device(reinterpret_cast<const float*>(bits), bf16_pair.buffer.data(), 1);
  nccl->all_reduce_sum_bf16({reinterpret_cast<uint16_t*>(bf16_pair.buffer.data()), 2});
  const float back = bf16_pair.read()[0];
  EXPECT_EQ(0, std::memcmp(&back, bits, sizeof back));
  std::vector<double> metrics = {4, -5};  // host memory goes through the host communicator
  nccl->all_reduce_sum(std::span<double>(metrics));
  EXPECT_EQ(metrics, (std::vector<double>{4, -5}));
}

}  // namespace
}  // namespace ddp

int main(int argc, char** argv) {
  if (!std::filesystem::exists("/dev/nvidiactl")) {
    std::printf(
        "SKIPPED: no CUDA device on this machine (no /dev/nvidiactl); the GPU tests did "
        "not run\n");
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
