#include "backend/tiled_gemm.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <utility>
#include <vector>

#include "backend/register_tile.h"
#include "core/scratch.h"

namespace ddp {
namespace {
// Below this many multiply-adds a product is small (Note [tiled GEMM]).
constexpr int64_t kSmallMaxFlops = 64 * 64 * 64;

// With AVX2 (8 lanes, 16 registers) the input-gradient tiles hold a quarter of the batch columns
// AVX-512's do, and OpenBLAS's packed kernels were faster for that product on the AMD EPYC (Zen 3,
// AVX2 only) of benchmarks/results/kernel_choice_zen3.md. The weight gradient is tiled with both
// (it also lets one rank update inside backward, Note [update in backward]), and so is the forward
// product since its tiles meet every batch block while the weights are in cache.
#ifdef __AVX512F__
constexpr bool kSkinnyInputGrad = true;
#else
constexpr bool kSkinnyInputGrad = false;
#endif
}  // namespace

#ifdef DDP_SIMD_TILES
namespace tiles {

void transpose(const float* src, int64_t rows, int64_t cols, float* dst, bool add) {
  for (int64_t i = 0; i < rows; i += kLanes) {
    const int64_t block_rows = rows - i < kLanes ? rows - i : kLanes;
    for (int64_t j = 0; j < cols; j += kLanes) {
      const Mask col_mask = simd::first_lanes(cols - j);
      const bool whole_rows = cols - j >= kLanes;
      Vec block[kLanes];
      for (int r = 0; r < kLanes; ++r) {
        block[r] = r < block_rows ? simd::load_edge(src + (i + r) * cols + j, col_mask, whole_rows)
                                  : simd::zero();
      }
      simd::transpose_square(block);
      const int64_t block_cols = cols - j < kLanes ? cols - j : kLanes;
      const Mask row_mask = simd::first_lanes(block_rows);
      const bool whole = block_rows == kLanes;
      for (int c = 0; c < block_cols; ++c) {
        float* const out = dst + (j + c) * rows + i;
        simd::store_edge(
            out, row_mask, whole,
            add ? simd::add(simd::load_edge(out, row_mask, whole), block[c]) : block[c]);
      }
    }
  }
}

namespace {

// A (m, k) transposed, (k, m), into a buffer of this thread's that the next call reuses: the
// skinny products broadcast A's elements column by column, which the transpose makes adjacent.
const float* transposed(const float* a, int64_t m, int64_t k) {
  thread_local std::vector<float> a_t_buffer;
  float* const a_t = scratch(a_t_buffer, static_cast<size_t>(k * m));
  transpose(a, m, k, a_t);
  return a_t;
}

// Small products: B rows straight from memory (transposed first when stored as B^T), 4-row tiles.
// A product narrower than a vector (W1's 10 classes and 10 inputs: its last layer's forward and
// its first layer's weight gradient) is computed transposed, C^T = B^T A^T, and transposed back:
// its tiles then span m columns in whole vectors instead of one vector masked to n lanes (W1:
// ~4x fewer tile steps for those two products; see benchmarks/results/xeon/w1_narrow_products.md).
// Each element is the same chain of multiply-adds over p from zero, so C holds the same bits.
void small_product(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_row_stride,
                   int64_t a_col_stride, const float* b, bool b_transposed, float* c,
                   bool accumulate) {
  if (n < kLanes && m >= 2 * kLanes && !accumulate) {
    // A^T (k, m) row-major: A itself when it is stored transposed, else a transposed copy.
    const float* a_t = a_row_stride == 1 && a_col_stride == m ? a : transposed(a, m, k);
    thread_local std::vector<float> c_t_buffer;
    float* const c_t = scratch(c_t_buffer, static_cast<size_t>(n * m));
    small_product(n, m, k, b, b_transposed ? k : 1, b_transposed ? 1 : n, a_t, false, c_t, false);
    transpose(c_t, n, m, c);
    return;
  }
  if (b_transposed) {
    // The tiles stream rows of B; a transposed copy costs k*n moves against m*n*k FMAs.
    thread_local std::vector<float> b_rows_buffer;
    float* const b_rows = scratch(b_rows_buffer, static_cast<size_t>(k * n));
    transpose(b, n, k, b_rows);
    b = b_rows;
  }
  constexpr int kRows = kSmallRows;  // B reused kRows times per load
  constexpr int64_t kWidth = kSmallVectors * kLanes;
  for (int64_t j = 0; j < n; j += kWidth) {
    const ColumnBlock block = column_block(std::min(kWidth, n - j));
    const TileFn full = tile_for<kRows>(block.vectors);
    const TileFn single = tile_for<1>(block.vectors);
    int64_t i = 0;
    for (; i + kRows <= m; i += kRows) {
      full(k, a + i * a_row_stride, a_row_stride, a_col_stride, b + j, n, c + i * n + j, n,
           block.last_mask, accumulate);
    }
    for (; i < m; ++i) {
      single(k, a + i * a_row_stride, a_row_stride, a_col_stride, b + j, n, c + i * n + j, n,
             block.last_mask, accumulate);
    }
  }
}

// A (m, k) as blocks of `width` rows, each transposed into (k, width) and stored after the
// previous one (block j at j * k), in a buffer of this thread's: the forward product's tiles read
// a block's columns as adjacent vectors, row after row.
const float* transposed_column_blocks(const float* a, int64_t m, int64_t k, int64_t width) {
  thread_local std::vector<float> blocks_buffer;
  float* const blocks = scratch(blocks_buffer, static_cast<size_t>(k * m));
  for (int64_t j = 0; j < m; j += width) {
    transpose(a + j * k, std::min(width, m - j), k, blocks + j * k);
  }
  return blocks;
}

// C (m, n) = A (m, k) B (n, k)^T with m the batch (a dense layer's forward product), computed as
// C^T = B A^T: rows of B (weights, read in storage order) against blocks of A^T's columns. A tile's
// weight rows meet every column block before the next rows are read, so the weights stream from
// memory once however many blocks the batch spans (with AVX2, four for a batch of 64). On W3's
// 64 x 2048 x 2048 on Zen 3: ~40 GFLOP/s streaming them once per block, 74 in this order, OpenBLAS
// 53 (benchmarks/results/forward_tiles_zen3.md). The tiles store C^T's rows whole into a buffer of
// this thread's, transposed into C at the end: stored straight into C, each tile's elements went
// one by one to rows of C n floats apart (for W3, 8 KB: all in one L1 set), and the product took
// 1.11x as long (benchmarks/results/xeon/forward_store_input_grad_prefetch.md).
void forward_product(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c,
                     bool accumulate) {
  constexpr int kRows = kForwardRows;
  constexpr int64_t kWidth = kForwardVectors * kLanes;
  const float* blocks = transposed_column_blocks(a, m, k, kWidth);
  thread_local std::vector<float> c_t_buffer;
  float* const c_t = scratch(c_t_buffer, static_cast<size_t>(n * m));  // (n, m)
  auto column_blocks = [&](TileFn (*tile_fn_for)(int), int64_t i) {
    for (int64_t j = 0; j < m; j += kWidth) {
      const int64_t width = std::min(kWidth, m - j);
      const ColumnBlock block = column_block(width);
      tile_fn_for(block.vectors)(k, b + i * k, k, 1, blocks + j * k, width, c_t + i * m + j, m,
                                 block.last_mask, false);
    }
  };
  int64_t i = 0;
  for (; i + kRows <= n; i += kRows) column_blocks(tile_for<kRows>, i);
  for (; i + 4 <= n; i += 4) column_blocks(tile_for<4>, i);  // 10 classes: 6 + 4 rows
  for (; i < n; ++i) column_blocks(tile_for<1>, i);
  transpose(c_t, n, m, c, accumulate);
}

// C (m, n) = A (m, k) B (k, n) with m the batch (a dense layer's input gradient, B the weights):
// depth blocks of rows of B (192 read in place, 64 packed), each cut into column blocks that every
// row block of A meets.
// Weights from memory (W3's 16 MB) are read where they are stored: their rows are 8 KB apart, so
// a column block's lines share a few L1 sets and the tiles read them from L2, where the next
// block's lines are fetched by the tiles (too many streams for the hardware prefetcher), a line
// every few steps: fetched in a burst before each tile, the lines from memory held L1's fill
// buffers while the tile's loads from L2 waited, and the product ran at 0.8 of the forward's
// rate on Zen 4 (benchmarks/results/zen4/spread_fetches.md).
// Rows that far apart are also beyond the L1 stride prefetcher, so each tile step prefetches the
// row kInPlaceAhead steps ahead into L1 (W3's shape 1.06-1.11x as fast; 2 to 6 steps ahead alike;
// benchmarks/results/xeon/forward_store_input_grad_prefetch.md). Weights that stay in L2 (W2's)
// are copied block by block into an L1 panel that all the block's tiles read. Measured on a Xeon
// (benchmarks/results/xeon/input_grad_in_place.md), W3's 64 x 2048 x 2048: read in place 1.09x
// as fast as packed, whose copy was a third of the product's time (perf: 9.8% of W3's step);
// W2's 128 x 256 x 512: packed 1.1x as fast as in place; 8 x 3 tiles (a batch of 64 or 128 in
// whole tiles) as fast as 6 x 4 packed and faster in place; depth 64 beat 128 and 256. Since the
// fetches are spread, blocks of 192 rows read in place beat 64 on Zen 4 (W3's shape 0.94-0.97x
// the time, 128 and 256 rows 0.97-0.98x: fewer loads and stores of C's sums per tile;
// benchmarks/results/zen4/spread_fetches.md); packed panels keep 64 rows, a 12 KB panel in L1.
// Beside weights read in place, A's transpose is packed so that the broadcasts of a step are
// adjacent: A's own rows are as far apart as the weights' (W3: 8 KB) and would share their L1
// sets (64 x 2048 x 2048: 125-129 GFLOP/s reading A itself, 130-132 from the transpose). Beside a
// packed panel the tiles broadcast from A's rows where they are, which saves the transpose (W2's
// 128 x 512 x 256: 174-186 GFLOP/s against 169-174; benchmarks/results/xeon/input_grad_a_rows.md).
// Only columns [first_col, end_col) of C, for threads that share the product
// (tiled_input_grad_columns).
void input_grad_product(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c,
                        bool accumulate, int64_t first_col, int64_t end_col) {
  constexpr int64_t kPackedDepth = 64, kInPlaceDepth = 192;
  constexpr int kRows = kInputGradRows;
  constexpr int64_t kWidth = kInputGradVectors * kLanes;
  constexpr int kInPlaceAhead = 4;
  // Smaller weights are in L2: a packed copy of each block in L1 serves its tiles better.
  const bool in_place = static_cast<size_t>(k * n) * sizeof(float) > kUncachedWeightBytes;
  const float* const a_t = in_place ? transposed(a, m, k) : nullptr;
  const int64_t depth_block = in_place ? kInPlaceDepth : kPackedDepth;
  alignas(64) float panel[kPackedDepth * kWidth];
  // Read in place, each column block of C is summed in a buffer of this thread's, its rows kWidth
  // floats apart, and copied into C at the end: a tile's rows of C are then adjacent lines, not
  // lines n floats apart that share L1 sets, loaded and stored again by every depth block's tiles
  // (W3's shape: 1.11-1.17x as fast with the prefetch above, 1.06-1.11x with the prefetch alone;
  // W2's packed product was 0.96x with it, so it sums in C).
  const int64_t block_floats = m * kWidth;
  thread_local std::vector<float> c_blocks_buffer;
  float* const c_blocks =
      in_place
          ? scratch(c_blocks_buffer,
                    static_cast<size_t>((end_col - first_col + kWidth - 1) / kWidth * block_floats))
          : nullptr;
  // Where the tiles sum column block j of C, and how far apart its rows are.
  const auto sums_of = [&](int64_t j) -> std::pair<float*, int64_t> {
    if (!in_place) return {c + j, n};
    return {c_blocks + (j - first_col) / kWidth * block_floats, kWidth};
  };
  const auto copy_sums = [&](bool into_c) {
    for (int64_t j = first_col; j < end_col; j += kWidth) {
      const int64_t width = std::min(kWidth, end_col - j);
      float* const sums = sums_of(j).first;
      for (int64_t i = 0; i < m; ++i) {
        float* const row_of_c = c + i * n + j;
        float* const row_of_sums = sums + i * kWidth;
        if (into_c) {
          std::copy(row_of_sums, row_of_sums + width, row_of_c);
        } else {
          std::copy(row_of_c, row_of_c + width, row_of_sums);
        }
      }
    }
  };
  if (in_place && accumulate) copy_sums(false);  // the sums start from C, as in C they would
  const int64_t tiles = std::max<int64_t>(1, m / kRows);
  for (int64_t p0 = 0; p0 < k; p0 += depth_block) {
    const int64_t depth = std::min(depth_block, k - p0);
    const float* rows = b + p0 * n;
    const int64_t fetch_per_tile = (depth + tiles - 1) / tiles;
    for (int64_t j = first_col; j < end_col; j += kWidth) {
      const int64_t width = std::min(kWidth, end_col - j);
      const int64_t next_width = std::min(kWidth, end_col - j - width);
      // The tile-th tile's share of the next block's lines: some of its rows, spread over the
      // tile's steps (Note [tiled GEMM] and tile_body).
      const auto next_block_of_tile = [&](int64_t tile) {
        const int64_t fetched = tile * fetch_per_tile;
        if (next_width <= 0 || fetched >= depth) return LineFetch{};
        const int64_t fetch_rows = std::min(fetch_per_tile, depth - fetched);
        const int64_t row_lines = (next_width * int64_t{sizeof(float)} + 63) / 64;
        return LineFetch{.start = reinterpret_cast<const char*>(rows + fetched * n + j + width),
                         .rows = fetch_rows,
                         .row_lines = row_lines,
                         .row_stride = n * int64_t{sizeof(float)},
                         .every = std::max<int64_t>(1, depth / (fetch_rows * row_lines))};
      };
      const bool add = accumulate || p0 > 0;
      const auto [sums, sums_stride] = sums_of(j);
      if (in_place) {
        panel_rows<kRows, kInPlaceAhead>(m, depth, a_t + p0 * m, 1, m, rows + j, n, sums,
                                         sums_stride, width, add, next_block_of_tile);
      } else {
        pack_panel(rows, n, depth, j, width, kWidth, panel);
        // Weights in L2 or L3: no fetches (W2's 128 x 512 x 256 0.985-0.99x the time without
        // them, spread_fetches.md).
        panel_rows<kRows>(m, depth, a + p0, k, 1, panel, kWidth, sums, sums_stride, width, add);
      }
    }
  }
  if (in_place) copy_sums(true);
}

}  // namespace
}  // namespace tiles

using namespace tiles;

bool tiled_gemm_available() { return true; }
const char* tiled_gemm_isa() { return simd::kName; }
int64_t tiled_row_grain() { return std::lcm(kForwardRows, kWeightGradRows); }
int64_t tiled_column_grain() { return kInputGradVectors * kLanes; }

void tiled_input_grad_columns(int64_t m, int64_t n, int64_t k, const float* a, const float* b,
                              float* c, int64_t first_col, int64_t end_col) {
  if (first_col < end_col) input_grad_product(m, n, k, a, b, c, false, first_col, end_col);
}

void tiled_gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const float* a,
                const float* b, float* c, bool accumulate) {
  if (is_small_product(m, n, k) || (transpose_a && transpose_b)) {
    small_product(m, n, k, a, transpose_a ? 1 : k, transpose_a ? m : 1, b, transpose_b, c,
                  accumulate);
  } else if (!transpose_a && transpose_b) {
    forward_product(m, n, k, a, b, c, accumulate);
  } else if (!transpose_a) {
    input_grad_product(m, n, k, a, b, c, accumulate, 0, n);
  } else {
    weight_grad_product(m, n, k, a, b, c, accumulate);
  }
}

