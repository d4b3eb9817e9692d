// The CPU backend's dense layers against a naive double-precision reference, at shapes that take
// each GEMM path: the register-tiled kernels for small and skinny products (with row and column
// tails, more than one tile, depth blocks and panels) and BLAS/Eigen for the rest. See Note [tiled
// GEMM]. Also which OpenBLAS kernels a CPU gets (Note [OpenBLAS kernels]).

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "backend/openblas_kernels.h"
#include "backend/register_tile.h"
#include "backend/tiled_gemm.h"
#include "finite_differences.h"

namespace ddp {
namespace {

// C(m, n) = sum_p A(i, p) B(p, j) with A(i, p) = a[i * rs + p * cs], B row-major.
std::vector<double> reference(int64_t m, int64_t n, int64_t k, const std::vector<float>& a,
                              int64_t rs, int64_t cs, const std::vector<float>& b) {
  std::vector<double> c(static_cast<size_t>(m * n));
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = 0;
      for (int64_t p = 0; p < k; ++p) sum += double(a[i * rs + p * cs]) * b[p * n + j];
      c[i * n + j] = sum;
    }
  }
  return c;
}

void expect_close(const std::vector<float>& got, const std::vector<double>& want, int64_t k) {
  ASSERT_EQ(got.size(), want.size());
  // Float accumulation over k terms of magnitude <= 1.
  const double tolerance = 4e-7 * static_cast<double>(k) + 1e-6;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], tolerance) << "element " << i;
  }
}

using Shape = std::tuple<int64_t, int64_t, int64_t>;  // m, n, k
class TiledGemm : public ::testing::TestWithParam<Shape> {};

TEST_P(TiledGemm, MatchesReferenceForEveryOperandLayout) {
  if (!tiled_gemm_available()) GTEST_SKIP() << "tiled GEMM kernels need an AVX2 or AVX-512F build";
  const auto [m, n, k] = GetParam();
  const std::vector<float> a = random_vector(m * k, 1), b = random_vector(k * n, 2);
  std::vector<float> b_t(b.size());  // B^T stored row-major (n, k)
  for (int64_t p = 0; p < k; ++p) {
    for (int64_t j = 0; j < n; ++j) b_t[j * k + p] = b[p * n + j];
  }
  for (bool a_transposed : {false, true}) {
    const int64_t rs = a_transposed ? 1 : k, cs = a_transposed ? m : 1;
    const std::vector<double> want = reference(m, n, k, a, rs, cs, b);
    for (bool b_transposed : {false, true}) {
      SCOPED_TRACE(::testing::Message()
                   << "A transposed " << a_transposed << ", B transposed " << b_transposed);
      const float* b_data = b_transposed ? b_t.data() : b.data();
      std::vector<float> c(static_cast<size_t>(m * n), 99.0f);  // overwritten, not accumulated
      tiled_gemm(a_transposed, b_transposed, m, n, k, a.data(), b_data, c.data(), false);
      expect_close(c, want, k);

      // accumulate adds to what is there: C0 + AB.
      const std::vector<float> c0 = random_vector(m * n, 3);
      c = c0;
      tiled_gemm(a_transposed, b_transposed, m, n, k, a.data(), b_data, c.data(), true);
      std::vector<double> want_sum = want;
      for (size_t i = 0; i < want_sum.size(); ++i) want_sum[i] += c0[i];
      expect_close(c, want_sum, k);
    }
  }
}

// Small shapes, then skinny ones (at least 64^3 multiply-adds): batches that are not a whole
// number of tiles or vectors (70, 13), weight rows not a multiple of 6 or 8, depths past one
// 128-row block and widths past one 48-column panel, and weights of more than 4 MB (1000 x 1100),
// which the input gradient reads in place instead of packing.
INSTANTIATE_TEST_SUITE_P(Shapes, TiledGemm,
                         ::testing::Values(Shape{32, 64, 10}, Shape{32, 10, 64}, Shape{64, 10, 32},
                                           Shape{1, 1, 1}, Shape{5, 17, 3}, Shape{7, 130, 9},
                                           Shape{9, 48, 1}, Shape{3, 65, 20}, Shape{4, 33, 40},
                                           Shape{2, 64, 64}, Shape{64, 200, 300},
                                           Shape{70, 101, 131}, Shape{13, 500, 290},
                                           Shape{300, 97, 64}, Shape{129, 50, 80},
                                           Shape{70, 1100, 1000}));

