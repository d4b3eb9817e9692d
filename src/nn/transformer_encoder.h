#pragma once

#include "nn/layer_norm.h"
#include "nn/self_attention.h"

namespace ddp {

// A transformer encoder block over a sequence (steps, dim), PyTorch's nn.TransformerEncoderLayer
// (batch_first) and KerasHub's TransformerEncoder: self-attention (Note [self-attention]) and a
// feed-forward pair of dense layers (dim -> intermediate with the activation -> dim), each added
// back to its input, with layer normalization after each sum (the default) or, normalize_first,
// before each branch (PyTorch's norm_first). Dropout (training only) as PyTorch's: on the
// attention probabilities, on the attention's output, after the activation and on the feed-forward
// output, each with its own masks by the sample's position (Note [dropout mask]). Its parameters
// carry PyTorch's names (self_attn.in_proj_weight, ..., linear1, linear2, norm1, norm2), so its
// state_dict loads as it is. A padding mask reaches the attention's keys and passes on. With
// `causal`, each step attends to itself and the steps before it alone (PyTorch's is_causal, its
// square subsequent mask): a step's output never depends on the steps after it.
class TransformerEncoder final : public MaskPassingLayer {
 public:
  TransformerEncoder(int64_t steps, int64_t dim, int64_t heads, int64_t intermediate,
                     Activation act, float dropout, float epsilon, bool normalize_first,
                     bool causal = false);

  std::string type_name() const override { return "TransformerEncoder"; }
  Shape output_shape() const override { return Shape{steps_, dim_}; }
  std::vector<ParamSpec> param_specs() const override { return parts_.param_specs(); }
  void bind(std::span<float* const> params, std::span<float* const> grads) override {
    parts_.bind(params, grads);
  }
  void init_params(Rng& rng, std::span<const std::span<float>> params) const override {
    parts_.init_params(rng, params);
  }
  void set_pass(const Pass& pass) override;
  void set_input_mask(const float* mask) override;
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 private:
  // The three dropouts after the attention (site 0), the activation (1) and the feed-forward
  // output (2), over rows of `width`, from `in` into `out` (the same mask forward and backward).
  void drop(ComputeBackend& backend, int site, const float* in, float* out, int64_t batch,
            int64_t width) const;
  // The feed-forward branch from `in` (rows, dim) into `out`, and back: d_out to d_in.
  void feed_forward(ComputeBackend& backend, const float* in, float* out, int64_t batch);
  void feed_forward_backward(ComputeBackend& backend, const float* in, float* d_out, float* d_in,
                             int64_t batch, bool accumulate);

  int64_t steps_, dim_, intermediate_;
  Activation act_;
  bool fused_;  // the activation inside linear1's kernels (Note [fused activations])
  float dropout_;
  bool normalize_first_;
  SelfAttention attention_;
  Dense linear1_, linear2_;
  LayerNorm norm1_, norm2_;
  LayerParts parts_;
  Pass pass_;
  // Saved by forward, each (batch, steps, dim) but the intermediate ones (batch, steps,
  // intermediate): the attention's input and output sum (the normalized input first where
  // normalize_first), the feed-forward's input, its pre-activation, activation and dropped
  // activation, and the second sum (post-norm).
  DeviceBuffer normalized_, sum1_, ff_in_, pre_, act_out_, dropped_, sum2_;
  DeviceBuffer d_a_, d_b_, d_c_, d_inner_;  // backward's scratch
};

}  // namespace ddp