#else

bool tiled_gemm_available() { return false; }
const char* tiled_gemm_isa() { return ""; }
int64_t tiled_row_grain() { return 1; }
int64_t tiled_column_grain() { return 1; }

void tiled_input_grad_columns(int64_t, int64_t, int64_t, const float*, const float*, float*,
                              int64_t, int64_t) {
  throw std::logic_error("tiled_input_grad_columns: not compiled for this target (needs AVX2)");
}

void tiled_gemm(bool, bool, int64_t, int64_t, int64_t, const float*, const float*, float*, bool) {
  throw std::logic_error("tiled_gemm: not compiled for this target (needs AVX2 + FMA)");
}

#endif

bool is_small_product(int64_t m, int64_t n, int64_t k) { return m * n * k < kSmallMaxFlops; }

bool is_skinny_product(bool transpose_a, bool transpose_b, int64_t m, int64_t, int64_t k) {
  if (!transpose_a) return (transpose_b || kSkinnyInputGrad) && m <= kSkinnyMaxBatch;
  return !transpose_b && k <= kSkinnyMaxBatch;  // weight gradient
}

bool tiled_kernels_take(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k) {
  return tiled_gemm_available() &&
         (is_small_product(m, n, k) || is_skinny_product(transpose_a, transpose_b, m, n, k));
}

const char* tiled_skinny_products() {
  return kSkinnyInputGrad ? "batch" : "forward products and weight gradients of batch";
}

}  // namespace ddp
