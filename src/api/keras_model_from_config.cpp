// The reading half of Note [Keras model config]: a Keras Sequential's config as the API's Specs.
#include <string>
#include <utility>
#include <vector>

#include "api/keras_augment_config.h"
#include "api/keras_global_poolings.h"
#include "api/keras_model_config.h"
#include "api/keras_recurrent_config.h"
#include "api/keras_settings.h"
#include "core/error.h"
#include "nn/model_builder.h"

namespace ddp::keras {

using nlohmann::json;

namespace {

YAML::Node keras_layer_spec(const std::string& class_name, const KerasSettings& in) {
  YAML::Node out(YAML::NodeType::Map);
  if (class_name == "Dense") {
    out["type"] = "dense";
    out["units"] = in.get<int64_t>("units", 0);
    out["activation"] = in.activation(activation_names());
    in.weighted(out);
  } else if (class_name == "Conv2D" || class_name == "Conv2DTranspose") {
    out["type"] = class_name == "Conv2D" ? "conv2d" : "conv2d_transpose";
    out["filters"] = in.get<int64_t>("filters", 0);
    out["kernel_size"] = in.pair("kernel_size", 1);
    out["strides"] = in.pair("strides", 1);
    out["padding"] = in.get<std::string>("padding", "valid");
    out["activation"] = in.activation(elementwise_activation_names());
    if (class_name == "Conv2D")  // Note [dilated convolution]
      out["dilation_rate"] = in.pair("dilation_rate", 1);
    else
      in.require("dilation_rate", json::array({1, 1}));
    in.require("groups", 1);
    if (const json padding = in.get<json>("output_padding", nullptr); !padding.is_null())
      out["output_padding"] = in.pair("output_padding", padding);  // a transposed convolution's
    in.channels_last();
    in.weighted(out);
  } else if (class_name == "DepthwiseConv2D") {  // Note [depthwise convolution]
    out["type"] = "depthwise_conv2d";
    out["kernel_size"] = in.pair("kernel_size", 1);
    out["strides"] = in.pair("strides", 1);
    out["padding"] = in.get<std::string>("padding", "valid");
    out["activation"] = in.activation(elementwise_activation_names());
    out["dilation_rate"] = in.pair("dilation_rate", 1);
    out["depth_multiplier"] = in.get<int64_t>("depth_multiplier", 1);
    in.channels_last();
    in.weighted(out, "depthwise");
  } else if (class_name == "Conv1D" || class_name == "Conv1DTranspose") {
    out["type"] = class_name == "Conv1D" ? "conv1d" : "conv1d_transpose";
    out["filters"] = in.get<int64_t>("filters", 0);
    out["kernel_size"] = in.pair("kernel_size", 1)[0];
    out["strides"] = in.pair("strides", 1)[0];
    out["padding"] = in.get<std::string>("padding", "valid");  // "causal": Conv1D's alone
    out["activation"] = in.activation(elementwise_activation_names());
    if (class_name == "Conv1D")  // Note [dilated convolution]
      out["dilation_rate"] = in.pair("dilation_rate", 1)[0];
    else
      in.require("dilation_rate", json::array({1}));
    in.require("groups", 1);
    if (const json padding = in.get<json>("output_padding", nullptr); !padding.is_null())
      out["output_padding"] = in.pair("output_padding", padding)[0];
    in.channels_last();
    in.weighted(out);
  } else if (class_name == "MaxPooling2D" || class_name == "AveragePooling2D") {
    out["type"] = class_name == "MaxPooling2D" ? "max_pooling2d" : "average_pooling2d";
    out["pool_size"] = in.pair("pool_size", 2);
    out["strides"] = in.pair("strides", json(out["pool_size"].as<std::vector<int64_t>>()));
    out["padding"] = in.get<std::string>("padding", "valid");
    in.channels_last();
  } else if (class_name == "MaxPooling1D" || class_name == "AveragePooling1D") {
    out["type"] = class_name == "MaxPooling1D" ? "max_pooling1d" : "average_pooling1d";
    out["pool_size"] = in.pair("pool_size", 2)[0];
    out["strides"] = in.pair("strides", json(out["pool_size"].as<int64_t>()))[0];
    out["padding"] = in.get<std::string>("padding", "valid");
    in.channels_last();
  } else if (class_name == "UpSampling2D") {
    out["type"] = "up_sampling2d";
    out["size"] = in.pair("size", 2);
    out["interpolation"] = in.get<std::string>("interpolation", "nearest");  // others refused
    in.channels_last();
  } else if (class_name == "ZeroPadding2D" || class_name == "ZeroPadding1D") {
    // Note [zero padding]: an integer, a pair, or ZeroPadding2D's pair of pairs, as configs say it
    out["type"] = class_name == "ZeroPadding2D" ? "zero_padding2d" : "zero_padding1d";
    const json padding = in.get<json>("padding", 1);
    YAML::Node sides(YAML::NodeType::Sequence);
    for (const json& side : padding.is_array() ? padding : json::array({padding, padding})) {
      if (!side.is_array()) {
        sides.push_back(side.get<int64_t>());
        continue;
      }
      YAML::Node pair(YAML::NodeType::Sequence);
      for (const json& p : side) pair.push_back(p.get<int64_t>());
      sides.push_back(pair);
    }
    out["padding"] = sides;
    in.channels_last();
  } else if (class_name == "UpSampling1D") {
    out["type"] = "up_sampling1d";
    out["size"] = in.get<int64_t>("size", 2);
  } else if (!global_pooling_type(class_name).empty()) {
    out["type"] = global_pooling_type(class_name);
    in.require("keepdims", false);
    in.channels_last();
  } else if (class_name == "Embedding") {
    out["type"] = "embedding";
    out["input_dim"] = in.required<int64_t>("input_dim");
    out["output_dim"] = in.required<int64_t>("output_dim");
    out["mask_zero"] = in.get<bool>("mask_zero", false);  // Note [padding masks]
    in.require("embeddings_regularizer", nullptr);
    in.require("embeddings_constraint", nullptr);
    in.require("sparse", false);
  } else if (class_name == "LSTM" || class_name == "GRU" || class_name == "SimpleRNN" ||
             class_name == "Bidirectional") {
    out.reset(recurrent_layer_spec(class_name, in));
  } else if (class_name == "Dropout") {
    out["type"] = "dropout";
    out["rate"] = in.get<double>("rate", 0.0);
    in.require("noise_shape", nullptr);
  } else if (class_name == "SpatialDropout1D" || class_name == "SpatialDropout2D") {
    out["type"] = class_name == "SpatialDropout1D" ? "spatial_dropout1d" : "spatial_dropout2d";
    out["rate"] = in.required<double>("rate");
    if (class_name == "SpatialDropout2D") in.channels_last();
  } else if (class_name == "BatchNormalization") {
    out["type"] = "batch_normalization";
    out["momentum"] = in.get<double>("momentum", 0.99);
    out["epsilon"] = in.get<double>("epsilon", 0.001);
    out["sync"] = in.get<bool>("synchronized", false);
    in.require("renorm", false);
    in.normalized_over_the_last_axis(out);
  } else if (class_name == "LayerNormalization") {
    out["type"] = "layer_normalization";
    out["epsilon"] = in.get<double>("epsilon", 0.001);
    in.require("rms_scaling", false);  // deprecated by Keras: RMSNormalization instead
    in.normalized_over_the_last_axis(out);
  } else if (class_name == "RMSNormalization") {
    out["type"] = "rms_normalization";
    out["epsilon"] = in.get<double>("epsilon", 1e-6);
    in.normalized_over_the_last_axis(out);
  } else if (class_name == "Rescaling") {
    out["type"] = "rescaling";
    out["scale"] = in.required<double>("scale");  // one number: per channel is not had
    out["offset"] = in.get<double>("offset", 0.0);
  } else if (class_name == "TimeDistributed") {  // of Dense: Dense at each step
    const json layer = in.required<json>("layer");
    if (layer.value("class_name", "") != "Dense")
      in.refuse("layer " + layer.value("class_name", std::string("?")) + " (a Dense only)");
    const json inner = layer.value("config", json::object());
    out.reset(keras_layer_spec("Dense", KerasSettings(inner, in.where() + ": its Dense")));
    out["time_distributed"] = true;
  } else if (is_keras_random_layer(class_name)) {  // Note [augmentation layers]
    out.reset(random_layer_spec(class_name, in));
  } else if (class_name == "Masking") {  // Note [padding masks]
    out["type"] = "masking";
    out["mask_value"] = in.get<double>("mask_value", 0.0);
  } else if (class_name == "Reshape") {
    out["type"] = "reshape";
    out["target_shape"] = in.required<std::vector<int64_t>>("target_shape");
  } else if (class_name == "Flatten") {
    out["type"] = "flatten";
    in.channels_last();
  } else if (class_name == "ELU") {  // Keras' ELU layer: alpha 1 is the elu activation's
    in.require("alpha", 1.0);
    out["type"] = "elu";
  } else if (class_name == "LeakyReLU") {
    out["type"] = "leaky_relu";
    out["negative_slope"] = in.get<double>("negative_slope", 0.3);
  } else if (class_name == "ReLU" && in.get<double>("negative_slope", 0.0) != 0.0) {
    in.require("max_value", nullptr);  // ReLU(negative_slope) is a leaky ReLU
    in.require("threshold", 0.0);
    out["type"] = "leaky_relu";
    out["negative_slope"] = in.get<double>("negative_slope", 0.0);
  } else if (class_name == "Activation" || class_name == "ReLU" || class_name == "Softmax") {
    // ReLU(max_value=6) is relu6, as MobileNets write it.
    const bool six = class_name == "ReLU" && in.get<double>("max_value", 0.0) == 6.0;
    const std::string a = class_name == "ReLU"      ? (six ? "relu6" : "relu")
                          : class_name == "Softmax" ? "softmax"
                                                    : in.activation(activation_names());
    if (class_name == "ReLU") {
      if (!six) in.require("max_value", nullptr);
      in.require("threshold", 0.0);
    }
    if (a == "linear") return {};  // the identity: no layer
    out["type"] = a;
    if (a == "leaky_relu") out["negative_slope"] = kLeakyReluActivationSlope;
  } else if (class_name == "TransformerEncoder" || class_name == "TokenAndPositionEmbedding") {
    throw ConfigError(in.where() + ": KerasHub's layers are not read from Keras' configs; " +
                      "ddp.TransformerEncoder and ddp.PositionEmbedding build it");
  } else {
    in.refuse("the layer class " + class_name);
  }
  return out;
}

}  // namespace

KerasLayer keras_layer(const json& layer, const std::string& where) {
  const std::string class_name = layer.at("class_name").get<std::string>();
  const json& settings = layer.value("config", json::object());
  KerasLayer out;
  if (class_name == "InputLayer") {
    const json shape = settings.contains("batch_shape") ? settings["batch_shape"]
                                                        : settings.at("batch_input_shape");
    for (size_t d = 1; d < shape.size(); ++d) {
      if (!shape[d].is_number_integer() || shape[d].get<int64_t>() <= 0)
        throw ConfigError(where + " (InputLayer): the shape " + shape.dump() +
                          " has a dimension that is not a size");
      out.input_shape.push_back(shape[d].get<int64_t>());
    }
    return out;
  }
  const KerasSettings in(settings, where + " (" + class_name + ")");
  YAML::Node spec = keras_layer_spec(class_name, in);
  // Note [frozen layers]; Keras' layers without weights may say false too, to no effect.
  if (spec.IsMap() && has_parameters(spec["type"].as<std::string>()) &&
      !in.get<bool>("trainable", true))
    spec["trainable"] = false;
  if (spec.IsMap()) out.spec = Spec{spec};
  return out;
}

KerasModel keras_model_from_config(const json& config, const std::string& origin, bool compile) {
  const std::string where = origin + ": config.json";
  KerasModel model;
  try {
    const std::string class_name = config.value("class_name", std::string("?"));
    if (class_name != "Sequential" && class_name != "Functional")
      throw ConfigError(where + ": a " + class_name +
                        " model; ddp-trainer trains Sequential models and functional ones of " +
                        "residual blocks");
    if (!config.at("config").value("trainable", true))
      throw ConfigError(where +
                        ": the model is frozen (trainable: false): nothing in it is left to "
                        "train; set trainable on its layers instead");
    if (class_name == "Functional") {
      read_functional_layers(config, where, model);
    } else {
      const json& layers = config["config"].at("layers");
      YAML::Node specs(YAML::NodeType::Sequence);
      for (size_t k = 0; k < layers.size(); ++k) {
        KerasLayer layer = keras_layer(layers[k], where + ": layers[" + std::to_string(k) + "]");
        if (layer.spec) {
          specs.push_back(layer.spec->node);
          model.layers.push_back(std::move(*layer.spec));
        }
        if (!layer.input_shape.empty()) model.input_shape = std::move(layer.input_shape);
      }
      model.keras_layers = keras_layer_refs(specs);
    }
    if (model.input_shape.empty()) {  // no InputLayer: the shape the model was built with
      const json& built = config.value("build_config", json::object());
      if (built.contains("input_shape") && built["input_shape"].is_array())
        for (size_t d = 1; d < built["input_shape"].size(); ++d)
          model.input_shape.push_back(built["input_shape"][d].get<int64_t>());
    }
    if (!compile || !config.contains("compile_config") || config["compile_config"].is_null())
      return model;
    const json& c = config["compile_config"];
    model.optimizer = keras_optimizer(c.at("optimizer"), where + ": compile_config",
                                      "; load with compile=False and compile() with one");
    model.loss = keras_loss(c.at("loss"), where + ": compile_config",
                            "; load with compile=False and compile() with one");
    if (c.contains("loss_weights") && !c["loss_weights"].is_null())
      throw ConfigError(where + ": compile_config: loss_weights " + c["loss_weights"].dump() +
                        " are not trained by; load with compile=False and compile()");
    if (c.contains("metrics") && c["metrics"].is_array())
      for (const json& m : c["metrics"])
        model.metrics.push_back(keras_metric(m, where + ": compile_config",
                                             "; load with compile=False and compile() with one"));
  } catch (const json::exception& e) {
    throw ConfigError(where + ": not a Keras model config: " + e.what());
  }
  return model;
}

}  // namespace ddp::keras
