#include "optim/adam.h"

namespace ddp {

Adam::Adam(ComputeBackend& backend, size_t count, const AdamHyper& hyper)
    : Optimizer(backend, count), hyper_(hyper), m_(backend, count), v_(backend, count) {}

bool Adam::update_piece(size_t state_offset, std::span<float> params, std::span<const float> grads,
                        float lr, GradCheck check) {
  return backend_.adam_update(params.data(), grads.data(), m_.data() + state_offset,
                              v_.data() + state_offset, params.size(), lr, grad_scale_, steps_,
                              hyper_, check);
}

std::vector<StateTensor> Adam::own_state() { return {{"m", m_.span()}, {"v", v_.span()}}; }

}  // namespace ddp
