#pragma once

#include "nn/layer.h"

namespace ddp {

// A learned position embedding added to a sequence (steps, features): y = x + P with P a trained
// (steps, features) table, one row per position, as the positions half of KerasHub's
// TokenAndPositionEmbedding (its PositionEmbedding added back to the tokens), BERT's and GPT-2's
// learned positions. Self-attention sees no order (Note [self-attention]); this gives it one.
// KerasHub's initializer: Glorot uniform. A padding mask passes on.
//
// Forward and backward are the embedding ops with each sample's position ids 0, 1, ...: the
// table's gradient sums the batch's rows of each position in their order, on every backend.
class PositionEmbedding final : public MaskPassingLayer {
 public:
  PositionEmbedding(int64_t steps, int64_t features) : steps_(steps), features_(features) {}

  std::string type_name() const override { return "PositionEmbedding"; }
  Shape output_shape() const override { return Shape{steps_, features_}; }
  std::vector<ParamSpec> param_specs() const override {  // weight (steps, features)
    return {{"weight", Shape{steps_, features_}, {}}};
  }
  void bind(std::span<float* const> params, std::span<float* const> grads) override {
    table_ = params[0];
    table_grad_ = grads[0];
  }
  void init_params(Rng& rng, std::span<const std::span<float>> params) const override;
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 private:
  // The position ids of `batch` samples, (batch, steps), made once for the largest batch.
  const float* positions(ComputeBackend& backend, int64_t batch);

  int64_t steps_, features_;
  float* table_ = nullptr;
  float* table_grad_ = nullptr;
  DeviceBuffer positions_;
};

}  // namespace ddp
