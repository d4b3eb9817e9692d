// Note [bf16 products]: the rounding, and the dense layers' products with bf16 operands (oneDNN's
// where this CPU has bf16 units, the fp32 kernels' on widened operands everywhere) against a
// double-precision reference over the rounded operands.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backend/backend.h"
#include "backend/bf16_products.h"
#include "backend/window2d.h"
#include "conv_by_definition.h"
#include "core/thread_team.h"
#include "finite_differences.h"

namespace ddp {
namespace {

using cpu::Bf16Products;
using cpu::from_bf16;
using cpu::to_bf16;

uint16_t bf16_bits(uint32_t float_bits) {
  float value;
  std::memcpy(&value, &float_bits, sizeof value);
  return to_bf16(value);
}

TEST(Bf16Rounding, NearestWithTiesToEven) {
  EXPECT_EQ(bf16_bits(0x3f800000u), 0x3f80);  // 1 is exact
  EXPECT_EQ(bf16_bits(0x3f807fffu), 0x3f80);  // below the half: down
  EXPECT_EQ(bf16_bits(0x3f808001u), 0x3f81);  // above it: up
  EXPECT_EQ(bf16_bits(0x3f808000u), 0x3f80);  // a tie goes to the even neighbour: down
  EXPECT_EQ(bf16_bits(0x3f818000u), 0x3f82);  // ... or up
  EXPECT_EQ(bf16_bits(0xbf818000u), 0xbf82);  // the sign apart
  EXPECT_EQ(bf16_bits(0x7f7fffffu), 0x7f80);  // the largest float rounds to infinity
  EXPECT_EQ(to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
  EXPECT_TRUE(std::isnan(from_bf16(bf16_bits(0x7f800001u))));  // a NaN whose payload rounds away
  for (float x : random_vector(1000, 7, -100, 100)) {
    const float rounded = from_bf16(to_bf16(x));
    EXPECT_LE(std::fabs(rounded - x), std::ldexp(std::fabs(x), -8)) << x;  // 8 significant bits
  }
}

// A naive fp32 product (double sums) for the products that widen their operands: C (m, n) =
// op(A) op(B), A (m, k) or (k, m), B (k, n) or (n, k), row-major.
void naive_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float* a, const float* b,
                float* c, bool accumulate) {
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double sum = accumulate ? c[i * n + j] : 0.0;
      for (int64_t p = 0; p < k; ++p)
        sum += double(ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]);
      c[i * n + j] = static_cast<float>(sum);
    }
  }
}

std::vector<float> rounded(const std::vector<float>& values) {
  std::vector<float> out(values.size());
  for (size_t i = 0; i < values.size(); ++i) out[i] = from_bf16(to_bf16(values[i]));
  return out;
}

// The three products of a layer: batch 37, 1000 inputs, 600 outputs (the forward in pieces of
// 256, 256 and 88 columns, the input gradient in 3 x 256 and 232, the weight gradient in blocks of
// 64 rows, the last of 24).
constexpr int64_t kBatch = 37, kIn = 1000, kOut = 600;

struct Products {
  std::vector<float> y, dx, dw;
};

// The reference: naive double sums over the rounded operands.
Products reference(const std::vector<float>& x, const std::vector<float>& w,
                   const std::vector<float>& dy, bool round) {
  const auto rx = round ? rounded(x) : x, rw = round ? rounded(w) : w,
             rdy = round ? rounded(dy) : dy;
  Products p{std::vector<float>(kBatch * kOut), std::vector<float>(kBatch * kIn),
             std::vector<float>(kOut * kIn)};
  naive_gemm(false, true, kBatch, kOut, kIn, rx.data(), rw.data(), p.y.data(), false);
  naive_gemm(false, false, kBatch, kIn, kOut, rdy.data(), rw.data(), p.dx.data(), false);
  naive_gemm(true, false, kOut, kIn, kBatch, rdy.data(), rx.data(), p.dw.data(), false);
  return p;
}

// Largest difference, relative to the largest reference value.
template <typename Want>
double relative_diff(const std::vector<float>& got, const std::vector<Want>& want) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff = std::max(diff, std::fabs(double(got[i]) - double(want[i])));
    scale = std::max(scale, std::fabs(double(want[i])));
  }
  return diff / scale;
}

