#pragma once

#include "nn/layer.h"
#include "nn/layer_bias.h"

namespace ddp {

// Keras' recurrent layers (LSTM, GRU, SimpleRNN; PyTorch's nn.LSTM, nn.GRU and nn.RNN of one
// layer, batch_first) over (steps, features), h zero at the first step; the output is the last
// step's h (units), or every step's (steps, units) with return_sequences. Bidirectional (Keras'
// Bidirectional(...), PyTorch's bidirectional=True): a second direction of its own weights reads
// the steps last to first, and each output is the two directions' h side by side (2 units): with
// return_sequences each step's, the reverse one's at the step it read; otherwise each direction's
// last, the reverse one's after reading the first step (PyTorch's h_n, Keras' concatenation).
//
// Keras' dropout and recurrent_dropout in training passes: each direction's input x and its h
// before each recurrent product multiplied by a mask of its own, 0 or 1 / (1 - rate) per sample
// and value, the same at every step and for every gate (Keras' cells draw one per gate where
// recurrent_dropout is set), drawn as the Dropout layer's are (Note [dropout mask]: from the
// sample's position, so that N ranks train as one process).
//
// Parameters in PyTorch's names and layouts, per direction (the reverse one's names end in
// _reverse): weight_ih_l0 (gates units, features), weight_hh_l0 (gates units, units), and the
// bias: the LSTM's one bias_ih_l0 (4 units; the SimpleRNN's (units)), the GRU's two as
// bias_ih_hh_l0 (2, 3 units), its input products' and its recurrent products' (PyTorch's bias_ih_l0
// and bias_hh_l0, Keras' (2, 3 units) bias). Keras' initializers: Glorot-uniform input weights,
// orthogonal recurrent weights, zero biases but what the cell sets.
//
// Note [recurrent steps]: the products of the input weights, one GEMM over all steps at once; then
// step by step the recurrent product h W_hh^T (a GEMM of the batch's rows, with the cell's
// recurrent bias or none) and the cell's elementwise update. Internally time-major: a step's rows
// of the batch are contiguous, so each step's GEMM reads and writes whole matrices, and the weight
// gradients are two GEMMs over all steps (the gates' gradients against the inputs, and against the
// h's before each step). Backward goes back through the steps, each recurrent gradient dhu W_hh a
// GEMM with W_hh transposed once per backward. Forward keeps every step's h and what the cell keeps
// for it, indexed by the step they belong to: for the forward direction h before step t is slot t
// and after it slot t + 1; for the reverse one, before it slot t + 1 and after it slot t (slot
// `steps` the zero start), so that either direction's h before each step is `steps` contiguous
// slots.
class Recurrent : public Layer {
 public:
  Shape output_shape() const override;
  std::vector<ParamSpec> param_specs() const override;
  void bind(std::span<float* const> params, std::span<float* const> grads) override;
  void set_pass(const Pass& pass) override { pass_ = pass; }
  // Note [padding masks]: a padding step leaves h (and the LSTM's c) as they were before it, its
  // output with return_sequences that h; backward sends its h's gradient on to the step before.
  void set_input_mask(const float* mask) override { mask_ = mask; }
  const float* output_mask() const override { return return_sequences_ ? mask_ : nullptr; }
  void init_params(Rng& rng, std::span<const std::span<float>> params) const override;
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

 protected:
  // What a cell is: its gate blocks per unit in the products (LSTM 4, GRU 3, SimpleRNN 1), the
  // blocks per unit it keeps for backward, and whether its recurrent product has a bias of its own
  // (GRU's).
  struct Cell {
    int gates;
    int kept;
    bool recurrent_bias;
  };
  Recurrent(Cell cell, int64_t steps, int64_t features, int64_t units, bool return_sequences,
            bool use_bias, bool bidirectional, float dropout, float recurrent_dropout);

