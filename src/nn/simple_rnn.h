#pragma once

#include "backend/backend.h"
#include "nn/recurrent.h"

namespace ddp {

// Keras' SimpleRNN (PyTorch's nn.RNN of one layer, batch_first, where its nonlinearity is tanh or
// relu) over (steps, features), one way or both (Note [recurrent steps]): h' = act(x W_ih + b +
// h W_hh), h zero at the first step, act tanh unless given. One bias, as Keras (PyTorch's second,
// bias_hh_l0, is the same sum's other half: train/model_weights.cpp adds it in on import and
// exports it as zero), zero at the start. The cell is the backend's elementwise ops: a sum and the
// activation, whose derivative reads the output, or for an activation whose derivative needs its
// input (GELU, ELU, ...), the sum kept for each step.
class SimpleRnn final : public Recurrent {
 public:
  SimpleRnn(int64_t steps, int64_t features, int64_t units, bool return_sequences, bool use_bias,
            bool bidirectional = false, float dropout = 0, float recurrent_dropout = 0,
            Activation activation = Activation::kTanh);

  std::string type_name() const override {
    return directions() == 2 ? "Bidirectional" : "SimpleRNN";
  }

 private:
  void cell_forward(ComputeBackend& backend, int d, const float* xp, float* hu, float* kept,
                    int64_t before, int64_t after, int64_t batch) override;
  void cell_backward(ComputeBackend& backend, int d, const float* kept, int64_t before,
                     int64_t after, const float* dh, const float* dh_more, float* carry, float* dxp,
                     float* dhu, int64_t batch) override;

  Activation activation_;
};

}  // namespace ddp
