// The CUDA window ops, dropout, batch normalization, the transposed convolution, bilinear
// upsampling and zero padding against the CPU backend's (the specification): im2col, max pooling
// and zero padding exactly, sums (average pooling with and without a padding mask among them)
// within float rounding, dropout's mask (element by element, and by channel) bit for bit (Note
// [dropout mask]).

#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "gpu_test_support.h"
#include "nn/bilinear_upsampling2d.h"
#include "nn/conv2d_transpose.h"
#include "nn/zero_padding2d.h"

namespace ddp {
namespace {

// (kernel, stride, same padding)
class CudaWindowOps : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, bool>> {};

TEST_P(CudaWindowOps, MatchTheCpu) {
  const auto [kernel, stride, same] = GetParam();
  auto cpu = make_cpu_backend(false);
  auto cuda = gpu();
  const int64_t batch = 3;
  const Window2d w = Window2d::make(7, 6, 3, kernel, kernel, stride, stride, same);
  const size_t image = static_cast<size_t>(batch * 7 * 6 * 3);
  const size_t cols = static_cast<size_t>(batch * w.out_pixels() * w.patch());
  const size_t pooled = static_cast<size_t>(batch * w.out_pixels() * 3);
  const auto x = random_values(image, 1), dcols = random_values(cols, 2),
             dy = random_values(pooled, 3);
  // Note [padding masks]: a third of the first two samples' pixels masked out, all the last's.
  std::vector<float> mask(static_cast<size_t>(batch * 7 * 6));
  for (size_t i = 0; i < mask.size(); ++i) mask[i] = i < 84 && i % 3 != 0 ? 1.0f : 0.0f;
  std::vector<std::vector<float>> results[2];
  ComputeBackend* backends[2] = {cpu.get(), cuda.get()};
  for (int k = 0; k < 2; ++k) {
    ComputeBackend& be = *backends[k];
    Mirror X(be, x), COLS(be, std::vector<float>(cols)), DCOLS(be, dcols),
        DX(be, std::vector<float>(image)), MAX(be, std::vector<float>(pooled)),
        AVG(be, std::vector<float>(pooled)), DY(be, dy), DMAX(be, std::vector<float>(image)),
        DAVG(be, std::vector<float>(image)), DROP(be, std::vector<float>(image)), MASK(be, mask),
        MASKED(be, std::vector<float>(pooled)), DMASKED(be, std::vector<float>(image)),
        SPATIAL(be, std::vector<float>(image)), SUM(be, std::vector<float>(pooled)),
        DSUM(be, std::vector<float>(image));
    be.im2col(X.buffer.data(), COLS.buffer.data(), batch, w);
    be.col2im(DCOLS.buffer.data(), DX.buffer.data(), batch, w);
    be.max_pool_forward(X.buffer.data(), MAX.buffer.data(), batch, w);
    be.max_pool_backward(X.buffer.data(), MAX.buffer.data(), DY.buffer.data(), DMAX.buffer.data(),
                         batch, w);
    be.avg_pool_forward(X.buffer.data(), nullptr, AVG.buffer.data(), batch, w, true);
    be.avg_pool_backward(nullptr, DY.buffer.data(), DAVG.buffer.data(), batch, w, true);
    be.avg_pool_forward(X.buffer.data(), MASK.buffer.data(), MASKED.buffer.data(), batch, w, true);
    be.avg_pool_backward(MASK.buffer.data(), DY.buffer.data(), DMASKED.buffer.data(), batch, w,
                         true);
    be.avg_pool_forward(X.buffer.data(), nullptr, SUM.buffer.data(), batch, w, false);
    be.avg_pool_backward(nullptr, DY.buffer.data(), DSUM.buffer.data(), batch, w, false);
    be.dropout(X.buffer.data(), DROP.buffer.data(), batch, 7 * 6 * 3, 1, 0.4f, 99, 1234);
    be.dropout(X.buffer.data(), SPATIAL.buffer.data(), batch, 7 * 6 * 3, 7 * 6, 0.4f, 99, 1234);
    results[k] = {COLS.read(),    DX.read(),      MAX.read(),  DMAX.read(),
                  AVG.read(),     DAVG.read(),    DROP.read(), MASKED.read(),
                  DMASKED.read(), SPATIAL.read(), SUM.read(),  DSUM.read()};
  }
  EXPECT_EQ(results[0][0], results[1][0]) << "im2col copies: it must match exactly";
  expect_close(results[0][1], results[1][1], "col2im");
  EXPECT_EQ(results[0][2], results[1][2]) << "max pooling picks values: exactly";
  expect_close(results[0][3], results[1][3], "max pooling backward");
  expect_close(results[0][4], results[1][4], "average pooling");
  expect_close(results[0][5], results[1][5], "average pooling backward");
  EXPECT_EQ(results[0][6], results[1][6]) << "dropout: the same mask and scale";
  expect_close(results[0][7], results[1][7], "masked average pooling");
  expect_close(results[0][8], results[1][8], "masked average pooling backward");
  EXPECT_EQ(results[0][9], results[1][9]) << "spatial dropout: the same mask and scale";
  expect_close(results[0][10], results[1][10], "sum pooling (UpSampling2D's backward)");
  expect_close(results[0][11], results[1][11], "sum pooling's backward (UpSampling2D's forward)");
}

INSTANTIATE_TEST_SUITE_P(Windows, CudaWindowOps,
                         ::testing::Values(std::tuple{3, 1, true}, std::tuple{3, 2, true},
                                           std::tuple{2, 2, false}, std::tuple{3, 1, false}));

// Note [dilated convolution]: im2col and col2im of dilated windows (same padding, and Keras'
// causal padding of a row).
TEST(CudaDilatedWindows, MatchTheCpu) {
  auto cpu = make_cpu_backend(false);
  auto cuda = gpu();
  const int64_t batch = 2;
  for (const Window2d& w :
       {Window2d::make(9, 8, 3, 3, 2, 1, 1, true, 2, 3), Window2d::causal(11, 4, 3, 1, 2)}) {
    const size_t image = static_cast<size_t>(batch * w.height * w.width * w.channels);
    const size_t cols = static_cast<size_t>(batch * w.out_pixels() * w.patch());
    const auto x = random_values(image, 4), dcols = random_values(cols, 5);
    std::vector<std::vector<float>> results[2];
    ComputeBackend* backends[2] = {cpu.get(), cuda.get()};
    for (int k = 0; k < 2; ++k) {
      ComputeBackend& be = *backends[k];
      Mirror X(be, x), COLS(be, std::vector<float>(cols)), DCOLS(be, dcols),
          DX(be, std::vector<float>(image));
      be.im2col(X.buffer.data(), COLS.buffer.data(), batch, w);
      be.col2im(DCOLS.buffer.data(), DX.buffer.data(), batch, w);
      results[k] = {COLS.read(), DX.read()};
    }
    EXPECT_EQ(results[0][0], results[1][0]) << "dilated im2col copies: it must match exactly";
    expect_close(results[0][1], results[1][1], "dilated col2im");
  }
}

// Rows of 70 channels: more than one block of channels, and rows in every block of rows.
TEST(CudaBatchNormOps, MatchTheCpu) {
  auto cpu = make_cpu_backend(false);
  auto cuda = gpu();
  const int64_t rows = 1000, channels = 70;
  const size_t n = static_cast<size_t>(rows * channels);
  const auto x = random_values(n, 4), dy = random_values(n, 5);
  const auto shift = random_values(static_cast<size_t>(channels), 6);
  const auto coeffs = random_values(static_cast<size_t>(3 * channels), 7);
  std::vector<double> sums[2];
  std::vector<std::vector<float>> results[2];
  ComputeBackend* backends[2] = {cpu.get(), cuda.get()};
  for (int k = 0; k < 2; ++k) {
    ComputeBackend& be = *backends[k];
    Mirror X(be, x), DY(be, dy), SHIFT(be, shift), COEFFS(be, coeffs), Y(be, std::vector<float>(n)),
        DX(be, std::vector<float>(n));
    sums[k].assign(static_cast<size_t>(2 * channels), 0.0);
    be.channel_sums(DY.buffer.data(), X.buffer.data(), SHIFT.buffer.data(), sums[k].data(), rows,
                    channels);
    be.batch_norm_forward(X.buffer.data(), Y.buffer.data(), COEFFS.buffer.data(), rows, channels);
    be.batch_norm_backward(DY.buffer.data(), X.buffer.data(), DX.buffer.data(),
                           COEFFS.buffer.data(), rows, channels);
    results[k] = {Y.read(), DX.read()};
  }
  for (size_t i = 0; i < sums[0].size(); ++i)
    EXPECT_NEAR(sums[0][i], sums[1][i], 1e-9 * (1 + std::abs(sums[0][i]))) << "channel_sums " << i;
  expect_close(results[0][0], results[1][0], "batch norm forward");
  expect_close(results[0][1], results[1][1], "batch norm backward");
}

// Note [transposed convolution]: bias_activation's pair for each fused activation, and a whole
// Conv2DTranspose layer (its products through batched_matmul and dense_forward, its windows
// through col2im and im2col) forward and backward.
TEST(CudaTransposedConvolution, MatchesTheCpu) {
  auto cpu = make_cpu_backend(false);
  auto cuda = gpu();
  const int64_t batch = 3, channels = 5, filters = 4;
  const Window2d view = Window2d::make(14, 12, filters, 3, 3, 2, 2, true);  // 7x6 up by 2
  const auto x = random_values(static_cast<size_t>(batch * 7 * 6 * channels), 8);
  const auto weight = random_values(static_cast<size_t>(channels * view.patch()), 9);
  const auto bias = random_values(static_cast<size_t>(filters), 10);
  const size_t out = static_cast<size_t>(batch * 14 * 12 * filters);
  const auto dy = random_values(out, 11);
  std::vector<std::vector<float>> results[2];
  ComputeBackend* backends[2] = {cpu.get(), cuda.get()};
  for (int k = 0; k < 2; ++k) {
    ComputeBackend& be = *backends[k];
    for (const Activation act :
         {Activation::kLinear, Activation::kRelu, Activation::kTanh, Activation::kSigmoid}) {
      // y from dy's values reversed, dy turned into the pre-activation gradient in place, db added
      // to where tanh's.
      Mirror Y(be, std::vector<float>(dy.rbegin(), dy.rend())), DZ(be, dy),
          DB(be, std::vector<float>(filters, 1.0f)), B(be, bias);
      be.bias_activation_forward(Y.buffer.data(), B.buffer.data(), batch * 14 * 12, filters, act);
      be.bias_activation_backward(Y.buffer.data(), DZ.buffer.data(), DB.buffer.data(),
                                  batch * 14 * 12, filters, act, act == Activation::kTanh);
      results[k].insert(results[k].end(), {Y.read(), DZ.read(), DB.read()});
    }
    Conv2DTranspose layer(view, channels, Activation::kRelu, true, false);
    Mirror X(be, x), W(be, weight), B(be, bias), DW(be, weight), DB(be, bias),
        Y(be, std::vector<float>(out)), DY(be, dy), DX(be, x);
    float* params[] = {W.buffer.data(), B.buffer.data()};
    float* grads[] = {DW.buffer.data(), DB.buffer.data()};
    layer.bind(params, grads);
    layer.forward(be, X.buffer.data(), Y.buffer.data(), batch);
    layer.backward(be, X.buffer.data(), Y.buffer.data(), DY.buffer.data(), DX.buffer.data(), batch,
                   false);
    results[k].insert(results[k].end(), {Y.read(), DX.read(), DW.read(), DB.read()});
  }
  const char* what[] = {"bias_activation_forward", "its dy", "its db"};
  for (size_t i = 0; i < 12; ++i) expect_close(results[0][i], results[1][i], what[i % 3]);
  const char* layer[] = {"Conv2DTranspose forward", "its dx", "its dw", "its db"};
  for (size_t i = 12; i < 16; ++i) expect_close(results[0][i], results[1][i], layer[i - 12]);
}

// Note [bilinear upsampling]: its batched products with a shared interpolation matrix (an item
// stride of 0), forward and backward.
TEST(CudaBilinearUpSampling, MatchesTheCpu) {
  auto cpu = make_cpu_backend(false);
  auto cuda = gpu();
  const int64_t batch = 3;
  const auto x = random_values(static_cast<size_t>(batch * 5 * 4 * 6), 12);
  const auto dy = random_values(static_cast<size_t>(batch * 15 * 8 * 6), 13);
  std::vector<std::vector<float>> results[2];
  ComputeBackend* backends[2] = {cpu.get(), cuda.get()};
  for (int k = 0; k < 2; ++k) {
    ComputeBackend& be = *backends[k];
    BilinearUpSampling2D layer(Shape{5, 4, 6}, 3, 2);
    Mirror X(be, x), Y(be, dy), DY(be, dy), DX(be, x);
    layer.forward(be, X.buffer.data(), Y.buffer.data(), batch);
    layer.backward(be, X.buffer.data(), Y.buffer.data(), DY.buffer.data(), DX.buffer.data(), batch,
                   false);
    results[k] = {Y.read(), DX.read()};
  }
  expect_close(results[0][0], results[1][0], "bilinear upsampling");
  expect_close(results[0][1], results[1][1], "its backward");
}

// Note [zero padding]: a pooling of sums over 1x1 windows with uneven padding, each side's, and
// its backward; and ZeroPadding1D's row.
TEST(CudaZeroPadding, MatchesTheCpu) {
  auto cpu = make_cpu_backend(false);
  auto cuda = gpu();
  const int64_t batch = 3;
  for (const bool one_row : {false, true}) {
    Window2d padded = Window2d::make(one_row ? 1 : 5, 4, 6, 1, 1, 1, 1, false);
    padded.pad_top = one_row ? 0 : 1;
    padded.pad_left = 3;
    padded.out_h += one_row ? 0 : 3;  // 1 above, 2 below
    padded.out_w += 3;                // 3 left, none right
    const auto x = random_values(static_cast<size_t>(batch * padded.height * 4 * 6), 14);
    const auto dy = random_values(static_cast<size_t>(batch * padded.out_pixels() * 6), 15);
    std::vector<std::vector<float>> results[2];
    ComputeBackend* backends[2] = {cpu.get(), cuda.get()};
    for (int k = 0; k < 2; ++k) {
      ComputeBackend& be = *backends[k];
      ZeroPadding2D layer(padded, one_row);
      Mirror X(be, x), Y(be, dy), DY(be, dy), DX(be, x);
      layer.forward(be, X.buffer.data(), Y.buffer.data(), batch);
      layer.backward(be, X.buffer.data(), Y.buffer.data(), DY.buffer.data(), DX.buffer.data(),
                     batch, false);
      results[k] = {Y.read(), DX.read()};
    }
    EXPECT_EQ(results[0][0], results[1][0]) << "zero padding, one row: " << one_row;
    EXPECT_EQ(results[0][1], results[1][1]) << "its backward, one row: " << one_row;
  }
}

}  // namespace
}  // namespace ddp
