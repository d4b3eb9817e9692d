// Conv2D, pooling and dropout: forward against direct double-precision references, backward
// against central finite differences (invariant 4), and the dropout mask's invariants.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "core/counter_hash.h"
#include "finite_differences.h"
#include "nn/conv2d.h"
#include "nn/dropout.h"
#include "nn/pooling2d.h"

namespace ddp {
namespace {

// A Conv2D layer bound to parameters drawn from `seed` and zeroed gradients; without a bias
// parameter (Note [no bias]) `bias` is zeros that the layer is not given.
struct BoundConv {
  BoundConv(const Window2d& w, int64_t filters, Activation act, uint64_t seed, bool use_bias = true)
      : layer(w, filters, act, use_bias),
        weight(random_vector(static_cast<size_t>(filters * w.patch()), seed)),
        bias(use_bias ? random_vector(static_cast<size_t>(filters), seed + 1)
                      : std::vector<float>(static_cast<size_t>(filters))),
        dw(weight.size()),
        db(bias.size()) {
    bind_weight_and_bias(layer, weight, bias, dw, db, use_bias);
  }
  Conv2D layer;
  std::vector<float> weight, bias, dw, db;
};

// x (batch, height, width, channels) at (b, h, w, c), or 0 in the padding.
float pixel(const std::vector<float>& x, const Window2d& w, int64_t b, int64_t h, int64_t v,
            int64_t c) {
  if (h < 0 || h >= w.height || v < 0 || v >= w.width) return 0;
  return x[static_cast<size_t>(((b * w.height + h) * w.width + v) * w.channels + c)];
}

// Convolution by definition, in double, weights (filters, kh, kw, channels), no activation.
std::vector<double> direct_conv(const std::vector<float>& x, const std::vector<float>& weight,
                                const std::vector<float>& bias, const Window2d& w, int64_t batch,
                                int64_t filters) {
  std::vector<double> y;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t oh = 0; oh < w.out_h; ++oh)
      for (int64_t ow = 0; ow < w.out_w; ++ow)
        for (int64_t f = 0; f < filters; ++f) {
          double sum = bias[static_cast<size_t>(f)];
          for (int64_t ki = 0; ki < w.kernel_h; ++ki)
            for (int64_t kj = 0; kj < w.kernel_w; ++kj)
              for (int64_t c = 0; c < w.channels; ++c)
                sum += static_cast<double>(weight[static_cast<size_t>(
                           ((f * w.kernel_h + ki) * w.kernel_w + kj) * w.channels + c)]) *
                       pixel(x, w, b, oh * w.stride_h - w.pad_top + ki,
                             ow * w.stride_w - w.pad_left + kj, c);
          y.push_back(sum);
        }
  return y;
}

// (kernel_h, kernel_w, stride, same padding, channels): 8 channels take a backend's own
// convolution where it has one (Note [oneDNN convolutions]), 2 im2col + GEMM.
using WindowCase = std::tuple<int64_t, int64_t, int64_t, bool, int64_t>;

class Conv2DTest : public ::testing::TestWithParam<WindowCase> {
 protected:
  Window2d window() const {
    const auto [kh, kw, stride, same, channels] = GetParam();
    return Window2d::make(5, 6, channels, kh, kw, stride, stride, same);
  }
};

// 37 filters: several vectors of filters and a partial one in the direct kernels (Note [direct
// convolution]), which take the inputs of up to 4 channels. With and without a bias.
TEST_P(Conv2DTest, ForwardIsTheConvolutionByDefinition) {
  auto backend = make_cpu_backend();
  const Window2d w = window();
  const int64_t batch = 2;
  for (const int64_t filters : {3, 37})
    for (const Activation act : {Activation::kLinear, Activation::kRelu})
      for (const bool use_bias : {true, false}) {
        BoundConv conv(w, filters, act, 1, use_bias);
        const std::vector<float> x = random_vector(batch * 5 * 6 * w.channels, 3);
        std::vector<float> y(static_cast<size_t>(batch * conv.layer.output_shape().numel()));
        conv.layer.forward(*backend, x.data(), y.data(), batch);
        const std::vector<double> expected =
            direct_conv(x, conv.weight, conv.bias, w, batch, filters);
        ASSERT_EQ(y.size(), expected.size());
        for (size_t i = 0; i < y.size(); ++i) {
          const double z = act == Activation::kRelu ? std::max(expected[i], 0.0) : expected[i];
          EXPECT_NEAR(y[i], z, 1e-5)
              << "y[" << i << "], " << filters << " filters, use_bias " << use_bias;
        }
      }
}

// With the input gradient (3 filters), and as a first layer without one (37 filters: whole and
// partial vectors of filters), where few channels take the direct weight gradient; with and
// without a bias.
TEST_P(Conv2DTest, GradientsMatchFiniteDifferences) {
  auto backend = make_cpu_backend();
  const Window2d w = window();
  const int64_t batch = 2;
  for (const bool first_layer : {false, true})
    for (const bool use_bias : {true, false}) {
      BoundConv conv(w, first_layer ? 37 : 3, Activation::kTanh, 4, use_bias);
      std::vector<float> x = random_vector(batch * 5 * 6 * w.channels, 6);
      std::vector<float> y(static_cast<size_t>(batch * conv.layer.output_shape().numel()));
      const std::vector<float> r = random_vector(y.size(), 7);
      auto objective = [&] {
        conv.layer.forward(*backend, x.data(), y.data(), batch);
        return weighted_sum(y, r);
      };
      objective();
      std::vector<float> dy = r, dx(x.size());
      conv.layer.backward(*backend, x.data(), y.data(), dy.data(),
                          first_layer ? nullptr : dx.data(), batch, false);
      if (!first_layer) expect_matches_finite_differences(objective, x, dx, "dx");
      expect_matches_finite_differences(objective, conv.weight, conv.dw, "dw");
      if (use_bias) expect_matches_finite_differences(objective, conv.bias, conv.db, "db");
    }
}

INSTANTIATE_TEST_SUITE_P(
    Windows, Conv2DTest,
    ::testing::Values(WindowCase{3, 3, 1, false, 2}, WindowCase{3, 3, 1, true, 2},
                      WindowCase{3, 3, 2, true, 2}, WindowCase{2, 3, 2, false, 2},
                      WindowCase{4, 4, 3, true, 2}, WindowCase{3, 3, 1, true, 8},
                      WindowCase{3, 3, 2, true, 8}, WindowCase{2, 3, 2, false, 8},
                      WindowCase{4, 4, 3, true, 8}));

// Every path: 1 channel (the direct kernels), 5 (im2col + GEMM, whose 96 x 96 x 5 inputs take
// 3x3 windows of 45 floats at 9216 pixels: 10 samples per chunk) and 8 (oneDNN where built with
// it; its weight gradient in chunks of kWeightGradChunk samples).
TEST(Conv2DChunks, ABatchOfSeveralChunksEqualsItsChunksRunAlone) {
  auto backend = make_cpu_backend();
  for (const int64_t channels : {1, 5, 8}) {
    const Window2d w = Window2d::make(96, 96, channels, 3, 3, 1, 1, true);
    const int64_t batch = 14;
    BoundConv conv(w, 4, Activation::kLinear, 8);
    Conv2D& layer = conv.layer;
    std::vector<float>& dw = conv.dw;
    if (channels == 5) {
      ASSERT_LT(Conv2D::kChunkFloats / (w.out_pixels() * w.patch()), batch);
    }
    const int64_t in = 96 * 96 * channels, out = layer.output_shape().numel();
    const std::vector<float> x = random_vector(static_cast<size_t>(batch * in), 10);
    std::vector<float> y(static_cast<size_t>(batch * out));
    layer.forward(*backend, x.data(), y.data(), batch);
    std::vector<float> dy = random_vector(y.size(), 11), dy_copy = dy;
    layer.backward(*backend, x.data(), y.data(), dy.data(), nullptr, batch, false);
    const std::vector<float> dw_whole = dw, db_whole = conv.db;
    // Sample by sample, accumulating.
    for (int64_t b = 0; b < batch; ++b) {
      std::vector<float> y1(static_cast<size_t>(out));
      layer.forward(*backend, x.data() + b * in, y1.data(), 1);
      for (int64_t i = 0; i < out; i += 997)
        ASSERT_NEAR(y1[i], y[b * out + i], 1e-5 * (1 + std::abs(y1[i])))
            << "sample " << b << ", " << channels << " channels";
      layer.backward(*backend, x.data() + b * in, y1.data(), dy_copy.data() + b * out, nullptr, 1,
                     b > 0);
    }
    for (size_t i = 0; i < dw.size(); ++i)
      ASSERT_NEAR(dw[i], dw_whole[i], 1e-3 * (1 + std::abs(dw_whole[i])))
          << "dw[" << i << "], " << channels << " channels";
    for (size_t i = 0; i < conv.db.size(); ++i)
      ASSERT_NEAR(conv.db[i], db_whole[i], 1e-3 * (1 + std::abs(db_whole[i])))
          << "db[" << i << "], " << channels << " channels";
  }
}

// Note [convolution as GEMM]: after a training forward, backward reuses its windows; after an
// inference forward, or another input's, it rebuilds them. Either way the same gradients.
TEST(Conv2DWindows, BackwardAfterATrainingForwardGivesTheSameGradients) {
  auto backend = make_cpu_backend();
  const Window2d w = Window2d::make(6, 5, 3, 3, 3, 1, 1, true);
  const int64_t batch = 4, in = 6 * 5 * 3;
  BoundConv rebuilt(w, 2, Activation::kRelu, 20), reused(w, 2, Activation::kRelu, 20);
  const std::vector<float> x = random_vector(static_cast<size_t>(batch * in), 21),
                           other = random_vector(x.size(), 22);
  const size_t out = static_cast<size_t>(batch * rebuilt.layer.output_shape().numel());
  std::vector<float> y(out), scratch(out);
  const std::vector<float> r = random_vector(out, 23);
  std::vector<float> dy = r, dx_rebuilt(x.size()), dx_reused(x.size());
  // An inference forward of another input last: backward must rebuild x's windows.
  rebuilt.layer.forward(*backend, x.data(), y.data(), batch);
  rebuilt.layer.forward(*backend, other.data(), scratch.data(), batch);
  rebuilt.layer.backward(*backend, x.data(), y.data(), dy.data(), dx_rebuilt.data(), batch, false);
  reused.layer.set_pass({true, 0, 0, {}});
  reused.layer.forward(*backend, other.data(), scratch.data(), batch);
  reused.layer.forward(*backend, x.data(), y.data(), batch);
  dy = r;
  reused.layer.backward(*backend, x.data(), y.data(), dy.data(), dx_reused.data(), batch, false);
  EXPECT_EQ(dx_rebuilt, dx_reused);
  EXPECT_EQ(rebuilt.dw, reused.dw);
  EXPECT_EQ(rebuilt.db, reused.db);
}

// (kind, pool, stride, same padding)
using PoolCase = std::tuple<Pooling2D::Kind, int64_t, int64_t, bool>;

class PoolingTest : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolingTest, ForwardIsThePoolingByDefinitionAndGradientsMatchFiniteDifferences) {
  auto backend = make_cpu_backend();
  const auto [kind, pool, stride, same] = GetParam();
  const bool global =
      kind == Pooling2D::Kind::kGlobalAverage || kind == Pooling2D::Kind::kGlobalMax;
  const bool max = kind == Pooling2D::Kind::kMax || kind == Pooling2D::Kind::kGlobalMax;
  // 19 channels: whole vectors of channels and a remainder (Note [SIMD width]).
  const int64_t channels = 19;
  const Window2d w = global ? Window2d::make(5, 6, channels, 5, 6, 1, 1, false)
                            : Window2d::make(5, 6, channels, pool, pool, stride, stride, same);
  Pooling2D layer(kind, w);
  const int64_t batch = 2;
  // Distinct values at least 0.05 apart: no ties, and a step of h = 0.01 moves no maximum.
  std::vector<float> x(static_cast<size_t>(batch * 5 * 6 * channels));
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.05f * static_cast<float>((i * 37) % x.size());
  std::vector<float> y(static_cast<size_t>(batch * layer.output_shape().numel()));
  layer.forward(*backend, x.data(), y.data(), batch);
  size_t at = 0;
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t oh = 0; oh < w.out_h; ++oh)
      for (int64_t ow = 0; ow < w.out_w; ++ow)
        for (int64_t c = 0; c < channels; ++c, ++at) {
          double best = -1e30, sum = 0;
          int count = 0;
          for (int64_t ki = 0; ki < w.kernel_h; ++ki)
            for (int64_t kj = 0; kj < w.kernel_w; ++kj) {
              const int64_t h = oh * w.stride_h - w.pad_top + ki;
              const int64_t v = ow * w.stride_w - w.pad_left + kj;
              if (h < 0 || h >= 5 || v < 0 || v >= 6) continue;  // padding takes no part
              const double value = pixel(x, w, b, h, v, c);
              best = std::max(best, value);
              sum += value;
              ++count;
            }
          const double expected = max ? best : sum / count;
          EXPECT_NEAR(y[at], expected, 1e-5) << "y[" << at << "]";
        }
  ASSERT_EQ(at, y.size());

  expect_input_gradient_matches(*backend, layer, x, y, batch, 12);
}

