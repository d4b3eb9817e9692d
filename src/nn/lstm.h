#pragma once

#include "nn/layer.h"
#include "nn/layer_bias.h"

namespace ddp {

// Keras' LSTM (PyTorch's nn.LSTM of one layer) over (steps, features): tanh and sigmoid gates,
// h and c zero at the first step; the output is the last step's h (units), or every step's
// (steps, units) with return_sequences. Parameters in PyTorch's names and layouts: weight_ih_l0
// (4 units, features), weight_hh_l0 (4 units, units), bias_ih_l0 (4 units), the gates in their
// order i, f, g, o (Keras' too); one bias, as Keras (PyTorch's second, bias_hh_l0, is the same
// sum's other half: exported models load with it zero). Keras' initializers: Glorot-uniform
// input weights, orthogonal recurrent weights, a zero bias but the forget gate's, 1.
//
// Note [LSTM steps]: the products of the input weights, one GEMM over all steps at once; then
// step by step the recurrent product h W_hh^T (a GEMM of the batch's rows) and the cell's
// elementwise update. Internally time-major: a step's rows of the batch are contiguous, so each
// step's GEMM reads and writes whole matrices, and the weight gradients are two GEMMs over all
// steps (the gates' gradients against the inputs, and against the h's before each step).
// Backward goes back through the steps, each recurrent gradient dgates W_hh a GEMM with W_hh
// transposed once per backward. Forward keeps every step's gates and c for it.
class Lstm final : public Layer {
 public:
  Lstm(int64_t steps, int64_t features, int64_t units, bool return_sequences, bool use_bias);

  std::string type_name() const override { return "LSTM"; }
  Shape output_shape() const override {
    return return_sequences_ ? Shape{steps_, units_} : Shape{units_};
  }
  std::vector<ParamSpec> param_specs() const override;
  void bind(std::span<float* const> params, std::span<float* const> grads) override;
  void init_params(Rng& rng, std::span<const std::span<float>> params) const override;
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 private:
  // Forward's steps over x, keeping in the scratch what backward reads.
  void run_steps(ComputeBackend& backend, const float* x, int64_t batch);
  // x (batch, steps, width) to (steps, batch, width) or, `back`, the other way.
  void reorder(ComputeBackend& backend, const float* from, float* to, int64_t batch, int64_t width,
               bool back) const;
  float* sized(ComputeBackend& backend, DeviceBuffer& buffer, int64_t count);

  int64_t steps_, features_, units_;
  bool return_sequences_;
  float* weight_ih_ = nullptr;  // (4 units, features)
  float* weight_hh_ = nullptr;  // (4 units, units)
  float* weight_ih_grad_ = nullptr;
  float* weight_hh_grad_ = nullptr;
  LayerBias bias_;                   // (4 units)
  LayerBias no_bias_gates_;          // zeros for the recurrent products, which the bias is not in
  LayerBias no_bias_units_;          // zeros for the recurrent gradient's product
  DeviceBuffer x_steps_;             // (steps, batch, features)
  DeviceBuffer input_products_;      // (steps, batch, 4 units)
  DeviceBuffer gates_;               // (steps, batch, 4 units): i, f, g, o after their activations
  DeviceBuffer h_;                   // (steps + 1, batch, units): h before each step, then the last
  DeviceBuffer c_;                   // (steps + 1, batch, units): the same for c
  DeviceBuffer recurrent_;           // (batch, 4 units): a step's recurrent product
  DeviceBuffer dgates_;              // (steps, batch, 4 units)
  DeviceBuffer dh_, dc_;             // (batch, units): the gradients carried to the step before
  DeviceBuffer dy_steps_;            // (steps, batch, units): return_sequences' dy, time-major
  DeviceBuffer dx_steps_;            // (steps, batch, features)
  DeviceBuffer weight_hh_t_;         // (units, 4 units)
  const float* steps_of_ = nullptr;  // the input and batch whose steps the scratch holds
  int64_t steps_batch_ = 0;
};

}  // namespace ddp
