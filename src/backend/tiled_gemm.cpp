#include "backend/tiled_gemm.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <vector>

#include "core/simd.h"

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
namespace {

using simd::kLanes;
using simd::Mask;
using simd::Vec;

// Tile shapes, rows x vectors of C, per vector width (Note [SIMD width]). AVX-512 has 32
// registers: up to 24 accumulators beside the B vectors. AVX2 has 16: 12 accumulators, 2 B
// vectors and a broadcast.
#ifdef __AVX512F__
constexpr int kSmallRows = 4, kSmallVectors = 4;
constexpr int kForwardRows = 6, kForwardVectors = 4;
constexpr int kInputGradRows = 6, kInputGradVectors = 4;
constexpr int kWeightGradRows = 8, kWeightGradVectors = 3;
#else
constexpr int kSmallRows = 4, kSmallVectors = 2;
constexpr int kForwardRows = 6, kForwardVectors = 2;
constexpr int kInputGradRows = 6, kInputGradVectors = 2;
constexpr int kWeightGradRows = 6, kWeightGradVectors = 2;
#endif
constexpr int kMaxVectors =
    std::max({kSmallVectors, kForwardVectors, kInputGradVectors, kWeightGradVectors});

// The scratch block of tiled_weight_grad_blocks: in L2 next to the update's streams.
constexpr int64_t kBlockBytes = int64_t{128} << 10;
// Rows of C per block for a row length of n: a multiple of the row tile, about kBlockBytes.
int64_t rows_per_block(int64_t n) {
  constexpr int64_t kTile = kWeightGradRows;
  return std::max<int64_t>(kTile, kBlockBytes / (kTile * 4 * std::max<int64_t>(n, 1)) * kTile);
}

// One tile of C: `Rows` rows by `Vectors` vectors, the last one masked to the columns that
// exist. Compile-time sizes let the accumulators live in registers for the whole k loop. With
// `StoreTransposed` the tile is C^T's: element (r, col) goes to c[col * ldc + r].
template <int Rows, int Vectors, bool StoreTransposed>
void tile(int64_t k, const float* a, int64_t a_row_stride, int64_t a_col_stride, const float* b,
          int64_t ldb, float* c, int64_t ldc, Mask last_mask, bool accumulate) {
  const bool last_whole = simd::lanes_in(last_mask) == kLanes;
  // Only the last vector of a row may be partial.
  auto load_b = [&](const float* p, int v) {
    return v + 1 < Vectors ? simd::load(p) : simd::load_edge(p, last_mask, last_whole);
  };
  Vec acc[Rows][Vectors];
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < Vectors; ++v) {
      acc[r][v] =
          accumulate && !StoreTransposed ? load_b(c + r * ldc + v * kLanes, v) : simd::zero();
    }
  }
  auto k_loop = [&](int64_t row_stride, int64_t col_stride) {
    for (int64_t p = 0; p < k; ++p) {
      Vec bv[Vectors];
#pragma GCC unroll 4
      for (int v = 0; v < Vectors; ++v) bv[v] = load_b(b + p * ldb + v * kLanes, v);
#pragma GCC unroll 8
      for (int r = 0; r < Rows; ++r) {
        const Vec av = simd::broadcast(a[r * row_stride + p * col_stride]);
#pragma GCC unroll 4
        for (int v = 0; v < Vectors; ++v) acc[r][v] = simd::fma(av, bv[v], acc[r][v]);
      }
    }
  };
  // A packed tile by tile (the weight gradient's slabs): constant strides free the registers that
  // would hold them, which AVX2's tiles otherwise reload from the stack on every step.
  if (a_row_stride == 1 && a_col_stride == Rows) {
    k_loop(1, Rows);
  } else {
    k_loop(a_row_stride, a_col_stride);
  }
  if constexpr (StoreTransposed) {
    // Fully unrolled, like every loop over acc: an accumulator indexed at run time would live
    // on the stack, stored back on every step of the k loop.
    alignas(64) float rows[Rows][Vectors * kLanes];
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
      for (int v = 0; v < Vectors; ++v) simd::store(&rows[r][v * kLanes], acc[r][v]);
    }
    const int cols = (Vectors - 1) * kLanes + simd::lanes_in(last_mask);
    for (int col = 0; col < cols; ++col) {
      float* out = c + col * ldc;
      for (int r = 0; r < Rows; ++r) out[r] = accumulate ? out[r] + rows[r][col] : rows[r][col];
    }
  } else {
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
      for (int v = 0; v < Vectors; ++v) {
        float* out = c + r * ldc + v * kLanes;
        if (v + 1 < Vectors) {
          simd::store(out, acc[r][v]);
        } else {
          simd::store_edge(out, last_mask, last_whole, acc[r][v]);
        }
      }
    }
  }
}

