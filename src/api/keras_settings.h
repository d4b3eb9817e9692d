#pragma once
// A Keras object's settings (a layer's, an optimizer's or a schedule's config in Keras 3's JSON),
// read for ddp-trainer's config (Note [Keras model config]), refusing those it cannot train by.

#include <yaml-cpp/yaml.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"

namespace ddp::keras {

template <class T>
inline const char* kind() {
  if constexpr (std::is_same_v<T, bool>) return "true or false";
  if constexpr (std::is_same_v<T, std::string>) return "a string";
  if constexpr (std::is_arithmetic_v<T>) return "a number";
  return "a list of numbers";
}

// Reads a Keras layer's or optimizer's settings, refusing those ddp-trainer's do not have.
class KerasSettings {
 public:
  // `owner`: whose settings, for the message (ddp-trainer's "layers" or "optimizers").
  KerasSettings(const nlohmann::json& config, std::string where, const char* owner = "layers")
      : c_(config), where_(std::move(where)), owner_(owner) {}
  // It keeps a reference to the settings, which a temporary would leave dangling.
  KerasSettings(nlohmann::json&& config, std::string where, const char* owner = "layers") = delete;

  const std::string& where() const { return where_; }
  [[noreturn]] void refuse(const std::string& what) const {
    throw ConfigError(where_ + ": " + what + "; ddp-trainer's " + owner_ + " do not have it");
  }
  // A setting that must be absent, null or `expected` (Keras' default).
  void require(const char* key, const nlohmann::json& expected) const {
    if (c_.contains(key) && !c_[key].is_null() && c_[key] != expected)
      refuse(std::string(key) + " " + c_[key].dump());
  }
  // A setting's value, or `fallback` where it is absent or null; ConfigError naming the setting
  // where it is not a T.
  template <class T>
  T get(const char* key, const T& fallback) const {
    if (!c_.contains(key) || c_[key].is_null()) return fallback;
    try {
      return c_[key].get<T>();
    } catch (const nlohmann::json::exception&) {
      throw ConfigError(where_ + ": " + key + " " + c_[key].dump() + " is not " + kind<T>());
    }
  }
  // A setting Keras requires.
  template <class T>
  T required(const char* key) const {
    if (!c_.contains(key) || c_[key].is_null())
      throw ConfigError(where_ + ": " + key + " is missing");
    return get<T>(key, T{});
  }
  YAML::Node pair(const char* key, const nlohmann::json& fallback) const {
    const nlohmann::json v = c_.contains(key) && !c_[key].is_null() ? c_[key] : fallback;
    YAML::Node out(YAML::NodeType::Sequence);
    for (const nlohmann::json& d : v.is_array() ? v : nlohmann::json::array({v, v}))
      out.push_back(d.get<int64_t>());
    return out;
  }
  std::string activation(const std::vector<std::string>& known,
                         const std::string& fallback = "linear") const {
    const std::string a = get<std::string>("activation", fallback);
    if (std::find(known.begin(), known.end(), a) == known.end()) refuse("activation " + a);
    return a;
  }
  // A normalization layer's: over the last axis, with its scale (gamma) and offset (beta). An
  // axis counted from the batch's (ResNet50's BatchNormalization(axis=3)) goes into `out`, for
  // the model to check it is the last one.
  void normalized_over_the_last_axis(YAML::Node& out) const {
    require("center", true);
    require("scale", true);
    nlohmann::json axis = get<nlohmann::json>("axis", -1);
    if (axis.is_array() && axis.size() == 1) axis = axis[0];
    if (!axis.is_number_integer() || (axis.get<int64_t>() < 1 && axis != -1))
      refuse("axis " + axis.dump() + " (the last axis only)");
    if (axis != -1) out["axis"] = axis.get<int64_t>();
  }
  // use_bias, the kernel's L1/L2 penalty, and no other regularizer or constraint. `kernel`: the
  // name of the kernel's settings (DepthwiseConv2D's depthwise_regularizer, ...).
  void weighted(YAML::Node& out, const std::string& kernel = "kernel") const {
    out["use_bias"] = get<bool>("use_bias", true);
    const std::string regularizer = kernel + "_regularizer", constraint = kernel + "_constraint";
    for (const char* none : {"bias_regularizer", "activity_regularizer", "bias_constraint"})
      require(none, nullptr);
    require(constraint.c_str(), nullptr);
    if (!c_.contains(regularizer) || c_[regularizer].is_null()) return;
    const nlohmann::json& r = c_[regularizer];
    const std::string type = r.value("class_name", "");
    if (type != "L1L2" && type != "L1" && type != "L2") refuse(regularizer + " " + type);
    const nlohmann::json& settings = r.value("config", nlohmann::json::object());
    for (const char* key : {"l1", "l2"})
      if (settings.contains(key) && !settings[key].is_null())  // L1 has l1 only, L2 l2
        out["kernel_regularizer"][key] = settings[key].get<double>();
  }
  void channels_last() const { require("data_format", "channels_last"); }

 private:
  const nlohmann::json& c_;
  std::string where_;
  const char* owner_;
};

}  // namespace ddp::keras
