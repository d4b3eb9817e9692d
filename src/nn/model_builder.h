#pragma once

#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "nn/sequential.h"

namespace ddp {

// One entry of the config's model.layers list.
struct LayerSpec {
  std::string type;  // one of layer_types()
  // dense, lstm, gru, simple_rnn: units; convolutions: filters; embedding: output_dim
  int64_t units = 0;
  // dense, convolutions: linear, relu, tanh, sigmoid, ... (softmax: dense); simple_rnn (tanh)
  std::string activation = "linear";
  std::string path;  // "run.yaml: model.layers.2", for error messages
  // convolutions: kernel_size, strides; max/average_pooling2d: pool_size, strides (height, width)
  std::array<int64_t, 2> window{1, 1};
  std::array<int64_t, 2> strides{1, 1};
  bool same_padding = false;    // Keras' padding: "same" rather than "valid"
  bool causal_padding = false;  // conv1d: Keras' padding "causal" (Note [dilated convolution])
  // conv2d, conv1d: Keras' dilation_rate (height, width) (Note [dilated convolution])
  std::array<int64_t, 2> dilation{1, 1};
  // conv2d_transpose, conv1d_transpose: Keras' output_padding (height, width), -1: none (None)
  std::array<int64_t, 2> output_padding{-1, -1};
  float rate = 0;          // dropout; a recurrent layer's dropout
  float momentum = 0.99f;  // batch_normalization (Keras' defaults)
  float epsilon = 0.001f;  // batch_normalization and layer_normalization
  // batch_, layer_ and rms_normalization: Keras' axis, -1 or the input's last counted from the
  // batch's (ResNet50's BatchNormalization(axis=3) of images)
  int64_t axis = -1;
  bool sync = false;  // batch_normalization: statistics over all ranks (Note [batch statistics])
  float l1 = 0;       // dense, conv2d: kernel_regularizer (Note [weight penalty])
  float l2 = 0;
  bool use_bias = true;  // dense, conv2d (Note [no bias])
  // dense, conv2d, embedding, batch_normalization, layer_normalization: false freezes the layer's
  // parameters (Keras' trainable; Note [frozen layers])
  bool trainable = true;
  float scale = 1, offset = 0;  // rescaling: y = x * scale + offset
  // leaky_relu layer: Keras' LeakyReLU's default (its activation function's, a dense or conv2d
  // `activation: leaky_relu`, is kLeakyReluActivationSlope)
  float negative_slope = 0.3f;
  // up_sampling2d: Keras' interpolation, nearest or bilinear (Note [bilinear upsampling])
  bool bilinear = false;
  // zero_padding2d, zero_padding1d: Keras' padding, the rows of zeros added above and below, the
  // columns (steps) left and right (Note [zero padding])
  std::array<int64_t, 4> zero_padding{0, 0, 0, 0};
  // reshape: Keras' target_shape, one sample's shape after it; one -1 stands for what is left.
  std::vector<int64_t> target_shape = {};
  int64_t vocabulary = 0;         // embedding: input_dim, the token ids' bound
  bool return_sequences = false;  // recurrent: every step's output, not the last step's alone
  bool bidirectional = false;     // recurrent: a second direction, reading the steps last to first
  float recurrent_rate = 0;       // recurrent: recurrent_dropout (its dropout is `rate`)
  bool mask_zero = false;         // embedding: id 0 is padding (Note [padding masks])
  float mask_value = 0;           // masking: a step of features all equal to it is padding
  // dense: Keras' TimeDistributed(Dense), which is Dense at each step of a sequence: the same
  // layer, under Keras' name and weight group (Note [Keras model config])
  bool time_distributed = false;
  // transformer_encoder (KerasHub's names): num_heads, intermediate_dim, normalize_first; its
  // dropout is `rate`, its layer_norm_epsilon `epsilon`, its activation `activation`
  int64_t heads = 0;
  int64_t intermediate = 0;
  bool normalize_first = false;
  bool causal = false;  // transformer_encoder: each step attends to itself and the steps before
  // residual (Note [residual blocks]): the block's layers, and its shortcut's (none: the input
  // itself); the two outputs are added
  std::vector<LayerSpec> block = {};
  std::vector<LayerSpec> shortcut = {};
};

// Keras' `activation="leaky_relu"` (keras.activations.leaky_relu's negative_slope).
inline constexpr float kLeakyReluActivationSlope = 0.2f;

const std::vector<std::string>& layer_types();
// A dense layer's `activation` values, and a conv2d's (no softmax).
const std::vector<std::string>& activation_names();
const std::vector<std::string>& elementwise_activation_names();
// A simple_rnn's: the elementwise ones but leaky_relu, whose slope the cell does not take.
const std::vector<std::string>& simple_rnn_activation_names();

// Whether a layer of this type is a convolution (conv2d, conv1d) or a transposed one (Note
// [transposed convolution]).
bool is_convolution(const std::string& type);
// Whether a layer of this type is a recurrent one (lstm, gru, simple_rnn; Note [recurrent steps]).
bool is_recurrent(const std::string& type);
// Whether a layer of this type has parameters (which `trainable: false` freezes).
bool has_parameters(const std::string& type);

// Throws ConfigError naming the layer's key path when a layer cannot follow its input.
std::unique_ptr<Sequential> build_sequential(ComputeBackend& backend, const Shape& input,
                                             const std::vector<LayerSpec>& specs);

// Each layer's output shape, blocks' layers included (Keras' functional configs write them); the
// layers are built and dropped. Throws as build_sequential does.
std::map<const LayerSpec*, Shape> layer_output_shapes(const Shape& input,
                                                      const std::vector<LayerSpec>& specs);

}  // namespace ddp