INSTANTIATE_TEST_SUITE_P(Windows, PoolingTest,
                         ::testing::Values(PoolCase{Pooling2D::Kind::kMax, 2, 2, false},
                                           PoolCase{Pooling2D::Kind::kMax, 3, 2, true},
                                           PoolCase{Pooling2D::Kind::kMax, 3, 1, false},
                                           PoolCase{Pooling2D::Kind::kAverage, 2, 2, false},
                                           PoolCase{Pooling2D::Kind::kAverage, 3, 2, true},
                                           PoolCase{Pooling2D::Kind::kGlobalAverage, 0, 0, false},
                                           PoolCase{Pooling2D::Kind::kGlobalMax, 0, 0, false}));

// A window whose maximum several pixels share (zeros after a ReLU) routes its gradient to the
// first of them in row-major window order, in every channel; overlapping windows add up.
TEST(MaxPooling, RoutesATiedMaximumToItsFirstPixel) {
  auto backend = make_cpu_backend();
  const int64_t channels = 19, batch = 2;
  for (const int64_t pool : {2, 3}) {
    const Window2d w = Window2d::make(6, 6, channels, pool, pool, 2, 2, false);
    Pooling2D layer(Pooling2D::Kind::kMax, w);
    const std::vector<float> x(static_cast<size_t>(batch * 6 * 6 * channels), 0.0f);
    std::vector<float> y(static_cast<size_t>(batch * layer.output_shape().numel()));
    layer.forward(*backend, x.data(), y.data(), batch);
    const std::vector<float> dy = random_vector(y.size(), 30);
    std::vector<float> dy_in = dy, dx(x.size(), -1.0f);
    layer.backward(*backend, x.data(), y.data(), dy_in.data(), dx.data(), batch, false);
    std::vector<double> expected(x.size(), 0.0);
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t oh = 0; oh < w.out_h; ++oh)
        for (int64_t ow = 0; ow < w.out_w; ++ow)
          for (int64_t c = 0; c < channels; ++c)
            expected[static_cast<size_t>(((b * 6 + oh * 2) * 6 + ow * 2) * channels + c)] +=
                dy[static_cast<size_t>(((b * w.out_h + oh) * w.out_w + ow) * channels + c)];
    for (size_t i = 0; i < dx.size(); ++i)
      ASSERT_NEAR(dx[i], expected[i], 1e-6) << "dx[" << i << "], pool " << pool;
  }
}

