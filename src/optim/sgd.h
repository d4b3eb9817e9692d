#pragma once

#include "backend/backend.h"
#include "optim/optimizer.h"

namespace ddp {

// torch.optim.SGD semantics: v = mu v + (g + wd p); p -= lr (nesterov ? g + mu v : v); or
// Keras' (SgdHyper), whose velocity holds steps rather than gradients, so that a checkpoint of
// one does not resume the other: its name is "sgd_keras".
class Sgd final : public Optimizer {
 public:
  Sgd(ComputeBackend& backend, size_t count, const SgdHyper& hyper);
  std::string name() const override { return hyper_.keras_rule ? "sgd_keras" : "sgd"; }

 protected:
  std::vector<StateTensor> own_state() override;
  bool update_piece(size_t state_offset, std::span<float> params, std::span<const float> grads,
                    float lr, GradCheck check) override;
  std::optional<float> momentum_only_coefficient() const override;

 private:
  SgdHyper hyper_;
  DeviceBuffer velocity_;  // (count), empty without momentum
};

}  // namespace ddp
