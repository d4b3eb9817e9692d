#include "optim/sgd.h"

namespace ddp {

Sgd::Sgd(ComputeBackend& backend, size_t count, const SgdHyper& hyper)
    : backend_(backend),
      hyper_(hyper),
      velocity_(hyper.momentum != 0 ? DeviceBuffer(backend, count) : DeviceBuffer()) {}

bool Sgd::step(std::span<float> params, std::span<const float> grads, float lr, GradCheck check) {
  ++steps_;
  return backend_.sgd_update(params.data(), grads.data(), velocity_.data(), params.size(), lr,
                             hyper_, check);
}

std::vector<StateTensor> Sgd::state() {
  if (velocity_.size() == 0) return {};
  return {{"velocity", velocity_.span()}};
}

}  // namespace ddp