TEST(Dropout, TrainingDropsAboutTheRateAndScalesTheRestInferencePassesThrough) {
  auto backend = make_cpu_backend();
  const int64_t batch = 50, features = 200;
  Dropout layer(Shape{features}, 0.3f);
  const std::vector<float> x = random_vector(batch * features, 13, 0.5f, 1.5f);
  std::vector<float> y(x.size());
  layer.set_pass({true, 42, 1000, {}});
  layer.forward(*backend, x.data(), y.data(), batch);
  int dropped = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    if (y[i] == 0) {
      ++dropped;
      continue;
    }
    EXPECT_FLOAT_EQ(y[i], x[i] / 0.7f);
  }
  EXPECT_NEAR(static_cast<double>(dropped) / static_cast<double>(x.size()), 0.3, 0.02);
  // Backward applies the same mask to the gradient.
  std::vector<float> dy(x.size(), 1.0f), dx(x.size());
  layer.backward(*backend, x.data(), y.data(), dy.data(), dx.data(), batch, false);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(dx[i] == 0, y[i] == 0) << i;
  layer.set_pass({});
  layer.forward(*backend, x.data(), y.data(), batch);
  EXPECT_EQ(y, x);
}

// Note [dropout mask]: two ranks holding rows [0, 20) and [20, 50) of a batch at position 1000
// draw exactly the mask of one rank holding all 50; another key or position draws another.
TEST(Dropout, MaskDependsOnPositionNotOnHowRowsAreSplit) {
  auto backend = make_cpu_backend();
  const int64_t features = 64;
  Dropout layer(Shape{features}, 0.5f);
  const std::vector<float> x(50 * features, 1.0f);
  std::vector<float> whole(x.size()), split(x.size()), other(x.size());
  layer.set_pass({true, 7, 1000, {}});
  layer.forward(*backend, x.data(), whole.data(), 50);
  layer.forward(*backend, x.data(), split.data(), 20);
  layer.set_pass({true, 7, 1020, {}});
  layer.forward(*backend, x.data() + 20 * features, split.data() + 20 * features, 30);
  EXPECT_EQ(whole, split);
  layer.set_pass({true, 8, 1000, {}});
  layer.forward(*backend, x.data(), other.data(), 50);
  EXPECT_NE(whole, other);
}

