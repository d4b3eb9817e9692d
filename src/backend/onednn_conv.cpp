#include "backend/onednn_conv.h"

#include <dnnl.h>

#include <algorithm>
#include <dnnl.hpp>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "backend/column_sums.h"
#include "backend/cpu_window_ops.h"
#include "backend/onednn_threads.h"
#include "core/error.h"

namespace ddp {
namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// The primitives of one convolution shape and batch size, with their scratch memory. The
// primitives and reorders are made at their first use and kept: made anew on each call (from
// oneDNN's own cache) they cost every call again, and a batch shared by a rank's threads is several
// calls (Note [convolutions on threads]).
struct Primitives {
  dnnl::convolution_forward::primitive_desc forward;
  dnnl::convolution_backward_data::primitive_desc backward_data;
  dnnl::memory weight_forward, weight_backward;
  // With bf16 products: the weight gradient's primitive, and the bf16 copies of the operands
  // (input, output gradient) in the layouts each primitive chose.
  std::optional<dnnl::convolution_backward_weights::primitive_desc> backward_weights = {};
  dnnl::memory src = {}, diff_dst = {}, weight_grad_src = {}, weight_grad_diff_dst = {},
               weight_grad = {};
  std::optional<dnnl::convolution_forward> run_forward = {};
  std::optional<dnnl::convolution_backward_data> run_backward_data = {};
  std::optional<dnnl::convolution_backward_weights> run_backward_weights = {};
  // Into the layouts above: our weights for forward and the input gradient, the bf16 operands.
  std::optional<dnnl::reorder> to_weight_forward = {}, to_weight_backward = {}, to_src = {},
                               to_diff_dst = {}, to_weight_grad_src = {},
                               to_weight_grad_diff_dst = {};
  // The weight gradient into our layout, written or added to ([accumulate]).
  std::optional<dnnl::reorder> from_weight_grad[2] = {};
};

// `from` copied into `to`, in its layout and type, by `reorder`.
dnnl::memory& reordered(dnnl::memory& from, dnnl::memory& to, std::optional<dnnl::reorder>& reorder,
                        dnnl::stream& stream) {
  if (!reorder) reorder.emplace(from, to);
  reorder->execute(stream, from, to);
  return to;
}

// `from` converted into `to` (its layout and type), or `from` itself where they are the same.
dnnl::memory& converted(dnnl::memory& from, dnnl::memory& to, std::optional<dnnl::reorder>& reorder,
                        dnnl::stream& stream) {
  return from.get_desc() == to.get_desc() ? from : reordered(from, to, reorder, stream);
}

template <typename Primitive, typename Desc>
Primitive& made(std::optional<Primitive>& primitive, const Desc& desc) {
  if (!primitive) primitive.emplace(desc);
  return *primitive;
}

dnnl::algorithm eltwise_of(Activation act) {
  switch (act) {
    case Activation::kRelu:
      return dnnl::algorithm::eltwise_relu;
    case Activation::kTanh:
      return dnnl::algorithm::eltwise_tanh;
    case Activation::kSigmoid:
      return dnnl::algorithm::eltwise_logistic;
    default:  // linear; Note [fused activations]: the others are layers of their own
      break;
  }
  return dnnl::algorithm::undef;
}

}  // namespace

struct OneDnnConvolutions::State {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  // (batch, height, width, channels, kernel_h, kernel_w, stride_h, stride_w, pad_top, pad_left,
  // out_h, out_w, filters, activation)
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                         int64_t, int64_t, int64_t, int64_t, int64_t, int>;
  std::map<Key, Primitives> cache;
  std::vector<float> cols;  // im2col windows of kWeightGradChunk samples
  bool bf16 = false;        // Note [bf16 products]

