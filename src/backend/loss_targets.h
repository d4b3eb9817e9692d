#pragma once
// What the backend's losses take besides the tensors, and what they return.

namespace ddp {

enum class TargetKind {
  kSparse,  // (rows) class indices stored as floats (exact below 2^24)
  kDense,   // (rows, cols) one-hot or real-valued targets
};
// A sparse target the losses skip (any value below zero does): Note [masked positions].
inline constexpr float kIgnoredTarget = -1.0f;

// Sums over the rows of one batch; callers divide by the sample count they aggregate over.
struct LossStats {
  double loss_sum = 0;
  double correct = 0;  // rows whose argmax prediction matches the target class
};

// When a loss's sums reach the caller: returned by the call, or (kLater) added to those that
// ComputeBackend::take_loss_stats() returns (Note [deferred readback]).
enum class Readback { kNow, kLater };

}  // namespace ddp
