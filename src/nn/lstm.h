#pragma once

#include "nn/recurrent.h"

namespace ddp {

// Keras' LSTM (PyTorch's nn.LSTM of one layer, batch_first) over (steps, features), one way or
// both (Note [recurrent steps]): tanh and sigmoid gates, h and c zero at the first step. Its gates
// are in Keras' and PyTorch's order i, f, g, o; one bias, as Keras (PyTorch's second, bias_hh_l0,
// is the same sum's other half: train/model_weights.cpp adds it in on import and exports it as
// zero), the forget gate's starting at 1 (Keras' unit_forget_bias).
class Lstm final : public Recurrent {
 public:
  Lstm(int64_t steps, int64_t features, int64_t units, bool return_sequences, bool use_bias,
       bool bidirectional = false, float dropout = 0, float recurrent_dropout = 0);

  std::string type_name() const override { return directions() == 2 ? "Bidirectional" : "LSTM"; }

 private:
  void cell_forward(ComputeBackend& backend, int d, const float* xp, float* hu, float* kept,
                    int64_t before, int64_t after, int64_t batch) override;
  void cell_backward(ComputeBackend& backend, int d, const float* kept, int64_t before,
                     int64_t after, const float* dh, const float* dh_more, float* carry, float* dxp,
                     float* dhu, int64_t batch) override;
  void start_steps(ComputeBackend& backend, int d, int64_t start, int64_t batch) override;
  void carry_state(ComputeBackend& backend, int d, const float* mask_t, int64_t before,
                   int64_t after, int64_t batch) override;
  void init_input_bias(std::span<float> bias) const override;

  std::vector<DeviceBuffer> c_;  // per direction, (steps + 1, batch, units): slots as h's
};

}  // namespace ddp
