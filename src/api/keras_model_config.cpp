#include "api/keras_model_config.h"

#include <map>
#include <string>

namespace ddp::keras {
namespace {

using nlohmann::json;

// Keras' serialized object: {"module", "class_name", "config", "registered_name"}.
json keras_object(const std::string& module, const std::string& class_name, json config) {
  return {{"module", module},
          {"class_name", class_name},
          {"config", std::move(config)},
          {"registered_name", nullptr}};
}

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
    return {"Dense", c};
  }
  if (s.type == "conv2d") {
    c["filters"] = s.units;
    c["kernel_size"] = pair(s.window);
    c["strides"] = pair(s.strides);
    c["padding"] = s.same_padding ? "same" : "valid";
    c["data_format"] = "channels_last";
    weighted();
    return {"Conv2D", c};
  }
  if (s.type == "max_pooling2d" || s.type == "average_pooling2d") {
    c["pool_size"] = pair(s.window);
    c["strides"] = pair(s.strides);
    c["padding"] = s.same_padding ? "same" : "valid";
    c["data_format"] = "channels_last";
    return {s.type == "max_pooling2d" ? "MaxPooling2D" : "AveragePooling2D", c};
  }
  if (s.type == "global_average_pooling2d") {
    c["data_format"] = "channels_last";
    return {"GlobalAveragePooling2D", c};
  }
  if (s.type == "dropout") {
    c["rate"] = s.rate;
    return {"Dropout", c};
  }
  if (s.type == "batch_normalization") {
    c["axis"] = -1;
    c["momentum"] = s.momentum;
    c["epsilon"] = s.epsilon;
    c["synchronized"] = s.sync;
    return {"BatchNormalization", c};
  }
  if (s.type == "flatten") return {"Flatten", c};
  c["activation"] = s.type;  // relu, tanh, sigmoid, softmax
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

json keras_model_config(const std::vector<LayerSpec>& layers, const Shape& input) {
  json batch_shape = json::array({nullptr});
  for (const int64_t d : input.dims()) batch_shape.push_back(d);
  json keras_layers = json::array();
  keras_layers.push_back(
      keras_object("keras.layers", "InputLayer",
                   {{"batch_shape", batch_shape}, {"dtype", "float32"}, {"name", "input_layer"}}));
  std::map<std::string, int> seen;
  for (const LayerSpec& spec : layers) {
    auto [class_name, config] = keras_layer(spec);
    const std::string name = snake_case(class_name);
    const int earlier = seen[name]++;
    config["name"] = earlier ? name + "_" + std::to_string(earlier) : name;
    config["dtype"] = "float32";
    keras_layers.push_back(keras_object("keras.layers", class_name, std::move(config)));
  }
  json model = keras_object(
      "keras", "Sequential",
      {{"name", "sequential"}, {"trainable", true}, {"layers", std::move(keras_layers)}});
  model["build_config"] = {{"input_shape", batch_shape}};
  return model;
}

}  // namespace ddp::keras
