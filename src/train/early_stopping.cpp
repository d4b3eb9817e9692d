#include "train/early_stopping.h"

#include <nlohmann/json.hpp>

#include <optional>
#include <stdexcept>

namespace ddp {

EarlyStoppingConfig parse_early_stopping(ConfigNode node) {
  EarlyStoppingConfig c;
  c.enabled = true;
  c.monitor = node.get<std::string>("monitor", "val_loss");
  c.patience = node.get<int64_t>("patience", 0);
  if (c.patience < 0) node.fail("patience", "must be >= 0");
  c.min_delta = node.get("min_delta", 0.0);
  if (!(c.min_delta >= 0)) node.fail("min_delta", "must be >= 0");
  c.mode = node.choice("mode", {"auto", "min", "max"}, "auto");
  c.restore_best_weights = node.get("restore_best_weights", false);
  if (node.has("baseline")) c.baseline = node.require<double>("baseline");
  c.start_from_epoch = node.get<int64_t>("start_from_epoch", 0);
  if (c.start_from_epoch < 0) node.fail("start_from_epoch", "must be >= 0");
  node.finish();
  return c;
}

EarlyStopping::EarlyStopping(const EarlyStoppingConfig& config)
    : config_(config), monitor_(config.monitor, config.mode, config.min_delta) {}

bool EarlyStopping::observe(int64_t epoch, double value) {
  if (epoch < config_.start_from_epoch) return false;
  const std::optional<double> best =
      state_.best_epoch >= 0 ? std::optional<double>(state_.best) : std::nullopt;
  ++state_.wait;
  if (monitor_.improves(value, best)) {
    state_.best = value;
    state_.best_epoch = epoch;
    if (!config_.baseline || monitor_.improves(value, config_.baseline)) state_.wait = 0;
    return true;
  }
  if (state_.wait >= config_.patience && epoch > 0) state_.stopped_epoch = epoch;
  return false;
}

std::string EarlyStopping::describe() const {
  return "early stopping: on " + monitor_.describe() + ", patience " +
         std::to_string(config_.patience) +
         (config_.min_delta > 0 ? ", min_delta " + show_number(config_.min_delta) : "") +
         (config_.baseline ? ", baseline " + show_number(*config_.baseline) : "") +
         (config_.start_from_epoch > 0
              ? ", from epoch " + std::to_string(config_.start_from_epoch + 1)
              : "") +
         (config_.restore_best_weights ? ", restoring the best epoch's weights at the end" : "");
}

std::string EarlyStopping::stop_line() const {
  // The first epoch's value is the first best (Note [monitored values]): a stop has one.
  const std::string epochs = std::to_string(state_.wait) + " epoch" + (state_.wait == 1 ? "" : "s");
  const std::string best = show_number(state_.best);
  const std::string best_epoch = "epoch " + std::to_string(state_.best_epoch + 1);
  const std::string head =
      "Epoch " + std::to_string(state_.stopped_epoch + 1) + ": early stopping: " + config_.monitor;
  if (config_.baseline && !monitor_.improves(state_.best, config_.baseline))
    return head + " has not beaten the baseline " + show_number(*config_.baseline) + " in " +
           epochs + " (best " + best + ", " + best_epoch + ")";
  return head + " has not improved on " + best + " (" + best_epoch + ")" +
         (config_.min_delta > 0 ? " by more than " + show_number(config_.min_delta) : "") +
         " for " + epochs;
}

std::string EarlyStopping::to_json() const {
  nlohmann::json json = {{"monitor", config_.monitor},
                         {"best_epoch", state_.best_epoch},
                         {"wait", state_.wait},
                         {"stopped_epoch", state_.stopped_epoch}};
  if (state_.best_epoch >= 0) json["best"] = value_to_json(state_.best);
  return json.dump();
}

void EarlyStopping::restore_json(const std::string& text) {
  State s;
  std::string monitor;
  try {
    const nlohmann::json json = nlohmann::json::parse(text);
    monitor = json.at("monitor").get<std::string>();
    s.best_epoch = json.at("best_epoch").get<int64_t>();
    s.wait = json.at("wait").get<int64_t>();
    s.stopped_epoch = json.at("stopped_epoch").get<int64_t>();
    if (s.best_epoch >= 0) s.best = value_from_json(json.at("best"));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(std::string("early stopping state: ") + e.what());
  }
  if (monitor != config_.monitor)
    throw std::runtime_error("early stopping: the checkpoint monitors " + monitor +
                             ", the config " + config_.monitor);
  if (s.best_epoch < -1 || s.wait < 0 || s.stopped_epoch < -1)
    throw std::runtime_error("early stopping state: negative epoch or wait");
  state_ = s;
}

}  // namespace ddp
