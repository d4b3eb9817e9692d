#include "nn/layer_stack.h"

#include <algorithm>

namespace ddp {

LayerStack::LayerStack(std::vector<std::unique_ptr<Layer>> layers)
    : layers_(std::move(layers)), outputs_(layers_.size()) {}

const float* LayerStack::forward(ComputeBackend& backend, const float* x, int64_t batch) {
  const float* current = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    float* out = sized(backend, outputs_[i], batch * layers_[i]->output_shape().numel());
    layers_[i]->forward(backend, current, out, batch);
    current = out;
  }
  return current;
}

void LayerStack::backward(ComputeBackend& backend, const float* x, float* dy, float* dx,
                          int64_t batch, bool accumulate) {
  int64_t largest = 0;  // the largest input gradient between two layers
  for (size_t i = 0; i + 1 < layers_.size(); ++i)
    largest = std::max(largest, layers_[i]->output_shape().numel());
  float* spare[2] = {sized(backend, grad_a_, batch * largest),
                     sized(backend, grad_b_, batch * largest)};
  for (size_t i = layers_.size(); i-- > 0;) {
    float* d_in = i == 0 ? dx : spare[i % 2];  // never dy: layer i+1 wrote it in the other one
    const float* in = i == 0 ? x : outputs_[i - 1].data();
    layers_[i]->backward(backend, in, outputs_[i].data(), dy, d_in, batch, accumulate);
    dy = d_in;
  }
}

void LayerStack::forward_without_rows(ComputeBackend& backend) {
  for (const auto& layer : layers_) layer->forward_without_rows(backend);
}

void LayerStack::backward_without_rows(ComputeBackend& backend) {
  for (size_t i = layers_.size(); i-- > 0;) layers_[i]->backward_without_rows(backend);
}

}  // namespace ddp
