// The tiled weight gradient (Note [tiled GEMM]), whole or row block by row block for an update
// inside backward (Note [update in backward]).
#include <algorithm>
#include <cstring>
#include <span>
#include <stdexcept>
#include <utility>
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

// Lines to fetch into L2 while a block's tiles run (Note [update in backward]): `floats` floats
// from each of `streams`, spread evenly over `tiles` tiles, a contiguous range of one stream per
// tile. A tile fetches one line per step of its k loop, so where a range is longer than k (a
// batch of a few rows) the rest is left to the update's own loads.
class SideFetches {
 public:
  SideFetches() = default;
  SideFetches(std::span<const float* const> streams, int64_t floats, int64_t tiles)
      : streams_(streams),
        lines_per_stream_((floats * int64_t{sizeof(float)} + 63) / 64),
        tiles_per_stream_(std::max<int64_t>(1, tiles / std::max<int64_t>(1, std::ssize(streams)))),
        lines_per_tile_((lines_per_stream_ + tiles_per_stream_ - 1) / tiles_per_stream_) {}

  bool any() const { return !streams_.empty() && lines_per_stream_ > 0; }
  // The first line and the number of lines of the block's tile-th tile.
  std::pair<const char*, int64_t> of_tile(int64_t tile) const {
    const int64_t stream = tile / tiles_per_stream_;
    const int64_t first = tile % tiles_per_stream_ * lines_per_tile_;
    if (stream >= std::ssize(streams_) || first >= lines_per_stream_) return {nullptr, 0};
    return {reinterpret_cast<const char*>(streams_[stream]) + first * 64,
            std::min(lines_per_tile_, lines_per_stream_ - first)};
  }

 private:
  std::span<const float* const> streams_;
  int64_t lines_per_stream_ = 0, tiles_per_stream_ = 1, lines_per_tile_ = 0;
};

// Rows [i0, i0 + rows) of C (m, n) = A (k, m)^T B (k, n) into c (rows, n), from B's packed panels,
// each row in storage order (with AVX-512, 8 x 3 vectors measured faster than 6 x 4 here). Rows go
// in groups whose packed columns of A fill a part of L1: each panel of B is then read from L2 once
// per group and stays in L1 for the group's tiles, instead of once per tile. The whole-row tiles
// fetch `side`'s lines.
void weight_grad_rows(int64_t i0, int64_t rows, int64_t m, int64_t n, int64_t k, const float* a,
                      const float* packed, float* c, bool accumulate,
                      const SideFetches& side = {}) {
  constexpr int kRows = kWeightGradRows, kVectors = kWeightGradVectors;
  constexpr int64_t kWidth = kVectors * kLanes;
  constexpr int64_t kGroupBytes = int64_t{16} << 10;
  const int64_t group_rows =
      std::max<int64_t>(1, kGroupBytes / (k * kRows * int64_t{sizeof(float)})) * kRows;
  thread_local std::vector<float> slabs_buffer;
  float* const slabs = scratch(slabs_buffer, static_cast<size_t>(k * group_rows));
  int64_t tile = 0;  // whole-row tiles so far, for `side`
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
        const float* slab = slabs + (i - g) * k;
        float* const c_tile = c + (i - i0) * n + j;
        const int64_t width = std::min(kWidth, n - j);
        if (side.any() && g_end - i >= kRows) {
          const ColumnBlock block = column_block(width);
          const auto [fetch, lines] = side.of_tile(tile++);
          fetching_tile_for<kRows>(block.vectors)(k, slab, 1, kRows, packed + j * k, kWidth, c_tile,
                                                  n, block.last_mask, accumulate, fetch, lines);
          continue;
        }
        panel_rows<kRows>(std::min<int64_t>(kRows, g_end - i), k, slab, 1, kRows, packed + j * k,
                          kWidth, c_tile, n, width, accumulate);
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
  // The tiles of a block fetch what the consumer will stream for the next one.
  constexpr int64_t kPanelWidth = tiles::kWeightGradVectors * tiles::kLanes;
  const int64_t panels = (n + kPanelWidth - 1) / kPanelWidth;
  std::vector<const float*> next_rows(consume.streams.size());
  for (int64_t i0 = first_row; i0 < end_row; i0 += block_rows) {
    const int64_t rows = std::min(block_rows, end_row - i0);
    const int64_t next = i0 + rows, next_count = std::min(block_rows, end_row - next);
    tiles::SideFetches side;
    if (next_count > 0 && !next_rows.empty()) {
      for (size_t s = 0; s < next_rows.size(); ++s) next_rows[s] = consume.streams[s] + next * n;
      side = tiles::SideFetches(next_rows, next_count * n, rows / tiles::kWeightGradRows * panels);
    }
    tiles::weight_grad_rows(i0, rows, m, n, k, a, packed, block, false, side);
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
