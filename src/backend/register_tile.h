#pragma once
// The register tiles of the skinny and small GEMMs (Note [tiled GEMM]), shared by tiled_gemm.cpp
// (small, forward and input-gradient products) and tiled_weight_grad.cpp (the weight gradient).

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "core/simd.h"

#ifdef DDP_SIMD_TILES
namespace ddp::tiles {

using simd::kLanes;
using simd::Mask;
using simd::Vec;

// Tile shapes, rows x vectors of C, per vector width (Note [SIMD width]). AVX-512 has 32
// registers: up to 24 accumulators beside the B vectors. AVX2 has 16: 12 accumulators, 2 B
// vectors and a broadcast.
#ifdef __AVX512F__
constexpr int kSmallRows = 4, kSmallVectors = 4;
constexpr int kForwardRows = 6, kForwardVectors = 4;
constexpr int kInputGradRows = 8, kInputGradVectors = 3;
constexpr int kWeightGradRows = 8, kWeightGradVectors = 3;
#else
constexpr int kSmallRows = 4, kSmallVectors = 2;
constexpr int kForwardRows = 6, kForwardVectors = 2;
constexpr int kInputGradRows = 6, kInputGradVectors = 2;
constexpr int kWeightGradRows = 6, kWeightGradVectors = 2;
#endif
constexpr int kMaxVectors =
    std::max({kSmallVectors, kForwardVectors, kInputGradVectors, kWeightGradVectors});

// One tile of C: `Rows` rows by `Vectors` vectors, the last one masked to the columns that
// exist. Compile-time sizes let the accumulators live in registers for the whole k loop. With
// `PrefetchAhead` > 0 each step also prefetches into L1 the B row that many steps ahead: B rows
// read in place, thousands of bytes apart, are beyond the reach of the L1 stride prefetcher, so
// without it every step waits for its row from L2 (Note [tiled GEMM], input gradient).
//
// With `Fetching`, the k loop also fetches `fetch`'s lines into L2 (fetching_tile), so that memory
// works while the core multiplies: the weight gradient's tiles bring in the rows that the update
// in backward will stream next (Note [update in backward]), the input gradient's the weights of
// its next column block (Note [tiled GEMM]). One line at a time, spread over the steps: a line
// from memory holds one of L1's fill buffers until it arrives, and in bursts before a tile (the
// input gradient's 24 lines) they held them all while the tile's own loads from L2 waited (W3's
// input gradient 1.13-1.15x as fast spread, Zen 4, benchmarks/results/zen4/spread_fetches.md;
// the weight gradient's on a Xeon, benchmarks/results/xeon/tried_not_kept.md).
struct LineFetch {
  const char* start = nullptr;
  int64_t rows = 0;        // rows of lines, `row_stride` bytes apart
  int64_t row_lines = 0;   // adjacent 64-byte lines of a row
  int64_t row_stride = 0;  // bytes
  int64_t every = 1;       // steps of the k loop per line; lines left when it ends are not fetched

  static LineFetch adjacent(const char* start, int64_t lines) { return {start, 1, lines, 0, 1}; }
};

// A LineFetch's lines in the order a tile's k loop of `steps` steps fetches them.
class LineFetchCursor {
 public:
  LineFetchCursor(const LineFetch& fetch, int64_t steps)
      : fetch_(fetch),
        row_(fetch.start),
        rows_left_(fetch.rows),
        steps_(steps),
        next_step_(fetch.rows > 0 && fetch.row_lines > 0 ? 0 : steps) {}

  // The line to fetch at step p (called for p = 0, 1, ... in order), or null.
  const char* at(int64_t p) {
    if (p != next_step_) return nullptr;
    const char* const line = row_ + col_ * 64;
    next_step_ += fetch_.every;
    if (++col_ == fetch_.row_lines) {
      col_ = 0;
      row_ += fetch_.row_stride;
      if (--rows_left_ == 0) next_step_ = steps_;
    }
    return line;
  }

