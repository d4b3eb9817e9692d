#include "api/keras_model_config.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "api/keras_augment_config.h"
#include "api/keras_global_poolings.h"
#include "api/keras_recurrent_config.h"
#include "core/error.h"
#include "nn/model_builder.h"

namespace ddp::keras {
namespace {

using nlohmann::json;

json pair(const std::array<int64_t, 2>& hw) { return json::array({hw[0], hw[1]}); }

// The Keras class of a layer type, and its settings.
std::pair<std::string, json> keras_layer(const LayerSpec& s) {
  json c = json::object();
  const auto weighted = [&c, &s] {
    c["activation"] = s.activation;
    c["use_bias"] = s.use_bias;
    if (s.l1 != 0 || s.l2 != 0)
      c["kernel_regularizer"] =
          keras_object("keras.regularizers", "L1L2", {{"l1", s.l1}, {"l2", s.l2}});
  };
  if (s.type == "dense") {
    c["units"] = s.units;
    weighted();
    if (!s.time_distributed) return {"Dense", c};
    return {"TimeDistributed", {{"layer", keras_object("keras.layers", "Dense", c)}}};
  }
  if (s.type == "conv1d" || s.type == "conv1d_transpose") {
    c["filters"] = s.units;
    c["kernel_size"] = json::array({s.window[1]});
    c["strides"] = json::array({s.strides[1]});
    c["padding"] = s.causal_padding ? "causal" : s.same_padding ? "same" : "valid";
    c["data_format"] = "channels_last";
    c["dilation_rate"] = json::array({s.dilation[1]});
    weighted();
    if (s.output_padding[1] >= 0) c["output_padding"] = json::array({s.output_padding[1]});
    return {s.type == "conv1d" ? "Conv1D" : "Conv1DTranspose", c};
  }
  if (s.type == "conv2d" || s.type == "conv2d_transpose") {
    c["filters"] = s.units;
    c["kernel_size"] = pair(s.window);
    c["strides"] = pair(s.strides);
    c["padding"] = s.same_padding ? "same" : "valid";
    c["data_format"] = "channels_last";
    c["dilation_rate"] = pair(s.dilation);
    weighted();
    if (s.output_padding[0] >= 0) c["output_padding"] = pair(s.output_padding);
    return {s.type == "conv2d" ? "Conv2D" : "Conv2DTranspose", c};
  }
  if (s.type == "max_pooling2d" || s.type == "average_pooling2d") {
    c["pool_size"] = pair(s.window);
    c["strides"] = pair(s.strides);
    c["padding"] = s.same_padding ? "same" : "valid";
    c["data_format"] = "channels_last";
    return {s.type == "max_pooling2d" ? "MaxPooling2D" : "AveragePooling2D", c};
  }
  if (s.type == "max_pooling1d" || s.type == "average_pooling1d") {
    c["pool_size"] = json::array({s.window[1]});
    c["strides"] = json::array({s.strides[1]});
    c["padding"] = s.same_padding ? "same" : "valid";
    c["data_format"] = "channels_last";
    return {s.type == "max_pooling1d" ? "MaxPooling1D" : "AveragePooling1D", c};
  }
  if (s.type == "up_sampling2d") {
    c["size"] = pair(s.window);
    c["data_format"] = "channels_last";
    c["interpolation"] = s.bilinear ? "bilinear" : "nearest";
    return {"UpSampling2D", c};
  }
  if (s.type == "up_sampling1d") {
    c["size"] = s.window[1];
    return {"UpSampling1D", c};
  }
  if (!keras_global_pooling(s.type).empty()) {
    c["data_format"] = "channels_last";
    c["keepdims"] = false;
    return {keras_global_pooling(s.type), c};
  }
  if (s.type == "embedding") {
    c["input_dim"] = s.vocabulary;
    c["output_dim"] = s.units;
    c["mask_zero"] = s.mask_zero;
    return {"Embedding", c};
  }
  if (is_recurrent(s.type)) return keras_recurrent_layer(s);
  if (s.type == "dropout") {
    c["rate"] = s.rate;
    return {"Dropout", c};
  }
  if (s.type == "spatial_dropout1d") {
    c["rate"] = s.rate;
    return {"SpatialDropout1D", c};
  }
  if (s.type == "spatial_dropout2d") {
    c["rate"] = s.rate;
    c["data_format"] = "channels_last";
    return {"SpatialDropout2D", c};
  }
  if (s.type == "batch_normalization") {
    c["axis"] = -1;
    c["momentum"] = s.momentum;
    c["epsilon"] = s.epsilon;
    c["synchronized"] = s.sync;
    return {"BatchNormalization", c};
  }
  if (s.type == "layer_normalization" || s.type == "rms_normalization") {
    c["axis"] = -1;
    c["epsilon"] = s.epsilon;
    return {s.type == "layer_normalization" ? "LayerNormalization" : "RMSNormalization", c};
  }
  if (s.type == "flatten") return {"Flatten", c};
  if (s.type == "rescaling") {
    c["scale"] = s.scale;
    c["offset"] = s.offset;
    return {"Rescaling", c};
  }
  if (s.type == "masking") {
    c["mask_value"] = s.mask_value;
    return {"Masking", c};
  }
  if (s.type == "reshape") {
    c["target_shape"] = s.target_shape;
    return {"Reshape", c};
  }
  if (s.type == "leaky_relu") {
    c["negative_slope"] = s.negative_slope;
    return {"LeakyReLU", c};
  }
  if (s.type == "residual")  // Note [residual blocks]: a functional model's, not a Sequential's
    throw ConfigError(s.path + ": a residual block is not written to Keras' configs (a Keras " +
                      "Sequential has no skip connections); save its weights as safetensors");
  if (s.type == "transformer_encoder" || s.type == "position_embedding")  // KerasHub's
    throw ConfigError(s.path + ": " + s.type + " is not written to Keras' configs (KerasHub's " +
                      "layers are not read or written); save its weights as safetensors");
  c["activation"] = s.type;  // an activation's name (Note [fused activations])
  return {"Activation", c};
}

// Keras' automatic names: the class in snake case, then _1, _2, ... (Dense -> dense,
// MaxPooling2D -> max_pooling2d, BatchNormalization -> batch_normalization).
std::string snake_case(const std::string& class_name) {
  std::string out;
  for (size_t i = 0; i < class_name.size(); ++i) {
    const char c = class_name[i];
    const bool upper = c >= 'A' && c <= 'Z';
    if (upper && i > 0 && !(class_name[i - 1] >= '0' && class_name[i - 1] <= '9')) out += '_';
    out += upper ? static_cast<char>(c - 'A' + 'a') : c;
  }
  return out;
}

}  // namespace

json keras_model_config(const std::vector<LayerSpec>& layers, const Shape& input,
                        const std::optional<AugmentLayers>& augment) {
  json batch_shape = json::array({nullptr});
  for (const int64_t d : input.dims()) batch_shape.push_back(d);
  json keras_layers = json::array();
  keras_layers.push_back(
      keras_object("keras.layers", "InputLayer",
                   {{"batch_shape", batch_shape}, {"dtype", "float32"}, {"name", "input_layer"}}));
  std::map<std::string, int> seen;
  const auto add = [&](const std::string& class_name, json config) {
    const std::string name = snake_case(class_name);
    const int earlier = seen[name]++;
    config["name"] = earlier ? name + "_" + std::to_string(earlier) : name;
    config["dtype"] = "float32";
    keras_layers.push_back(keras_object("keras.layers", class_name, std::move(config)));
  };
  for (size_t k = 0; k <= layers.size(); ++k) {
    if (augment && k == augment->after)
      for (auto& [class_name, config] : keras_random_layers(*augment))
        add(class_name, std::move(config));
    if (k == layers.size()) break;
    // Keras saves an activation by name, and has none for GELU's tanh form (its
    // gelu(x, approximate=True) is a function call).
    if (layers[k].activation == "gelu_tanh" || layers[k].type == "gelu_tanh")
      throw ConfigError(layers[k].path +
                        ": gelu_tanh has no name in Keras' configs; save the weights "
                        "(save_weights, safetensors) instead");
    auto [class_name, config] = keras_layer(layers[k]);
    // Keras' spatial dropouts take no `trainable` (their __init__ would refuse it).
    if (!layers[k].type.starts_with("spatial_dropout")) config["trainable"] = layers[k].trainable;
    add(class_name, std::move(config));
  }
  json model = keras_object(
      "keras", "Sequential",
      {{"name", "sequential"}, {"trainable", true}, {"layers", std::move(keras_layers)}});
  model["build_config"] = {{"input_shape", batch_shape}};
  return model;
}

}  // namespace ddp::keras
