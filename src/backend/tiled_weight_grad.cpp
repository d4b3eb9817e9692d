// The tiled weight gradient (Note [tiled GEMM]), whole or row block by row block for an update
// inside backward (Note [update in backward]).
#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "backend/register_tile.h"
#include "backend/tiled_gemm.h"
#include "core/scratch.h"

namespace ddp {

#ifdef DDP_SIMD_TILES
namespace tiles {
namespace {

// The scratch block of tiled_weight_grad_blocks: in L2 next to the update's streams.
constexpr int64_t kBlockBytes = int64_t{128} << 10;
// Rows of C per block for a row length of n: a multiple of the row tile, about kBlockBytes.
int64_t rows_per_block(int64_t n) {
  constexpr int64_t kTile = kWeightGradRows;
  return std::max<int64_t>(kTile, kBlockBytes / (kTile * 4 * std::max<int64_t>(n, 1)) * kTile);
}

// B (k, n) packed into panels of the tile's width: the weight gradient's operand, used by every
// row block.
const float* packed_weight_grad_panels(const float* b, int64_t n, int64_t k) {
  constexpr int64_t kWidth = kWeightGradVectors * kLanes;
  const int64_t panels = (n + kWidth - 1) / kWidth;
  thread_local std::vector<float> packed_buffer;
  float* const packed = scratch(packed_buffer, static_cast<size_t>(panels * k * kWidth));
  for (int64_t q = 0; q < panels; ++q) {
    const int64_t j = q * kWidth;
    pack_panel(b, n, k, j, std::min(kWidth, n - j), kWidth, packed + q * k * kWidth);
  }
  return packed;
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
  thread_local std::vector<float> slabs_buffer;
  float* const slabs = scratch(slabs_buffer, static_cast<size_t>(k * group_rows));
  for (int64_t g = i0; g < i0 + rows; g += group_rows) {
    const int64_t g_end = std::min(g + group_rows, i0 + rows);
    // A's columns g .. g_end - 1 packed kRows at a time: unpacked, a tile's k broadcasts lie a row
    // of A apart, which for W3's 2048 columns is 8 KB, so all k lines fall into one L1 set and
    // come from L2.
    for (int64_t i = g; i < g_end; i += kRows) {
      const int64_t tile_rows = std::min<int64_t>(kRows, g_end - i);
      float* slab = slabs + (i - g) * k;
      if (tile_rows == kRows) {  // a copy of constant size, which compiles to vector moves
        for (int64_t p = 0; p < k; ++p)
          std::memcpy(slab + p * kRows, a + p * m + i, sizeof(float) * kRows);
      } else {
        for (int64_t p = 0; p < k; ++p) {
          for (int64_t r = 0; r < tile_rows; ++r) slab[p * kRows + r] = a[p * m + i + r];
        }
      }
    }
    for (int64_t j = 0; j < n; j += kWidth) {
      for (int64_t i = g; i < g_end; i += kRows) {
        panel_rows<kRows>(std::min<int64_t>(kRows, g_end - i), k, slabs + (i - g) * k, 1, kRows,
                          packed + j * k, kWidth, c + (i - i0) * n + j, n, std::min(kWidth, n - j),
                          accumulate);
      }
    }
  }
}

}  // namespace

void weight_grad_product(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c,
                         bool accumulate) {
  weight_grad_rows(0, m, m, n, k, a, packed_weight_grad_panels(b, n, k), c, accumulate);
}

}  // namespace tiles

void tiled_weight_grad_blocks(int64_t m, int64_t n, int64_t k, const float* a, const float* b,
                              int64_t first_row, int64_t end_row, const RowBlockConsumer& consume) {
  if (first_row >= end_row) return;
  const float* packed = tiles::packed_weight_grad_panels(b, n, k);
  const int64_t block_rows = tiles::rows_per_block(n);
  thread_local std::vector<float> block_buffer;
  float* const block = scratch(block_buffer, static_cast<size_t>(block_rows * n));
  for (int64_t i0 = first_row; i0 < end_row; i0 += block_rows) {
    const int64_t rows = std::min(block_rows, end_row - i0);
    tiles::weight_grad_rows(i0, rows, m, n, k, a, packed, block, false);
    consume(i0, rows, block);
  }
}

#else

void tiled_weight_grad_blocks(int64_t, int64_t, int64_t, const float*, const float*, int64_t,
                              int64_t, const RowBlockConsumer&) {
  throw std::logic_error("tiled_weight_grad_blocks: not compiled for this target (needs AVX2)");
}

#endif

}  // namespace ddp
