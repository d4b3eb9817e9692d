// The CPU backend's dense layers against a naive double-precision reference, at shapes that take
// each GEMM path: the register-tiled small kernel (with row and column tails, and more than one
// 64-column tile) and BLAS/Eigen for large products. See Note [small GEMM].

#include <gtest/gtest.h>

#include <cmath>
#include <tuple>

#include "backend/backend.h"
#include "backend/small_gemm.h"
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
class SmallGemm : public ::testing::TestWithParam<Shape> {};

TEST_P(SmallGemm, MatchesReferenceForEveryOperandLayout) {
  if (!small_gemm_available()) GTEST_SKIP() << "small GEMM kernel needs an AVX-512F build";
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
      small_gemm(m, n, k, a.data(), rs, cs, b_data, b_transposed, c.data(), false);
      expect_close(c, want, k);

      // accumulate adds to what is there: C0 + AB.
      const std::vector<float> c0 = random_vector(m * n, 3);
      c = c0;
      small_gemm(m, n, k, a.data(), rs, cs, b_data, b_transposed, c.data(), true);
      std::vector<double> want_sum = want;
      for (size_t i = 0; i < want_sum.size(); ++i) want_sum[i] += c0[i];
      expect_close(c, want_sum, k);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, SmallGemm,
                         ::testing::Values(Shape{32, 64, 10}, Shape{32, 10, 64}, Shape{64, 10, 32},
                                           Shape{1, 1, 1}, Shape{5, 17, 3}, Shape{7, 130, 9},
                                           Shape{9, 48, 1}, Shape{3, 65, 20}, Shape{4, 33, 40},
                                           Shape{2, 64, 64}));

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
                          batch, in, out, Activation::kLinear, /*accumulate=*/true);
  std::vector<double> want_dw = reference(out, in, batch, dy_copy, 1, out, x);
  for (size_t i = 0; i < want_dw.size(); ++i) want_dw[i] += dw0[i];
  expect_close(dw, want_dw, batch);
  expect_close(dx, reference(batch, in, out, dy_copy, out, 1, w), out);
}

INSTANTIATE_TEST_SUITE_P(Shapes, DenseGemmPaths,
                         ::testing::Values(Shape{32, 10, 64}, Shape{32, 64, 64}, Shape{32, 64, 10},
                                           Shape{3, 7, 5}, Shape{33, 70, 90},
                                           Shape{128, 784, 512}));

}  // namespace
}  // namespace ddp
