#include "backend/cpu_dense.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>
#include <vector>

#include "backend/activation_grad.h"
#include "backend/column_sums.h"
#include "backend/cpu_activations.h"
#include "backend/cpu_gemm.h"
#include "backend/tiled_gemm.h"
#include "core/error.h"
#include "core/scratch.h"
#include "core/stream_copy.h"

namespace ddp::cpu {
namespace {

// Adds the bias and applies the activation to rows [0, batch) x columns [c0, c1) of y (row length
// out), reading the product from `product` (row length c1 - c0), in one pass while it is in cache.
// The activation is chosen once, outside the loops, so that they vectorize: chosen per element,
// the linear output layer's loop ran scalar (W1: ~2% of its step, xeon/w1_bias_activate.md).
template <typename Activate>
void bias_then(const float* product, const float* b, float* y, int64_t batch, int64_t out,
               int64_t c0, int64_t c1, Activate activate_one) {
  const int64_t width = c1 - c0;
  for (int64_t r = 0; r < batch; ++r) {
    const float* from = product + r * width;
    float* row = y + r * out + c0;
    for (int64_t c = 0; c < width; ++c) row[c] = activate_one(from[c] + b[c0 + c]);
  }
}

void bias_activate(const float* product, const float* b, float* y, int64_t batch, int64_t out,
                   int64_t c0, int64_t c1, Activation act) {
  switch (act) {
    case Activation::kRelu:
      return bias_then(product, b, y, batch, out, c0, c1,
                       [](float z) { return std::max(z, 0.0f); });
    case Activation::kLinear:
      return bias_then(product, b, y, batch, out, c0, c1, [](float z) { return z; });
    case Activation::kTanh:
    case Activation::kSigmoid:  // a vector at a time, each row's columns while in cache
      bias_then(product, b, y, batch, out, c0, c1, [](float z) { return z; });
      for (int64_t r = 0; r < batch; ++r)
        fused_activation(act, y + r * out + c0, y + r * out + c0, static_cast<size_t>(c1 - c0));
      return;
    default:  // Note [fused activations]: the others are layers of their own
      throw std::logic_error("dense_forward: no fused kernel for this activation");
  }
}

// Below this many multiply-adds a product stays on the calling thread: waking a team that has gone
// to sleep on its condition variable costs about what sharing it saves. An LSTM's step-by-step
// recurrent products (W5: 64 x 128 x 32, 262,144, a microsecond's work) are below it; shared, they
// woke the team 80 times a training step.
constexpr int64_t kTeamMinMultiplyAdds = int64_t{1} << 20;

// Whether C (m, n) = op(A) op(B) is shared by the team's threads: only where the tiled kernels
// take it, which compute each element with the same multiply-adds whatever the share (so any
// team trains the same bits as one thread), and not where one thread's call is cheaper than
// waking the others. OpenBLAS's products stay on one thread: split over threads it rounded
// differently per share, and its serial build is not safe to call from several at once.
bool shared_by_team(const DenseContext& dense, bool transpose_a, bool transpose_b, int64_t m,
                    int64_t n, int64_t k) {
  return dense.team.size() > 1 && m * n * k >= kTeamMinMultiplyAdds &&
         skinny_and_tiled(transpose_a, transpose_b, m, n, k);
}

// Note [batches in pieces]: a dense layer's batch of more than kSkinnyMaxBatch rows (a rank's 512,
// say), where its weights stay in cache (at most kUncachedWeightBytes), runs as pieces of
// kBatchPiece rows: forward and input gradient piece by piece, the weight gradient as the sum of
// the pieces' products, added in the pieces' order. Each piece is a skinny product for the tiled
// kernels, which a rank's threads share (Note [threads per rank]), where the whole batch was one
// OpenBLAS call on one thread; the pieces depend only on the batch, so any number of threads
// computes the same bits. On one thread the pieces ran within a few percent of OpenBLAS's one call
// on W2's layers at 512 and 1024 rows (benchmarks/results/xeon/batches_in_pieces.md). Weights
// from memory stay with OpenBLAS: there each piece reads them again, and the input gradient's
// tiles ran ~20% below OpenBLAS on W3's layers (same file).
constexpr int64_t kBatchPiece = kSkinnyMaxBatch;

bool in_batch_pieces(const DenseContext& dense, int64_t batch, int64_t in, int64_t out) {
  return !dense.bf16 && batch > kBatchPiece && tiled_gemm_available() && !skinny_to_blas() &&
         !is_small_product(batch, out, in) &&
         static_cast<size_t>(in * out) * sizeof(float) <= kUncachedWeightBytes;
}

// Calls piece(first_row, rows) for each piece of the batch, in order.
template <typename Piece>
void for_each_piece(int64_t batch, Piece piece) {
  for (int64_t first = 0; first < batch; first += kBatchPiece)
    piece(first, std::min(kBatchPiece, batch - first));
}

}  // namespace

std::unique_ptr<Bf16Products> make_bf16_products() {
  return std::make_unique<Bf16Products>(fp32_gemm);
}

std::string gemm_description(bool bf16) {
  return bf16 ? "dense products: " + bf16_products_description() : fp32_gemm_description();
}

void dense_forward(const DenseContext& dense, const float* x, const float* w, const float* b,
                   float* y, int64_t batch, int64_t in, int64_t out, Activation act) {
  if (dense.bf16) {
    dense.bf16->forward(dense.team, x, w, y, batch, in, out);
    return bias_activate(y, b, y, batch, out, 0, out, act);
  }
  if (in_batch_pieces(dense, batch, in, out))
    return for_each_piece(batch, [&](int64_t first, int64_t rows) {
      dense_forward(dense, x + first * in, w, b, y + first * out, rows, in, out, act);
    });
  if (!shared_by_team(dense, false, true, batch, out, in)) {
    fp32_gemm(false, true, batch, out, in, x, w, y);  // (batch, in) x (out, in)^T
    bias_activate(y, b, y, batch, out, 0, out, act);
    return;
  }
  // Each thread takes a share of the weight rows (output columns), so each streams its share of
  // the weights once, into a block of its own that it then adds the bias to and spreads into y.
  ThreadTeam& team = dense.team;
  team.run([&](int t) {
    const auto [c0, c1] = ThreadTeam::share(out, tiled_row_grain(), t, team.size());
    if (c0 == c1) return;
    thread_local std::vector<float> product_buffer;
    float* const product = scratch(product_buffer, static_cast<size_t>(batch * (c1 - c0)));
    fp32_gemm(false, true, batch, c1 - c0, in, x, w + c0 * in, product);
    bias_activate(product, b, y, batch, out, c0, c1, act);
  });
}

namespace {

// dx (batch, in) = dy (batch, out) w (out, in), in fp32.
void input_grad_product(const DenseContext& dense, const float* w, const float* dy, float* dx,
                        int64_t batch, int64_t in, int64_t out) {
  // Threads take shares of dx's columns where w comes from memory, each reading its share of w
  // (W3, 1 rank x 2 threads: 1.10x the samples/s of shares of the batch's rows, which each read
  // all of w); otherwise shares of the batch's rows, each transposing only its rows of dy (W2:
  // column shares measured ~3% slower).
  if (!shared_by_team(dense, false, false, batch, in, out))
    return fp32_gemm(false, false, batch, in, out, dy, w, dx);  // (batch, out) x (out, in)
  ThreadTeam& team = dense.team;
  const bool weights_from_memory =
      static_cast<size_t>(in * out) * sizeof(float) > kUncachedWeightBytes;
  team.run([&](int t) {
    if (weights_from_memory) {
      const auto [c0, c1] = ThreadTeam::share(in, tiled_column_grain(), t, team.size());
      tiled_input_grad_columns(batch, in, out, dy, w, dx, c0, c1);
      return;
    }
    const auto [r0, r1] = ThreadTeam::share(batch, 1, t, team.size());
    if (r0 < r1) fp32_gemm(false, false, r1 - r0, in, out, dy + r0 * out, w, dx + r0 * in);
  });
}

}  // namespace

void dense_input_grad(const DenseContext& dense, const float* w, const float* y, float* dy,
                      float* dx, int64_t batch, int64_t in, int64_t out, Activation act) {
  activation_grad(act, y, dy, dy, static_cast<size_t>(batch * out));
  if (!dx) return;
  if (dense.bf16) return dense.bf16->input_grad(dense.team, dy, w, dx, batch, in, out);
  if (in_batch_pieces(dense, batch, in, out))
    return for_each_piece(batch, [&](int64_t first, int64_t rows) {
      input_grad_product(dense, w, dy + first * out, dx + first * in, rows, in, out);
    });
  input_grad_product(dense, w, dy, dx, batch, in, out);
}

namespace {

// Rows [first_row, end_row) of dw summed over the batch's pieces (Note [batches in pieces]): each
// thread sums its share of the rows, the pieces' blocks added in the pieces' order, and hands them
// to consume as one block.
void weight_grad_in_pieces(const DenseContext& dense, const float* x, const float* dy,
                           int64_t batch, int64_t in, int64_t out, int64_t first_row,
                           int64_t end_row, const GradBlockConsumer& consume) {
  ThreadTeam& team = dense.team;
  team.run([&](int t) {
    // Plain locals: the lambdas below capture them (clang 14 captures no structured bindings).
    const std::pair<int64_t, int64_t> share =
        ThreadTeam::share(end_row - first_row, tiled_row_grain(), t, team.size());
    const int64_t r0 = share.first, r1 = share.second;
    if (r0 == r1) return;
    thread_local std::vector<float> sums_buffer;
    float* const sums = scratch(sums_buffer, static_cast<size_t>((r1 - r0) * in));
    for_each_piece(batch, [&](int64_t first, int64_t rows) {
      const GradBlockConsumer add_up{.consume = [&](const GradBlock& block) {
        for (int64_t r = 0; r < block.rows; ++r) {
          float* const to = sums + (block.first_row - first_row - r0 + r) * in + block.first_col;
          const float* const from = block.data + r * block.cols;
          for (int64_t c = 0; c < block.cols; ++c) to[c] = first == 0 ? from[c] : to[c] + from[c];
        }
      }};
      tiled_weight_grad_blocks(out, in, rows, dy + first * out, x + first * in, first_row + r0,
                               first_row + r1, add_up);
    });
    consume(
        {.first_row = first_row + r0, .rows = r1 - r0, .first_col = 0, .cols = in, .data = sums});
  });
}

// Rows [first_row, end_row) of dw = (batch, out)^T x (batch, in), block by block to `consume`:
// through the tiled kernels, threads taking shares of the rows (consume may be called from
// several threads at once, on different rows), where they take the product; else as one block.
// Each element is the same chain of multiply-adds over the batch in every kernel here, so blocks
// and a stored dw hold the same bits. The tiles fetch the consumer's next rows only where those
// come from memory (Note [update in backward]); weights in L2 (W2's) would pay the fetches for
// nothing. A momentum step goes into the tiles wherever they run (Note [update in the tiles]):
// for W2's weights, in L3, it hides there too (W2 with momentum 0.9, one rank: 1.027x;
// benchmarks/results/zen4/momentum_in_tiles_l3.md).
void weight_grad_blocks(const DenseContext& dense, const float* x, const float* dy, int64_t batch,
                        int64_t in, int64_t out, int64_t first_row, int64_t end_row,
                        const GradBlockConsumer& consume) {
  if (dense.bf16)
    return dense.bf16->weight_grad(
        dense.team, dy, x, batch, in, out, first_row, end_row,
        [&consume, in](int64_t first, int64_t rows, const float* block) {
          consume({.first_row = first, .rows = rows, .first_col = 0, .cols = in, .data = block});
        });
  if (in_batch_pieces(dense, batch, in, out))
    return weight_grad_in_pieces(dense, x, dy, batch, in, out, first_row, end_row, consume);
  if (!skinny_and_tiled(true, false, out, in, batch)) {
    // dy's columns [first_row, end_row), made contiguous for the general GEMM where they are not
    // all of them.
    const int64_t rows = end_row - first_row;
    thread_local std::vector<float> columns_buffer, block_buffer;
    const float* columns = dy;
    if (rows != out) {
      float* const copy = scratch(columns_buffer, static_cast<size_t>(batch * rows));
      for (int64_t r = 0; r < batch; ++r)
        std::copy_n(dy + r * out + first_row, rows, copy + r * rows);
      columns = copy;
    }
    float* const block = scratch(block_buffer, static_cast<size_t>(rows * in));
    fp32_gemm(true, false, rows, in, batch, columns, x, block);
    return consume(
        {.first_row = first_row, .rows = rows, .first_col = 0, .cols = in, .data = block});
  }
  const bool fetch = static_cast<size_t>(in * out) * sizeof(float) > kUncachedWeightBytes;
  const GradBlockConsumer without_fetches{.consume = consume.consume};
  const GradBlockConsumer& chosen = fetch ? consume : without_fetches;
  ThreadTeam& team = dense.team;
  team.run([&](int t) {
    const auto [r0, r1] = ThreadTeam::share(end_row - first_row, tiled_row_grain(), t, team.size());
    if (consume.momentum_step) {  // Note [update in the tiles]
      const bool finite = tiled_weight_grad_momentum_step(out, in, batch, dy, x, first_row + r0,
                                                          first_row + r1, *consume.momentum_step);
      if (r1 > r0) consume.stepped(first_row + r0, r1 - r0, finite);
      return;
    }
    tiled_weight_grad_blocks(out, in, batch, dy, x, first_row + r0, first_row + r1, chosen);
    _mm_sfence();  // this thread's streamed stores, before the team's join publishes them
  });
}

}  // namespace

void dense_backward(const DenseContext& dense, const float* x, const float* w, const float* y,
                    float* dy, float* dx, float* dw, float* db, int64_t batch, int64_t in,
                    int64_t out, Activation act, bool accumulate,
                    const GradBlockConsumer* consume_dw) {
  // dx first: consume_dw may update w.
  dense_input_grad(dense, w, y, dy, dx, batch, in, out, act);
  if (!accumulate) std::fill(db, db + out, 0.0f);
  add_column_sums(dy, batch, out, out, db);
  if (consume_dw) return weight_grad_blocks(dense, x, dy, batch, in, out, 0, out, *consume_dw);
  // A large gradient, to be summed over ranks or stepped on after backward: computed in blocks
  // in cache and streamed out, so its lines are not read before being written (W3, 2 ranks:
  // backward ~1 ms faster).
  if (!accumulate && static_cast<size_t>(in * out) * sizeof(float) > kUncachedWeightBytes &&
      !dense.bf16 && skinny_and_tiled(true, false, out, in, batch))
    return weight_grad_blocks(
        dense, x, dy, batch, in, out, 0, out, {.consume = [dw, in](const GradBlock& block) {
          for (int64_t r = 0; r < block.rows; ++r)
            stream_copy(dw + (block.first_row + r) * in + block.first_col,
                        block.data + r * block.cols, static_cast<size_t>(block.cols));
        }});
  if (dense.bf16) return dense.bf16->weight_grad(dense.team, dy, x, dw, batch, in, out, accumulate);
  if (in_batch_pieces(dense, batch, in, out))
    return weight_grad_in_pieces(dense, x, dy, batch, in, out, 0, out,
                                 {.consume = [dw, in, accumulate](const GradBlock& block) {
                                   float* const to = dw + block.first_row * in;
                                   const auto count = static_cast<size_t>(block.rows * in);
                                   for (size_t i = 0; i < count; ++i)
                                     to[i] = accumulate ? to[i] + block.data[i] : block.data[i];
                                 }});
  fp32_gemm(true, false, out, in, batch, dy, x, dw, accumulate);
}

void dense_weight_grad_rows(const DenseContext& dense, const float* x, const float* dy,
                            int64_t batch, int64_t in, int64_t out, int64_t first_row,
                            int64_t end_row, float* db, const GradBlockConsumer& consume) {
  if (first_row >= end_row) return;
  std::fill(db, db + (end_row - first_row), 0.0f);
  add_column_sums(dy + first_row, batch, end_row - first_row, out, db);
  weight_grad_blocks(dense, x, dy, batch, in, out, first_row, end_row, consume);
}

}  // namespace ddp::cpu