  Primitives& get(int64_t batch, const Window2d& w, int64_t filters, Activation act) {
    const Key key{batch,      w.height,
                  w.width,    w.channels,
                  w.kernel_h, w.kernel_w,
                  w.stride_h, w.stride_w,
                  w.pad_top,  w.pad_left,
                  w.out_h,    w.out_w,
                  filters,    static_cast<int>(act)};
    auto it = cache.find(key);
    if (it != cache.end()) return it->second;
    // fp32: the input and output gradient read in place; bf16: converted into the layouts the
    // primitives choose.
    const dt operands = bf16 ? dt::bf16 : dt::f32;
    const tag layout = bf16 ? tag::any : tag::nhwc;
    const dnnl::memory::desc src({batch, w.channels, w.height, w.width}, operands, layout);
    const dnnl::memory::desc dst({batch, filters, w.out_h, w.out_w}, dt::f32, tag::nhwc);
    const dnnl::memory::desc diff_dst({batch, filters, w.out_h, w.out_w}, operands, layout);
    const dnnl::memory::desc diff_src({batch, w.channels, w.height, w.width}, dt::f32, tag::nhwc);
    const dnnl::memory::desc any_weight({filters, w.channels, w.kernel_h, w.kernel_w}, operands,
                                        tag::any);
    const dnnl::memory::desc bias({filters}, dt::f32, tag::a);
    // The padding after: what the output size needs beyond the input (Window2d's "same" rule).
    const dnnl::memory::dims strides{w.stride_h, w.stride_w}, before{w.pad_top, w.pad_left};
    const dnnl::memory::dims after{(w.out_h - 1) * w.stride_h + w.kernel_h - w.height - w.pad_top,
                                   (w.out_w - 1) * w.stride_w + w.kernel_w - w.width - w.pad_left};
    dnnl::primitive_attr attr;
    if (act != Activation::kLinear) {
      dnnl::post_ops ops;
      ops.append_eltwise(1.0f, eltwise_of(act), 0.0f, 0.0f);
      attr.set_post_ops(ops);
    }
    const auto conv = dnnl::algorithm::convolution_direct;
    dnnl::convolution_forward::primitive_desc forward(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, conv, src, any_weight,
                                        bias, dst, strides, before, after),
        attr, engine);
    dnnl::convolution_backward_data::primitive_desc backward_data(
        dnnl::convolution_backward_data::desc(conv, diff_src, any_weight, diff_dst, strides, before,
                                              after),
        engine, forward);
    Primitives p{forward, backward_data, dnnl::memory(forward.weights_desc(), engine),
                 dnnl::memory(backward_data.weights_desc(), engine)};
    if (bf16) {
      const dnnl::memory::desc weight_grad({filters, w.channels, w.kernel_h, w.kernel_w}, dt::f32,
                                           tag::any);
      p.backward_weights.emplace(dnnl::convolution_backward_weights::desc(
                                     conv, src, weight_grad, diff_dst, strides, before, after),
                                 engine, forward);
      p.src = dnnl::memory(forward.src_desc(), engine);
      p.diff_dst = dnnl::memory(backward_data.diff_dst_desc(), engine);
      p.weight_grad_src = dnnl::memory(p.backward_weights->src_desc(), engine);
      p.weight_grad_diff_dst = dnnl::memory(p.backward_weights->diff_dst_desc(), engine);
      p.weight_grad = dnnl::memory(p.backward_weights->diff_weights_desc(), engine);
    }
    return cache.emplace(key, std::move(p)).first->second;
  }

  // Our (filters, kh, kw, channels) weights: oneDNN's "ohwi" plain layout.
  dnnl::memory plain_weights(const float* weight, int64_t filters, const Window2d& w) {
    const dnnl::memory::desc plain({filters, w.channels, w.kernel_h, w.kernel_w}, dt::f32,
                                   tag::ohwi);
    return dnnl::memory(plain, engine, const_cast<float*>(weight));
  }
  // NHWC images (or output gradients) of `channels`, as fp32 in our memory.
  dnnl::memory images(const float* data, int64_t batch, int64_t channels, int64_t height,
                      int64_t width) {
    return dnnl::memory({{batch, channels, height, width}, dt::f32, tag::nhwc}, engine,
                        const_cast<float*>(data));
  }

  // The weight gradient as a product: dweight (filters, patch) = dz^T (filters, pixels) x the
  // windows (pixels, patch), a few samples' windows at a time so that they are still in cache.
  void fp32_weight_grad(const float* x, const float* dz, float* dweight, int64_t batch,
                        const Window2d& w, int64_t filters, bool accumulate) {
    const int64_t pixels = w.out_pixels(), patch = w.patch(),
                  image = w.height * w.width * w.channels;
    const int64_t chunk = std::min(batch, kWeightGradChunk);
    cols.resize(static_cast<size_t>(chunk * pixels * patch));
    for (int64_t first = 0; first < batch; first += chunk) {
      const int64_t n = std::min(chunk, batch - first);
      cpu::im2col(x + first * image, cols.data(), n, w);
      const float beta = accumulate || first > 0 ? 1.0f : 0.0f;
      const dnnl_status_t status =
          dnnl_sgemm('T', 'N', filters, patch, n * pixels, 1.0f, dz + first * pixels * filters,
                     filters, cols.data(), patch, beta, dweight, patch);
      if (status != dnnl_success)
        throw RuntimeError("oneDNN sgemm failed (status " + std::to_string(status) +
                           ") on a convolution weight gradient of " + std::to_string(filters) +
                           " x " + std::to_string(patch));
    }
  }

  // Note [bf16 products]: the weight gradient as oneDNN's bf16 convolution computes it, into
  // `dweight` in our layout (added to it with accumulate).
  void bf16_weight_grad(Primitives& p, const float* x, const float* dz, float* dweight,
                        int64_t batch, const Window2d& w, int64_t filters, bool accumulate) {
    dnnl::memory x_f32 = images(x, batch, w.channels, w.height, w.width);
    dnnl::memory dz_f32 = images(dz, batch, filters, w.out_h, w.out_w);
    made(p.run_backward_weights, *p.backward_weights)
        .execute(stream,
                 {{DNNL_ARG_SRC, converted(x_f32, p.weight_grad_src, p.to_weight_grad_src, stream)},
                  {DNNL_ARG_DIFF_DST,
                   converted(dz_f32, p.weight_grad_diff_dst, p.to_weight_grad_diff_dst, stream)},
                  {DNNL_ARG_DIFF_WEIGHTS, p.weight_grad}});
    dnnl::memory plain = plain_weights(dweight, filters, w);
    std::optional<dnnl::reorder>& into_plain = p.from_weight_grad[accumulate];
    if (!into_plain) {
      dnnl::primitive_attr sum;
      if (accumulate) {
        dnnl::post_ops ops;
        ops.append_sum(1.0f);
        sum.set_post_ops(ops);
      }
      into_plain.emplace(dnnl::reorder::primitive_desc(p.weight_grad, plain, sum));
    }
    into_plain->execute(stream, p.weight_grad, plain);
  }
};