 private:
  LineFetch fetch_;
  const char* row_;
  int64_t col_ = 0, rows_left_, steps_, next_step_;
};

template <int Rows, int Vectors, int PrefetchAhead, bool Fetching>
[[gnu::always_inline]] inline void tile_body(int64_t k, const float* a, int64_t a_row_stride,
                                             int64_t a_col_stride, const float* b, int64_t ldb,
                                             float* c, int64_t ldc, Mask last_mask, bool accumulate,
                                             const LineFetch& fetch) {
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
      acc[r][v] = accumulate ? load_b(c + r * ldc + v * kLanes, v) : simd::zero();
    }
  }
  LineFetchCursor fetches(Fetching ? fetch : LineFetch{}, k);
  auto k_loop = [&](int64_t row_stride, int64_t col_stride) {
    for (int64_t p = 0; p < k; ++p) {
      if constexpr (PrefetchAhead > 0) {
        // A hint: past B's last row it touches nothing (prefetches never fault).
        const float* ahead = b + (p + PrefetchAhead) * ldb;
#pragma GCC unroll 4
        for (int v = 0; v < Vectors; ++v) _mm_prefetch(ahead + v * kLanes, _MM_HINT_T0);
      }
      if constexpr (Fetching) {
        if (const char* line = fetches.at(p)) _mm_prefetch(line, _MM_HINT_T1);
      }
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

template <int Rows, int Vectors, int PrefetchAhead = 0>
void tile(int64_t k, const float* a, int64_t a_row_stride, int64_t a_col_stride, const float* b,
          int64_t ldb, float* c, int64_t ldc, Mask last_mask, bool accumulate) {
  tile_body<Rows, Vectors, PrefetchAhead, false>(k, a, a_row_stride, a_col_stride, b, ldb, c, ldc,
                                                 last_mask, accumulate, LineFetch{});
}

template <int Rows, int Vectors, int PrefetchAhead = 0>
void fetching_tile(int64_t k, const float* a, int64_t a_row_stride, int64_t a_col_stride,
                   const float* b, int64_t ldb, float* c, int64_t ldc, Mask last_mask,
                   bool accumulate, const LineFetch& fetch) {
  tile_body<Rows, Vectors, PrefetchAhead, true>(k, a, a_row_stride, a_col_stride, b, ldb, c, ldc,
                                                last_mask, accumulate, fetch);
}

using TileFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*,
                        int64_t, Mask, bool);
using FetchingTileFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t,
                                float*, int64_t, Mask, bool, const LineFetch&);

// pick.template operator()<V>() for V the number of vectors a tile of C's column block holds.
template <typename Pick>
auto for_vectors(int vectors, Pick pick) {
  switch (vectors) {
    case 1:
      return pick.template operator()<1>();
    case 2:
      return pick.template operator()<2>();
    case 3:
      return pick.template operator()<std::min(3, kMaxVectors)>();
    default:
      return pick.template operator()<std::min(4, kMaxVectors)>();
  }
}

template <int Rows, int PrefetchAhead = 0>
TileFn tile_for(int vectors) {
  return for_vectors(vectors, []<int V>() -> TileFn { return tile<Rows, V, PrefetchAhead>; });
}

template <int Rows, int PrefetchAhead = 0>
FetchingTileFn fetching_tile_for(int vectors) {
  return for_vectors(
      vectors, []<int V>() -> FetchingTileFn { return fetching_tile<Rows, V, PrefetchAhead>; });
}

// Column block [j, j + width) of C as whole vectors and the mask of the last one.
struct ColumnBlock {
  int vectors;
  Mask last_mask;
};
inline ColumnBlock column_block(int64_t width) {
  const int vectors = static_cast<int>((width + kLanes - 1) / kLanes);
  return {vectors, simd::first_lanes(width - (vectors - 1) * kLanes)};
}

