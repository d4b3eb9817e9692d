// What Keras' compile takes besides the optimizer: losses, by name or as loss objects
// (keras.losses.SparseCategoricalCrossentropy(...)), as ddp-trainer's loss section and back for a
// saved model's compile_config, and metric objects as ddp-trainer's metrics (Note [Keras model
// config]).

#include <string>

#include "api/keras_model_config.h"
#include "api/keras_settings.h"
#include "core/error.h"

namespace ddp::keras {

using json = nlohmann::json;

Spec keras_loss(const json& loss, const std::string& where, const std::string& otherwise) {
  if (loss.is_string()) return {YAML::Node(loss.get<std::string>())};
  const std::string name = loss.is_object() ? loss.value("class_name", "") : "";
  if (name != "SparseCategoricalCrossentropy" && name != "CategoricalCrossentropy" &&
      name != "BinaryCrossentropy" && name != "MeanSquaredError")
    throw ConfigError(where + ": the loss " + (name.empty() ? loss.dump() : name) +
                      " is not one ddp-trainer has (BinaryCrossentropy, CategoricalCrossentropy, "
                      "MeanSquaredError, SparseCategoricalCrossentropy, or one by name)" +
                      otherwise);
  const json settings = loss.value("config", json::object());
  const KerasSettings in(settings, where + ": the loss " + name, "losses");
  in.require("reduction", "sum_over_batch_size");  // the mean over the batch's samples
  if (name != "SparseCategoricalCrossentropy") in.require("ignore_class", nullptr);
  in.require("axis", -1);
  YAML::Node out(YAML::NodeType::Map);
  if (name == "MeanSquaredError") {
    out["type"] = "mean_squared_error";
    return {out};
  }
  if (name == "BinaryCrossentropy") {  // sigmoid fused: a model ending in it
    in.require("from_logits", false);
    in.require("label_smoothing", 0.0);
    out["type"] = "binary_crossentropy";
    return {out};
  }
  out["type"] = name == "CategoricalCrossentropy" ? "categorical_crossentropy"
                                                  : "sparse_categorical_crossentropy";
  if (in.get<bool>("from_logits", false)) out["from_logits"] = true;
  if (name == "CategoricalCrossentropy")
    out["label_smoothing"] = in.get<double>("label_smoothing", 0.0);
  else if (settings.contains("ignore_class") && !settings["ignore_class"].is_null())
    out["ignore_class"] = in.get<int64_t>("ignore_class", 0);
  return {out};
}

json keras_loss_json(const YAML::Node& loss) {
  if (loss.IsScalar()) return loss.as<std::string>();
  const auto type = loss["type"].as<std::string>();
  for (const auto& entry : loss) {
    const auto key = entry.first.as<std::string>();
    if (key != "type" && key != "from_logits" && key != "label_smoothing" && key != "ignore_class")
      return nullptr;  // pos_weight, class_weight: not Keras' loss objects' settings
  }
  const bool from_logits = loss["from_logits"] && loss["from_logits"].as<bool>();
  json config = {
      {"name", type}, {"reduction", "sum_over_batch_size"}, {"from_logits", from_logits}};
  std::string class_name;
  if (type == "categorical_crossentropy") {
    class_name = "CategoricalCrossentropy";
    config["label_smoothing"] =
        loss["label_smoothing"] ? loss["label_smoothing"].as<double>() : 0.0;
    config["axis"] = -1;
  } else if (type == "sparse_categorical_crossentropy") {
    class_name = "SparseCategoricalCrossentropy";
    config["ignore_class"] =
        loss["ignore_class"] ? json(loss["ignore_class"].as<int64_t>()) : json(nullptr);
  } else {
    return type;  // a name Keras knows too, with nothing to say
  }
  return {{"module", "keras.losses"},
          {"class_name", class_name},
          {"config", std::move(config)},
          {"registered_name", nullptr}};
}

std::string keras_metric(const json& metric, const std::string& where,
                         const std::string& otherwise) {
  if (metric.is_string()) return metric.get<std::string>();
  const std::string name = metric.is_object() ? metric.value("class_name", "") : "";
  // Keras' metric classes whose counts ddp-trainer's metrics keep, by the name Keras logs them
  // under (the class's default name).
  const std::string logged = name == "SparseCategoricalAccuracy" ? "sparse_categorical_accuracy"
                             : name == "CategoricalAccuracy"     ? "categorical_accuracy"
                             : name == "BinaryAccuracy"          ? "binary_accuracy"
                             : name == "MeanAbsoluteError"       ? "mean_absolute_error"
                             : name == "AUC"                     ? "auc"
                                                                 : "";
  if (logged.empty())
    throw ConfigError(where + ": the metric " + (name.empty() ? metric.dump() : name) +
                      " is not one ddp-trainer has (AUC, BinaryAccuracy, CategoricalAccuracy, "
                      "MeanAbsoluteError, SparseCategoricalAccuracy, or one by name)" +
                      otherwise);
  const json settings = metric.value("config", json::object());
  const KerasSettings in(settings, where + ": the metric " + name, "metrics");
  in.require("name", logged);  // another name would be another key in the history
  if (name != "AUC") {
    in.require("threshold", 0.5);
    return logged;
  }
  // Note [AUC]: Keras' defaults.
  in.require("num_thresholds", 200);
  in.require("curve", "ROC");
  in.require("summation_method", "interpolation");
  in.require("multi_label", false);
  in.require("num_labels", nullptr);
  in.require("label_weights", nullptr);
  in.require("thresholds", nullptr);
  in.require("from_logits", false);
  return logged;
}

}  // namespace ddp::keras
