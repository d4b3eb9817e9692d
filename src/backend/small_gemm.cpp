#include "backend/small_gemm.h"

#include <stdexcept>
#include <vector>

#ifdef __AVX512F__
#include <immintrin.h>
#endif

namespace ddp {

#ifdef __AVX512F__
namespace {

constexpr int kLanes = 16;
constexpr int kMaxVectors = 4;  // a C tile is up to 64 columns wide
constexpr int kTileRows = 4;    // 4 rows x 4 vectors = 16 accumulators, B reused 4 times per load

// One tile of C: `Rows` rows by `Vectors` 16-lane vectors, the last one masked to the columns that
// exist. Compile-time sizes let the accumulators live in registers for the whole k loop.
template <int Rows, int Vectors>
void tile(int64_t k, const float* a, int64_t a_row_stride, int64_t a_col_stride, const float* b,
          int64_t ldb, float* c, int64_t ldc, __mmask16 last_mask, bool accumulate) {
  __mmask16 masks[Vectors];
#pragma GCC unroll 4
  for (int v = 0; v < Vectors; ++v) masks[v] = v + 1 == Vectors ? last_mask : __mmask16(0xFFFF);
  __m512 acc[Rows][Vectors];
#pragma GCC unroll 4
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < Vectors; ++v) {
      acc[r][v] = accumulate ? _mm512_maskz_loadu_ps(masks[v], c + r * ldc + v * kLanes)
                             : _mm512_setzero_ps();
    }
  }
  for (int64_t p = 0; p < k; ++p) {
    __m512 bv[Vectors];
#pragma GCC unroll 4
    for (int v = 0; v < Vectors; ++v) {
      bv[v] = _mm512_maskz_loadu_ps(masks[v], b + p * ldb + v * kLanes);
    }
#pragma GCC unroll 4
    for (int r = 0; r < Rows; ++r) {
      const __m512 av = _mm512_set1_ps(a[r * a_row_stride + p * a_col_stride]);
#pragma GCC unroll 4
      for (int v = 0; v < Vectors; ++v) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < Rows; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < Vectors; ++v) {
      _mm512_mask_storeu_ps(c + r * ldc + v * kLanes, masks[v], acc[r][v]);
    }
  }
}

// In-register transpose of 16 rows of 16 floats: unpack pairs of rows, then interleave 64-bit
// pairs, then 128-bit lanes twice.
void transpose16x16(__m512 r[kLanes]) {
  __m512 t[kLanes];
  for (int i = 0; i < kLanes; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  // u[4g + q]: in 128-bit lane L, column 4L + q of rows 4g .. 4g + 3.
  __m512 u[kLanes];
  for (int g = 0; g < kLanes; g += 4) {
    u[g] = _mm512_shuffle_ps(t[g], t[g + 2], 0x44);
    u[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], 0xEE);
    u[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0x44);
    u[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
  }
  for (int q = 0; q < 4; ++q) {
    const __m512 v0 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0x44);
    const __m512 v1 = _mm512_shuffle_f32x4(u[q], u[4 + q], 0xEE);
    const __m512 v2 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0x44);
    const __m512 v3 = _mm512_shuffle_f32x4(u[8 + q], u[12 + q], 0xEE);
    r[q] = _mm512_shuffle_f32x4(v0, v2, 0x88);
    r[4 + q] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
    r[8 + q] = _mm512_shuffle_f32x4(v1, v3, 0x88);
    r[12 + q] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
  }
}

__mmask16 first_lanes(int64_t count) {
  return count >= kLanes ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << count) - 1);
}

// dst (cols, rows) = src (rows, cols)^T, both row-major, in 16x16 blocks; masked loads and stores
// cover the edges.
void transpose(const float* src, int64_t rows, int64_t cols, float* dst) {
  for (int64_t i = 0; i < rows; i += kLanes) {
    const int64_t block_rows = rows - i < kLanes ? rows - i : kLanes;
    for (int64_t j = 0; j < cols; j += kLanes) {
      const __mmask16 col_mask = first_lanes(cols - j);
      __m512 block[kLanes];
      for (int r = 0; r < kLanes; ++r) {
        block[r] = r < block_rows ? _mm512_maskz_loadu_ps(col_mask, src + (i + r) * cols + j)
                                  : _mm512_setzero_ps();
      }
      transpose16x16(block);
      const int64_t block_cols = cols - j < kLanes ? cols - j : kLanes;
      const __mmask16 row_mask = first_lanes(block_rows);
      for (int c = 0; c < block_cols; ++c) {
        _mm512_mask_storeu_ps(dst + (j + c) * rows + i, row_mask, block[c]);
      }
    }
  }
}

using TileFn = void (*)(int64_t, const float*, int64_t, int64_t, const float*, int64_t, float*,
                        int64_t, __mmask16, bool);

template <int Rows>
TileFn tile_for(int vectors) {
  switch (vectors) {
    case 1:
      return tile<Rows, 1>;
    case 2:
      return tile<Rows, 2>;
    case 3:
      return tile<Rows, 3>;
    default:
      return tile<Rows, 4>;
  }
}

}  // namespace

bool small_gemm_available() { return true; }

void small_gemm(int64_t m, int64_t n, int64_t k, const float* a, int64_t a_row_stride,
                int64_t a_col_stride, const float* b, bool b_transposed, float* c,
                bool accumulate) {
  if (b_transposed) {
    // The tiles stream rows of B; a transposed copy costs k*n moves against m*n*k FMAs.
    thread_local std::vector<float> b_rows;
    b_rows.resize(static_cast<size_t>(k * n));
    transpose(b, n, k, b_rows.data());
    b = b_rows.data();
  }
  const int64_t ldb = n;
  constexpr int64_t kTileCols = kLanes * kMaxVectors;
  for (int64_t j = 0; j < n; j += kTileCols) {
    const int64_t width = n - j < kTileCols ? n - j : kTileCols;
    const int vectors = static_cast<int>((width + kLanes - 1) / kLanes);
    const int tail = static_cast<int>(width - (vectors - 1) * kLanes);
    const __mmask16 last_mask = first_lanes(tail);
    const TileFn full = tile_for<kTileRows>(vectors);
    const TileFn single = tile_for<1>(vectors);
    int64_t i = 0;
    for (; i + kTileRows <= m; i += kTileRows) {
      full(k, a + i * a_row_stride, a_row_stride, a_col_stride, b + j, ldb, c + i * n + j, n,
           last_mask, accumulate);
    }
    for (; i < m; ++i) {
      single(k, a + i * a_row_stride, a_row_stride, a_col_stride, b + j, ldb, c + i * n + j, n,
             last_mask, accumulate);
    }
  }
}

#else

bool small_gemm_available() { return false; }

void small_gemm(int64_t, int64_t, int64_t, const float*, int64_t, int64_t, const float*, bool,
                float*, bool) {
  throw std::logic_error("small_gemm: not compiled for this target (needs AVX-512F)");
}

#endif

}  // namespace ddp