// Note [tiled GEMM]: every kernel sums an element as one chain of multiply-adds over p, from zero,
// so small products, narrow ones computed transposed included, hold exactly the bits of that
// chain (what lets an update in backward and a team of threads train the same bits as before).
TEST(TiledGemm, SmallAndNarrowProductsAreTheFmaChainBitForBit) {
  if (!tiled_gemm_available()) GTEST_SKIP() << "tiled GEMM kernels need an AVX2 or AVX-512F build";
  // W1's last forward product (A = X, B stored as W^T) and first weight gradient (A = dY^T).
  for (const auto& [m, n, k, a_transposed, b_transposed] :
       {std::tuple{32, 10, 64, false, true}, std::tuple{64, 10, 32, true, false},
        std::tuple{32, 64, 10, false, true}, std::tuple{48, 7, 20, false, false}}) {
    SCOPED_TRACE(::testing::Message() << m << " x " << n << " x " << k);
    const std::vector<float> a = random_vector(m * k, 7), b = random_vector(k * n, 8);
    std::vector<float> c(static_cast<size_t>(m * n), 99.0f);
    tiled_gemm(a_transposed, b_transposed, m, n, k, a.data(), b.data(), c.data(), false);
    for (int64_t i = 0; i < m; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        float sum = 0;
        for (int64_t p = 0; p < k; ++p) {
          const float x = a_transposed ? a[p * m + i] : a[i * k + p];
          const float y = b_transposed ? b[j * k + p] : b[p * n + j];
          sum = std::fma(x, y, sum);
        }
        ASSERT_EQ(c[i * n + j], sum) << i << ", " << j;
      }
    }
  }
}

// The backend's dense layer (all three GEMM layouts: Y = X W^T, dW = dY^T X, dX = dY W).
class DenseGemmPaths : public ::testing::TestWithParam<Shape> {};

