// Note [vectorized softmax]: simd::exp against std::exp, and the row helper of softmax and
// cross-entropy against std::max_element and std::exp, at row lengths around the vector width
// (whole vectors, tails, several vectors) and with the inputs that break a careless vector
// version: rows of negative logits only (the masked-off lanes must not win the max), ties (the
// first index wins, as with std::max_element), -inf and NaN.

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "backend/cpu_softmax.h"
#include "core/simd.h"
#include "finite_differences.h"

namespace ddp {
namespace {

// Distance in representable floats between two positive finite floats.
int64_t ulps_apart(float a, float b) {
  return std::abs(int64_t{std::bit_cast<int32_t>(a)} - int64_t{std::bit_cast<int32_t>(b)});
}

#ifdef DDP_SIMD_TILES
std::vector<float> simd_exp(const std::vector<float>& x) {
  std::vector<float> y(x.size());
  for (size_t i = 0; i < x.size(); i += simd::kLanes) {
    const simd::Mask lanes = simd::first_lanes(static_cast<int64_t>(x.size() - i));
    simd::store(y.data() + i, lanes, simd::exp(simd::load(x.data() + i, lanes)));
  }
  return y;
}

TEST(SimdExp, WithinTwoUlpOfLibmOverTheNormalRange) {
  std::vector<float> x;
  for (float v = -87.3f; v <= 88.0f; v += 0.0017f) x.push_back(v);
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 0.5f * std::log(2.0f), -0.5f * std::log(2.0f)})
    x.push_back(v);
  const std::vector<float> y = simd_exp(x);
  int64_t worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const int64_t apart = ulps_apart(y[i], std::exp(x[i]));
    ASSERT_LE(apart, 2) << "exp(" << x[i] << ") = " << y[i] << ", libm " << std::exp(x[i]);
    worst = std::max(worst, apart);
  }
  EXPECT_GE(x.size(), 100000u);
  RecordProperty("worst_ulps", static_cast<int>(worst));
}

TEST(SimdExp, ClampsBelowTheNormalRangeAndKeepsNaN) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> y =
      simd_exp({-inf, -1000, -88.5f, std::numeric_limits<float>::quiet_NaN(), 0});
  for (int i = 0; i < 3; ++i) {
    // FLT_MIN give or take an ulp, a denormal, or 0 where the backend flushes denormals: nothing
    // to a softmax either way.
    EXPECT_GE(y[i], 0) << i;
    EXPECT_LT(y[i], 1.2e-38f) << i;
  }
  EXPECT_TRUE(std::isnan(y[3]));
  EXPECT_EQ(y[4], 1.0f);
}
#endif

void expect_matches_reference(const std::vector<float>& z, const char* what) {
  const auto cols = static_cast<int64_t>(z.size());
  std::vector<float> exps(z.size(), -1);
  const cpu::ExpRow row = cpu::exp_minus_max(z.data(), cols, exps.data());
  const auto max = std::max_element(z.begin(), z.end());
  EXPECT_EQ(row.max, *max) << what << ", cols " << cols;
  EXPECT_EQ(row.argmax, max - z.begin()) << what << ", cols " << cols;
  double sum = 0;
  for (int64_t c = 0; c < cols; ++c) {
    const float want = std::exp(z[c] - *max);
    sum += want;
    if (want >= std::numeric_limits<float>::min()) {
      ASSERT_LE(ulps_apart(exps[c], want), 2) << what << ", cols " << cols << ", column " << c;
    } else {
      ASSERT_LT(exps[c], 1.2e-38f) << what << ", cols " << cols << ", column " << c;
    }
  }
  EXPECT_NEAR(row.sum, sum, 1e-6 * sum) << what << ", cols " << cols;
}

TEST(ExpMinusMax, MatchesTheScalarDefinitionAtEveryRowLength) {
  for (int64_t cols = 1; cols <= 50; ++cols) {
    std::vector<float> z = random_vector(cols, static_cast<unsigned>(cols), -5, 5);
    expect_matches_reference(z, "mixed signs");
    for (float& v : z) v = -std::abs(v) - 100;  // every logit below the masked lanes' zeros
    expect_matches_reference(z, "all negative");
    std::vector<float> ties(static_cast<size_t>(cols), -3.0f);
    ties[cols / 2] = ties[cols - 1] = 2.0f;  // the first of two maxima is the argmax
    expect_matches_reference(ties, "ties");
    z[0] = -std::numeric_limits<float>::infinity();
    if (cols > 1) expect_matches_reference(z, "-inf logit");
  }
}

TEST(ExpMinusMax, NaNLogitGivesNaNSum) {
  std::vector<float> z = random_vector(20, 3, -1, 1);
  z[17] = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> exps(z.size());
  const cpu::ExpRow row = cpu::exp_minus_max(z.data(), 20, exps.data());
  EXPECT_TRUE(std::isnan(row.sum));  // so the loss is NaN and the trainer's check stops the run
  EXPECT_GE(row.argmax, 0);
  EXPECT_LT(row.argmax, 20);
}

TEST(SoftmaxRows, RowsArePositiveSumToOneAndKeepTheOrder) {
  const int64_t rows = 5, cols = 19;
  const std::vector<float> x = random_vector(rows * cols, 11, -30, 30);
  std::vector<float> y(x.size());
  cpu::softmax_rows(x.data(), y.data(), rows, cols);
  for (int64_t r = 0; r < rows; ++r) {
    double sum = 0;
    for (int64_t c = 0; c < cols; ++c) {
      const float p = y[r * cols + c];
      EXPECT_GE(p, 0);
      sum += p;
      if (c > 0) {
        EXPECT_EQ(x[r * cols + c] < x[r * cols + c - 1], p < y[r * cols + c - 1]) << r << "," << c;
      }
    }
    EXPECT_NEAR(sum, 1, 1e-6) << "row " << r;
  }
}

// In place (attention's probabilities overwrite their scores), forward and backward give the bits
// of separate buffers, on the vector path and on the scalar one (the portable build's).
TEST(SoftmaxRows, InPlaceIsTheSame) {
  const int64_t rows = 4, cols = 23;
  std::vector<float> x = random_vector(rows * cols, 12, -5, 5), y(x.size());
  cpu::softmax_rows(x.data(), y.data(), rows, cols);
  cpu::softmax_rows(x.data(), x.data(), rows, cols);
  EXPECT_EQ(x, y);
  std::vector<float> dy = random_vector(x.size(), 13), dx(x.size());
  cpu::softmax_backward_rows(y.data(), dy.data(), dx.data(), rows, cols);
  cpu::softmax_backward_rows(y.data(), dy.data(), dy.data(), rows, cols);
  EXPECT_EQ(dy, dx);
}

}  // namespace
}  // namespace ddp