class Bf16Paths : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam() && !cpu::native_bf16_products())
      GTEST_SKIP() << "no bf16 units on this CPU for oneDNN (" << cpu::bf16_products_description()
                   << ")";
  }
};

TEST_P(Bf16Paths, ProductsOfTheRoundedOperandsSummedInFp32) {
  ThreadTeam team(1);
  Bf16Products products(naive_gemm, GetParam());
  const auto x = random_vector(kBatch * kIn, 1), w = random_vector(kOut * kIn, 2),
             dy = random_vector(kBatch * kOut, 3);
  Products got{std::vector<float>(kBatch * kOut), std::vector<float>(kBatch * kIn, 9.0f),
               std::vector<float>(kOut * kIn)};
  products.forward(team, x.data(), w.data(), got.y.data(), kBatch, kIn, kOut);
  products.input_grad(team, dy.data(), w.data(), got.dx.data(), kBatch, kIn, kOut);
  // Rows 3 to 149 in blocks, each where it belongs; rows 0-2 untouched.
  std::vector<float> blocks(kOut * kIn, -7.0f);
  int64_t next = 3;
  products.weight_grad(team, dy.data(), x.data(), kBatch, kIn, kOut, 3, kOut,
                       [&](int64_t first, int64_t rows, const float* block) {
                         EXPECT_EQ(first, next);  // in order, each row once
                         next = first + rows;
                         std::copy_n(block, rows * kIn, blocks.begin() + first * kIn);
                       });
  EXPECT_EQ(next, kOut);
  products.weight_grad(team, dy.data(), x.data(), got.dw.data(), kBatch, kIn, kOut, false);

  const Products want = reference(x, w, dy, true), unrounded = reference(x, w, dy, false);
  const char* names[] = {"y", "dx", "dw"};
  const std::vector<float>* gots[] = {&got.y, &got.dx, &got.dw};
  const std::vector<float>* wants[] = {&want.y, &want.dx, &want.dw};
  const std::vector<float>* plains[] = {&unrounded.y, &unrounded.dx, &unrounded.dw};
  for (int i = 0; i < 3; ++i) {
    // fp32 sums of exact products: a few units in the last place of the largest term.
    EXPECT_LT(relative_diff(*gots[i], *wants[i]), 2e-6) << names[i];
    // ... where fp32 operands would be ~2^-9 away: the rounding is in force.
    EXPECT_GT(relative_diff(*gots[i], *plains[i]), 1e-4) << names[i];
  }
  for (int64_t i = 0; i < 3 * kIn; ++i) ASSERT_EQ(blocks[i], -7.0f) << i;
  std::vector<float> block_rows(blocks.begin() + 3 * kIn, blocks.end()),
      want_rows(want.dw.begin() + 3 * kIn, want.dw.end());
  EXPECT_LT(relative_diff(block_rows, want_rows), 2e-6);

  // accumulate adds the product to what is there.
  std::vector<float> sum = random_vector(kOut * kIn, 4), want_sum = sum;
  products.weight_grad(team, dy.data(), x.data(), sum.data(), kBatch, kIn, kOut, true);
  for (size_t i = 0; i < want_sum.size(); ++i) want_sum[i] += want.dw[i];
  EXPECT_LT(relative_diff(sum, want_sum), 2e-6);
}

// The input gradient multiplies the weights as the last forward read them (backward updates a
// layer's weights after its input gradient), and converts them itself without a forward; each
// forward converts them again.
TEST_P(Bf16Paths, InputGradientReadsTheWeightsOfTheForward) {
  const auto x = random_vector(kBatch * kIn, 1), dy = random_vector(kBatch * kOut, 3);
  std::vector<float> w = random_vector(kOut * kIn, 2), y(kBatch * kOut), dx(kBatch * kIn),
                     fresh_dx(kBatch * kIn);
  ThreadTeam team(1);
  Bf16Products products(naive_gemm, GetParam());
  products.forward(team, x.data(), w.data(), y.data(), kBatch, kIn, kOut);
  const std::vector<float> forward_w = w;
  for (float& v : w) v *= 3;
  products.input_grad(team, dy.data(), w.data(), dx.data(), kBatch, kIn, kOut);
  Bf16Products without_forward(naive_gemm, GetParam());
  without_forward.input_grad(team, dy.data(), forward_w.data(), fresh_dx.data(), kBatch, kIn, kOut);
  EXPECT_EQ(dx, fresh_dx);
  EXPECT_LT(relative_diff(dx, reference(x, forward_w, dy, true).dx), 2e-6);
  // The next forward reads the weights anew.
  products.forward(team, x.data(), w.data(), y.data(), kBatch, kIn, kOut);
  EXPECT_LT(relative_diff(y, reference(x, w, dy, true).y), 2e-6);
}