TEST_P(DenseGemmPaths, ForwardAndBackwardMatchReference) {
  const auto [batch, in, out] = GetParam();
  auto backend = make_cpu_backend();
  const std::vector<float> x = random_vector(batch * in, 4), w = random_vector(out * in, 5);
  const std::vector<float> bias(static_cast<size_t>(out), 0.0f);
  std::vector<float> y(static_cast<size_t>(batch * out));
  backend->dense_forward(x.data(), w.data(), bias.data(), y.data(), batch, in, out,
                         Activation::kLinear);
  // W^T as a row-major (in, out) matrix, for the reference.
  std::vector<float> w_t(w.size());
  for (int64_t o = 0; o < out; ++o) {
    for (int64_t i = 0; i < in; ++i) w_t[i * out + o] = w[o * in + i];
  }
  expect_close(y, reference(batch, out, in, x, in, 1, w_t), in);

  std::vector<float> dy = random_vector(batch * out, 6);
  const std::vector<float> dy_copy = dy;
  std::vector<float> dx(x.size()), db(static_cast<size_t>(out));
  std::vector<float> dw = random_vector(w.size(), 7);
  const std::vector<float> dw0 = dw;
  backend->dense_backward(x.data(), w.data(), y.data(), dy.data(), dx.data(), dw.data(), db.data(),
                          batch, in, out, Activation::kLinear, /*accumulate=*/true,
                          /*consume_dw=*/nullptr);
  const std::vector<double> product = reference(out, in, batch, dy_copy, 1, out, x);
  std::vector<double> want_dw = product;
  for (size_t i = 0; i < want_dw.size(); ++i) want_dw[i] += dw0[i];
  expect_close(dw, want_dw, batch);
  expect_close(dx, reference(batch, in, out, dy_copy, out, 1, w), out);

  // Overwritten (large gradients are streamed to memory, from blocks computed in cache).
  dy = dy_copy;
  dw = dw0;
  backend->dense_backward(x.data(), w.data(), y.data(), dy.data(), dx.data(), dw.data(), db.data(),
                          batch, in, out, Activation::kLinear, /*accumulate=*/false, nullptr);
  expect_close(dw, product, batch);
  const std::vector<float> stored = dw;

  // Handed over block by block (Note [update in backward]): every row once, the same bits, on one
  // thread and on two (each consuming its share of the rows).
  for (int threads : {1, 2}) {
    auto team_backend = make_cpu_backend(true, threads);
    dy = dy_copy;
    std::vector<float> consumed(dw.size(), std::nanf(""));
    std::vector<int> times(dw.size());  // per element
    // Where each row's next block must start: a row's blocks come in column order.
    std::vector<int64_t> next_col(static_cast<size_t>(out));
    // With the streams an update would read beside the block (the weights, and state as large):
    // the CPU backend's tiles then fetch their next rows while they multiply, and where the input
    // is large (Note [weight-gradient chunks]) hand over blocks of column chunks.
    const std::vector<float> state(w.size(), 1.0f);
    const auto in_cols = static_cast<size_t>(in);  // clang 14 captures no structured binding
    const GradBlockConsumer consume{
        .consume =
            [&](const GradBlock& block) {
              for (int64_t r = 0; r < block.rows; ++r) {
                const auto row = static_cast<size_t>(block.first_row + r);
                EXPECT_EQ(block.first_col, next_col[row]) << "row " << row;
                next_col[row] = block.first_col + block.cols;
                for (int64_t c = 0; c < block.cols; ++c) {
                  const auto at = row * in_cols + static_cast<size_t>(block.first_col + c);
                  consumed[at] = block.data[r * block.cols + c];
                  ++times[at];
                }
              }
            },
        .streams = {w.data(), state.data()}};
    team_backend->dense_backward(x.data(), w.data(), y.data(), dy.data(), dx.data(), dw.data(),
                                 db.data(), batch, in, out, Activation::kLinear,
                                 /*accumulate=*/false, &consume);
    EXPECT_EQ(times, std::vector<int>(dw.size(), 1)) << threads << " threads";
    EXPECT_EQ(consumed, stored) << threads << " threads";

    // Note [split weight gradients]: the rows of ranks that share a layer, from the same x and
    // dy, are those rows of the whole product: bit for bit where the tiled kernels take it, small
    // or skinny (their chains do not depend on the rows asked for; a general GEMM may sum a share
    // of the rows in another order: Debian's OpenBLAS with its Haswell kernels did at a batch of
    // 300 on a Zen 4), the bias's sums bit for bit everywhere.
    std::fill(consumed.begin(), consumed.end(), std::nanf(""));
    std::fill(times.begin(), times.end(), 0);
    std::fill(next_col.begin(), next_col.end(), 0);
    std::vector<float> split_db(db.size(), std::nanf(""));
    const int64_t cuts[] = {0, std::min<int64_t>(out, 16), std::min<int64_t>(out, 48), out};
    for (size_t part = 0; part + 1 < std::size(cuts); ++part) {
      team_backend->dense_weight_grad_rows(x.data(), dy_copy.data(), batch, in, out, cuts[part],
                                           cuts[part + 1], split_db.data() + cuts[part], consume);
    }
    EXPECT_EQ(times, std::vector<int>(dw.size(), 1)) << threads << " threads";
    if (tiled_kernels_take(true, false, out, in, batch)) {
      EXPECT_EQ(consumed, stored) << threads << " threads, rows in parts";
    } else {
      expect_close(consumed, product, batch);
    }
    EXPECT_EQ(split_db, db) << threads << " threads, rows in parts";
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, DenseGemmPaths,
                         ::testing::Values(Shape{32, 10, 64}, Shape{32, 64, 64}, Shape{32, 64, 10},
                                           Shape{3, 7, 5}, Shape{33, 70, 90}, Shape{128, 784, 512},
                                           Shape{64, 1024, 2048}, Shape{300, 64, 64},
                                           Shape{8, 1030, 1100},
                                           // Weights over 4 MB, input over 512 KB: column chunks.
                                           Shape{128, 1100, 1000}));

#ifdef DDP_SIMD_TILES
// The lines a tile fetches for the next block (tile_body): each line of the region once, in row
// order, one every `every` steps, none once the tile's steps run out.
std::vector<std::pair<int64_t, const char*>> fetched_lines(const tiles::LineFetch& fetch,
                                                           int64_t steps) {
  std::vector<std::pair<int64_t, const char*>> lines;
  tiles::LineFetchCursor cursor(fetch, steps);
  for (int64_t p = 0; p < steps; ++p) {
    if (const char* line = cursor.at(p)) lines.emplace_back(p, line);
  }
  return lines;
}

TEST(LineFetchCursor, FetchesEachLineOfTheBlockOnceSpreadOverTheSteps) {
  std::vector<char> weights(6 * 8192);
  const char* const start = weights.data() + 192;  // a column block's 3 lines in 5 rows
  const auto lines = fetched_lines({start, 5, 3, 8192, 4}, 64);
  ASSERT_EQ(lines.size(), 15u);
  for (int64_t i = 0; i < 15; ++i) {
    EXPECT_EQ(lines[i].first, 4 * i) << "fetch " << i;
    EXPECT_EQ(lines[i].second, start + i / 3 * 8192 + i % 3 * 64) << "fetch " << i;
  }
  // A tile of 20 steps fetches the first 5 lines and leaves the rest.
  const auto short_tile = fetched_lines({start, 5, 3, 8192, 4}, 20);
  ASSERT_EQ(short_tile.size(), 5u);
  EXPECT_EQ(short_tile.back().second, start + 8192 + 64);

  const auto adjacent = fetched_lines(tiles::LineFetch::adjacent(start, 7), 64);
  ASSERT_EQ(adjacent.size(), 7u);
  for (int64_t i = 0; i < 7; ++i) {
    EXPECT_EQ(adjacent[i], std::make_pair(i, start + 64 * i));
  }
  EXPECT_TRUE(fetched_lines({}, 64).empty());
}
#endif

// Note [OpenBLAS kernels]: chosen from feature bits, so a CPU model OpenBLAS 0.3.21 does not
// know (Intel family 6, model 207: its Prescott fallback ran W3 3.7x slower) still gets AVX-512
// kernels; the model number is not even an input.
TEST(OpenBlasKernels, ChosenByFeaturesNotByModel) {
  CpuFeatures xeon_5th_gen;  // Intel, family 6, every AVX-512 subset the kernels use
  xeon_5th_gen.family = 6;
  xeon_5th_gen.avx2 = xeon_5th_gen.fma = true;
  xeon_5th_gen.avx512f = xeon_5th_gen.avx512bw = xeon_5th_gen.avx512dq = true;
  xeon_5th_gen.avx512vl = true;
  EXPECT_EQ(openblas_core_type(xeon_5th_gen), "SkylakeX");

  CpuFeatures zen4 = xeon_5th_gen;  // AVX-512 on 256-bit units: the AVX2 kernels are faster
  zen4.amd = true;
  zen4.family = 0x19;
  EXPECT_EQ(openblas_core_type(zen4), "Haswell");
  CpuFeatures zen5 = zen4;  // full-width AVX-512
  zen5.family = 0x1a;
  EXPECT_EQ(openblas_core_type(zen5), "SkylakeX");

  CpuFeatures avx2_only;
  avx2_only.family = 6;
  avx2_only.avx2 = avx2_only.fma = true;
  EXPECT_EQ(openblas_core_type(avx2_only), "Haswell");
  CpuFeatures knights_landing = avx2_only;  // AVX-512F without BW/DQ/VL
  knights_landing.avx512f = true;
  EXPECT_EQ(openblas_core_type(knights_landing), "Haswell");
  EXPECT_EQ(openblas_core_type(CpuFeatures{}), "") << "SSE-only: left to OpenBLAS";
}

TEST(OpenBlasKernels, TheUsersChoiceWins) {
  const char* before = std::getenv("OPENBLAS_CORETYPE");
  const std::string saved = before ? before : "";
  setenv("OPENBLAS_CORETYPE", "Sandybridge", 1);
  EXPECT_EQ(choose_openblas_kernels(), "Sandybridge (OPENBLAS_CORETYPE)");
  EXPECT_STREQ(std::getenv("OPENBLAS_CORETYPE"), "Sandybridge");
  if (saved.empty()) {
    unsetenv("OPENBLAS_CORETYPE");
  } else {
    setenv("OPENBLAS_CORETYPE", saved.c_str(), 1);
  }
}

}  // namespace
}  // namespace ddp
