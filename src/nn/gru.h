#pragma once

#include "nn/recurrent.h"

namespace ddp {

// Keras' GRU with reset_after (its default; PyTorch's nn.GRU of one layer, batch_first) over
// (steps, features), one way or both (Note [recurrent steps]): r = sigmoid(x W_ir + b_ir + h W_hr
// + b_hr), z likewise, n = tanh(x W_in + b_in + r (h W_hn + b_hn)), h' = (1 - z) n + z h, h zero
// at the first step. Its gates in PyTorch's order r, z, n (Keras' kernels order them z, r, h:
// python/keras_weights_file.cpp swaps the first two); its biases zero at the start.
class Gru final : public Recurrent {
 public:
  Gru(int64_t steps, int64_t features, int64_t units, bool return_sequences, bool use_bias,
      bool bidirectional = false, float dropout = 0, float recurrent_dropout = 0);

  std::string type_name() const override { return directions() == 2 ? "Bidirectional" : "GRU"; }

 private:
  void cell_forward(ComputeBackend& backend, int d, const float* xp, float* hu, float* kept,
                    int64_t before, int64_t after, int64_t batch) override;
  void cell_backward(ComputeBackend& backend, int d, const float* kept, int64_t before,
                     int64_t after, const float* dh, const float* dh_more, float* carry, float* dxp,
                     float* dhu, int64_t batch) override;
};

}  // namespace ddp
