#pragma once

#include "backend/backend.h"
#include "optim/optimizer.h"

namespace ddp {

// torch.optim.SGD semantics: v = mu v + (g + wd p); p -= lr (nesterov ? g + mu v : v).
class Sgd final : public Optimizer {
 public:
  Sgd(ComputeBackend& backend, size_t count, const SgdHyper& hyper);
  std::string name() const override { return "sgd"; }
  bool step(std::span<float> params, std::span<const float> grads, float lr,
            GradCheck check) override;
  std::vector<StateTensor> state() override;

 private:
  ComputeBackend& backend_;
  SgdHyper hyper_;
  DeviceBuffer velocity_;  // (count), empty without momentum
};

}  // namespace ddp
