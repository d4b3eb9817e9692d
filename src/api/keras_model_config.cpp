#include "api/keras_model_config.h"

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "api/keras_augment_config.h"
#include "api/keras_functional.h"
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
  if (s.type == "depthwise_conv2d") {  // Note [depthwise convolution]
    c["kernel_size"] = pair(s.window);
    c["strides"] = pair(s.strides);
    c["padding"] = s.same_padding ? "same" : "valid";
    c["data_format"] = "channels_last";
    c["dilation_rate"] = pair(s.dilation);
    c["depth_multiplier"] = 1;
    weighted();
    if (c.contains("kernel_regularizer")) {  // Keras' name for its kernel's penalty
      c["depthwise_regularizer"] = c["kernel_regularizer"];
      c.erase("kernel_regularizer");
    }
    return {"DepthwiseConv2D", c};
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
  if (s.type == "zero_padding2d") {  // Note [zero padding]
    const auto [top, bottom, left, right] = s.zero_padding;
    c["padding"] = json::array({json::array({top, bottom}), json::array({left, right})});
    c["data_format"] = "channels_last";
    return {"ZeroPadding2D", c};
  }
  if (s.type == "zero_padding1d") {
    c["padding"] = json::array({s.zero_padding[2], s.zero_padding[3]});
    return {"ZeroPadding1D", c};
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
  // Each layer's Keras class and settings (blocks' layers in the order they are called), the
  // model's spec where it has one (not the random layers), and the model as a tree of them.
  std::vector<std::pair<std::string, json>> leaves;
  std::vector<const LayerSpec*> specs;
  bool blocks = false;
  const std::function<LayerTree(const LayerSpec&)> tree = [&](const LayerSpec& spec) {
    LayerTree item{leaves.size()};
    if (spec.type == "residual") {
      blocks = item.block = true;
      leaves.emplace_back("Add", json::object({{"trainable", true}}));
      specs.push_back(nullptr);
      for (const LayerSpec& inner : spec.block) item.layers.push_back(tree(inner));
      for (const LayerSpec& inner : spec.shortcut) item.shortcut.push_back(tree(inner));
      return item;
    }
    // Keras saves an activation by name, and has none for GELU's tanh form (its
    // gelu(x, approximate=True) is a function call).
    if (spec.activation == "gelu_tanh" || spec.type == "gelu_tanh")
      throw ConfigError(spec.path +
                        ": gelu_tanh has no name in Keras' configs; save the weights "
                        "(save_weights, safetensors) instead");
    auto [class_name, config] = keras_layer(spec);
    // Keras' spatial dropouts take no `trainable` (their __init__ would refuse it).
    if (!spec.type.starts_with("spatial_dropout")) config["trainable"] = spec.trainable;
    leaves.emplace_back(class_name, std::move(config));
    specs.push_back(&spec);
    return item;
  };
  std::vector<LayerTree> model;
  for (size_t k = 0; k <= layers.size(); ++k) {
    if (augment && k == augment->after)
      for (auto& [class_name, config] : keras_random_layers(*augment)) {
        model.push_back({leaves.size()});
        leaves.emplace_back(class_name, std::move(config));
        specs.push_back(nullptr);
      }
    if (k < layers.size()) model.push_back(tree(layers[k]));
  }
  // Keras' automatic names, in its order of the layers (Note [Keras functional models]).
  const FunctionalGraph graph = functional_graph(model);
  const std::vector<size_t> order = keras_layer_order(graph);
  std::vector<std::string> names(graph.nodes.size());
  std::map<std::string, int> seen;
  for (const size_t node : order) {
    const std::string name =
        node == graph.input ? "input_layer" : snake_case(leaves[graph.nodes[node].leaf].first);
    const int earlier = seen[name]++;
    names[node] = earlier ? name + "_" + std::to_string(earlier) : name;
  }
  // Each node's output, as a Keras tensor: its shape (a block's: its layers') and its layer.
  std::map<const LayerSpec*, Shape> shapes;
  if (blocks) shapes = layer_output_shapes(input, layers);
  std::vector<json> tensors(graph.nodes.size());
  for (size_t node = 0; blocks && node < graph.nodes.size(); ++node) {
    const FunctionalGraph::Node& n = graph.nodes[node];
    json shape = node == graph.input ? batch_shape : tensors[n.inputs[0]]["config"]["shape"];
    if (node != graph.input && specs[n.leaf]) {
      shape = json::array({nullptr});
      for (const int64_t d : shapes[specs[n.leaf]].dims()) shape.push_back(d);
    }
    tensors[node] = {{"class_name", "__keras_tensor__"},
                     {"config",
                      {{"shape", shape},
                       {"dtype", "float32"},
                       {"keras_history", json::array({names[node], 0, 0})}}}};
  }
  json keras_layers = json::array();
  for (const size_t node : order) {
    const FunctionalGraph::Node& n = graph.nodes[node];
    json layer = node == graph.input
                     ? keras_object("keras.layers", "InputLayer",
                                    {{"batch_shape", batch_shape}, {"dtype", "float32"}})
                     : keras_object("keras.layers", leaves[n.leaf].first, leaves[n.leaf].second);
    layer["config"]["name"] = names[node];
    layer["config"]["dtype"] = "float32";
    if (blocks) {
      layer["name"] = names[node];
      json arguments = json::array();
      for (const size_t in : n.inputs) arguments.push_back(tensors[in]);
      if (n.inputs.size() > 1) arguments = json::array({arguments});  // Add's list
      layer["inbound_nodes"] = json::array();
      if (node != graph.input)
        layer["inbound_nodes"].push_back({{"args", arguments}, {"kwargs", json::object()}});
    }
    keras_layers.push_back(std::move(layer));
  }
  if (!blocks) {
    json sequential = keras_object(
        "keras", "Sequential",
        {{"name", "sequential"}, {"trainable", true}, {"layers", std::move(keras_layers)}});
    sequential["build_config"] = {{"input_shape", batch_shape}};
    return sequential;
  }
  json functional = keras_object("keras.src.models.functional", "Functional",
                                 {{"name", "functional"},
                                  {"trainable", true},
                                  {"layers", std::move(keras_layers)},
                                  {"input_layers", json::array({"input_layer", 0, 0})},
                                  {"output_layers", json::array({names[graph.output], 0, 0})}});
  functional["build_config"] = {{"input_shape", batch_shape}};
  return functional;
}

}  // namespace ddp::keras