// A rank's threads share each product's pieces (Note [bf16 products]): three threads give one
// thread's bits, the weight gradient's blocks handed over from several threads at once.
TEST_P(Bf16Paths, ThreadsShareThePiecesAndGiveOneThreadsBits) {
  const auto x = random_vector(kBatch * kIn, 1), w = random_vector(kOut * kIn, 2),
             dy = random_vector(kBatch * kOut, 3), start = random_vector(kOut * kIn, 4);
  const auto run = [&](int threads) {
    ThreadTeam team(threads);
    Bf16Products products(naive_gemm, GetParam());
    Products got{std::vector<float>(kBatch * kOut), std::vector<float>(kBatch * kIn), start};
    std::vector<float> blocks(kOut * kIn, -7.0f);
    std::atomic<int64_t> rows_handed{0};
    products.forward(team, x.data(), w.data(), got.y.data(), kBatch, kIn, kOut);
    products.input_grad(team, dy.data(), w.data(), got.dx.data(), kBatch, kIn, kOut);
    products.weight_grad(team, dy.data(), x.data(), kBatch, kIn, kOut, 5, kOut,
                         [&](int64_t first, int64_t rows, const float* block) {
                           rows_handed += rows;
                           std::copy_n(block, rows * kIn, blocks.begin() + first * kIn);
                         });
    EXPECT_EQ(rows_handed, kOut - 5);
    products.weight_grad(team, dy.data(), x.data(), got.dw.data(), kBatch, kIn, kOut, true);
    return std::make_pair(got, blocks);
  };
  const auto [one, one_blocks] = run(1);
  const auto [three, three_blocks] = run(3);
  EXPECT_EQ(three.y, one.y);
  EXPECT_EQ(three.dx, one.dx);
  EXPECT_EQ(three.dw, one.dw);
  EXPECT_EQ(three_blocks, one_blocks);
  // ... and those are the products, every piece where it belongs.
  const Products want = reference(x, w, dy, true);
  std::vector<float> want_sum = start;
  for (size_t i = 0; i < want_sum.size(); ++i) want_sum[i] += want.dw[i];
  EXPECT_LT(relative_diff(three.y, want.y), 2e-6);
  EXPECT_LT(relative_diff(three.dx, want.dx), 2e-6);
  EXPECT_LT(relative_diff(three.dw, want_sum), 2e-6);
}

INSTANTIATE_TEST_SUITE_P(OneDnnAndWidened, Bf16Paths, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "OneDnn" : "Widened"; });

