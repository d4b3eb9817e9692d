#include "optim/sgd.h"

namespace ddp {

Sgd::Sgd(ComputeBackend& backend, size_t count, const SgdHyper& hyper)
    : Optimizer(backend, count),
      hyper_(hyper),
      velocity_(hyper.momentum != 0 ? DeviceBuffer(backend, count) : DeviceBuffer()) {}

bool Sgd::update_piece(size_t state_offset, std::span<float> params, std::span<const float> grads,
                       float lr, GradCheck check) {
  float* velocity = velocity_.size() == 0 ? nullptr : velocity_.data() + state_offset;
  return backend_.sgd_update(params.data(), grads.data(), velocity, params.size(), lr, grad_scale_,
                             hyper_, check);
}

std::optional<float> Sgd::momentum_only_coefficient() const {
  // The tiles apply PyTorch's rule (Note [update in the tiles]).
  if (hyper_.momentum == 0 || hyper_.weight_decay != 0 || hyper_.nesterov || hyper_.keras_rule)
    return std::nullopt;
  return hyper_.momentum;
}

std::vector<StateTensor> Sgd::own_state() {
  if (velocity_.size() == 0) return {};
  return {{"velocity", velocity_.span()}};
}

}  // namespace ddp
