#include "nn/transformer_encoder.h"

#include "core/counter_hash.h"

namespace ddp {

namespace {
// The keys of the block's own dropouts, apart from its parts' (LayerParts::set_pass: 0 to 4).
constexpr uint64_t kFirstDropSite = 8;
}  // namespace

TransformerEncoder::TransformerEncoder(int64_t steps, int64_t dim, int64_t heads,
                                       int64_t intermediate, Activation act, float dropout,
                                       float epsilon, bool normalize_first, bool causal)
    : steps_(steps),
      dim_(dim),
      intermediate_(intermediate),
      act_(act),
      fused_(derivative_from_output(act)),
      dropout_(dropout),
      normalize_first_(normalize_first),
      attention_(steps, dim, heads, dropout, causal),
      linear1_(dim, intermediate, fused_ ? act : Activation::kLinear, true, Shape{steps}),
      linear2_(intermediate, dim, Activation::kLinear, true, Shape{steps}),
      norm1_(Shape{steps, dim}, epsilon),
      norm2_(Shape{steps, dim}, epsilon) {
  parts_.add("self_attn.", attention_);
  parts_.add("linear1.", linear1_);
  parts_.add("linear2.", linear2_);
  parts_.add("norm1.", norm1_);
  parts_.add("norm2.", norm2_);
}

void TransformerEncoder::set_pass(const Pass& pass) {
  pass_ = pass;
  parts_.set_pass(pass);
}

void TransformerEncoder::set_input_mask(const float* mask) {
  MaskPassingLayer::set_input_mask(mask);
  attention_.set_input_mask(mask);
}

void TransformerEncoder::drop(ComputeBackend& backend, int site, const float* in, float* out,
                              int64_t batch, int64_t width) const {
  const float rate = pass_.training ? dropout_ : 0.0f;
  if (rate == 0 && in == out) return;
  backend.dropout(in, out, batch, steps_ * width, 1, rate,
                  counter_hash(pass_.key, kFirstDropSite + static_cast<uint64_t>(site)),
                  pass_.first_position);
}

void TransformerEncoder::feed_forward(ComputeBackend& backend, const float* in, float* out,
                                      int64_t batch) {
  const int64_t inner = batch * steps_ * intermediate_;
  float* activated = sized(backend, act_out_, inner);
  if (fused_) {
    linear1_.forward(backend, in, activated, batch);
  } else {
    float* pre = sized(backend, pre_, inner);
    linear1_.forward(backend, in, pre, batch);
    backend.activation_forward(act_, pre, activated, static_cast<size_t>(inner));
  }
  float* dropped = dropout_ > 0 ? sized(backend, dropped_, inner) : activated;
  drop(backend, 1, activated, dropped, batch, intermediate_);
  linear2_.forward(backend, dropped, out, batch);
  drop(backend, 2, out, out, batch, dim_);
}

void TransformerEncoder::feed_forward_backward(ComputeBackend& backend, const float* in,
                                               float* d_out, float* d_in, int64_t batch,
                                               bool accumulate) {
  const int64_t inner = batch * steps_ * intermediate_;
  float* d_linear2 = sized(backend, d_c_, batch * steps_ * dim_);
  float* d_inner = sized(backend, d_inner_, inner);
  drop(backend, 2, d_out, d_linear2, batch, dim_);
  const float* dropped = dropout_ > 0 ? dropped_.data() : act_out_.data();
  linear2_.backward(backend, dropped, d_out, d_linear2, d_inner, batch, accumulate);
  drop(backend, 1, d_inner, d_inner, batch, intermediate_);
  if (fused_) {
    linear1_.backward(backend, in, act_out_.data(), d_inner, d_in, batch, accumulate);
    return;
  }
  backend.activation_backward(act_, pre_.data(), act_out_.data(), d_inner, d_inner,
                              static_cast<size_t>(inner));
  linear1_.backward(backend, in, pre_.data(), d_inner, d_in, batch, accumulate);
}

void TransformerEncoder::forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) {
  const int64_t count = batch * steps_ * dim_;
  float* sum1 = sized(backend, sum1_, count);
  float* ff_in = sized(backend, ff_in_, count);
  const float* attended = x;
  if (normalize_first_) {
    float* normalized = sized(backend, normalized_, count);
    norm1_.forward(backend, x, normalized, batch);
    attended = normalized;
  }
  attention_.forward(backend, attended, sum1, batch);
  drop(backend, 0, sum1, sum1, batch, dim_);
  backend.add_to(x, sum1, static_cast<size_t>(count));
  if (normalize_first_) {  // y = sum1 + ff(norm2(sum1))
    norm2_.forward(backend, sum1, ff_in, batch);
    feed_forward(backend, ff_in, y, batch);
    backend.add_to(sum1, y, static_cast<size_t>(count));
    return;
  }
  norm1_.forward(backend, sum1, ff_in, batch);  // y = norm2(ff_in + ff(ff_in))
  float* sum2 = sized(backend, sum2_, count);
  feed_forward(backend, ff_in, sum2, batch);
  backend.add_to(ff_in, sum2, static_cast<size_t>(count));
  norm2_.forward(backend, sum2, y, batch);
}

// Each sum's gradient goes to both its terms: the branch's input gradient is added to it.
void TransformerEncoder::backward(ComputeBackend& backend, const float* x, const float* y,
                                  float* dy, float* dx, int64_t batch, bool accumulate) {
  const int64_t count = batch * steps_ * dim_;
  float* d_a = sized(backend, d_a_, count);
  float* d_b = sized(backend, d_b_, count);
  const float* sum1 = sum1_.data();
  if (normalize_first_) {
    feed_forward_backward(backend, ff_in_.data(), dy, d_b, batch, accumulate);
    norm2_.backward(backend, sum1, ff_in_.data(), d_b, d_a, batch, accumulate);
    backend.add_to(dy, d_a, static_cast<size_t>(count));  // d_a: sum1's gradient
  } else {
    norm2_.backward(backend, sum2_.data(), y, dy, d_a, batch, accumulate);
    feed_forward_backward(backend, ff_in_.data(), d_a, d_b, batch, accumulate);
    backend.add_to(d_a, d_b, static_cast<size_t>(count));  // d_b: ff_in's gradient
    norm1_.backward(backend, sum1, ff_in_.data(), d_b, d_a, batch, accumulate);
  }
  float* d_attention = sized(backend, d_c_, count);
  drop(backend, 0, d_a, d_attention, batch, dim_);
  if (normalize_first_) {
    attention_.backward(backend, normalized_.data(), sum1, d_attention, d_b, batch, accumulate);
    norm1_.backward(backend, x, normalized_.data(), d_b, dx, batch, accumulate);
  } else {
    attention_.backward(backend, x, sum1, d_attention, dx, batch, accumulate);
  }
  if (dx) backend.add_to(d_a, dx, static_cast<size_t>(count));
}

}  // namespace ddp