// dst (cols, rows) = src (rows, cols)^T, both row-major, in square blocks of kLanes; masked loads
// and stores cover the edges.
void transpose(const float* src, int64_t rows, int64_t cols, float* dst) {
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
      for (int c = 0; c < block_cols; ++c) {
        simd::store_edge(dst + (j + c) * rows + i, row_mask, block_rows == kLanes, block[c]);
      }
    }
  }
}

using TileFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*,
                        int64_t, Mask, bool);

template <int Rows, bool StoreTransposed = false>
TileFn tile_for(int vectors) {
  switch (vectors) {
    case 1:
      return tile<Rows, 1, StoreTransposed>;
    case 2:
      return tile<Rows, 2, StoreTransposed>;
    case 3:
      return tile<Rows, std::min(3, kMaxVectors), StoreTransposed>;
    default:
      return tile<Rows, std::min(4, kMaxVectors), StoreTransposed>;
  }
}

// Column block [j, j + width) of C as whole vectors and the mask of the last one.
struct ColumnBlock {
  int vectors;
  Mask last_mask;
};
ColumnBlock column_block(int64_t width) {
  const int vectors = static_cast<int>((width + kLanes - 1) / kLanes);
  return {vectors, simd::first_lanes(width - (vectors - 1) * kLanes)};
}