// The CPU's integer form of the mask (dropout_threshold) drops exactly what dropout_drops does,
// which the CUDA kernels use: at rates of every kind, each element of each row of the layer's
// mask is the element dropout_drops draws.
TEST(Dropout, TheCpusMaskIsDropoutDropsMask) {
  auto backend = make_cpu_backend();
  const int64_t features = 1000;
  const std::vector<float> x(4 * features, 1.0f);
  for (const float rate : {0.5f, 0.1f, 0.3f, 1e-7f, 0x1.0p-24f, 0x1.8p-24f, 0.75f, 0.99999994f}) {
    Dropout layer(Shape{features}, rate);
    std::vector<float> y(x.size());
    layer.set_pass({true, 9, 300, {}});
    layer.forward(*backend, x.data(), y.data(), 4);
    for (int64_t i = 0; i < static_cast<int64_t>(x.size()); ++i)
      ASSERT_EQ(y[i] == 0, dropout_drops(9, static_cast<uint64_t>(300 * features + i), rate))
          << "rate " << rate << ", element " << i;
  }
  // Hashes whose top 24 bits are 1 drop at 1.5 x 2^-24 (1 < 1.5) and not at 2^-24.
  EXPECT_EQ(dropout_threshold(0x1.8p-24f), 2u);
  EXPECT_EQ(dropout_threshold(0x1.0p-24f), 1u);
  EXPECT_EQ(dropout_threshold(0.5f), uint64_t{1} << 23);
  EXPECT_EQ(dropout_threshold(0.0f), 0u);
  for (uint64_t counter = 0; counter < 100000; ++counter)
    for (const float rate : {0.3f, 0x1.0p-24f})
      ASSERT_EQ(dropout_drops_below(3, counter, dropout_threshold(rate)),
                dropout_drops(3, counter, rate))
          << counter;
}

}  // namespace
}  // namespace ddp
