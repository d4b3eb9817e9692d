#pragma once
// Note [weight penalty]: Keras' kernel_regularizer adds l1 * sum |w| + l2 * sum w^2 of a layer's
// weight (not its bias) to the loss. The gradients summed over ranks must carry its gradient
// once, so rank 0 alone adds it, to each tensor's gradient as soon as backward has finished that
// tensor (before its bucket may leave, with overlap): N ranks then train what one rank does. The
// penalty is part of the reported loss, training and validation, as Keras reports it.

#include <span>
#include <vector>

#include "backend/backend.h"
#include "nn/sequential.h"

namespace ddp {

class WeightPenalty {
 public:
  WeightPenalty() = default;
  // The entries with a penalty (l1 or l2 > 0) among `entries`.
  explicit WeightPenalty(const std::vector<ParamEntry>& entries);

  bool empty() const { return tensors_.empty(); }
  // A step begins: no tensor has had its gradient.
  void begin_step() { pending_ = tensors_.size(); }
  // Adds the penalty's gradient to `grads` for every penalized tensor at or after `offset` that
  // has not had it this step (backward finishes tensors from the end); returns their penalty.
  double add_gradients(ComputeBackend& backend, std::span<const float> params,
                       std::span<float> grads, size_t offset);
  // The whole penalty at `params`.
  double value(ComputeBackend& backend, std::span<const float> params) const;

 private:
  std::vector<ParamEntry> tensors_;  // ascending offsets
  size_t pending_ = 0;               // tensors_[pending_...] have had their gradient this step
};

}  // namespace ddp