OneDnnConvolutions::OneDnnConvolutions(bool bf16) : state_(std::make_unique<State>()) {
  state_->bf16 = bf16;
}

OneDnnConvolutions::~OneDnnConvolutions() = default;

bool OneDnnConvolutions::bf16() const { return state_->bf16; }

void OneDnnConvolutions::forward(const float* x, const float* weight, const float* bias, float* y,
                                 int64_t batch, const Window2d& w, int64_t filters,
                                 Activation act) {
  onednn_on_this_thread_only();
  State& s = *state_;
  Primitives& p = s.get(batch, w, filters, act);
  dnnl::memory plain = s.plain_weights(weight, filters, w);
  reordered(plain, p.weight_forward, p.to_weight_forward, s.stream);
  dnnl::memory x_f32 = s.images(x, batch, w.channels, w.height, w.width);
  dnnl::memory& src = s.bf16 ? converted(x_f32, p.src, p.to_src, s.stream) : x_f32;
  dnnl::memory b(p.forward.bias_desc(), s.engine, const_cast<float*>(bias));
  dnnl::memory dst(p.forward.dst_desc(), s.engine, y);
  made(p.run_forward, p.forward)
      .execute(s.stream, {{DNNL_ARG_SRC, src},
                          {DNNL_ARG_WEIGHTS, p.weight_forward},
                          {DNNL_ARG_BIAS, b},
                          {DNNL_ARG_DST, dst}});
  s.stream.wait();
}

void OneDnnConvolutions::backward(const float* x, const float* weight, const float* dz, float* dx,
                                  float* dweight, float* dbias, int64_t batch, const Window2d& w,
                                  int64_t filters, bool accumulate) {
  onednn_on_this_thread_only();
  State& s = *state_;
  // The activation only changes the forward primitive; the input gradient's is shared.
  Primitives& p = s.get(batch, w, filters, Activation::kLinear);
  if (s.bf16) {
    s.bf16_weight_grad(p, x, dz, dweight, batch, w, filters, accumulate);
  } else {
    s.fp32_weight_grad(x, dz, dweight, batch, w, filters, accumulate);
  }
  const int64_t pixels = w.out_pixels();
  if (!accumulate) std::fill(dbias, dbias + filters, 0.0f);
  cpu::add_column_sums(dz, batch * pixels, filters, filters, dbias);
  if (dx) {
    dnnl::memory plain = s.plain_weights(weight, filters, w);
    reordered(plain, p.weight_backward, p.to_weight_backward, s.stream);
    dnnl::memory diff_src(p.backward_data.diff_src_desc(), s.engine, dx);
    dnnl::memory dz_f32 = s.images(dz, batch, filters, w.out_h, w.out_w);
    dnnl::memory& diff_dst =
        s.bf16 ? converted(dz_f32, p.diff_dst, p.to_diff_dst, s.stream) : dz_f32;
    made(p.run_backward_data, p.backward_data)
        .execute(s.stream, {{DNNL_ARG_DIFF_DST, diff_dst},
                            {DNNL_ARG_WEIGHTS, p.weight_backward},
                            {DNNL_ARG_DIFF_SRC, diff_src}});
  }
  s.stream.wait();
}

}  // namespace ddp
