// W4's convolutions in ddp-trainer (im2col + GEMM, Note [convolution as GEMM]) against oneDNN
// 2.6 (Debian's libdnnl-dev, the library behind PyTorch's CPU convolutions), on one thread,
// alternating: batch 64, NHWC activations, 3x3 kernels, padding 1, stride 1, bias and relu. Each
// side does what a training step needs: forward (with bias and relu), then relu's backward, the
// weight and bias gradients, and the input gradient. oneDNN picks its own weight layout
// (format_tag::any, reordered once, outside the timing) and runs its best kernels for this CPU.
// Prints the median ms per pass and GFLOP/s (min-max) of 7 rounds of 20 passes.
//   OMP_NUM_THREADS=1 build/bench_conv_onednn

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <dnnl.hpp>
#include <functional>
#include <vector>

#include "backend/backend.h"
#include "core/rng.h"
#include "nn/conv2d.h"

namespace {

using namespace ddp;
using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

struct Shape4 {
  int64_t batch, size, channels, filters;
};

std::vector<float> random_values(size_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(n);
  for (float& x : v) x = rng.uniform(-1, 1);
  return v;
}

// One training pass of ddp-trainer's Conv2D.
std::function<void()> ours(ComputeBackend& backend, const Shape4& s,
                           std::vector<DeviceBuffer>& keep,
                           std::vector<std::unique_ptr<Conv2D>>& layers) {
  const Window2d w = Window2d::make(s.size, s.size, s.channels, 3, 3, 1, 1, true);
  layers.push_back(std::make_unique<Conv2D>(w, s.filters, Activation::kRelu));
  Conv2D& conv = *layers.back();
  auto buffer = [&](int64_t n, uint64_t seed) {
    keep.emplace_back(backend, static_cast<size_t>(n));
    const std::vector<float> v = random_values(static_cast<size_t>(n), seed);
    backend.copy_to_device(v.data(), keep.back().data(), v.size());
    return keep.back().data();
  };
  float* params[] = {buffer(s.filters * w.patch(), 1), buffer(s.filters, 2)};
  float* grads[] = {buffer(s.filters * w.patch(), 0), buffer(s.filters, 0)};
  conv.bind(params, grads);
  conv.set_pass({true, 0, 0, {}});
  const int64_t image = s.batch * s.size * s.size;
  float* x = buffer(image * s.channels, 3);
  float* y = buffer(image * s.filters, 0);
  float* dy = buffer(image * s.filters, 4);
  float* dx = buffer(image * s.channels, 0);
  return [&backend, &conv, x, y, dy, dx, b = s.batch] {
    conv.forward(backend, x, y, b);
    conv.backward(backend, x, y, dy, dx, b, false);
  };
}

// The same pass in oneDNN primitives.
struct OneDnn {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  std::vector<std::function<void()>> passes;

  dnnl::memory filled(const dnnl::memory::desc& md, uint64_t seed) {
    dnnl::memory m(md, engine);
    const std::vector<float> v = random_values(md.get_size() / sizeof(float), seed);
    std::copy(v.begin(), v.end(), static_cast<float*>(m.get_data_handle()));
    return m;
  }

