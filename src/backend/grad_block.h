#pragma once
// How a dense layer's weight gradient reaches an update in backward (Note [update in backward]):
// in blocks handed to a consumer, or, for plain momentum, as a step the tiles apply themselves.

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace ddp {

// Rows [first_row, first_row + rows) x columns [first_col, first_col + cols) of a dense layer's
// weight gradient (out, in): (rows, cols) floats of backend memory, valid during the call.
struct GradBlock {
  int64_t first_row = 0, rows = 0, first_col = 0, cols = 0;
  const float* data = nullptr;

  bool whole_rows(int64_t in) const { return first_col == 0 && cols == in; }
  // The last block of its rows: they are complete once it is consumed.
  bool ends_rows(int64_t in) const { return first_col + cols == in; }
};

// SGD's step where it is momentum and nothing else (no weight decay, not Nesterov), on a dense
// layer's weights: v = momentum v + g; w -= lr v, element (r, c) of each at weight + r * in + c
// and velocity + r * in + c.
struct MomentumStep {
  float lr = 0, momentum = 0;
  float* weight = nullptr;
  float* velocity = nullptr;
};

// Takes a dense layer's weight gradient block by block (Note [update in backward]): every element
// once, and the blocks of a row in column order from one thread.
struct GradBlockConsumer {
  std::function<void(const GradBlock&)> consume;
  // What consume reads and writes beside the block, element for element (the weights and the
  // optimizer's state at the same offsets: element (r, c) of each at stream + r * in + c): a CPU
  // backend fetches the next block's part of them into cache while it computes the current block.
  std::vector<const float*> streams{};
  // Where consume's update is a MomentumStep: a CPU backend may apply it in its weight-gradient
  // tiles instead of handing blocks to consume (Note [update in the tiles]), and then calls
  // `stepped` for each share of rows it so updated, with whether their gradients were finite.
  std::optional<MomentumStep> momentum_step{};
  std::function<void(int64_t first_row, int64_t rows, bool finite)> stepped{};

  void operator()(const GradBlock& block) const { consume(block); }
};

}  // namespace ddp
