#include "optim/rmsprop.h"

namespace ddp {

Rmsprop::Rmsprop(ComputeBackend& backend, size_t count, const RmspropHyper& hyper)
    : Optimizer(backend, count),
      hyper_(hyper),
      square_avg_(backend, count),
      momentum_buffer_(hyper.momentum != 0 ? DeviceBuffer(backend, count) : DeviceBuffer()),
      grad_avg_(hyper.centered ? DeviceBuffer(backend, count) : DeviceBuffer()) {}

bool Rmsprop::update_piece(size_t state_offset, std::span<float> params,
                           std::span<const float> grads, float lr, GradCheck check) {
  const auto at = [state_offset](DeviceBuffer& buffer) {
    return buffer.size() == 0 ? nullptr : buffer.data() + state_offset;
  };
  return backend_.rmsprop_update(params.data(), grads.data(),
                                 {at(square_avg_), at(momentum_buffer_), at(grad_avg_)},
                                 params.size(), lr, grad_scale_, hyper_, check);
}

// PyTorch's names for the state (torch.optim.RMSprop's state_dict).
std::vector<StateTensor> Rmsprop::own_state() {
  std::vector<StateTensor> tensors = {{"square_avg", square_avg_.span()}};
  if (momentum_buffer_.size() != 0) tensors.push_back({"momentum_buffer", momentum_buffer_.span()});
  if (grad_avg_.size() != 0) tensors.push_back({"grad_avg", grad_avg_.span()});
  return tensors;
}

}  // namespace ddp
