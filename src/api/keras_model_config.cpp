#include "api/keras_model_config.h"

#include <algorithm>
#include <map>
#include <string>

#include "core/error.h"
#include "nn/model_builder.h"

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

namespace {

// Reads a Keras layer's or optimizer's settings, refusing those ddp-trainer's do not have.
class KerasSettings {
 public:
  // `owner`: whose settings, for the message (ddp-trainer's "layers" or "optimizers").
  KerasSettings(const json& config, std::string where, const char* owner = "layers")
      : c_(config), where_(std::move(where)), owner_(owner) {}
  // It keeps a reference to the settings, which a temporary would leave dangling.
  KerasSettings(json&& config, std::string where, const char* owner = "layers") = delete;

  [[noreturn]] void refuse(const std::string& what) const {
    throw ConfigError(where_ + ": " + what + "; ddp-trainer's " + owner_ + " do not have it");
  }
  // A setting that must be absent, null or `expected` (Keras' default).
  void require(const char* key, const json& expected) const {
    if (c_.contains(key) && !c_[key].is_null() && c_[key] != expected)
      refuse(std::string(key) + " " + c_[key].dump());
  }
  template <class T>
  T get(const char* key, const T& fallback) const {
    return c_.contains(key) && !c_[key].is_null() ? c_[key].get<T>() : fallback;
  }
  YAML::Node pair(const char* key, const json& fallback) const {
    const json v = c_.contains(key) && !c_[key].is_null() ? c_[key] : fallback;
    YAML::Node out(YAML::NodeType::Sequence);
    for (const json& d : v.is_array() ? v : json::array({v, v})) out.push_back(d.get<int64_t>());
    return out;
  }
  std::string activation(const std::vector<std::string>& known) const {
    const std::string a = get<std::string>("activation", "linear");
    if (std::find(known.begin(), known.end(), a) == known.end()) refuse("activation " + a);
    return a;
  }
  // use_bias, the kernel's L1/L2 penalty, and no other regularizer or constraint.
  void weighted(YAML::Node& out) const {
    out["use_bias"] = get<bool>("use_bias", true);
    for (const char* none :
         {"bias_regularizer", "activity_regularizer", "kernel_constraint", "bias_constraint"})
      require(none, nullptr);
    if (!c_.contains("kernel_regularizer") || c_["kernel_regularizer"].is_null()) return;
    const json& r = c_["kernel_regularizer"];
    const std::string type = r.value("class_name", "");
    if (type != "L1L2" && type != "L1" && type != "L2") refuse("kernel_regularizer " + type);
    const json& settings = r.value("config", json::object());
    for (const char* key : {"l1", "l2"})
      if (settings.contains(key) && !settings[key].is_null())  // L1 has l1 only, L2 l2
        out["kernel_regularizer"][key] = settings[key].get<double>();
  }
  void channels_last() const { require("data_format", "channels_last"); }

