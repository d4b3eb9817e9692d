#pragma once

#include <memory>
#include <vector>

#include "nn/layer.h"

namespace ddp {

// Layers applied one after the other inside a layer (a residual block's branches, Note [residual
// blocks]): each output kept for backward, in buffers of the stack's own sized by the largest
// batch seen. No layer of it aliases its input (Flatten, Reshape) or takes a padding mask: the
// config refuses those inside a block.
class LayerStack {
 public:
  explicit LayerStack(std::vector<std::unique_ptr<Layer>> layers);

  bool empty() const { return layers_.empty(); }
  const std::vector<std::unique_ptr<Layer>>& layers() const { return layers_; }

  // x: (batch, input shape). Returns the last layer's output, kept until the next forward.
  const float* forward(ComputeBackend& backend, const float* x, int64_t batch);
  // After forward from the same x: dy, the last output's gradient, may be overwritten; writes the
  // layers' parameter gradients (adds to them when `accumulate`) and dx unless it is null.
  void backward(ComputeBackend& backend, const float* x, float* dy, float* dx, int64_t batch,
                bool accumulate);
  // Note [batch statistics]: the layers' collectives, in forward's order and in backward's.
  void forward_without_rows(ComputeBackend& backend);
  void backward_without_rows(ComputeBackend& backend);

 private:
  std::vector<std::unique_ptr<Layer>> layers_;
  std::vector<DeviceBuffer> outputs_;  // per layer, (batch, its output shape)
  DeviceBuffer grad_a_, grad_b_;       // backward's gradients between layers, in turn
};

}  // namespace ddp
