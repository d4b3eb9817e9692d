// Note [convolutions on threads]: a batch of several pieces through each convolution kernel of the
// CPU backend, on one thread and on three, against the definition: the pieces' outputs where they
// belong, their weight and bias gradients summed (and added to what was there), the same bits
// whatever the team.

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu_convolutions.h"
#include "conv_by_definition.h"
#include "finite_differences.h"

namespace ddp {
namespace {

// Largest difference, relative to the largest reference value.
double relative_diff(const std::vector<float>& got, const std::vector<double>& want) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff = std::max(diff, std::fabs(got[i] - want[i]));
    scale = std::max(scale, std::fabs(want[i]));
  }
  return diff / scale;
}

struct Outputs {
  std::vector<float> y, dx, dw, db;
};

// 37 samples: pieces of 16, 16 and 5.
constexpr int64_t kBatch = 37;
static_assert(kBatch > 2 * cpu::Convolutions::kPieceSamples);

// (channels, filters): 1 channel takes the direct kernels (a first layer: no input gradient), 16
// -> 16 Winograd's (whole vectors), 8 -> 24 oneDNN's on AVX-512 builds (Winograd's on AVX2).
class ConvolutionPieces : public ::testing::TestWithParam<std::pair<int64_t, int64_t>> {};

TEST_P(ConvolutionPieces, EqualTheDefinitionOnAnyTeam) {
  const int64_t channels = GetParam().first, filters = GetParam().second;
  const Window2d win = Window2d::make(7, 6, channels, 3, 3, 1, 1, true);
  const bool input_grad = channels > 1;
  const auto x = random_vector(kBatch * 7 * 6 * channels, 1),
             w = random_vector(filters * 9 * channels, 2), b = random_vector(filters, 3),
             dz = random_vector(kBatch * win.out_pixels() * filters, 4),
             dw_before = random_vector(w.size(), 5), db_before = random_vector(b.size(), 6);
  const auto run = [&](int threads) -> std::optional<Outputs> {
    auto backend = make_cpu_backend(false, threads);
    Outputs out{std::vector<float>(dz.size()), std::vector<float>(x.size()), dw_before, db_before};
    std::vector<float> dy = dz;
    if (!backend->conv2d_forward(x.data(), w.data(), b.data(), out.y.data(), kBatch, win, filters,
                                 Activation::kLinear))
      return std::nullopt;
    EXPECT_TRUE(backend->conv2d_backward(
        x.data(), w.data(), out.y.data(), dy.data(), input_grad ? out.dx.data() : nullptr,
        out.dw.data(), out.db.data(), kBatch, win, filters, Activation::kLinear, true));
    return out;
  };
  const std::optional<Outputs> one = run(1), three = run(3);
  if (!one) GTEST_SKIP() << "im2col + GEMM takes this convolution in this build";
  const ConvReference want = by_definition(x, w, b, dz, win, kBatch, filters);
  std::vector<double> want_dw = want.dw, want_db = want.db;
  for (size_t i = 0; i < want_dw.size(); ++i) want_dw[i] += dw_before[i];
  for (size_t i = 0; i < want_db.size(); ++i) want_db[i] += db_before[i];
  // fp32 sums of up to 37 x 42 x 9 x 16 terms (Winograd's transforms add a few ulps).
  EXPECT_LT(relative_diff(one->y, want.y), 1e-5);
  if (input_grad) {
    EXPECT_LT(relative_diff(one->dx, want.dx), 1e-5);
  }
  EXPECT_LT(relative_diff(one->dw, want_dw), 1e-5);
  EXPECT_LT(relative_diff(one->db, want_db), 1e-5);
  EXPECT_EQ(three->y, one->y);
  EXPECT_EQ(three->dx, one->dx);
  EXPECT_EQ(three->dw, one->dw);
  EXPECT_EQ(three->db, one->db);
}

INSTANTIATE_TEST_SUITE_P(Kernels, ConvolutionPieces,
                         ::testing::Values(std::pair<int64_t, int64_t>{1, 16},
                                           std::pair<int64_t, int64_t>{16, 16},
                                           std::pair<int64_t, int64_t>{8, 24}),
                         [](const auto& info) {
                           return std::to_string(info.param.first) + "to" +
                                  std::to_string(info.param.second);
                         });

}  // namespace
}  // namespace ddp