 private:
  const json& c_;
  std::string where_;
  const char* owner_;
};

YAML::Node keras_layer_spec(const std::string& class_name, const KerasSettings& in) {
  YAML::Node out(YAML::NodeType::Map);
  if (class_name == "Dense") {
    out["type"] = "dense";
    out["units"] = in.get<int64_t>("units", 0);
    out["activation"] = in.activation(activation_names());
    in.weighted(out);
  } else if (class_name == "Conv2D") {
    out["type"] = "conv2d";
    out["filters"] = in.get<int64_t>("filters", 0);
    out["kernel_size"] = in.pair("kernel_size", 1);
    out["strides"] = in.pair("strides", 1);
    out["padding"] = in.get<std::string>("padding", "valid");
    out["activation"] = in.activation({"linear", "relu", "tanh", "sigmoid"});
    in.require("dilation_rate", json::array({1, 1}));
    in.require("groups", 1);
    in.channels_last();
    in.weighted(out);
  } else if (class_name == "MaxPooling2D" || class_name == "AveragePooling2D") {
    out["type"] = class_name == "MaxPooling2D" ? "max_pooling2d" : "average_pooling2d";
    out["pool_size"] = in.pair("pool_size", 2);
    out["strides"] = in.pair("strides", json(out["pool_size"].as<std::vector<int64_t>>()));
    out["padding"] = in.get<std::string>("padding", "valid");
    in.channels_last();
  } else if (class_name == "GlobalAveragePooling2D") {
    out["type"] = "global_average_pooling2d";
    in.require("keepdims", false);
    in.channels_last();
  } else if (class_name == "Dropout") {
    out["type"] = "dropout";
    out["rate"] = in.get<double>("rate", 0.0);
    in.require("noise_shape", nullptr);
  } else if (class_name == "BatchNormalization") {
    out["type"] = "batch_normalization";
    out["momentum"] = in.get<double>("momentum", 0.99);
    out["epsilon"] = in.get<double>("epsilon", 0.001);
    out["sync"] = in.get<bool>("synchronized", false);
    in.require("center", true);
    in.require("scale", true);
    in.require("renorm", false);
    if (in.get<json>("axis", -1) != json(-1) && in.get<json>("axis", -1) != json::array({-1}))
      in.refuse("axis " + in.get<json>("axis", -1).dump() + " (the last axis only)");
  } else if (class_name == "Flatten") {
    out["type"] = "flatten";
    in.channels_last();
  } else if (class_name == "Activation" || class_name == "ReLU" || class_name == "Softmax") {
    const std::string a = class_name == "ReLU"      ? "relu"
                          : class_name == "Softmax" ? "softmax"
                                                    : in.activation(activation_names());
    if (class_name == "ReLU")
      for (const char* key : {"max_value", "negative_slope", "threshold"})
        in.require(key, key == std::string("negative_slope") || key == std::string("threshold")
                            ? json(0.0)
                            : json(nullptr));
    if (a == "linear") return {};  // the identity: no layer
    out["type"] = a;
  } else {
    in.refuse("the layer class " + class_name);
  }
  return out;
}

// A Keras LearningRateSchedule (keras.optimizers.schedules, serialized) as the config's schedule
// (`out`), where ddp-trainer has it; returns its initial rate, the config's learning_rate.
double keras_schedule(const json& schedule, const std::string& where, YAML::Node out) {
  const std::string name = schedule.value("class_name", "");
  const json settings = schedule.value("config", json::object());
  const KerasSettings in(settings, where + ": its schedule " + name, "schedules");
  const auto decay = [&](const char* type) {
    out["type"] = type;
    out["decay_steps"] = in.get<int64_t>("decay_steps", 0);
    return in.get<double>("initial_learning_rate", 0.0);
  };
  if (name == "ExponentialDecay" || name == "InverseTimeDecay") {
    const double initial = decay(name == "ExponentialDecay" ? "exponential" : "inverse_time");
    out["decay_rate"] = in.get<double>("decay_rate", 0.0);
    out["staircase"] = in.get<bool>("staircase", false);
    return initial;
  }
  if (name == "PolynomialDecay") {
    in.require("cycle", false);
    const double initial = decay("polynomial");
    out["min_lr"] = in.get<double>("end_learning_rate", 0.0001);
    out["power"] = in.get<double>("power", 1.0);
    return initial;
  }
  if (name == "CosineDecay") {
    // Keras warms up from initial_learning_rate to warmup_target; ddp-trainer's warm-up starts
    // at a warmup_steps-th of the rate it reaches.
    in.require("warmup_target", nullptr);
    const double initial = decay("cosine");
    out["min_lr"] = in.get<double>("alpha", 0.0) * initial;
    return initial;
  }
  if (name == "PiecewiseConstantDecay") {
    out["type"] = "piecewise_constant";
    const std::vector<double> values = in.get<std::vector<double>>("values", {});
    out["boundaries"] = in.get<std::vector<int64_t>>("boundaries", {});
    out["values"] = values;
    return values.empty() ? 0.0 : values.front();  // empty: the config refuses it by name
  }
  throw ConfigError(where + ": the learning-rate schedule " + name +
                    " is not one ddp-trainer has (CosineDecay, ExponentialDecay, "
                    "InverseTimeDecay, PiecewiseConstantDecay, PolynomialDecay)");
}

}  // namespace