  // Step t of direction d, its products xp and hu (batch, gates units) given (hu a scratch the
  // cell may overwrite): keeps what backward needs in `kept` (batch, kept units) and writes h's
  // slot `after` from slot `before`.
  virtual void cell_forward(ComputeBackend& backend, int d, const float* xp, float* hu, float* kept,
                            int64_t before, int64_t after, int64_t batch) = 0;
  // Its backward: dh the output's gradient (or null), dh_more the next step's through its
  // recurrent product (or null), `carry` (batch, units) what the next step's cell carries back
  // (zero before the last step), to be replaced by this step's; the gradients of the input's
  // products in dxp and of the recurrent ones in dhu (the same buffer where they are the same).
  virtual void cell_backward(ComputeBackend& backend, int d, const float* kept, int64_t before,
                             int64_t after, const float* dh, const float* dh_more, float* carry,
                             float* dxp, float* dhu, int64_t batch) = 0;
  // Before direction d's first step (the LSTM zeroes its cell's slot `start`).
  virtual void start_steps(ComputeBackend& /*backend*/, int /*d*/, int64_t /*start*/,
                           int64_t /*batch*/) {}
  // At a padding step (rows where mask_t is 0), carries the cell's own state from slot `before`
  // to slot `after` (the LSTM's c); h is the base's.
  virtual void carry_state(ComputeBackend& /*backend*/, int /*d*/, const float* /*mask_t*/,
                           int64_t /*before*/, int64_t /*after*/, int64_t /*batch*/) {}
  // Sets what of the input bias (zeros when called) does not start at zero (the LSTM's forget
  // gate); nothing by default.
  virtual void init_input_bias(std::span<float> /*bias*/) const {}

  // Direction d's h slots ((steps + 1) batch units).
  const float* h_slots(int d) const { return directions_[static_cast<size_t>(d)].h.data(); }
  float* h_slots(int d) { return directions_[static_cast<size_t>(d)].h.data(); }
  int directions() const { return bidirectional_ ? 2 : 1; }
  // out = dh + dh_more over (batch, units), either of them null (not both): the gradient reaching a
  // step's h from its output and from the step after it.
  void sum_gradients(ComputeBackend& backend, const float* dh, const float* dh_more, float* out,
                     int64_t batch) const;

  const int64_t steps_, features_, units_;

 private:
  // One direction's parameters, gradients and what forward keeps for backward.
  struct Direction {
    Direction(int64_t biases, bool use_bias, bool recurrent_bias)
        : bias(biases, use_bias), recurrent_bias(biases, use_bias && recurrent_bias) {}
    float* weight_ih = nullptr;  // (gates units, features)
    float* weight_hh = nullptr;  // (gates units, units)
    float* weight_ih_grad = nullptr;
    float* weight_hh_grad = nullptr;
    LayerBias bias;               // (gates units): in the input's products
    LayerBias recurrent_bias;     // (gates units): in the recurrent ones (GRU), or zeros
    DeviceBuffer input_products;  // (steps, batch, gates units)
    DeviceBuffer kept;            // (steps, batch, kept units): what the cell keeps
    DeviceBuffer h;               // (steps + 1, batch, units): see Note [recurrent steps]
    DeviceBuffer dx_steps;        // (steps, batch, features)
    DeviceBuffer x_masked;        // (steps, batch, features): the input after its dropout
    DeviceBuffer h_masked;        // (steps, batch, units): each step's h before, after its dropout
    const float* inputs = nullptr;  // what the input products read: x_steps_ or x_masked
  };
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

  Cell cell_;
  bool return_sequences_, bidirectional_;
  float dropout_, recurrent_dropout_;
  Pass pass_;
  std::vector<Direction> directions_;
  LayerBias no_bias_units_;          // zeros for the recurrent gradient's product
  DeviceBuffer x_steps_;             // (steps, batch, features)
  DeviceBuffer recurrent_;           // (batch, gates units): a step's recurrent product
  DeviceBuffer dxp_, dhu_;           // (steps, batch, gates units); dhu_ the GRU's alone
  DeviceBuffer dh_, carry_;          // (batch, units): the gradients carried to the step before
  DeviceBuffer dy_steps_;            // (steps, batch, units): a direction's dy, time-major
  DeviceBuffer weight_hh_t_;         // (units, gates units)
  const float* steps_of_ = nullptr;  // the input and batch whose steps the scratch holds
  int64_t steps_batch_ = 0;
  const float* mask_ = nullptr;        // the input's padding mask (batch, steps), or null
  DeviceBuffer mask_steps_;            // (steps, batch): the mask the last forward read
  const float* steps_mask_ = nullptr;  // mask_steps_' data where that forward had a mask
  DeviceBuffer through_, carried_;     // (batch, units): what passes a padding step in backward
  DeviceBuffer zero_rows_;             // (batch, gates units) of zeros, never written
};

}  // namespace ddp
