#pragma once
// Note [update in backward]: where backward's gradients are the step's final ones the moment they
// are written (one rank, one micro-batch per step: nothing to sum), the optimizer updates each
// dense layer's weights block of rows by block of rows while backward computes them, from a
// block that is still in cache (tiled_weight_grad_blocks), instead of in a pass of its own over
// the whole model after backward. The gradient is then never written to memory nor read back:
// on W3 (58.8 MB of weights, SGD with momentum) that pass read g, w and v and wrote w and v, after
// the weight-gradient product had written g (a write that reads the line first), about 7 x 58.8
// MB, where the update in backward streams 4 x 58.8 MB (benchmarks/results/update_in_backward.md).
// The update is the optimizer's own over the same gradient bits (every GEMM kernel here sums a
// weight element over the batch in the same order), so parameters and optimizer state are
// bit-identical to an update after backward (tested). The update reads and writes the weights and
// the optimizer's state from memory while the products run from cache; so that the two overlap,
// the tiles of each weight-gradient block fetch into L2 the rows that the update will stream for
// the next block (GradBlockConsumer::streams), a line per step of their k loops, where the
// weights come from memory (W3, 1 rank: the update's own time 11.8 -> 6.0 ms a step, backward
// 2.56 -> 2.43 times forward; benchmarks/results/xeon/update_side_fetch.md); where the input
// would leave no room for them in L2, in blocks of column chunks (Note [weight-gradient chunks]).
// Where the step is SGD's momentum step alone, the tiles apply it themselves instead (Note [update
// in the tiles], backend/tiled_momentum_step.cpp). What backward did not update (layers without the
// hook, such as convolutions) is updated after it, as before.
// Not used where a step may be skipped (nonfinite: skip checks every gradient first), with a
// weight penalty (added to each tensor's gradient after its backward), with accumulation, on more
// than one rank (but where the ranks split the weight gradients by rows: Note [split weight
// gradients]), on a GPU (ComputeBackend::prefers_update_in_backward), or with
// training.update_in_backward: false. The time moves from the optimizer phase into backward's
// (ddp_bench reports that part of backward as phase_ms.backward_update; a step applied in the
// tiles runs inside the products and counts as theirs).

#include <chrono>
#include <mutex>
#include <span>
#include <utility>
#include <vector>

#include "comm/grad_sync.h"
#include "nn/layer.h"
#include "optim/optimizer.h"

namespace ddp {

class UpdateInBackward final : public InBackwardUpdate {
 public:
  // `params`: the flat parameter buffer that layers' pieces lie in. `enabled`: the run allows it.
  // `split`: where dense layers hand over their inputs instead (Note [split weight gradients]).
  UpdateInBackward(Optimizer& optimizer, std::span<float> params, bool enabled,
                   WeightGradSplit* split)
      : optimizer_(optimizer), params_(params), enabled_(enabled), split_(split) {}

  bool enabled() const { return enabled_; }
  // Starts a step at learning rate `lr`: the hook for the pass of its last backward, or null.
  InBackwardUpdate* begin_step(float lr);
  void update(std::span<float> params, std::span<const float> grads) override;
  GradBlockConsumer weight_consumer(float* weight, int64_t in, int64_t first_row,
                                    int64_t end_row) override;
  WeightGradSplit* split() override { return split_; }
  // After sync.finish(): updates through sync.step whatever backward did not, checking gradients
  // as `check` asks (backward's updates check them as nonfinite: stop asks) and reading them times
  // grad_scale (Note [gradient clipping]: never with updates inside backward, which came before
  // the scale was known). False when a gradient of the step was NaN or infinite.
  bool finish_step(GradSync& sync, GradCheck check, float grad_scale = 1);
  // Seconds the updates inside backward took since the last call, summed over the threads that
  // ran them: the part of backward's time that is the optimizer's, not its products' (the
  // benchmarks' roofline, benchmarks/compare_report.py). Zero unless timed.
  void set_timed(bool timed) { timed_ = timed; }
  double take_update_seconds();

 private:
  // Offset of `piece` in params_; logic_error unless it lies inside.
  size_t offset_of(std::span<const float> piece) const;
  // Adds what one call updated to the step's record: `updated` elements from `begin` (none while
  // a block leaves its rows incomplete), `finite` and the time it took.
  void record(size_t begin, size_t updated, bool finite, std::chrono::steady_clock::duration took);
  bool update_rest(size_t at, std::span<float> params, std::span<const float> grads,
                   GradCheck check);
  // The part of a weight matrix that `block` covers, from its gradients: update() for each of its
  // rows, which need not be whole (tiled_weight_grad_blocks).
  void update_block(float* weight, int64_t in, const GradBlock& block);
  // Where update() reads and writes for a piece that starts at `params`: the parameters and the
  // optimizer's state at the same offsets (for GradBlockConsumer::streams).
  std::vector<const float*> streams_beside(const float* params);

  Optimizer& optimizer_;
  std::span<float> params_;
  bool enabled_;
  WeightGradSplit* split_;
  bool timed_ = false;
  float lr_ = 0;
  bool finite_ = true;
  std::chrono::steady_clock::duration update_time_{};
  std::vector<std::pair<size_t, size_t>> updated_;  // [begin, end) in params_, this step
  std::mutex mutex_;  // over finite_, updated_ and update_time_, in backward
};

}  // namespace ddp
