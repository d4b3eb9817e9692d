#pragma once
// Note [tiled GEMM]: register-tiled GEMMs (AVX-512 or AVX2, Note [SIMD width]) for the two kinds
// of product a general BLAS handles poorly here.
//  - Small products (the seed workload's 32x10x64 layers), where a general GEMM spends more time
//    packing panels and zeroing C than multiplying (perf on W1: Eigen's packing + memset ~20% of
//    the step). C rows are built in registers from broadcast A elements and contiguous B rows.
//  - Skinny products, where one dimension is the batch (tens of rows) and the other two are large
//    (W3's 64 x 2048 x 2048): BLAS packs each 16 MB weight matrix into panels that are then used
//    only a few times. Here the weights stream once, in the order they are stored: the forward
//    product is computed transposed (weight rows broadcast against the packed batch, C^T's rows
//    stored whole and transposed once), the input gradient from 192-row depth blocks of the
//    weights read in place, column block by column block (the tiles fetching the next one into
//    L2 a line every few steps and their own next rows into L1, C's block summed in a buffer of
//    adjacent rows), and the weight gradient row block by row block against the packed batch (for
//    an update in backward, its tiles fetching the rows the update streams next: Note [update in
//    backward]).
// Measured on W3's shapes (benchmarks/results/kernel_choice.md): see the README.

#include <cstddef>
#include <cstdint>

#include "backend/backend.h"

namespace ddp {

// Weights or a weight gradient larger than this do not stay in cache between uses: such a
// gradient leaves L2 before anything reads it (backward's next layers run first), so it is
// written with non-temporal stores; such weights come from memory, so threads share the input
// gradient by its columns and its tiles read them in place.
constexpr size_t kUncachedWeightBytes = size_t{4} << 20;
// True when the kernels were compiled (an AVX-512F or AVX2 + FMA target); otherwise callers use
// their general GEMM.
bool tiled_gemm_available();
// The vector instructions they were compiled for ("AVX-512", "AVX2"), or "" without them.
const char* tiled_gemm_isa();

// Where the tiled kernels are expected to beat a general BLAS on C (m, n) = op(A) op(B): small
// products, and skinny ones whose batch dimension is at most kSkinnyMaxBatch. With AVX2 only the
// forward product and the weight gradient count as skinny (kSkinnyInputGrad).
constexpr int64_t kSkinnyMaxBatch = 256;
bool is_small_product(int64_t m, int64_t n, int64_t k);
bool is_skinny_product(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k);
// Which skinny products the tiled kernels take, as the backend's log names them.
const char* tiled_skinny_products();
// Whether C = op(A) op(B) is for the tiled kernels by default (compiled, and a small or skinny
// product; DDP_GEMM=blas overrides it in the CPU backend): each element is then the same chain of
// multiply-adds however many of C's rows are asked for, so shares of the rows get the bits of the
// whole.
bool tiled_kernels_take(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k);

// C (m, n) = op(A) op(B), or C += op(A) op(B) with `accumulate`; all operands row-major, op
// transposes when asked: A is (m, k) or (k, m), B is (k, n) or (n, k). Any shape is computed
// correctly; is_small_product and is_skinny_product say when it is fast. Requires
// tiled_gemm_available().
void tiled_gemm(bool transpose_a, bool transpose_b, int64_t m, int64_t n, int64_t k, const float* a,
                const float* b, float* c, bool accumulate);

// The weight-gradient product C (m, n) = A (k, m)^T B (k, n) (k the batch) without storing C:
// computed block by block into a scratch buffer that stays in cache and handed to `consume`,
// which may update the weights from them at once (Note [update in backward]); while a block is
// computed, its tiles fetch into L2 the next block's part of consume.streams. Blocks are whole
// rows, or with streams to fetch and an input too large to leave room for them in L2, rows of
// column chunks (Note [weight-gradient chunks]). Only rows [first_row, end_row) of C, so that
// threads may share the rows (Note [threads per rank]). Requires tiled_gemm_available().
void tiled_weight_grad_blocks(int64_t m, int64_t n, int64_t k, const float* a, const float* b,
                              int64_t first_row, int64_t end_row, const GradBlockConsumer& consume);
// Rows [first_row, end_row) of the same product, never stored: `step` applied to each tile of it
// during the next tile's k loop (Note [update in the tiles]). False when an element of the
// gradient was NaN or infinite (the step is applied all the same). Requires
// tiled_gemm_available().
bool tiled_weight_grad_momentum_step(int64_t m, int64_t n, int64_t k, const float* a,
                                     const float* b, int64_t first_row, int64_t end_row,
                                     const MomentumStep& step);
// Rows per thread of tiled_weight_grad_blocks and of the forward product: a whole number of the
// register tile's rows.
int64_t tiled_row_grain();
// Columns [first_col, end_col) of the input-gradient product C (m, n) = A (m, k) B (k, n), m the
// batch, B the weights: threads that share a dense layer's input gradient take shares of its
// columns, so each packs and reads only its share of the weights (shares of the batch's rows
// each read all of them). Each element gets the same sums as from tiled_gemm. first_col a
// multiple of tiled_column_grain(). Requires tiled_gemm_available().
void tiled_input_grad_columns(int64_t m, int64_t n, int64_t k, const float* a, const float* b,
                              float* c, int64_t first_col, int64_t end_col);
int64_t tiled_column_grain();

}  // namespace ddp
