#include "nn/self_attention.h"

#include <limits>

namespace ddp {

SelfAttention::SelfAttention(int64_t steps, int64_t dim, int64_t heads, float dropout, bool causal)
    : steps_(steps),
      dim_(dim),
      heads_(heads),
      head_dim_(dim / heads),
      dropout_(dropout),
      causal_(causal),
      in_proj_(dim, 3 * dim, Activation::kLinear, true, Shape{steps}),
      out_proj_(dim, dim, Activation::kLinear, true, Shape{steps}) {
  parts_.add("in_proj_", in_proj_);
  parts_.add("out_proj.", out_proj_);
}

void SelfAttention::set_pass(const Pass& pass) {
  pass_ = pass;
  parts_.set_pass(pass);
}

void SelfAttention::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  const int64_t rows = batch * steps_, block = heads_ * steps_ * steps_;
  float* qkv = sized(backend, qkv_, rows * 3 * dim_);
  float* probs = sized(backend, probs_, batch * block);
  float* mixed = sized(backend, mixed_, rows * dim_);
  in_proj_.forward(backend, x, qkv, batch);
  const float scale = score_scale();
  for (int64_t h = 0; h < heads_; ++h)
    backend.batched_matmul(batch, steps_, steps_, head_dim_, scale, part(0, h).in(qkv),
                           part(1, h).in(qkv, /*transposed=*/true), probs_block(h).out(probs),
                           false);
  // Padding keys (and later ones, causal) score the lowest float: their weights come out 0
  // (CUDA's expf) or 2^-126 of the row's largest (the CPU's vector exp clamps its argument),
  // nothing beside any real key's; a sample with no real key attends evenly, finite (Keras' rule).
  if (output_mask() || causal_)
    backend.mask_keys(probs, output_mask(), causal_, batch, heads_ * steps_, steps_,
                      std::numeric_limits<float>::lowest());
  backend.softmax_forward(probs, probs, batch * heads_ * steps_, steps_);
  const float* mixing = probs;
  if (dropout_rate() > 0) {
    float* dropped = sized(backend, dropped_, batch * block);
    backend.dropout(probs, dropped, batch, block, 1, dropout_rate(), pass_.key,
                    pass_.first_position);
    mixing = dropped;
  }
  for (int64_t h = 0; h < heads_; ++h)
    backend.batched_matmul(batch, steps_, head_dim_, steps_, 1.0f, probs_block(h).in(mixing),
                           part(2, h).in(qkv), head_columns(h).out(mixed), false);
  out_proj_.forward(backend, mixed, y, batch);
}

// With P the probabilities (after dropout: Pd), O = Pd V per head: dPd = dO V^T, dV = Pd^T dO;
// dP through dropout's mask; the scores' gradient dS = softmax's backward of dP; dQ = s dS K and
// dK = s dS^T Q with s the scores' scale.
void SelfAttention::backward(ComputeBackend& backend, const float* x, const float* y, float* dy,
                             float* dx, int64_t batch, bool accumulate) {
  const int64_t rows = batch * steps_, block = heads_ * steps_ * steps_;
  const float* qkv = qkv_.data();
  const float* probs = probs_.data();
  const float* mixing = dropout_rate() > 0 ? dropped_.data() : probs;
  float* dmixed = sized(backend, dmixed_, rows * dim_);
  float* dprobs = sized(backend, scratch_, batch * block);
  float* dqkv = sized(backend, dqkv_, rows * 3 * dim_);
  out_proj_.backward(backend, mixed_.data(), y, dy, dmixed, batch, accumulate);
  for (int64_t h = 0; h < heads_; ++h) {
    backend.batched_matmul(batch, steps_, steps_, head_dim_, 1.0f, head_columns(h).in(dmixed),
                           part(2, h).in(qkv, /*transposed=*/true), probs_block(h).out(dprobs),
                           false);
    backend.batched_matmul(batch, steps_, head_dim_, steps_, 1.0f,
                           probs_block(h).in(mixing, /*transposed=*/true),
                           head_columns(h).in(dmixed), part(2, h).out(dqkv), false);
  }
  if (dropout_rate() > 0)
    backend.dropout(dprobs, dprobs, batch, block, 1, dropout_rate(), pass_.key,
                    pass_.first_position);
  backend.softmax_backward(probs, dprobs, dprobs, batch * heads_ * steps_, steps_);
  const float scale = score_scale();
  for (int64_t h = 0; h < heads_; ++h) {
    backend.batched_matmul(batch, steps_, head_dim_, steps_, scale, probs_block(h).in(dprobs),
                           part(1, h).in(qkv), part(0, h).out(dqkv), false);
    backend.batched_matmul(batch, steps_, head_dim_, steps_, scale,
                           probs_block(h).in(dprobs, /*transposed=*/true), part(0, h).in(qkv),
                           part(1, h).out(dqkv), false);
  }
  in_proj_.backward(backend, x, qkv, dqkv, dx, batch, accumulate);
  backend.fill_zero(in_proj_bias_grad_ + dim_, static_cast<size_t>(dim_));
}

}  // namespace ddp
