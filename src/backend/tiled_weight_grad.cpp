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

void weight_grad_product(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c,
                         bool accumulate) {
  weight_grad_rows(0, m, 0, n, m, k, a, packed_weight_grad_panels(b, n, k), c, accumulate);
}

// Note [update in the tiles]: where the optimizer's step is SGD's momentum step and nothing else
// (MomentumStep: no weight decay, not Nesterov) and the weights come from memory, the update in
// backward (Note [update in backward]) is not handed blocks: the weight-gradient kernel applies
// the step itself, tile by tile (tiled_weight_grad_momentum_step). Each tile's gradient goes to a
// buffer in L1, and the next tile's k loop steps it, one vector every two of its steps, between
// its multiply-adds, while it fetches into L2 the weight and velocity lines of its own elements
// for the tile after it. The step's loads and stores so run while the FMA units work, where the
// block-by-block update ran between blocks (2.9 ms of W3's 55 ms step on a Zen 4), and the
// gradient is never written to L2. The tiles go a row of tiles at a time, along the rows of the
// weights and velocity, so that their lines come in order. The step is sgd_range's operations in
// its order (one fma for v, one for w), so the bits are those of the update after backward
// (tested). W3 on a Zen 4, against the blocks (benchmarks/results/zen4/update_in_tiles.md):
// 1.035x at one rank, 1.061x at two ranks (split weight gradients, each rank's rows over the
// global batch of 128).
namespace {

// The momentum step of one finished tile's gradient, a vector at a time, taken by the next tile's
// k loop (Note [update in the tiles]). The gradient lies in an L1 buffer, `vectors` to a row.
class PendingStep {
 public:
  explicit PendingStep(const MomentumStep& step)
      : minus_lr_(simd::broadcast(-step.lr)), momentum_(simd::broadcast(step.momentum)) {}

  void start(const float* grad, float* weight, float* velocity, int64_t ld, int rows,
             const ColumnBlock& block) {
    grad_ = grad, weight_ = weight, velocity_ = velocity, ld_ = ld;
    vectors_ = block.vectors, last_mask_ = block.last_mask;
    whole_last_ = simd::lanes_in(block.last_mask) == kLanes;
    left_ = rows * block.vectors, column_ = 0;
  }
  // v = momentum v + g; w -= lr v for the next vector: the operations of sgd_range, in its order.
  [[gnu::always_inline]] inline void one() {
    if (left_ == 0) return;
    --left_;
    float* const w = weight_ + column_ * kLanes;
    float* const v = velocity_ + column_ * kLanes;
    if (column_ + 1 < vectors_ || whole_last_) {
      const Vec g = simd::load(grad_);
      non_finite_ = simd::add(non_finite_, simd::sub(g, g));  // NaN from then on, once one was
      const Vec velocity = simd::fma(momentum_, simd::load(v), g);
      simd::store(v, velocity);
      simd::store(w, simd::fma(minus_lr_, velocity, simd::load(w)));
    } else {
      const Vec g = simd::load(grad_, last_mask_);
      non_finite_ = simd::add(non_finite_, simd::sub(g, g));
      const Vec velocity = simd::fma(momentum_, simd::load(v, last_mask_), g);
      simd::store(v, last_mask_, velocity);
      simd::store(w, last_mask_, simd::fma(minus_lr_, velocity, simd::load(w, last_mask_)));
    }
    grad_ += kLanes;
    if (++column_ == vectors_) column_ = 0, weight_ += ld_, velocity_ += ld_;
  }
  void finish() {
    while (left_ > 0) one();
  }
  bool finite() const { return simd::reduce_add(non_finite_) == 0; }

 private:
  Vec minus_lr_, momentum_, non_finite_ = simd::zero();
  const float* grad_ = nullptr;
  float *weight_ = nullptr, *velocity_ = nullptr;
  int64_t ld_ = 0, left_ = 0;
  int vectors_ = 0, column_ = 0;
  Mask last_mask_{};
  bool whole_last_ = true;
};

// A `Rows` x `Vectors` tile of the weight gradient (A's packed slab, B's packed panel) into `out`
// (whole vectors, `Vectors` to a row), while its k loop takes the previous tile's momentum step a
// vector every two steps and fetches into L2 the weight and velocity lines of its own elements
// (`rows` rows of `row_lines` lines, `row_bytes` apart), which the next tile's loop will step.
template <int Rows, int Vectors>
void stepping_tile(int64_t k, const float* slab, const float* panel, float* out,
                   const char* weight_lines, const char* velocity_lines, int64_t row_lines,
                   int64_t row_bytes, PendingStep& pending) {
  constexpr int64_t kWidth = kWeightGradVectors * kLanes;
  Vec acc[Rows][Vectors];
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < Vectors; ++v) acc[r][v] = simd::zero();
  }
  auto k_step = [&](int64_t p) {
    Vec bv[Vectors];
#pragma GCC unroll 4
    for (int v = 0; v < Vectors; ++v) bv[v] = simd::load(panel + p * kWidth + v * kLanes);
#pragma GCC unroll 8
    for (int r = 0; r < Rows; ++r) {
      const Vec av = simd::broadcast(slab[p * kWeightGradRows + r]);
#pragma GCC unroll 4
      for (int v = 0; v < Vectors; ++v) acc[r][v] = simd::fma(av, bv[v], acc[r][v]);
    }
  };
  int64_t lines_left = Rows * row_lines, column = 0, p = 0;
  for (; p + 2 <= k; p += 2) {
    if (lines_left > 0) {
      --lines_left;
      _mm_prefetch(weight_lines + column * 64, _MM_HINT_T1);
      _mm_prefetch(velocity_lines + column * 64, _MM_HINT_T1);
      if (++column == row_lines) column = 0, weight_lines += row_bytes, velocity_lines += row_bytes;
    }
    k_step(p);
    k_step(p + 1);
    pending.one();
  }
  if (p < k) k_step(p);
