#pragma once
// What backward hands to the optimizer as it goes: final gradients (Note [update in backward]),
// or a dense layer's input and output gradient, from which the ranks of one host compute its
// weight gradient together (Note [split weight gradients], comm/split_rows_sync.h).

#include <cstdint>
#include <span>
#include <vector>

#include "backend/backend.h"

namespace ddp {

class WeightGradSplit;

// Takes final gradients during backward and updates their parameters at once (Note [update in
// backward], train/update_in_backward.h).
class InBackwardUpdate {
 public:
  // `grads` are the final gradients of `params`, a piece of the model's flat parameter buffer;
  // `grads` need not lie in the gradient buffer, which is then not read for this piece. May be
  // called from several threads at once, on different pieces (Note [threads per rank]).
  virtual void update(std::span<float> params, std::span<const float> grads) = 0;
  // What takes the gradient of rows [first_row, end_row) of a weight matrix (rows `in` floats
  // apart, a piece of the flat buffer) during backward: its blocks update their part of the
  // weights (update() for each of a block's rows, which need not be whole; Note [update in
  // backward]), or where the optimizer's step is a MomentumStep, the tiles may apply it (Note
  // [update in the tiles]). Thread-safe as update().
  virtual GradBlockConsumer weight_consumer(float* weight, int64_t in, int64_t first_row,
                                            int64_t end_row) = 0;
  // Where dense layers hand over their inputs instead of computing weight gradients; null where
  // each rank computes its own.
  virtual WeightGradSplit* split() { return nullptr; }

 protected:
  ~InBackwardUpdate() = default;
};

// A dense layer's parameters: weight (out, in) and bias (out, or empty: Note [no bias]), pieces
// of the flat buffer.
struct DenseTensors {
  float* weight = nullptr;
  std::span<float> bias;
  int64_t in = 0;
  int64_t out = 0;
};

class WeightGradSplit {
 public:
  // During backward, in reverse layer order on every rank: the layer's input x (rows, in) and the
  // gradient at its pre-activation output dy (rows, out), this rank's rows of the global batch
  // (none on a rank without samples). Read after this rank's backward; the layer's weight and
  // bias gradients then go to `update`, each rank's share of their rows over the global batch.
  virtual void hand_over(const DenseTensors& layer, const float* x, const float* dy, int64_t rows,
                         InBackwardUpdate& update) = 0;

 protected:
  ~WeightGradSplit() = default;
};

}  // namespace ddp
