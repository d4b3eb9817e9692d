#pragma once

#include "nn/layer.h"
#include "nn/layer_bias.h"

namespace ddp {

// Keras' LSTM (PyTorch's nn.LSTM of one layer, batch_first) over (steps, features): tanh and
// sigmoid gates, h and c zero at the first step; the output is the last step's h (units), or every
// step's (steps, units) with return_sequences. Bidirectional (Keras' Bidirectional(LSTM(...)),
// PyTorch's bidirectional=True): a second LSTM of its own weights reads the steps last to first,
// and each output is the two directions' h side by side (2 units): with return_sequences each
// step's, the reverse one's at the step it read; otherwise each direction's last, the reverse
// one's after reading the first step (PyTorch's h_n, Keras' concatenation).
//
// Keras' dropout and recurrent_dropout in training passes: each direction's input x and its h
// before each recurrent product multiplied by a mask of its own, 0 or 1 / (1 - rate) per sample
// and value, the same at every step (Keras' LSTMCell), drawn as the Dropout layer's are (Note
// [dropout mask]: from the sample's position, so that N ranks train as one process).
//
// Parameters in PyTorch's names and layouts, per direction (the reverse one's names end in
// _reverse): weight_ih_l0 (4 units, features), weight_hh_l0 (4 units, units), bias_ih_l0 (4
// units), the gates in their order i, f, g, o (Keras' too); one bias, as Keras (PyTorch's second,
// bias_hh_l0, is the same sum's other half: train/model_weights.cpp adds it in on import and
// exports it as zero). Keras' initializers: Glorot-uniform input weights, orthogonal recurrent
// weights, a zero bias but the forget gate's, 1.
//
// Note [LSTM steps]: the products of the input weights, one GEMM over all steps at once; then
// step by step the recurrent product h W_hh^T (a GEMM of the batch's rows) and the cell's
// elementwise update. Internally time-major: a step's rows of the batch are contiguous, so each
// step's GEMM reads and writes whole matrices, and the weight gradients are two GEMMs over all
// steps (the gates' gradients against the inputs, and against the h's before each step).
// Backward goes back through the steps, each recurrent gradient dgates W_hh a GEMM with W_hh
// transposed once per backward. Forward keeps every step's gates, c and h for it, indexed by
// the step they belong to: for the forward direction h before step t is slot t and after it slot
// t + 1; for the reverse one, before it slot t + 1 and after it slot t (slot `steps` the zero
// start), so that either direction's h before each step is `steps` contiguous slots.
class Lstm final : public Layer {
 public:
  Lstm(int64_t steps, int64_t features, int64_t units, bool return_sequences, bool use_bias,
       bool bidirectional = false, float dropout = 0, float recurrent_dropout = 0);

  std::string type_name() const override;
  Shape output_shape() const override;
  std::vector<ParamSpec> param_specs() const override;
  void bind(std::span<float* const> params, std::span<float* const> grads) override;
  void set_pass(const Pass& pass) override { pass_ = pass; }
  void init_params(Rng& rng, std::span<const std::span<float>> params) const override;
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 private:
  // One direction's parameters, gradients and what forward keeps for backward.
  struct Direction {
    explicit Direction(int64_t units, bool use_bias) : bias(4 * units, use_bias) {}
    float* weight_ih = nullptr;  // (4 units, features)
    float* weight_hh = nullptr;  // (4 units, units)
    float* weight_ih_grad = nullptr;
    float* weight_hh_grad = nullptr;
    LayerBias bias;               // (4 units)
    DeviceBuffer input_products;  // (steps, batch, 4 units)
    DeviceBuffer gates;           // (steps, batch, 4 units): i, f, g, o after their activations
    DeviceBuffer h, c;            // (steps + 1, batch, units): see Note [LSTM steps]
    DeviceBuffer dx_steps;        // (steps, batch, features)
    DeviceBuffer x_masked;        // (steps, batch, features): the input after its dropout
    DeviceBuffer h_masked;        // (steps, batch, units): each step's h before, after its dropout
    const float* inputs = nullptr;  // what the input products read: x_steps_ or x_masked
  };
  int directions() const { return bidirectional_ ? 2 : 1; }
  // This pass's dropout rates (0 outside training) and direction d's masks' keys.
  float input_rate() const { return pass_.training ? dropout_ : 0.0f; }
  float recurrent_rate() const { return pass_.training ? recurrent_dropout_ : 0.0f; }
  uint64_t input_key(int d) const;
  uint64_t recurrent_key(int d) const;
  // Direction d's mask of `rate` and `key` on each step of a (steps, batch, width) tensor.
  void mask_steps(ComputeBackend& backend, const float* from, float* to, int64_t batch,
                  int64_t width, float rate, uint64_t key) const;
  // Forward's steps over x in direction d, keeping in the scratch what backward reads.
  void run_steps(ComputeBackend& backend, int d, int64_t batch);
  void backward_steps(ComputeBackend& backend, int d, const float* dy, int64_t batch,
                      bool accumulate, bool input_grad);
  // Rows of `width` between (batch, steps, stride) at column `column` and (steps, batch, width):
  // `back` the other way.
  void reorder(ComputeBackend& backend, const float* from, float* to, int64_t batch, int64_t width,
               int64_t stride, int64_t column, bool back) const;
  float* sized(ComputeBackend& backend, DeviceBuffer& buffer, int64_t count);

  int64_t steps_, features_, units_;
  bool return_sequences_, bidirectional_;
  float dropout_, recurrent_dropout_;
  Pass pass_;
  std::vector<Direction> directions_;
  LayerBias no_bias_gates_;          // zeros for the recurrent products, which the bias is not in
  LayerBias no_bias_units_;          // zeros for the recurrent gradient's product
  DeviceBuffer x_steps_;             // (steps, batch, features)
  DeviceBuffer recurrent_;           // (batch, 4 units): a step's recurrent product
  DeviceBuffer dgates_;              // (steps, batch, 4 units)
  DeviceBuffer dh_, dc_;             // (batch, units): the gradients carried to the step before
  DeviceBuffer dy_steps_;            // (steps, batch, units): a direction's dy, time-major
  DeviceBuffer weight_hh_t_;         // (units, 4 units)
  const float* steps_of_ = nullptr;  // the input and batch whose steps the scratch holds
  int64_t steps_batch_ = 0;
};

}  // namespace ddp