#pragma GCC unroll 8
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < Vectors; ++v) simd::store(out + (r * Vectors + v) * kLanes, acc[r][v]);
  }
}

using SteppingTileFn = void (*)(int64_t, const float*, const float*, float*, const char*,
                                const char*, int64_t, int64_t, PendingStep&);

template <int Rows>
SteppingTileFn stepping_tile_for(int vectors) {
  return for_vectors(vectors, []<int V>() -> SteppingTileFn { return stepping_tile<Rows, V>; });
}

}  // namespace

}  // namespace tiles

bool tiled_weight_grad_momentum_step(int64_t m, int64_t n, int64_t k, const float* a,
                                     const float* b, int64_t first_row, int64_t end_row,
                                     const MomentumStep& step) {
  using namespace tiles;
  constexpr int kRows = kWeightGradRows;
  constexpr int64_t kWidth = kWeightGradVectors * kLanes;
  const float* packed = packed_weight_grad_panels(b, n, k);
  // One row of tiles at a time, along the rows of the weights and velocity, each panel of B read
  // from L2 once per tile; the rows' slab of A, packed, stays in L1. (In groups of 64 rows, each
  // panel read from L2 once per group, the weights' lines 8 KB apart from tile to tile, W3 at one
  // rank ran 0.976x as fast as the blocks.)
  thread_local std::vector<float> slab_buffer;
  float* const slab = scratch(slab_buffer, static_cast<size_t>(k * kRows));
  alignas(64) float tile_grads[2][kRows * kWidth];  // the tile being computed, the one stepped
  PendingStep pending(step);
  int64_t tiles = 0;
  for (int64_t i = first_row; i < end_row; i += kRows) {
    const int64_t tile_rows = std::min<int64_t>(kRows, end_row - i);
    for (int64_t p = 0; p < k; ++p) {
      if (tile_rows == kRows) {  // a copy of constant size, which compiles to vector moves
        std::memcpy(slab + p * kRows, a + p * m + i, sizeof(float) * kRows);
      } else {
        for (int64_t r = 0; r < tile_rows; ++r) slab[p * kRows + r] = a[p * m + i + r];
      }
    }
    for (int64_t j = 0; j < n; j += kWidth) {
      const ColumnBlock block = column_block(std::min(kWidth, n - j));
      const int64_t row_lines = (std::min(kWidth, n - j) * int64_t{sizeof(float)} + 63) / 64;
      // The last row of tiles may be short: 4-row tiles, then single rows, each a part of the
      // slab (slab[p * kRows + r]).
      for (int64_t r = 0; r < tile_rows;) {
        const int rows = tile_rows - r >= kRows ? kRows : tile_rows - r >= 4 ? 4 : 1;
        const SteppingTileFn tile = rows == kRows ? stepping_tile_for<kRows>(block.vectors)
                                    : rows == 4   ? stepping_tile_for<4>(block.vectors)
                                                  : stepping_tile_for<1>(block.vectors);
        float* const weight = step.weight + (i + r) * n + j;
        float* const velocity = step.velocity + (i + r) * n + j;
        float* const grads = tile_grads[tiles++ & 1];
        tile(k, slab + r, packed + j * k, grads, reinterpret_cast<const char*>(weight),
             reinterpret_cast<const char*>(velocity), row_lines, n * int64_t{sizeof(float)},
             pending);
        pending.finish();  // what a short k loop left
        pending.start(grads, weight, velocity, n, rows, block);
        r += rows;
      }
    }
  }
  pending.finish();
  return pending.finite();
}

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

bool tiled_weight_grad_momentum_step(int64_t, int64_t, int64_t, const float*, const float*, int64_t,
                                     int64_t, const MomentumStep&) {
  throw std::logic_error(
      "tiled_weight_grad_momentum_step: not compiled for this target (needs AVX2)");
}

#endif

}  // namespace ddp
