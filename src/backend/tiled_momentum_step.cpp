// SGD's momentum step applied by the weight-gradient tiles themselves (Note [update in the
// tiles]).
#include <algorithm>
#include <stdexcept>
#include <vector>

#include "backend/register_tile.h"
#include "backend/tiled_gemm.h"
#include "core/scratch.h"

namespace ddp {

#ifdef DDP_SIMD_TILES
namespace tiles {

// Note [update in the tiles]: where the optimizer's step is SGD's momentum step and nothing else
// (MomentumStep: no weight decay, not Nesterov), the update in backward (Note [update in
// backward]) is not handed blocks: the weight-gradient kernel applies the step itself, tile by
// tile (tiled_weight_grad_momentum_step). Each tile's gradient goes to a buffer in L1, and the next
// tile's k loop steps it, one vector every two of its steps, between its multiply-adds, while it
// fetches into L2 the weight and velocity lines of its own elements for the tile after it. The
// step's loads and stores so run while the FMA units work, where the block-by-block update ran
// between blocks (2.9 ms of W3's 55 ms step on a Zen 4), and the gradient is never written to L2.
// The tiles go a row of tiles at a time, along the rows of the weights and velocity, so that their
// lines come in order. The step is sgd_range's operations in its order (one fma for v, one for
// w), so the bits are those of the update after backward (tested). On a Zen 4, against the blocks:
// W3 1.035x at one rank, 1.061x at two ranks (split weight gradients, each rank's rows over the
// global batch of 128; benchmarks/results/zen4/update_in_tiles.md); W2's weights, in L3, with
// momentum 0.9 at one rank 1.027x (momentum_in_tiles_l3.md). Adam's step in the tiles gained
// nothing: its square root, division and six multiply-adds a vector cost the tiles what its
// memory traffic cost outside them (benchmarks/results/zen4/tried_not_kept.md).
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
// vector every two steps and fetches into L2 the weight and velocity lines of its own elements,
// which the next tile's loop will step.
template <int Rows, int Vectors>
void stepping_tile(int64_t k, const float* slab, const float* panel, float* out,
                   const LineFetch& weight_lines, const LineFetch& velocity_lines,
                   PendingStep& pending) {
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
  LineFetchCursor weight_fetches(weight_lines, k), velocity_fetches(velocity_lines, k);
  int64_t p = 0;
  for (; p + 2 <= k; p += 2) {
    if (const char* line = weight_fetches.at(p)) _mm_prefetch(line, _MM_HINT_T1);
    if (const char* line = velocity_fetches.at(p)) _mm_prefetch(line, _MM_HINT_T1);
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

using SteppingTileFn = void (*)(int64_t, const float*, const float*, float*, const LineFetch&,
                                const LineFetch&, PendingStep&);

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
    pack_weight_grad_slab(a, m, k, i, tile_rows, slab);
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
        // Its rows' lines, one of each every two steps (the step takes a vector every two).
        const auto lines_of = [&](const float* start) {
          return LineFetch{.start = reinterpret_cast<const char*>(start),
                           .rows = rows,
                           .row_lines = row_lines,
                           .row_stride = n * int64_t{sizeof(float)},
                           .every = 2};
        };
        tile(k, slab + r, packed + j * k, grads, lines_of(weight), lines_of(velocity), pending);
        pending.finish();  // what a short k loop left
        pending.start(grads, weight, velocity, n, rows, block);
        r += rows;
      }
    }
  }
  pending.finish();
  return pending.finite();
}

#else

bool tiled_weight_grad_momentum_step(int64_t, int64_t, int64_t, const float*, const float*, int64_t,
                                     int64_t, const MomentumStep&) {
  throw std::logic_error(
      "tiled_weight_grad_momentum_step: not compiled for this target (needs AVX2)");
}

#endif

}  // namespace ddp
