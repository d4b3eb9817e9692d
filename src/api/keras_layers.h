#pragma once
// The layers of Note [C++ API]: each a Spec, its entry in the config schema (README, Configs),
// named and defaulted as Keras' layer.

#include <yaml-cpp/yaml.h>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ddp::keras {

// A layer, optimizer or data source: its entry in the config schema (README, Configs).
struct Spec {
  YAML::Node node;
};

Spec Dense(int64_t units, const std::string& activation = "linear", bool use_bias = true);
// dilation_rate: Keras' (Note [dilated convolution]); Conv1D's padding may be "causal".
Spec Conv2D(int64_t filters, int64_t kernel_size, const std::string& activation = "linear",
            const std::string& padding = "valid", bool use_bias = true, int64_t dilation_rate = 1);
// Keras' DepthwiseConv2D (depth_multiplier 1): each channel convolved with a kernel of its own
// (Note [depthwise convolution]).
Spec DepthwiseConv2D(int64_t kernel_size, int64_t strides = 1, const std::string& padding = "valid",
                     const std::string& activation = "linear", bool use_bias = true,
                     int64_t dilation_rate = 1);
// Keras' Conv1D over (steps, channels) (an embedding's output).
Spec Conv1D(int64_t filters, int64_t kernel_size, int64_t strides = 1,
            const std::string& activation = "linear", const std::string& padding = "valid",
            bool use_bias = true, int64_t dilation_rate = 1);
// Keras' Conv2DTranspose and Conv1DTranspose (Note [transposed convolution]), a decoder's learned
// upsampling: the output `strides` times the input's size with padding "same".
Spec Conv2DTranspose(int64_t filters, int64_t kernel_size, int64_t strides = 1,
                     const std::string& activation = "linear", const std::string& padding = "valid",
                     bool use_bias = true);
Spec Conv1DTranspose(int64_t filters, int64_t kernel_size, int64_t strides = 1,
                     const std::string& activation = "linear", const std::string& padding = "valid",
                     bool use_bias = true);
Spec MaxPooling2D(int64_t pool_size = 2);
Spec AveragePooling2D(int64_t pool_size = 2);
// Keras' MaxPooling1D and AveragePooling1D over (steps, channels); strides 0: the pool size.
Spec MaxPooling1D(int64_t pool_size = 2, int64_t strides = 0, const std::string& padding = "valid");
Spec AveragePooling1D(int64_t pool_size = 2, int64_t strides = 0,
                      const std::string& padding = "valid");
// Keras' UpSampling2D: each pixel repeated over size_h x size_w (Note [upsampling]), or with
// interpolation "bilinear" interpolated (Note [bilinear upsampling]); UpSampling1D: each step of
// (steps, channels) repeated `size` times.
Spec UpSampling2D(std::array<int64_t, 2> size = {2, 2},
                  const std::string& interpolation = "nearest");
Spec UpSampling1D(int64_t size = 2);
// Keras' ZeroPadding2D: rows of zeros above and below an image, columns left and right,
// {{top, bottom}, {left, right}} (Note [zero padding]); ZeroPadding1D: steps of zeros before and
// after (steps, channels).
Spec ZeroPadding2D(std::array<std::array<int64_t, 2>, 2> padding = {{{1, 1}, {1, 1}}});
Spec ZeroPadding1D(std::array<int64_t, 2> padding = {1, 1});
Spec GlobalAveragePooling2D();
Spec GlobalMaxPooling2D();  // each channel's maximum over the image
// Keras' GlobalAveragePooling1D and GlobalMaxPooling1D: over the steps of (steps, channels).
Spec GlobalAveragePooling1D();
Spec GlobalMaxPooling1D();
// Keras' Embedding: token ids in [0, input_dim) to rows of a trained (input_dim, output_dim)
// table; the model's first layer. mask_zero: id 0 is padding, which recurrent layers skip.
Spec Embedding(int64_t input_dim, int64_t output_dim, bool mask_zero = false);
// Keras' LSTM, GRU (reset_after) and SimpleRNN over (steps, features): the last step's output, or
// all steps'.
Spec LSTM(int64_t units, bool return_sequences = false, bool use_bias = true, double dropout = 0.0,
          double recurrent_dropout = 0.0);
Spec GRU(int64_t units, bool return_sequences = false, bool use_bias = true, double dropout = 0.0,
         double recurrent_dropout = 0.0);
Spec SimpleRNN(int64_t units, const std::string& activation = "tanh", bool return_sequences = false,
               bool use_bias = true, double dropout = 0.0, double recurrent_dropout = 0.0);
