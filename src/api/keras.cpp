// The Keras-like API's runtime and the builders of its layers, losses, callbacks and data (Note
// [C++ API]); the optimizers' are in keras_optimizers.cpp, Sequential is in sequential.cpp.

#include "api/keras.h"
#include "api/spec_map.h"

#include <utility>

#include "comm/launch.h"
#include "core/error.h"
#include "nn/model_builder.h"

namespace ddp::keras {
namespace {

Spec pooling(const char* type, int64_t pool_size) {
  return {spec_map({{"type", YAML::Node(type)}, {"pool_size", YAML::Node(pool_size)}})};
}
Spec pooling1d(const char* type, int64_t pool_size, int64_t strides, const std::string& padding) {
  Spec spec = pooling(type, pool_size);
  spec.node["strides"] = strides > 0 ? strides : pool_size;
  spec.node["padding"] = padding;
  return spec;
}

}  // namespace

Runtime::Runtime(int* argc, char*** argv) : comm_(connect(argc, argv, mpi_)) {}
Runtime::~Runtime() = default;

Spec Dense(int64_t units, const std::string& activation, bool use_bias) {
  return {spec_map({{"type", YAML::Node("dense")},
                    {"units", YAML::Node(units)},
                    {"activation", YAML::Node(activation)},
                    {"use_bias", YAML::Node(use_bias)}})};
}
Spec Conv2D(int64_t filters, int64_t kernel_size, const std::string& activation,
            const std::string& padding, bool use_bias, int64_t dilation_rate) {
  Spec spec{spec_map({{"type", YAML::Node("conv2d")},
                      {"filters", YAML::Node(filters)},
                      {"kernel_size", YAML::Node(kernel_size)},
                      {"activation", YAML::Node(activation)},
                      {"padding", YAML::Node(padding)},
                      {"use_bias", YAML::Node(use_bias)}})};
  if (dilation_rate != 1) spec.node["dilation_rate"] = dilation_rate;
  return spec;
}
namespace {
Spec strided_convolution(const char* type, int64_t filters, int64_t kernel_size, int64_t strides,
                         const std::string& activation, const std::string& padding, bool use_bias) {
  Spec spec = Conv2D(filters, kernel_size, activation, padding, use_bias);
  spec.node["type"] = type;
  spec.node["strides"] = strides;
  return spec;
}
}  // namespace
Spec Conv1D(int64_t filters, int64_t kernel_size, int64_t strides, const std::string& activation,
            const std::string& padding, bool use_bias, int64_t dilation_rate) {
  Spec spec =
      strided_convolution("conv1d", filters, kernel_size, strides, activation, padding, use_bias);
  if (dilation_rate != 1) spec.node["dilation_rate"] = dilation_rate;
  return spec;
}
Spec DepthwiseConv2D(int64_t kernel_size, int64_t strides, const std::string& padding,
                     const std::string& activation, bool use_bias, int64_t dilation_rate) {
  return {spec_map({{"type", YAML::Node("depthwise_conv2d")},
                    {"kernel_size", YAML::Node(kernel_size)},
                    {"strides", YAML::Node(strides)},
                    {"padding", YAML::Node(padding)},
                    {"activation", YAML::Node(activation)},
                    {"use_bias", YAML::Node(use_bias)},
                    {"dilation_rate", YAML::Node(dilation_rate)}})};
}
Spec Conv2DTranspose(int64_t filters, int64_t kernel_size, int64_t strides,
                     const std::string& activation, const std::string& padding, bool use_bias) {
  return strided_convolution("conv2d_transpose", filters, kernel_size, strides, activation, padding,
                             use_bias);
}
Spec Conv1DTranspose(int64_t filters, int64_t kernel_size, int64_t strides,
                     const std::string& activation, const std::string& padding, bool use_bias) {
  return strided_convolution("conv1d_transpose", filters, kernel_size, strides, activation, padding,
                             use_bias);
}
Spec MaxPooling2D(int64_t pool_size) { return pooling("max_pooling2d", pool_size); }
Spec UpSampling2D(std::array<int64_t, 2> size, const std::string& interpolation) {
  return {spec_map({{"type", YAML::Node("up_sampling2d")},
                    {"size", YAML::Node(std::vector<int64_t>{size[0], size[1]})},
                    {"interpolation", YAML::Node(interpolation)}})};
}
Spec UpSampling1D(int64_t size) {
  return {spec_map({{"type", YAML::Node("up_sampling1d")}, {"size", YAML::Node(size)}})};
}
Spec ZeroPadding2D(std::array<std::array<int64_t, 2>, 2> padding) {
  YAML::Node sides(YAML::NodeType::Sequence);
  for (const auto& side : padding) sides.push_back(std::vector<int64_t>{side[0], side[1]});
  return {spec_map({{"type", YAML::Node("zero_padding2d")}, {"padding", sides}})};
}
Spec ZeroPadding1D(std::array<int64_t, 2> padding) {
  return {spec_map({{"type", YAML::Node("zero_padding1d")},
                    {"padding", YAML::Node(std::vector<int64_t>{padding[0], padding[1]})}})};
}
Spec AveragePooling2D(int64_t pool_size) { return pooling("average_pooling2d", pool_size); }
Spec MaxPooling1D(int64_t pool_size, int64_t strides, const std::string& padding) {
  return pooling1d("max_pooling1d", pool_size, strides, padding);
}
Spec AveragePooling1D(int64_t pool_size, int64_t strides, const std::string& padding) {
  return pooling1d("average_pooling1d", pool_size, strides, padding);
}
Spec GlobalAveragePooling2D() {
  return {spec_map({{"type", YAML::Node("global_average_pooling2d")}})};
}
Spec GlobalMaxPooling2D() { return {spec_map({{"type", YAML::Node("global_max_pooling2d")}})}; }
Spec GlobalAveragePooling1D() {
  return {spec_map({{"type", YAML::Node("global_average_pooling1d")}})};
}
Spec GlobalMaxPooling1D() { return {spec_map({{"type", YAML::Node("global_max_pooling1d")}})}; }
Spec Embedding(int64_t input_dim, int64_t output_dim, bool mask_zero) {
  return {spec_map({{"type", YAML::Node("embedding")},
                    {"input_dim", YAML::Node(input_dim)},
                    {"output_dim", YAML::Node(output_dim)},
                    {"mask_zero", YAML::Node(mask_zero)}})};
}
namespace {
Spec recurrent(const char* type, int64_t units, bool return_sequences, bool use_bias,
               double dropout, double recurrent_dropout) {
  return {spec_map({{"type", YAML::Node(type)},
                    {"units", YAML::Node(units)},
                    {"return_sequences", YAML::Node(return_sequences)},
                    {"use_bias", YAML::Node(use_bias)},
                    {"dropout", YAML::Node(dropout)},
                    {"recurrent_dropout", YAML::Node(recurrent_dropout)}})};
}
}  // namespace
Spec LSTM(int64_t units, bool return_sequences, bool use_bias, double dropout,
          double recurrent_dropout) {
  return recurrent("lstm", units, return_sequences, use_bias, dropout, recurrent_dropout);
}
Spec GRU(int64_t units, bool return_sequences, bool use_bias, double dropout,
         double recurrent_dropout) {
  return recurrent("gru", units, return_sequences, use_bias, dropout, recurrent_dropout);
}
Spec SimpleRNN(int64_t units, const std::string& activation, bool return_sequences, bool use_bias,
               double dropout, double recurrent_dropout) {
  Spec layer =
      recurrent("simple_rnn", units, return_sequences, use_bias, dropout, recurrent_dropout);
  layer.node["activation"] = activation;
  return layer;
}
Spec TransformerEncoder(int64_t intermediate_dim, int64_t num_heads, double dropout,
                        const std::string& activation, double layer_norm_epsilon,
                        bool normalize_first, bool causal) {
  return {spec_map({{"type", YAML::Node("transformer_encoder")},
                    {"intermediate_dim", YAML::Node(intermediate_dim)},
                    {"num_heads", YAML::Node(num_heads)},
                    {"dropout", YAML::Node(dropout)},
                    {"activation", YAML::Node(activation)},
                    {"layer_norm_epsilon", YAML::Node(layer_norm_epsilon)},
                    {"normalize_first", YAML::Node(normalize_first)},
                    {"causal", YAML::Node(causal)}})};
}
Spec PositionEmbedding() { return {spec_map({{"type", YAML::Node("position_embedding")}})}; }
Spec Bidirectional(Spec layer) {
  const std::string type = layer.node["type"] ? layer.node["type"].as<std::string>() : "";
  if (type != "lstm" && type != "gru" && type != "simple_rnn")
    throw ConfigError("Bidirectional: wraps an LSTM, GRU or SimpleRNN, not " +
                      (type.empty() ? std::string("this layer") : type));
  layer.node["bidirectional"] = true;
  return layer;
}
Spec Residual(const std::vector<Spec>& layers, const std::vector<Spec>& shortcut) {
  Spec spec{spec_map({{"type", YAML::Node("residual")}})};
  for (const auto& [key, stack] : {std::pair{"layers", &layers}, std::pair{"shortcut", &shortcut}})
    for (const Spec& layer : *stack) spec.node[key].push_back(YAML::Clone(layer.node));
  return spec;
}
Spec Flatten() { return {spec_map({{"type", YAML::Node("flatten")}})}; }
Spec Dropout(double rate) {
  return {spec_map({{"type", YAML::Node("dropout")}, {"rate", YAML::Node(rate)}})};
}
Spec SpatialDropout1D(double rate) {
  return {spec_map({{"type", YAML::Node("spatial_dropout1d")}, {"rate", YAML::Node(rate)}})};
}
Spec SpatialDropout2D(double rate) {
  return {spec_map({{"type", YAML::Node("spatial_dropout2d")}, {"rate", YAML::Node(rate)}})};
}
Spec Activation(const std::string& activation) {
  if (activation == "leaky_relu")  // Keras' activation function's slope, not its layer's
    return LeakyReLU(kLeakyReluActivationSlope);
  return {spec_map({{"type", YAML::Node(activation)}})};
}
Spec LeakyReLU(double negative_slope) {
  return {spec_map(
      {{"type", YAML::Node("leaky_relu")}, {"negative_slope", YAML::Node(negative_slope)}})};
}
Spec frozen(const Spec& layer) {
  const std::string type =
      layer.node.IsMap() && layer.node["type"] ? layer.node["type"].as<std::string>() : "";
  if (!has_parameters(type))
    throw ConfigError("frozen: a " + (type.empty() ? std::string("spec that is no layer") : type) +
                      " layer has no parameters to freeze");
  YAML::Node node = YAML::Clone(layer.node);
  node["trainable"] = false;
  return {node};
}
Spec LayerNormalization(double epsilon) {
  return {
      spec_map({{"type", YAML::Node("layer_normalization")}, {"epsilon", YAML::Node(epsilon)}})};
}
Spec RMSNormalization(double epsilon) {
  return {spec_map({{"type", YAML::Node("rms_normalization")}, {"epsilon", YAML::Node(epsilon)}})};
}
Spec BatchNormalization(bool sync) {
  return {spec_map({{"type", YAML::Node("batch_normalization")}, {"sync", YAML::Node(sync)}})};
}

Spec Rescaling(double scale, double offset) {
  return {spec_map({{"type", YAML::Node("rescaling")},
                    {"scale", YAML::Node(scale)},
                    {"offset", YAML::Node(offset)}})};
}
Spec Masking(double mask_value) {
  return {spec_map({{"type", YAML::Node("masking")}, {"mask_value", YAML::Node(mask_value)}})};
}
Spec TimeDistributed(Spec dense) {
  if (!dense.node["type"] || dense.node["type"].as<std::string>() != "dense")
    throw ConfigError("TimeDistributed: of a Dense layer only, not " +
                      (dense.node["type"] ? dense.node["type"].as<std::string>() : "?"));
  YAML::Node node = YAML::Clone(dense.node);
  node["time_distributed"] = true;
  return {node};
}
Spec RandomFlip(const std::string& mode) {
  return {spec_map({{"type", YAML::Node("random_flip")}, {"mode", YAML::Node(mode)}})};
}
namespace {
// Keras' factor as given: a number (whose meaning is the layer's) or [lower, upper].
YAML::Node range(const Factor& f) {
  return f.number ? YAML::Node(*f.number) : YAML::Node(std::vector<double>{f.range[0], f.range[1]});
}
// A random transform's layer: its factors, then Keras' fill and interpolation settings.
Spec random_transform(const char* type,
                      std::initializer_list<std::pair<const char*, YAML::Node>> factors,
                      const std::string& fill_mode, const std::string& interpolation,
                      double fill_value) {
  YAML::Node node = spec_map({{"type", YAML::Node(type)},
                              {"fill_mode", YAML::Node(fill_mode)},
                              {"interpolation", YAML::Node(interpolation)},
                              {"fill_value", YAML::Node(fill_value)}});
  for (const auto& [key, value] : factors) node[key] = value;
  return {node};
}
}  // namespace
Spec RandomTranslation(Factor height_factor, Factor width_factor, const std::string& fill_mode,
                       const std::string& interpolation, double fill_value) {
  return random_transform(
      "random_translation",
      {{"height_factor", range(height_factor)}, {"width_factor", range(width_factor)}}, fill_mode,
      interpolation, fill_value);
}
Spec RandomRotation(Factor factor, const std::string& fill_mode, const std::string& interpolation,
                    double fill_value) {
  return random_transform("random_rotation", {{"factor", range(factor)}}, fill_mode, interpolation,
                          fill_value);
}
Spec RandomZoom(Factor height_factor, std::optional<Factor> width_factor,
                const std::string& fill_mode, const std::string& interpolation, double fill_value) {
  Spec spec = random_transform("random_zoom", {{"height_factor", range(height_factor)}}, fill_mode,
                               interpolation, fill_value);
  if (width_factor) spec.node["width_factor"] = range(*width_factor);
  return spec;
}
Spec RandomContrast(Factor factor, std::array<double, 2> value_range) {
  return {
      spec_map({{"type", YAML::Node("random_contrast")},
                {"factor", range(factor)},
                {"value_range", YAML::Node(std::vector<double>{value_range[0], value_range[1]})}})};
}
Spec RandomBrightness(Factor factor, std::array<double, 2> value_range) {
  Spec spec = RandomContrast(factor, value_range);
  spec.node["type"] = "random_brightness";
  return spec;
}
Spec Reshape(const std::vector<int64_t>& target_shape) {
  return {spec_map({{"type", YAML::Node("reshape")}, {"target_shape", YAML::Node(target_shape)}})};
}
Spec CategoricalCrossentropy(double label_smoothing, bool from_logits) {
  Spec spec{spec_map({{"type", YAML::Node("categorical_crossentropy")},
                      {"label_smoothing", YAML::Node(label_smoothing)}})};
  if (from_logits) spec.node["from_logits"] = true;
  return spec;
}
Spec SparseCategoricalCrossentropy(bool from_logits, std::optional<int64_t> ignore_class) {
  Spec spec{spec_map({{"type", YAML::Node("sparse_categorical_crossentropy")}})};
  if (from_logits) spec.node["from_logits"] = true;
  if (ignore_class) spec.node["ignore_class"] = *ignore_class;
  return spec;
}
Spec EarlyStopping(const std::string& monitor, int64_t patience, double min_delta,
                   bool restore_best_weights, const std::string& mode,
                   std::optional<double> baseline, int64_t start_from_epoch) {
  Spec spec{spec_map({{"type", YAML::Node("early_stopping")},
                      {"monitor", YAML::Node(monitor)},
                      {"patience", YAML::Node(patience)},
                      {"min_delta", YAML::Node(min_delta)},
                      {"restore_best_weights", YAML::Node(restore_best_weights)},
                      {"mode", YAML::Node(mode)},
                      {"start_from_epoch", YAML::Node(start_from_epoch)}})};
  if (baseline) spec.node["baseline"] = *baseline;
  return spec;
}
Spec ReduceLROnPlateau(const std::string& monitor, double factor, int64_t patience,
                       double min_delta, int64_t cooldown, double min_lr, const std::string& mode) {
  return {spec_map({{"type", YAML::Node("reduce_on_plateau")},
                    {"monitor", YAML::Node(monitor)},
                    {"factor", YAML::Node(factor)},
                    {"patience", YAML::Node(patience)},
                    {"min_delta", YAML::Node(min_delta)},
                    {"cooldown", YAML::Node(cooldown)},
                    {"min_lr", YAML::Node(min_lr)},
                    {"mode", YAML::Node(mode)}})};
}
Spec BackupAndRestore(const std::string& backup_dir, int64_t save_freq_steps,
                      bool delete_checkpoint) {
  return {spec_map({{"type", YAML::Node("backup_and_restore")},
                    {"backup_dir", YAML::Node(backup_dir)},
                    {"save_freq_steps", YAML::Node(save_freq_steps)},
                    {"delete_checkpoint", YAML::Node(delete_checkpoint)}})};
}
Spec SwapEMAWeights() { return {spec_map({{"type", YAML::Node("swap_ema_weights")}})}; }

Spec synthetic(int64_t samples, int64_t features, int64_t classes) {
  return {spec_map({{"type", YAML::Node("synthetic")},
                    {"samples", YAML::Node(samples)},
                    {"features", YAML::Node(features)},
                    {"classes", YAML::Node(classes)}})};
}
Spec idx(const std::string& images, const std::string& labels, bool normalize) {
  return {spec_map({{"type", YAML::Node("idx")},
                    {"images", YAML::Node(images)},
                    {"labels", YAML::Node(labels)},
                    {"normalize", YAML::Node(normalize)}})};
}
Spec csv(const std::string& path, bool header) {
  return {spec_map(
      {{"type", YAML::Node("csv")}, {"path", YAML::Node(path)}, {"header", YAML::Node(header)}})};
}

}  // namespace ddp::keras
