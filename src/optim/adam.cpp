#include "optim/adam.h"

namespace ddp {

Adam::Adam(ComputeBackend& backend, size_t count, const AdamHyper& hyper)
    : backend_(backend), hyper_(hyper), m_(backend, count), v_(backend, count) {}

bool Adam::step(std::span<float> params, std::span<const float> grads, float lr, GradCheck check) {
  ++steps_;
  return backend_.adam_update(params.data(), grads.data(), m_.data(), v_.data(), params.size(), lr,
                              steps_, hyper_, check);
}

std::vector<StateTensor> Adam::state() { return {{"m", m_.span()}, {"v", v_.span()}}; }

}  // namespace ddp
