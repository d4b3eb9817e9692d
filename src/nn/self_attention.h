#pragma once

#include <cmath>

#include "nn/dense.h"
#include "nn/layer_parts.h"

namespace ddp {

// Note [self-attention]: multi-head self-attention over a sequence x (steps, dim), PyTorch's
// nn.MultiheadAttention with query, key and value all x (batch_first): one projection of x to
// each step's query, key and value (in_proj, (3 dim, dim)), each of `heads` heads of head_dim =
// dim / heads columns attending over the sample's steps, probs = softmax(q k^T / sqrt(head_dim)),
// each step's output the probs' mix of the values, and the heads' outputs side by side through
// out_proj (dim, dim). Dropout (training only) drops attention probabilities, by the sample's
// position as Note [dropout mask]. A padding mask (Note [padding masks]) takes the padding steps
// out as keys: no step attends to them (Keras' and PyTorch's key padding mask); they are still
// computed as queries, as both frameworks do, and the mask passes on. With `causal`, each step's
// query scores only its own key and those before it (PyTorch's is_causal, KerasHub's
// use_causal_mask): the later keys score as padding does, so no step's output depends on the
// steps after it.
//
// The heads are not copied out: their queries, keys and values are strided views of the projected
// rows (ComputeBackend::batched_matmul, one batch of the samples per head), and their outputs are
// written side by side into the rows out_proj reads. A sample's steps^2 probabilities per head are
// kept for backward.
//
// The keys' bias has no gradient: it adds q.b to every score of a query's row, which softmax
// does not see. Its computed gradient is rounding noise (each row's score gradients sum to zero
// but for rounding), and Adam, which divides a gradient by its own size, would step it by the full
// learning rate in the noise's direction, differently for every split of the batch over ranks
// (PyTorch's does so). So backward writes it as zero, the gradient finite differences find.
class SelfAttention final : public MaskPassingLayer {
 public:
  SelfAttention(int64_t steps, int64_t dim, int64_t heads, float dropout, bool causal);

  std::string type_name() const override { return "MultiHeadAttention"; }
  Shape output_shape() const override { return Shape{steps_, dim_}; }
  // in_proj_weight, in_proj_bias, out_proj.weight, out_proj.bias (PyTorch's names)
  std::vector<ParamSpec> param_specs() const override { return parts_.param_specs(); }
  void bind(std::span<float* const> params, std::span<float* const> grads) override {
    parts_.bind(params, grads);
    in_proj_bias_grad_ = grads[1];
  }
  void init_params(Rng& rng, std::span<const std::span<float>> params) const override {
    parts_.init_params(rng, params);
  }
  void set_pass(const Pass& pass) override;
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 private:
  // Where a head's matrices lie for every sample, from the start of their buffer: its queries,
  // keys or values among the projected rows (part 0, 1, 2), its steps x steps block of the
  // probabilities, or its columns of the rows of dim (the mixed values).
  struct View {
    int64_t offset, row_stride, item_stride;
    ComputeBackend::MatrixOperand in(const float* data, bool transposed = false) const {
      return {data + offset, row_stride, item_stride, transposed};
    }
    ComputeBackend::MatrixResult out(float* data) const {
      return {data + offset, row_stride, item_stride};
    }
  };
  View part(int part, int64_t h) const {
    return {part * dim_ + h * head_dim_, 3 * dim_, steps_ * 3 * dim_};
  }
  View probs_block(int64_t h) const {
    return {h * steps_ * steps_, steps_, heads_ * steps_ * steps_};
  }
  View head_columns(int64_t h) const { return {h * head_dim_, dim_, steps_ * dim_}; }
  float dropout_rate() const { return pass_.training ? dropout_ : 0.0f; }
  // The scores' scale, 1 / sqrt(head_dim).
  float score_scale() const {
    return static_cast<float>(1 / std::sqrt(static_cast<double>(head_dim_)));
  }

  int64_t steps_, dim_, heads_, head_dim_;
  float dropout_;
  bool causal_;
  Dense in_proj_, out_proj_;
  LayerParts parts_;
  Pass pass_;
  float* in_proj_bias_grad_ = nullptr;  // (3 dim): the queries', keys' and values' bias gradients
  DeviceBuffer qkv_;                    // (batch, steps, 3 dim): each step's query, key and value
  DeviceBuffer probs_;                  // (batch, heads, steps, steps)
  DeviceBuffer dropped_;  // the probabilities after dropout (training with a rate only)
  DeviceBuffer mixed_;    // (batch, steps, dim): the heads' outputs side by side
  DeviceBuffer scratch_;  // backward: the probabilities' gradient, then the scores'
  DeviceBuffer dmixed_, dqkv_;
};

}  // namespace ddp
