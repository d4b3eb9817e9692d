// The tiled weight gradient (Note [tiled GEMM]), whole or row block by row block for an update
// inside backward (Note [update in backward]).
#include <algorithm>
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

// Lines to fetch into L2 while a block's tiles run (Note [update in backward]): `segments`
// stretches of `floats` floats, `stride` floats apart, from each of `streams` (the next block's
// rows: one stretch of them all where the block is whole rows, else one per row), spread evenly
// over `tiles` tiles, a contiguous range of one stretch per tile. A tile fetches one line per step
// of its k loop, so where a range is longer than k (a batch of a few rows), or there are more
// stretches than tiles, the rest is left to the update's own loads.
class SideFetches {
 public:
  SideFetches() = default;
  SideFetches(std::span<const float* const> streams, int64_t segments, int64_t floats,
              int64_t stride, int64_t tiles)
      : streams_(streams),
        segments_(segments),
        stride_(stride),
        lines_per_segment_((floats * int64_t{sizeof(float)} + 63) / 64),
        tiles_per_segment_(
            std::max<int64_t>(1, tiles / std::max<int64_t>(1, std::ssize(streams) * segments))),
        lines_per_tile_((lines_per_segment_ + tiles_per_segment_ - 1) / tiles_per_segment_) {}

  bool any() const { return !streams_.empty() && lines_per_segment_ > 0; }
  // The first line and the number of lines of the block's tile-th tile.
  std::pair<const char*, int64_t> of_tile(int64_t tile) const {
    const int64_t segment = tile / tiles_per_segment_;
    const int64_t first = tile % tiles_per_segment_ * lines_per_tile_;
    const int64_t stream = segment / segments_;
    if (stream >= std::ssize(streams_) || first >= lines_per_segment_) return {nullptr, 0};
    const float* const start = streams_[stream] + segment % segments_ * stride_;
    return {reinterpret_cast<const char*>(start) + first * 64,
            std::min(lines_per_tile_, lines_per_segment_ - first)};
  }

 private:
  std::span<const float* const> streams_;
  int64_t segments_ = 1, stride_ = 0, lines_per_segment_ = 0, tiles_per_segment_ = 1,
          lines_per_tile_ = 0;
};

// Rows [i0, i0 + rows) x columns [j0, j1) of C (m, n) = A (k, m)^T B (k, n) into c (rows rows,
// j1 - j0 floats apart), from B's packed panels (j0 a panel's first column), each row in storage
// order (with AVX-512, 8 x 3 vectors measured faster than 6 x 4 here). Rows go in groups whose
// packed columns of A fill a part of L1: each panel of B is then read from L2 once per group and
// stays in L1 for the group's tiles, instead of once per tile. The whole-row tiles fetch `side`'s
// lines.
void weight_grad_rows(int64_t i0, int64_t rows, int64_t j0, int64_t j1, int64_t m, int64_t k,
                      const float* a, const float* packed, float* c, bool accumulate,
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
    // A's columns g .. g_end - 1 packed kRows at a time.
    for (int64_t i = g; i < g_end; i += kRows)
      pack_weight_grad_slab(a, m, k, i, std::min<int64_t>(kRows, g_end - i), slabs + (i - g) * k);
    const int64_t ldc = j1 - j0;
    for (int64_t j = j0; j < j1; j += kWidth) {
      for (int64_t i = g; i < g_end; i += kRows) {
        const float* slab = slabs + (i - g) * k;
        float* const c_tile = c + (i - i0) * ldc + (j - j0);
        const int64_t width = std::min(kWidth, j1 - j);
        if (side.any() && g_end - i >= kRows) {
          const ColumnBlock block = column_block(width);
          const auto [fetch, lines] = side.of_tile(tile++);
          fetching_tile_for<kRows>(block.vectors)(k, slab, 1, kRows, packed + j * k, kWidth, c_tile,
                                                  ldc, block.last_mask, accumulate,
                                                  LineFetch::adjacent(fetch, lines));
          continue;
        }
        panel_rows<kRows>(std::min<int64_t>(kRows, g_end - i), k, slab, 1, kRows, packed + j * k,
                          kWidth, c_tile, ldc, width, accumulate);
      }
    }
  }
}

}  // namespace

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

