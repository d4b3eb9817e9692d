#pragma once

#include <cstdint>

#include "backend/backend.h"
#include "optim/optimizer.h"

namespace ddp {

// Adagrad, Adamax, NAdam and Lion (AdaptiveHyper: what each rule does). The state's names are
// PyTorch's (torch.optim.Adagrad's "sum", Adamax's "exp_avg" and "exp_inf", NAdam's "exp_avg" and
// "exp_avg_sq", lion-pytorch's "exp_avg"); NAdam's product of momentum coefficients is a function
// of the step count, worked out again on resuming. A rule's name ("adagrad" or "adagrad_keras")
// keeps a checkpoint from resuming under the other rule unnoticed.
class AdaptiveOptimizer final : public Optimizer {
 public:
  AdaptiveOptimizer(ComputeBackend& backend, size_t count, const AdaptiveHyper& hyper);
  std::string name() const override;

  // The step's coefficients at learning rate lr, after begin_step() (public for the tests).
  AdaptiveStep step_at(float lr);

 protected:
  std::vector<StateTensor> own_state() override;
  bool update_piece(size_t state_offset, std::span<float> params, std::span<const float> grads,
                    float lr, GradCheck check) override;
  // NAdam's momentum_product_ for this step.
  void began_step() override;

 private:
  AdaptiveHyper hyper_;
  DeviceBuffer first_;   // (count)
  DeviceBuffer second_;  // (count) Adamax and NAdam; empty otherwise
  // NAdam's mu_1 ... mu_t, in double, one factor a step; product_steps_ is its t.
  int64_t product_steps_ = 0;
  double momentum_product_ = 1;
};

// NAdam's product of momentum coefficients mu_1 ... mu_t after `steps` steps.
double nadam_momentum_product(const AdaptiveHyper& hyper, int64_t steps);

// The kind's name, as configs spell the type ("adagrad", "nadam").
std::string adaptive_name(AdaptiveHyper::Kind kind);

}  // namespace ddp
