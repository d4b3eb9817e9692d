#pragma once

#include "backend/backend.h"
#include "optim/optimizer.h"

namespace ddp {

// RMSprop by PyTorch's rule (torch.optim.RMSprop) or Keras 3's (RmspropHyper says where they
// differ). The rules' momentum buffers hold different things, so a checkpoint of one does not
// resume the other: the Keras rule's name is "rmsprop_keras".
class Rmsprop final : public Optimizer {
 public:
  Rmsprop(ComputeBackend& backend, size_t count, const RmspropHyper& hyper);
  std::string name() const override { return hyper_.keras_rule ? "rmsprop_keras" : "rmsprop"; }

 protected:
  std::vector<StateTensor> own_state() override;
  bool update_piece(size_t state_offset, std::span<float> params, std::span<const float> grads,
                    float lr, GradCheck check) override;

 private:
  RmspropHyper hyper_;
  DeviceBuffer square_avg_;       // (count)
  DeviceBuffer momentum_buffer_;  // (count), empty without momentum
  DeviceBuffer grad_avg_;         // (count), empty unless centered
};

}  // namespace ddp