// Rows [0, m) of C's column block [0, width) from B's rows [0, depth) at that block (row p at
// b + p * ldb: a packed panel's rows, or the weights' own), with A's element (i, p) at
// a[i * a_row_stride + p * a_col_stride]; Rows-row tiles, then 4-row and single-row ones for the
// rest. With fetch_of_tile, the t-th Rows-row tile fetches fetch_of_tile(t)'s lines (the input
// gradient's next column block). PrefetchAhead: as tile's.
template <int Rows, int PrefetchAhead = 0, typename FetchOfTile = std::nullptr_t>
void panel_rows(int64_t m, int64_t depth, const float* a, int64_t a_row_stride,
                int64_t a_col_stride, const float* b, int64_t ldb, float* c, int64_t ldc,
                int64_t width, bool accumulate, const FetchOfTile& fetch_of_tile = nullptr) {
  constexpr bool kFetching = !std::is_same_v<FetchOfTile, std::nullptr_t>;
  const ColumnBlock block = column_block(width);
  const TileFn four = tile_for<4, PrefetchAhead>(block.vectors);
  const TileFn single = tile_for<1, PrefetchAhead>(block.vectors);
  int64_t i = 0;
  if constexpr (kFetching) {
    const FetchingTileFn full = fetching_tile_for<Rows, PrefetchAhead>(block.vectors);
    for (; i + Rows <= m; i += Rows) {
      full(depth, a + i * a_row_stride, a_row_stride, a_col_stride, b, ldb, c + i * ldc, ldc,
           block.last_mask, accumulate, fetch_of_tile(i / Rows));
    }
  } else {
    const TileFn full = tile_for<Rows, PrefetchAhead>(block.vectors);
    for (; i + Rows <= m; i += Rows) {
      full(depth, a + i * a_row_stride, a_row_stride, a_col_stride, b, ldb, c + i * ldc, ldc,
           block.last_mask, accumulate);
    }
  }
  for (; i + 4 <= m; i += 4) {
    four(depth, a + i * a_row_stride, a_row_stride, a_col_stride, b, ldb, c + i * ldc, ldc,
         block.last_mask, accumulate);
  }
  for (; i < m; ++i) {
    single(depth, a + i * a_row_stride, a_row_stride, a_col_stride, b, ldb, c + i * ldc, ldc,
           block.last_mask, accumulate);
  }
}

// Copies rows [0, depth) of B's columns [j, j + width) into `panel` (rows panel_width long).
inline void pack_panel(const float* b, int64_t ldb, int64_t depth, int64_t j, int64_t width,
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

// dst (cols, rows) = src (rows, cols)^T, both row-major, in square blocks of kLanes; masked loads
// and stores cover the edges. With `add`, dst += src^T.
void transpose(const float* src, int64_t rows, int64_t cols, float* dst, bool add = false);

// Columns [i, i + rows) of the weight gradient's A (k, m), rows <= kWeightGradRows, packed as one
// tile's slab: element (p, i + r) at slab[p * kWeightGradRows + r]. Unpacked, a tile's k broadcasts
// lie a row of A apart, which for W3's 2048 columns is 8 KB, so all k lines fall into one L1 set
// and come from L2.
inline void pack_weight_grad_slab(const float* a, int64_t m, int64_t k, int64_t i, int64_t rows,
                                  float* slab) {
  constexpr int kRows = kWeightGradRows;
  if (rows == kRows) {  // a copy of constant size, which compiles to vector moves
    for (int64_t p = 0; p < k; ++p)
      std::memcpy(slab + p * kRows, a + p * m + i, sizeof(float) * kRows);
    return;
  }
  for (int64_t p = 0; p < k; ++p) {
    for (int64_t r = 0; r < rows; ++r) slab[p * kRows + r] = a[p * m + i + r];
  }
}

// B (k, n) packed into panels of the weight-gradient tile's width, the weight gradient's operand
// read by every block of rows: thread-local scratch, valid until the thread's next call.
const float* packed_weight_grad_panels(const float* b, int64_t n, int64_t k);

// C (m, n) = A (k, m)^T B (k, n) with k the batch (a dense layer's weight gradient), in
// tiled_weight_grad.cpp.
void weight_grad_product(int64_t m, int64_t n, int64_t k, const float* a, const float* b, float* c,
                         bool accumulate);

}  // namespace ddp::tiles
#endif