// Through the CPU backend: bias, activation and its gradient, the bias gradient, and the weight
// gradient handed over in blocks (the update in backward's path) or stored, against the
// reference; and the backend names what multiplies.
TEST(Bf16Backend, DenseLayerWithBf16Products) {
  auto backend = make_cpu_backend(false, 1, MatmulPrecision::kBf16);
  EXPECT_NE(backend->name().find("bf16 operands"), std::string::npos) << backend->name();
  const auto x = random_vector(kBatch * kIn, 1), w = random_vector(kOut * kIn, 2),
             b = random_vector(kOut, 5), upstream = random_vector(kBatch * kOut, 3);
  std::vector<float> y(kBatch * kOut), dy = upstream, dx(kBatch * kIn), dw(kOut * kIn), db(kOut),
                                       blocks(kOut * kIn);
  backend->dense_forward(x.data(), w.data(), b.data(), y.data(), kBatch, kIn, kOut,
                         Activation::kTanh);
  backend->dense_backward(x.data(), w.data(), y.data(), dy.data(), dx.data(), dw.data(), db.data(),
                          kBatch, kIn, kOut, Activation::kTanh, false, nullptr);
  std::vector<float> dz = upstream, db_rows(kOut);
  for (size_t i = 0; i < dz.size(); ++i) dz[i] *= 1 - y[i] * y[i];  // tanh' from its output
  const GradBlockConsumer consume{.consume = [&](const GradBlock& block) {
    for (int64_t r = 0; r < block.rows; ++r)
      std::copy_n(block.data + r * block.cols, block.cols,
                  blocks.begin() + (block.first_row + r) * kIn + block.first_col);
  }};
  backend->dense_weight_grad_rows(x.data(), dz.data(), kBatch, kIn, kOut, 0, kOut, db_rows.data(),
                                  consume);

  Products want = reference(x, w, dz, true);
  for (int64_t r = 0; r < kBatch; ++r)
    for (int64_t c = 0; c < kOut; ++c)
      want.y[r * kOut + c] = std::tanh(want.y[r * kOut + c] + b[c]);
  // The fp32 kernels' sums of 1000 terms where the CPU widens the operands (4.4e-6 seen), oneDNN's
  // elsewhere; dx through tanh's gradient of y.
  EXPECT_LT(relative_diff(y, want.y), 2e-5);
  EXPECT_LT(relative_diff(dx, want.dx), 2e-5);
  EXPECT_LT(relative_diff(dw, want.dw), 2e-5);
  EXPECT_LT(relative_diff(blocks, want.dw), 2e-5);
  std::vector<float> want_db(kOut, 0.0f);
  for (int64_t r = 0; r < kBatch; ++r)
    for (int64_t c = 0; c < kOut; ++c) want_db[c] += dz[r * kOut + c];
  EXPECT_LT(relative_diff(db, want_db), 1e-5);
}

// Convolutions of 8 or more channels multiply bf16 operands on oneDNN where the CPU has bf16 units:
// forward, input and weight gradients (added to with accumulate) against the definition over the
// rounded operands; the bias gradient sums the fp32 output gradient.
TEST(Bf16Backend, ConvolutionsMultiplyBf16Operands) {
  if (!cpu::native_bf16_products())
    GTEST_SKIP() << "convolutions stay fp32 without bf16 units ("
                 << cpu::bf16_products_description() << ")";
  auto backend = make_cpu_backend(false, 1, MatmulPrecision::kBf16);
  EXPECT_NE(backend->name().find("oneDNN convolutions (bf16"), std::string::npos)
      << backend->name();
  const int64_t batch = 3, filters = 24;
  const Window2d win = Window2d::make(9, 7, 16, 3, 3, 1, 1, true);  // Winograd's shape in fp32
  const auto x = random_vector(batch * 9 * 7 * 16, 1), w = random_vector(filters * 9 * 16, 2),
             b = random_vector(filters, 3),
             dz = random_vector(batch * win.out_pixels() * filters, 4);
  const ConvReference want = by_definition(rounded(x), rounded(w), b, rounded(dz), win, batch,
                                           filters),
                      plain = by_definition(x, w, b, dz, win, batch, filters);
  std::vector<float> y(dz.size()), dy = dz, dx(x.size()), dw(w.size()), db(filters);
  ASSERT_TRUE(backend->conv2d_forward(x.data(), w.data(), b.data(), y.data(), batch, win, filters,
                                      Activation::kLinear));
  ASSERT_TRUE(backend->conv2d_backward(x.data(), w.data(), y.data(), dy.data(), dx.data(),
                                       dw.data(), db.data(), batch, win, filters,
                                       Activation::kLinear, false));
  EXPECT_LT(relative_diff(y, want.y), 2e-6);
  EXPECT_LT(relative_diff(dx, want.dx), 2e-6);
  EXPECT_LT(relative_diff(dw, want.dw), 2e-6);
  EXPECT_LT(relative_diff(db, plain.db), 1e-6);
  EXPECT_GT(relative_diff(y, plain.y), 1e-4);  // the rounding is in force
  EXPECT_GT(relative_diff(dw, plain.dw), 1e-4);
  ASSERT_TRUE(backend->conv2d_backward(x.data(), w.data(), y.data(), dy.data(), nullptr, dw.data(),
                                       db.data(), batch, win, filters, Activation::kLinear, true));
  std::vector<double> twice = want.dw;
  for (double& v : twice) v *= 2;
  EXPECT_LT(relative_diff(dw, twice), 2e-6);
}

}  // namespace
}  // namespace ddp