void weight_grad_product(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c,
                         bool accumulate) {
  weight_grad_rows(0, m, 0, n, m, k, a, packed_weight_grad_panels(b, n, k), c, accumulate);
}

}  // namespace tiles

// Note [weight-gradient chunks]: every block of rows reads the whole packed input (batch x
// columns floats) from L2, and the rows that its tiles fetch for the update's next block must fit
// beside it (Note [update in backward]). At a batch of 64, W3's 2048-wide input is 512 KB and
// they do; at 128 (one rank of a 2-core weak-scaling run with two threads, or each rank's share of
// the global batch under `zero: rows`) it is 1 MB and fetched rows beside it did not pay
// (benchmarks/results/xeon/update_side_fetch.md), so the update streamed its rows unaided. With
// streams to fetch, a larger input is cut into column chunks of about kFetchedBesideInputBytes:
// the blocks of one chunk, all rows, then the next chunk's, each reading only its chunk's input.
// A row's blocks so come in column order; the update takes them row by row.
namespace {
constexpr int64_t kFetchedBesideInputBytes = int64_t{512} << 10;

// Columns per chunk for an input of k x n floats: whole panels, the chunks about equal.
int64_t chunk_columns(int64_t n, int64_t k, bool fetching) {
  constexpr int64_t kPanelWidth = tiles::kWeightGradVectors * tiles::kLanes;
  const int64_t bytes = k * n * int64_t{sizeof(float)};
  if (!fetching || bytes <= kFetchedBesideInputBytes) return n;
  const int64_t chunks = (bytes + kFetchedBesideInputBytes - 1) / kFetchedBesideInputBytes;
  const int64_t panels = (n + kPanelWidth - 1) / kPanelWidth;
  return (panels + chunks - 1) / chunks * kPanelWidth;
}
}  // namespace

void tiled_weight_grad_blocks(int64_t m, int64_t n, int64_t k, const float* a, const float* b,
                              int64_t first_row, int64_t end_row,
                              const GradBlockConsumer& consume) {
  if (first_row >= end_row) return;
  const float* packed = tiles::packed_weight_grad_panels(b, n, k);
  const int64_t chunk = chunk_columns(n, k, !consume.streams.empty());
  const int64_t block_rows = tiles::rows_per_block(chunk);
  thread_local std::vector<float> block_buffer;
  float* const block = scratch(block_buffer, static_cast<size_t>(block_rows * chunk));
  // The tiles of a block fetch what the consumer will stream for the next one: the next rows of
  // this chunk, or the first rows of the next chunk.
  constexpr int64_t kPanelWidth = tiles::kWeightGradVectors * tiles::kLanes;
  std::vector<const float*> next_part(consume.streams.size());
  for (int64_t j0 = 0; j0 < n; j0 += chunk) {
    const int64_t j1 = std::min(n, j0 + chunk);
    const int64_t panels = (j1 - j0 + kPanelWidth - 1) / kPanelWidth;
    for (int64_t i0 = first_row; i0 < end_row; i0 += block_rows) {
      const int64_t rows = std::min(block_rows, end_row - i0);
      int64_t next_row = i0 + rows, next_col = j0;
      if (next_row >= end_row) next_row = first_row, next_col = j1;
      const int64_t next_rows = std::min(block_rows, end_row - next_row);
      const int64_t next_cols = std::min(chunk, n - next_col);
      tiles::SideFetches side;
      if (next_col < n && !next_part.empty()) {
        for (size_t s = 0; s < next_part.size(); ++s)
          next_part[s] = consume.streams[s] + next_row * n + next_col;
        const int64_t tiles = rows / tiles::kWeightGradRows * panels;
        side = next_cols == n ? tiles::SideFetches(next_part, 1, next_rows * n, 0, tiles)
                              : tiles::SideFetches(next_part, next_rows, next_cols, n, tiles);
      }
      tiles::weight_grad_rows(i0, rows, j0, j1, m, k, a, packed, block, false, side);
      consume({.first_row = i0, .rows = rows, .first_col = j0, .cols = j1 - j0, .data = block});
    }
  }
}

#else

void tiled_weight_grad_blocks(int64_t, int64_t, int64_t, const float*, const float*, int64_t,
                              int64_t, const GradBlockConsumer&) {
  throw std::logic_error("tiled_weight_grad_blocks: not compiled for this target (needs AVX2)");
}

#endif

}  // namespace ddp