// Small products: B rows straight from memory (transposed first when stored as B^T), 4-row tiles.
void small_product(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_row_stride,
                   int64_t a_col_stride, const float* b, bool b_transposed, float* c,
                   bool accumulate) {
  if (b_transposed) {
    // The tiles stream rows of B; a transposed copy costs k*n moves against m*n*k FMAs.
    thread_local std::vector<float> b_rows;
    b_rows.resize(static_cast<size_t>(k * n));
    transpose(b, n, k, b_rows.data());
    b = b_rows.data();
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

// A (m, k) transposed, (k, m), into a buffer of this thread's that the next call reuses: the
// skinny products broadcast A's elements column by column, which the transpose makes adjacent.
const float* transposed(const float* a, int64_t m, int64_t k) {
  thread_local std::vector<float> a_t;
  a_t.resize(static_cast<size_t>(k * m));
  transpose(a, m, k, a_t.data());
  return a_t.data();
}

// A (m, k) as blocks of `width` rows, each transposed into (k, width) and stored after the
// previous one (block j at j * k), in a buffer of this thread's: the forward product's tiles read
// a block's columns as adjacent vectors, row after row.
const float* transposed_column_blocks(const float* a, int64_t m, int64_t k, int64_t width) {
  thread_local std::vector<float> blocks;
  blocks.resize(static_cast<size_t>(k * m));
  for (int64_t j = 0; j < m; j += width) {
    transpose(a + j * k, std::min(width, m - j), k, blocks.data() + j * k);
  }
  return blocks.data();
}

// C (m, n) = A (m, k) B (n, k)^T with m the batch (a dense layer's forward product), computed as
// C^T = B A^T: rows of B (weights, read in storage order) against blocks of A^T's columns, stored
// transposed. A tile's weight rows meet every column block before the next rows are read, so the
// weights stream from memory once however many blocks the batch spans (with AVX2, four for a
// batch of 64). On W3's 64 x 2048 x 2048 on Zen 3: ~40 GFLOP/s streaming them once per block,
// 74 in this order, OpenBLAS 53 (benchmarks/results/forward_tiles_zen3.md).
void forward_product(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c,
                     bool accumulate) {
  constexpr int kRows = kForwardRows;
  constexpr int64_t kWidth = kForwardVectors * kLanes;
  const float* blocks = transposed_column_blocks(a, m, k, kWidth);
  auto column_blocks = [&](auto tile_fn_for, int64_t i) {
    for (int64_t j = 0; j < m; j += kWidth) {
      const int64_t width = std::min(kWidth, m - j);
      const ColumnBlock block = column_block(width);
      tile_fn_for(block.vectors)(k, b + i * k, k, 1, blocks + j * k, width, c + j * n + i, n,
                                 block.last_mask, accumulate);
    }
  };
  int64_t i = 0;
  for (; i + kRows <= n; i += kRows) column_blocks(tile_for<kRows, true>, i);
  for (; i + 4 <= n; i += 4) column_blocks(tile_for<4, true>, i);  // 10 classes: 6 + 4 rows
  for (; i < n; ++i) column_blocks(tile_for<1, true>, i);
}

// Rows [0, m) of C's column block [0, width) from a packed B panel whose rows are Vectors * 16
// floats, with A's element (i, p) at a[i * a_row_stride + p * a_col_stride]; Rows-row tiles, then
// 4-row and single-row ones for the rest.
template <int Rows, int Vectors>
void panel_rows(int64_t m, int64_t depth, const float* a, int64_t a_row_stride,
                int64_t a_col_stride, const float* panel, float* c, int64_t ldc, int64_t width,
                bool accumulate) {
  const ColumnBlock block = column_block(width);
  const TileFn full = tile_for<Rows>(block.vectors);
  const TileFn four = tile_for<4>(block.vectors);  // a batch of 64 is 10 x 6 + 4 rows
  const TileFn single = tile_for<1>(block.vectors);
  int64_t i = 0;
  for (; i + Rows <= m; i += Rows) {
    full(depth, a + i * a_row_stride, a_row_stride, a_col_stride, panel, Vectors * kLanes,
         c + i * ldc, ldc, block.last_mask, accumulate);
  }
  for (; i + 4 <= m; i += 4) {
    four(depth, a + i * a_row_stride, a_row_stride, a_col_stride, panel, Vectors * kLanes,
         c + i * ldc, ldc, block.last_mask, accumulate);
  }
  for (; i < m; ++i) {
    single(depth, a + i * a_row_stride, a_row_stride, a_col_stride, panel, Vectors * kLanes,
           c + i * ldc, ldc, block.last_mask, accumulate);
  }
}

// Copies rows [0, depth) of B's columns [j, j + width) into `panel` (rows panel_width long).
void pack_panel(const float* b, int64_t ldb, int64_t depth, int64_t j, int64_t width,
                int64_t panel_width, float* panel) {
  for (int64_t p = 0; p < depth; ++p) {
    const float* row = b + p * ldb + j;
    float* out = panel + p * panel_width;
    int64_t v = 0;
    for (; v + kLanes <= width; v += kLanes) simd::store(out + v, simd::load(row + v));
    if (v < width) {
      const Mask mask = simd::first_lanes(width - v);
      simd::store(out + v, mask, simd::load(row + v, mask));
    }
  }
}

// C (m, n) = A (m, k) B (k, n) with m the batch (a dense layer's input gradient, B the weights):
// depth blocks of 64 rows of B, each cut into panels packed into L1 and used by every row block
// of A, whose transpose is packed so the broadcasts of a step are adjacent. Measured on 64 x 2048
// x 2048 with AVX-512: depth 64 beat 32, 96, 128 and 256; 6 x 4 vectors beat 8 x 3.
void input_grad_product(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c,
                        bool accumulate) {
  const float* a_t = transposed(a, m, k);
  constexpr int64_t kDepth = 64;
  constexpr int kVectors = kInputGradVectors;
  constexpr int64_t kWidth = kVectors * kLanes;
  alignas(64) float panel[kDepth * kWidth];
  for (int64_t p0 = 0; p0 < k; p0 += kDepth) {
    const int64_t depth = std::min(kDepth, k - p0);
    for (int64_t j = 0; j < n; j += kWidth) {
      const int64_t width = std::min(kWidth, n - j);
      pack_panel(b + p0 * n, n, depth, j, width, kWidth, panel);
      panel_rows<kInputGradRows, kVectors>(m, depth, a_t + p0 * m, 1, m, panel, c + j, n, width,
                                           accumulate || p0 > 0);
    }
  }
}

// B (k, n) packed into panels of the tile's width: the weight gradient's operand, used by every
// row block.
const float* packed_weight_grad_panels(const float* b, int64_t n, int64_t k) {
  constexpr int64_t kWidth = kWeightGradVectors * kLanes;
  const int64_t panels = (n + kWidth - 1) / kWidth;
  thread_local std::vector<float> packed;
  packed.resize(static_cast<size_t>(panels * k * kWidth));
  for (int64_t q = 0; q < panels; ++q) {
    const int64_t j = q * kWidth;
    pack_panel(b, n, k, j, std::min(kWidth, n - j), kWidth, packed.data() + q * k * kWidth);
  }
  return packed.data();
}

// Rows [i0, i0 + rows) of C (m, n) = A (k, m)^T B (k, n) into c (rows, n), from B's packed panels,
// each row in storage order (with AVX-512, 8 x 3 vectors measured faster than 6 x 4 here). Rows go
// in groups whose packed columns of A fill a part of L1: each panel of B is then read from L2 once
// per group and stays in L1 for the group's tiles, instead of once per tile.
void weight_grad_rows(int64_t i0, int64_t rows, int64_t m, int64_t n, int64_t k, const float* a,
                      const float* packed, float* c, bool accumulate) {
  constexpr int kRows = kWeightGradRows, kVectors = kWeightGradVectors;
  constexpr int64_t kWidth = kVectors * kLanes;
  constexpr int64_t kGroupBytes = int64_t{16} << 10;
  const int64_t group_rows =
      std::max<int64_t>(1, kGroupBytes / (k * kRows * int64_t{sizeof(float)})) * kRows;
  thread_local std::vector<float> slabs;
  slabs.resize(static_cast<size_t>(k * std::min(group_rows, rows + kRows)));
  for (int64_t g = i0; g < i0 + rows; g += group_rows) {
    const int64_t g_end = std::min(g + group_rows, i0 + rows);
    // A's columns g .. g_end - 1 packed kRows at a time: unpacked, a tile's k broadcasts lie a row
    // of A apart, which for W3's 2048 columns is 8 KB, so all k lines fall into one L1 set and
    // come from L2.
    for (int64_t i = g; i < g_end; i += kRows) {
      const int64_t tile_rows = std::min<int64_t>(kRows, g_end - i);
      float* slab = slabs.data() + (i - g) * k;
      for (int64_t p = 0; p < k; ++p) {
        for (int64_t r = 0; r < tile_rows; ++r) slab[p * kRows + r] = a[p * m + i + r];
      }
    }
    for (int64_t j = 0; j < n; j += kWidth) {
      for (int64_t i = g; i < g_end; i += kRows) {
        panel_rows<kRows, kVectors>(std::min<int64_t>(kRows, g_end - i), k,
                                    slabs.data() + (i - g) * k, 1, kRows, packed + j * k,
                                    c + (i - i0) * n + j, n, std::min(kWidth, n - j), accumulate);
      }
    }
  }
}

// C (m, n) = A (k, m)^T B (k, n) with k the batch (a dense layer's weight gradient).
void weight_grad_product(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c,
                         bool accumulate) {
  weight_grad_rows(0, m, m, n, k, a, packed_weight_grad_panels(b, n, k), c, accumulate);
}

}  // namespace

bool tiled_gemm_available() { return true; }
const char* tiled_gemm_isa() { return simd::kName; }
int64_t tiled_row_grain() { return std::lcm(kForwardRows, kWeightGradRows); }

void tiled_gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const float* a,
                const float* b, float* c, bool accumulate) {
  if (is_small_product(m, n, k) || (transpose_a && transpose_b)) {
    small_product(m, n, k, a, transpose_a ? 1 : k, transpose_a ? m : 1, b, transpose_b, c,
                  accumulate);
  } else if (!transpose_a && transpose_b) {
    forward_product(m, n, k, a, b, c, accumulate);
  } else if (!transpose_a) {
    input_grad_product(m, n, k, a, b, c, accumulate);
  } else {
    weight_grad_product(m, n, k, a, b, c, accumulate);
  }
}