  std::function<void()> pass(const Shape4& s) {
    const dnnl::memory::dims src{s.batch, s.channels, s.size, s.size};
    const dnnl::memory::dims dst{s.batch, s.filters, s.size, s.size};
    const dnnl::memory::dims wei{s.filters, s.channels, 3, 3}, bias{s.filters};
    const dnnl::memory::dims strides{1, 1}, pad{1, 1};
    const dnnl::memory::desc src_md(src, dt::f32, tag::nhwc), dst_md(dst, dt::f32, tag::nhwc);
    const dnnl::memory::desc wei_any(wei, dt::f32, tag::any), bias_md(bias, dt::f32, tag::a);
    dnnl::post_ops relu;
    relu.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0.0f, 0.0f);
    dnnl::primitive_attr attr;
    attr.set_post_ops(relu);
    const dnnl::convolution_forward::primitive_desc fwd(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training,
                                        dnnl::algorithm::convolution_direct, src_md, wei_any,
                                        bias_md, dst_md, strides, pad, pad),
        attr, engine);
    const dnnl::eltwise_backward::primitive_desc relu_bwd(
        dnnl::eltwise_backward::desc(dnnl::algorithm::eltwise_relu_use_dst_for_bwd, dst_md, dst_md,
                                     0.0f, 0.0f),
        engine,
        dnnl::eltwise_forward::primitive_desc(
            dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training,
                                        dnnl::algorithm::eltwise_relu_use_dst_for_bwd, dst_md, 0.0f,
                                        0.0f),
            engine));
    const dnnl::convolution_backward_data::primitive_desc bwd_data(
        dnnl::convolution_backward_data::desc(dnnl::algorithm::convolution_direct, src_md, wei_any,
                                              dst_md, strides, pad, pad),
        engine, fwd);
    const dnnl::convolution_backward_weights::primitive_desc bwd_weights(
        dnnl::convolution_backward_weights::desc(dnnl::algorithm::convolution_direct, src_md,
                                                 wei_any, bias_md, dst_md, strides, pad, pad),
        engine, fwd);
    auto x = filled(src_md, 3), y = filled(dst_md, 0), dy = filled(dst_md, 4);
    auto dz = filled(dst_md, 0), dx = filled(src_md, 0);
    auto w = filled(fwd.weights_desc(), 1), b = filled(bias_md, 2);
    auto w_bwd = filled(bwd_data.weights_desc(), 1);
    auto dw = filled(bwd_weights.diff_weights_desc(), 0), db = filled(bias_md, 0);
    return [this, fwd, relu_bwd, bwd_data, bwd_weights, x, y, dy, dz, dx, w, b, w_bwd, dw, db] {
      dnnl::convolution_forward(fwd).execute(
          stream,
          {{DNNL_ARG_SRC, x}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_BIAS, b}, {DNNL_ARG_DST, y}});
      dnnl::eltwise_backward(relu_bwd).execute(
          stream, {{DNNL_ARG_DST, y}, {DNNL_ARG_DIFF_DST, dy}, {DNNL_ARG_DIFF_SRC, dz}});
      dnnl::convolution_backward_weights(bwd_weights)
          .execute(stream, {{DNNL_ARG_SRC, x},
                            {DNNL_ARG_DIFF_DST, dz},
                            {DNNL_ARG_DIFF_WEIGHTS, dw},
                            {DNNL_ARG_DIFF_BIAS, db}});
      dnnl::convolution_backward_data(bwd_data).execute(
          stream, {{DNNL_ARG_DIFF_DST, dz}, {DNNL_ARG_WEIGHTS, w_bwd}, {DNNL_ARG_DIFF_SRC, dx}});
      stream.wait();
    };
  }
};

double ms_per_pass(const std::function<void()>& pass, int passes) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < passes; ++i) pass();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
             .count() /
         passes;
}

}  // namespace

int main() {
  const std::vector<Shape4> shapes = {{64, 28, 1, 32}, {64, 14, 32, 64}};  // W4's convolutions
  auto backend = make_cpu_backend();
  std::vector<DeviceBuffer> keep;
  std::vector<std::unique_ptr<Conv2D>> layers;
  OneDnn onednn;
  std::printf(
      "| layer | ddp-trainer ms (GFLOP/s; min-max) | oneDNN ms (GFLOP/s; min-max) | oneDNN's "
      "speed-up |\n"
      "|---|---|---|---|\n");
  for (const Shape4& s : shapes) {
    std::function<void()> sides[2] = {ours(*backend, s, keep, layers), onednn.pass(s)};
    std::vector<double> ms[2];
    for (auto& side : sides) side();  // warm-up: allocations, oneDNN's kernel generation
    for (int round = 0; round < 7; ++round)
      for (int k = 0; k < 2; ++k)
        ms[(k + round) % 2].push_back(ms_per_pass(sides[(k + round) % 2], 20));
    // Forward, dW and dx: three products of 2 * pixels * filters * patch flops each.
    const double gflop = 3 * 2.0 * s.batch * s.size * s.size * s.filters * 9 * s.channels / 1e9;
    double median[2];
    char cell[2][96];
    for (int k = 0; k < 2; ++k) {
      std::sort(ms[k].begin(), ms[k].end());
      median[k] = ms[k][ms[k].size() / 2];
      std::snprintf(cell[k], sizeof cell[k], "%.2f (%.0f; %.0f-%.0f)", median[k],
                    gflop / median[k] * 1e3, gflop / ms[k].back() * 1e3,
                    gflop / ms[k].front() * 1e3);
    }
    std::printf("| %lldx%lldx%lld -> %lld, batch %lld | %s | %s | %.2fx |\n",
                static_cast<long long>(s.size), static_cast<long long>(s.size),
                static_cast<long long>(s.channels), static_cast<long long>(s.filters),
                static_cast<long long>(s.batch), cell[0], cell[1], median[0] / median[1]);
  }
  return 0;
}