// KerasHub's TransformerEncoder (PyTorch's nn.TransformerEncoderLayer, batch_first) over (steps,
// features): self-attention of num_heads heads and a feed-forward pair of intermediate_dim, each
// added back and normalized (before each branch with normalize_first); with causal, each step
// attends to itself and the steps before it alone.
Spec TransformerEncoder(int64_t intermediate_dim, int64_t num_heads, double dropout = 0.0,
                        const std::string& activation = "relu", double layer_norm_epsilon = 1e-5,
                        bool normalize_first = false, bool causal = false);
// A learned (steps, features) table added to a sequence: KerasHub's TokenAndPositionEmbedding's
// positions, after an Embedding.
Spec PositionEmbedding();
// Keras' Bidirectional wrapper of a recurrent layer: its merge_mode "concat".
Spec Bidirectional(Spec layer);
// Keras' TimeDistributed wrapper of a Dense layer: the same as the Dense at each step, under
// Keras' name (ConfigError for another layer).
Spec TimeDistributed(Spec dense);
// A residual block (Note [residual blocks]): `layers` applied to the input, plus `shortcut`'s
// output (empty: the input itself); one layer of the model, frozen as one.
Spec Residual(const std::vector<Spec>& layers, const std::vector<Spec>& shortcut = {});
Spec Flatten();
// Keras' Rescaling: y = x * scale + offset.
Spec Rescaling(double scale, double offset = 0.0);
// Keras' Masking: a step of a sequence whose features all equal mask_value is padding.
Spec Masking(double mask_value = 0.0);
// Keras' Reshape: one sample's shape after it (one -1: what is left of the input's elements).
Spec Reshape(const std::vector<int64_t>& target_shape);
Spec Dropout(double rate);
// Keras' SpatialDropout1D and SpatialDropout2D: each channel dropped at all steps or pixels.
Spec SpatialDropout1D(double rate);
Spec SpatialDropout2D(double rate);
Spec BatchNormalization(bool sync = false);
// Keras' LayerNormalization over the last axis.
Spec LayerNormalization(double epsilon = 0.001);
// Keras' RMSNormalization over the last axis: x / sqrt(mean(x^2) + epsilon) times a trained scale.
Spec RMSNormalization(double epsilon = 1e-6);
// Keras' Activation layer, an activation as a layer of its own: relu, tanh, sigmoid, elu, selu,
// softplus, softsign, gelu, silu (swish), leaky_relu (slope 0.2, Keras' function's) or softmax.
Spec Activation(const std::string& activation);
// Keras' LeakyReLU: x where x > 0, negative_slope * x elsewhere (negative_slope >= 0).
Spec LeakyReLU(double negative_slope = 0.3);
// `layer` (Dense, Conv2D, BatchNormalization, LayerNormalization) frozen, as Keras' layers made
// with trainable=False (Note [frozen layers]); ConfigError for a layer without parameters.
Spec frozen(const Spec& layer);

// Keras' random image layers, which are the training images' augmentation (Note [augmentation
// layers]): first in the model, or after Rescaling, in this order. A factor is Keras': a number
// (f for [-|f|, |f|]; RandomContrast's for [0, f]), or {lower, upper}; fill_mode reflect,
// constant, nearest or wrap; interpolation bilinear or nearest; value_range the images' values.
struct Factor {
  Factor(double f) : number(f) {}  // NOLINT: Keras' float
  Factor(double low, double high) : range{low, high} {}
  std::optional<double> number;
  std::array<double, 2> range{};
};
Spec RandomFlip(const std::string& mode = "horizontal_and_vertical");
Spec RandomTranslation(Factor height_factor, Factor width_factor,
                       const std::string& fill_mode = "reflect",
                       const std::string& interpolation = "bilinear", double fill_value = 0.0);
Spec RandomRotation(Factor factor, const std::string& fill_mode = "reflect",
                    const std::string& interpolation = "bilinear", double fill_value = 0.0);
// width_factor none: the height's zoom (the aspect ratio kept).
Spec RandomZoom(Factor height_factor, std::optional<Factor> width_factor = std::nullopt,
                const std::string& fill_mode = "reflect",
                const std::string& interpolation = "bilinear", double fill_value = 0.0);
// Each image's channels moved from their means by a factor of [1 - lower, 1 + upper], clipped.
Spec RandomContrast(Factor factor, std::array<double, 2> value_range = {0, 255});
// Each image shifted by [lower, upper] x the value range's width, clipped.
Spec RandomBrightness(Factor factor, std::array<double, 2> value_range = {0, 255});

}  // namespace ddp::keras
