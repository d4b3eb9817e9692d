#include "train/weight_penalty.h"

namespace ddp {

WeightPenalty::WeightPenalty(const std::vector<ParamEntry>& entries) {
  for (const ParamEntry& e : entries)
    if (e.l1 > 0 || e.l2 > 0) tensors_.push_back(e);
}

double WeightPenalty::add_gradients(ComputeBackend& backend, std::span<const float> params,
                                    std::span<float> grads, size_t offset) {
  double penalty = 0;
  for (; pending_ > 0 && tensors_[pending_ - 1].offset >= offset; --pending_) {
    const ParamEntry& t = tensors_[pending_ - 1];
    penalty += backend.weight_penalty(params.data() + t.offset, grads.data() + t.offset, t.count,
                                      t.l1, t.l2);
  }
  return penalty;
}

double WeightPenalty::value(ComputeBackend& backend, std::span<const float> params) const {
  double penalty = 0;
  for (const ParamEntry& t : tensors_)
    penalty += backend.weight_penalty(params.data() + t.offset, nullptr, t.count, t.l1, t.l2);
  return penalty;
}

}  // namespace ddp
