// Keras' optimizers and learning-rate schedules as ddp-trainer's optimizer section (Note [Keras
// model config]).

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <string>
#include <vector>

#include "api/keras_model_config.h"
#include "api/keras_settings.h"
#include "core/error.h"
#include "train/optimizer_config.h"

namespace ddp::keras {
namespace {

using json = nlohmann::json;

// A Keras LearningRateSchedule (keras.optimizers.schedules, serialized) as the config's schedule
// (`out`), where ddp-trainer has it; returns its initial rate, the config's learning_rate.
double keras_schedule(const json& schedule, const std::string& where, YAML::Node out) {
  const std::string name = schedule.value("class_name", "");
  const json settings = schedule.value("config", json::object());
  const KerasSettings in(settings, where + ": its schedule " + name, "schedules");
  const auto decay = [&](const char* type) {
    out["type"] = type;
    out["decay_steps"] = in.required<int64_t>("decay_steps");
    return in.required<double>("initial_learning_rate");
  };
  if (name == "ExponentialDecay" || name == "InverseTimeDecay") {
    const double initial = decay(name == "ExponentialDecay" ? "exponential" : "inverse_time");
    out["decay_rate"] = in.required<double>("decay_rate");
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
    const std::vector<double> values = in.required<std::vector<double>>("values");
    out["boundaries"] = in.required<std::vector<int64_t>>("boundaries");
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
  const std::vector<std::string> known = {"adam",    "adamw",  "rmsprop", "sgd",
                                          "adagrad", "adamax", "nadam",   "lion"};
  if (std::find(known.begin(), known.end(), lower) == known.end())
    throw ConfigError(where + ": the optimizer " + type +
                      " is not one ddp-trainer has (Adam, AdamW, RMSprop, SGD, Adagrad, Adamax, "
                      "Nadam, Lion)" +
                      otherwise);
  for (const char* none :
       {"clipnorm", "clipvalue", "loss_scale_factor", "gradient_accumulation_steps"})
    in.require(none, nullptr);
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
  // Note [weight average]; Keras keeps (and ignores) ema_momentum and the frequency without it.
  if (in.get<bool>("use_ema", false)) {
    out["use_ema"] = true;
    out["ema_momentum"] = in.get<double>("ema_momentum", 0.99);
    out["ema_overwrite_frequency"] = in.get<int64_t>("ema_overwrite_frequency", 0);  // 0: None
  }
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
  } else if (lower == "adagrad") {
    out["initial_accumulator_value"] = in.get<double>("initial_accumulator_value", 0.1);
    out["epsilon"] = in.get<double>("epsilon", 1e-7);
    out["weight_decay"] = in.get<double>("weight_decay", 0.0);  // decoupled, as Keras'
  } else if (lower == "adamax" || lower == "nadam" || lower == "lion") {
    out["beta1"] = in.get<double>("beta_1", 0.9);
    out["beta2"] = in.get<double>("beta_2", lower == "lion" ? 0.99 : 0.999);
    if (lower != "lion") out["epsilon"] = in.get<double>("epsilon", 1e-7);
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

namespace {

// A setting held as float32, as the shortest decimal that reads back as it (0.9, not
// 0.8999999761581421), which Keras' float32 variables read back as the same float.
double keras_number(float value) {
  char text[32];
  const auto end = std::to_chars(text, text + sizeof text, value).ptr;
  return std::strtod(std::string(text, end).c_str(), nullptr);
}

json serialized(const char* module, const std::string& class_name, json config) {
  return {{"module", module},
          {"class_name", class_name},
          {"config", std::move(config)},
          {"registered_name", nullptr}};
}

// The schedule as Keras' LearningRateSchedule, or the rate where it is constant; null where Keras
// has none like it (a warm-up from a fraction of the rate, step, a cosine over the whole run).
json keras_rate(const LrScheduleSpec& s) {
  if (s.warmup_steps != 0) return nullptr;
  const double initial = s.base_lr;
  const auto decay = [&](const char* name, json more) {
    json c = {{"initial_learning_rate", initial}, {"decay_steps", s.decay_steps}, {"name", name}};
    c.update(more);
    return serialized("keras.optimizers.schedules", name, std::move(c));
  };
  if (s.type == "constant") return initial;
  if (s.type == "exponential" || s.type == "inverse_time")
    return decay(s.type == "exponential" ? "ExponentialDecay" : "InverseTimeDecay",
                 {{"decay_rate", s.decay_rate}, {"staircase", s.staircase}});
  if (s.type == "polynomial")
    return decay("PolynomialDecay",
                 {{"end_learning_rate", s.min_lr}, {"power", s.power}, {"cycle", false}});
  if (s.type == "cosine" && s.decay_steps > 0)
    return decay("CosineDecay",
                 {{"alpha", s.min_lr / initial}, {"warmup_target", nullptr}, {"warmup_steps", 0}});
  if (s.type == "piecewise_constant")
    return serialized(
        "keras.optimizers.schedules", "PiecewiseConstantDecay",
        {{"boundaries", s.boundaries}, {"values", s.values}, {"name", "PiecewiseConstantDecay"}});
  return nullptr;
}

}  // namespace

json keras_optimizer_json(const OptimizerConfig& o) {
  const json rate = keras_rate(o.schedule);
  const bool keras_rule = o.type == "sgd"       ? o.sgd.keras_rule
                          : o.type == "rmsprop" ? o.rmsprop.keras_rule
                          : o.is_adaptive()     ? o.adaptive.decoupled()
                                                : o.adam.keras_rule;
  const bool l2 = o.type == "adam" && o.adam.weight_decay != 0;  // Keras decays decoupled
  if (rate.is_null() || !keras_rule || l2) return nullptr;
  const double decay = o.decoupled_weight_decay();
  json c = {{"learning_rate", rate},
            {"weight_decay", decay != 0 ? json(keras_number(static_cast<float>(decay))) : json()},
            {"clipnorm", nullptr},
            {"global_clipnorm", o.global_clipnorm != 0 ? json(o.global_clipnorm) : json()},
            {"clipvalue", nullptr},
            {"use_ema", o.use_ema},
            {"ema_momentum", keras_number(static_cast<float>(o.ema_momentum))},
            {"ema_overwrite_frequency",
             o.ema_overwrite_frequency > 0 ? json(o.ema_overwrite_frequency) : json()},
            {"loss_scale_factor", nullptr},
            {"gradient_accumulation_steps", nullptr}};
  std::string class_name;
  if (o.type == "sgd") {
    class_name = "SGD";
    c["name"] = "sgd";
    c["momentum"] = keras_number(o.sgd.momentum);
    c["nesterov"] = o.sgd.nesterov;
  } else if (o.type == "rmsprop") {
    class_name = "RMSprop";
    c["name"] = "rmsprop";
    c["rho"] = keras_number(o.rmsprop.rho);
    c["momentum"] = keras_number(o.rmsprop.momentum);
    c["epsilon"] = keras_number(o.rmsprop.epsilon);
    c["centered"] = o.rmsprop.centered;
  } else if (o.is_adaptive()) {
    const AdaptiveHyper& h = o.adaptive;
    class_name = o.type == "adagrad"  ? "Adagrad"
                 : o.type == "adamax" ? "Adamax"
                 : o.type == "nadam"  ? "Nadam"
                                      : "Lion";
    c["name"] = o.type;
    if (o.type == "adagrad") {
      c["initial_accumulator_value"] = keras_number(h.initial_accumulator);
    } else {
      c["beta_1"] = keras_number(h.beta1);
      c["beta_2"] = keras_number(h.beta2);
    }
    if (o.type != "lion") c["epsilon"] = keras_number(h.epsilon);
  } else {
    class_name = o.type == "adamw" ? "AdamW" : "Adam";
    c["name"] = o.type;
    c["beta_1"] = keras_number(o.adam.beta1);
    c["beta_2"] = keras_number(o.adam.beta2);
    c["epsilon"] = keras_number(o.adam.epsilon);
    c["amsgrad"] = false;
  }
  return serialized("keras.optimizers", class_name, std::move(c));
}

}  // namespace ddp::keras
