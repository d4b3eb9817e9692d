// Note [Winograd convolution]: the F(2x2, 3x3) kernels against the convolution's definition in
// double: forward (bias, ReLU), input, weight and bias gradients, accumulation. Shapes with
// partial 2x2 tiles at the edges, "valid" and "same" padding, and batches whose tiles span several
// blocks with a partial last one.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "backend/winograd_conv.h"
#include "conv_by_definition.h"
#include "core/simd.h"
#include "finite_differences.h"

namespace ddp {
namespace {

[[maybe_unused]] void expect_near(const std::vector<float>& got, const std::vector<double>& want,
                                  double scale, const char* what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i)
    ASSERT_NEAR(got[i], want[i] * scale, 1e-4 * (1 + std::abs(want[i] * scale)))
        << what << "[" << i << "]";
}

// (height, width, same padding, channels, filters, batch)
using Case = std::tuple<int64_t, int64_t, bool, int64_t, int64_t, int64_t>;

class WinogradConvTest : public ::testing::TestWithParam<Case> {};

TEST_P(WinogradConvTest, MatchesTheConvolutionByDefinition) {
#ifndef DDP_SIMD_TILES
  GTEST_SKIP() << "the Winograd kernels need an AVX2 or AVX-512F build";
#else
  const auto [height, width, same, channels, filters, batch] = GetParam();
  const Window2d win = Window2d::make(height, width, channels, 3, 3, 1, 1, same);
  ASSERT_TRUE(cpu::winograd_conv_applies(win, filters));
  const std::vector<float> x =
      random_vector(static_cast<size_t>(batch * height * width * channels), 1);
  const std::vector<float> w = random_vector(static_cast<size_t>(filters * 9 * channels), 2);
  const std::vector<float> b = random_vector(static_cast<size_t>(filters), 3);
  const size_t out = static_cast<size_t>(batch * win.out_pixels() * filters);
  const std::vector<float> dz = random_vector(out, 4);
  const ConvReference ref = by_definition(x, w, b, dz, win, batch, filters);
  std::vector<float> scratch;
  for (const bool relu : {false, true}) {
    std::vector<float> y(out);
    cpu::winograd_conv_forward(x.data(), w.data(), b.data(), y.data(), batch, win, filters, relu,
                               scratch);
    std::vector<double> expected = ref.y;
    if (relu)
      std::for_each(expected.begin(), expected.end(), [](double& v) { v = std::max(v, 0.0); });
    expect_near(y, expected, 1, relu ? "relu(y)" : "y");
  }
  // Gradients, then added to those of a second pass (accumulate) without an input gradient.
  std::vector<float> dx(x.size()), dw(w.size()), db(b.size());
  cpu::winograd_conv_backward(x.data(), w.data(), dz.data(), dx.data(), dw.data(), db.data(), batch,
                              win, filters, false, scratch);
  expect_near(dx, ref.dx, 1, "dx");
  expect_near(dw, ref.dw, 1, "dw");
  expect_near(db, ref.db, 1, "db");
  cpu::winograd_conv_backward(x.data(), w.data(), dz.data(), nullptr, dw.data(), db.data(), batch,
                              win, filters, true, scratch);
  expect_near(dw, ref.dw, 2, "accumulated dw");
  expect_near(db, ref.db, 2, "accumulated db");
#endif
}

// W4's second layer (14 x 14, 49 tiles per image) at batch 3 spans blocks of tiles with a partial
// last one; odd sizes leave partial 2x2 tiles at the bottom and right edges.
INSTANTIATE_TEST_SUITE_P(
    Shapes, WinogradConvTest,
    ::testing::Values(Case{14, 14, true, 32, 64, 3}, Case{5, 6, true, 16, 16, 2},
                      Case{5, 6, false, 16, 48, 2}, Case{7, 3, true, 32, 16, 1},
                      Case{4, 4, false, 16, 32, 3}, Case{3, 3, false, 16, 16, 2}));

TEST(WinogradConv, AppliesOnlyToThreeByThreeAtStrideOneOverWholeVectors) {
#ifndef DDP_SIMD_TILES
  EXPECT_FALSE(cpu::winograd_conv_applies(Window2d::make(14, 14, 32, 3, 3, 1, 1, true), 64));
#else
  EXPECT_TRUE(cpu::winograd_conv_applies(Window2d::make(14, 14, 32, 3, 3, 1, 1, true), 64));
  EXPECT_FALSE(cpu::winograd_conv_applies(Window2d::make(14, 14, 32, 3, 3, 2, 2, true), 64));
  EXPECT_FALSE(cpu::winograd_conv_applies(Window2d::make(14, 14, 32, 5, 5, 1, 1, true), 64));
  EXPECT_FALSE(cpu::winograd_conv_applies(Window2d::make(14, 14, 32, 3, 3, 1, 1, true), 60));
  EXPECT_FALSE(cpu::winograd_conv_applies(Window2d::make(14, 14, 12, 3, 3, 1, 1, true), 64));
  EXPECT_FALSE(cpu::winograd_conv_applies(Window2d::make(2, 2, 32, 3, 3, 1, 1, false), 64));
#endif
}

}  // namespace
}  // namespace ddp
