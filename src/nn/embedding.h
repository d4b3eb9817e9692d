#pragma once

#include "nn/layer.h"

namespace ddp {

// Keras' Embedding (PyTorch's nn.Embedding): each input value is a token id in [0, vocabulary),
// which becomes that row of the trained table (vocabulary, dim), the layout of both libraries.
// Its input holds ids, not values to differentiate: it is a model's first layer, and the data
// are checked to hold whole numbers in range before training (Dataset::check_token_ids), so that
// a bad id is a one-line error naming the sample instead of a read out of the table. Keras'
// initializer: uniform in [-0.05, 0.05]. With mask_zero (Keras'), id 0 is padding: its output
// carries a mask, 0 where the id is 0 and 1 elsewhere (Note [padding masks]); id 0 still has its
// row, as in Keras.
class Embedding final : public Layer {
 public:
  Embedding(Shape input, int64_t vocabulary, int64_t dim, bool mask_zero = false);

  std::string type_name() const override { return "Embedding"; }
  Shape output_shape() const override;  // the input's shape, then dim
  int64_t token_vocabulary() const override { return vocabulary_; }
  std::vector<ParamSpec> param_specs() const override;  // weight (vocabulary, dim)
  void bind(std::span<float* const> params, std::span<float* const> grads) override;
  void init_params(Rng& rng, std::span<const std::span<float>> params) const override;
  const float* output_mask() const override { return mask_zero_ ? mask_.data() : nullptr; }
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  // The table's gradient alone: each token's row of dy added to its id's row.
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 private:
  Shape input_;
  int64_t vocabulary_;
  int64_t dim_;
  float* table_ = nullptr;
  float* table_grad_ = nullptr;
  bool mask_zero_;
  DeviceBuffer mask_, zeros_;  // (batch, input's values); zeros_ as many
};

}  // namespace ddp
