#include "train/reduce_lr_on_plateau.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <stdexcept>

namespace ddp {

PlateauConfig parse_plateau(ConfigNode& schedule, double learning_rate) {
  PlateauConfig c;
  c.enabled = true;
  c.monitor = schedule.get<std::string>("monitor", c.monitor);
  c.factor = schedule.get("factor", c.factor);
  if (!(c.factor > 0 && c.factor < 1))
    schedule.fail("factor", "must be in (0, 1): the rate is multiplied by it");
  c.patience = schedule.get<int64_t>("patience", c.patience);
  if (c.patience < 0) schedule.fail("patience", "must be >= 0");
  c.min_delta = schedule.get("min_delta", c.min_delta);
  if (!(c.min_delta >= 0)) schedule.fail("min_delta", "must be >= 0");
  c.cooldown = schedule.get<int64_t>("cooldown", c.cooldown);
  if (c.cooldown < 0) schedule.fail("cooldown", "must be >= 0");
  c.min_lr = schedule.get("min_lr", c.min_lr);
  if (!(c.min_lr >= 0 && c.min_lr <= learning_rate))
    schedule.fail("min_lr", "must be in [0, learning_rate]");
  c.mode = schedule.choice("mode", {"auto", "min", "max"}, c.mode);
  return c;
}

ReduceLrOnPlateau::ReduceLrOnPlateau(const PlateauConfig& config, double base_lr)
    : config_(config),
      base_lr_(base_lr),
      monitor_(config.monitor, config.mode, config.min_delta),
      state_{.best = std::nullopt, .wait = 0, .cooldown_left = 0, .lr = base_lr} {}

bool ReduceLrOnPlateau::observe(double value) {
  // Keras' order: a cooldown epoch counts down and waits for nothing; an improvement is the new
  // best; otherwise, out of cooldown, the wait grows until it reaches the patience.
  State& s = state_;
  if (s.cooldown_left > 0) {
    --s.cooldown_left;
    s.wait = 0;
  }
  if (monitor_.improves(value, s.best)) {
    s.best = value;
    s.wait = 0;
    return false;
  }
  if (s.cooldown_left > 0 || ++s.wait < config_.patience) return false;
  // Keras compares in float32: a rate at min_lr in float stays.
  if (static_cast<float>(s.lr) <= static_cast<float>(config_.min_lr)) return false;
  s.lr = std::max(s.lr * config_.factor, config_.min_lr);
  s.cooldown_left = config_.cooldown;
  s.wait = 0;
  return true;
}

std::string ReduceLrOnPlateau::reduce_line(int64_t epoch) const {
  return "Epoch " + std::to_string(epoch + 1) + ": ReduceLROnPlateau reducing learning rate to " +
         show_number(state_.lr) + ".";
}

std::string ReduceLrOnPlateau::describe() const {
  return "reduce on plateau: on " + monitor_.describe() + ", factor " +
         show_number(config_.factor) + ", patience " + std::to_string(config_.patience) +
         ", min_delta " + show_number(config_.min_delta) +
         (config_.cooldown > 0 ? ", cooldown " + std::to_string(config_.cooldown) : "") +
         (config_.min_lr > 0 ? ", min_lr " + show_number(config_.min_lr) : "");
}

std::string ReduceLrOnPlateau::to_json() const {
  nlohmann::json json = {{"monitor", monitor_.name()},
                         {"wait", state_.wait},
                         {"cooldown_left", state_.cooldown_left},
                         {"lr", state_.lr}};
  if (state_.best) json["best"] = value_to_json(*state_.best);
  return json.dump();
}

void ReduceLrOnPlateau::restore_json(const std::string& text) {
  State s;
  std::string monitor;
  try {
    const nlohmann::json json = nlohmann::json::parse(text);
    monitor = json.at("monitor").get<std::string>();
    s.wait = json.at("wait").get<int64_t>();
    s.cooldown_left = json.at("cooldown_left").get<int64_t>();
    s.lr = json.at("lr").get<double>();
    if (json.contains("best")) s.best = value_from_json(json.at("best"));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("reduce on plateau state: ") + e.what());
  }
  if (monitor != monitor_.name())
    throw std::runtime_error("reduce on plateau: the checkpoint monitors " + monitor +
                             ", the config " + monitor_.name());
  if (s.wait < 0 || s.cooldown_left < 0 || !(s.lr > 0 && s.lr <= base_lr_))
    throw std::runtime_error("reduce on plateau state: a negative count, or a rate outside (0, " +
                             show_number(base_lr_) + "]");
  state_ = s;
}

}  // namespace ddp
