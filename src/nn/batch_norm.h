#pragma once

#include <vector>

#include "nn/layer.h"

namespace ddp {

// Keras' BatchNormalization over the last axis (the channels of an NHWC image, the features of a
// flat input): y = gamma * (x - mean) / sqrt(var + epsilon) + beta per channel. A training pass
// normalizes with its batch's mean and biased variance and moves the running statistics towards
// them, running = momentum * running + (1 - momentum) * batch (Keras' momentum; PyTorch's is one
// minus it); inference normalizes with the running statistics.
//
// Note [batch statistics]: the statistics of a training pass are sums over its rows, made by the
// backend in double around a shift (the running mean, the same on every rank), and summed over
// ranks through Pass::sum_over_ranks, one small collective per layer and pass:
//  - the running statistics always move towards the global batch's statistics, so they are the
//    same on every rank (bit-identical: the same summed doubles, the same arithmetic) and the same
//    as one rank's with the whole batch. (PyTorch DDP instead broadcasts rank 0's, which saw only
//    rank 0's samples.)
//  - the normalization uses the rank's own rows (sync: false, the default, what PyTorch DDP does),
//    or the global batch's (sync: true, SyncBatchNorm), when backward sums its two per-channel
//    gradient terms over ranks too. Then N ranks train what one rank with the global batch would.
// A rank without rows in a partial last batch joins with zeros (forward_without_rows). Every
// layer's output has a last axis, so there is always a channel axis to normalize over.
class BatchNorm final : public Layer {
 public:
  BatchNorm(Shape shape, float momentum, float epsilon, bool sync);

  std::string type_name() const override { return "BatchNormalization"; }
  std::string describe() const override;
  Shape output_shape() const override { return shape_; }
  std::vector<ParamSpec> param_specs() const override;   // weight (gamma), bias (beta)
  std::vector<ParamSpec> buffer_specs() const override;  // running_mean, running_var
  void bind(std::span<float* const> params, std::span<float* const> grads) override;
  void bind_buffers(std::span<float* const> buffers) override;
  void init_params(Rng& rng, std::span<const std::span<float>> params) const override;
  void init_buffers(std::span<const std::span<float>> buffers) const override;
  // Frozen, it normalizes with its running statistics in training too, as Keras 3's does
  // (Note [frozen layers]).
  void set_pass(const Pass& pass) override {
    pass_ = pass;
    if (frozen()) pass_.training = false;
  }
  void forward_without_rows(ComputeBackend& backend) override;
  void backward_without_rows(ComputeBackend& backend) override;
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 private:
  // The training statistics from this rank's sums (channels Σx, then Σx(x - shift), then the row
  // count): sums them over ranks, moves the running statistics, and keeps mean_ and inv_std_ of
  // the rows this pass normalizes with.
  void learn_statistics(ComputeBackend& backend, std::span<const double> local);
  // mean_ and inv_std_ from sums of x and x(x - shift) over `count` rows.
  void set_statistics(std::span<const double> sums, std::span<const float> shift, double count);
  void sum_over_ranks(std::span<double> values) const;

  Shape shape_;
  int64_t channels_;
  float momentum_;
  float epsilon_;
  bool sync_;
  Pass pass_;
  float* gamma_ = nullptr;  // (channels)
  float* beta_ = nullptr;
  float* gamma_grad_ = nullptr;
  float* beta_grad_ = nullptr;
  float* running_mean_ = nullptr;  // (channels), backend memory
  float* running_var_ = nullptr;

  // Of the last training forward, for backward: per channel, in double on the host.
  std::vector<double> mean_;
  std::vector<double> inv_std_;      // 1 / sqrt(var + epsilon)
  double rows_ = 0;                  // rows normalized together (over all ranks when sync)
  std::vector<float> gamma_values_;  // host copy of gamma from the last forward
  std::vector<float> host_;          // staging of per-channel values
  DeviceBuffer coeffs_;              // (3, channels): the per-channel factors of the backend ops
  DeviceBuffer shift_;               // (channels): the mean of the last training forward
};

}  // namespace ddp
