// Note [update in the tiles]: SGD's momentum step applied inside the weight-gradient tiles leaves
// the weights and velocity bit for bit as the tiled product followed by the CPU backend's SGD
// update, for any rows of any shape (row and column tails, short and odd batches), touches no
// other rows, and reports non-finite gradients.

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu_updates.h"
#include "backend/tiled_gemm.h"

namespace ddp {
namespace {

std::vector<float> uniform(size_t count, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> values(count);
  for (float& v : values) v = dist(gen);
  return values;
}

// A dense layer's weight gradient dW (out, in) = dy (batch, out)^T x (batch, in), rows
// [first_row, end_row) stepped.
struct Case {
  int64_t out, in, batch, first_row, end_row;
};

struct Stepped {
  std::vector<float> weight, velocity;
  bool finite;
};

constexpr float kLr = 0.05f, kMomentum = 0.9f;

// The update after backward: the whole product, then sgd_range over the rows.
Stepped product_then_update(const Case& c, const std::vector<float>& x,
                            const std::vector<float>& dy, Stepped s) {
  std::vector<float> grad(static_cast<size_t>(c.out * c.in));
  tiled_gemm(true, false, c.out, c.in, c.batch, dy.data(), x.data(), grad.data(), false);
  const int64_t at = c.first_row * c.in, count = (c.end_row - c.first_row) * c.in;
  s.finite =
      cpu::sgd_range(s.weight.data() + at, grad.data() + at, s.velocity.data() + at,
                     static_cast<size_t>(count), kLr, 1, SgdHyper{.momentum = kMomentum}) == 0;
  return s;
}

Stepped stepped_in_tiles(const Case& c, const std::vector<float>& x, const std::vector<float>& dy,
                         Stepped s) {
  s.finite = tiled_weight_grad_momentum_step(
      c.out, c.in, c.batch, dy.data(), x.data(), c.first_row, c.end_row,
      {.lr = kLr, .momentum = kMomentum, .weight = s.weight.data(), .velocity = s.velocity.data()});
  return s;
}

class MomentumStepInTiles : public ::testing::TestWithParam<Case> {};

TEST_P(MomentumStepInTiles, BitsOfTheProductThenTheUpdate) {
  if (!tiled_gemm_available()) GTEST_SKIP() << "tiled kernels not compiled for this target";
  const Case c = GetParam();
  const auto x = uniform(static_cast<size_t>(c.batch * c.in), 1);
  const auto dy = uniform(static_cast<size_t>(c.batch * c.out), 2);
  const Stepped before{uniform(static_cast<size_t>(c.out * c.in), 3),
                       uniform(static_cast<size_t>(c.out * c.in), 4), true};
  const Stepped want = product_then_update(c, x, dy, before);
  const Stepped got = stepped_in_tiles(c, x, dy, before);
  EXPECT_TRUE(got.finite);
  // Bitwise (EXPECT_EQ on floats), rows outside [first_row, end_row) included: untouched.
  EXPECT_EQ(got.weight, want.weight);
  EXPECT_EQ(got.velocity, want.velocity);
  EXPECT_NE(got.weight, before.weight);  // the step moved the weights
}

// 8 x 3-vector tiles (6 x 2 with AVX2), 4-row and single-row tails, 48-column panels with a
// masked last vector; batches shorter than a tile's step count, odd, and W3's.
INSTANTIATE_TEST_SUITE_P(Shapes, MomentumStepInTiles,
                         ::testing::Values(Case{20, 104, 7, 0, 20}, Case{13, 50, 64, 0, 13},
                                           Case{40, 200, 33, 8, 29}, Case{24, 16, 1, 0, 24},
                                           Case{64, 2048, 64, 0, 64},
                                           Case{1100, 1024, 160, 0, 1100}));

TEST(MomentumStepInTiles, NonFiniteWhereAGradientIsAndOnlyThere) {
  if (!tiled_gemm_available()) GTEST_SKIP() << "tiled kernels not compiled for this target";
  auto run = [](int64_t in, int64_t bad_column, float bad) {
    const Case c{16, in, 9, 0, 16};
    auto x = uniform(static_cast<size_t>(c.batch * c.in), 1);
    const auto dy = uniform(static_cast<size_t>(c.batch * c.out), 2);
    if (bad_column >= 0) x[static_cast<size_t>(4 * c.in + bad_column)] = bad;
    const Stepped before{uniform(static_cast<size_t>(c.out * c.in), 3),
                         uniform(static_cast<size_t>(c.out * c.in), 4), true};
    const bool finite = stepped_in_tiles(c, x, dy, before).finite;
    EXPECT_EQ(finite, product_then_update(c, x, dy, before).finite) << in << " " << bad;
    return finite;
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  // Column 99 of 100: the last lane of the last panel's masked vector.
  EXPECT_FALSE(run(100, 99, nan));
  EXPECT_FALSE(run(100, 99, inf));
  EXPECT_TRUE(run(100, -1, 0));
  // Lanes past the last column hold no gradient: a NaN that a wider input left in the packed
  // panel's padding (column 101 of 104, packed into the scratch the next call reuses) does not
  // count for 100 columns.
  EXPECT_FALSE(run(104, 101, nan));
  EXPECT_TRUE(run(100, -1, 0));
}

}  // namespace
}  // namespace ddp
