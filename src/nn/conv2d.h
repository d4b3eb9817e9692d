#pragma once

#include "nn/layer.h"
#include "nn/layer_bias.h"

namespace ddp {

// 2-D convolution over NHWC images (Note [image layout]) with a fused activation. The weight is
// (filters, kernel_h, kernel_w, channels): one row per filter in the order of an im2col window.
// Without a bias where use_bias is false (Note [no bias]). Keras' Conv1D over (steps, channels)
// is this convolution over an image of one row (`one_row`): its output (out_steps, filters), its
// weight (filters, kernel, channels), which PyTorch's nn.Conv1d holds as (filters, channels,
// kernel).
//
// A backend may run the whole convolution its own way instead (Note [oneDNN convolutions]).
//
// Note [convolution as GEMM]: im2col lays the batch's windows out as the rows of a matrix
// (batch * out_h * out_w, kernel_h * kernel_w * channels); the convolution is then exactly a
// Dense layer over those rows, so the forward pass, the bias, the activation and all three
// gradients come from the backend's Dense GEMMs (tiled AVX-512/AVX2 kernels or OpenBLAS), and
// col2im returns the windows' gradients to the pixels. Batches go through in chunks whose window
// matrix stays under kChunkFloats, which bounds the layer's scratch memory for any batch size.
// Backward needs the forward's windows: after a training pass's forward of a single chunk (the
// usual training batch) they are still in the scratch and backward uses them; otherwise (several
// chunks) it rebuilds each chunk's.
class Conv2D final : public Layer {
 public:
  Conv2D(const Window2d& window, int64_t filters, Activation act, bool use_bias = true,
         bool one_row = false);

  std::string type_name() const override { return one_row_ ? "Conv1D" : "Conv2D"; }
  std::string describe() const override;
  Shape output_shape() const override {
    return one_row_ ? Shape{window_.out_w, filters_}
                    : Shape{window_.out_h, window_.out_w, filters_};
  }
  std::vector<ParamSpec> param_specs() const override;
  void set_pass(const Pass& pass) override { training_ = pass.training; }
  void bind(std::span<float* const> params, std::span<float* const> grads) override;
  void init_params(Rng& rng, std::span<const std::span<float>> params) const override;
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

  static constexpr int64_t kChunkFloats = int64_t{1} << 22;  // 16 MB of windows

 private:
  // Samples per chunk, and the scratch for that many samples' windows.
  int64_t chunk_samples() const;
  float* scratch(ComputeBackend& backend, DeviceBuffer& buffer);

  Window2d window_;
  int64_t filters_;
  Activation act_;
  bool one_row_;
  float* weight_ = nullptr;  // (filters, kernel_h, kernel_w, channels)
  float* weight_grad_ = nullptr;
  LayerBias bias_;      // (filters)
  DeviceBuffer cols_;   // (chunk * out_h * out_w, patch): the chunk's windows
  DeviceBuffer dcols_;  // the same shape: their gradients
  bool training_ = false;
  // The input and batch whose windows cols_ holds whole (a training forward of one chunk).
  const float* windows_of_ = nullptr;
  int64_t windows_batch_ = 0;
};

}  // namespace ddp
