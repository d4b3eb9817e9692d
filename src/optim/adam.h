#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "optim/optimizer.h"

namespace ddp {

// torch.optim.Adam semantics, bias-corrected; weight_decay is L2 added to the gradient, or with
// hyper.decoupled_weight_decay torch.optim.AdamW's decay of the weights ("adamw": its checkpoints
// hold the same moments, but the name keeps a resume from switching rules unnoticed).
class Adam final : public Optimizer {
 public:
  Adam(ComputeBackend& backend, size_t count, const AdamHyper& hyper);
  std::string name() const override { return hyper_.decoupled_weight_decay ? "adamw" : "adam"; }

 protected:
  std::vector<StateTensor> own_state() override;
  bool update_piece(size_t state_offset, std::span<float> params, std::span<const float> grads,
                    float lr, GradCheck check) override;

 private:
  AdamHyper hyper_;
  DeviceBuffer m_;  // (count) first moment
  DeviceBuffer v_;  // (count) second moment
};

}  // namespace ddp