void tiled_weight_grad_blocks(int64_t m, int64_t n, int64_t k, const float* a, const float* b,
                              int64_t first_row, int64_t end_row, const RowBlockConsumer& consume) {
  if (first_row >= end_row) return;
  const float* packed = packed_weight_grad_panels(b, n, k);
  const int64_t block_rows = rows_per_block(n);
  thread_local std::vector<float> block;
  block.resize(static_cast<size_t>(block_rows * n));
  for (int64_t i0 = first_row; i0 < end_row; i0 += block_rows) {
    const int64_t rows = std::min(block_rows, end_row - i0);
    weight_grad_rows(i0, rows, m, n, k, a, packed, block.data(), false);
    consume(i0, rows, block.data());
  }
}

#else

bool tiled_gemm_available() { return false; }
const char* tiled_gemm_isa() { return ""; }
int64_t tiled_row_grain() { return 1; }

void tiled_gemm(bool, bool, int64_t, int64_t, int64_t, const float*, const float*, float*, bool) {
  throw std::logic_error("tiled_gemm: not compiled for this target (needs AVX2 + FMA)");
}

void tiled_weight_grad_blocks(int64_t, int64_t, int64_t, const float*, const float*, int64_t,
                              int64_t, const RowBlockConsumer&) {
  throw std::logic_error("tiled_weight_grad_blocks: not compiled for this target (needs AVX2)");
}

#endif

bool is_small_product(int64_t m, int64_t n, int64_t k) { return m * n * k < kSmallMaxFlops; }

bool is_skinny_product(bool transpose_a, bool transpose_b, int64_t m, int64_t, int64_t k) {
  if (!transpose_a) return (transpose_b || kSkinnyInputGrad) && m <= kSkinnyMaxBatch;
  return !transpose_b && k <= kSkinnyMaxBatch;  // weight gradient
}

const char* tiled_skinny_products() {
  return kSkinnyInputGrad ? "batch" : "forward products and weight gradients of batch";
}

}  // namespace ddp
