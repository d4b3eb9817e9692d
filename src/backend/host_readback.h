#pragma once
// What a host backend keeps for Note [deferred readback]: its results are ready when a call
// returns, so a deferred one is only held until it is taken.

#include <atomic>
#include <cstdint>
#include <utility>

#include "backend/backend.h"

namespace ddp {

class HostReadback {
 public:
  // A loss's sums as Readback asks: returned, or held for take_loss_stats().
  LossStats deliver(const LossStats& stats, Readback readback) {
    if (readback == Readback::kNow) return stats;
    held_.loss_sum += stats.loss_sum;
    held_.correct += stats.correct;
    return {};
  }
  // An update's answer under GradCheck, from whether it found a NaN or infinity. Updates of one
  // step may run on several threads (Note [threads per rank]).
  bool checked(uint32_t non_finite, GradCheck check) {
    if (check == GradCheck::kFiniteLater) non_finite_.fetch_or(non_finite);
    return check != GradCheck::kFinite || non_finite == 0;
  }
  LossStats take_loss_stats() { return std::exchange(held_, LossStats{}); }
  bool take_nonfinite() { return non_finite_.exchange(0) != 0; }

 private:
  LossStats held_;
  std::atomic<uint32_t> non_finite_{0};
};

}  // namespace ddp