// Keras' defaults where a setting is left out (Keras' Adam epsilon is 1e-7 where ddp-trainer's
// default is PyTorch's 1e-8).
Spec keras_optimizer(const json& optimizer, const std::string& where,
                     const std::string& otherwise) {
  const std::string type =
      optimizer.is_string() ? optimizer.get<std::string>() : optimizer.value("class_name", "");
  std::string lower = type;
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  const json c = optimizer.is_object() ? optimizer.value("config", json::object()) : json::object();
  const KerasSettings in(c, where + ": the optimizer " + type, "optimizers");
  if (lower != "adam" && lower != "adamw" && lower != "rmsprop" && lower != "sgd")
    throw ConfigError(where + ": the optimizer " + type +
                      " is not one ddp-trainer has (Adam, AdamW, RMSprop, SGD)" + otherwise);
  for (const char* none : {"clipnorm", "clipvalue", "ema_overwrite_frequency", "loss_scale_factor",
                           "gradient_accumulation_steps"})
    in.require(none, nullptr);
  in.require("use_ema", false);
  in.require("amsgrad", false);
  YAML::Node out(YAML::NodeType::Map);
  out["type"] = lower;
  if (c.contains("learning_rate") && c["learning_rate"].is_object()) {
    out["learning_rate"] =
        keras_schedule(c["learning_rate"], where + ": the optimizer " + type, out["schedule"]);
  } else {
    out["learning_rate"] = in.get<double>("learning_rate", lower == "sgd" ? 0.01 : 0.001);
  }
  if (c.contains("global_clipnorm") && !c["global_clipnorm"].is_null())
    out["global_clipnorm"] = c["global_clipnorm"].get<double>();
  out["rule"] = "keras";
  if (lower == "sgd") {
    out["momentum"] = in.get<double>("momentum", 0.0);
    out["nesterov"] = in.get<bool>("nesterov", false);
    out["weight_decay"] = in.get<double>("weight_decay", 0.0);  // decoupled, as Keras'
  } else if (lower == "rmsprop") {
    out["rho"] = in.get<double>("rho", 0.9);
    out["momentum"] = in.get<double>("momentum", 0.0);
    out["epsilon"] = in.get<double>("epsilon", 1e-7);
    out["centered"] = in.get<bool>("centered", false);
    out["weight_decay"] = in.get<double>("weight_decay", 0.0);  // decoupled, as Keras'
  } else {
    out["beta1"] = in.get<double>("beta_1", 0.9);
    out["beta2"] = in.get<double>("beta_2", 0.999);
    out["epsilon"] = in.get<double>("epsilon", 1e-7);
    // Keras decays any optimizer's weights decoupled: its Adam with a decay is AdamW.
    const double decay = in.get<double>("weight_decay", lower == "adamw" ? 0.004 : 0.0);
    if (decay != 0) out["type"] = "adamw";
    if (decay != 0 || lower == "adamw") out["weight_decay"] = decay;
  }
  return {out};
}

KerasModel keras_model_from_config(const json& config, const std::string& origin, bool compile) {
  const std::string where = origin + ": config.json";
  KerasModel model;
  try {
    if (config.value("class_name", "") != "Sequential")
      throw ConfigError(where + ": a " + config.value("class_name", std::string("?")) +
                        " model; ddp-trainer trains Sequential models");
    const json& layers = config.at("config").at("layers");
    for (size_t k = 0; k < layers.size(); ++k) {
      const std::string class_name = layers[k].at("class_name").get<std::string>();
      const json& settings = layers[k].value("config", json::object());
      if (class_name == "InputLayer") {
        const json shape = settings.contains("batch_shape") ? settings["batch_shape"]
                                                            : settings.at("batch_input_shape");
        for (size_t d = 1; d < shape.size(); ++d)
          model.input_shape.push_back(shape[d].get<int64_t>());
        continue;
      }
      const KerasSettings in(settings,
                             where + ": layers[" + std::to_string(k) + "] (" + class_name + ")");
      const YAML::Node spec = keras_layer_spec(class_name, in);
      if (spec.IsMap()) model.layers.push_back({spec});
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
    if (!c.at("loss").is_string())
      throw ConfigError(where + ": compile_config: the loss " + c["loss"].dump() +
                        " is not one named; load with compile=False and compile() with one");
    model.loss = Spec{YAML::Node(c["loss"].get<std::string>())};
    if (c.contains("loss_weights") && !c["loss_weights"].is_null())
      throw ConfigError(where + ": compile_config: loss_weights " + c["loss_weights"].dump() +
                        " are not trained by; load with compile=False and compile()");
    if (c.contains("metrics") && c["metrics"].is_array())
      for (const json& m : c["metrics"]) {
        if (!m.is_string())
          throw ConfigError(where + ": compile_config: the metric " + m.dump() +
                            " is not one named; load with compile=False and compile() with one");
        model.metrics.push_back(m.get<std::string>());
      }
  } catch (const json::exception& e) {
    throw ConfigError(where + ": not a Keras model config: " + e.what());
  }
  return model;
}

}  // namespace ddp::keras
