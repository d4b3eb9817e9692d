// A residual block (Note [residual blocks]) on the CUDA backend against the CPU's (the
// specification): a strided block with batch normalization and dropout inside and a projection
// shortcut with its own batch normalization, in training; the output, input gradient and every
// parameter gradient. And MobileNets' depthwise convolution, the layer of their blocks.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "gpu_test_support.h"
#include "nn/model_builder.h"
#include "train/config.h"

namespace ddp {
namespace {

TEST(CudaResidual, MatchesTheCpu) {
  auto cpu = make_cpu_backend(false);
  auto cuda = gpu();
  const Config config = parse_model_config(
      YAML::Load("{model: {input: [8, 8, 3], layers: [{type: residual, layers: ["
                 "{type: conv2d, filters: 6, kernel_size: 3, strides: 2, padding: same, "
                 "activation: relu}, {type: batch_normalization}, {type: dropout, rate: 0.2}, "
                 "{type: conv2d, filters: 6, kernel_size: 3, padding: same}], shortcut: ["
                 "{type: conv2d, filters: 6, kernel_size: 1, strides: 2, use_bias: false}, "
                 "{type: batch_normalization}]}]}}"),
      "c.yaml");
  const int64_t batch = 4;
  const auto x = random_values(static_cast<size_t>(batch * 8 * 8 * 3), 1);
  const auto dy = random_values(static_cast<size_t>(batch * 4 * 4 * 6), 2);
  std::vector<std::vector<float>> results[2];
  ComputeBackend* backends[2] = {cpu.get(), cuda.get()};
  for (int k = 0; k < 2; ++k) {
    ComputeBackend& be = *backends[k];
    auto model = build_sequential(be, Shape{8, 8, 3}, config.layers);
    const auto params = random_values(model->param_count(), 3, -0.5f, 0.5f);
    be.copy_to_device(params.data(), model->params().data(), params.size());
    model->init_params(4);  // the running statistics
    be.copy_to_device(params.data(), model->params().data(), params.size());
    Mirror grads(be, std::vector<float>(params.size()));
    model->bind_grads(grads.buffer.span());
    Pass pass;
    pass.training = true;
    pass.key = 21;
    model->set_pass(pass);
    Layer& block = *model->layers()[0];
    Mirror X(be, x), DY(be, dy), Y(be, std::vector<float>(dy.size())), DX(be, x);
    block.forward(be, X.buffer.data(), Y.buffer.data(), batch);
    block.backward(be, X.buffer.data(), Y.buffer.data(), DY.buffer.data(), DX.buffer.data(), batch,
                   false);
    results[k] = {Y.read(), DX.read(), grads.read()};
  }
  expect_close(results[0][0], results[1][0], "residual block y");
  expect_close(results[0][1], results[1][1], "its dx");
  expect_close(results[0][2], results[1][2], "its parameter gradients");
}

// Note [depthwise convolution]: the kernels (forward, the input's and the kernels' gradients) with
// the bias and a fused activation, strided with padding same, dilated, and without a bias.
TEST(CudaDepthwiseConvolution, MatchesTheCpu) {
  auto cpu = make_cpu_backend(false);
  auto cuda = gpu();
  for (const char* layer :
       {"{type: depthwise_conv2d, kernel_size: 3, strides: 2, padding: same, activation: relu6}",
        "{type: depthwise_conv2d, kernel_size: [3, 2], dilation_rate: [2, 3], padding: same, "
        "use_bias: false}"}) {
    const Config config = parse_model_config(
        YAML::Load(std::string("{model: {input: [9, 8, 5], layers: [") + layer + "]}}"), "c.yaml");
    const int64_t batch = 3;
    const auto x = random_values(static_cast<size_t>(batch * 9 * 8 * 5), 4);
    std::vector<std::vector<float>> results[2];
    ComputeBackend* backends[2] = {cpu.get(), cuda.get()};
    for (int k = 0; k < 2; ++k) {
      ComputeBackend& be = *backends[k];
      auto model = build_sequential(be, Shape{9, 8, 5}, config.layers);
      const auto params = random_values(model->param_count(), 5, -0.5f, 0.5f);
      be.copy_to_device(params.data(), model->params().data(), params.size());
      Mirror grads(be, std::vector<float>(params.size()));
      model->bind_grads(grads.buffer.span());
      Layer& depthwise = *model->layers()[0];
      const auto dy =
          random_values(static_cast<size_t>(batch * depthwise.output_shape().numel()), 6);
      Mirror X(be, x), DY(be, dy), Y(be, std::vector<float>(dy.size())), DX(be, x);
      depthwise.forward(be, X.buffer.data(), Y.buffer.data(), batch);
      depthwise.backward(be, X.buffer.data(), Y.buffer.data(), DY.buffer.data(), DX.buffer.data(),
                         batch, false);
      results[k] = {Y.read(), DX.read(), grads.read()};
    }
    expect_close(results[0][0], results[1][0], (std::string(layer) + " y").c_str());
    expect_close(results[0][1], results[1][1], "its dx");
    expect_close(results[0][2], results[1][2], "its parameter gradients");
  }
}

}  // namespace
}  // namespace ddp
