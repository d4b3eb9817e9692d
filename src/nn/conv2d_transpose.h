#pragma once

#include "nn/layer.h"
#include "nn/layer_bias.h"

namespace ddp {

// Note [transposed convolution]: Keras' Conv2DTranspose (Conv1DTranspose over (steps, channels),
// an image of one row), PyTorch's nn.ConvTranspose2d: the adjoint of a convolution, the usual
// learned upsampling of a decoder. The layer's output (out_h, out_w, filters) is the input of a
// convolution, its `view`, whose output has the layer's input's shape (height, width, channels),
// and the layer computes that convolution's input gradient (Note [convolution as GEMM]): each
// input pixel's channels times the weight give a window of the output (the GEMM of the input's
// rows with the weight), col2im adds the windows up, then come the bias and the activation.
// Backward is the view's forward: im2col of the output gradient, whose product with the weight's
// transpose is the input gradient and whose product with the input the weight gradient. The
// products run on the backend's Dense GEMMs (the tiled kernels and the rank's threads on the
// CPU), as a Dense layer from the input's channels to the windows, whose weight (patch, channels)
// is the layer's transposed: forward copies it so, and backward transposes its gradient back.
//
// Keras' output sizes, without output_padding: in * stride + max(kernel - stride, 0) for
// "valid", in * stride for "same" (output_padding sets them otherwise, output_length); the view
// is a convolution of that padding over the output, which is what TensorFlow's conv2d_transpose
// computes (its "same" padding split as a convolution's, the odd one after), and its output must
// be the layer's input. The weight is the view's own, (channels, kernel_h,
// kernel_w, filters): one row per input channel in the order of an im2col window, so Keras'
// (kernel_h, kernel_w, filters, channels) kernel and PyTorch's (channels, filters, kernel_h,
// kernel_w) weight are the same transpositions of it as of a Conv2D's.
class Conv2DTranspose final : public Layer {
 public:
  Conv2DTranspose(const Window2d& view, int64_t channels, Activation act, bool use_bias,
                  bool one_row);

  std::string type_name() const override {
    return one_row_ ? "Conv1DTranspose" : "Conv2DTranspose";
  }
  std::string describe() const override;
  Shape output_shape() const override {
    return one_row_ ? Shape{view_.width, view_.channels}
                    : Shape{view_.height, view_.width, view_.channels};
  }
  std::vector<ParamSpec> param_specs() const override;
  void bind(std::span<float* const> params, std::span<float* const> grads) override;
  void init_params(Rng& rng, std::span<const std::span<float>> params) const override;
  void forward(ComputeBackend& backend, const float* x, float* y, int64_t batch) override;
  void backward(ComputeBackend& backend, const float* x, const float* y, float* dy, float* dx,
                int64_t batch, bool accumulate) override;

  // The output's size along one axis, Keras' deconv_output_length: with output_padding -1 (None)
  // as above; else (in - 1) * stride + kernel - 2 * (same ? kernel / 2 : 0) + output_padding.
  static int64_t output_length(int64_t in, int64_t kernel, int64_t stride, bool same,
                               int64_t output_padding);

 private:
  int64_t chunk_samples() const;  // samples whose windows fit Conv2D::kChunkFloats

  Window2d view_;
  int64_t channels_;
  Activation act_;
  bool one_row_;
  float* weight_ = nullptr;  // (channels, kernel_h, kernel_w, filters)
  float* weight_grad_ = nullptr;
  LayerBias bias_;         // (filters)
  LayerBias no_bias_;      // (patch): the windows' product adds none
  DeviceBuffer cols_;      // (chunk * height * width, patch), patch = kernel_h * kernel_w * filters
  DeviceBuffer weight_t_;  // (patch, channels): the weight transposed, by forward
  DeviceBuffer weight_t_grad_;  // (patch, channels): its gradient, then (channels, patch)
};

}  // namespace ddp
